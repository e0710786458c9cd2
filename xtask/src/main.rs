//! `cargo xtask`: the project's development tasks (sandbox, build, test, lint, drill, bench,
//! reliability), and the operator's commands of `sitefence` (crate `ops`) for a clone.

mod bench;
mod build;
mod drill;
mod lint;
#[cfg(test)]
mod readme_commands;
mod reliability;
mod sandbox_cmd;
mod supply_chain;
mod test_cmd;
// The drill and the linters install their tools through it; until they land it is unused.
#[allow(dead_code)]
mod tools;

// The operator's modules and the development support, under the names the tasks use.
use ops::{aws, config, deploy, manifests};
use testbed::{sandbox_world, workspace};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "sitefence: deploy, operate, rehearse and test two-site fencing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local AWS + Infinispan sandbox every test runs against.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Rehearse the failures end to end: sandbox, real Prometheus and Alertmanager, faults, timeline.
    Drill(drill::DrillArgs),
    /// The three functions as Lambda ZIPs (cargo-lambda), with sizes and SHA-256.
    Build(build::BuildArgs),
    /// Lint the generated IAM policies, alerting manifests and the CI workflows.
    Lint(lint::LintArgs),
    /// Format check, clippy, unit and integration tests (what CI runs).
    Test(test_cmd::TestArgs),
    /// cargo-deny: licences, bans, sources, and advisories against the RustSec snapshot (its date printed).
    SupplyChain,
    /// The operator's commands, as `sitefence` has them: deploy, destroy, manifests, site, route53.
    #[command(flatten)]
    Operate(ops::cli::Command),
    /// Interleavings, bad input, fault survival, fuzzing and the secrets check, with figures.
    Reliability(reliability::ReliabilityArgs),
    /// Rust vs the seeds' Python, side by side on the sandbox: cold start, warm latency, calls, RSS.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Start the sandbox in the background; returns when everything answers.
    Up(sandbox_cmd::UpArgs),
    /// Stop everything `up` started.
    Down(sandbox_cmd::DownArgs),
    /// What `up` runs in the background.
    #[command(hide = true)]
    Serve(sandbox_cmd::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sandbox(SandboxCommand::Up(args)) => sandbox_cmd::up(&args).map(|_| ()),
        Command::Sandbox(SandboxCommand::Down(args)) => sandbox_cmd::down(&args),
        Command::Sandbox(SandboxCommand::Serve(args)) => sandbox_cmd::serve(&args),
        Command::Drill(args) => drill::run(&args),
        Command::Test(args) => test_cmd::run(&args),
        Command::Reliability(args) => reliability::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Build(args) => build::run(&args).map(|artifacts| build::print(&artifacts)),
        Command::Operate(command) => ops::cli::run(command, build::default_out),
        Command::Lint(args) => lint::run(&args),
        Command::SupplyChain => supply_chain::run(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command tree only when it is parsed, and then panics: two arguments with
    /// one flag (`manifests` once had `--profile` as the alerting timings and, flattened from
    /// the AWS flags, as the AWS profile) broke the command for every user. This checks every
    /// subcommand at once.
    #[test]
    fn command_tree_has_no_clashing_or_malformed_arguments() {
        super::Cli::command().debug_assert();
    }
}
