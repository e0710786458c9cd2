//! The Function URL front: plain HTTP in, a payload format 2.0 event to the function, the
//! function's answer back out as HTTP, following the documented Function URL rules.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, Version, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::ids;
use super::state::{Invocation, Outcome, Shared};
use super::wire::{self, BodyError, Reply};

/// Lambda's request payload limit for synchronous invocations (6 MB).
pub(super) const MAX_REQUEST: usize = 6 * 1024 * 1024;

pub(super) fn serve(shared: Arc<Shared>, listener: TcpListener) -> AbortHandle {
    let runtime = shared.runtime().clone();
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    wire::serve(&runtime, listener, move |request, peer| {
        let shared = shared.clone();
        async move { handle(shared, request, peer, port).await }
    })
}

async fn handle(
    shared: Arc<Shared>,
    request: http::Request<Incoming>,
    peer: SocketAddr,
    port: u16,
) -> Reply {
    let request_id = ids::request_id();
    let (parts, body) = request.into_parts();
    let body = match wire::collect(body, MAX_REQUEST).await {
        Ok(body) => body.bytes,
        Err(BodyError::TooLarge) => {
            return with_request_id(
                message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                ),
                &request_id,
            );
        }
        Err(BodyError::Broken) => {
            return with_request_id(message(StatusCode::BAD_REQUEST, "Bad Request"), &request_id);
        }
    };
    // Lambda checks the resource policy before the function sees anything.
    if let Err(denied) = shared.configuration().url_access.authorize() {
        tracing::info!(function = %shared.spec.name, %denied, "function URL request refused");
        let mut reply = message(StatusCode::FORBIDDEN, super::url_auth::FORBIDDEN_MESSAGE);
        wire::set_header(&mut reply, "x-amzn-ErrorType", "AccessDeniedException");
        return with_request_id(reply, &request_id);
    }
    let site = UrlSite {
        url_id: &shared.url_id,
        region: &shared.region,
        port,
    };
    let event = request_event(&parts, &body, peer, &site, &request_id, SystemTime::now());
    let invocation = Invocation {
        request_id: request_id.clone(),
        event: Bytes::from(event.to_string()),
        client_context: None,
    };
    let reply = match shared.submit(invocation) {
        Err(_throttled) => {
            let mut reply = message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.");
            wire::set_header(&mut reply, "x-amzn-ErrorType", "TooManyRequestsException");
            reply
        }
        Ok(outcome) => match outcome.await {
            Ok(outcome) => http_response(&outcome),
            Err(_) => function_failed(),
        },
    };
    with_request_id(reply, &request_id)
}

/// Where the Function URL appears to live.
pub(super) struct UrlSite<'a> {
    pub url_id: &'a str,
    pub region: &'a str,
    pub port: u16,
}

/// The payload format 2.0 event for one request.
pub(super) fn request_event(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    site: &UrlSite<'_>,
    request_id: &str,
    now: SystemTime,
) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            // Cookies travel in their own field, not as a header.
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        // Header names are lower-case already (http normalises them); repeats are joined.
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    // What the Function URL's own proxy adds on the way in.
    let source_ip = peer.ip().to_string();
    match headers.get_mut("x-forwarded-for") {
        Some(Value::String(chain)) => {
            chain.push_str(", ");
            chain.push_str(&source_ip);
        }
        _ => {
            headers.insert(
                "x-forwarded-for".to_string(),
                Value::String(source_ip.clone()),
            );
        }
    }
    headers.insert(
        "x-forwarded-proto".to_string(),
        Value::String("http".to_string()),
    );
    headers.insert(
        "x-forwarded-port".to_string(),
        Value::String(site.port.to_string()),
    );
    headers.entry("x-amzn-trace-id").or_insert_with(|| {
        Value::String(
            ids::trace_id(now)
                .split(';')
                .next()
                .unwrap_or_default()
                .to_string(),
        )
    });

    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let protocol = match parts.version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let domain_name = format!("{}.lambda-url.{}.on.aws", site.url_id, site.region);

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": site.url_id,
            "domainName": domain_name,
            "domainPrefix": site.url_id,
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": ids::request_time(now),
            "timeEpoch": ids::unix_millis(now),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !raw_query.is_empty() {
        event["queryStringParameters"] = Value::Object(query_parameters(&raw_query));
    }
    if !body.is_empty() {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type) => event["body"] = Value::String(text.to_string()),
            _ => {
                event["body"] = Value::String(BASE64.encode(body));
                event["isBase64Encoded"] = Value::Bool(true);
            }
        }
    }
    event
}

/// Which bodies reach the function as text. Lambda encodes every other body in base64,
/// including requests without a content type and `application/x-www-form-urlencoded`.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.starts_with("text/")
        || matches!(
            media_type.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
}

/// `queryStringParameters`: decoded, repeated parameters joined with commas.
fn query_parameters(raw_query: &str) -> Map<String, Value> {
    let mut parameters: Map<String, Value> = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        match parameters.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(name, Value::String(value));
            }
        }
    }
    parameters
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The HTTP response for the function's outcome.
pub(super) fn http_response(outcome: &Outcome) -> Reply {
    match outcome {
        Outcome::Error { .. } => function_failed(),
        Outcome::Response {
            payload,
            http_integration: true,
        } => streamed_response(payload),
        Outcome::Response { payload, .. } => buffered_response(payload),
    }
}

/// A buffered answer: an object with `statusCode` describes the response; any other JSON
/// is the body of a 200 `application/json` response.
fn buffered_response(payload: &Bytes) -> Reply {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(fields)) if fields.contains_key("statusCode") => {
            described_response(&fields, None).unwrap_or_else(|_| function_failed())
        }
        _ => wire::json(StatusCode::OK, payload.clone()),
    }
}

/// A streamed answer: a JSON prelude, eight NUL bytes, then the body as it is.
fn streamed_response(payload: &Bytes) -> Reply {
    const DELIMITER: &[u8] = &[0; 8];
    let split = payload
        .windows(DELIMITER.len())
        .position(|w| w == DELIMITER);
    let Some(at) = split else {
        return function_failed();
    };
    match serde_json::from_slice::<Value>(&payload[..at]) {
        Ok(Value::Object(prelude)) => {
            let body = payload.slice(at + DELIMITER.len()..);
            described_response(&prelude, Some(body)).unwrap_or_else(|_| function_failed())
        }
        _ => function_failed(),
    }
}

/// The function's answer does not make a valid HTTP response.
struct Malformed;

fn described_response(
    fields: &Map<String, Value>,
    streamed_body: Option<Bytes>,
) -> Result<Reply, Malformed> {
    let status = match fields.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        None if streamed_body.is_some() => Some(200),
        _ => None,
    };
    let status = status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(Malformed)?;
    let body = match streamed_body {
        Some(body) => body,
        None => {
            let base64 = matches!(fields.get("isBase64Encoded"), Some(Value::Bool(true)));
            match fields.get("body") {
                None | Some(Value::Null) => Bytes::new(),
                Some(Value::String(text)) if base64 => {
                    Bytes::from(BASE64.decode(text.trim()).map_err(|_| Malformed)?)
                }
                Some(Value::String(text)) => Bytes::from(text.clone()),
                Some(other) => Bytes::from(other.to_string()),
            }
        }
    };
    let mut reply = wire::Reply::new(Full::new(body));
    *reply.status_mut() = status;
    if let Some(Value::Object(headers)) = fields.get("headers") {
        for (name, value) in headers {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Malformed)?;
            // The front frames the body itself; the function's framing would contradict it.
            if [
                header::CONTENT_LENGTH,
                header::TRANSFER_ENCODING,
                header::CONNECTION,
            ]
            .contains(&name)
            {
                continue;
            }
            let value = HeaderValue::from_str(&value).map_err(|_| Malformed)?;
            reply.headers_mut().insert(name, value);
        }
    }
    if let Some(Value::Array(cookies)) = fields.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            let value = HeaderValue::from_str(cookie).map_err(|_| Malformed)?;
            reply.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(reply)
}

/// What a Function URL answers when the function failed, timed out or crashed: 502 with
/// no detail (the error document stays in the function's logs and the Invoke API).
fn function_failed() -> Reply {
    wire::with_type(
        StatusCode::BAD_GATEWAY,
        "application/json",
        "Internal Server Error",
    )
}

fn message(status: StatusCode, text: &str) -> Reply {
    wire::json(status, json!({ "Message": text }).to_string())
}

fn with_request_id(mut reply: Reply, request_id: &str) -> Reply {
    wire::set_header(&mut reply, "x-amzn-RequestId", request_id);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn event(parts: &http::request::Parts, body: &[u8]) -> Value {
        let site = UrlSite {
            url_id: "abc123",
            region: "eu-west-1",
            port: 8080,
        };
        request_event(
            parts,
            body,
            "127.0.0.1:50000".parse().unwrap(),
            &site,
            "req-1",
            SystemTime::UNIX_EPOCH,
        )
    }

    async fn body_of(reply: Reply) -> Bytes {
        reply.into_body().collect().await.unwrap().to_bytes()
    }

    #[test]
    fn json_post_reaches_the_function_as_text() {
        let parts = parts(
            "POST",
            "/alert?a=1",
            &[
                ("Content-Type", "application/json"),
                ("User-Agent", "Alertmanager/0.25.0"),
            ],
        );
        let event = event(&parts, br#"{"status":"firing"}"#);
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["rawPath"], "/alert");
        assert_eq!(event["rawQueryString"], "a=1");
        assert_eq!(event["body"], r#"{"status":"firing"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["headers"]["content-type"], "application/json");
        let context = &event["requestContext"];
        assert_eq!(context["accountId"], "anonymous");
        assert_eq!(context["apiId"], "abc123");
        assert_eq!(context["domainName"], "abc123.lambda-url.eu-west-1.on.aws");
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["path"], "/alert");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["http"]["userAgent"], "Alertmanager/0.25.0");
        assert_eq!(context["requestId"], "req-1");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["time"], "01/Jan/1970:00:00:00 +0000");
        assert_eq!(context["timeEpoch"], 0);
    }

    #[test]
    fn bodies_are_base64_unless_the_content_type_is_text() {
        let cases: &[(Option<&str>, bool)] = &[
            (Some("application/json; charset=utf-8"), false),
            (Some("text/plain"), false),
            (Some("application/xml"), false),
            (Some("application/octet-stream"), true),
            (Some("application/x-www-form-urlencoded"), true),
            (None, true),
        ];
        for (content_type, encoded) in cases {
            let headers: Vec<(&str, &str)> =
                content_type.iter().map(|t| ("content-type", *t)).collect();
            let event = event(&parts("POST", "/", &headers), b"a=1");
            assert_eq!(event["isBase64Encoded"], *encoded, "{content_type:?}");
            let expected = if *encoded { "YT0x" } else { "a=1" };
            assert_eq!(event["body"], expected, "{content_type:?}");
        }
    }

    #[test]
    fn repeated_headers_join_and_cookies_move_to_their_field() {
        let parts = parts(
            "GET",
            "/",
            &[
                ("X-Multi", "one"),
                ("x-multi", "two"),
                ("Cookie", "a=1; b=2"),
                ("cookie", "c=3"),
            ],
        );
        let event = event(&parts, b"");
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["cookies"], json!(["a=1", "b=2", "c=3"]));
        assert!(event["headers"].get("cookie").is_none());
        assert!(event.get("body").is_none());
        assert!(event.get("queryStringParameters").is_none());
        assert_eq!(event["headers"]["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn query_parameters_are_decoded_and_repeats_joined() {
        let event = event(&parts("GET", "/?p=v1&p=v2&name=Jane%20Doe&flag", &[]), b"");
        assert_eq!(event["rawQueryString"], "p=v1&p=v2&name=Jane%20Doe&flag");
        assert_eq!(
            event["queryStringParameters"],
            json!({"p": "v1,v2", "name": "Jane Doe", "flag": ""})
        );
    }

    #[tokio::test]
    async fn a_status_code_object_describes_the_response() {
        let payload = json!({
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Custom": "yes"},
            "cookies": ["a=1; Max-Age=60", "b=2"],
            "body": "created",
        });
        let reply = http_response(&Outcome::Response {
            payload: Bytes::from(payload.to_string()),
            http_integration: false,
        });
        assert_eq!(reply.status(), StatusCode::CREATED);
        assert_eq!(reply.headers()["content-type"], "text/plain");
        assert_eq!(reply.headers()["x-custom"], "yes");
        let cookies: Vec<_> = reply.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Max-Age=60", "b=2"]);
        assert_eq!(body_of(reply).await, "created");
    }

    #[tokio::test]
    async fn a_base64_body_is_decoded() {
        let payload = json!({"statusCode": 200, "body": BASE64.encode([0u8, 255, 128]), "isBase64Encoded": true});
        let reply = http_response(&Outcome::Response {
            payload: Bytes::from(payload.to_string()),
            http_integration: false,
        });
        assert_eq!(body_of(reply).await.as_ref(), &[0u8, 255, 128]);
    }

    #[tokio::test]
    async fn other_json_is_a_200_json_body() {
        let reply = http_response(&Outcome::Response {
            payload: Bytes::from_static(br#"{"message":"Hello, world!"}"#),
            http_integration: false,
        });
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(reply.headers()["content-type"], "application/json");
        assert_eq!(body_of(reply).await, r#"{"message":"Hello, world!"}"#);
    }

    #[tokio::test]
    async fn errors_and_malformed_answers_are_502() {
        let error = http_response(&Outcome::Error {
            body: Bytes::from_static(br#"{"errorType":"Boom"}"#),
        });
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(body_of(error).await, "Internal Server Error");
        let malformed = http_response(&Outcome::Response {
            payload: Bytes::from_static(br#"{"statusCode":"teapot"}"#),
            http_integration: false,
        });
        assert_eq!(malformed.status(), StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn a_streamed_response_uses_its_prelude() {
        let mut payload =
            br#"{"statusCode":202,"headers":{"content-type":"text/plain"},"cookies":["s=1"]}"#
                .to_vec();
        payload.extend_from_slice(&[0; 8]);
        payload.extend_from_slice(b"streamed body");
        let reply = http_response(&Outcome::Response {
            payload: Bytes::from(payload),
            http_integration: true,
        });
        assert_eq!(reply.status(), StatusCode::ACCEPTED);
        assert_eq!(reply.headers()["set-cookie"], "s=1");
        assert_eq!(body_of(reply).await, "streamed body");
    }
}
