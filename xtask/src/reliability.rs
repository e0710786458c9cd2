//! The reliability and security suite (`cargo xtask reliability`, and a stage of
//! `cargo xtask test`; `cargo xtask test --reliability` runs the long version):
//!
//! * [`interleaving`]: rounds of concurrent, repeated and mid-sync reports with random faults
//!   and inputs that change mid-round, against the real fence binary with the reserved
//!   concurrency deploy gives it, on every shape of accelerator ([`shapes`]), sent as
//!   Alertmanager sends them ([`alertmanager`]); invariants checked after every round;
//! * [`bad_input`]: a catalogue of malformed requests and the status each must get;
//! * [`faults`]: the fault-survival table (one fault at a time, then the retry);
//! * [`fuzz`]: `cargo fuzz` over every parser of outside input;
//! * [`secrets`]: every log line the suite's worlds wrote, scanned for every secret they used.
//!
//! Figures go to stderr and to `target/reliability/figures.json`.

mod alertmanager;
mod bad_input;
mod faults;
mod fuzz;
mod interleaving;
mod lab;
mod secrets;
pub(crate) mod shapes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::workspace;
use lab::{FenceSetup, Lab};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Interleaving,
    BadInput,
    Faults,
    Fuzz,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReliabilityArgs {
    /// Interleaving rounds.
    #[arg(long, default_value_t = 500)]
    pub rounds: u64,
    /// Independent sandbox worlds the rounds are spread over (each runs one round at a time).
    #[arg(long, default_value_t = 3)]
    pub worlds: usize,
    /// Seconds of fuzzing per target (a cap when `--fuzz-runs` is given).
    #[arg(long, default_value_t = 5)]
    pub fuzz_seconds: u64,
    /// Fuzz each target for this many executions (the long run: 10 million).
    #[arg(long)]
    pub fuzz_runs: Option<u64>,
    /// Seed of the random scenarios (a random one when absent; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only these parts (the secrets check of what they logged always runs).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
}

impl ReliabilityArgs {
    /// What `cargo xtask test` runs: the CI size, or the long run with `--reliability`.
    pub fn for_test(long: bool) -> ReliabilityArgs {
        ReliabilityArgs {
            rounds: if long { 10_000 } else { 500 },
            worlds: 3,
            // The long run stops each target at 10 million executions, or after an hour.
            fuzz_seconds: if long { 3600 } else { 5 },
            fuzz_runs: long.then_some(10_000_000),
            seed: None,
            only: Vec::new(),
        }
    }

    fn wants(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

/// Every figure of a run, as RELIABILITY.md reports them.
#[derive(Debug, Default, Serialize)]
struct Figures {
    seed: u64,
    interleaving: Option<interleaving::Figures>,
    bad_input: Option<bad_input::Figures>,
    faults: Option<faults::Figures>,
    fuzz: Option<fuzz::Figures>,
    secrets: Option<secrets::Figures>,
    seconds: f64,
}

pub fn run(args: &ReliabilityArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    eprintln!("reliability: seed {seed} (reproduce with --seed {seed})");
    let mut figures = Figures {
        seed,
        ..Figures::default()
    };
    let mut failures = Vec::new();

    let needs_sandbox =
        args.wants(Part::Interleaving) || args.wants(Part::BadInput) || args.wants(Part::Faults);
    if needs_sandbox {
        let fence = build_fence()?;
        pytools::Venv::locate()
            .ensure(pytools::MOTO)
            .context("installing moto into the project virtualenv")?;
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(run_in_sandbox(
            args,
            seed,
            &fence,
            &mut figures,
            &mut failures,
        ))?;
    }
    if args.wants(Part::Fuzz) {
        let fuzzed = fuzz::run(fuzz::Budget {
            per_target: Duration::from_secs(args.fuzz_seconds),
            runs: args.fuzz_runs,
        })?;
        if fuzzed.crashes() > 0 {
            failures.push(format!("fuzzing found {} crash(es)", fuzzed.crashes()));
        }
        figures.fuzz = Some(fuzzed);
    }
    figures.seconds = started.elapsed().as_secs_f64();

    let path = figures_path()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "reliability: figures in {} ({:.0} s)",
        path.display(),
        figures.seconds
    );
    if !failures.is_empty() {
        anyhow::bail!("reliability suite failed:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

async fn run_in_sandbox(
    args: &ReliabilityArgs,
    seed: u64,
    fence: &Path,
    figures: &mut Figures,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let base = workspace::target_dir()?.join("reliability");
    let mut log_dirs = Vec::new();
    let mut secrets_used = Vec::new();

    if args.wants(Part::Interleaving) && args.rounds > 0 {
        let worlds = args.worlds.max(1);
        let started = Instant::now();
        let mut starting = tokio::task::JoinSet::new();
        for index in 0..worlds {
            let dir = base.join(format!("interleaving-{index}"));
            let fence = fence.to_path_buf();
            starting.spawn(async move {
                let mut lab = Lab::start(&dir, &fence, &FenceSetup::default()).await?;
                lab.make_shapes().await?;
                Ok::<_, anyhow::Error>(lab)
            });
        }
        let mut labs = Vec::new();
        while let Some(lab) = starting.join_next().await {
            labs.push(Arc::new(lab??));
        }
        eprintln!(
            "reliability: {worlds} worlds up in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let result = interleaving::run(&labs, args.rounds, seed).await;
        for lab in labs {
            log_dirs.push(lab.dir.join("logs"));
            secrets_used.extend(lab.secrets());
            if let Ok(lab) = Arc::try_unwrap(lab) {
                lab.shutdown().await;
            }
        }
        let result = result?;
        eprintln!(
            "reliability: interleaving {} rounds in {:.1} s on {} worlds (reserved concurrency {}), {} reports ({} retries after 5xx, {} lost to 429; {} rounds with every report lost to 429), {} rounds with inputs changing, {} with a flood ({} of {} requests throttled), {} rounds with violations, {} inputs with more than one outcome",
            result.rounds,
            result.seconds,
            result.worlds,
            result.reserved_concurrency,
            result.reports_sent,
            result.retries_after_5xx,
            result.reports_lost_to_429,
            result.rounds_all_reports_throttled,
            result.rounds_with_changes,
            result.rounds_with_flood,
            result.flood_throttled,
            result.flood_requests,
            result.violations,
            result.inputs_with_several_outcomes
        );
        for (shape, figures) in &result.by_shape {
            eprintln!(
                "  {shape:<52} {:>4} rounds ({} with inputs changing), {:>5} reports, {} with violations",
                figures.rounds,
                figures.rounds_with_changes,
                figures.reports_sent,
                figures.violations
            );
        }
        eprintln!(
            "  answers by status: {:?}; decision record calls: {:?}",
            result.answers, result.record_calls
        );
        for violation in &result.first_violations {
            eprintln!("  violation: {violation}");
        }
        if result.violations > 0 || result.inputs_with_several_outcomes > 0 {
            failures.push(format!(
                "interleaving: {} of {} rounds violated an invariant",
                result.violations, result.rounds
            ));
        }
        figures.interleaving = Some(result);
    }

    if args.wants(Part::BadInput) {
        let lab = Lab::start(&base.join("bad-input"), fence, &FenceSetup::default()).await?;
        let result = bad_input::run(&lab).await;
        log_dirs.push(lab.dir.join("logs"));
        secrets_used.extend(lab.secrets());
        lab.shutdown().await;
        let result = result?;
        eprintln!(
            "reliability: bad input: {} requests, {} wrong answers",
            result.tried, result.wrong
        );
        for wrong in &result.wrong_answers {
            eprintln!("  wrong answer: {wrong}");
        }
        if result.wrong > 0 {
            failures.push(format!("bad input: {} wrong answers", result.wrong));
        }
        figures.bad_input = Some(result);
    }

    if args.wants(Part::Faults) {
        let (result, dirs, secrets) = faults::run(&base, fence).await?;
        log_dirs.extend(dirs);
        secrets_used.extend(secrets);
        eprintln!(
            "reliability: faults: {} of {} survived",
            result.survived,
            result.rows.len()
        );
        for row in &result.rows {
            eprintln!("  {:<58} {}", row.fault, row.result);
        }
        if result.survived < result.rows.len() {
            failures.push(format!(
                "faults: {} of {} not survived",
                result.rows.len() - result.survived,
                result.rows.len()
            ));
        }
        figures.faults = Some(result);
    }

    let scanned = secrets::scan(&log_dirs, &secrets_used)?;
    eprintln!(
        "reliability: secrets: {} log lines in {} files scanned for {} values, {} hits",
        scanned.lines, scanned.files, scanned.values, scanned.hits
    );
    for hit in &scanned.first_hits {
        eprintln!("  secret in a log: {hit}");
    }
    if scanned.hits > 0 {
        failures.push(format!("secrets: {} log lines hold a secret", scanned.hits));
    }
    figures.secrets = Some(scanned);
    Ok(())
}

/// Builds the fence's bootstrap binary (dev profile, with the workspace's one feature
/// resolution) and returns its path.
fn build_fence() -> anyhow::Result<PathBuf> {
    Ok(workspace::build_sandbox_binaries(false)?.join("fence-lambda"))
}

fn figures_path() -> anyhow::Result<PathBuf> {
    Ok(workspace::target_dir()?
        .join("reliability")
        .join("figures.json"))
}
