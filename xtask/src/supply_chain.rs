//! The supply-chain check of `cargo xtask test`: cargo-deny's licences, bans and sources, always,
//! and its advisories against a RustSec snapshot, with the snapshot's date printed: a clean
//! result is only as new as the database it was checked against.
//!
//! The snapshot is `../shared/advisory-db` beside the workspace (or `SITEFENCE_ADVISORY_DB`), a
//! plain copy of rustsec/advisory-db with a `SNAPSHOT` file naming its date. cargo-deny reads a
//! database only as a git repository at `<db-path>/advisory-db-<hash of its URL>`, so the copy
//! is made into one under the target directory, committed with the snapshot's date, and
//! cargo-deny runs `--offline` with a configuration that points there. Without a snapshot,
//! cargo-deny fetches the current database (the GitHub workflow does that on purpose).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{tools, workspace};

/// Where cargo-deny looks for the default database (rustsec/advisory-db) under its `db-path`.
const DEFAULT_DB_DIR: &str = "advisory-db-3157b0e258782691";

/// The snapshot: where it is and the date its `SNAPSHOT` file gives.
struct Snapshot {
    dir: PathBuf,
    date: String,
}

pub fn run() -> anyhow::Result<()> {
    let deny = tools::ensure_cargo(&tools::CARGO_DENY)?;
    let root = workspace::root();
    let config = root.join("deny.toml");
    match snapshot()? {
        Some(snapshot) => {
            println!(
                "advisories: RustSec snapshot dated {} ({}); nothing published since is known to this check",
                snapshot.date,
                snapshot.dir.display()
            );
            let db_path = workspace::target_dir()?.join("advisory-dbs");
            prepare(&snapshot, &db_path.join(DEFAULT_DB_DIR))?;
            let derived = workspace::target_dir()?.join("deny-offline.toml");
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            std::fs::write(&derived, with_db_path(&text, &db_path)?)?;
            workspace::run(
                Command::new(&deny)
                    .arg("--manifest-path")
                    .arg(root.join("Cargo.toml"))
                    .arg("--config")
                    .arg(&derived)
                    .args(["--offline", "check"]),
            )
        }
        None => {
            println!(
                "advisories: no snapshot at ../shared/advisory-db (or SITEFENCE_ADVISORY_DB): fetching the current RustSec database"
            );
            workspace::run(
                Command::new(&deny)
                    .arg("--manifest-path")
                    .arg(root.join("Cargo.toml"))
                    .arg("--config")
                    .arg(&config)
                    .arg("check"),
            )
        }
    }
}

fn snapshot() -> anyhow::Result<Option<Snapshot>> {
    let dir = match std::env::var_os("SITEFENCE_ADVISORY_DB") {
        Some(dir) => PathBuf::from(dir),
        None => workspace::root().join("../shared/advisory-db"),
    };
    if !dir.join("crates").is_dir() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(dir.join("SNAPSHOT"))
        .with_context(|| format!("{} has no SNAPSHOT file naming its date", dir.display()))?;
    let date = snapshot_date(&text)
        .with_context(|| format!("no date (YYYY-MM-DD) in {}", dir.join("SNAPSHOT").display()))?;
    Ok(Some(Snapshot { dir, date }))
}

/// The first `YYYY-MM-DD` in the `SNAPSHOT` text.
fn snapshot_date(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .find(|word| {
            let parts: Vec<&str> = word.split('-').collect();
            matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2)
        })
        .map(str::to_owned)
}

/// The snapshot as the git repository cargo-deny reads, committed with the snapshot's date
/// (cargo-deny takes the database's age from its HEAD). Made again when the snapshot changes.
fn prepare(snapshot: &Snapshot, repo: &Path) -> anyhow::Result<()> {
    let marker = repo.join(".sitefence-snapshot");
    let wanted = std::fs::read_to_string(snapshot.dir.join("SNAPSHOT")).unwrap_or_default();
    if std::fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    // Made beside it and moved into place, so that a run stopped half-way, or another run at
    // the same time, never leaves cargo-deny a half-copied database.
    let staging = repo.with_extension(format!("staging-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    copy_dir(&snapshot.dir, &staging)?;
    let timestamp = format!("{}T00:00:00Z", snapshot.date);
    let git = |args: &[&str]| -> anyhow::Result<()> {
        workspace::run(
            Command::new("git")
                .arg("-C")
                .arg(&staging)
                .args([
                    "-c",
                    "user.name=sitefence",
                    "-c",
                    "user.email=sitefence@invalid",
                ])
                .args(args)
                .env("GIT_AUTHOR_DATE", &timestamp)
                .env("GIT_COMMITTER_DATE", &timestamp),
        )
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "RustSec advisory-db snapshot"])?;
    std::fs::write(staging.join(".sitefence-snapshot"), wanted)?;
    if repo.exists() {
        std::fs::remove_dir_all(repo).with_context(|| format!("removing {}", repo.display()))?;
    }
    std::fs::rename(&staging, repo)
        .with_context(|| format!("moving the snapshot to {}", repo.display()))?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if entry.file_name() == ".git" {
                continue;
            }
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `deny.toml` with the database path set under `[advisories]`.
fn with_db_path(config: &str, db_path: &Path) -> anyhow::Result<String> {
    if !config.contains("\n[advisories]\n") {
        bail!("deny.toml has no [advisories] section");
    }
    let path = db_path
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    Ok(config.replacen(
        "\n[advisories]\n",
        &format!("\n[advisories]\ndb-path = \"{path}\"\n"),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_date_is_read_from_its_note() {
        let text = "RustSec advisory database (CC0-1.0), a plain copy\ncommit bf5c0d2, dated 2026-08-21.\n";
        assert_eq!(snapshot_date(text).as_deref(), Some("2026-08-21"));
        assert_eq!(snapshot_date("no date here"), None);
    }

    #[test]
    fn the_database_path_goes_under_advisories() {
        let config = "[graph]\nx = 1\n\n[advisories]\nyanked = \"deny\"\n";
        let derived = with_db_path(config, Path::new("/t/dbs")).unwrap_or_default();
        assert!(derived.contains("[advisories]\ndb-path = \"/t/dbs\"\nyanked"));
        assert!(with_db_path("[graph]\n", Path::new("/t")).is_err());
    }
}
