//! Global Accelerator emulator: the control-plane API over awsJson1.1, so that the AWS SDK for
//! Rust, boto3 and the AWS CLI work against it unchanged, plus test controls under `/_sandbox/`
//! on the same port (see `README-section.md`).
//!
//! * [`wire`]: the protocol — targets, JSON in and out, AWS error bodies.
//! * [`model`]: accelerators, listeners, endpoint groups, endpoints, with AWS's validation.
//! * [`control`]: faults, latency, health states, reset, call counts.
//!
//! All state sits behind one mutex that no handler holds across an await, so each operation is
//! atomic, as the real control plane's transactions are.

mod control;
mod error;
mod model;
mod wire;

pub use control::CallCounts;

use axum::Router;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// The topology [`GaEmulator::seed`] creates: one accelerator with a TCP 443 listener and one
/// endpoint group holding `endpoint_ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaSeed {
    pub name: String,
    pub endpoint_group_region: String,
    pub endpoint_ids: Vec<String>,
}

/// What [`GaEmulator::seed`] created; `/_sandbox/reset` restores it with the same ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededAccelerator {
    pub accelerator_arn: String,
    pub dns_name: String,
    pub dual_stack_dns_name: String,
    pub listener_arn: String,
    pub endpoint_group_arns: Vec<String>,
}

/// A running emulator on a free 127.0.0.1 port; stops serving when dropped.
#[derive(Debug)]
pub struct GaEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    topology: model::Topology,
    /// What `/_sandbox/reset` restores: the topology right after the last seed.
    seeded: model::Topology,
    health: model::Health,
    controls: control::Controls,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Operations validate before they change anything, so a lock poisoned by a panic
        // still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl GaEmulator {
    /// Starts serving on a free 127.0.0.1 port.
    pub async fn start() -> std::io::Result<GaEmulator> {
        let listener = crate::net::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/", post(wire::serve))
            .merge(control::routes())
            .fallback(|uri: Uri| async move {
                control::ControlError::not_found(uri.path()).into_response()
            })
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let listener = listener.tap_io(|stream| crate::net::no_delay(stream));
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender stops the server as well as a sent signal.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "global accelerator emulator stopped");
            }
        });
        tracing::debug!(%addr, "global accelerator emulator listening");
        Ok(GaEmulator {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL to give an SDK client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates an accelerator (dual stack, tagged `Name`), a TCP 443 listener and one endpoint
    /// group in `endpoint_group_region` holding the endpoints (weight 128, HEALTHY), and
    /// remembers the result as what `/_sandbox/reset` restores.
    pub fn seed(&self, seed: &GaSeed) -> SeededAccelerator {
        let mut state = self.shared.lock();
        let seeded = state.topology.seed(seed);
        state.seeded = state.topology.clone();
        seeded
    }

    /// Remembers the topology as it is now as what `/_sandbox/reset` restores: for a test that
    /// shapes accelerators through the API after the seed (more listeners, one group per
    /// region, weights) and goes back to those shapes between rounds. Health states, faults
    /// and latency are not part of it.
    pub fn remember_as_seeded(&self) {
        let mut state = self.shared.lock();
        state.seeded = state.topology.clone();
    }

    /// AWS calls received since start or the last `POST /_sandbox/calls/reset`.
    pub fn calls(&self) -> CallCounts {
        self.shared.lock().controls.calls.clone()
    }

    /// Stops the server; dropping the emulator does the same.
    pub fn shutdown(self) {}
}

impl Drop for GaEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
