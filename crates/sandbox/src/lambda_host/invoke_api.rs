//! Lambda's Invoke API (`POST /2015-03-31/functions/NAME/invocations`) for this one
//! function, plus the host's stats.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::function_url::MAX_REQUEST;
use super::ids;
use super::state::{Invocation, Outcome, Shared};
use super::wire::{self, BodyError, Reply};

pub(super) const STATS_PATH: &str = "/_sandbox/stats";

pub(super) fn invoke_path(function_name: &str) -> String {
    format!("/2015-03-31/functions/{function_name}/invocations")
}

pub(super) fn serve(shared: Arc<Shared>, listener: TcpListener) -> AbortHandle {
    let runtime = shared.runtime().clone();
    wire::serve(&runtime, listener, move |request, _peer| {
        let shared = shared.clone();
        async move { handle(shared, request).await }
    })
}

async fn handle(shared: Arc<Shared>, request: http::Request<Incoming>) -> Reply {
    let path = request.uri().path();
    if request.method() == Method::GET && path == STATS_PATH {
        return match serde_json::to_vec(&shared.stats()) {
            Ok(body) => wire::json(StatusCode::OK, body),
            Err(error) => wire::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": error.to_string() }).to_string(),
            ),
        };
    }
    let named = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(|name| names_function(name, &shared.spec.name));
    match (request.method(), named) {
        (&Method::POST, Some(true)) => invoke(&shared, request).await,
        (&Method::POST, Some(false)) => wire::aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            json!({ "Type": "User", "message": format!("Function not found: {}", shared.function_arn) }),
        ),
        _ => wire::aws_error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            json!({ "Type": "User", "message": "Unknown operation" }),
        ),
    }
}

/// The path names the function by name, by ARN, or by either with the `$LATEST` qualifier.
fn names_function(given: &str, name: &str) -> bool {
    let given = given
        .replace("%24", "$")
        .replace("%3A", ":")
        .replace("%3a", ":");
    let given = given.strip_suffix(":$LATEST").unwrap_or(&given);
    given == name
        || given
            .rsplit_once(":function:")
            .is_some_and(|(_, n)| n == name)
}

async fn invoke(shared: &Arc<Shared>, request: http::Request<Incoming>) -> Reply {
    let request_id = ids::request_id();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let invocation_type =
        header("x-amz-invocation-type").unwrap_or_else(|| "RequestResponse".to_string());
    // The Invoke API takes the client context in base64; the runtime gets it as JSON.
    let client_context = header("x-amz-client-context")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .map(|decoded| String::from_utf8_lossy(&decoded).into_owned());
    let event = match wire::collect(request.into_body(), MAX_REQUEST).await {
        Ok(body) if body.bytes.is_empty() => Bytes::from_static(b"{}"),
        Ok(body) => body.bytes,
        Err(BodyError::TooLarge) => {
            return wire::aws_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                json!({ "Type": "User", "message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation" }),
            );
        }
        Err(BodyError::Broken) => {
            return wire::aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                json!({ "Type": "User", "message": "The request body could not be read" }),
            );
        }
    };
    if serde_json::from_slice::<serde_json::Value>(&event).is_err() {
        return wire::aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            json!({ "Type": "User", "message": "Could not parse request body into json" }),
        );
    }
    if invocation_type == "DryRun" {
        return with_request_id(
            wire::json(StatusCode::NO_CONTENT, Bytes::new()),
            &request_id,
        );
    }
    let invocation = Invocation {
        request_id: request_id.clone(),
        event,
        client_context,
    };
    let Ok(outcome) = shared.submit(invocation) else {
        return with_request_id(
            wire::aws_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                json!({
                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                    "Type": "User",
                    "message": "Rate Exceeded.",
                }),
            ),
            &request_id,
        );
    };
    if invocation_type == "Event" {
        // Asynchronous: accepted now, run in the background.
        return with_request_id(wire::json(StatusCode::ACCEPTED, Bytes::new()), &request_id);
    }
    let reply = match outcome.await {
        Ok(Outcome::Response { payload, .. }) => wire::json(StatusCode::OK, payload),
        Ok(Outcome::Error { body }) => {
            let mut reply = wire::json(StatusCode::OK, body);
            wire::set_header(&mut reply, "X-Amz-Function-Error", "Unhandled");
            reply
        }
        Err(_) => wire::aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            json!({ "Type": "Service", "message": "The function host stopped" }),
        ),
    };
    let mut reply = with_request_id(reply, &request_id);
    wire::set_header(&mut reply, "X-Amz-Executed-Version", "$LATEST");
    reply
}

fn with_request_id(mut reply: Reply, request_id: &str) -> Reply {
    wire::set_header(&mut reply, "x-amzn-RequestId", request_id);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_is_named_by_name_or_arn() {
        assert!(names_function("fence-lambda", "fence-lambda"));
        assert!(names_function("fence-lambda:$LATEST", "fence-lambda"));
        assert!(names_function("fence-lambda%3A%24LATEST", "fence-lambda"));
        assert!(names_function(
            "arn:aws:lambda:eu-west-1:123456789012:function:fence-lambda",
            "fence-lambda"
        ));
        assert!(!names_function("other", "fence-lambda"));
        assert!(!names_function(
            "arn:aws:lambda:eu-west-1:123456789012:function:other",
            "fence-lambda"
        ));
    }
}
