//! The glue between `lambda_http` and [`crate::handler`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::{Body, Request, RequestExt};

use crate::handler::{Decision, Settings, World, handle};

/// Time kept aside at the end of the invocation to answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Handles a Function URL request (payload 2.0; `lambda_http` has already decoded a base64
/// body), logs the decision record and answers.
pub async fn handle_request<W: World>(
    world: &W,
    settings: &Settings,
    request: Request,
) -> http::Response<String> {
    let deadline = deadline(&request, settings.retry_budget);
    let body: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let decision: Decision = handle(world, settings, request.headers(), body, deadline).await;
    common::logging::decision_record(&decision.to_json());
    decision.http_response()
}

/// The retry deadline: the budget, cut short by the invocation's own deadline.
fn deadline(request: &Request, budget: Duration) -> Instant {
    let now = Instant::now();
    let by_budget = now + budget;
    let Some(context) = request.lambda_context_ref() else {
        return by_budget;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let left = Duration::from_millis(context.deadline.saturating_sub(now_ms))
        .saturating_sub(ANSWER_MARGIN);
    if context.deadline == 0 {
        by_budget
    } else {
        by_budget.min(now + left)
    }
}
