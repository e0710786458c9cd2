//! Drift: deploy's desired state against what exists, resource by resource, with the same
//! desired state (`plan::desired`), reading (`observe`) and comparison (`plan::diff`) as
//! `deploy --dry-run`. Without `--zips` the functions' code and architecture are left out: the
//! doctor has no build to compare with.

use super::{Check, Ctx, Link};
use crate::deploy::plan::{self, Change};
use crate::deploy::{self, observe};

/// The attributes that only the ZIPs decide.
const CODE_ATTRIBUTES: [&str; 2] = ["code_sha256", "architecture"];

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let name = "every resource is as deploy wants it";
    let Some(scope) = &ctx.scope else {
        return vec![Check::skipped(
            Link::Drift,
            name,
            "the account and the accelerator could not be read",
        )];
    };
    match drift(ctx, scope.clone()).await {
        Ok(checks) => checks,
        Err(err) => vec![Check::fail(
            Link::Drift,
            name,
            format!("{err:#}"),
            "check the credentials' read access (the same as `sitefence deploy --dry-run` needs)",
        )],
    }
}

async fn drift(ctx: &Ctx, scope: deploy::policy::Scope) -> anyhow::Result<Vec<Check>> {
    let deployment = &ctx.deployment;
    let inputs = deploy::inputs_without_code(
        deployment,
        scope,
        ctx.zips.as_deref(),
        deploy::configured_arch(deployment),
    )?;
    let desired = plan::desired(deployment, &inputs)?;
    let observed = observe::observe(&desired, &ctx.clients).await?;
    let found = plan::diff(&desired, &observed, &deployment.name);
    let compare_code = ctx.zips.is_some();
    let mut checks = Vec::new();
    for conflict in &found.conflicts {
        checks.push(Check::fail(
            Link::Drift,
            "resources are this deployment's",
            conflict.clone(),
            "rename the deployment (`name`) or remove the other resource",
        ));
    }
    let mut unchanged = found.unchanged;
    for change in &found.changes {
        let key = change.resource().key();
        match change {
            Change::Create(_) => checks.push(Check::fail(
                Link::Drift,
                format!("{key} exists"),
                "missing",
                "run `sitefence deploy`",
            )),
            Change::Update { differences, .. } => {
                let differences: Vec<String> = differences
                    .iter()
                    .filter(|(attribute, _, _)| {
                        compare_code || !CODE_ATTRIBUTES.contains(&attribute.as_str())
                    })
                    .map(|(attribute, now, wanted)| {
                        format!(
                            "{attribute} is {}, deploy wants {}",
                            clip(now),
                            clip(wanted)
                        )
                    })
                    .collect();
                if differences.is_empty() {
                    unchanged += 1;
                } else {
                    checks.push(Check::fail(
                        Link::Drift,
                        format!("{key} is as deployed"),
                        differences.join("; "),
                        "run `sitefence deploy` (`--dry-run` shows the whole diff)",
                    ));
                }
            }
        }
    }
    checks.push(if checks.is_empty() {
        Check::pass(
            Link::Drift,
            "every resource is as deploy wants it",
            format!(
                "{unchanged} resource(s){}",
                if compare_code {
                    ""
                } else {
                    ", code not compared (pass --zips)"
                }
            ),
        )
    } else {
        Check::pass(
            Link::Drift,
            "the other resources are as deploy wants them",
            format!("{unchanged} resource(s)"),
        )
    });
    Ok(checks)
}

/// Long values (policies, environments) cut to what fits on a checklist line; `deploy
/// --dry-run` shows them whole.
fn clip(value: &str) -> String {
    const LIMIT: usize = 160;
    if value.chars().count() <= LIMIT {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(LIMIT).collect::<String>())
    }
}
