//! How to reach a site: its endpoint, the TLS trust and timeouts of the shared HTTPS client,
//! and the credentials.

use std::fmt;
use std::time::Duration;

use common::secret::Secret;
use reqwest::Url;

use crate::{IspnError, error_chain};

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
    pub(crate) fn join(&self, segments: &[&str]) -> Url {
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
