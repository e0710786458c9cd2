//! What the bench reports beside timings: deployment ZIP sizes, the machine, the release profile.

use super::report::Machine;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// Writes `source` into a new ZIP at `zip` under the name `entry` (deflated, file mode kept, as
/// cargo-lambda packs a `bootstrap`) and returns the ZIP's size in bytes. Python's `zipfile` does
/// the writing: the project's virtualenv always has it, and no zip crate is worth a dependency
/// for one archive.
pub fn zip_size(python: &Path, source: &Path, entry: &str, zip: &Path) -> anyhow::Result<u64> {
    if !source.is_file() {
        bail!("{} does not exist", source.display());
    }
    let _ = std::fs::remove_file(zip);
    let output = Command::new(python)
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
                 z.write(sys.argv[2], sys.argv[3])\n",
        )
        .arg(zip)
        .arg(source)
        .arg(entry)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "zipping {} failed: {}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(std::fs::metadata(zip)
        .with_context(|| format!("reading {}", zip.display()))?
        .len())
}

/// The CPU model (from `/proc/cpuinfo`), the cores this process may use, the platform.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_owned()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        arch: std::env::consts::ARCH.to_owned(),
        os: std::env::consts::OS.to_owned(),
        instruments: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        matches!(key.trim(), "model name" | "Model" | "cpu model")
            .then(|| value.trim().to_owned())
            .filter(|model| !model.is_empty())
    })
}

/// `[profile.release]` of the workspace's Cargo.toml, as JSON (null when absent).
pub fn release_profile(cargo_toml: &str) -> serde_json::Value {
    let Ok(manifest) = cargo_toml.parse::<toml::Table>() else {
        return serde_json::Value::Null;
    };
    manifest
        .get("profile")
        .and_then(|profiles| profiles.get("release"))
        .and_then(|release| serde_json::to_value(release).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_comes_from_the_first_processor() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn release_profile_is_read_from_the_manifest() {
        let manifest = "[workspace]\nmembers = []\n\n[profile.release]\nlto = \"fat\"\n\
                        codegen-units = 1\nstrip = true\n";
        assert_eq!(
            release_profile(manifest),
            serde_json::json!({"lto": "fat", "codegen-units": 1, "strip": true})
        );
        assert_eq!(release_profile("[workspace]\n"), serde_json::Value::Null);
    }
}
