//! Test controls under `/_sandbox/` on the emulator's own port: injected AWS errors, added
//! latency, imposed health states, reset to the seeded topology, call counts and a state dump.
//! Plain JSON in and out; a bad request answers 400 with `{"message": …}`.

use super::error::GaError;
use super::model::{Health, HealthState};
use super::wire::Operation;
use super::{Shared, State as EmulatorState};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A latency longer than this is a typo, not a test.
const MAX_LATENCY_MS: u64 = 600_000;

/// AWS calls received (control calls excluded), as `GET /_sandbox/calls` answers them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    pub total: u64,
    pub by_operation: BTreeMap<String, u64>,
    /// Each call's span, in the order they ended.
    #[serde(default)]
    pub timeline: Vec<crate::timeline::Span>,
}

impl CallCounts {
    /// Calls of one operation, e.g. `"RemoveEndpoints"`.
    pub fn operation(&self, operation: &str) -> u64 {
        self.by_operation.get(operation).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
pub(super) struct Controls {
    faults: HashMap<Operation, Fault>,
    latency: Duration,
    pub calls: CallCounts,
}

#[derive(Debug, Clone, Serialize)]
struct Fault {
    error: String,
    message: String,
    remaining: u32,
    /// Only calls naming this endpoint group fail (and count); calls on other groups pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_group_arn: Option<String>,
}

impl Controls {
    /// Counts a call and says how long to delay it and which injected error, if any, it gets.
    /// `endpoint_group_arn` is the group the call names, if any.
    pub fn begin_call(
        &mut self,
        operation: Operation,
        endpoint_group_arn: Option<&str>,
    ) -> (Duration, Option<GaError>) {
        crate::timeline::label(operation.name());
        self.calls.total += 1;
        *self
            .calls
            .by_operation
            .entry(operation.name().to_owned())
            .or_default() += 1;
        let error = self
            .faults
            .get_mut(&operation)
            .filter(|fault| {
                fault
                    .endpoint_group_arn
                    .as_deref()
                    .is_none_or(|arn| Some(arn) == endpoint_group_arn)
            })
            .map(|fault| {
                fault.remaining = fault.remaining.saturating_sub(1);
                GaError::new(fault.error.clone(), fault.message.clone())
            });
        self.faults.retain(|_, fault| fault.remaining > 0);
        (self.latency, error)
    }

    pub fn clear(&mut self) {
        self.faults.clear();
        self.latency = Duration::ZERO;
    }
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/fault", post(fault))
        .route("/_sandbox/health", post(health))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/calls/reset", post(reset_calls))
        .route("/_sandbox/state", get(dump))
}

pub(super) struct ControlError(StatusCode, String);

impl ControlError {
    fn bad_request(message: impl Into<String>) -> Self {
        ControlError(StatusCode::BAD_REQUEST, message.into())
    }

    pub fn not_found(path: &str) -> Self {
        ControlError(StatusCode::NOT_FOUND, format!("no such path: {path}"))
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "message": self.1 }))).into_response()
    }
}

type ControlResult = Result<Json<Value>, ControlError>;

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|error| ControlError::bad_request(format!("invalid control request: {error}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    operation: Option<String>,
    error: Option<String>,
    count: Option<u32>,
    message: Option<String>,
    /// Only calls naming this endpoint group fail (e.g. a removal that fails on the second
    /// group a fence changes, after the first went through).
    endpoint_group_arn: Option<String>,
    latency_ms: Option<u64>,
    #[serde(default)]
    reset: bool,
}

async fn fault(State(shared): State<Arc<Shared>>, body: Bytes) -> ControlResult {
    let request: FaultRequest = parse(&body)?;
    let fault = match (request.operation, request.error) {
        (Some(operation), Some(error)) => {
            let operation = Operation::from_name(&operation).ok_or_else(|| {
                let known: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
                ControlError::bad_request(format!(
                    "unknown operation {operation:?}; expected one of {}",
                    known.join(", ")
                ))
            })?;
            if error.is_empty() || !error.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ControlError::bad_request(format!(
                    "error {error:?} is not an AWS error code such as TransactionInProgressException"
                )));
            }
            let message = request
                .message
                .unwrap_or_else(|| format!("{error} injected by the sandbox"));
            let remaining = request.count.unwrap_or(1);
            Some((
                operation,
                Fault {
                    error,
                    message,
                    remaining,
                    endpoint_group_arn: request.endpoint_group_arn,
                },
            ))
        }
        (None, None) if request.endpoint_group_arn.is_some() => {
            return Err(ControlError::bad_request(
                "\"endpoint_group_arn\" needs \"operation\" and \"error\"",
            ));
        }
        (None, None) => None,
        _ => {
            return Err(ControlError::bad_request(
                "\"operation\" and \"error\" must be given together",
            ));
        }
    };
    if let Some(ms) = request.latency_ms.filter(|ms| *ms > MAX_LATENCY_MS) {
        return Err(ControlError::bad_request(format!(
            "latency_ms {ms} is above the limit of {MAX_LATENCY_MS}"
        )));
    }
    if fault.is_none() && request.latency_ms.is_none() && !request.reset {
        return Err(ControlError::bad_request(
            "expected {\"operation\", \"error\", \"count\"}, {\"latency_ms\"} or {\"reset\": true}",
        ));
    }
    let mut state = shared.lock();
    let controls = &mut state.controls;
    if request.reset {
        controls.clear();
    }
    if let Some(ms) = request.latency_ms {
        controls.latency = Duration::from_millis(ms);
    }
    if let Some((operation, fault)) = fault {
        if fault.remaining == 0 {
            controls.faults.remove(&operation);
        } else {
            controls.faults.insert(operation, fault);
        }
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthRequest {
    endpoint_id: Option<String>,
    state: Option<HealthState>,
    initial_health_check_ms: Option<u64>,
}

async fn health(State(shared): State<Arc<Shared>>, body: Bytes) -> ControlResult {
    let request: HealthRequest = parse(&body)?;
    let imposed = match (request.endpoint_id, request.state) {
        (Some(endpoint_id), Some(state)) if !endpoint_id.is_empty() => Some((endpoint_id, state)),
        (None, None) if request.initial_health_check_ms.is_some() => None,
        _ => {
            return Err(ControlError::bad_request(
                "expected {\"endpoint_id\": \"…\", \"state\": \"INITIAL\" | \"HEALTHY\" | \"UNHEALTHY\"} \
                 or {\"initial_health_check_ms\": N}",
            ));
        }
    };
    let mut state = shared.lock();
    if let Some(ms) = request.initial_health_check_ms {
        state
            .health
            .set_initial_health_check(Duration::from_millis(ms));
    }
    if let Some((endpoint_id, health_state)) = imposed {
        state.health.set(endpoint_id, health_state);
    }
    Ok(Json(json!({})))
}

async fn reset(State(shared): State<Arc<Shared>>) -> ControlResult {
    let mut state = shared.lock();
    state.topology = state.seeded.clone();
    state.health = Health::default();
    state.controls.clear();
    Ok(Json(json!({})))
}

async fn calls(State(shared): State<Arc<Shared>>) -> Json<CallCounts> {
    Json(shared.lock().controls.calls.clone())
}

async fn reset_calls(State(shared): State<Arc<Shared>>) -> ControlResult {
    shared.lock().controls.calls = CallCounts::default();
    Ok(Json(json!({})))
}

async fn dump(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(state_dump(&shared.lock()))
}

/// Every accelerator with its tags, listeners and endpoint groups, as the API describes them.
fn state_dump(state: &EmulatorState) -> Value {
    let topology = &state.topology;
    let accelerators: Vec<Value> = topology
        .accelerators()
        .iter()
        .map(|accelerator| {
            let listeners: Vec<Value> = topology
                .listeners_of(&accelerator.accelerator_arn)
                .map(|listener| {
                    let groups: Vec<Value> = topology
                        .endpoint_groups_of(&listener.listener_arn)
                        .map(|group| json!(group.describe(&state.health)))
                        .collect();
                    json!({ "Listener": listener, "EndpointGroups": groups })
                })
                .collect();
            json!({ "Accelerator": accelerator, "Tags": accelerator.tags, "Listeners": listeners })
        })
        .collect();
    let faults: BTreeMap<&str, &Fault> = state
        .controls
        .faults
        .iter()
        .map(|(operation, fault)| (operation.name(), fault))
        .collect();
    json!({
        "accelerators": accelerators,
        "health_overrides": state.health.overrides(),
        "faults": faults,
        "latency_ms": state.controls.latency.as_millis(),
        "calls": state.controls.calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_aimed_at_one_group_spares_the_others() {
        let mut controls = Controls::default();
        controls.faults.insert(
            Operation::RemoveEndpoints,
            Fault {
                error: "AccessDeniedException".to_owned(),
                message: "refused".to_owned(),
                remaining: 1,
                endpoint_group_arn: Some("group-2".to_owned()),
            },
        );
        let code = |controls: &mut Controls, group: Option<&str>| {
            controls
                .begin_call(Operation::RemoveEndpoints, group)
                .1
                .map(|e| e.code.into_owned())
        };
        assert_eq!(code(&mut controls, Some("group-1")), None);
        assert_eq!(code(&mut controls, None), None);
        assert_eq!(
            code(&mut controls, Some("group-2")).as_deref(),
            Some("AccessDeniedException")
        );
        assert_eq!(code(&mut controls, Some("group-2")), None, "used up");
        assert_eq!(controls.calls.operation("RemoveEndpoints"), 4);
    }
}
