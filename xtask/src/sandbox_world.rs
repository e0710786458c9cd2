//! The sandbox as `deploy` leaves it, which is what `sandbox up` (and so the drill) runs.
//!
//! The emulators start first; then the three functions are deployed into the sandbox's moto
//! with deploy's own code (desired state, diff, apply), from the `sitefence.toml` written
//! beside `sandbox.json`; then each function's bootstrap runs with the configuration read back
//! from moto (environment, timeout, memory, reserved concurrency, Function URL policy), kept in
//! step with it while it runs (`sandbox::deployed`). So a permission, a variable or a
//! concurrency that deploy gets wrong is wrong in every test, drill and bench too.

use crate::aws::AwsArgs;
use crate::build::{self, Arch};
use crate::config::Deployment;
use crate::deploy::{self, plan::Function};
use anyhow::Context;
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
    let mut deployment = Deployment::from_sandbox(world.info());
    deployment.code = Some(crate::config::CodeSource {
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
    let alarms_region = crate::aws::load(
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
    for function in crate::workspace::FUNCTIONS {
        let binary_path = bin_dir.join(function);
        let binary = std::fs::read(&binary_path)
            .with_context(|| format!("reading {}", binary_path.display()))?;
        let zip = build::zip_path(zips, function);
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
pub fn deploy_environment(
    function: Function,
) -> impl Fn(&SandboxInfo) -> Vec<(String, String)> + Send + Sync + 'static {
    move |info: &SandboxInfo| {
        let deployment = Deployment::from_sandbox(info);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::{FUNCTION_URL_INVOKE_STATEMENT, FUNCTION_URL_STATEMENT};
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
        let output = Command::new(sandbox::venv::Venv::locate().python())
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
        let fence = Function::Fence.name(&Deployment::from_sandbox(info));
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
        let args = crate::deploy::DeployArgs {
            config: config.to_path_buf(),
            dry_run: false,
            zips: None,
            arch: None,
            alarm_wait: 5,
            show_secrets: false,
            aws: AwsArgs::default(),
        };
        tokio::task::spawn_blocking(move || crate::deploy::run(&args)).await??;
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
