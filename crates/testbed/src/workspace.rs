//! Where things are: the workspace root, the cargo target directory, and running cargo itself.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, two levels above this crate's own manifest directory (`crates/testbed`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The target directory cargo uses (honours `CARGO_TARGET_DIR` and `.cargo/config.toml`).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return Ok(if dir.is_absolute() {
            dir
        } else {
            root().join(dir)
        });
    }
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// The cargo that runs this xtask (so `cargo +toolchain xtask` stays on that toolchain).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs a command in the workspace root, streaming its output; fails with its exit status.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let shown = describe(command);
    let status = command
        .current_dir(root())
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds the sandbox and the three functions (dev profile unless `release`), returns the binary dir.
///
/// It builds every binary of the workspace rather than selecting packages: cargo resolves
/// features per selection, and only the whole workspace resolves them as `cargo xtask` and
/// `cargo test --workspace` do, which keeps the AWS SDKs compiled once per profile.
pub fn build_sandbox_binaries(release: bool) -> anyhow::Result<PathBuf> {
    let mut command = Command::new(cargo());
    command.args(["build", "--quiet", "--workspace", "--bins"]);
    if release {
        command.arg("--release");
    }
    run(&mut command)?;
    Ok(target_dir()?.join(if release { "release" } else { "debug" }))
}
