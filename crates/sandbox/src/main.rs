//! `sandbox run --dir DIR`: starts the whole sandbox in the foreground, writes `DIR/sandbox.json`
//! once everything answers, and stops everything on SIGTERM or Ctrl-C.
//! `cargo xtask sandbox up/down` runs this in the background; tests use `sandbox::world` directly.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sandbox::ispn::IspnVersion;
use sandbox::world::{FunctionOptions, World, WorldOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "sandbox", about = "Local AWS + Infinispan world for sitefence")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything and run until SIGTERM or Ctrl-C.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Directory for sandbox.json, ca.pem and logs/.
    #[arg(long)]
    dir: PathBuf,
    /// The fence function's bootstrap binary.
    #[arg(long)]
    fence_bin: Option<PathBuf>,
    /// The Route 53 failover function's bootstrap binary.
    #[arg(long)]
    route53_bin: Option<PathBuf>,
    /// The VPC route failover function's bootstrap binary.
    #[arg(long)]
    vpc_bin: Option<PathBuf>,
    /// Infinispan version the REST emulators speak (which x-site paths they serve).
    #[arg(long, value_enum, default_value_t = Version::V15)]
    ispn_version: Version,
    /// How long a push-state stays SENDING before it ends.
    #[arg(long, default_value_t = 2000)]
    push_delay_ms: u64,
    /// Instances of the fence function running at once (concurrency).
    #[arg(long, default_value_t = 2)]
    fence_instances: usize,
    /// Emulate reserved concurrency: refuse (429) beyond this many in-flight invocations.
    #[arg(long)]
    fence_reserved_concurrency: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Version {
    V14,
    V15,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let Cli {
        command: Command::Run(args),
    } = Cli::parse();

    let mut options = WorldOptions::new(&args.dir);
    options.ispn_version = match args.ispn_version {
        Version::V14 => IspnVersion::V14,
        Version::V15 => IspnVersion::V15,
    };
    options.push_delay = Duration::from_millis(args.push_delay_ms);
    options.fence = args.fence_bin.map(|bin| FunctionOptions {
        instances: args.fence_instances,
        reserved_concurrency: args.fence_reserved_concurrency,
        ..FunctionOptions::bootstrap(bin)
    });
    options.route53 = args.route53_bin.map(FunctionOptions::bootstrap);
    options.vpc = args.vpc_bin.map(FunctionOptions::bootstrap);

    let world = World::start(options)
        .await
        .context("starting the sandbox")?;
    let path = world.write_info(&args.dir)?;
    tracing::info!(sandbox_json = %path.display(), "sandbox ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping the sandbox");
    world.shutdown().await;
    Ok(())
}
