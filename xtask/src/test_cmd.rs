//! `cargo xtask test`: the README's test command and what CI runs. Every stage runs, each is
//! timed, and the summary says which failed; the exit code is non-zero if any did.

use crate::workspace::{self, cargo};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct TestArgs {
    /// Stop at the first failing stage.
    #[arg(long)]
    pub fail_fast: bool,
    /// The long reliability run: 10,000 interleaving rounds and 10 million fuzz executions per
    /// target.
    #[arg(long)]
    pub reliability: bool,
}

struct Stage {
    name: &'static str,
    run: Box<dyn Fn() -> anyhow::Result<()>>,
}

fn cargo_stage(name: &'static str, args: &'static [&'static str]) -> Stage {
    Stage {
        name,
        run: Box::new(move || workspace::run(Command::new(cargo()).args(args))),
    }
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let stages = vec![
        cargo_stage("format", &["fmt", "--all", "--check"]),
        cargo_stage(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Stage {
            name: "python tools",
            run: Box::new(|| {
                let venv = pytools::Venv::locate();
                venv.ensure(pytools::MOTO)?;
                venv.ensure(pytools::SEED_PYTHON)?;
                Ok(())
            }),
        },
        Stage {
            name: "linters",
            run: Box::new(|| crate::lint::run(&crate::lint::LintArgs::default())),
        },
        Stage {
            name: "supply chain (cargo-deny)",
            run: Box::new(crate::supply_chain::run),
        },
        Stage {
            name: "unit and integration tests",
            run: Box::new(run_tests),
        },
        Stage {
            name: "drill (fast profile)",
            run: Box::new(|| crate::drill::run(&crate::drill::DrillArgs::fast_all())),
        },
        Stage {
            name: "reliability",
            run: Box::new({
                let long = args.reliability;
                move || {
                    crate::reliability::run(&crate::reliability::ReliabilityArgs::for_test(long))
                }
            }),
        },
    ];

    let started = Instant::now();
    let mut results = Vec::new();
    for stage in &stages {
        eprintln!("\n==> {}", stage.name);
        let stage_started = Instant::now();
        let outcome = (stage.run)();
        let seconds = stage_started.elapsed().as_secs_f64();
        if let Err(error) = &outcome {
            eprintln!("stage `{}` failed: {error:#}", stage.name);
        }
        let failed = outcome.is_err();
        results.push((stage.name, failed, seconds));
        if failed && args.fail_fast {
            break;
        }
    }

    eprintln!("\n{:<30} {:>8} {:>9}", "stage", "result", "seconds");
    for (name, failed, seconds) in &results {
        eprintln!(
            "{name:<30} {:>8} {seconds:>9.1}",
            if *failed { "FAILED" } else { "ok" }
        );
    }
    let failed = results.iter().filter(|(_, failed, _)| *failed).count();
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    if failed > 0 {
        anyhow::bail!("{failed} stage(s) failed");
    }
    Ok(())
}

/// nextest when installed (it runs each test in its own process, in parallel), else cargo test.
fn run_tests() -> anyhow::Result<()> {
    let has_nextest = Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if has_nextest {
        workspace::run(Command::new(cargo()).args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--profile",
            "ci",
        ]))?;
        // nextest does not run doctests.
        workspace::run(Command::new(cargo()).args(["test", "--workspace", "--doc", "--quiet"]))
    } else {
        workspace::run(Command::new(cargo()).args(["test", "--workspace", "--no-fail-fast"]))
    }
}
