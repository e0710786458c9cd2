//! `cargo xtask site status|take-offline|sync|bring-online`: the HA guide's procedures after a
//! fence or for maintenance (seed 004: chapter 16 take a site offline, chapter 15 synchronize
//! the sites, chapter 8 bring a site online), as commands that observe, plan, show the plan, ask,
//! and only then change anything. Plans are pure functions of what was observed, so a command
//! run twice does nothing the second time and a command interrupted half-way is finished by
//! running it again.

pub mod apply;
pub mod failback;
pub mod history;
pub mod model;
pub mod observe;
pub mod plan;
pub mod render;
pub mod verdict;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use common::site::SiteName;

use crate::aws::AwsArgs;
use apply::{Applied, Waiting};
use model::Observed;
use observe::Ctx;
use plan::Plan;

#[derive(clap::Subcommand, Debug)]
pub enum SiteCommand {
    /// Per listener, each endpoint group (region, traffic dial) and its sites (weight, health,
    /// whether they take traffic); each site's x-site status per cache and push status; the
    /// fence's decision records and whether each stands; and a one-line verdict: healthy /
    /// fenced / split / inconsistent.
    Status(StatusArgs),
    /// Remove a site from the Global Accelerator (HA guide, chapter 16).
    TakeOffline(TakeOfflineArgs),
    /// Make a stale site a copy of the good one (chapter 15): take offline, clear, bring online,
    /// push state, wait, clear the push status.
    Sync(SyncArgs),
    /// Add a site back to the Global Accelerator with weight 128 and open the traffic dials the
    /// fence closed for it (chapter 8), once in sync; then close the fence's decision record.
    BringOnline(BringOnlineArgs),
    /// The fence's recorded decisions, newest first: when, the reporters, the survivor, the
    /// rule, the steps done and the time to complete, the mode, closed or standing.
    History(history::HistoryArgs),
}

/// Where the deployment is described, and the AWS flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The deployment (`cargo xtask sandbox up --dir DIR` writes DIR/sitefence.toml).
    #[arg(long, default_value = "sitefence.toml")]
    pub config: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// How a command that changes something asks first.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct Change {
    /// Apply the plan without asking.
    #[arg(long)]
    pub yes: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TakeOfflineArgs {
    /// The site to take out of the Global Accelerator.
    pub site: String,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub change: Change,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SyncArgs {
    /// The site users work on: its data is kept and pushed.
    #[arg(long)]
    pub from: String,
    /// The site that was out: its caches are cleared and filled from --from.
    #[arg(long)]
    pub to: String,
    /// How long to wait for the push to finish.
    #[arg(long, default_value_t = 1800)]
    pub timeout_seconds: u64,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub change: Change,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BringOnlineArgs {
    /// The site to add back to the Global Accelerator.
    pub site: String,
    /// Bring it online even though the sites are not in sync (users may see stale data).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub change: Change,
}

pub fn run(command: SiteCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            SiteCommand::Status(args) => {
                let ctx = Ctx::load(&args.target.config, &args.target.aws).await?;
                status(&ctx).await.map(drop)
            }
            SiteCommand::TakeOffline(args) => {
                let ctx = Ctx::load(&args.target.config, &args.target.aws).await?;
                take_offline(&ctx, &site_name(&args.site)?, args.change)
                    .await
                    .map(drop)
            }
            SiteCommand::Sync(args) => {
                let ctx = Ctx::load(&args.target.config, &args.target.aws).await?;
                let waiting = Waiting {
                    timeout: Duration::from_secs(args.timeout_seconds),
                    poll: Duration::from_secs(1),
                };
                sync(
                    &ctx,
                    &site_name(&args.from)?,
                    &site_name(&args.to)?,
                    args.change,
                    waiting,
                )
                .await
                .map(drop)
            }
            SiteCommand::BringOnline(args) => {
                let ctx = Ctx::load(&args.target.config, &args.target.aws).await?;
                bring_online(&ctx, &site_name(&args.site)?, args.force, args.change)
                    .await
                    .map(drop)
            }
            SiteCommand::History(args) => history::run(&args).await.map(drop),
        }
    })
}

fn site_name(text: &str) -> anyhow::Result<SiteName> {
    SiteName::parse(text).map_err(|e| anyhow::anyhow!("`{text}` is not a site name: {e}"))
}

/// What a command ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The observed state already is the wanted one.
    NothingToDo,
    /// `--dry-run`: the plan was shown, nothing changed.
    DryRun(Plan),
    Applied(Plan, Applied),
}

/// Prints the status table and returns what was observed.
pub async fn status(ctx: &Ctx) -> anyhow::Result<Observed> {
    let observed = ctx.observe().await?;
    print!("{}{}", render::mode(ctx.mode), render::status(&observed));
    Ok(observed)
}

pub async fn take_offline(ctx: &Ctx, site: &SiteName, change: Change) -> anyhow::Result<Outcome> {
    let observed = ctx.observe().await?;
    let plan = plan::take_offline(&observed, site)?;
    carry_out(ctx, plan, change, no_push()).await
}

pub async fn bring_online(
    ctx: &Ctx,
    site: &SiteName,
    force: bool,
    change: Change,
) -> anyhow::Result<Outcome> {
    let observed = ctx.observe().await?;
    let plan = plan::bring_online(&observed, site, force)?;
    carry_out(ctx, plan, change, no_push()).await
}

pub async fn sync(
    ctx: &Ctx,
    good: &SiteName,
    stale: &SiteName,
    change: Change,
    waiting: Waiting,
) -> anyhow::Result<Outcome> {
    let observed = ctx.observe().await?;
    let plan = plan::sync(&observed, good, stale)?;
    let outcome = carry_out(ctx, plan, change, waiting).await?;
    if let Outcome::Applied(_, applied) = &outcome
        && !applied.pushed.is_empty()
    {
        println!("push-state from {good} to {stale}:");
        for (cache, state) in &applied.pushed {
            println!("  {cache:<24} {state}");
        }
        let after = ctx.observe().await?;
        println!("verdict: {}", verdict::verdict(&after));
    }
    Ok(outcome)
}

fn no_push() -> Waiting {
    Waiting {
        timeout: Duration::ZERO,
        poll: Duration::from_secs(1),
    }
}

async fn carry_out(
    ctx: &Ctx,
    plan: Plan,
    change: Change,
    waiting: Waiting,
) -> anyhow::Result<Outcome> {
    print!("{plan}");
    if plan.steps.is_empty() {
        return Ok(Outcome::NothingToDo);
    }
    if !carry_on(plan.steps.len(), change)? {
        return Ok(Outcome::DryRun(plan));
    }
    let applied = apply::apply(ctx, &plan, waiting).await?;
    println!("done: {} step(s)", applied.steps);
    Ok(Outcome::Applied(plan, applied))
}

/// Whether to apply a plan of `steps` steps: not with `--dry-run`, at once with `--yes`, else
/// when the operator says so.
fn carry_on(steps: usize, change: Change) -> anyhow::Result<bool> {
    if change.dry_run {
        println!("--dry-run: nothing was changed");
        return Ok(false);
    }
    if !change.yes {
        confirm(steps)?;
    }
    Ok(true)
}

/// Asks on the terminal; without one (a pipe, CI, cron) only `--yes` applies a plan.
fn confirm(steps: usize) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "refusing to change anything without confirmation: standard input is not a terminal. Review the plan above and run again with --yes (or --dry-run to only see it); nothing was changed"
        );
    }
    print!("apply these {steps} step(s)? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing was changed")
    }
}
