//! The fence function's bootstrap: configuration, clients, runtime. Everything else is in the
//! library.

use std::sync::Arc;

use anyhow::Context;
use fence_lambda::config::FenceConfig;
use fence_lambda::event::handle_event;
use fence_lambda::handler::Settings;
use fence_lambda::live::LiveWorld;
use lambda_runtime::{LambdaEvent, service_fn};

/// How long init may spend reading the secrets and the topology ahead of the first invocation
/// (Lambda allows init 10 s; what is not read in time is read by the invocation).
const PREFETCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

// One thread: an invocation is a few remote calls, mostly overlapping waits, and little CPU. A
// multi-threaded runtime hands each wake-up from the I/O driver to another worker thread, which
// the bench measured at 0.8 ms per warm fence (8.2 against 9.0 ms) and 0.5 MiB of RSS; a Lambda
// with less than one vCPU gains nothing from a second worker.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::logging::init("fence-lambda");
    let (world, settings) = match start().await {
        Ok(started) => started,
        Err(err) => {
            tracing::error!(event = "start_failed", error = format!("{err:#}"));
            return Err(err.into());
        }
    };
    let world = Arc::new(world);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let world = Arc::clone(&world);
        let settings = settings.clone();
        async move {
            let deadline_ms = event.context.deadline;
            let request_id = event.context.request_id;
            Ok::<_, std::convert::Infallible>(
                handle_event(
                    world.as_ref(),
                    &settings,
                    event.payload,
                    deadline_ms,
                    &request_id,
                )
                .await,
            )
        }
    }))
    .await
}

async fn start() -> anyhow::Result<(LiveWorld, Settings)> {
    let config = FenceConfig::from_env().context("configuration")?;
    let world = LiveWorld::new(&config).await.context("Infinispan client")?;
    world
        .prefetch(config.accelerator_dns.as_ref(), PREFETCH_LIMIT)
        .await;
    let settings = Settings {
        alert_name: config.alert_name.clone(),
        policy: config.policy(),
        retry_budget: config.retry_budget,
        decision_stale_after: config.decision_stale_after,
        mode: config.mode,
    };
    tracing::info!(
        event = "started",
        sites = ?config.sites.keys().map(|s| s.as_str()).collect::<Vec<_>>(),
        preferred_site = %config.preferred_site,
        mode = %config.mode,
        accelerator_region = %config.accelerator_region,
    );
    Ok((world, settings))
}
