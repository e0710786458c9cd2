//! The small HTTP plumbing the three servers share: an accept loop whose connections die
//! with it, bounded body reading, and response builders.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};

pub(super) type Reply = Response<Full<Bytes>>;

/// How much of an oversized body is read and thrown away so that the client gets its 413
/// instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Serves HTTP/1.1 on `listener` until the returned task is aborted. Connections are tasks
/// of the server task, so aborting it also drops every request in progress — which is how a
/// killed instance's long poll stops taking invocations.
pub(super) fn serve<H, F>(
    runtime: &tokio::runtime::Handle,
    listener: TcpListener,
    handler: H,
) -> AbortHandle
where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    runtime
        .spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        crate::net::no_delay(&stream);
                        let handler = handler.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                let reply = handler(request, peer);
                                async move { Ok::<_, Infallible>(reply.await) }
                            });
                            // A client that goes away mid-request is not the host's problem.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        })
        .abort_handle()
}

/// A request or response body read whole, with its trailers (streamed responses report
/// mid-stream errors in trailers).
pub(super) struct Collected {
    pub bytes: Bytes,
    pub trailers: Option<HeaderMap>,
}

pub(super) enum BodyError {
    TooLarge,
    Broken,
}

pub(super) async fn collect(mut body: Incoming, limit: usize) -> Result<Collected, BodyError> {
    let mut bytes = BytesMut::new();
    let mut trailers = None;
    let mut oversize = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        match frame.into_data() {
            Ok(data) if oversize > 0 => {
                oversize = oversize.saturating_add(data.len());
                if oversize > DRAIN_LIMIT {
                    break;
                }
            }
            Ok(data) if bytes.len() + data.len() > limit => {
                oversize = bytes.len() + data.len();
                bytes = BytesMut::new();
            }
            Ok(data) => bytes.extend_from_slice(&data),
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    if oversize > 0 {
        return Err(BodyError::TooLarge);
    }
    Ok(Collected {
        bytes: bytes.freeze(),
        trailers,
    })
}

pub(super) fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    with_type(status, "application/json", body)
}

pub(super) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// An AWS API error: the status, the `x-amzn-ErrorType` header and a JSON body.
pub(super) fn aws_error(
    status: StatusCode,
    error_type: &'static str,
    body: serde_json::Value,
) -> Reply {
    let mut reply = json(status, body.to_string());
    reply
        .headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
    reply
}

pub(super) fn set_header(reply: &mut Reply, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        reply.headers_mut().insert(name, value);
    }
}
