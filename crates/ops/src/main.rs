//! `sitefence`: the operator's tool, for a machine with no Rust toolchain and no clone.

use anyhow::bail;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sitefence",
    version,
    about = "sitefence: deploy, check and operate two-site fencing (Global Accelerator, Infinispan, Route 53, VPC routes)"
)]
struct Cli {
    #[command(subcommand)]
    command: ops::cli::Command,
}

fn main() -> anyhow::Result<()> {
    ops::cli::run(Cli::parse().command, |arch| {
        bail!(
            "no ZIPs to deploy: pass --zips DIR, the directory of the release's {} ZIPs \
             (DIR/<function>/bootstrap.zip), or set `[code] zips` in the config",
            arch.lambda_name()
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_tree_has_no_clashing_or_malformed_arguments() {
        super::Cli::command().debug_assert();
    }
}
