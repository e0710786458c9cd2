//! The Route 53 function's part of a sandbox test: a world running the real bootstrap binary
//! behind the Lambda Invoke API (started and stopped by `sandbox::harness`), the sample
//! triggers of `events/route53/`, and the health check as Route 53 describes it.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::future::Future;

use anyhow::Context;
use sandbox::harness::{self, Sandbox};
use sandbox::world::{FunctionOptions, ROUTE53_REGION, SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY};
use serde_json::Value;

pub const FUNCTION: &str = "route53-failover-lambda";
/// The path the sandbox's health check probes while the primary site serves.
pub const ORIGINAL_PATH: &str = "/lb-check";
/// The path the function points a failed health check at, so that it stays failed.
pub const FAILED_OVER_PATH: &str = "/lb-check-failed-over";
pub const UPDATE_HEALTH_CHECK: &str = "route53.UpdateHealthCheck";

/// Starts a world running only the Route 53 function, runs `scenario` against it, and stops
/// the world whatever the scenario did.
pub async fn with_sandbox<F, Fut>(test: &str, scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    harness::with_world(
        &format!("route53-{test}"),
        |options| {
            options.route53 = Some(FunctionOptions::bootstrap(env!(
                "CARGO_BIN_EXE_route53-failover-lambda"
            )));
        },
        scenario,
    )
    .await
}

/// A sample trigger from `events/route53/`, aimed at `health_check_id`.
pub fn sample(name: &str, health_check_id: &str) -> anyhow::Result<Value> {
    let text = harness::sample_event(&format!("route53/{name}"))?;
    serde_json::from_str(&text.replace("{{HEALTH_CHECK_ID}}", health_check_id))
        .with_context(|| format!("{name} is not JSON"))
}

pub fn health_check_id(sandbox: &Sandbox) -> &str {
    &sandbox.info.route53.health_check_id
}

/// Route 53 as an operator reaches it: through the sandbox's AWS front, which keeps
/// `HealthCheckVersion` as Route 53 does (aws-behaviours #14).
pub fn route53(sandbox: &Sandbox) -> aws_sdk_route53::Client {
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
        .endpoint_url(&sandbox.info.aws_endpoint_url)
        .credentials_provider(credentials)
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

/// The path the sandbox's health check probes, as Route 53 reports it.
pub async fn health_check_path(sandbox: &Sandbox) -> anyhow::Result<Option<String>> {
    let described = route53(sandbox)
        .get_health_check()
        .health_check_id(health_check_id(sandbox))
        .send()
        .await
        .context("GetHealthCheck")?;
    Ok(described
        .health_check()
        .and_then(|check| check.health_check_config())
        .and_then(|config| config.resource_path())
        .map(str::to_owned))
}
