//! The Lambda Runtime API (2018-06-01), served at the root path of each instance's address.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::state::{Outcome, Poller, Shared, error_document};
use super::wire::{self, BodyError, Reply};

const PREFIX: &str = "/2018-06-01/runtime/";

/// A buffered response may be 6 MB, as on Lambda.
const MAX_BUFFERED_RESPONSE: usize = 6 * 1024 * 1024;
/// A streamed response may be larger; 20 MiB is the limit Lambda documented first.
const MAX_STREAMED_RESPONSE: usize = 20 * 1024 * 1024;

const STREAMING_MODE: &str = "lambda-runtime-function-response-mode";
const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const ERROR_BODY: &str = "lambda-runtime-function-error-body";

pub(super) fn serve(shared: Arc<Shared>, listener: TcpListener, poller: Poller) -> AbortHandle {
    let runtime = shared.runtime().clone();
    wire::serve(&runtime, listener, move |request, _peer| {
        let shared = shared.clone();
        async move { handle(shared, poller, request).await }
    })
}

async fn handle(shared: Arc<Shared>, poller: Poller, request: http::Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let Some(route) = request
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .map(str::to_string)
    else {
        return not_found();
    };
    let segments: Vec<&str> = route.split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET, ["invocation", "next"]) => next(&shared, poller).await,
        (Method::POST, ["invocation", request_id, "response"]) => {
            respond(&shared, poller, request_id, request).await
        }
        (Method::POST, ["invocation", request_id, "error"]) => {
            report_error(&shared, poller, request_id, request).await
        }
        (Method::POST, ["init", "error"]) => init_error(&shared, poller, request).await,
        _ => not_found(),
    }
}

async fn next(shared: &Arc<Shared>, poller: Poller) -> Reply {
    let next = shared.next(poller).await;
    let mut reply = wire::json(StatusCode::OK, next.event);
    wire::set_header(
        &mut reply,
        "Lambda-Runtime-Aws-Request-Id",
        &next.request_id,
    );
    wire::set_header(
        &mut reply,
        "Lambda-Runtime-Deadline-Ms",
        &next.deadline_ms.to_string(),
    );
    wire::set_header(
        &mut reply,
        "Lambda-Runtime-Invoked-Function-Arn",
        &next.function_arn,
    );
    wire::set_header(&mut reply, "Lambda-Runtime-Trace-Id", &next.trace_id);
    if let Some(context) = &next.client_context {
        wire::set_header(&mut reply, "Lambda-Runtime-Client-Context", context);
    }
    reply
}

async fn respond(
    shared: &Shared,
    poller: Poller,
    request_id: &str,
    request: http::Request<Incoming>,
) -> Reply {
    let headers = request.headers().clone();
    let streamed =
        header(&headers, STREAMING_MODE).is_some_and(|mode| mode.eq_ignore_ascii_case("streaming"));
    let limit = if streamed {
        MAX_STREAMED_RESPONSE
    } else {
        MAX_BUFFERED_RESPONSE
    };
    let outcome = match wire::collect(request.into_body(), limit).await {
        Ok(body) => match body.trailers.as_ref().and_then(|t| header(t, ERROR_TYPE)) {
            // A stream that failed half-way reports the error in trailers.
            Some(error_type) => Outcome::Error {
                body: streamed_error(
                    error_type,
                    body.trailers.as_ref().and_then(|t| header(t, ERROR_BODY)),
                ),
            },
            None => Outcome::Response {
                payload: body.bytes,
                http_integration: streamed
                    && header(&headers, "content-type")
                        .is_some_and(|t| t.starts_with(HTTP_INTEGRATION)),
            },
        },
        Err(BodyError::TooLarge) => {
            let message = format!(
                "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
            );
            let body = error_document("Function.ResponseSizeTooLarge", &message);
            let _ = shared.complete(poller, request_id, Outcome::Error { body });
            return wire::json(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "errorMessage": message, "errorType": "RequestEntityTooLarge" })
                    .to_string(),
            );
        }
        Err(BodyError::Broken) => return bad_request("the response body could not be read"),
    };
    accepted(shared.complete(poller, request_id, outcome))
}

async fn report_error(
    shared: &Shared,
    poller: Poller,
    request_id: &str,
    request: http::Request<Incoming>,
) -> Reply {
    let error_type = header(request.headers(), ERROR_TYPE)
        .unwrap_or("Unhandled")
        .to_string();
    let body = match wire::collect(request.into_body(), MAX_BUFFERED_RESPONSE).await {
        Ok(body) => error_body(&error_type, body.bytes),
        Err(_) => error_document(&error_type, "the error body could not be read"),
    };
    accepted(shared.complete(poller, request_id, Outcome::Error { body }))
}

async fn init_error(shared: &Shared, poller: Poller, request: http::Request<Incoming>) -> Reply {
    let error_type = header(request.headers(), ERROR_TYPE)
        .unwrap_or("Runtime.Unknown")
        .to_string();
    let body = match wire::collect(request.into_body(), MAX_BUFFERED_RESPONSE).await {
        Ok(body) => error_body(&error_type, body.bytes),
        Err(_) => error_document(&error_type, "the error body could not be read"),
    };
    shared.init_error(poller, body);
    wire::json(StatusCode::ACCEPTED, json!({ "status": "OK" }).to_string())
}

/// The runtime's error document as posted when it is one; otherwise one made from it.
fn error_body(error_type: &str, posted: Bytes) -> Bytes {
    let is_document =
        serde_json::from_slice::<serde_json::Value>(&posted).is_ok_and(|v| v.is_object());
    if is_document {
        posted
    } else {
        error_document(error_type, String::from_utf8_lossy(&posted).trim())
    }
}

fn streamed_error(error_type: &str, encoded_body: Option<&str>) -> Bytes {
    match encoded_body.and_then(|b| BASE64.decode(b.trim()).ok()) {
        Some(body) => error_body(error_type, Bytes::from(body)),
        None => error_document(error_type, "the response stream failed"),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepted(result: Result<(), super::state::UnknownRequest>) -> Reply {
    match result {
        Ok(()) => wire::json(StatusCode::ACCEPTED, json!({ "status": "OK" }).to_string()),
        // Also what a runtime gets when it answers after its invocation timed out.
        Err(_) => wire::json(
            StatusCode::BAD_REQUEST,
            json!({ "errorMessage": "Invalid request ID", "errorType": "InvalidRequestID" })
                .to_string(),
        ),
    }
}

fn bad_request(message: &str) -> Reply {
    wire::json(
        StatusCode::BAD_REQUEST,
        json!({ "errorMessage": message, "errorType": "InvalidRequest" }).to_string(),
    )
}

fn not_found() -> Reply {
    wire::json(
        StatusCode::NOT_FOUND,
        json!({ "errorMessage": "Not found", "errorType": "NotFound" }).to_string(),
    )
}
