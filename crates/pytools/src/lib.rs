//! The project's Python virtualenv, where the sandbox and `cargo xtask` install the Python tools
//! they run (moto, the Lambda runtime interface client for the seeds' Python, linters). A crate of
//! its own: the emulators use the tools it installs, and installing them is not their job.
//!
//! Every requirement set is a constant here, so that one place says which versions the project
//! was checked against. [`Venv::ensure`] is idempotent, cheap when nothing is missing (a marker
//! file, no subprocess) and safe to call from parallel tests (an exclusive `flock` on a lock file
//! in the venv).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One Python distribution the project needs, as pip installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Requirement {
    name: &'static str,
    extra: Option<&'static str>,
    version: Option<&'static str>,
}

impl Requirement {
    /// Exactly this version: what the project's facts were checked against.
    pub const fn pinned(name: &'static str, version: &'static str) -> Self {
        Requirement {
            name,
            extra: None,
            version: Some(version),
        }
    }

    /// Whatever version pip picks (or one already installed).
    pub const fn any(name: &'static str) -> Self {
        Requirement {
            name,
            extra: None,
            version: None,
        }
    }

    /// With an optional feature set, e.g. moto's `server`.
    pub const fn with_extra(self, extra: &'static str) -> Self {
        Requirement {
            extra: Some(extra),
            ..self
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// The argument pip takes, e.g. `moto[server]==5.2.5`.
    pub fn pip_spec(&self) -> String {
        self.to_string()
    }

    fn satisfied_by(&self, installed_version: &str) -> bool {
        self.version
            .is_none_or(|wanted| wanted == installed_version)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(extra) = self.extra {
            write!(f, "[{extra}]")?;
        }
        if let Some(version) = self.version {
            write!(f, "=={version}")?;
        }
        Ok(())
    }
}

/// moto's standalone server (`moto_server`), the version the project's AWS facts were checked
/// against, and boto3 for the Python clients that talk to it.
pub const MOTO: &[Requirement] = &[
    Requirement::pinned("moto", "5.2.5").with_extra("server"),
    Requirement::any("boto3"),
];

/// What the seeds' Python functions need to run the way AWS runs them
/// (`python -m awslambdaric module.handler`).
pub const SEED_PYTHON: &[Requirement] = &[
    Requirement::pinned("awslambdaric", "4.2.2"),
    Requirement::any("boto3"),
];

/// cargo-lambda, which cross-builds the functions' Lambda ZIPs with zig (`cargo xtask build`).
pub const CARGO_LAMBDA: &[Requirement] = &[Requirement::pinned("cargo-lambda", "1.9.2")];

/// The IAM policy linter run on every policy `cargo xtask deploy` generates.
pub const PARLIAMENT: &[Requirement] = &[Requirement::pinned("parliament", "1.6.4")];
/// cfn-lint, which checks `deploy --emit cloudformation`'s templates against CloudFormation's
/// resource schemas (`cargo xtask lint`).
pub const CFN_LINT: &[Requirement] = &[Requirement::pinned("cfn-lint", "1.58.0")];
/// checkov, the policy scanner platform teams run over templates (`cargo xtask lint`, offline).
pub const CHECKOV: &[Requirement] = &[Requirement::pinned("checkov", "3.3.30")];

/// Validates Kubernetes core resources (the webhook Secret) offline against bundled schemas.
pub const KUBERNETES_VALIDATE: &[Requirement] =
    &[Requirement::pinned("kubernetes-validate", "1.37.0")];

const MARKER_FILE: &str = "sitefence-installed.txt";
const LOCK_FILE: &str = "sitefence.lock";
const PIP_LOG_FILE: &str = "sitefence-pip.log";
const TAIL_LINES: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error(
        "python3 not found: install Python 3.11 with pip (Debian: apt-get install python3 python3-venv), \
         or point SITEFENCE_VENV at an existing virtualenv"
    )]
    PythonNotFound,
    #[error(
        "creating the virtualenv {root} failed (Debian needs the python3-venv package); last lines:\n{tail}"
    )]
    CreateFailed { root: PathBuf, tail: String },
    #[error("pip install {specs} failed; full log in {log}, last lines:\n{tail}")]
    InstallFailed {
        specs: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "cannot read the installed packages of {root} ({detail}); remove the directory to rebuild the virtualenv"
    )]
    Unreadable { root: PathBuf, detail: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// The project-local virtualenv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    root: PathBuf,
}

impl Venv {
    /// `$SITEFENCE_VENV` if set, else `.venv` at the workspace root.
    pub fn locate() -> Venv {
        match std::env::var_os("SITEFENCE_VENV") {
            Some(dir) if !dir.is_empty() => Venv::at(dir),
            _ => Venv::at(workspace_root().join(".venv")),
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Venv {
        Venv { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }

    /// A console script installed into the venv, e.g. `moto_server`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// Where pip's output goes; the error of a failed install quotes its tail.
    pub fn pip_log(&self) -> PathBuf {
        self.root.join(PIP_LOG_FILE)
    }

    /// Creates the venv if absent and installs whatever of `requirements` is missing.
    ///
    /// Blocks (a first install takes about a minute); call it from a blocking context.
    pub fn ensure(&self, requirements: &[Requirement]) -> Result<(), VenvError> {
        if self.recorded_as_installed(requirements) {
            return Ok(());
        }
        fs::create_dir_all(&self.root).map_err(|source| VenvError::Io {
            action: "cannot create",
            path: self.root.clone(),
            source,
        })?;
        let _lock = self.lock()?;
        // Another process may have installed the same set while this one waited for the lock.
        if self.recorded_as_installed(requirements) {
            return Ok(());
        }
        if !self.python().exists() {
            self.create()?;
        }
        let installed = self.installed_versions()?;
        let recorded = self.recorded();
        let missing: Vec<&Requirement> = requirements
            .iter()
            .filter(|wanted| {
                let version_ok = installed
                    .iter()
                    .find(|(name, _)| normalize(name) == normalize(wanted.name))
                    .is_some_and(|(_, version)| wanted.satisfied_by(version));
                // An extra's dependencies do not show under the package's name in `pip list`:
                // only an install this code recorded proves them.
                let extra_ok = wanted.extra.is_none() || recorded.contains(&wanted.pip_spec());
                !(version_ok && extra_ok)
            })
            .collect();
        if !missing.is_empty() {
            self.pip_install(&missing)?;
        }
        let mut all = recorded;
        all.extend(requirements.iter().map(Requirement::pip_spec));
        self.record(&all)
    }

    fn lock(&self) -> Result<File, VenvError> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| VenvError::Io {
                action: "cannot open",
                path: path.clone(),
                source,
            })?;
        loop {
            // SAFETY: flock on a file descriptor this function owns; released when `file` closes.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(file);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(VenvError::Io {
                    action: "cannot lock",
                    path,
                    source: error,
                });
            }
        }
    }

    fn create(&self) -> Result<(), VenvError> {
        tracing::info!(venv = %self.root.display(), "creating virtualenv");
        let output = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&self.root)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| match error.kind() {
                io::ErrorKind::NotFound => VenvError::PythonNotFound,
                _ => VenvError::Io {
                    action: "cannot run python3 -m venv",
                    path: self.root.clone(),
                    source: error,
                },
            })?;
        if output.status.success() && self.python().exists() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(VenvError::CreateFailed {
            root: self.root.clone(),
            tail: tail_lines(&text, TAIL_LINES),
        })
    }

    fn installed_versions(&self) -> Result<Vec<(String, String)>, VenvError> {
        #[derive(serde::Deserialize)]
        struct Installed {
            name: String,
            version: String,
        }
        let unreadable = |detail: String| VenvError::Unreadable {
            root: self.root.clone(),
            detail,
        };
        let output = Command::new(self.python())
            .args(["-m", "pip", "list", "--format", "json"])
            .arg("--disable-pip-version-check")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| unreadable(format!("pip list: {error}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(unreadable(format!(
                "pip list {}: {}",
                output.status,
                tail_lines(&stderr, TAIL_LINES)
            )));
        }
        let installed: Vec<Installed> = serde_json::from_slice(&output.stdout)
            .map_err(|error| unreadable(format!("pip list output: {error}")))?;
        Ok(installed
            .into_iter()
            .map(|package| (package.name, package.version))
            .collect())
    }

    fn pip_install(&self, missing: &[&Requirement]) -> Result<(), VenvError> {
        let specs: Vec<String> = missing.iter().map(|r| r.pip_spec()).collect();
        let log_path = self.pip_log();
        let io_error = |action, source| VenvError::Io {
            action,
            path: log_path.clone(),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_error("cannot open", e))?;
        let log_start = log
            .seek(SeekFrom::End(0))
            .map_err(|e| io_error("cannot seek", e))?;
        let log_err = log.try_clone().map_err(|e| io_error("cannot open", e))?;
        tracing::info!(venv = %self.root.display(), requirements = %specs.join(" "), "pip install");
        let started = std::time::Instant::now();
        let status = Command::new(self.python())
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(&specs)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .status()
            .map_err(|error| VenvError::InstallFailed {
                specs: specs.join(" "),
                log: log_path.clone(),
                tail: error.to_string(),
            })?;
        tracing::info!(
            venv = %self.root.display(),
            seconds = started.elapsed().as_secs_f64(),
            success = status.success(),
            "pip install finished"
        );
        if status.success() {
            return Ok(());
        }
        Err(VenvError::InstallFailed {
            specs: specs.join(" "),
            tail: read_tail_from(&log_path, log_start),
            log: log_path,
        })
    }

    fn recorded(&self) -> BTreeSet<String> {
        fs::read_to_string(self.root.join(MARKER_FILE))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn recorded_as_installed(&self, requirements: &[Requirement]) -> bool {
        if !self.python().exists() {
            return false;
        }
        let recorded = self.recorded();
        requirements
            .iter()
            .all(|wanted| recorded.contains(&wanted.pip_spec()))
    }

    fn record(&self, specs: &BTreeSet<String>) -> Result<(), VenvError> {
        let marker = self.root.join(MARKER_FILE);
        // Readers take no lock: write aside and rename so that they never see half a file.
        let temporary = self
            .root
            .join(format!("{MARKER_FILE}.{}", std::process::id()));
        let text: String = specs.iter().map(|spec| format!("{spec}\n")).collect();
        fs::write(&temporary, text).map_err(|source| VenvError::Io {
            action: "cannot write",
            path: temporary.clone(),
            source,
        })?;
        fs::rename(&temporary, &marker).map_err(|source| VenvError::Io {
            action: "cannot write",
            path: marker,
            source,
        })
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// pip compares names case-insensitively with `-`, `_` and `.` equivalent (PEP 503).
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last lines a process wrote to `path` after byte `start`.
pub fn read_tail_from(path: &Path, start: u64) -> String {
    tail_lines(&read_since(path, start), TAIL_LINES)
}

/// What a process wrote to `path` after byte `start`.
pub fn read_since(path: &Path, start: u64) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(start))?;
        file.read_to_end(&mut text)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_spec_carries_extra_and_pin() {
        assert_eq!(MOTO[0].pip_spec(), "moto[server]==5.2.5");
        assert_eq!(Requirement::any("boto3").pip_spec(), "boto3");
    }

    #[test]
    fn package_names_compare_like_pip() {
        assert_eq!(normalize("Flask_Cors"), normalize("flask-cors"));
        assert_eq!(normalize("zope.interface"), normalize("zope-interface"));
    }

    #[test]
    fn unpinned_requirement_accepts_any_version() {
        assert!(Requirement::any("boto3").satisfied_by("1.0.0"));
        assert!(!Requirement::pinned("moto", "5.2.5").satisfied_by("5.2.4"));
    }

    #[test]
    fn missing_python_in_venv_means_not_installed() {
        let venv = Venv::at(std::env::temp_dir().join("sitefence-no-such-venv"));
        assert!(!venv.recorded_as_installed(MOTO));
    }
}
