//! What can go wrong talking to a site, and the text helpers the error messages use.

use std::time::Duration;

use common::site::SiteName;

use crate::{CacheResults, UnconfirmedCaches};

/// Longest part of an error body kept in an error message.
pub(crate) const MAX_ERROR_BODY: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IspnError {
    #[error("invalid Infinispan endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("Infinispan TLS configuration: {0}")]
    Tls(String),
    #[error("{site}: cannot reach Infinispan for {operation}: {message}")]
    Unreachable {
        site: SiteName,
        operation: &'static str,
        message: String,
    },
    #[error("{site}: Infinispan answered {status} to {operation}: {body}")]
    Status {
        site: SiteName,
        operation: &'static str,
        status: u16,
        body: String,
    },
    #[error("{site}: {operation} failed for some caches: {}", failures_text(.result))]
    CacheFailures {
        site: SiteName,
        operation: &'static str,
        result: CacheResults,
    },
    #[error("{site}: unexpected answer to {operation}: {reason}")]
    InvalidResponse {
        site: SiteName,
        operation: &'static str,
        reason: String,
    },
    /// The call did not end within the operation timeout (it may have taken effect).
    #[error("{site}: {operation} did not end within {after:?}")]
    TimedOut {
        site: SiteName,
        operation: &'static str,
        after: Duration,
    },
    /// A verified container-level action: a cache that must answer did not, or a cache
    /// failed.
    #[error("{site}: {operation} not confirmed for every cache: {caches}")]
    Unconfirmed {
        site: SiteName,
        operation: &'static str,
        caches: UnconfirmedCaches,
    },
}

fn failures_text(result: &CacheResults) -> String {
    result
        .failures()
        .map(|(cache, outcome)| format!("{cache}={outcome}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl IspnError {
    /// Whether trying again later may succeed: the server unreachable, slow, busy or failing
    /// (5xx, 429), or a cache that failed to change state or was not in the answer.
    /// Authentication failures, unknown sites and configuration errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            IspnError::Unreachable { .. }
            | IspnError::CacheFailures { .. }
            | IspnError::InvalidResponse { .. }
            | IspnError::TimedOut { .. }
            | IspnError::Unconfirmed { .. } => true,
            IspnError::Status { status, .. } => *status >= 500 || *status == 429,
            IspnError::InvalidEndpoint { .. } | IspnError::Tls(_) => false,
        }
    }

    /// The server rejected the credentials (they may have been rotated).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            IspnError::Status {
                status: 401 | 403,
                ..
            }
        )
    }
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
