//! `cargo xtask drill`: the whole chain on this machine, with the components production runs.
//! It starts the sandbox, real Prometheus and Alertmanager (one pair per site) configured by
//! `manifests`, injects each scenario's fault, prints a live timeline and a final table, and
//! stops everything it started — also on Ctrl-C. The exit code is non-zero if any scenario's
//! outcome is wrong.
//!
//! `judge` holds the verdicts and the timeline (pure), `observe` the sandbox controls and reads,
//! `alerting` the Prometheus/Alertmanager processes, `scenario` the faults and the watch loop.

mod alerting;
mod doctor;
mod judge;
mod observe;
mod scenario;

use crate::manifests::Profile;
use crate::sandbox_cmd::{self, DownArgs, UpArgs};
use crate::{tools, workspace};
use anyhow::{Context, bail};
use scenario::Scenario;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    All,
    Partition,
    PartitionMonitor,
    SiteDown,
    FlakyInfinispan,
    Route53,
    Vpc,
    Doctor,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DrillArgs {
    /// The scenario to run.
    #[arg(long, value_enum, default_value_t = Which::All)]
    pub scenario: Which,
    // As `manifests --timings`; `--profile` is the AWS profile in every command.
    /// Alerting timings: short ones (fence within seconds) or the seed's (production's).
    #[arg(long, value_enum, default_value_t = Profile::Fast)]
    pub timings: Profile,
    /// Also write the final table as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Working directory for the sandbox, the alerting configuration and every log
    /// (default: `drill/` in the cargo target directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl DrillArgs {
    /// What `cargo xtask test` runs.
    pub fn fast_all() -> DrillArgs {
        DrillArgs {
            scenario: Which::All,
            timings: Profile::Fast,
            json: None,
            dir: None,
        }
    }

    fn scenarios(&self) -> Vec<Scenario> {
        match self.scenario {
            Which::All => Scenario::ALL.to_vec(),
            Which::Partition => vec![Scenario::Partition],
            Which::PartitionMonitor => vec![Scenario::PartitionMonitor],
            Which::SiteDown => vec![Scenario::SiteDown],
            Which::FlakyInfinispan => vec![Scenario::FlakyInfinispan],
            Which::Route53 => vec![Scenario::Route53],
            Which::Vpc => vec![Scenario::Vpc],
            Which::Doctor => vec![Scenario::Doctor],
        }
    }
}

pub fn run(args: &DrillArgs) -> anyhow::Result<()> {
    tools::ensure_apt(&[tools::PROMETHEUS, tools::ALERTMANAGER])
        .context("Prometheus and Alertmanager are needed for the drill")?;
    let dir = match &args.dir {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => std::env::current_dir()?.join(dir),
        None => workspace::target_dir()?.join("drill"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = runtime.block_on(drill(args, &dir))?;

    let table = judge::render_table(&format!("{:?}", args.timings).to_lowercase(), &rows);
    println!("\n{table}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("drill failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Stops the sandbox when dropped: at the end, on an error, and on Ctrl-C.
struct SandboxGuard(PathBuf);

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        let _ = sandbox_cmd::down(&DownArgs {
            dir: self.0.clone(),
        });
    }
}

async fn drill(args: &DrillArgs, dir: &Path) -> anyhow::Result<Vec<judge::Row>> {
    let interrupted = interrupted();
    tokio::pin!(interrupted);

    let up_args = UpArgs {
        dir: dir.to_path_buf(),
        world: sandbox_cmd::WorldArgs {
            ispn_version: "v15".to_string(),
            fence_instances: 2,
            push_delay_ms: 2000,
        },
        release: false,
    };
    let mut up = tokio::task::spawn_blocking(move || sandbox_cmd::up(&up_args));
    let info = tokio::select! {
        started = &mut up => started.context("starting the sandbox")??,
        _ = &mut interrupted => {
            // Wait for `up` to return so that whatever it started is stopped.
            if let Ok(Ok(_)) = up.await {
                let _ = sandbox_cmd::down(&DownArgs { dir: dir.to_path_buf() });
            }
            bail!("interrupted");
        }
    };
    let _sandbox = SandboxGuard(dir.to_path_buf());
    // The drill runs what deploy deployed: say so, per function.
    println!("functions, as deployed into the sandbox by `cargo xtask deploy`:");
    for (function, source) in &info.configuration_sources {
        println!("  {function}: configuration read from {source}");
    }

    let scenarios = async {
        let sandbox = observe::Sandbox::connect(info, dir).await?;
        let mut rows = Vec::new();
        for scenario in args.scenarios() {
            // A scenario that cannot run is a failed row; the others still run.
            let row = match scenario::run(&sandbox, scenario, args.timings, dir).await {
                Ok(row) => row,
                Err(error) => {
                    println!("  ERROR: {error:#}");
                    judge::Row::failed(scenario.name(), &format!("{error:#}"))
                }
            };
            rows.push(row);
        }
        anyhow::Ok(rows)
    };
    // Dropping the scenarios' future on Ctrl-C drops the Prometheus/Alertmanager processes'
    // guard, and `_sandbox` stops the sandbox on the way out.
    tokio::select! {
        rows = scenarios => rows,
        _ = &mut interrupted => bail!("interrupted: stopped everything the drill started"),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
