//! The fence function's bootstrap: configuration, clients, runtime. Everything else is in the
//! library.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use anyhow::Context as _;
use fence_lambda::config::FenceConfig;
use fence_lambda::event::{answer_event, received_at_ms};
use fence_lambda::handler::{AfterAnswer, Settings};
use fence_lambda::live::LiveWorld;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation, Runtime, layers::TracingLayer, service_fn};

/// How long init may spend reading the secrets and the topology ahead of the first invocation
/// (Lambda allows init 10 s; what is not read in time is read by the invocation).
const PREFETCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// What the last invocation left to do after its answer; one invocation at a time runs in an
/// execution environment, so one slot.
type Pending = Arc<Mutex<AfterAnswer>>;

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
    let pending = Pending::default();
    let handler = {
        let world = Arc::clone(&world);
        let pending = Arc::clone(&pending);
        service_fn(move |event: LambdaEvent<serde_json::Value>| {
            let world = Arc::clone(&world);
            let settings = settings.clone();
            let pending = Arc::clone(&pending);
            async move {
                world.begin_invocation(received_at_ms(&event.payload));
                let deadline_ms = event.context.deadline;
                let request_id = event.context.request_id;
                let (response, after_answer) = answer_event(
                    world.as_ref(),
                    &settings,
                    event.payload,
                    deadline_ms,
                    &request_id,
                )
                .await;
                *pending.lock().unwrap_or_else(PoisonError::into_inner) = after_answer;
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(AfterAnswerLayer { world, pending })
        .run()
        .await
}

/// Runs what an invocation left for after its answer once the runtime has posted the answer,
/// before it asks Lambda for the next event: Lambda has returned the answer to the sender by
/// then and keeps the invocation's time running until that request (docs/aws-behaviours.md
/// #91).
struct AfterAnswerLayer {
    world: Arc<LiveWorld>,
    pending: Pending,
}

impl<S> Layer<S> for AfterAnswerLayer {
    type Service = AfterAnswerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterAnswerService {
            inner,
            world: Arc::clone(&self.world),
            pending: Arc::clone(&self.pending),
        }
    }
}

struct AfterAnswerService<S> {
    inner: S,
    world: Arc<LiveWorld>,
    pending: Pending,
}

impl<S> Service<LambdaInvocation> for AfterAnswerService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        // Resolves once the answer (or the error) has been posted to the Runtime API.
        let answered = self.inner.call(invocation);
        let world = Arc::clone(&self.world);
        let pending = Arc::clone(&self.pending);
        Box::pin(async move {
            let posted = answered.await;
            let after_answer =
                std::mem::take(&mut *pending.lock().unwrap_or_else(PoisonError::into_inner));
            after_answer.run(world.as_ref()).await;
            posted
        })
    }
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
