//! `cargo xtask`: the operator's tool and every project task.

mod aws;
mod bench;
mod build;
mod config;
mod deploy;
mod drill;
mod lint;
mod manifests;
#[cfg(test)]
mod readme_commands;
mod reliability;
mod sandbox_cmd;
mod sandbox_world;
mod site;
mod test_cmd;
// The drill and the linters install their tools through it; until they land it is unused.
#[allow(dead_code)]
mod tools;
mod workspace;

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
    /// Alerting manifests per site: Kubernetes (Prometheus operator) and plain Prometheus/Alertmanager.
    Manifests(manifests::ManifestArgs),
    /// Rehearse the failures end to end: sandbox, real Prometheus and Alertmanager, faults, timeline.
    Drill(drill::DrillArgs),
    /// The three functions as Lambda ZIPs (cargo-lambda), with sizes and SHA-256.
    Build(build::BuildArgs),
    /// Create or update everything the functions need in AWS (idempotent; `--dry-run` shows the plan).
    Deploy(deploy::DeployArgs),
    /// Remove everything `deploy` created (and nothing else).
    Destroy(deploy::DestroyArgs),
    /// Lint the generated IAM policies, alerting manifests and the CI workflows.
    Lint(lint::LintArgs),
    /// Format check, clippy, unit and integration tests (what CI runs).
    Test(test_cmd::TestArgs),
    /// After a fence or for maintenance: status, take-offline, sync, bring-online (HA guide).
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Route 53 health checks: fail back after a failover.
    #[command(subcommand)]
    Route53(site::failback::Route53Command),
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
        Command::Manifests(args) => {
            for path in manifests::run(&args)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Drill(args) => drill::run(&args),
        Command::Test(args) => test_cmd::run(&args),
        Command::Site(command) => site::run(command),
        Command::Route53(command) => site::failback::run(command),
        Command::Reliability(args) => reliability::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Build(args) => build::run(&args).map(|artifacts| build::print(&artifacts)),
        Command::Deploy(args) => deploy::run(&args),
        Command::Destroy(args) => deploy::destroy(&args),
        Command::Lint(args) => lint::run(&args),
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
