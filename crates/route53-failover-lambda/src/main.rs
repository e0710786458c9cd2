use anyhow::anyhow;
use common::notify::Notifier;
use lambda_runtime::service_fn;
use route53_failover_lambda::config::Policy;
use route53_failover_lambda::{FUNCTION_NAME, Failover, handle};

/// Route 53's API is global and signed for us-east-1; a region is needed only to sign.
const ROUTE53_SIGNING_REGION: &str = "us-east-1";

// One thread, as in the fence, whose main.rs gives the measurement.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    common::logging::init(FUNCTION_NAME);
    let policy = Policy::from_lookup(|name| std::env::var(name).ok()).map_err(|err| {
        tracing::error!(error = %err, "configuration_invalid");
        anyhow!("configuration invalid: {err}")
    })?;
    let mode = route53_failover_lambda::config::mode_from_lookup(|name| std::env::var(name).ok())
        .map_err(|err| {
        tracing::error!(error = %err, "configuration_invalid");
        anyhow!("configuration invalid: {err}")
    })?;

    let mut sdk = common::aws::sdk_config(None).await;
    if sdk.region().is_none() {
        sdk = sdk
            .to_builder()
            .region(aws_sdk_route53::config::Region::new(ROUTE53_SIGNING_REGION))
            .build();
    }
    let failover = Failover {
        route53: aws_sdk_route53::Client::new(&sdk),
        notifier: Notifier::from_env(&sdk),
        policy,
        mode,
        known: Default::default(),
    };
    tracing::info!(
        failed_over_path = %failover.policy.failed_over_path,
        allowlist = ?failover.policy.allowed.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
        notify_topic = failover.notifier.as_ref().map(Notifier::topic_arn),
        mode = %failover.mode,
        "cold_start"
    );

    lambda_runtime::run(service_fn(|event| handle(&failover, event)))
        .await
        .map_err(|err| anyhow!("Lambda runtime stopped: {err}"))
}
