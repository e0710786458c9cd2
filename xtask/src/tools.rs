//! External tools the project installs on demand, idempotently: Debian packages via apt (when
//! root), and npm packages into a project-local `node_modules`.

use crate::workspace;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

/// A program and the Debian package that provides it.
pub struct AptTool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const PROMETHEUS: AptTool = AptTool {
    program: "prometheus",
    package: "prometheus",
};
pub const PROMTOOL: AptTool = AptTool {
    program: "promtool",
    package: "prometheus",
};
/// Debian names Alertmanager's binary after its package.
pub const ALERTMANAGER: AptTool = AptTool {
    program: "prometheus-alertmanager",
    package: "prometheus-alertmanager",
};
pub const AMTOOL: AptTool = AptTool {
    program: "amtool",
    package: "prometheus-alertmanager",
};

/// Where a program is on PATH, if anywhere.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Makes sure every tool is on PATH, installing the missing packages with apt when running as
/// root; otherwise fails with the packages to install.
pub fn ensure_apt(tools: &[AptTool]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|t| which(t.program).is_none())
        .map(|t| t.package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing {}: install with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    static APT_UPDATE: Once = Once::new();
    let mut update_result = Ok(());
    APT_UPDATE.call_once(|| {
        update_result = workspace::run(Command::new("apt-get").args(["update", "-qq"]))
    });
    update_result.context("apt-get update")?;
    eprintln!("installing {} with apt-get", missing.join(" "));
    workspace::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("apt-get install {}", missing.join(" ")))?;
    for tool in tools {
        if which(tool.program).is_none() {
            bail!(
                "`{}` is still missing after installing {}",
                tool.program,
                tool.package
            );
        }
    }
    Ok(())
}

/// Installs npm packages (exact versions) into `<target dir>/node-tools` when missing and returns
/// that directory (its `node_modules/` holds them).
pub fn ensure_npm(packages: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = workspace::target_dir()?.join("node-tools");
    std::fs::create_dir_all(&dir)?;
    let marker = dir.join(format!(
        "installed-{}",
        packages.join("+").replace(['/', '@'], "_")
    ));
    if marker.is_file() {
        return Ok(dir);
    }
    if which("npm").is_none() {
        bail!("npm not found: install Node.js with npm (Debian: apt-get install nodejs npm)");
    }
    eprintln!("installing {} with npm", packages.join(" "));
    workspace::run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .args(packages),
    )?;
    std::fs::write(&marker, b"")?;
    Ok(dir)
}

/// A Rust tool installed from crates.io with `cargo install --locked`, at one version.
pub struct CargoTool {
    pub krate: &'static str,
    pub version: &'static str,
    pub program: &'static str,
}

/// cargo-deny: licences, bans, sources and advisories of the dependency graph.
pub const CARGO_DENY: CargoTool = CargoTool {
    krate: "cargo-deny",
    version: "0.20.2",
    program: "cargo-deny",
};

/// cargo-auditable: the dependency list embedded in each function's binary (`build --auditable`).
pub const CARGO_AUDITABLE: CargoTool = CargoTool {
    krate: "cargo-auditable",
    version: "0.7.7",
    program: "cargo-auditable",
};

/// Installs `tool` into `<target dir>/cargo-tools` unless that version is there; returns the
/// program's path. Built from source (crates.io is what this project's machines reach): the
/// first time takes minutes, then nothing.
pub fn ensure_cargo(tool: &CargoTool) -> anyhow::Result<PathBuf> {
    let root = workspace::target_dir()?.join("cargo-tools");
    let program = root.join("bin").join(tool.program);
    // cargo install's own record of what it installed there: `"<crate> <version> (<source>)"`.
    let record = std::fs::read_to_string(root.join(".crates.toml")).unwrap_or_default();
    if program.is_file() && record.contains(&format!("\"{} {} ", tool.krate, tool.version)) {
        return Ok(program);
    }
    eprintln!(
        "installing {} {} with cargo install (once; it takes a few minutes)",
        tool.krate, tool.version
    );
    workspace::run(
        Command::new(workspace::cargo())
            .args([
                "install",
                "--locked",
                "--quiet",
                "--version",
                tool.version,
                "--root",
            ])
            .arg(&root)
            .arg(tool.krate),
    )
    .with_context(|| format!("cargo install {} {}", tool.krate, tool.version))?;
    Ok(program)
}
