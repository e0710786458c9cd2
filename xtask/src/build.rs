//! `cargo xtask build`: the three functions as Lambda ZIPs (`bootstrap` inside), cross-built by
//! cargo-lambda (installed into the project virtualenv when missing), with size and SHA-256.

use crate::workspace;
use anyhow::{Context, bail};
use ops::artifacts::Arch;
use ops::artifacts::{FUNCTIONS, hex, sha256, zip_path};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    /// CPU architecture of the functions.
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
    /// Output directory; each function's ZIP lands in `DIR/<function>/bootstrap.zip`
    /// (default: `<target dir>/lambda/<arch>`, where `deploy` looks by default).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Debug build (faster to compile, larger and slower to run).
    #[arg(long)]
    pub debug: bool,
    /// Embed the dependency list in each binary with cargo-auditable (installed once), so that
    /// `cargo audit bin`, syft or trivy can read what is inside a deployed function.
    #[arg(long)]
    pub auditable: bool,
}

/// One built ZIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub function: &'static str,
    pub zip: PathBuf,
    pub bytes: u64,
    pub sha256_hex: String,
}

/// Where `build` puts the ZIPs of an architecture by default, and where `cargo xtask deploy`
/// looks for them.
pub fn default_out(arch: Arch) -> anyhow::Result<PathBuf> {
    Ok(workspace::target_dir()?
        .join("lambda")
        .join(arch.lambda_name()))
}

pub fn run(args: &BuildArgs) -> anyhow::Result<Vec<Artifact>> {
    ensure_target_std(args.arch)?;
    eprintln!("build: preparing cargo-lambda in the project virtualenv");
    let venv = pytools::Venv::locate();
    venv.ensure(pytools::CARGO_LAMBDA)
        .context("installing cargo-lambda into the project virtualenv")?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => default_out(args.arch)?,
    };
    let started = Instant::now();
    let mut command = Command::new(venv.bin("cargo-lambda"));
    command.args(["lambda", "build", "--output-format", "zip"]);
    command.arg("--target").arg(args.arch.rust_target());
    command.arg("--lambda-dir").arg(&out);
    if !args.debug {
        command.arg("--release");
    }
    for function in FUNCTIONS {
        command.args(["--package", function]);
    }
    // cargo-lambda finds zig (its cross linker) next to itself in the virtualenv.
    command.env("PATH", path_with(&venv.root().join("bin"))?);
    if args.auditable {
        // What `cargo auditable lambda build …` sets before calling cargo: cargo-auditable as
        // the workspace's rustc wrapper, which adds the `.dep-v0` section to each binary it
        // links, and the cargo flags it passes on to `cargo metadata`. cargo-lambda runs cargo
        // zigbuild, which inherits both.
        let auditable = crate::tools::ensure_cargo(&crate::tools::CARGO_AUDITABLE)?;
        command.env("RUSTC_WORKSPACE_WRAPPER", auditable);
        command.env(
            "CARGO_AUDITABLE_ORIG_ARGS",
            r#"{"offline":false,"locked":true,"frozen":false,"config":[]}"#,
        );
    }
    eprintln!(
        "build: {} ({}, {})",
        workspace::describe(&command),
        args.arch.rust_target(),
        if args.debug { "debug" } else { "release" }
    );
    workspace::run(&mut command)?;
    let seconds = started.elapsed().as_secs_f64();

    let mut artifacts = Vec::new();
    for function in FUNCTIONS {
        let zip = zip_path(&out, function);
        let bytes = std::fs::read(&zip).with_context(|| {
            format!(
                "cargo-lambda reported success but {} is missing",
                zip.display()
            )
        })?;
        artifacts.push(Artifact {
            function,
            bytes: bytes.len() as u64,
            sha256_hex: hex(&sha256(&bytes)),
            zip,
        });
    }
    // The `sha256sum -c` format, for the release and for anyone copying the ZIPs around.
    let sums: String = artifacts
        .iter()
        .map(|a| format!("{}  {}/bootstrap.zip\n", a.sha256_hex, a.function))
        .collect();
    std::fs::write(out.join("SHA256SUMS"), sums)?;
    eprintln!("build: done in {seconds:.1} s");
    Ok(artifacts)
}

/// Prints the artifacts as a table (the command's output).
pub fn print(artifacts: &[Artifact]) {
    println!("{:<28} {:>10}  {:<64}  zip", "function", "bytes", "sha256");
    for a in artifacts {
        println!(
            "{:<28} {:>10}  {}  {}",
            a.function,
            a.bytes,
            a.sha256_hex,
            a.zip.display()
        );
    }
}

/// Cross-building needs the target's standard library; say how to get it rather than letting
/// cargo fail with "can't find crate for `core`".
fn ensure_target_std(arch: Arch) -> anyhow::Result<()> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // Without rustup the toolchain's own layout decides; cargo's error will have to do.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if missing_target(&installed, arch) {
        bail!(
            "the Rust standard library for {target} is not installed: run `rustup target add {target}`",
            target = arch.rust_target()
        );
    }
    Ok(())
}

fn missing_target(rustup_installed: &str, arch: Arch) -> bool {
    !rustup_installed
        .lines()
        .any(|line| line.trim() == arch.rust_target())
}

fn path_with(dir: &Path) -> anyhow::Result<std::ffi::OsString> {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    Ok(std::env::join_paths(paths)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_target_std_is_detected_from_rustup_output() {
        let only_host = "x86_64-unknown-linux-gnu\n";
        assert!(missing_target(only_host, Arch::Arm64));
        assert!(!missing_target(only_host, Arch::X86_64));
        assert!(!missing_target(
            "aarch64-unknown-linux-gnu\nx86_64-unknown-linux-gnu\n",
            Arch::Arm64
        ));
    }
}
