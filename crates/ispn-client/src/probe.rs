//! A probe of a site's Infinispan that tells a site that may be down from a client that cannot
//! tell.
//!
//! The probe reads the cluster health, `GET /rest/v2/container/health/status` (14.x:
//! `/rest/v2/cache-managers/default/health/status`), on the API generation the other calls
//! use. Infinispan serves both paths without authentication (`anonymous(true)` in its
//! `ContainerResource`), so the probe shows that the site's Infinispan answers and that it is
//! Infinispan, not that the credentials are right: a wrong password shows on the first
//! authenticated call ([`crate::IspnError::is_auth_failure`]). A 401 or 403 here comes from
//! something in front of Infinispan.
//!
//! - [`ProbeError::Unreachable`], the site may be down (a verdict): connection refused or
//!   reset, a name that does not resolve, no answer within the timeout, 5xx (a route with no
//!   server behind it answers 503).
//! - [`ProbeError::Misconfigured`], never a verdict: the TLS handshake fails (the CA bundle
//!   does not trust the certificate, the name does not match, the port does not speak TLS),
//!   401, 403, 404 on both API generations (wrong host, port or path prefix), or an answer
//!   that is not a health status (a web page, a redirect, another 4xx).

use std::time::Duration;

use common::site::SiteName;
use reqwest::{Method, StatusCode};

use crate::{ApiGeneration, Health, MAX_ERROR_BODY, SiteClient, error_chain, truncate};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered as a running server would: the site may be down.
    #[error("{site}: Infinispan unreachable: {reason}")]
    Unreachable { site: SiteName, reason: String },
    /// Something answered, but this client cannot read the site's health there: a
    /// configuration to fix, which says nothing about the site.
    #[error("{site}: Infinispan probe misconfigured: {cause}")]
    Misconfigured {
        site: SiteName,
        cause: Misconfiguration,
    },
}

/// Why a probe cannot tell whether the site is up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misconfiguration {
    /// The TLS handshake failed: the CA bundle does not trust the server's certificate, the
    /// certificate names another host, or the port does not speak TLS.
    #[error("TLS handshake failed (check the CA bundle and the endpoint's host): {0}")]
    Tls(String),
    #[error("{url} answered 401: something in front of Infinispan asks for other credentials")]
    Unauthorized { url: String },
    #[error("{url} answered 403: something in front of Infinispan refuses this client")]
    Forbidden { url: String },
    /// Neither API generation's health path exists under the endpoint.
    #[error(
        "no Infinispan health endpoint under {endpoint} (404 on both API generations' paths): \
         check the host, port and path prefix"
    )]
    NotFound { endpoint: String },
    #[error("{url} is not Infinispan's health endpoint: {answer}")]
    NotInfinispan { url: String, answer: String },
    /// The request could not be made at all.
    #[error("cannot build the request: {0}")]
    Request(String),
}

impl SiteClient {
    /// Whether the site's Infinispan answers (see the module documentation): `timeout` bounds
    /// the whole probe. `Ok` carries the health it reported; a degraded cluster still answers.
    /// The first probe of a server finds its API generation (a second request on 14.x); once
    /// known, a probe is one request.
    pub async fn probe(&self, timeout: Duration) -> Result<Health, ProbeError> {
        self.probe_as(timeout, true).await
    }

    /// [`SiteClient::probe`] without credentials: the health endpoint needs none
    /// (docs/aws-behaviours.md #22), so it can go out before the password is known (a cold
    /// start's first read, beside the secret's), and no login is attempted, so none fails. A
    /// server behind something that does authenticate answers 401: misconfigured, as for
    /// [`SiteClient::probe`].
    pub async fn probe_anonymously(&self, timeout: Duration) -> Result<Health, ProbeError> {
        self.probe_as(timeout, false).await
    }

    async fn probe_as(&self, timeout: Duration, authenticated: bool) -> Result<Health, ProbeError> {
        let probe = self.on_generation(
            async |generation| self.probe_on(generation, authenticated).await,
            |err| {
                matches!(
                    err,
                    ProbeError::Misconfigured {
                        cause: Misconfiguration::NotFound { .. },
                        ..
                    }
                )
            },
        );
        tokio::time::timeout(timeout, probe)
            .await
            .unwrap_or_else(|_| {
                Err(ProbeError::Unreachable {
                    site: self.site.clone(),
                    reason: format!("no answer within {timeout:?}"),
                })
            })
    }

    async fn probe_on(
        &self,
        generation: ApiGeneration,
        authenticated: bool,
    ) -> Result<Health, ProbeError> {
        let url = self.url(generation.health_status(), None);
        common::metrics::count_remote_call();
        let request = if authenticated {
            self.request(Method::GET, url.clone())
        } else {
            self.anonymous_request(Method::GET, url.clone())
        };
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_failure(&err))?;
        let status = response.status();
        let url = url.to_string();
        let misconfigured = |cause| ProbeError::Misconfigured {
            site: self.site.clone(),
            cause,
        };
        if status.is_success() {
            let text = response
                .text()
                .await
                .map_err(|err| self.unreachable_probe(&err))?;
            return health_word(&text).ok_or_else(|| {
                misconfigured(Misconfiguration::NotInfinispan {
                    url,
                    answer: format!("{status} {}", quoted(&text)),
                })
            });
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|location| format!(" to {location}"))
            .unwrap_or_default();
        let body = response.text().await.unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => misconfigured(Misconfiguration::Unauthorized { url }),
            StatusCode::FORBIDDEN => misconfigured(Misconfiguration::Forbidden { url }),
            StatusCode::NOT_FOUND => misconfigured(Misconfiguration::NotFound {
                endpoint: self.endpoint.to_string(),
            }),
            status if status.is_server_error() => ProbeError::Unreachable {
                site: self.site.clone(),
                reason: format!("{url} answered {status} {}", quoted(&body)),
            },
            status => misconfigured(Misconfiguration::NotInfinispan {
                url,
                answer: format!("{status}{location} {}", quoted(&body)),
            }),
        })
    }

    /// A request that got no answer: the TLS handshake failed (misconfigured), or the server
    /// is not there (unreachable).
    fn transport_failure(&self, err: &reqwest::Error) -> ProbeError {
        if let Some(tls) = tls_error(err) {
            return ProbeError::Misconfigured {
                site: self.site.clone(),
                cause: Misconfiguration::Tls(tls.to_string()),
            };
        }
        if err.is_builder() {
            return ProbeError::Misconfigured {
                site: self.site.clone(),
                cause: Misconfiguration::Request(error_chain(err)),
            };
        }
        self.unreachable_probe(err)
    }

    fn unreachable_probe(&self, err: &reqwest::Error) -> ProbeError {
        ProbeError::Unreachable {
            site: self.site.clone(),
            reason: error_chain(err),
        }
    }
}

/// The rustls error behind `err`, if a TLS failure is what it is. An `io::Error` hides the
/// error it wraps from `source()` (and may wrap another `io::Error`), so each one is opened.
fn tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

/// The health status word Infinispan answers (`HEALTHY`, `HEALTHY_REBALANCING`, `DEGRADED`,
/// `FAILED`...), or `None` for anything else. An unknown word of the same shape is kept as
/// [`Health::Other`]: a newer server's status, not a stranger.
fn health_word(text: &str) -> Option<Health> {
    let word = text.trim().trim_matches('"');
    let plausible =
        (1..=32).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plausible.then(|| Health::parse(word))
}

fn quoted(body: &str) -> String {
    if body.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        format!("`{}`", truncate(body, MAX_ERROR_BODY / 4))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::test_server::{self, answer, site};
    use crate::{Credentials, SiteEndpoint, TlsConfig, http_client};
    use common::secret::Secret;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn cause(result: Result<Health, ProbeError>) -> Misconfiguration {
        match result {
            Err(ProbeError::Misconfigured { cause, .. }) => cause,
            other => panic!("expected misconfigured, got {other:?}"),
        }
    }

    fn unreachable(result: Result<Health, ProbeError>) -> String {
        match result {
            Err(ProbeError::Unreachable { reason, .. }) => reason,
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[test]
    fn only_a_health_word_is_infinispan() {
        let table = [
            ("HEALTHY", Some(Health::Healthy)),
            ("HEALTHY_REBALANCING\n", Some(Health::HealthyRebalancing)),
            ("\"DEGRADED\"", Some(Health::Degraded)),
            ("FAILED", Some(Health::Other("FAILED".to_owned()))),
            ("", None),
            ("ok", None),
            (
                "<html><body>Application is not available</body></html>",
                None,
            ),
            (r#"{"status":"UP"}"#, None),
            ("HEALTHY AND WELL", None),
        ];
        for (body, health) in table {
            assert_eq!(health_word(body), health, "{body}");
        }
    }

    #[tokio::test]
    async fn probe_on_infinispan_15_is_one_request() {
        let server = test_server::start(|_, path| match path {
            "/rest/v2/container/health/status" => answer(200, "HEALTHY"),
            _ => answer(404, ""),
        })
        .await;
        let client = server.client();
        assert_eq!(client.probe(TIMEOUT).await.unwrap(), Health::Healthy);
        assert_eq!(client.probe(TIMEOUT).await.unwrap(), Health::Healthy);
        assert_eq!(
            server.paths(),
            vec![
                "GET /rest/v2/container/health/status",
                "GET /rest/v2/container/health/status",
            ]
        );
        assert_eq!(client.api_generation(), Some(ApiGeneration::Container));
    }

    #[tokio::test]
    async fn probe_on_infinispan_14_finds_the_old_path_once() {
        let server = test_server::start(|_, path| match path {
            "/rest/v2/cache-managers/default/health/status" => answer(200, "DEGRADED"),
            "/rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline" => {
                answer(200, "{}")
            }
            _ => answer(404, ""),
        })
        .await;
        let client = server.client();
        assert_eq!(client.probe(TIMEOUT).await.unwrap(), Health::Degraded);
        assert_eq!(client.probe(TIMEOUT).await.unwrap(), Health::Degraded);
        // The x-site calls use what the probe found.
        client.take_offline(&site("site-b")).await.unwrap();
        assert_eq!(
            server.paths(),
            vec![
                "GET /rest/v2/container/health/status",
                "GET /rest/v2/cache-managers/default/health/status",
                "GET /rest/v2/cache-managers/default/health/status",
                "POST /rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline",
            ]
        );
    }

    #[tokio::test]
    async fn an_anonymous_probe_sends_no_credentials_and_a_probe_does() {
        let server = test_server::start(|_, path| match path {
            "/rest/v2/container/health/status" => answer(200, "HEALTHY"),
            _ => answer(404, ""),
        })
        .await;
        let client = server.client();
        assert_eq!(
            client.probe_anonymously(TIMEOUT).await.unwrap(),
            Health::Healthy
        );
        assert_eq!(client.probe(TIMEOUT).await.unwrap(), Health::Healthy);
        let authorizations: Vec<bool> = server
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, authorization)| authorization.is_some())
            .collect();
        assert_eq!(authorizations, [false, true]);
    }

    #[tokio::test]
    async fn a_ca_that_does_not_trust_the_server_is_misconfigured() {
        let server = test_server::start(|_, _| answer(200, "HEALTHY")).await;
        let client = test_server::client_trusting(&server.url, &test_server::stranger_ca());
        let Misconfiguration::Tls(reason) = cause(client.probe(TIMEOUT).await) else {
            panic!("expected a TLS cause");
        };
        assert!(reason.contains("certificate"), "{reason}");
        // The system roots do not know the test CA either.
        let system_roots = SiteClient::new(
            site("site-a"),
            SiteEndpoint::parse(&server.url).unwrap(),
            http_client(&TlsConfig::default()).unwrap(),
            Credentials {
                user: "admin".to_owned(),
                password: Secret::new("pw"),
            },
        );
        assert!(matches!(
            cause(system_roots.probe(TIMEOUT).await),
            Misconfiguration::Tls(_)
        ));
        assert!(server.paths().is_empty(), "no request reached the server");
    }

    #[tokio::test]
    async fn a_port_that_does_not_speak_tls_is_misconfigured() {
        // A plain-HTTP server: the client's TLS hello gets an HTTP answer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let client = test_server::client_trusting(&url, &test_server::stranger_ca());
        assert!(matches!(
            cause(client.probe(TIMEOUT).await),
            Misconfiguration::Tls(_)
        ));
    }

    #[tokio::test]
    async fn refused_reset_and_silent_servers_are_unreachable() {
        let refused = test_server::refused_url().await;
        let client = test_server::client_trusting(&refused, &test_server::stranger_ca());
        let reason = unreachable(client.probe(TIMEOUT).await);
        assert!(reason.to_lowercase().contains("connect"), "{reason}");

        // Accepts, then closes before the TLS handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                drop(tcp);
            }
        });
        let client = test_server::client_trusting(&url, &test_server::stranger_ca());
        unreachable(client.probe(TIMEOUT).await);

        let silent = test_server::silent().await;
        let client = test_server::client_trusting(&silent, &test_server::stranger_ca());
        let started = Instant::now();
        let reason = unreachable(client.probe(Duration::from_millis(300)).await);
        assert!(reason.contains("no answer within 300ms"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_unreachable() {
        let client = test_server::client_trusting(
            "https://infinispan.site-a.invalid",
            &test_server::stranger_ca(),
        );
        unreachable(client.probe(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn a_hung_server_is_unreachable_within_the_timeout() {
        let server = test_server::start(|_, _| test_server::Answer::Hang).await;
        let started = Instant::now();
        unreachable(server.client().probe(Duration::from_millis(300)).await);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn answers_tell_down_from_misconfigured() {
        // (case, handler, misconfigured?) — an unreachable answer is a verdict, a
        // misconfigured one never is.
        let table: [(&str, test_server::Handler, bool); 8] = [
            (
                "503 from a route with no server",
                |_, _| answer(503, "Service Unavailable"),
                false,
            ),
            ("500", |_, _| answer(500, "ISPN000000: boom"), false),
            (
                "401 wrong password at a proxy",
                |_, _| answer(401, ""),
                true,
            ),
            ("403", |_, _| answer(403, ""), true),
            (
                "404 on both generations: wrong path prefix",
                |_, _| answer(404, ""),
                true,
            ),
            (
                "an HTML page",
                |_, _| answer(200, "<html>Keycloak</html>"),
                true,
            ),
            ("a redirect to a login page", |_, _| answer(302, ""), true),
            ("400", |_, _| answer(400, "Bad Request"), true),
        ];
        for (case, handler, misconfigured) in table {
            let server = test_server::start(handler).await;
            let result = server.client().probe(TIMEOUT).await;
            match (&result, misconfigured) {
                (Err(ProbeError::Misconfigured { .. }), true)
                | (Err(ProbeError::Unreachable { .. }), false) => {}
                _ => panic!("{case}: {result:?}"),
            }
        }
    }

    #[tokio::test]
    async fn misconfigured_probes_name_the_cause() {
        let server = test_server::start(|_, _| answer(401, "")).await;
        let err = server.client().probe(TIMEOUT).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "site-a: Infinispan probe misconfigured: {}/rest/v2/container/health/status \
                 answered 401: something in front of Infinispan asks for other credentials",
                server.url
            )
        );
        let server = test_server::start(|_, _| answer(404, "")).await;
        let err = server.client().probe(TIMEOUT).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "no Infinispan health endpoint under {}/",
                server.url
            )),
            "{err}"
        );
        assert_eq!(server.paths().len(), 2, "both generations were tried");
        let server = test_server::start(|_, _| answer(200, "<html>Keycloak</html>")).await;
        let client = server.client();
        let err = client.probe(TIMEOUT).await.unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is not Infinispan's health endpoint: 200 OK `<html>Keycloak</html>`"),
            "{err}"
        );
        assert_eq!(client.api_generation(), None, "a stranger teaches nothing");
    }
}
