//! `cargo fuzz` over every parser of outside input (`fuzz/`, a cargo-fuzz project outside the
//! workspace): a few seconds per target in `cargo xtask test`, minutes with `--reliability`.
//!
//! Seed corpora come from `events/` (and the example `sitefence.toml`); the growing corpus and
//! any crash input stay under `target/reliability/`. The targets are built without a sanitizer:
//! the code under test is safe Rust, so what fuzzing can find is a panic, an abort, a hang or an
//! allocation blow-up, which libFuzzer reports without one, at several times the speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::workspace;

/// Each target, and where its seeds come from (files under the workspace root whose name
/// passes the filter).
type SeedFilter = fn(&str) -> bool;

const TARGETS: [(&str, &str, SeedFilter); 7] = [
    ("alertmanager_webhook", "events/fence", |name| {
        !name.contains("function-url") && name.ends_with(".json")
    }),
    ("function_url_event", "events/fence", |name| {
        name.contains("function-url")
    }),
    ("alarm_event", "events/route53", |name| {
        name.ends_with(".json")
    }),
    ("eventbridge_event", "events/vpc", |name| {
        name.ends_with(".json")
    }),
    ("basic_auth", "events/fence", |name| {
        name.contains("function-url")
    }),
    ("infinispan_response", "", |_| false),
    ("sitefence_toml", "infra", |name| name.ends_with(".toml")),
];

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    /// Executions each target was run for (`None`: for `seconds_per_target`).
    pub runs_per_target: Option<u64>,
    /// The time each target was given (a cap when `runs_per_target` is set).
    pub seconds_per_target: u64,
    pub build_seconds: f64,
    pub targets: Vec<TargetFigures>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetFigures {
    pub target: &'static str,
    pub seeds: usize,
    pub executions: u64,
    pub crashes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Figures {
    pub fn crashes(&self) -> u64 {
        self.targets.iter().map(|t| t.crashes).sum()
    }
}

/// The cargo-fuzz release the project uses; installed from crates.io when missing or older.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// `cargo fuzz` on the toolchain that runs xtask: without a sanitizer (the only nightly-only
/// part of cargo-fuzz), so a stable toolchain builds the targets. Their target directory sits
/// beside the workspace's, since cargo-fuzz's instrumentation flags would otherwise invalidate
/// the workspace's own builds.
fn cargo_fuzz(root: &Path, verb: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(workspace::cargo());
    command
        .current_dir(root)
        .env("CARGO_TARGET_DIR", workspace::target_dir()?.join("fuzz"))
        .args(["fuzz", verb, "--sanitizer", "none", "--debug-assertions"]);
    Ok(command)
}

/// cargo-fuzz is installed from crates.io when missing (idempotent: a present one is kept).
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let version = Command::new(workspace::cargo())
        .args(["fuzz", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if version.is_some_and(|v| v.ends_with(CARGO_FUZZ_VERSION)) {
        return Ok(());
    }
    eprintln!("reliability: installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io");
    workspace::run(Command::new(workspace::cargo()).args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
    .context("installing cargo-fuzz")
}

/// Copies a target's seeds into its corpus directory; returns how many there are.
fn seed(
    root: &Path,
    corpus: &Path,
    target: &str,
    dir: &str,
    keep: fn(&str) -> bool,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(corpus)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    if !dir.is_empty() {
        for entry in std::fs::read_dir(root.join(dir))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if keep(&name) {
                seeds.push((name, std::fs::read(&path)?));
            }
        }
    }
    match target {
        // The Authorization headers of the sample Function URL events.
        "basic_auth" => {
            let headers: Vec<(String, Vec<u8>)> = seeds
                .iter()
                .filter_map(|(name, bytes)| {
                    let event: serde_json::Value = serde_json::from_slice(bytes).ok()?;
                    let header = event["headers"]["authorization"].as_str()?;
                    Some((format!("{name}.authorization"), header.as_bytes().to_vec()))
                })
                .collect();
            seeds = headers;
            seeds.push(("no-password".into(), b"Basic c2l0ZWZlbmNl".to_vec()));
        }
        // What the Infinispan emulator and the facts file say the server answers (first byte:
        // whether the answer was 204).
        "infinispan_response" => {
            for (name, body) in [
                (
                    "take-offline",
                    "\0{\"actionTokens\":\"ok\",\"work\":\"Incorrect site name: site-x\"}",
                ),
                (
                    "backups",
                    "\0{\"site-b\":{\"status\":\"mixed\",\"online\":[\"work\"],\"offline\":[\"actionTokens\"],\"mixed\":[]}}",
                ),
                ("cache-backups", "\0{\"site-b\":{\"status\":\"online\"}}"),
                ("push-state", "\0{\"site-b\":\"SENDING\"}"),
                ("health", "\0HEALTHY"),
                ("no-content", "\x01"),
                (
                    "error",
                    "\0ISPN012010: Cache with name 'x' not found amongst the configured caches",
                ),
            ] {
                seeds.push((name.into(), body.as_bytes().to_vec()));
            }
        }
        _ => {}
    }
    for (name, bytes) in &seeds {
        std::fs::write(corpus.join(format!("seed-{name}")), bytes)?;
    }
    Ok(seeds.len())
}

/// `stat::number_of_executed_units: N` from libFuzzer's final stats.
fn executions(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("stat::number_of_executed_units:"))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// How long each target is fuzzed: for a time, or until a number of executions (the long run's
/// 10 million) with the time as a cap.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub per_target: Duration,
    pub runs: Option<u64>,
}

pub fn run(budget: Budget) -> anyhow::Result<Figures> {
    ensure_cargo_fuzz()?;
    let root = workspace::root();
    let base = workspace::target_dir()?.join("reliability");
    let build_started = Instant::now();
    workspace::run(&mut cargo_fuzz(&root, "build")?).context("building the fuzz targets")?;
    let per_target = budget.per_target;
    let mut figures = Figures {
        runs_per_target: budget.runs,
        seconds_per_target: per_target.as_secs(),
        build_seconds: build_started.elapsed().as_secs_f64(),
        targets: Vec::new(),
    };
    for (target, dir, keep) in TARGETS {
        let corpus = base.join("fuzz-corpus").join(target);
        let artifacts: PathBuf = base.join("fuzz-artifacts").join(target);
        std::fs::create_dir_all(&artifacts)?;
        let seeds = seed(&root, &corpus, target, dir, keep)?;
        let started = Instant::now();
        let mut command = cargo_fuzz(&root, "run")?;
        command
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={}", per_target.as_secs().max(1)));
        if let Some(runs) = budget.runs {
            command.arg(format!("-runs={runs}"));
        }
        let output = command
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            // Parsers of requests get at most a few MB; beyond that is the sender's limit.
            .arg("-max_len=65536")
            .arg("-rss_limit_mb=2048")
            .output()
            .with_context(|| format!("running fuzz target {target}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut figures_of = TargetFigures {
            target,
            seeds,
            executions: executions(&stderr),
            crashes: 0,
            seconds: started.elapsed().as_secs_f64(),
            failure: None,
        };
        if !output.status.success() {
            figures_of.crashes = 1;
            let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            figures_of.failure = Some(tail.join("\n"));
            eprintln!("fuzz target {target} failed:\n{}", tail.join("\n"));
        }
        eprintln!(
            "  fuzz {target:<22} {:>10} executions in {:.0} s, {} seeds, {} crash(es)",
            figures_of.executions, figures_of.seconds, seeds, figures_of.crashes
        );
        figures.targets.push(figures_of);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_executions_from_libfuzzers_final_stats() {
        let stderr = "#1024 pulse cov: 10\nstat::number_of_executed_units: 123456\nstat::average_exec_per_sec: 30864\n";
        assert_eq!(executions(stderr), 123_456);
        assert_eq!(executions("crashed before any stats"), 0);
    }
}
