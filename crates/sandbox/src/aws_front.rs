//! A reverse proxy in front of moto that counts every AWS call by service and operation, and
//! adds latency or answers AWS-shaped errors on demand.
//!
//! The sandbox hands functions `AWS_ENDPOINT_URL=<front>`: the bench reads how many AWS calls an
//! invocation cost, the reliability suite makes Secrets Manager or EC2 fail. Requests are
//! forwarded verbatim (method, path, query, headers including `Host` as received, body), so
//! SigV4 signatures and moto's own routing see exactly what the client sent.
//!
//! It also keeps Route 53's `HealthCheckVersion`, which moto does not (`health_check_versions`).
//!
//! Controls, on the same port:
//! * `GET /_sandbox/calls` → [`CallCounts`] (with each call's span, `sandbox::timeline`);
//!   `POST /_sandbox/calls/reset` zeroes them.
//! * `POST /_sandbox/fault` with one of
//!   `{"service": "secretsmanager", "operation": "GetSecretValue", "status": 503, "error": "ServiceUnavailable", "count": 3}`
//!   (`operation`, `error` and `count` optional; `count` defaults to 1),
//!   `{"latency_ms": 20}` (added to every AWS call), `{"reset": true}` (no faults, no latency).
//!
//! Services are named by their SigV4 signing name (`secretsmanager`, `ec2`, `route53`,
//! `elasticloadbalancing` for ELBv2, `monitoring` for CloudWatch, `dynamodb`), operations by
//! their API name (`secretsmanager.GetSecretValue`, `dynamodb.PutItem`). A call answered with
//! an injected fault still counts: the function made it.

mod health_check_versions;
mod identify;

use axum::serve::ListenerExt as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use identify::{Call, Protocol};

/// Large enough for a Lambda `CreateFunction` carrying a whole ZIP in its JSON body.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// How many AWS calls went through the front since it started or was last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    pub total: u64,
    /// By SigV4 signing name, e.g. `secretsmanager`.
    pub by_service: BTreeMap<String, u64>,
    /// By `service.Operation`, e.g. `secretsmanager.GetSecretValue`.
    pub by_operation: BTreeMap<String, u64>,
    /// Each call's span, by `service.Operation`, in the order they ended.
    #[serde(default)]
    pub timeline: Vec<crate::timeline::Span>,
}

impl CallCounts {
    /// Calls of one `service.Operation`, 0 when there were none.
    pub fn operation(&self, name: &str) -> u64 {
        self.by_operation.get(name).copied().unwrap_or(0)
    }

    /// Calls of one service, 0 when there were none.
    pub fn service(&self, name: &str) -> u64 {
        self.by_service.get(name).copied().unwrap_or(0)
    }

    fn record(&mut self, call: &Call) {
        crate::timeline::label(&call.qualified_operation());
        self.total += 1;
        *self.by_service.entry(call.service.clone()).or_default() += 1;
        *self
            .by_operation
            .entry(call.qualified_operation())
            .or_default() += 1;
    }
}

/// The front's control body: a fault, a latency, or a reset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    service: Option<String>,
    operation: Option<String>,
    status: Option<u16>,
    error: Option<String>,
    count: Option<u32>,
    latency_ms: Option<u64>,
    reset: Option<bool>,
}

#[derive(Debug, Clone)]
struct Fault {
    service: String,
    operation: Option<String>,
    status: StatusCode,
    error: Option<String>,
    remaining: u32,
}

impl Fault {
    fn matches(&self, call: &Call) -> bool {
        self.remaining > 0
            && self.service == call.service
            && self
                .operation
                .as_ref()
                .is_none_or(|operation| *operation == call.operation)
    }
}

#[derive(Debug, Default)]
struct Faults {
    latency: Duration,
    pending: Vec<Fault>,
}

impl Faults {
    /// Consumes one use of the first fault that matches `call`.
    fn take(&mut self, call: &Call) -> Option<Fault> {
        let index = self.pending.iter().position(|fault| fault.matches(call))?;
        let fault = &mut self.pending[index];
        fault.remaining -= 1;
        let taken = fault.clone();
        if fault.remaining == 0 {
            self.pending.remove(index);
        }
        Some(taken)
    }

    fn apply(&mut self, control: ControlRequest) -> Result<(), String> {
        let ControlRequest {
            service,
            operation,
            status,
            error,
            count,
            latency_ms,
            reset,
        } = control;
        let wants_fault = service.is_some()
            || operation.is_some()
            || status.is_some()
            || error.is_some()
            || count.is_some();
        let fault = if wants_fault {
            let service = service.ok_or("a fault needs \"service\"")?;
            let status = status.ok_or("a fault needs \"status\"")?;
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|status| status.is_client_error() || status.is_server_error())
                .ok_or("\"status\" must be between 400 and 599")?;
            let count = count.unwrap_or(1);
            if count == 0 {
                return Err("\"count\" must be at least 1".to_string());
            }
            Some(Fault {
                service,
                operation,
                status,
                error,
                remaining: count,
            })
        } else {
            None
        };
        match (reset, latency_ms, fault) {
            (None | Some(false), None, None) => {
                Err("expected a fault, \"latency_ms\" or \"reset\": true".to_string())
            }
            (reset, latency_ms, fault) => {
                if reset == Some(true) {
                    *self = Faults::default();
                }
                if let Some(ms) = latency_ms {
                    self.latency = Duration::from_millis(ms);
                }
                self.pending.extend(fault);
                Ok(())
            }
        }
    }
}

struct Shared {
    upstream_authority: String,
    counts: Mutex<CallCounts>,
    faults: Mutex<Faults>,
    /// Held while a DynamoDB write is in moto (see [`writes_one_at_a_time`]).
    dynamodb_writes: tokio::sync::Mutex<()>,
    /// Route 53's `HealthCheckVersion`, held while an update is in moto so that of two
    /// updates naming one version only the first is applied.
    health_checks: tokio::sync::Mutex<health_check_versions::Versions>,
}

/// DynamoDB checks a write's condition and applies it atomically: of two concurrent
/// conditional creates of one item, one fails. moto's threaded server reads the item, evaluates
/// the condition and writes in separate steps, so both can succeed (two fences would each
/// record their own decision). The front sends DynamoDB's writes to moto one at a time.
fn writes_one_at_a_time(call: &Call) -> bool {
    const WRITES: [&str; 5] = [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
    ];
    call.service == "dynamodb" && WRITES.contains(&call.operation.as_str())
}

impl Shared {
    fn counts(&self) -> MutexGuard<'_, CallCounts> {
        // A panic elsewhere cannot leave counters half-updated in a way that matters here.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running front; stopped on [`AwsFront::shutdown`] or drop.
pub struct AwsFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AwsFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsFront")
            .field("url", &self.url())
            .field("upstream", &self.shared.upstream_authority)
            .finish()
    }
}

impl AwsFront {
    /// Starts the front on a free loopback port, forwarding to `upstream` (`http://HOST:PORT`).
    pub async fn start(upstream: String) -> std::io::Result<AwsFront> {
        let upstream_authority = parse_upstream(&upstream)?;
        let listener = crate::net::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream_authority,
            counts: Mutex::default(),
            faults: Mutex::default(),
            dynamodb_writes: tokio::sync::Mutex::default(),
            health_checks: tokio::sync::Mutex::default(),
        });
        let app = Router::new()
            .route("/_sandbox/calls", get(get_calls))
            .route("/_sandbox/calls/reset", post(reset_calls))
            .route("/_sandbox/fault", post(control_faults))
            .fallback(forward)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let listener = listener.tap_io(|stream| crate::net::no_delay(stream));
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::error!(%error, "AWS front stopped");
            }
        });
        tracing::info!(%addr, %upstream, "AWS front listening");
        Ok(AwsFront {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, the `AWS_ENDPOINT_URL` to hand to clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> CallCounts {
        self.shared.counts().clone()
    }

    pub fn reset_calls(&self) {
        *self.shared.counts() = CallCounts::default();
    }

    /// Stops accepting calls and waits (briefly) for calls in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for AwsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn parse_upstream(upstream: &str) -> std::io::Result<String> {
    let invalid = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("upstream {upstream:?}: {why}"),
        )
    };
    let uri: Uri = upstream.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("expected http://HOST:PORT"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.port_u16().is_none() {
        return Err(invalid("no port"));
    }
    Ok(authority.to_string())
}

async fn get_calls(State(shared): State<Arc<Shared>>) -> axum::Json<CallCounts> {
    axum::Json(shared.counts().clone())
}

async fn reset_calls(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.counts() = CallCounts::default();
    StatusCode::OK
}

async fn control_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let control: ControlRequest = match serde_json::from_slice(&body) {
        Ok(control) => control,
        Err(error) => return bad_control(error.to_string()),
    };
    match shared.faults().apply(control) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(why) => bad_control(why),
    }
}

fn bad_control(why: String) -> Response {
    let body = serde_json::json!({ "error": why });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (response, span) = crate::timeline::timed(forward_call(&shared, request)).await;
    if let Some(span) = span {
        shared.counts().timeline.push(span);
    }
    response
}

async fn forward_call(shared: &Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body unreadable: {error}"),
            )
                .into_response();
        }
    };
    let call = identify::identify(&parts.method, &parts.uri, &parts.headers, &body);
    shared.counts().record(&call);
    let (latency, fault) = {
        let mut faults = shared.faults();
        (faults.latency, faults.take(&call))
    };
    crate::net::added_latency(latency).await;
    if let Some(fault) = fault {
        tracing::info!(
            service = %call.service,
            operation = %call.operation,
            status = fault.status.as_u16(),
            "injected fault"
        );
        return identify::error_response(&call, fault.status, fault.error.as_deref());
    }

    // Route 53 refuses an update naming a stale version; moto does not (aws-behaviours #14).
    let mut health_check_update = None;
    if let Some(id) = health_check_versions::updated_id(&call, parts.uri.path()) {
        let versions = shared.health_checks.lock().await;
        match versions.check(id, &body) {
            health_check_versions::Verdict::Mismatch { id, named, current } => {
                tracing::info!(health_check_id = %id, named, current, "stale HealthCheckVersion refused");
                return identify::error_response(
                    &call,
                    StatusCode::CONFLICT,
                    Some("HealthCheckVersionMismatch"),
                );
            }
            health_check_versions::Verdict::Forward { id } => {
                health_check_update = Some((versions, id));
            }
        }
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let mut upstream = http::Request::new(Full::new(body));
    *upstream.method_mut() = parts.method.clone();
    *upstream.uri_mut() = match path_and_query.parse() {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad request target").into_response(),
    };
    *upstream.headers_mut() = end_to_end(&parts.headers);
    // moto has applied a write once its answer's head is back.
    let _one_write = if writes_one_at_a_time(&call) {
        Some(shared.dynamodb_writes.lock().await)
    } else {
        None
    };
    match send_upstream(&shared.upstream_authority, upstream).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            parts.headers = end_to_end(&parts.headers);
            let applied = parts.status.is_success();
            if let Some((versions, id)) = &mut health_check_update
                && applied
            {
                versions.updated(id);
            }
            if !(applied && health_check_versions::reports_versions(&call)) {
                return Response::from_parts(parts, Body::new(body));
            }
            let body = match http_body_util::BodyExt::collect(body).await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    return (
                        StatusCode::BAD_GATEWAY,
                        format!("moto's answer was cut off: {error}"),
                    )
                        .into_response();
                }
            };
            let text = String::from_utf8_lossy(&body);
            let rewritten = match health_check_update.take() {
                Some((versions, _)) => versions.rewrite(&text),
                None => shared.health_checks.lock().await.rewrite(&text),
            };
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
            Response::from_parts(parts, Body::from(rewritten))
        }
        Err(error) => {
            tracing::warn!(%error, upstream = %shared.upstream_authority, "moto unreachable");
            (
                StatusCode::BAD_GATEWAY,
                format!("the sandbox's AWS front cannot reach moto: {error}"),
            )
                .into_response()
        }
    }
}

async fn send_upstream(
    authority: &str,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "moto connection closed");
        }
    });
    Ok(sender.send_request(request).await?)
}

/// The headers minus the hop-by-hop ones, which describe one connection and are re-made for the next.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 7] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let listed_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value: &HeaderValue| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) || listed_in_connection.contains(name) {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str, operation: &str) -> Call {
        Call {
            service: service.to_string(),
            operation: operation.to_string(),
            protocol: Protocol::AwsJson,
        }
    }

    fn control(json: &str) -> ControlRequest {
        match serde_json::from_str(json) {
            Ok(control) => control,
            Err(error) => panic!("test JSON {json}: {error}"),
        }
    }

    #[test]
    fn fault_is_used_count_times_then_gone() {
        let mut faults = Faults::default();
        let applied = faults.apply(control(
            r#"{"service": "secretsmanager", "operation": "GetSecretValue", "status": 503, "count": 2}"#,
        ));
        assert_eq!(applied, Ok(()));
        let get = call("secretsmanager", "GetSecretValue");
        assert!(
            faults
                .take(&call("secretsmanager", "CreateSecret"))
                .is_none()
        );
        assert!(faults.take(&call("ec2", "GetSecretValue")).is_none());
        assert!(faults.take(&get).is_some());
        assert!(faults.take(&get).is_some());
        assert!(faults.take(&get).is_none());
    }

    #[test]
    fn fault_without_operation_hits_every_operation_of_the_service() {
        let mut faults = Faults::default();
        assert_eq!(
            faults.apply(control(r#"{"service": "ec2", "status": 429}"#)),
            Ok(())
        );
        assert!(faults.take(&call("ec2", "ReplaceRoute")).is_some());
        assert!(faults.take(&call("ec2", "ReplaceRoute")).is_none());
    }

    #[test]
    fn reset_clears_faults_and_latency() {
        let mut faults = Faults::default();
        assert_eq!(faults.apply(control(r#"{"latency_ms": 20}"#)), Ok(()));
        assert_eq!(
            faults.apply(control(r#"{"service": "ec2", "status": 503, "count": 5}"#)),
            Ok(())
        );
        assert_eq!(faults.apply(control(r#"{"reset": true}"#)), Ok(()));
        assert_eq!(faults.latency, Duration::ZERO);
        assert!(faults.take(&call("ec2", "DescribeVpcs")).is_none());
    }

    #[test]
    fn incomplete_or_empty_controls_are_refused() {
        let mut faults = Faults::default();
        for json in [
            r#"{}"#,
            r#"{"reset": false}"#,
            r#"{"service": "ec2"}"#,
            r#"{"status": 503}"#,
            r#"{"service": "ec2", "status": 200}"#,
            r#"{"service": "ec2", "status": 503, "count": 0}"#,
        ] {
            assert!(faults.apply(control(json)).is_err(), "{json} was accepted");
        }
        assert!(serde_json::from_str::<ControlRequest>(r#"{"servce": "ec2"}"#).is_err());
    }

    #[test]
    fn dynamodb_writes_reach_moto_one_at_a_time() {
        for write in ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"] {
            assert!(writes_one_at_a_time(&call("dynamodb", write)), "{write}");
        }
        for other in [
            call("dynamodb", "GetItem"),
            call("dynamodb", "Scan"),
            call("secretsmanager", "PutSecretValue"),
        ] {
            assert!(!writes_one_at_a_time(&other), "{other:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:1"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("secretsmanager.GetSecretValue"),
        );
        let kept = end_to_end(&headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["host", "x-amz-target"]);
    }

    #[test]
    fn upstream_must_be_an_http_url_with_a_port() {
        assert_eq!(
            parse_upstream("http://127.0.0.1:5000").ok().as_deref(),
            Some("127.0.0.1:5000")
        );
        assert!(parse_upstream("127.0.0.1:5000").is_err());
        assert!(parse_upstream("https://127.0.0.1:5000").is_err());
        assert!(parse_upstream("http://127.0.0.1").is_err());
    }
}
