//! A sandbox world running the function's real bootstrap binary behind the Lambda Invoke API,
//! and what the tests read back from it: the health check as Route 53 describes it, the AWS
//! calls the function made, and the Lambda host's measurements.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sandbox::world::{
    FunctionOptions, ROUTE53_REGION, SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY, SandboxInfo, World,
    WorldOptions,
};
use serde_json::Value;

/// The path the sandbox's health check probes while the primary site serves.
pub const ORIGINAL_PATH: &str = "/lb-check";
/// The path the function points a failed health check at, so that it stays failed.
pub const FAILED_OVER_PATH: &str = "/lb-check-failed-over";

/// A running world, as a scenario sees it.
pub struct Sandbox {
    pub info: SandboxInfo,
    /// The Lambda host's measurements of the function (`HostStats` as JSON).
    pub stats_url: String,
    http: reqwest::Client,
    route53: aws_sdk_route53::Client,
}

/// Starts a world running only the Route 53 function, runs `scenario` against it, and stops the
/// world whatever the scenario did: returned an error, or failed an assertion.
pub async fn with_sandbox<F, Fut>(test: &str, scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let dir = scratch_dir(test);
    let mut options = WorldOptions::new(&dir);
    options.route53 = Some(FunctionOptions::bootstrap(env!(
        "CARGO_BIN_EXE_route53-failover-lambda"
    )));
    let world = World::start(options)
        .await
        .with_context(|| format!("starting the sandbox (logs in {})", dir.display()))?;
    let function = world
        .functions
        .first()
        .context("the world runs no function")?;
    let sandbox = Sandbox::new(world.info().clone(), function.stats_url());

    // On its own task, so that a failed assertion still lets the world be stopped below.
    let outcome = tokio::spawn(scenario(sandbox)).await;
    world.shutdown().await;
    match outcome {
        Ok(Ok(())) => {
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Ok(Err(err)) => Err(err.context(format!("function log: {}", function_log(&dir).display()))),
        Err(join) => {
            eprintln!("function log: {}", function_log(&dir).display());
            match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(join) => Err(join.into()),
            }
        }
    }
}

fn scratch_dir(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sitefence-route53-{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.subsec_nanos())
            .unwrap_or_default()
    ))
}

fn function_log(dir: &Path) -> PathBuf {
    dir.join("logs/route53-failover-lambda.log")
}

/// A sample trigger from `events/route53/`, aimed at `health_check_id`.
pub fn sample(name: &str, health_check_id: &str) -> anyhow::Result<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/route53")
        .join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text.replace("{{HEALTH_CHECK_ID}}", health_check_id))
        .with_context(|| format!("{} is not JSON", path.display()))
}

impl Sandbox {
    fn new(info: SandboxInfo, stats_url: String) -> Self {
        let credentials = aws_sdk_route53::config::Credentials::new(
            SANDBOX_ACCESS_KEY,
            SANDBOX_SECRET_KEY,
            None,
            None,
            "sandbox",
        );
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new(ROUTE53_REGION))
            .endpoint_url(&info.aws_endpoint_url)
            .credentials_provider(credentials)
            .build();
        Self {
            info,
            stats_url,
            http: reqwest::Client::new(),
            route53: aws_sdk_route53::Client::from_conf(config),
        }
    }

    pub fn health_check_id(&self) -> &str {
        &self.info.route53.health_check_id
    }

    /// Invokes the function through the Lambda Invoke API and returns its response; a function
    /// error (an unhandled error, a crash, a timeout) is an error here.
    pub async fn invoke(&self, event: &Value) -> anyhow::Result<Value> {
        let url = self
            .info
            .route53
            .invoke_url
            .as_deref()
            .context("the world runs no Route 53 function")?;
        let response = self
            .http
            .post(url)
            .json(event)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .context("invoking the function")?;
        let status = response.status();
        let function_error = response.headers().get("x-amz-function-error").cloned();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("Invoke API answered {status}: {body}");
        }
        if let Some(kind) = function_error {
            bail!("function error ({kind:?}): {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("response is not JSON: {body}"))
    }

    /// Like [`Sandbox::invoke`], also returning how long the caller waited.
    pub async fn timed_invoke(&self, event: &Value) -> anyhow::Result<(Value, Duration)> {
        let started = Instant::now();
        let response = self.invoke(event).await?;
        Ok((response, started.elapsed()))
    }

    /// The path the sandbox's health check probes, as Route 53 reports it.
    pub async fn health_check_path(&self) -> anyhow::Result<Option<String>> {
        let described = self
            .route53
            .get_health_check()
            .health_check_id(self.health_check_id())
            .send()
            .await
            .context("GetHealthCheck")?;
        Ok(described
            .health_check()
            .and_then(|check| check.health_check_config())
            .and_then(|config| config.resource_path())
            .map(str::to_owned))
    }

    /// How many calls of `operation` (`service.Operation`) reached AWS since the world started.
    pub async fn aws_calls(&self, operation: &str) -> anyhow::Result<u64> {
        let counts: Value = self
            .http
            .get(format!("{}/_sandbox/calls", self.info.aws_endpoint_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(counts["by_operation"][operation].as_u64().unwrap_or(0))
    }

    pub async fn host_stats(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(&self.stats_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

/// `median M ms (min A, max B, N invocations)`.
pub fn spread(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let (Some(min), Some(max)) = (ms.first(), ms.last()) else {
        return "no invocations".to_owned();
    };
    let middle = ms.len() / 2;
    let median = if ms.len().is_multiple_of(2) {
        (ms[middle - 1] + ms[middle]) / 2.0
    } else {
        ms[middle]
    };
    format!(
        "median {median:.1} ms (min {min:.1}, max {max:.1}, {} invocations)",
        ms.len()
    )
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
