//! The sandbox as `deploy` leaves it, which is what `sandbox up` (and so the drill) runs.
//!
//! The emulators start first; then the three functions are deployed into the sandbox's moto
//! with deploy's own code (desired state, diff, apply), from the `sitefence.toml` written
//! beside `sandbox.json`; then each function's bootstrap runs with the configuration read back
//! from moto (environment, timeout, memory, reserved concurrency, Function URL policy), kept in
//! step with it while it runs (`sandbox::deployed`). So a permission, a variable or a
//! concurrency that deploy gets wrong is wrong in every test, drill and bench too.

use anyhow::Context;
use ops::artifacts::{self, Arch};
use ops::aws::AwsArgs;
use ops::config::Deployment;
use ops::deploy::{self, plan::Function};
use sandbox::world::{
    DeployedFunction, FunctionRole, ROUTE53_REGION, SandboxInfo, World, WorldOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The deployment a sandbox is deployed as, written to `DIR/sitefence.toml`: its ZIPs are the
/// native builds in `DIR/zips`, so that `deploy --config DIR/sitefence.toml` redeploys it.
pub fn deployment(world: &World) -> Deployment {
    let mut deployment = deployment_from_sandbox(world.info());
    deployment.code = Some(ops::config::CodeSource {
        zips: PathBuf::from(ZIPS_DIR),
        arch: Arch::host().lambda_name().to_string(),
    });
    deployment
}

/// Where the sandbox's ZIPs are, relative to its directory.
const ZIPS_DIR: &str = "zips";

/// Starts the emulators of `options` (its functions are ignored: they are deployed), deploys
/// the functions built in `bin_dir` into moto, and runs them from what was deployed.
pub async fn start(
    mut options: WorldOptions,
    bin_dir: &Path,
    instances: usize,
) -> anyhow::Result<World> {
    options.fence = None;
    options.route53 = None;
    options.vpc = None;
    let dir = options.dir.clone();
    let mut world = World::start(options).await?;
    match deploy_and_run(&mut world, &dir, bin_dir, instances).await {
        Ok(()) => Ok(world),
        Err(error) => {
            world.shutdown().await;
            Err(error)
        }
    }
}

async fn deploy_and_run(
    world: &mut World,
    dir: &Path,
    bin_dir: &Path,
    instances: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deployment = deployment(world);
    write_config(&deployment, dir)?;
    let zips = native_zips(bin_dir, &dir.join(ZIPS_DIR))?;
    let stop = Arc::new(AtomicBool::new(false));
    let alarms_region = ops::aws::load(
        &AwsArgs::default(),
        Some(world.info().aws_endpoint_url.clone()),
        ROUTE53_REGION.to_string(),
    )
    .await;
    evaluate_alarms(
        aws_sdk_cloudwatch::Client::new(&alarms_region),
        stop.clone(),
    );
    let options = deploy::Options {
        zips,
        arch: Arch::host(),
        dry_run: false,
        alarm_wait: Duration::from_secs(30),
        show_secrets: false,
    };
    let deployed = deploy::deploy(&deployment, &options, &AwsArgs::default()).await;
    stop.store(true, Ordering::Relaxed);
    deployed.context("deploying the functions into the sandbox")?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "functions deployed into the sandbox"
    );
    for function in Function::ALL {
        let role = match function {
            Function::Fence => FunctionRole::Fence,
            Function::Route53 => FunctionRole::Route53,
            Function::Vpc => FunctionRole::Vpc,
        };
        world
            .start_deployed(DeployedFunction {
                role,
                name: function.name(&deployment),
                binary: bin_dir.join(function.crate_name()),
                instances,
            })
            .await?;
    }
    // Now with the Function URL the host serves.
    write_config(&self::deployment(world), dir)?;
    Ok(())
}

fn write_config(deployment: &Deployment, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("sitefence.toml");
    std::fs::write(&path, deployment.to_toml()?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Lambda ZIPs of the native binaries in `bin_dir`, in deploy's `--zips` layout. moto stores
/// the code; the host runs the binary the ZIP was made from.
pub fn native_zips(bin_dir: &Path, zips: &Path) -> anyhow::Result<PathBuf> {
    for function in artifacts::FUNCTIONS {
        let binary_path = bin_dir.join(function);
        let binary = std::fs::read(&binary_path)
            .with_context(|| format!("reading {}", binary_path.display()))?;
        let zip = artifacts::zip_path(zips, function);
        std::fs::create_dir_all(zip.parent().context("a ZIP path has a parent")?)?;
        std::fs::write(&zip, deploy::zip::lambda_zip(&binary)?)?;
    }
    Ok(zips.to_path_buf())
}

/// Stands in for CloudWatch's evaluation, which moto does not do: a new alarm with no data
/// (missing data not breaching) becomes OK, so that deploy subscribes the Route 53 function.
/// Runs until `stop` is set.
pub fn evaluate_alarms(cloudwatch: aws_sdk_cloudwatch::Client, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        use aws_sdk_cloudwatch::types::StateValue;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(alarms) = cloudwatch.describe_alarms().send().await {
                for alarm in alarms.metric_alarms() {
                    if alarm.state_value() == Some(&StateValue::InsufficientData)
                        && let Some(name) = alarm.alarm_name()
                    {
                        let _ = cloudwatch
                            .set_alarm_state()
                            .alarm_name(name)
                            .state_value(StateValue::Ok)
                            .state_reason("no data points: missing data is not breaching")
                            .send()
                            .await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// A function's variables as deploy writes them for the sandbox's deployment
/// (`plan::environment`), for worlds that run a function configured in code rather than
/// deployed (the bench, the reliability lab, the site tests).
///
/// For the fence it also makes what deploy would have made for it to write to: the
/// decision table named in `DECISION_TABLE`, created in the world's moto by deploy's own
/// code ([`ensure_decision_table`]) before the fence starts. The world calls this while it
/// starts, synchronously; the table is made on a thread of its own, straight in moto (never
/// through the AWS front, which runs on the world's runtime and counts the function's calls).
/// A table that cannot be made is logged, and the fence's first report then fails (5xx)
/// naming the missing table.
pub fn deploy_environment(
    function: Function,
) -> impl Fn(&SandboxInfo) -> Vec<(String, String)> + Send + Sync + 'static {
    move |info: &SandboxInfo| {
        if function == Function::Fence
            && let Err(error) = on_own_runtime(ensure_decision_table(info))
        {
            tracing::error!(
                error = format!("{error:#}"),
                "the fence's decision table could not be made"
            );
        }
        let deployment = deployment_from_sandbox(info);
        let inputs = deploy::plan::Inputs {
            scope: deploy::policy::Scope {
                partition: "aws".to_string(),
                account: String::new(),
                region: info.region.clone(),
                accelerator_arn: info.accelerator_arn.clone(),
            },
            architecture: Arch::host().lambda_name().to_string(),
            code: Default::default(),
            ca_bundle_pem: std::fs::read_to_string(&info.ca_bundle).ok(),
        };
        deploy::plan::environment(&deployment, function, &inputs)
            .into_iter()
            .collect()
    }
}

/// The sandbox's deployment pointed straight at moto: for what the sandbox itself does to
/// the world (tables made, records reset), which is not a call of the functions and must not
/// count as one.
fn in_moto(info: &SandboxInfo) -> Deployment {
    let mut deployment = deployment_from_sandbox(info);
    deployment.endpoint_url = Some(info.moto_url.clone());
    deployment
}

/// Makes the world's decision table as deploy makes it (its desired state, diff and apply for
/// that one resource) unless it is there already; returns its name. Deployed worlds get it
/// from deploy itself.
pub async fn ensure_decision_table(info: &SandboxInfo) -> anyhow::Result<String> {
    let deployment = in_moto(info);
    deploy::ensure_decision_table(&deployment, &AwsArgs::default())
        .await
        .with_context(|| format!("making the decision table {}", deployment.decision_table()))?;
    Ok(deployment.decision_table())
}

/// Deletes every decision record of the world's table, so that the next report decides anew
/// (between the fences of a test, a bench or a drill; deployed worlds share the table's name).
/// Returns how many were deleted.
pub async fn reset_decisions(info: &SandboxInfo) -> anyhow::Result<usize> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let deployment = in_moto(info);
    let table = deployment.decision_table();
    let config = ops::aws::load(
        &AwsArgs::default(),
        deployment.endpoint_url.clone(),
        deployment.region.clone(),
    )
    .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let key = aws_topology::decisions::KEY_ATTRIBUTE;
    let mut keys = Vec::new();
    let mut pages = dynamodb
        .scan()
        .table_name(&table)
        .projection_expression("#key")
        .expression_attribute_names("#key", key)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| {
            anyhow::anyhow!(
                "Scan {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
        if let Some(value) = item.get(key) {
            keys.push(value.clone());
        }
    }
    // BatchWriteItem takes 25 requests at most.
    for batch in keys.chunks(25) {
        let mut requests = Some(
            batch
                .iter()
                .map(|value| {
                    Ok(WriteRequest::builder()
                        .delete_request(DeleteRequest::builder().key(key, value.clone()).build()?)
                        .build())
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        for attempt in 0..10 {
            let Some(pending) = requests.take().filter(|r| !r.is_empty()) else {
                break;
            };
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            let written = dynamodb
                .batch_write_item()
                .request_items(&table, pending)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "BatchWriteItem {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            requests = written
                .unprocessed_items()
                .and_then(|unprocessed| unprocessed.get(&table))
                .cloned();
        }
        if requests.is_some_and(|r| !r.is_empty()) {
            anyhow::bail!("BatchWriteItem {table}: deletes still unprocessed after 10 attempts");
        }
    }
    Ok(keys.len())
}

/// Runs `work` to completion on a runtime of its own, on a thread of its own: for async work
/// a synchronous caller needs done, whether or not it is itself on a runtime.
fn on_own_runtime<T: Send>(
    work: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(work)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread making the decision table panicked"))?
    })
}

/// The sandbox described as a deployment, so every command can be pointed at it.
pub fn deployment_from_sandbox(info: &SandboxInfo) -> Deployment {
    Deployment {
        name: "sitefence".to_string(),
        region: info.region.clone(),
        endpoint_url: Some(info.aws_endpoint_url.clone()),
        caches: Some(info.infinispan.caches.clone()),
        mode: Default::default(),
        accelerator: ops::config::Accelerator {
            dns_name: info.accelerator_dns.clone(),
            region: ops::config::default_accelerator_region(),
            endpoint_url: Some(info.globalaccelerator_endpoint_url.clone()),
        },
        sites: info
            .sites
            .iter()
            .map(|(name, site)| {
                let site = ops::config::Site {
                    infinispan_url: site.ispn_url.clone(),
                    metrics_url: Some(site.metrics_url.clone()),
                    namespace: ops::config::default_namespace(),
                    load_balancer_arn: Some(site.endpoint_id.clone()),
                    sandbox_control_url: Some(site.control_url.clone()),
                    prometheus_url: None,
                    alertmanager_url: None,
                };
                (name.clone(), site)
            })
            .collect(),
        fence: ops::config::Fence {
            webhook_user: info.fence.user.clone(),
            webhook_secret: info.fence.secret_name.clone(),
            infinispan_user: info.infinispan.user.clone(),
            infinispan_secret: info.infinispan.secret_name.clone(),
            preferred_site: info.sites.keys().next().cloned(),
            ca_bundle: Some(info.ca_bundle.clone()),
            alert_name: ops::config::default_alert_name(),
            function_url: info.fence.function_url.clone(),
            decision_table: None,
        },
        route53: Some(ops::config::Route53 {
            health_check_ids: vec![info.route53.health_check_id.clone()],
            region: ops::config::default_route53_region(),
            failed_over_path: ops::config::default_failed_over_path(),
            original_path: ops::config::default_original_path(),
        }),
        vpc: Some(ops::config::Vpc {
            vpc_id: info.vpc.vpc_id.clone(),
            primary_eni: info.vpc.primary.eni.clone(),
            standby_eni: info.vpc.standby.eni.clone(),
            primary_instance_id: info.vpc.primary.instance_id.clone(),
            standby_instance_id: info.vpc.standby.instance_id.clone(),
            route_table_ids: vec![info.vpc.route_table_id.clone()],
        }),
        notify_topic_arn: None,
        log_retention_days: ops::config::default_log_retention_days(),
        alarms: ops::config::Alarms::default(),
        code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_topology::decisions::{
        Closure, DecisionRecord, DecisionStore, Mode, Recorded, split_brain_key,
    };
    use ops::deploy::plan::{FUNCTION_URL_INVOKE_STATEMENT, FUNCTION_URL_STATEMENT};
    use sandbox::harness::{Sandbox, sample_event, scratch_dir};
    use std::process::Command;

    /// boto3, as an operator's script would call it: `remove` deletes that statement first;
    /// prints the statement ids of the fence's resource policy.
    fn boto3_policy(
        info: &SandboxInfo,
        function: &str,
        remove: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let script = r#"
import json, sys, boto3
endpoint, region, function, remove = sys.argv[1:5]
lam = boto3.client("lambda", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id="testing", aws_secret_access_key="testing")
if remove:
    lam.remove_permission(FunctionName=function, StatementId=remove)
policy = json.loads(lam.get_policy(FunctionName=function)["Policy"])
print(json.dumps([s["Sid"] for s in policy["Statement"]]))
"#;
        let output = Command::new(pytools::Venv::locate().python())
            .args(["-c", script, &info.aws_endpoint_url, &info.region, function])
            .arg(remove.unwrap_or(""))
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    /// A decision of the split-brain between the sandbox's two sites.
    fn decision(info: &SandboxInfo, id: &str) -> anyhow::Result<DecisionRecord> {
        use common::site::{AcceleratorDns, SiteName};
        let site = |name: &str| SiteName::parse(name).map_err(|e| anyhow::anyhow!("{e}"));
        let dns =
            AcceleratorDns::parse(&info.accelerator_dns).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(DecisionRecord {
            split_brain: split_brain_key(&dns, &site("site-a")?, &site("site-b")?),
            decision_id: id.to_string(),
            survivor: site("site-a")?,
            loser: site("site-b")?,
            rule: "test".to_string(),
            reporter: site("site-a")?,
            decided_at_ms: 1,
            request_id: id.to_string(),
            facts: serde_json::json!({ "decided_by": id }),
            mode: Mode::Enforce,
            closed: None,
        })
    }

    /// A world whose fence is configured in code gets its table with its environment, made as
    /// deploy makes it; the fence's store, through the AWS front as the fence calls it, keeps
    /// the first decision of a split-brain and hands it back in the failed conditional create
    /// (ReturnValuesOnConditionCheckFailure = ALL_OLD), with no second call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_world_configured_in_code_keeps_the_first_decision_of_a_split_brain() {
        let dir = scratch_dir("decision-table");
        let world = World::start(WorldOptions::new(&dir))
            .await
            .unwrap_or_else(|e| panic!("starting the sandbox: {e:#}"));
        let info = world.info().clone();
        let outcome = tokio::spawn(async move { decisions(&info).await }).await;
        world.shutdown().await;
        match outcome {
            Ok(Ok(())) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(Err(e)) => panic!("{e:#} (sandbox logs in {})", dir.display()),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    async fn decisions(info: &SandboxInfo) -> anyhow::Result<()> {
        // As the bench, the reliability lab and the site tests configure the fence.
        let environment = {
            let info = info.clone();
            tokio::task::spawn_blocking(move || deploy_environment(Function::Fence)(&info)).await?
        };
        let table = environment
            .iter()
            .find(|(name, _)| name == fence_lambda::config::vars::DECISION_TABLE)
            .map(|(_, table)| table.clone())
            .context("no DECISION_TABLE in the fence's environment")?;
        anyhow::ensure!(table == "sitefence-decisions", "{table}");
        let again = deploy::ensure_decision_table(&in_moto(info), &AwsArgs::default()).await?;
        anyhow::ensure!(
            again.changes.is_empty() && again.unchanged == 1,
            "the table was not made as deploy makes it:\n{again}"
        );

        let front = &info.aws_endpoint_url;
        let config = ops::aws::load(
            &AwsArgs::default(),
            Some(front.clone()),
            info.region.clone(),
        )
        .await;
        let store = DecisionStore::new(&config, &table);
        let http = reqwest::Client::new();
        http.post(format!("{front}/_sandbox/calls/reset"))
            .send()
            .await?
            .error_for_status()?;
        let first = decision(info, "first")?;
        let second = decision(info, "second")?;
        anyhow::ensure!(store.create(&first, None).await? == Recorded::Created);
        let existing = store.create(&second, None).await?;
        anyhow::ensure!(
            existing == Recorded::Existing(Box::new(first.clone())),
            "{existing:?}"
        );
        let calls: sandbox::aws_front::CallCounts = http
            .get(format!("{front}/_sandbox/calls"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(
            calls.operation("dynamodb.PutItem") == 2 && calls.operation("dynamodb.GetItem") == 0,
            "the first decision must come back in the failed PutItem, through the front: {calls:?}"
        );

        let closure = Closure {
            at_ms: 2,
            by: "test".to_string(),
        };
        anyhow::ensure!(store.close(&first.split_brain, "first", &closure).await?);
        anyhow::ensure!(store.create(&second, None).await? == Recorded::Created);
        anyhow::ensure!(store.get(&first.split_brain).await? == Some(second.clone()));

        anyhow::ensure!(reset_decisions(info).await? == 1);
        anyhow::ensure!(store.get(&first.split_brain).await?.is_none());
        anyhow::ensure!(store.create(&first, None).await? == Recorded::Created);
        Ok(())
    }

    /// The sample report "site-b offline, reported by site-a", aimed at the sandbox's accelerator.
    fn report(info: &SandboxInfo) -> anyhow::Result<String> {
        Ok(
            sample_event("fence/site-b-offline-reported-by-site-a.json")?.replace(
                "a1234567890abcdef.awsglobalaccelerator.com",
                &info.accelerator_dns,
            ),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deployed_function_url_answers_as_its_resource_policy_says() {
        let dir = scratch_dir("deployed-function-url");
        let bin_dir = crate::workspace::build_sandbox_binaries(false)
            .unwrap_or_else(|e| panic!("building the functions: {e:#}"));
        let world = start(WorldOptions::new(&dir), &bin_dir, 2)
            .await
            .unwrap_or_else(|e| panic!("starting the deployed sandbox: {e:#}"));
        let sandbox = Sandbox::attach(&world, &dir).unwrap_or_else(|e| panic!("{e:#}"));
        let config = dir.join("sitefence.toml");
        let outcome = tokio::spawn(async move { scenario(&sandbox, &config).await }).await;
        world.shutdown().await;
        match outcome {
            Ok(Ok(())) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(Err(e)) => panic!("{e:#} (sandbox logs in {})", dir.display()),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    async fn scenario(sandbox: &Sandbox, config: &Path) -> anyhow::Result<()> {
        let info = &sandbox.info;
        let fence = Function::Fence.name(&deployment_from_sandbox(info));
        let credentials = Some((info.fence.user.as_str(), info.fence.password.as_str()));
        let statements = boto3_policy(info, &fence, None)?;
        for id in [FUNCTION_URL_STATEMENT, FUNCTION_URL_INVOKE_STATEMENT] {
            anyhow::ensure!(
                statements.iter().any(|s| s == id),
                "{id} missing: {statements:?}"
            );
        }

        let before = sandbox.ga_group_endpoints().await?;
        // Without lambda:InvokeFunction, Lambda refuses a correctly authenticated webhook.
        boto3_policy(info, &fence, Some(FUNCTION_URL_INVOKE_STATEMENT))?;
        // The host re-reads the policy within half a second: wait for it with a report that
        // changes nothing (a resolved alert), then send the one that would fence.
        let resolved = sample_event("fence/resolved.json")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sandbox
            .post_function_url(&fence, &resolved, credentials)
            .await?
            .status
            != 403
        {
            anyhow::ensure!(Instant::now() < deadline, "the removal never took effect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = report(info)?;
        let refused = sandbox
            .post_function_url(&fence, &body, credentials)
            .await?;
        anyhow::ensure!(refused.status == 403, "expected 403, got {refused:?}");
        anyhow::ensure!(refused.body.contains("Forbidden"), "{}", refused.body);
        let after = sandbox.ga_group_endpoints().await?;
        anyhow::ensure!(
            after == before,
            "a refused report changed {before:?} to {after:?}"
        );

        // `cargo xtask deploy --config DIR/sitefence.toml` restores it; then the report fences.
        let args = ops::deploy::DeployArgs {
            config: config.to_path_buf(),
            dry_run: false,
            zips: None,
            arch: None,
            alarm_wait: 5,
            show_secrets: false,
            emit: None,
            aws: AwsArgs::default(),
        };
        tokio::task::spawn_blocking(move || {
            ops::deploy::run(&args, |_| anyhow::bail!("the sandbox names its ZIPs"))
        })
        .await??;
        let statements = boto3_policy(info, &fence, None)?;
        anyhow::ensure!(
            statements
                .iter()
                .any(|s| s == FUNCTION_URL_INVOKE_STATEMENT),
            "redeploy did not restore it: {statements:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let fenced = loop {
            let answer = sandbox
                .post_function_url(&fence, &body, credentials)
                .await?;
            if answer.status != 403 || Instant::now() > deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::ensure!(fenced.status == 200, "expected the fence, got {fenced:?}");
        let site_b = &info.sites["site-b"].endpoint_id;
        let left = sandbox.ga_group_endpoints().await?.concat();
        anyhow::ensure!(
            !left.contains(site_b) && !left.is_empty(),
            "endpoints left: {left:?}"
        );
        Ok(())
    }
}
