//! `sitefence doctor`: proves, without changing anything, every link of each function's chain
//! against the live deployment (AWS or the sandbox), so that a broken link shows up on a quiet
//! day rather than the night a site dies. Each link is a module that returns [`Check`]s; this
//! module runs them, prints the checklist and fails on any failure.
//!
//! The links:
//! * `drift`: deploy's desired state against what exists, resource by resource;
//! * `preflight`: an authenticated preflight request through the real Function URL, which the
//!   fence answers with the plan it would carry out now (secrets read, accelerator resolved,
//!   every endpoint's site known, each site's Infinispan reached with the fence's credentials
//!   and CA), writing nothing and recording nothing;
//! * `permissions`: the write actions each function needs, against the real resource ARNs;
//! * `alerting`: each site's Prometheus has the rule and sees the other site, each Alertmanager
//!   routes the alert to the Function URL;
//! * `route53`, `vpc`: the triggers of the other two functions.

pub mod alerting;
pub mod drift;
pub mod permissions;
pub mod preflight;
pub mod route53;
pub mod vpc;

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::aws::AwsArgs;
use crate::config::Deployment;
use crate::deploy::{self, Clients, policy::Scope};

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The deployment description.
    #[arg(long, default_value = "sitefence.toml")]
    pub config: PathBuf,
    /// Also write the checklist as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory of the ZIPs deployed, `DIR/<function>/bootstrap.zip`: the functions' code is
    /// compared with them too (without it, drift leaves the code out).
    #[arg(long)]
    pub zips: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Which link of the chain a check proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Drift,
    Preflight,
    Permissions,
    Alerting,
    Route53,
    Vpc,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Drift => "drift",
            Link::Preflight => "preflight",
            Link::Permissions => "permissions",
            Link::Alerting => "alerting",
            Link::Route53 => "route53",
            Link::Vpc => "vpc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked, and why: the link is not configured (no `route53` section, no Prometheus
    /// URL), or this AWS cannot answer the question (see the detail). Never a failure.
    Skipped,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub link: Link,
    /// What was checked, e.g. `Function URL answers an authenticated preflight`.
    pub name: String,
    pub status: Status,
    /// What was found: on a failure, what is wrong.
    pub detail: String,
    /// On a failure: the command or change that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(link: Link, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            link,
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        link: Link,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            link,
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skipped(link: Link, name: impl Into<String>, why: impl Into<String>) -> Check {
        Check {
            link,
            name: name.into(),
            status: Status::Skipped,
            detail: why.into(),
            fix: None,
        }
    }
}

/// What every check may read: the deployment, its clients and where its resources are.
pub struct Ctx {
    pub deployment: Deployment,
    pub aws: AwsArgs,
    pub clients: Clients,
    /// Account, partition and the accelerator's ARN; `None` when they could not be read (the
    /// failure is itself a check).
    pub scope: Option<Scope>,
    pub zips: Option<PathBuf>,
}

impl Ctx {
    /// Where Alertmanager sends the fence's webhooks: the URL `sitefence.toml` records (deploy
    /// and `sandbox up` write it, and `manifests` configures Alertmanager with it), else the
    /// deployed fence's Function URL as Lambda reports it.
    pub async fn function_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.deployment.fence.function_url {
            return Ok(url.clone());
        }
        let function = deploy::plan::Function::Fence.name(&self.deployment);
        let config = self
            .clients
            .lambda
            .get_function_url_config()
            .function_name(&function)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_lambda::error::DisplayErrorContext(e)))
            .with_context(|| format!("the fence {function} has no Function URL"))?;
        Ok(config.function_url().to_owned())
    }
}

/// The whole checklist, as printed and as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Checklist {
    pub deployment: String,
    pub mode: String,
    pub checks: Vec<Check>,
}

impl Checklist {
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }

    /// One line per check, grouped by link, and the fix under each failure.
    pub fn render(&self) -> String {
        let mut out = format!(
            "doctor: deployment `{}`, mode {}\n",
            self.deployment, self.mode
        );
        let mut link = None;
        for check in &self.checks {
            if link != Some(check.link) {
                link = Some(check.link);
                out.push_str(&format!("{}\n", check.link.as_str()));
            }
            let mark = match check.status {
                Status::Pass => "ok  ",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            out.push_str(&format!("  [{mark}] {}", check.name));
            if !check.detail.is_empty() {
                out.push_str(&format!(": {}", check.detail));
            }
            out.push('\n');
            if let Some(fix) = &check.fix {
                out.push_str(&format!("         fix: {fix}\n"));
            }
        }
        let failures = self.failures();
        out.push_str(&if failures == 0 {
            format!("doctor: all {} checks pass\n", self.checks.len())
        } else {
            format!("doctor: {failures} of {} checks FAIL\n", self.checks.len())
        });
        out
    }
}

/// `doctor`: prints the checklist, writes `--json`, fails when any check fails.
pub fn run(args: &DoctorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let checklist = runtime.block_on(examine(args))?;
    print!("{}", checklist.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&checklist)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let failures = checklist.failures();
    anyhow::ensure!(failures == 0, "{failures} check(s) failed");
    Ok(())
}

/// Runs every link's checks and returns the checklist; changes nothing.
pub async fn examine(args: &DoctorArgs) -> anyhow::Result<Checklist> {
    let deployment = deploy::load_deployment(&args.config, &args.aws)?;
    let clients = Clients::load(&args.aws, &deployment).await;
    let mut checks = Vec::new();
    let scope = match deploy::scope(&deployment, &clients, &args.aws).await {
        Ok(scope) => Some(scope),
        Err(err) => {
            checks.push(Check::fail(
                Link::Drift,
                "account and accelerator",
                format!("{err:#}"),
                "check the credentials (`aws sts get-caller-identity`) and accelerator.dns_name in the config",
            ));
            None
        }
    };
    // Without --zips, those the config names (the sandbox's own, a release's download).
    let zips = args
        .zips
        .clone()
        .or_else(|| deployment.code.as_ref().map(|c| c.zips.clone()));
    let ctx = Ctx {
        deployment,
        aws: args.aws.clone(),
        clients,
        scope,
        zips,
    };
    checks.extend(drift::check(&ctx).await);
    checks.extend(preflight::check(&ctx).await);
    checks.extend(permissions::check(&ctx).await);
    checks.extend(alerting::check(&ctx).await);
    checks.extend(route53::check(&ctx).await);
    checks.extend(vpc::check(&ctx).await);
    checks.sort_by_key(|c| c.link);
    Ok(Checklist {
        deployment: ctx.deployment.name.clone(),
        mode: mode_name(&ctx.deployment).to_owned(),
        checks,
    })
}

/// The mode the deployment runs in, as `sitefence.toml` sets it.
fn mode_name(deployment: &Deployment) -> &'static str {
    deployment.mode.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(checks: Vec<Check>) -> Checklist {
        Checklist {
            deployment: "d".to_owned(),
            mode: "enforce".to_owned(),
            checks,
        }
    }

    #[test]
    fn the_checklist_groups_by_link_and_puts_the_fix_under_a_failure() {
        let checklist = list(vec![
            Check::pass(Link::Drift, "resources", "23 resource(s)"),
            Check::fail(Link::Preflight, "url", "403", "run `sitefence deploy`"),
            Check::skipped(Link::Alerting, "prometheus", "no prometheus_url"),
        ]);
        assert_eq!(checklist.failures(), 1);
        let text = checklist.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "doctor: deployment `d`, mode enforce");
        assert_eq!(lines[1], "drift");
        assert_eq!(lines[2], "  [ok  ] resources: 23 resource(s)");
        assert_eq!(lines[3], "preflight");
        assert_eq!(lines[4], "  [FAIL] url: 403");
        assert_eq!(lines[5], "         fix: run `sitefence deploy`");
        assert_eq!(lines[7], "  [skip] prometheus: no prometheus_url");
        assert_eq!(lines[8], "doctor: 1 of 3 checks FAIL");
    }

    #[test]
    fn a_skipped_check_is_not_a_failure() {
        let checklist = list(vec![Check::skipped(Link::Vpc, "rule", "no [vpc]")]);
        assert_eq!(checklist.failures(), 0);
        assert!(checklist.render().ends_with("doctor: all 1 checks pass\n"));
        let json = serde_json::to_value(&checklist).unwrap_or_default();
        assert_eq!(json["checks"][0]["status"], "skipped");
        assert!(json["checks"][0].get("fix").is_none());
    }
}
