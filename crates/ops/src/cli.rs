//! The operator's commands, as `sitefence` and `cargo xtask` both offer them.

use crate::artifacts::Arch;
use crate::{deploy, doctor, manifests, site};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create or update everything the functions need in AWS (idempotent; `--dry-run` shows the plan).
    Deploy(deploy::DeployArgs),
    /// Remove everything `deploy` created (and nothing else).
    Destroy(deploy::DestroyArgs),
    /// Prove every link of each function's chain against the live deployment, changing nothing:
    /// drift, a preflight through the Function URL, permissions, alerting, Route 53, VPC.
    Doctor(doctor::DoctorArgs),
    /// Alerting manifests per site: Kubernetes (Prometheus operator) and plain Prometheus/Alertmanager.
    Manifests(manifests::ManifestArgs),
    /// After a fence or for maintenance: status, take-offline, sync, bring-online (HA guide).
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Route 53 health checks: fail back after a failover.
    #[command(subcommand)]
    Route53(site::failback::Route53Command),
}

/// Runs one operator command. `default_zips` says where deploy finds the functions' ZIPs when
/// neither `--zips` nor the config names them.
pub fn run(
    command: Command,
    default_zips: impl FnOnce(Arch) -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    match command {
        Command::Deploy(args) => deploy::run(&args, default_zips),
        Command::Destroy(args) => deploy::destroy(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Manifests(args) => {
            for path in manifests::run(&args)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Site(command) => site::run(command),
        Command::Route53(command) => site::failback::run(command),
    }
}
