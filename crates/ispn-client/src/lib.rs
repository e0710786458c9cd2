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

mod api;
mod caches;
mod connect;
mod error;
#[cfg(test)]
mod http_tests;
mod metrics;
mod probe;
pub mod response;
#[cfg(test)]
mod test_server;

pub use api::{ApiGeneration, BackupStatus, CacheResults, Health, XSiteAction};
pub use caches::{
    BackupCaches, CacheListError, KEYCLOAK_24_BACKUP_CACHES, KEYCLOAK_BACKUP_CACHES,
    UnconfirmedCaches,
};
pub use connect::{Credentials, SiteEndpoint, TlsConfig, http_client};
pub use error::IspnError;
pub use metrics::{SiteView, parse_site_view};
pub use probe::{Misconfiguration, ProbeError};

use api::{API_CACHE_MANAGER, API_CONTAINER, API_UNKNOWN};
pub(crate) use error::{MAX_ERROR_BODY, error_chain, truncate};

/// How long a call may take, all of its requests and the reading of the answer included,
/// unless [`SiteClient::with_operation_timeout`] says otherwise.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use common::site::SiteName;
use reqwest::{Method, StatusCode, Url};

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

    /// A request without credentials, for the endpoints Infinispan serves to anyone.
    fn anonymous_request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// A request to `url` with this client's credentials.
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        // The lock only guards a swap of the whole value: a poisoned one still holds a
        // complete pair of credentials.
        let credentials = self
            .credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.anonymous_request(method, url)
            .basic_auth(&credentials.user, Some(credentials.password.expose()))
    }

    /// Sends the request; any answer but 2xx is an [`IspnError::Status`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        operation: &'static str,
    ) -> Result<reqwest::Response, IspnError> {
        // Every request, answered or not, is a remote call of the invocation's metrics.
        common::metrics::count_remote_call();
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

#[cfg(test)]
mod tests;
