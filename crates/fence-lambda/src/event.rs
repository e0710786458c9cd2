//! The Function URL front: the event Lambda writes for a request to the function's URL (payload
//! format 2.0), read without trusting any of it, and the answer in the same format.
//!
//! The fence reads only the headers and the body. It does not go through `lambda_http`, whose
//! event decoder panics on envelopes it cannot turn into an `http::Request` (an invalid
//! `x-forwarded-proto` or domain, a body marked base64 that is not), found by fuzzing; here
//! every such event is a 400 with a decision record, and the decoder links no URL or IDNA
//! crates.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::handler::{AfterAnswer, Invocation, Report, Settings, World, handle, now_ms};

/// Time kept aside at the end of the invocation for the answer and the work after it (the
/// notifications, the completion).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(2);
/// Of that, what is left unused at the very end: the work after the answer stops before it.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(500);

/// What the fence reads of a Function URL event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUrlRequest {
    pub headers: HeaderMap,
    /// Decoded when Lambda sent it base64-encoded.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a Function URL request (payload format 2.0): {0}")]
    NotAFunctionUrlRequest(String),
    #[error("the body is marked base64-encoded but is not base64: {0}")]
    NotBase64(String),
}

/// The envelope's fields the fence reads; everything else in it is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    /// Lower-case names; Lambda joins repeated headers with commas.
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

/// When the Function URL received the request (`requestContext.timeEpoch`, milliseconds since
/// the epoch), when the event says.
pub fn received_at_ms(event: &serde_json::Value) -> Option<u64> {
    event.get("requestContext")?.get("timeEpoch")?.as_u64()
}

impl FunctionUrlRequest {
    pub fn from_event(event: serde_json::Value) -> Result<FunctionUrlRequest, EventError> {
        let envelope: Envelope = serde_json::from_value(event)
            .map_err(|err| EventError::NotAFunctionUrlRequest(err.to_string()))?;
        let body = match envelope.body {
            None => Vec::new(),
            Some(body) if envelope.is_base64_encoded => base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|err| EventError::NotBase64(err.to_string()))?,
            Some(body) => body.into_bytes(),
        };
        let mut headers = HeaderMap::with_capacity(envelope.headers.len());
        for (name, value) in envelope.headers {
            // Lambda writes only valid names and values; a header that is neither cannot come
            // from it and is dropped rather than trusted.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
        Ok(FunctionUrlRequest { headers, body })
    }
}

/// The answer as a Function URL returns it to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl From<&Report> for FunctionUrlResponse {
    fn from(decision: &Report) -> FunctionUrlResponse {
        let (parts, body) = decision.http_response().into_parts();
        FunctionUrlResponse {
            status_code: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            body,
            is_base64_encoded: false,
        }
    }
}

/// Handles one Function URL event as a caller without a runtime does: the answer, and what
/// follows it ([`AfterAnswer`]) done before returning.
pub async fn handle_event<W: World>(
    world: &W,
    settings: &Settings,
    event: serde_json::Value,
    invocation_deadline_ms: u64,
    request_id: &str,
) -> FunctionUrlResponse {
    let (response, after_answer) =
        answer_event(world, settings, event, invocation_deadline_ms, request_id).await;
    after_answer.run(world).await;
    response
}

/// Handles one Function URL event up to its answer: reads it, runs the handler, logs the
/// decision record and answers, and gives back what is left to do once the answer has gone
/// (the bootstrap runs it after posting the answer). `invocation_deadline_ms` is the
/// invocation's deadline (milliseconds since the epoch, 0 when unknown); `request_id` is
/// Lambda's id of the invocation.
pub async fn answer_event<W: World>(
    world: &W,
    settings: &Settings,
    event: serde_json::Value,
    invocation_deadline_ms: u64,
    request_id: &str,
) -> (FunctionUrlResponse, AfterAnswer) {
    let started = Instant::now();
    let deadline = deadline(invocation_deadline_ms, settings.retry_budget);
    let invocation = Invocation {
        request_id: request_id.to_owned(),
        deadline,
        answer_by: deadline + (ANSWER_MARGIN - ANSWER_RESERVE),
    };
    let mut decision = match FunctionUrlRequest::from_event(event) {
        Ok(request) => {
            handle(
                world,
                settings,
                &invocation,
                &request.headers,
                &request.body,
            )
            .await
        }
        Err(err) => Report::bad_event(err.to_string()),
    };
    common::logging::decision_record(&decision.to_json());
    common::metrics::emit(&decision.metrics(started.elapsed(), now_ms()));
    let after_answer = std::mem::take(&mut decision.after_answer);
    (FunctionUrlResponse::from(&decision), after_answer)
}

/// The latest the invocation's work ends, counted from its start, for a function with
/// `lambda_timeout` and `budget`: the fence's work stops at its deadline (the budget, or the
/// invocation's end less [`ANSWER_MARGIN`]) and the answer leaves then; the notifications and
/// the completion after it get what is left of the margin but [`ANSWER_RESERVE`]. Every remote
/// call inside is cut at those instants whatever its own timeout.
pub fn worst_case_answer(lambda_timeout: Duration, budget: Duration) -> Duration {
    budget.min(lambda_timeout.saturating_sub(ANSWER_MARGIN)) + (ANSWER_MARGIN - ANSWER_RESERVE)
}

/// The retry deadline: the budget, cut short by the invocation's own deadline.
fn deadline(invocation_deadline_ms: u64, budget: Duration) -> Instant {
    let now = Instant::now();
    let by_budget = now + budget;
    if invocation_deadline_ms == 0 {
        return by_budget;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let left = Duration::from_millis(invocation_deadline_ms.saturating_sub(now_ms))
        .saturating_sub(ANSWER_MARGIN);
    by_budget.min(now + left)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_headers_and_a_plain_body() {
        let request = FunctionUrlRequest::from_event(json!({
            "version": "2.0",
            "headers": {"content-type": "application/json", "authorization": "Basic eDp5"},
            "body": "{}",
            "isBase64Encoded": false
        }))
        .unwrap();
        assert_eq!(request.body, b"{}");
        assert_eq!(request.headers["authorization"], "Basic eDp5");
    }

    #[test]
    fn decodes_a_base64_body_and_refuses_one_that_is_not() {
        let event = |body: &str| json!({"headers": {}, "body": body, "isBase64Encoded": true});
        assert_eq!(
            FunctionUrlRequest::from_event(event("e30=")).unwrap().body,
            b"{}"
        );
        assert!(matches!(
            FunctionUrlRequest::from_event(event("e30}")),
            Err(EventError::NotBase64(_))
        ));
    }

    #[test]
    fn an_envelope_of_the_wrong_shape_is_an_error_not_a_panic() {
        for event in [
            json!(null),
            json!([1, 2]),
            json!({"headers": {"a": 1}}),
            json!({"body": 5}),
            json!({"isBase64Encoded": "yes"}),
        ] {
            assert!(
                matches!(
                    FunctionUrlRequest::from_event(event.clone()),
                    Err(EventError::NotAFunctionUrlRequest(_))
                ),
                "{event}"
            );
        }
    }

    #[test]
    fn the_time_the_function_url_received_the_request_is_read_when_present() {
        let event = json!({"requestContext": {"timeEpoch": 1_795_601_660_000_u64}});
        assert_eq!(received_at_ms(&event), Some(1_795_601_660_000));
        for event in [
            json!({}),
            json!({"requestContext": {}}),
            json!({"requestContext": {"timeEpoch": "soon"}}),
            json!([1]),
        ] {
            assert_eq!(received_at_ms(&event), None, "{event}");
        }
    }

    #[test]
    fn headers_lambda_could_not_have_written_are_dropped() {
        let request = FunctionUrlRequest::from_event(json!({
            "headers": {"bad name": "x", "ok": "line\nbreak", "content-type": "application/json"}
        }))
        .unwrap();
        assert_eq!(request.headers.len(), 1);
        assert!(request.body.is_empty());
    }

    #[test]
    fn the_invocation_deadline_cuts_the_budget_short() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = Duration::from_secs(60);
        let cut = deadline(now_ms + 5_000, budget);
        assert!(cut <= Instant::now() + Duration::from_secs(3));
        assert!(deadline(0, budget) > Instant::now() + Duration::from_secs(59));
    }
}
