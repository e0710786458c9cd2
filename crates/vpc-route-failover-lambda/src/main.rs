// The handler's future nests the Lambda runtime's, tokio's and the EC2 SDK's futures deeper
// than rustc's default query depth allows when it computes their layout.
#![recursion_limit = "256"]

use anyhow::anyhow;
use common::notify::Notifier;
use lambda_runtime::service_fn;
use vpc_route_failover_lambda::config::Settings;
use vpc_route_failover_lambda::{FUNCTION_NAME, Failover, handle};

// One thread, as in the fence, whose main.rs gives the measurement.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    common::logging::init(FUNCTION_NAME);
    let settings = Settings::from_lookup(|name| std::env::var(name).ok()).map_err(|err| {
        tracing::error!(error = %err, "configuration_invalid");
        anyhow!("configuration invalid: {err}")
    })?;

    let sdk = common::aws::sdk_config(None).await;
    let notifier = Notifier::from_env(&sdk);
    tracing::info!(
        primary_eni = %settings.primary_eni,
        standby_eni = %settings.standby_eni,
        vpc_id = %settings.vpc,
        route_tables = ?settings.allowed_tables.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
        notify_topic = notifier.as_ref().map(Notifier::topic_arn),
        mode = %settings.mode,
        "cold_start"
    );
    // Which instance owns each ENI is looked up on the first event and kept for warm invocations.
    let failover = Failover::new(aws_sdk_ec2::Client::new(&sdk), settings, notifier);

    lambda_runtime::run(service_fn(|event| handle(&failover, event)))
        .await
        .map_err(|err| anyhow!("Lambda runtime stopped: {err}"))
}
