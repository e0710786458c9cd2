//! The doctor scenario: `sitefence doctor` against the drill's fresh sandbox deployment, with
//! a real Prometheus and Alertmanager per site, must pass every check; then each of six
//! breaks, made one at a time the way an operator or a bad change would make it, must make
//! the doctor fail and name the broken link, and the doctor must pass again once it is undone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_globalaccelerator::types::EndpointConfiguration;
use ops::aws::AwsArgs;
use ops::deploy::plan::{FUNCTION_URL_INVOKE_STATEMENT, Function};
use ops::doctor::{self, Checklist, DoctorArgs, Link, Status};
use serde_json::json;

use super::alerting::AlertingStack;
use super::judge::Row;
use super::observe::Sandbox;
use crate::manifests::Profile;

/// How long the doctor may take to see a clean world (Prometheus's first scrapes and rule
/// evaluations) or a break (a host re-reads its function's policy every 500 ms).
const SETTLE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_secs(2);

/// One way to break a link, and where the doctor must say it is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    FunctionUrlInvokeStatementRemoved,
    InfinispanDown,
    InfinispanPasswordChanged,
    EndpointWithoutSite,
    FenceRoleWithoutRemoveEndpoints,
    AlertmanagerReceiverElsewhere,
}

impl Break {
    const ALL: [Break; 6] = [
        Break::FunctionUrlInvokeStatementRemoved,
        Break::InfinispanDown,
        Break::InfinispanPasswordChanged,
        Break::EndpointWithoutSite,
        Break::FenceRoleWithoutRemoveEndpoints,
        Break::AlertmanagerReceiverElsewhere,
    ];

    fn describe(self) -> &'static str {
        match self {
            Break::FunctionUrlInvokeStatementRemoved => {
                "the Function URL's lambda:InvokeFunction statement removed"
            }
            Break::InfinispanDown => "a site's Infinispan down",
            Break::InfinispanPasswordChanged => {
                "the Infinispan password changed in Secrets Manager"
            }
            Break::EndpointWithoutSite => "an accelerator endpoint whose load balancer has no site",
            Break::FenceRoleWithoutRemoveEndpoints => {
                "the fence role's policy without RemoveEndpoints"
            }
            Break::AlertmanagerReceiverElsewhere => {
                "an Alertmanager sending the receiver to another URL"
            }
        }
    }

    /// The link that must fail, and a word its failure must say.
    fn expected(self, down_site: &str) -> (Link, String) {
        match self {
            Break::FunctionUrlInvokeStatementRemoved => (Link::Preflight, "403".into()),
            Break::InfinispanDown => (Link::Preflight, format!("{down_site}'s Infinispan")),
            Break::InfinispanPasswordChanged => (Link::Preflight, "Infinispan".into()),
            Break::EndpointWithoutSite => (Link::Preflight, "belongs to no site".into()),
            Break::FenceRoleWithoutRemoveEndpoints => (Link::Permissions, "RemoveEndpoints".into()),
            Break::AlertmanagerReceiverElsewhere => (Link::Alerting, down_site.into()),
        }
    }
}

pub async fn run(sandbox: &Sandbox, dir: &Path) -> anyhow::Result<Row> {
    let sites: Vec<String> = sandbox.info.sites.keys().cloned().collect();
    let broken_site = sites.last().context("the sandbox has no site")?.clone();
    let stack = AlertingStack::start(
        &sandbox.info,
        &dir.join("alerting").join("doctor"),
        Profile::Fast,
    )
    .await
    .context("starting Prometheus and Alertmanager")?;
    // The breaks are real: a site's Infinispan down fires the alert, and the fence would fence
    // it. The doctor reads the alerting configuration, not the webhooks.
    stack
        .silence(&sandbox_alert_name(sandbox), Duration::from_secs(3600))
        .await?;
    let args = DoctorArgs {
        config: write_config(dir, &stack)?,
        json: None,
        zips: Some(dir.join("zips")),
        aws: AwsArgs::default(),
    };
    let world = World::connect(sandbox).await?;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut seen = Vec::new();

    match until(&args, SETTLE, |list| list.failures() == 0).await? {
        (true, list) => println!(
            "  clean deployment: all {} checks pass ({:.1} s)",
            list.checks.len(),
            started.elapsed().as_secs_f64()
        ),
        (false, list) => {
            print!("{}", list.render());
            failures.push("the clean deployment does not pass".to_owned());
        }
    }
    for broken in Break::ALL {
        let (link, word) = broken.expected(&broken_site);
        world
            .make(broken, &broken_site, &stack)
            .await
            .with_context(|| format!("breaking: {}", broken.describe()))?;
        let (named, list) = until(&args, SETTLE, |list| names(list, link, &word)).await?;
        let failed_links: Vec<&str> = list
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.link.as_str())
            .collect();
        if named {
            println!(
                "  {}: doctor fails, {} names it ({})",
                broken.describe(),
                link.as_str(),
                failed_links.join(", ")
            );
            seen.push(broken.describe());
        } else {
            print!("{}", list.render());
            failures.push(format!(
                "{}: doctor did not name {} (failed: {})",
                broken.describe(),
                link.as_str(),
                failed_links.join(", ")
            ));
        }
        world
            .undo(broken, &broken_site, &stack, dir)
            .await
            .with_context(|| format!("undoing: {}", broken.describe()))?;
        let (clean, list) = until(&args, SETTLE, |list| list.failures() == 0).await?;
        if !clean {
            print!("{}", list.render());
            failures.push(format!(
                "after undoing {}, doctor still fails",
                broken.describe()
            ));
        }
    }
    Ok(Row {
        scenario: "doctor".to_owned(),
        expected: "every check passes; each of 6 breaks fails its link".to_owned(),
        observed: if failures.is_empty() {
            format!("clean pass, {} breaks named, clean after each", seen.len())
        } else {
            failures.join("; ")
        },
        passed: failures.is_empty(),
        time_to_fence_s: None,
    })
}

fn sandbox_alert_name(sandbox: &Sandbox) -> String {
    crate::sandbox_world::deployment_from_sandbox(&sandbox.info)
        .fence
        .alert_name
}

/// Whether a failed check of `link` says `word`.
fn names(list: &Checklist, link: Link, word: &str) -> bool {
    list.checks.iter().any(|c| {
        c.status == Status::Fail
            && c.link == link
            && (c.detail.contains(word) || c.name.contains(word))
    })
}

/// Runs the doctor until `done` holds or `within` passes; the last checklist either way.
async fn until(
    args: &DoctorArgs,
    within: Duration,
    done: impl Fn(&Checklist) -> bool,
) -> anyhow::Result<(bool, Checklist)> {
    let deadline = Instant::now() + within;
    loop {
        let list = doctor::examine(args).await?;
        if done(&list) {
            return Ok((true, list));
        }
        if Instant::now() > deadline {
            return Ok((false, list));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The sandbox's `sitefence.toml` with each site's Prometheus and Alertmanager, and the ZIPs
/// named absolutely (the copy lives in another directory).
fn write_config(dir: &Path, stack: &AlertingStack) -> anyhow::Result<PathBuf> {
    let mut deployment =
        ops::deploy::load_deployment(&dir.join("sitefence.toml"), &AwsArgs::default())?;
    for pair in &stack.pairs {
        let site = deployment
            .sites
            .get_mut(&pair.site)
            .with_context(|| format!("no site {} in the deployment", pair.site))?;
        site.prometheus_url = Some(pair.prometheus_url.clone());
        site.alertmanager_url = Some(pair.alertmanager_url.clone());
    }
    let out = dir.join("doctor");
    std::fs::create_dir_all(&out)?;
    let path = out.join("sitefence.toml");
    std::fs::write(&path, deployment.to_toml()?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The clients the breaks are made with, straight through the sandbox's AWS front.
struct World<'a> {
    sandbox: &'a Sandbox,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ga: aws_sdk_globalaccelerator::Client,
    regional: aws_config::SdkConfig,
    deployment: ops::config::Deployment,
}

/// Where the Alertmanager break sends the receiver: a port nothing listens on.
const ELSEWHERE: &str = "http://127.0.0.1:9/not-the-fence";

/// The load balancer the endpoint-without-site break adds.
const STRAY_LOAD_BALANCER: &str = "doctor-stray";

impl<'a> World<'a> {
    async fn connect(sandbox: &'a Sandbox) -> anyhow::Result<World<'a>> {
        let info = &sandbox.info;
        let regional = ops::aws::load(
            &AwsArgs::default(),
            Some(info.aws_endpoint_url.clone()),
            info.region.clone(),
        )
        .await;
        let ga = ops::aws::load(
            &AwsArgs::default(),
            Some(info.globalaccelerator_endpoint_url.clone()),
            sandbox::world::ACCELERATOR_REGION.to_string(),
        )
        .await;
        Ok(World {
            sandbox,
            lambda: aws_sdk_lambda::Client::new(&regional),
            iam: aws_sdk_iam::Client::new(&regional),
            secrets: aws_sdk_secretsmanager::Client::new(&regional),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&regional),
            ga: aws_sdk_globalaccelerator::Client::new(&ga),
            regional,
            deployment: crate::sandbox_world::deployment_from_sandbox(info),
        })
    }

    async fn make(&self, broken: Break, site: &str, stack: &AlertingStack) -> anyhow::Result<()> {
        let info = &self.sandbox.info;
        let fence = Function::Fence.name(&self.deployment);
        match broken {
            Break::FunctionUrlInvokeStatementRemoved => {
                self.lambda
                    .remove_permission()
                    .function_name(&fence)
                    .statement_id(FUNCTION_URL_INVOKE_STATEMENT)
                    .send()
                    .await?;
            }
            Break::InfinispanDown => {
                let control = self.sandbox.control_url(site)?;
                self.sandbox
                    .control(&format!("{control}/down"), json!({"down": true}))
                    .await?;
            }
            Break::InfinispanPasswordChanged => {
                self.secrets
                    .put_secret_value()
                    .secret_id(&info.infinispan.secret_name)
                    .secret_string("not-the-infinispan-password")
                    .send()
                    .await?;
            }
            Break::EndpointWithoutSite => {
                // Untagged and in no site's load_balancer_arn: nobody's.
                let arn = crate::reliability::shapes::network_load_balancer(
                    &self.regional,
                    info,
                    STRAY_LOAD_BALANCER,
                    &[],
                )
                .await?;
                let group = info
                    .endpoint_group_arns
                    .first()
                    .context("the sandbox's accelerator has no endpoint group")?;
                self.ga
                    .add_endpoints()
                    .endpoint_group_arn(group)
                    .endpoint_configurations(
                        EndpointConfiguration::builder()
                            .endpoint_id(arn)
                            .weight(128)
                            .build(),
                    )
                    .send()
                    .await?;
            }
            Break::FenceRoleWithoutRemoveEndpoints => {
                let policy = self
                    .iam
                    .get_role_policy()
                    .role_name(&fence)
                    .policy_name(&fence)
                    .send()
                    .await?;
                let text = percent_decode(policy.policy_document());
                let mut document: serde_json::Value = serde_json::from_str(&text)?;
                strip_action(&mut document, "globalaccelerator:RemoveEndpoints");
                self.iam
                    .put_role_policy()
                    .role_name(&fence)
                    .policy_name(&fence)
                    .policy_document(document.to_string())
                    .send()
                    .await?;
            }
            Break::AlertmanagerReceiverElsewhere => {
                let url = self.function_url()?;
                stack
                    .rewrite_alertmanager(site, |text| text.replace(&url, ELSEWHERE))
                    .await?;
            }
        }
        Ok(())
    }

    /// The URL Alertmanager sends the fence's webhooks to.
    fn function_url(&self) -> anyhow::Result<String> {
        self.deployment
            .fence
            .function_url
            .clone()
            .or_else(|| self.sandbox.info.fence.function_url.clone())
            .context("no Function URL")
    }

    async fn undo(
        &self,
        broken: Break,
        site: &str,
        stack: &AlertingStack,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let info = &self.sandbox.info;
        match broken {
            // What deploy made, deploy makes again.
            Break::FunctionUrlInvokeStatementRemoved | Break::FenceRoleWithoutRemoveEndpoints => {
                let config = dir.join("sitefence.toml");
                let deployment = ops::deploy::load_deployment(&config, &AwsArgs::default())?;
                let zips = dir.join("zips");
                let options = ops::deploy::Options {
                    zips,
                    arch: ops::artifacts::Arch::host(),
                    dry_run: false,
                    alarm_wait: Duration::from_secs(5),
                    show_secrets: false,
                };
                ops::deploy::deploy(&deployment, &options, &AwsArgs::default()).await?;
            }
            Break::InfinispanDown => {
                let control = self.sandbox.control_url(site)?;
                self.sandbox
                    .control(&format!("{control}/down"), json!({"down": false}))
                    .await?;
            }
            Break::InfinispanPasswordChanged => {
                self.secrets
                    .put_secret_value()
                    .secret_id(&info.infinispan.secret_name)
                    .secret_string(&info.infinispan.password)
                    .send()
                    .await?;
            }
            Break::EndpointWithoutSite => {
                let ga = &info.globalaccelerator_endpoint_url;
                self.sandbox
                    .control(&format!("{ga}/_sandbox/reset"), json!({}))
                    .await?;
                let found = self
                    .elb
                    .describe_load_balancers()
                    .names(STRAY_LOAD_BALANCER)
                    .send()
                    .await?;
                for lb in found.load_balancers() {
                    if let Some(arn) = lb.load_balancer_arn() {
                        self.elb
                            .delete_load_balancer()
                            .load_balancer_arn(arn)
                            .send()
                            .await?;
                    }
                }
            }
            Break::AlertmanagerReceiverElsewhere => {
                let url = self.function_url()?;
                stack
                    .rewrite_alertmanager(site, |text| text.replace(ELSEWHERE, &url))
                    .await?;
            }
        }
        Ok(())
    }
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(text: &str) -> String {
    ops::deploy::plan::canonical_text(text)
}

/// Removes `action` from every statement's `Action` (a string or a list).
fn strip_action(document: &mut serde_json::Value, action: &str) {
    let Some(statements) = document.get_mut("Statement").and_then(|s| s.as_array_mut()) else {
        return;
    };
    for statement in statements {
        match statement.get_mut("Action") {
            Some(serde_json::Value::Array(actions)) => actions.retain(|a| a != action),
            Some(serde_json::Value::String(only)) if only == action => {
                statement["Action"] = json!([]);
            }
            _ => {}
        }
    }
}
