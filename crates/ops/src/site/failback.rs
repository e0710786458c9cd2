//! `cargo xtask route53 failback --health-check-id ID`: the operator's end of a Route 53
//! failover (seed 000). The failover function pointed the primary's health check at a path that
//! never answers, so traffic stays on the secondary; once the sites are in sync, this restores
//! the original path, guarded by `HealthCheckVersion` (`aws_topology::route53::failback`).

use anyhow::Context;
use aws_topology::route53::{self, HealthCheckId, HealthChecks, PathChange, PathStep};

use super::{Change, Target, carry_on};
use crate::aws;
use crate::config::Deployment;

#[derive(clap::Subcommand, Debug)]
pub enum Route53Command {
    /// Point a pinned health check back at its original path (`route53.original_path`).
    Failback(FailbackArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct FailbackArgs {
    /// The health check the failover function pinned.
    #[arg(long)]
    pub health_check_id: String,
    /// Fail back a health check that is not in `route53.health_check_ids`.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub change: Change,
}

pub fn run(command: Route53Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match command {
        Route53Command::Failback(args) => runtime.block_on(failback(&args)).map(drop),
    }
}

/// What `failback` did: `None` when the health check already probed the original path or
/// nothing was applied (`--dry-run`).
pub async fn failback(args: &FailbackArgs) -> anyhow::Result<Option<PathChange>> {
    let deployment = Deployment::load(&args.target.config)?;
    let id: HealthCheckId = args
        .health_check_id
        .parse()
        .map_err(|e| anyhow::anyhow!("--health-check-id: {e}"))?;
    let settings = deployment.route53.as_ref();
    if let Some(settings) = settings
        && !args.force
        && !settings.health_check_ids.iter().any(|h| h == id.as_str())
    {
        anyhow::bail!(
            "health check {id} is not one of route53.health_check_ids in {} ({}); pass --force to fail it back anyway. Nothing was changed",
            args.target.config.display(),
            settings.health_check_ids.join(", ")
        );
    }
    let region = settings
        .map(|s| s.region.clone())
        .unwrap_or_else(|| aws_topology::route53::ALARM_REGION.to_owned());
    let original = settings
        .map(|s| s.original_path.clone())
        .unwrap_or_else(|| route53::ORIGINAL_PATH.to_owned());
    let endpoint = args
        .target
        .aws
        .endpoint_url
        .clone()
        .or_else(|| deployment.endpoint_url.clone());
    let config = aws::load(&args.target.aws, endpoint, region).await;
    let client = aws_sdk_route53::Client::new(&config);

    let current = client.read(&id).await?;
    println!("plan: fail back Route 53 health check {id}");
    let step = route53::plan_path(&current, &original)?;
    if step == PathStep::AlreadySet {
        println!("  nothing to do: it already probes {original}");
        return Ok(None);
    }
    println!(
        "   1. set its path from {} to {original} (only if still at HealthCheckVersion {})",
        current.resource_path.as_deref().unwrap_or("(none)"),
        current.version
    );
    println!(
        "  note: fail back only once the sites are in sync (`cargo xtask site status`): Route 53 sends traffic back to the primary as soon as the health check passes"
    );
    if !carry_on(1, args.change)? {
        return Ok(None);
    }
    let change = route53::failback(&client, &id, &original).await?;
    match &change {
        PathChange::AlreadySet { path, .. } => println!("done: already at {path}"),
        PathChange::Changed {
            from,
            to,
            conflicts,
            ..
        } => println!(
            "done: {} → {to}{}",
            from.as_deref().unwrap_or("(none)"),
            if *conflicts > 0 {
                format!(" after {conflicts} concurrent change(s)")
            } else {
                String::new()
            }
        ),
    }
    Ok(Some(change))
}
