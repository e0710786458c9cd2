//! placeholder
#[derive(clap::Args, Debug, Clone)]
pub struct LintArgs {}
pub fn run(_: &LintArgs) -> anyhow::Result<()> {
    Ok(())
}
