//! `cargo xtask bench [--json FILE] [--latency-ms N]`: the Rust functions (release build) and
//! the seeds' Python functions (unchanged, boto3 through awslambdaric), side by side on one
//! sandbox and the same events, each behind its own Runtime API host, measured A/B alternating
//! in one run: cold start, warm latency p50/p99, remote calls counted by the emulators, peak
//! RSS, ZIP size, and Python ÷ Rust ratios.

mod artifacts;
mod measure;
mod report;

use crate::workspace;
use anyhow::Context;
use measure::{Bench, Function, Side, Subject};
use report::{Comparison, Figures, Report};
use sandbox::world::{FunctionCode, FunctionOptions, World, WorldOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Write the whole report (figures, ratios, targets, machine, date) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also measure with N ms added by the emulators to every remote call (as on real AWS);
    /// the run without added latency always happens and both are reported (`by_latency`).
    #[arg(long, value_name = "N")]
    pub latency_ms: Option<u64>,
    /// Warm invocations per function, implementation and latency.
    #[arg(long, default_value_t = 100)]
    pub invocations: usize,
    /// Cold starts per function, implementation and latency.
    #[arg(long, default_value_t = 5)]
    pub cold_starts: usize,
    /// Resent reports per function, implementation and latency, each after a first report
    /// (the fence's decision recorded, the Route 53 health check pinned).
    #[arg(long, default_value_t = 10)]
    pub resends: usize,
    /// Also write the Markdown tables (as in BENCHMARKS.md) to FILE.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Measure the release binaries as they are, without running `cargo build --release`.
    #[arg(long)]
    pub no_build: bool,
    /// Where the functions' binaries are (default: the target directory's `release/`), e.g.
    /// to measure another build; implies `--no-build`.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Extra environment for the Rust functions, e.g. `TOPOLOGY_TTL_SECONDS=0` to measure a
    /// fence without its warm cache (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub rust_env: Vec<(String, String)>,
}

fn parse_env(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{pair}`")),
    }
}

/// The Rust functions measured, by crate, with the seed each is compared with.
const PAIRS: [(&str, &str, &str); 2] = [
    (report::FENCE, "fence-lambda", "seed_fence_lambda"),
    (
        report::ROUTE53,
        "route53-failover-lambda",
        "seed_route53_lambda",
    ),
];
const FENCE_EVENT: &str = "events/fence/site-b-offline-reported-by-site-a.json";
const ROUTE53_EVENT: &str = "events/route53/sns-alarm.json";
const ROUTE53_OK_EVENT: &str = "events/route53/sns-ok.json";
const VPC_EVENT: &str = "events/vpc/primary-stopped.json";
/// The VPC function, measured alone: no seed in `../shared/peers` replaces it.
const VPC_CRATE: &str = "vpc-route-failover-lambda";

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let root = workspace::root();
    if !args.no_build && args.bin_dir.is_none() {
        eprintln!("bench: building the workspace (release): the functions and the emulators");
        workspace::build_sandbox_binaries(true)?;
    }
    if cfg!(debug_assertions) {
        // The emulators and the Runtime API host run in this process and measure the
        // functions; as a debug build they add about 2.5 ms to every warm invocation.
        let release = workspace::target_dir()?.join("release").join("xtask");
        if release.is_file() {
            eprintln!("bench: measuring from the release build of xtask");
            let mut measure = Command::new(&release);
            measure.args(std::env::args_os().skip(1));
            if !args.no_build {
                measure.arg("--no-build");
            }
            return workspace::run(&mut measure);
        }
        eprintln!(
            "bench: NOT REPRESENTATIVE: no release build of xtask ({}), so the emulators run as \
             a debug build; run without --no-build to build it",
            release.display()
        );
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => workspace::target_dir()?.join("release"),
    };
    let scratch = workspace::target_dir()?.join("bench");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let peers = peers_dir();
    if peers.is_none() {
        eprintln!(
            "bench: NOT MEASURED: the seeds' Python functions are absent (set SITEFENCE_PEERS_DIR); \
             only the Rust side is measured and no ratio is given"
        );
    }
    let fence_event = read(&root.join(FENCE_EVENT))?;
    let route53_event = read(&root.join(ROUTE53_EVENT))?;
    let route53_ok_event = read(&root.join(ROUTE53_OK_EVENT))?;
    let vpc_event = read(&root.join(VPC_EVENT))?;
    let mut latencies = vec![0];
    latencies.extend(args.latency_ms.filter(|ms| *ms > 0));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let runs = runtime.block_on(async {
        let mut options = WorldOptions::new(scratch.join("sandbox"));
        use crate::deploy::plan::Function;
        use crate::sandbox_world::deploy_environment;
        let bootstrap = |krate: &str, function: Function| FunctionOptions {
            timeout: Duration::from_secs(60),
            extra_env: args.rust_env.clone(),
            ..FunctionOptions::bootstrap(bin_dir.join(krate))
                .with_environment(deploy_environment(function))
        };
        options.fence = Some(bootstrap(PAIRS[0].1, Function::Fence));
        options.route53 = Some(bootstrap(PAIRS[1].1, Function::Route53));
        options.vpc = Some(bootstrap(VPC_CRATE, Function::Vpc));
        if let Some(peers) = &peers {
            let seed = |module: &str| FunctionOptions {
                code: FunctionCode::SeedPython {
                    peers_dir: peers.clone(),
                    module: module.to_owned(),
                },
                extra_env: Vec::new(),
                ..FunctionOptions::bootstrap("unused")
            };
            let seed =
                |module: &str, environment: Option<sandbox::world::Environment>| FunctionOptions {
                    environment,
                    timeout: Duration::from_secs(60),
                    ..seed(module)
                };
            options.extra_fences.push(seed(
                PAIRS[0].2,
                Some(std::sync::Arc::new(sandbox::world::seed_fence_environment)),
            ));
            options.extra_route53.push(seed(PAIRS[1].2, None));
        }
        eprintln!("bench: starting the sandbox");
        let world = World::start(options)
            .await
            .context("starting the sandbox")?;
        let measured = measure_all(
            &world,
            &scratch.join("sandbox"),
            args,
            &latencies,
            peers.is_some(),
            &measure::Events {
                fence: &fence_event,
                route53: &route53_event,
                route53_ok: &route53_ok_event,
                vpc: &vpc_event,
            },
        )
        .await;
        world.shutdown().await;
        measured
    })?;

    let python = pytools::Venv::locate().python();
    let mut zips = BTreeMap::new();
    let with_seeds = PAIRS.map(|(function, krate, module)| (function, krate, Some(module)));
    for (function, krate, module) in with_seeds
        .into_iter()
        .chain([(report::VPC, VPC_CRATE, None)])
    {
        let rust = artifacts::zip_size(
            &python,
            &bin_dir.join(krate),
            "bootstrap",
            &scratch.join(format!("{krate}.zip")),
        )?;
        let seed = match (&peers, module) {
            (Some(peers), Some(module)) => artifacts::zip_size(
                &python,
                &peers.join(format!("{module}.py")),
                &format!("{module}.py"),
                &scratch.join(format!("{module}.zip")),
            )?,
            _ => 0,
        };
        zips.insert(function, (rust, seed));
    }

    let mut comparisons = BTreeMap::new();
    for (latency, samples) in runs {
        let mut rust = BTreeMap::new();
        let mut seed = BTreeMap::new();
        for ((side, function), samples) in samples {
            let name = match function {
                Function::Fence => report::FENCE,
                Function::Route53 => report::ROUTE53,
                Function::Vpc => report::VPC,
            };
            let (rust_zip, seed_zip) = zips.get(name).copied().unwrap_or_default();
            let (into, zip) = match side {
                Side::Rust => (&mut rust, rust_zip),
                Side::Python => (&mut seed, seed_zip),
            };
            let figures = Figures::summarise(latency, &samples, zip)
                .with_context(|| format!("no samples for {side:?} {function:?}"))?;
            into.insert(name.to_owned(), figures);
        }
        comparisons.insert(latency, Comparison::new(rust, seed));
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let report = Report {
        machine: artifacts::machine(),
        date: report::utc_date(now),
        headline: comparisons.get(&0).cloned().unwrap_or_default(),
        by_latency: match args.latency_ms {
            Some(_) => comparisons
                .iter()
                .map(|(latency, run)| (latency.to_string(), run.clone()))
                .collect(),
            None => BTreeMap::new(),
        },
        targets: report::check_targets(&comparisons),
        release_profile: artifacts::release_profile(&read(&root.join("Cargo.toml"))?),
        invocations: args.invocations,
    };
    let table = report::markdown(&report);
    println!("{table}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    let missed: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| !t.met)
        .map(|t| t.target.as_str())
        .collect();
    if !missed.is_empty() {
        eprintln!("bench: targets NOT met: {}", missed.join("; "));
    }
    Ok(())
}

type RunSamples = BTreeMap<(Side, Function), report::Samples>;

/// Every latency, every function: Rust and Python alternating.
async fn measure_all(
    world: &World,
    dir: &Path,
    args: &BenchArgs,
    latencies: &[u64],
    with_seed: bool,
    events: &measure::Events<'_>,
) -> anyhow::Result<BTreeMap<u64, RunSamples>> {
    let mut bench = Bench::new(world, dir, events).await?;
    let subjects = bench.subjects(with_seed)?;
    let mut runs = BTreeMap::new();
    for &latency in latencies {
        bench.set_latency(latency).await?;
        let mut samples = RunSamples::new();
        for function in [Function::Fence, Function::Route53, Function::Vpc] {
            let pair: Vec<Subject> = subjects
                .iter()
                .filter(|s| s.function == function)
                .cloned()
                .collect();
            eprintln!(
                "bench: {function:?} at {latency} ms: {} cold starts, {} warm invocations and \
                 {} resends each",
                args.cold_starts, args.invocations, args.resends
            );
            let measured = measure::measure_pair(
                &bench,
                &pair,
                args.cold_starts,
                args.invocations,
                args.resends,
            )
            .await?;
            for (subject, subject_samples) in pair.iter().zip(measured) {
                samples.insert((subject.side, subject.function), subject_samples);
            }
        }
        runs.insert(latency, samples);
    }
    bench.set_latency(0).await?;
    Ok(runs)
}

/// The seeds' Python functions: `SITEFENCE_PEERS_DIR`, or `shared/peers` beside the clone.
fn peers_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SITEFENCE_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("../shared/peers"));
    PAIRS
        .iter()
        .all(|(_, _, module)| dir.join(format!("{module}.py")).is_file())
        .then_some(dir)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
