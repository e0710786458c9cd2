//! Infinispan REST client for the cross-site operations of a two-site deployment.
//!
//! TLS is verified unless explicitly disabled (then a WARN is logged when the client is built);
//! a custom CA bundle (PEM) can be given. Authentication is HTTP Basic. Every call ends within
//! the client's operation timeout ([`DEFAULT_OPERATION_TIMEOUT`] unless set): the functions
//! that use this run inside a Lambda time budget, and a server that accepts a connection and
//! never answers must not eat it.
//!
//! Infinispan 15 moved the container-level endpoints (cross-site, health) from
//! `/rest/v2/cache-managers/default/...` to `/rest/v2/container/...`. The client tries the new
//! path first, falls back to the old one on 404, and remembers which one the server answered.
//!
//! Container-level actions answer 200 with a per-cache map even when a cache failed
//! (`{"actionTokens":"ok","work":"Incorrect site name: site-x"}`): success means every cache
//! says `ok`, anything else is a [`IspnError::CacheFailures`]. A map can also lack a cache, or
//! be empty (`{}`, or 204 without a body) when the server has no cache backing up to the site
//! yet: [`SiteClient::container_action_verified`] checks the answer against the caches that
//! must be in it ([`BackupCaches`], Keycloak's by default).
//!
//! [`SiteClient::probe`] tells a site that may be down ([`ProbeError::Unreachable`], a verdict)
//! from a client that cannot tell ([`ProbeError::Misconfigured`]: wrong CA, wrong path, not
//! Infinispan...).

mod caches;
#[cfg(test)]
mod http_tests;
mod probe;
#[cfg(test)]
mod test_server;

pub use caches::{
    BackupCaches, CacheListError, KEYCLOAK_24_BACKUP_CACHES, KEYCLOAK_BACKUP_CACHES,
    UnconfirmedCaches,
};
pub use probe::{Misconfiguration, ProbeError};

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use common::secret::Secret;
use common::site::SiteName;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

/// Longest part of an error body kept in an error message.
const MAX_ERROR_BODY: usize = 512;

/// How long a call may take, all of its requests and the reading of the answer included,
/// unless [`SiteClient::with_operation_timeout`] says otherwise.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Where a site's Infinispan REST API is: given as `host`, `host:port` or a full `https://` URL
/// (a path prefix is kept, for servers behind a reverse proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEndpoint(Url);

impl SiteEndpoint {
    pub fn parse(value: &str) -> Result<SiteEndpoint, IspnError> {
        let invalid = |reason: &str| IspnError::InvalidEndpoint {
            endpoint: value.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let mut url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "https" {
            return Err(invalid(
                "only https is supported: Basic credentials must not travel in clear text",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials do not belong in the URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("no query or fragment expected"));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(SiteEndpoint(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The endpoint URL followed by `segments`, each percent-encoded as one path segment.
    fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.0.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }
}

impl fmt::Display for SiteEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// How the HTTPS client verifies servers and how long it waits.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificates to trust instead of the system's roots (like `curl --cacert`).
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Accept any certificate. An explicit, logged opt-in for test setups only.
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
    /// Bounds each HTTP request, answer included; [`SiteClient`]'s operation timeout bounds a
    /// whole call (which may be two requests), whichever ends first.
    pub request_timeout: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_bundle_pem: None,
            insecure_skip_verify: false,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The HTTPS client shared by every site (connection pools are kept across warm invocations).
pub fn http_client(tls: &TlsConfig) -> Result<reqwest::Client, IspnError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(tls.connect_timeout)
        .timeout(tls.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .user_agent(concat!("sitefence/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &tls.ca_bundle_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| IspnError::Tls(format!("CA bundle: {e}")))?;
        if certs.is_empty() {
            return Err(IspnError::Tls(
                "CA bundle holds no PEM certificate".to_owned(),
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            event = "tls_verification_disabled",
            "Infinispan server certificates are NOT verified (INFINISPAN_INSECURE_SKIP_VERIFY)"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| IspnError::Tls(error_chain(&e)))
}

#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

/// Which generation of the container-level cross-site API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ApiGeneration {
    /// Infinispan 15 and later: `/rest/v2/container/x-site/...`.
    Container,
    /// Infinispan 14: `/rest/v2/cache-managers/default/x-site/...`.
    CacheManager,
}

impl ApiGeneration {
    /// Where the cross-site resources are.
    fn prefix(self) -> &'static [&'static str] {
        match self {
            ApiGeneration::Container => &["rest", "v2", "container", "x-site"],
            ApiGeneration::CacheManager => &["rest", "v2", "cache-managers", "default", "x-site"],
        }
    }

    /// The cluster health as one word, anonymous on both generations.
    fn health_status(self) -> &'static [&'static str] {
        match self {
            ApiGeneration::Container => &["rest", "v2", "container", "health", "status"],
            ApiGeneration::CacheManager => &[
                "rest",
                "v2",
                "cache-managers",
                "default",
                "health",
                "status",
            ],
        }
    }
}

const API_UNKNOWN: u8 = 0;
const API_CONTAINER: u8 = 1;
const API_CACHE_MANAGER: u8 = 2;

/// A container-level cross-site action on every cache with a backup to a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XSiteAction {
    TakeOffline,
    BringOnline,
    StartPushState,
    CancelPushState,
}

impl XSiteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            XSiteAction::TakeOffline => "take-offline",
            XSiteAction::BringOnline => "bring-online",
            XSiteAction::StartPushState => "start-push-state",
            XSiteAction::CancelPushState => "cancel-push-state",
        }
    }
}

/// What each cache answered to a container-level action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheResults(pub BTreeMap<String, String>);

impl CacheResults {
    /// Caches whose answer is not `ok`.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(_, outcome)| !outcome.eq_ignore_ascii_case("ok"))
            .map(|(cache, outcome)| (cache.as_str(), outcome.as_str()))
    }

    pub fn all_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn caches(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The readers of Infinispan's answers, apart from the HTTP calls, so that tests and the fuzz
/// targets feed them any body: none panics, each says what it could not read.
pub mod response {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::{BackupStatus, CacheResults, Health, MAX_ERROR_BODY, truncate};

    /// A response body as JSON; an empty body (or 204) is an empty object.
    pub fn json_body(no_content: bool, text: &str) -> Result<Value, String> {
        if no_content || text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(text)
            .map_err(|_| format!("not JSON: {}", truncate(text, MAX_ERROR_BODY)))
    }

    /// A container-level action's answer: cache → `ok` or that cache's error text.
    pub fn cache_results(value: Value) -> Result<CacheResults, String> {
        let Value::Object(map) = value else {
            return Err("not a JSON object of cache results".to_owned());
        };
        Ok(CacheResults(
            map.into_iter()
                .map(|(cache, outcome)| {
                    let outcome = match outcome {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (cache, outcome)
                })
                .collect(),
        ))
    }

    /// `GET /rest/v2/container/x-site/backups`: remote site → status over all caches.
    pub fn backup_statuses(value: Value) -> Result<BTreeMap<String, BackupStatus>, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// `GET /rest/v2/caches/{cache}/x-site/backups/`: remote site → status.
    pub fn cache_backup_statuses(value: Value) -> Result<BTreeMap<String, String>, String> {
        let Value::Object(map) = value else {
            return Err("not a JSON object".to_owned());
        };
        Ok(map
            .into_iter()
            .map(|(site, value)| {
                let status = match &value {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("status")
                        .and_then(|s| s.as_str())
                        .unwrap_or("unknown")
                        .to_owned(),
                    other => other.to_string(),
                };
                (site, status)
            })
            .collect())
    }

    /// The health status body.
    pub fn health(text: &str) -> Health {
        Health::parse(text)
    }
}

/// The state of the backups to one remote site, over all caches (container level).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// `online`, `offline` or `mixed`.
    pub status: String,
    #[serde(default)]
    pub online: Vec<String>,
    #[serde(default)]
    pub offline: Vec<String>,
    #[serde(default)]
    pub mixed: Vec<String>,
}

/// The cluster health as `GET /rest/v2/container/health/status` (14.x:
/// `/rest/v2/cache-managers/default/health/status`) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Health {
    Healthy,
    HealthyRebalancing,
    Degraded,
    Other(String),
}

impl Health {
    fn parse(text: &str) -> Health {
        match text.trim().trim_matches('"') {
            "HEALTHY" => Health::Healthy,
            "HEALTHY_REBALANCING" => Health::HealthyRebalancing,
            "DEGRADED" => Health::Degraded,
            other => Health::Other(other.to_owned()),
        }
    }
}

/// One site's Infinispan REST API.
pub struct SiteClient {
    site: SiteName,
    endpoint: SiteEndpoint,
    http: reqwest::Client,
    credentials: RwLock<Credentials>,
    api: AtomicU8,
    operation_timeout: Duration,
}

impl fmt::Debug for SiteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteClient")
            .field("site", &self.site)
            .field("endpoint", &self.endpoint.to_string())
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl SiteClient {
    /// A client whose calls each end within [`DEFAULT_OPERATION_TIMEOUT`].
    pub fn new(
        site: SiteName,
        endpoint: SiteEndpoint,
        http: reqwest::Client,
        credentials: Credentials,
    ) -> SiteClient {
        SiteClient {
            site,
            endpoint,
            http,
            credentials: RwLock::new(credentials),
            api: AtomicU8::new(API_UNKNOWN),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Bounds every call (all of its requests and the reading of the answer) by `timeout`
    /// instead of [`DEFAULT_OPERATION_TIMEOUT`]; a call that takes longer fails with
    /// [`IspnError::TimedOut`]. [`SiteClient::health`] and [`SiteClient::probe`] take their own.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> SiteClient {
        self.operation_timeout = timeout;
        self
    }

    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    pub fn site(&self) -> &SiteName {
        &self.site
    }

    pub fn endpoint(&self) -> &SiteEndpoint {
        &self.endpoint
    }

    /// Replaces the credentials (after a secret was read again).
    pub fn set_credentials(&self, credentials: Credentials) {
        *self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner) = credentials;
    }

    /// The API generation the server answered on, once known.
    pub fn api_generation(&self) -> Option<ApiGeneration> {
        match self.api.load(Ordering::Relaxed) {
            API_CONTAINER => Some(ApiGeneration::Container),
            API_CACHE_MANAGER => Some(ApiGeneration::CacheManager),
            _ => None,
        }
    }

    // ---- container level ------------------------------------------------------------------

    /// Runs `action` on every cache that backs up to `remote`; an error unless every cache in
    /// the answer says `ok`.
    ///
    /// An answer that names no cache (`{}`, or 204 without a body) passes: prefer
    /// [`SiteClient::container_action_verified`], which knows which caches must answer.
    pub async fn container_action(
        &self,
        remote: &SiteName,
        action: XSiteAction,
    ) -> Result<CacheResults, IspnError> {
        let operation = action.as_str();
        self.bounded(operation, async {
            let result = self.container_results(remote, action).await?;
            if result.all_ok() {
                Ok(result)
            } else {
                Err(IspnError::CacheFailures {
                    site: self.site.clone(),
                    operation,
                    result,
                })
            }
        })
        .await
    }

    /// Runs `action` on every cache that backs up to `remote`; an error unless every cache of
    /// `expected` is in the answer and every cache in the answer says `ok`
    /// ([`IspnError::Unconfirmed`], retryable: the server may not have a cache yet, or have
    /// failed for one).
    pub async fn container_action_verified(
        &self,
        remote: &SiteName,
        action: XSiteAction,
        expected: &BackupCaches,
    ) -> Result<CacheResults, IspnError> {
        let operation = action.as_str();
        self.bounded(operation, async {
            let result = self.container_results(remote, action).await?;
            match result.verify(expected) {
                Ok(()) => Ok(result),
                Err(caches) => Err(IspnError::Unconfirmed {
                    site: self.site.clone(),
                    operation,
                    caches,
                }),
            }
        })
        .await
    }

    /// Takes the backups to `remote` offline; `Ok` only when every cache of `expected` says so.
    pub async fn take_offline_verified(
        &self,
        remote: &SiteName,
        expected: &BackupCaches,
    ) -> Result<CacheResults, IspnError> {
        self.container_action_verified(remote, XSiteAction::TakeOffline, expected)
            .await
    }

    /// Passes an answer that names no cache: prefer [`SiteClient::take_offline_verified`].
    pub async fn take_offline(&self, remote: &SiteName) -> Result<CacheResults, IspnError> {
        self.container_action(remote, XSiteAction::TakeOffline)
            .await
    }

    pub async fn bring_online(&self, remote: &SiteName) -> Result<CacheResults, IspnError> {
        self.container_action(remote, XSiteAction::BringOnline)
            .await
    }

    pub async fn start_push_state(&self, remote: &SiteName) -> Result<CacheResults, IspnError> {
        self.container_action(remote, XSiteAction::StartPushState)
            .await
    }

    pub async fn cancel_push_state(&self, remote: &SiteName) -> Result<CacheResults, IspnError> {
        self.container_action(remote, XSiteAction::CancelPushState)
            .await
    }

    /// The state of the backups to every remote site, keyed by site name.
    pub async fn backup_status(&self) -> Result<BTreeMap<String, BackupStatus>, IspnError> {
        let operation = "backup-status";
        self.bounded(operation, async {
            let response = self
                .container_call(Method::GET, &["backups"], None, operation)
                .await?;
            let json = self.json(response, operation).await?;
            response::backup_statuses(json).map_err(|reason| self.invalid(operation, reason))
        })
        .await
    }

    /// What each cache answered to `action`, unchecked.
    async fn container_results(
        &self,
        remote: &SiteName,
        action: XSiteAction,
    ) -> Result<CacheResults, IspnError> {
        let operation = action.as_str();
        let response = self
            .container_call(
                Method::POST,
                &["backups", remote.as_str()],
                Some(operation),
                operation,
            )
            .await?;
        let json = self.json(response, operation).await?;
        response::cache_results(json).map_err(|reason| self.invalid(operation, reason))
    }

    // ---- cache level ----------------------------------------------------------------------

    pub async fn cache_action(
        &self,
        cache: &str,
        remote: &SiteName,
        action: XSiteAction,
    ) -> Result<(), IspnError> {
        let operation = action.as_str();
        let url = self.url(
            &[
                "rest",
                "v2",
                "caches",
                cache,
                "x-site",
                "backups",
                remote.as_str(),
            ],
            Some(operation),
        );
        self.bounded(operation, async {
            self.send(Method::POST, url, operation).await.map(drop)
        })
        .await
    }

    /// The status of `cache`'s backups, remote site → `online`/`offline`/`mixed`/`failed`.
    pub async fn cache_backup_status(
        &self,
        cache: &str,
    ) -> Result<BTreeMap<String, String>, IspnError> {
        let operation = "cache-backup-status";
        // The trailing empty segment gives the `/backups/` form the server documents.
        let url = self.url(
            &["rest", "v2", "caches", cache, "x-site", "backups", ""],
            None,
        );
        self.bounded(operation, async {
            let response = self.send(Method::GET, url, operation).await?;
            let json = self.json(response, operation).await?;
            response::cache_backup_statuses(json).map_err(|reason| self.invalid(operation, reason))
        })
        .await
    }

    /// Push-state status of `cache`, remote site → `IDLE`/`SENDING`/`OK`/`ERROR`/`CANCELED`.
    pub async fn push_state_status(
        &self,
        cache: &str,
    ) -> Result<BTreeMap<String, String>, IspnError> {
        let operation = "push-state-status";
        let url = self.url(
            &["rest", "v2", "caches", cache, "x-site", "backups"],
            Some(operation),
        );
        self.bounded(operation, async {
            let response = self.send(Method::GET, url, operation).await?;
            let json = self.json(response, operation).await?;
            let result =
                response::cache_results(json).map_err(|reason| self.invalid(operation, reason))?;
            Ok(result.0)
        })
        .await
    }

    pub async fn clear_push_state_status(&self, cache: &str) -> Result<(), IspnError> {
        let operation = "clear-push-state-status";
        let url = self.url(
            &["rest", "v2", "caches", cache, "x-site", "local"],
            Some(operation),
        );
        self.bounded(operation, async {
            self.send(Method::POST, url, operation).await.map(drop)
        })
        .await
    }

    /// Removes every entry of `cache` on this site (used when resynchronising a site).
    pub async fn clear_cache(&self, cache: &str) -> Result<(), IspnError> {
        let operation = "clear";
        let url = self.url(&["rest", "v2", "caches", cache], Some(operation));
        self.bounded(operation, async {
            self.send(Method::POST, url, operation).await.map(drop)
        })
        .await
    }

    /// Cluster health, on either API generation; `timeout` bounds the whole call.
    ///
    /// Every failure is an [`IspnError`], whether the site is down or this client is
    /// misconfigured: prefer [`SiteClient::probe`], which tells the two apart.
    pub async fn health(&self, timeout: Duration) -> Result<Health, IspnError> {
        let operation = "health";
        self.bounded_by(operation, timeout, async {
            let response = self
                .on_generation(
                    |generation| {
                        let url = self.url(generation.health_status(), None);
                        self.send(Method::GET, url, operation)
                    },
                    |err| matches!(err, IspnError::Status { status: 404, .. }),
                )
                .await?;
            let text = response
                .text()
                .await
                .map_err(|e| self.unreachable(operation, &e))?;
            Ok(Health::parse(&text))
        })
        .await
    }

    // ---- metrics --------------------------------------------------------------------------

    /// Whether each site is in this site's cross-site view, from `jgroups_site_view_status` on
    /// the metrics page (`metrics_url`, default `{endpoint}/metrics`), the gauge the SiteOffline
    /// alert reads.
    pub async fn site_view(
        &self,
        metrics_url: Option<&str>,
    ) -> Result<BTreeMap<String, SiteView>, IspnError> {
        let operation = "metrics";
        let url = match metrics_url {
            Some(text) => Url::parse(text).map_err(|e| IspnError::InvalidEndpoint {
                endpoint: text.to_owned(),
                reason: e.to_string(),
            })?,
            None => self.url(&["metrics"], None),
        };
        self.bounded(operation, async {
            let response = self.send(Method::GET, url, operation).await?;
            let page = response
                .text()
                .await
                .map_err(|e| self.unreachable(operation, &e))?;
            Ok(parse_site_view(&page))
        })
        .await
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn url(&self, segments: &[&str], action: Option<&str>) -> Url {
        let mut url = self.endpoint.join(segments);
        if let Some(action) = action {
            url.query_pairs_mut().append_pair("action", action);
        }
        url
    }

    /// [`Self::bounded_by`] the operation timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, IspnError>>,
    ) -> Result<T, IspnError> {
        self.bounded_by(operation, self.operation_timeout, call)
            .await
    }

    /// Fails `call` with [`IspnError::TimedOut`] when it has not ended within `limit`: a
    /// server that accepts and never answers must not eat the caller's deadline.
    async fn bounded_by<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        call: impl Future<Output = Result<T, IspnError>>,
    ) -> Result<T, IspnError> {
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(IspnError::TimedOut {
                site: self.site.clone(),
                operation,
                after: limit,
            })
        })
    }

    /// Runs `call` on the server's API generation: the known one, else the newer one first.
    /// When the first answers as a missing path (`not_found`), the other one is tried (a server
    /// upgraded under a warm client); the generation of a successful answer is remembered, so
    /// a known generation costs no extra round trip.
    // A closure returning a future rather than an `AsyncFn`: the futures of async closures are
    // not yet known to be `Send` across lifetimes, which the fence's futures must be.
    async fn on_generation<T, E, F: Future<Output = Result<T, E>>>(
        &self,
        call: impl Fn(ApiGeneration) -> F,
        not_found: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let order = match self.api_generation() {
            Some(ApiGeneration::CacheManager) => {
                [ApiGeneration::CacheManager, ApiGeneration::Container]
            }
            Some(ApiGeneration::Container) | None => {
                [ApiGeneration::Container, ApiGeneration::CacheManager]
            }
        };
        let mut generation = order[0];
        let mut result = call(generation).await;
        if let Err(err) = &result
            && not_found(err)
        {
            generation = order[1];
            result = call(generation).await;
        }
        if result.is_ok() {
            self.remember(generation);
        }
        result
    }

    fn remember(&self, generation: ApiGeneration) {
        let code = match generation {
            ApiGeneration::Container => API_CONTAINER,
            ApiGeneration::CacheManager => API_CACHE_MANAGER,
        };
        if self.api.swap(code, Ordering::Relaxed) != code {
            tracing::debug!(site = %self.site, api = ?generation, "infinispan_api_detected");
        }
    }

    /// A container-level call on the server's API generation (see [`Self::on_generation`]).
    async fn container_call(
        &self,
        method: Method,
        tail: &[&str],
        action: Option<&str>,
        operation: &'static str,
    ) -> Result<reqwest::Response, IspnError> {
        self.on_generation(
            |generation| {
                let segments: Vec<&str> = generation
                    .prefix()
                    .iter()
                    .copied()
                    .chain(tail.iter().copied())
                    .collect();
                let url = self.url(&segments, action);
                self.send(method.clone(), url, operation)
            },
            |err| matches!(err, IspnError::Status { status: 404, .. }),
        )
        .await
    }

    /// A request to `url` with this client's credentials.
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        // The lock only guards a swap of the whole value: a poisoned one still holds a
        // complete pair of credentials.
        let credentials = self
            .credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.http
            .request(method, url)
            .basic_auth(&credentials.user, Some(credentials.password.expose()))
    }

    /// Sends the request; any answer but 2xx is an [`IspnError::Status`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        operation: &'static str,
    ) -> Result<reqwest::Response, IspnError> {
        let response = self
            .request(method, url)
            .send()
            .await
            .map_err(|e| self.unreachable(operation, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(IspnError::Status {
            site: self.site.clone(),
            operation,
            status: status.as_u16(),
            body: truncate(&body, MAX_ERROR_BODY),
        })
    }

    async fn json(
        &self,
        response: reqwest::Response,
        operation: &'static str,
    ) -> Result<serde_json::Value, IspnError> {
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.unreachable(operation, &e))?;
        response::json_body(status == StatusCode::NO_CONTENT, &text)
            .map_err(|reason| self.invalid(operation, reason))
    }

    fn unreachable(&self, operation: &'static str, err: &reqwest::Error) -> IspnError {
        IspnError::Unreachable {
            site: self.site.clone(),
            operation,
            message: error_chain(err),
        }
    }

    fn invalid(&self, operation: &'static str, reason: String) -> IspnError {
        IspnError::InvalidResponse {
            site: self.site.clone(),
            operation,
            reason,
        }
    }
}

/// One site as a node's `jgroups_site_view_status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SiteView {
    /// 1: the site is in the cross-site view.
    InView,
    /// 0: it is not (the link is down or the site is gone).
    NotInView,
    /// 2 (a node that is not site master) or any other value.
    Unknown,
}

/// `jgroups_site_view_status` per `site` label, with or without the `vendor_` prefix (16.0.4
/// dropped it by default). Over several nodes a site is out of view when any node says 0 (as
/// the alert's `min by` reads it), in view when a node says 1 and none says 0.
pub fn parse_site_view(page: &str) -> BTreeMap<String, SiteView> {
    let mut views: BTreeMap<String, SiteView> = BTreeMap::new();
    for line in page.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        if !(name == "jgroups_site_view_status" || name == "vendor_jgroups_site_view_status") {
            continue;
        }
        let Some(site) = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| key.trim() == "site")
            .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        else {
            continue;
        };
        let view = match value.trim().parse::<f64>() {
            Ok(1.0) => SiteView::InView,
            Ok(0.0) => SiteView::NotInView,
            _ => SiteView::Unknown,
        };
        let merged = match (views.get(&site), view) {
            (Some(SiteView::NotInView), _) | (_, SiteView::NotInView) => SiteView::NotInView,
            (Some(SiteView::InView), _) | (_, SiteView::InView) => SiteView::InView,
            _ => SiteView::Unknown,
        };
        views.insert(site, merged);
    }
    views
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    fn client(endpoint: &str) -> SiteClient {
        SiteClient::new(
            site("site-a"),
            SiteEndpoint::parse(endpoint).unwrap(),
            reqwest::Client::new(),
            Credentials {
                user: "admin".to_owned(),
                password: Secret::new("pw"),
            },
        )
    }

    #[test]
    fn site_view_from_a_metrics_page() {
        let page = "# HELP vendor_jgroups_site_view_status x\n\
# TYPE vendor_jgroups_site_view_status gauge\n\
vendor_jgroups_site_view_status{site=\"site-a\"} 1\n\
vendor_jgroups_site_view_status{cluster=\"ispn\",site=\"site-b\"} 0\n\
vendor_jgroups_site_view_status{cluster=\"ispn\",site=\"site-b\"} 2.0\n\
jgroups_site_view_status{site=\"site-c\"} 2\n\
jgroups_site_view_status{site=\"site-c\"} 1\n\
vendor_cache_manager_default_cluster_size 3\n";
        let views = parse_site_view(page);
        assert_eq!(views.get("site-a"), Some(&SiteView::InView));
        assert_eq!(
            views.get("site-b"),
            Some(&SiteView::NotInView),
            "any node at 0"
        );
        assert_eq!(
            views.get("site-c"),
            Some(&SiteView::InView),
            "non-masters say 2"
        );
        assert_eq!(views.len(), 3);
        assert!(parse_site_view("").is_empty());
    }

    #[test]
    fn endpoints_from_host_host_port_or_url() {
        let table = [
            (
                "infinispan.site-a.example",
                "https://infinispan.site-a.example/",
            ),
            ("10.0.0.5:11222", "https://10.0.0.5:11222/"),
            ("https://ispn.example:8443", "https://ispn.example:8443/"),
            ("https://proxy.example/ispn", "https://proxy.example/ispn/"),
            (" https://ispn.example/ ", "https://ispn.example/"),
        ];
        for (given, want) in table {
            assert_eq!(
                SiteEndpoint::parse(given).unwrap().to_string(),
                want,
                "{given}"
            );
        }
        for bad in [
            "",
            "http://ispn.example",
            "https://u:p@ispn.example",
            "https://x/?a=b",
            "https://",
        ] {
            assert!(SiteEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_for_both_api_generations_and_encoded_segments() {
        let c = client("https://ispn.example:8443/prefix");
        let new: Vec<&str> = ApiGeneration::Container
            .prefix()
            .iter()
            .copied()
            .chain(["backups", "site-b"])
            .collect();
        assert_eq!(
            c.url(&new, Some("take-offline")).as_str(),
            "https://ispn.example:8443/prefix/rest/v2/container/x-site/backups/site-b?action=take-offline"
        );
        let old: Vec<&str> = ApiGeneration::CacheManager
            .prefix()
            .iter()
            .copied()
            .chain(["backups", "site-b"])
            .collect();
        assert_eq!(
            c.url(&old, Some("bring-online")).as_str(),
            "https://ispn.example:8443/prefix/rest/v2/cache-managers/default/x-site/backups/site-b?action=bring-online"
        );
        assert_eq!(
            c.url(
                &["rest", "v2", "caches", "a/b c", "x-site", "backups", ""],
                None
            )
            .as_str(),
            "https://ispn.example:8443/prefix/rest/v2/caches/a%2Fb%20c/x-site/backups/"
        );
    }

    #[test]
    fn seed_ignored_the_per_cache_failure_map() {
        let result = response::cache_results(serde_json::json!({
            "actionTokens": "ok", "work": "Incorrect site name: site-x", "sessions": "OK"
        }))
        .unwrap();
        assert!(!result.all_ok());
        assert_eq!(
            result.failures().collect::<Vec<_>>(),
            vec![("work", "Incorrect site name: site-x")]
        );
        let err = IspnError::CacheFailures {
            site: site("site-a"),
            operation: "take-offline",
            result,
        };
        assert!(
            err.is_retryable(),
            "a cache that failed to go offline must be retried"
        );
        assert!(
            err.to_string().contains("work=Incorrect site name: site-x"),
            "{err}"
        );
        assert!(response::cache_results(serde_json::json!(["ok"])).is_err());
        let all_ok = response::cache_results(serde_json::json!({"a": "ok", "b": "ok"})).unwrap();
        assert!(all_ok.all_ok());
    }

    #[test]
    fn error_classification() {
        let status = |status: u16| IspnError::Status {
            site: site("site-a"),
            operation: "take-offline",
            status,
            body: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(500).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(status(401).is_auth_failure());
        assert!(!status(403).is_retryable());
        assert!(!status(404).is_retryable());
        let unreachable = IspnError::Unreachable {
            site: site("site-a"),
            operation: "health",
            message: "timeout".into(),
        };
        assert!(unreachable.is_retryable());
        let timed_out = IspnError::TimedOut {
            site: site("site-a"),
            operation: "take-offline",
            after: Duration::from_secs(5),
        };
        assert!(timed_out.is_retryable(), "it may not have taken effect");
        let unconfirmed = IspnError::Unconfirmed {
            site: site("site-a"),
            operation: "take-offline",
            caches: UnconfirmedCaches {
                missing: vec!["work".to_owned()],
                ..UnconfirmedCaches::default()
            },
        };
        assert!(
            unconfirmed.is_retryable(),
            "the server may not have the cache yet"
        );
    }

    #[test]
    fn error_bodies_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_BODY);
        let cut = truncate(&long, MAX_ERROR_BODY);
        assert!(cut.len() <= MAX_ERROR_BODY + "…".len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate(" ISPN012010 ", 100), "ISPN012010");
    }

    #[test]
    fn health_statuses() {
        assert_eq!(Health::parse("HEALTHY"), Health::Healthy);
        assert_eq!(Health::parse("\"DEGRADED\"\n"), Health::Degraded);
        assert_eq!(
            Health::parse("HEALTHY_REBALANCING"),
            Health::HealthyRebalancing
        );
        assert_eq!(Health::parse("FAILED"), Health::Other("FAILED".into()));
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials {
            user: "admin".into(),
            password: Secret::new("pw-123"),
        };
        assert!(!format!("{c:?}").contains("pw-123"));
        let client = client("ispn.example");
        assert!(!format!("{client:?}").contains("pw"));
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_a_configuration_error() {
        let tls = TlsConfig {
            ca_bundle_pem: Some(b"not a pem".to_vec()),
            ..TlsConfig::default()
        };
        assert!(matches!(http_client(&tls), Err(IspnError::Tls(_))));
    }
}
