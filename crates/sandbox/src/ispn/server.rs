//! HTTP/1.1 serving for the emulator, over TLS (the REST port) or plain (the control port), and
//! the small response and request helpers both sides share.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub(crate) type Request = http::Request<Incoming>;
pub(crate) type Reply = Response<Full<Bytes>>;

/// A client that opens a connection and never finishes the handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Control bodies are a few bytes; anything bigger is a mistake.
const MAX_BODY: usize = 64 * 1024;

/// Serves `listener` until the task running this future is aborted; aborting it also ends every
/// open connection, since they live in this future's `JoinSet`.
pub(crate) async fn serve<H, F>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    crate::net::no_delay(&stream);
                    let handler = handler.clone();
                    let tls = tls.clone();
                    connections.spawn(serve_connection(stream, tls, handler));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<H, F>(stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(request).await) }
    });
    let result = match tls {
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
        None => {
            http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub(crate) async fn read_body(request: Request) -> Result<Bytes, String> {
    Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| format!("cannot read the request body: {error}"))
}

fn reply(status: u16, content_type: Option<&'static str>, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

pub(crate) fn empty(status: u16) -> Reply {
    reply(status, None, Bytes::new())
}

/// Infinispan's error bodies are plain text, never JSON.
pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
    reply(status, Some("text/plain"), Bytes::from(body.into()))
}

pub(crate) fn json(status: u16, body: &serde_json::Value) -> Reply {
    reply(
        status,
        Some("application/json"),
        Bytes::from(body.to_string()),
    )
}

pub(crate) fn prometheus(body: String) -> Reply {
    reply(
        200,
        Some("text/plain; version=0.0.4; charset=utf-8"),
        Bytes::from(body),
    )
}

/// Splits a path into its percent-decoded segments, skipping empty ones: Infinispan's router
/// treats `/a//b/` like `/a/b`, so paths match with or without a trailing slash.
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode(segment, false))
        .collect()
}

/// The decoded value of query parameter `name`, if present (the first one wins).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key, true) == name).then(|| percent_decode(value, true))
    })
}

/// Decodes `%XX` escapes (and `+` as a space in query strings); malformed escapes stay as they
/// are rather than failing the request.
fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_ignore_empty_parts_and_decode() {
        assert_eq!(
            segments("/rest/v2/caches/work/x-site/backups/"),
            ["rest", "v2", "caches", "work", "x-site", "backups"]
        );
        assert_eq!(segments("//a//b%2Dc"), ["a", "b-c"]);
    }

    #[test]
    fn query_param_finds_and_decodes() {
        assert_eq!(
            query_param(Some("pretty=true&action=take-offline"), "action").as_deref(),
            Some("take-offline")
        );
        assert_eq!(query_param(Some("action="), "action").as_deref(), Some(""));
        assert_eq!(query_param(Some("a=1"), "action"), None);
        assert_eq!(query_param(None, "action"), None);
        assert_eq!(query_param(Some("k=a+b%21"), "k").as_deref(), Some("a b!"));
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz1", false), "%zz1");
        assert_eq!(percent_decode("%4", false), "%4");
    }
}
