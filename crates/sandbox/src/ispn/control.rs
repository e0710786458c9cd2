//! The test-only control API of one site: plain HTTP on its own loopback port, JSON bodies, no
//! auth. Every route is also served under `/_sandbox/` (the Global Accelerator emulator's
//! prefix), so either spelling works.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Pair;
use super::server::{self, Reply, Request};
use super::state::{Fault, FaultEffect, Operation, Side};

pub(crate) async fn handle(pair: Arc<Pair>, side: Side, request: Request) -> Reply {
    let path = request.uri().path().to_string();
    let route = path
        .strip_prefix("/_sandbox")
        .unwrap_or(&path)
        .trim_end_matches('/')
        .to_string();
    let method = request.method().clone();
    let known = [
        "/partition",
        "/down",
        "/reset",
        "/fault",
        "/calls",
        "/calls/reset",
        "/state",
    ];
    if !known.contains(&route.as_str()) {
        return error(
            404,
            &format!("no control at {path}; known: {}", known.join(", ")),
        );
    }
    let expected = if route == "/calls" || route == "/state" {
        Method::GET
    } else {
        Method::POST
    };
    if method != expected {
        return error(405, &format!("{route} takes {expected}"));
    }
    let body = if method == Method::POST {
        match server::read_body(request).await {
            Ok(body) => body,
            Err(message) => return error(400, &message),
        }
    } else {
        bytes::Bytes::new()
    };

    let outcome = match route.as_str() {
        "/partition" => parse::<PartitionRequest>(&body).map(|request| {
            tracing::info!(partitioned = request.partitioned, "Infinispan link");
            pair.lock().set_partitioned(request.partitioned);
            json!({})
        }),
        "/down" => parse::<DownRequest>(&body).map(|request| {
            tracing::info!(site = %pair.site(side).name, down = request.down, "Infinispan site");
            pair.lock().set_down(side, request.down);
            json!({})
        }),
        "/reset" => {
            pair.lock().reset(side);
            Ok(json!({}))
        }
        "/fault" => parse::<FaultRequest>(&body)
            .and_then(FaultRequest::into_change)
            .map(|change| {
                change.apply(&pair, side);
                json!({})
            }),
        "/calls" => {
            let state = pair.lock();
            let calls = &state.site(side).calls;
            Ok(json!({
                "total": calls.total,
                "by_operation": calls.by_operation,
                "timeline": calls.timeline,
            }))
        }
        "/calls/reset" => {
            pair.lock().site_mut(side).calls = Default::default();
            Ok(json!({}))
        }
        _ => Ok(state_json(&pair, side)),
    };
    match outcome {
        Ok(body) => server::json(200, &body),
        Err(message) => error(400, &message),
    }
}

fn error(status: u16, message: &str) -> Reply {
    server::json(status, &json!({ "error": message }))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON body: {error}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionRequest {
    partitioned: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownRequest {
    down: bool,
}

/// `POST /fault`: any combination of `reset`, `latency_ms` and one fault for `operation`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    operation: Option<String>,
    status: Option<u16>,
    message: Option<String>,
    cache_failures: Option<BTreeMap<String, String>>,
    /// Caches a container-level action leaves out of its answer (and unchanged).
    omit_caches: Option<BTreeSet<String>>,
    /// A container-level action's whole answer: `empty_object` (200 `{}`) or `no_content` (204).
    answer: Option<Answer>,
    count: Option<u32>,
    /// The call waits this long, then is served normally (a server that hangs mid-call).
    delay_ms: Option<u64>,
    latency_ms: Option<u64>,
    #[serde(default)]
    reset: bool,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Answer {
    EmptyObject,
    NoContent,
}

/// The fields of a `/fault` request that choose what the fault does; exactly one is given.
const EFFECTS: &str = "status, cache_failures, omit_caches, answer or delay_ms";

/// A validated `/fault` request: nothing is applied unless all of it is valid.
#[derive(Debug, PartialEq)]
struct FaultChange {
    reset: bool,
    latency: Option<Duration>,
    fault: Option<Fault>,
}

impl FaultRequest {
    fn into_change(self) -> Result<FaultChange, String> {
        let reset = self.reset;
        let latency = self.latency_ms.map(Duration::from_millis);
        let fault = match self.operation.clone() {
            Some(name) => Some(self.fault(&name)?),
            None => {
                if self.effects() > 0 || self.count.is_some() || self.message.is_some() {
                    return Err(format!("{EFFECTS}, message and count need an operation"));
                }
                None
            }
        };
        if fault.is_none() && latency.is_none() && !reset {
            return Err(format!(
                "nothing to do: give operation (with {EFFECTS}), latency_ms or reset"
            ));
        }
        Ok(FaultChange {
            reset,
            latency,
            fault,
        })
    }

    /// How many of the effect fields are given.
    fn effects(&self) -> usize {
        [
            self.status.is_some(),
            self.cache_failures.is_some(),
            self.omit_caches.is_some(),
            self.answer.is_some(),
            self.delay_ms.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count()
    }

    fn fault(self, name: &str) -> Result<Fault, String> {
        let operation = Operation::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
            format!("unknown operation '{name}'; known: {}", known.join(", "))
        })?;
        let remaining = self.count.unwrap_or(1);
        if remaining == 0 {
            return Err("count must be at least 1".to_string());
        }
        if self.effects() > 1 {
            return Err(format!("give one of {EFFECTS}"));
        }
        if self.message.is_some() && self.status.is_none() {
            return Err("message goes with status only".to_string());
        }
        let container_only = |field: &str| {
            if matches!(operation, Operation::Container(_)) {
                Ok(())
            } else {
                Err(format!(
                    "{field} applies to container-level actions only \
                     (take-offline, bring-online, start-push-state, cancel-push-state), not '{name}'"
                ))
            }
        };
        let effect = if let Some(status) = self.status {
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "status {status} is not an HTTP error status (400-599)"
                ));
            }
            FaultEffect::Status {
                status,
                message: self
                    .message
                    .unwrap_or_else(|| format!("Injected fault: {name} failed with HTTP {status}")),
            }
        } else if let Some(failures) = self.cache_failures {
            container_only("cache_failures")?;
            if failures.is_empty() {
                return Err("cache_failures must name at least one cache".to_string());
            }
            FaultEffect::CacheFailures(failures)
        } else if let Some(caches) = self.omit_caches {
            container_only("omit_caches")?;
            if caches.is_empty() {
                return Err("omit_caches must name at least one cache".to_string());
            }
            FaultEffect::OmitCaches(caches)
        } else if let Some(answer) = self.answer {
            container_only("answer")?;
            match answer {
                Answer::EmptyObject => FaultEffect::EmptyObject,
                Answer::NoContent => FaultEffect::NoContent,
            }
        } else if let Some(delay) = self.delay_ms {
            FaultEffect::Delay(Duration::from_millis(delay))
        } else {
            return Err(format!("operation '{name}' needs {EFFECTS}"));
        };
        Ok(Fault {
            operation,
            remaining,
            effect,
        })
    }
}

impl FaultChange {
    fn apply(self, pair: &Pair, side: Side) {
        let mut state = pair.lock();
        let site = state.site_mut(side);
        if self.reset {
            site.faults.clear();
            site.latency = Duration::ZERO;
        }
        if let Some(latency) = self.latency {
            site.latency = latency;
        }
        if let Some(fault) = self.fault {
            tracing::info!(site = %site.name, operation = fault.operation.name(), remaining = fault.remaining, "fault armed");
            site.faults.push(fault);
        }
    }
}

fn state_json(pair: &Pair, side: Side) -> Value {
    let options = pair.site(side);
    let state = pair.lock();
    let site = state.site(side);
    let caches: BTreeMap<&str, Value> = site
        .caches
        .iter()
        .map(|(name, cache)| {
            let value = json!({
                "backup": cache.backup.as_str(),
                "push_state": cache.push.as_str(),
                "count": cache.entries.len(),
            });
            (name.as_str(), value)
        })
        .collect();
    let faults: Vec<Value> = site
        .faults
        .iter()
        .map(|fault| {
            let mut value = json!({
                "operation": fault.operation.name(),
                "remaining": fault.remaining,
            });
            match &fault.effect {
                FaultEffect::Status { status, message } => {
                    value["status"] = json!(status);
                    value["message"] = json!(message);
                }
                FaultEffect::CacheFailures(failures) => value["cache_failures"] = json!(failures),
                FaultEffect::OmitCaches(caches) => value["omit_caches"] = json!(caches),
                FaultEffect::EmptyObject => value["answer"] = json!("empty_object"),
                FaultEffect::NoContent => value["answer"] = json!("no_content"),
                FaultEffect::Delay(delay) => {
                    value["delay_ms"] = json!(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                }
            }
            value
        })
        .collect();
    json!({
        "site": site.name,
        "remote_site": options.remote_site,
        "version": options.version.as_str(),
        "down": site.down,
        "partitioned": state.partitioned,
        "remote_in_view": state.link_up(),
        "latency_ms": u64::try_from(site.latency.as_millis()).unwrap_or(u64::MAX),
        "faults": faults,
        "caches": caches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ispn::state::XSiteAction;

    fn change(body: &str) -> Result<FaultChange, String> {
        parse::<FaultRequest>(body.as_bytes()).and_then(FaultRequest::into_change)
    }

    #[test]
    fn status_fault_defaults_to_one_call() {
        let change = change(r#"{"operation": "take-offline", "status": 500}"#).unwrap();
        let fault = change.fault.unwrap();
        assert_eq!(
            fault.operation,
            Operation::Container(XSiteAction::TakeOffline)
        );
        assert_eq!(fault.remaining, 1);
        assert!(matches!(
            fault.effect,
            FaultEffect::Status { status: 500, .. }
        ));
    }

    #[test]
    fn cache_failures_only_for_container_actions() {
        let ok = change(
            r#"{"operation": "take-offline", "cache_failures": {"work": "boom"}, "count": 1}"#,
        );
        assert!(ok.is_ok());
        let refused = change(r#"{"operation": "cache-clear", "cache_failures": {"work": "boom"}}"#);
        assert!(refused.unwrap_err().contains("container-level"));
    }

    #[test]
    fn answers_without_caches_only_for_container_actions() {
        let table = [
            (r#""answer": "empty_object""#, FaultEffect::EmptyObject),
            (r#""answer": "no_content""#, FaultEffect::NoContent),
            (
                r#""omit_caches": ["work"]"#,
                FaultEffect::OmitCaches(BTreeSet::from(["work".to_string()])),
            ),
        ];
        for (field, effect) in table {
            let body = format!(r#"{{"operation": "take-offline", {field}}}"#);
            assert_eq!(
                change(&body).unwrap().fault.unwrap().effect,
                effect,
                "{body}"
            );
            let body = format!(r#"{{"operation": "cache-take-offline", {field}}}"#);
            assert!(
                change(&body).unwrap_err().contains("container-level"),
                "{body}"
            );
            let body = format!(r#"{{"operation": "take-offline", "status": 500, {field}}}"#);
            assert!(change(&body).unwrap_err().contains("one of"), "{body}");
        }
    }

    #[test]
    fn invalid_requests_say_why() {
        for (body, expected) in [
            ("{", "invalid JSON"),
            ("{}", "nothing to do"),
            (
                r#"{"operation": "explode", "status": 500}"#,
                "unknown operation 'explode'",
            ),
            (
                r#"{"operation": "take-offline"}"#,
                "needs status, cache_failures, omit_caches, answer or delay_ms",
            ),
            (
                r#"{"operation": "take-offline", "answer": "nothing"}"#,
                "unknown variant",
            ),
            (
                r#"{"operation": "take-offline", "omit_caches": []}"#,
                "at least one cache",
            ),
            (
                r#"{"operation": "take-offline", "delay_ms": 5, "message": "x"}"#,
                "message goes with status",
            ),
            (r#"{"answer": "no_content"}"#, "need an operation"),
            (
                r#"{"operation": "take-offline", "status": 200}"#,
                "not an HTTP error status",
            ),
            (
                r#"{"operation": "take-offline", "status": 500, "count": 0}"#,
                "at least 1",
            ),
            (r#"{"status": 500}"#, "need an operation"),
            (r#"{"latency": 5}"#, "unknown field"),
        ] {
            let error = change(body).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn a_delay_holds_one_call_of_one_operation() {
        let fault = change(r#"{"operation": "take-offline", "delay_ms": 8000}"#)
            .unwrap()
            .fault
            .unwrap();
        assert_eq!(fault.effect, FaultEffect::Delay(Duration::from_secs(8)));
        assert_eq!(fault.remaining, 1);
        let both = change(r#"{"operation": "take-offline", "delay_ms": 5, "status": 500}"#);
        assert!(both.unwrap_err().contains("one of"));
    }

    #[test]
    fn latency_and_reset_alone_are_valid() {
        assert_eq!(
            change(r#"{"latency_ms": 20}"#).unwrap().latency,
            Some(Duration::from_millis(20))
        );
        assert!(change(r#"{"reset": true}"#).unwrap().reset);
    }
}
