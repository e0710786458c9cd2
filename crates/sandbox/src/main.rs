//! `sandbox run --dir DIR`: starts the emulators and moto in the foreground (no function: the
//! functions run from what `cargo xtask deploy` puts into moto, see `cargo xtask sandbox up`),
//! writes `DIR/sandbox.json` once everything answers, and stops everything on SIGTERM or
//! Ctrl-C. Tests use `sandbox::world` directly.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sandbox::ispn::IspnVersion;
use sandbox::world::{World, WorldOptions};
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
    /// Infinispan version the REST emulators speak (which x-site paths they serve).
    #[arg(long, value_enum, default_value_t = Version::V15)]
    ispn_version: Version,
    /// How long a push-state stays SENDING before it ends.
    #[arg(long, default_value_t = 2000)]
    push_delay_ms: u64,
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
    World::start(options)
        .await
        .context("starting the sandbox")?
        .serve(&args.dir)
        .await
}
