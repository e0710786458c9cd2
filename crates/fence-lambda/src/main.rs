//! The fence function's bootstrap: configuration, clients, runtime. Everything else is in the
//! library.

use std::sync::Arc;

use anyhow::Context;
use fence_lambda::config::FenceConfig;
use fence_lambda::handler::Settings;
use fence_lambda::lambda::handle_request;
use fence_lambda::live::LiveWorld;
use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::logging::init("fence-lambda");
    let (world, settings) = match start().await {
        Ok(started) => started,
        Err(err) => {
            tracing::error!(event = "start_failed", error = format!("{err:#}"));
            return Err(err.into());
        }
    };
    let world = Arc::new(world);
    lambda_http::run(service_fn(move |request: Request| {
        let world = Arc::clone(&world);
        let settings = settings.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                handle_request(world.as_ref(), &settings, request).await,
            )
        }
    }))
    .await
}

async fn start() -> anyhow::Result<(LiveWorld, Settings)> {
    let config = FenceConfig::from_env().context("configuration")?;
    let world = LiveWorld::new(&config).await.context("Infinispan client")?;
    let settings = Settings {
        alert_name: config.alert_name.clone(),
        policy: config.policy(),
        retry_budget: config.retry_budget,
    };
    tracing::info!(
        event = "started",
        sites = ?config.sites.keys().map(|s| s.as_str()).collect::<Vec<_>>(),
        preferred_site = %config.preferred_site,
        accelerator_region = %config.accelerator_region,
    );
    Ok((world, settings))
}
