//! The client's calls against a local HTTPS server ([`crate::test_server`]).

use std::time::{Duration, Instant};

use common::secret::Secret;

use crate::test_server::{self, Answer, answer, site};
use crate::{
    ApiGeneration, BackupCaches, Credentials, DEFAULT_OPERATION_TIMEOUT, Health, IspnError,
    SiteClient, SiteEndpoint, TlsConfig, XSiteAction, http_client,
};

const ALL_OK: &str =
    r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok","work":"ok"}"#;

#[tokio::test]
async fn take_offline_on_infinispan_15_with_basic_auth() {
    let server = test_server::start(|_, _| answer(200, ALL_OK)).await;
    let client = server.client();
    let result = client.take_offline(&site("site-b")).await.unwrap();
    assert_eq!(result.caches().count(), 4);
    assert_eq!(
        server.paths(),
        vec!["POST /rest/v2/container/x-site/backups/site-b?action=take-offline"]
    );
    // base64("admin:pw:1")
    assert_eq!(
        server.requests.lock().unwrap()[0].1.as_deref(),
        Some("Basic YWRtaW46cHc6MQ==")
    );
    assert_eq!(client.api_generation(), Some(ApiGeneration::Container));
}

#[tokio::test]
async fn infinispan_14_path_after_a_404_and_remembered() {
    let server = test_server::start(|_, path| {
        if path.starts_with("/rest/v2/container/") {
            answer(404, "")
        } else {
            answer(200, ALL_OK)
        }
    })
    .await;
    let client = server.client();
    client.take_offline(&site("site-b")).await.unwrap();
    client.bring_online(&site("site-b")).await.unwrap();
    assert_eq!(
        server.paths(),
        vec![
            "POST /rest/v2/container/x-site/backups/site-b?action=take-offline",
            "POST /rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline",
            "POST /rest/v2/cache-managers/default/x-site/backups/site-b?action=bring-online",
        ]
    );
    assert_eq!(client.api_generation(), Some(ApiGeneration::CacheManager));
}

#[tokio::test]
async fn a_server_upgraded_under_a_warm_client_is_detected_again() {
    // A server without the deprecated paths, behind a client that learnt them from a 14.x.
    let server = test_server::start(|_, path| {
        if path.starts_with("/rest/v2/container/") {
            answer(200, ALL_OK)
        } else {
            answer(404, "")
        }
    })
    .await;
    let client = server.client();
    client.remember(ApiGeneration::CacheManager);
    client.take_offline(&site("site-b")).await.unwrap();
    client.bring_online(&site("site-b")).await.unwrap();
    assert_eq!(
        server.paths(),
        vec![
            "POST /rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline",
            "POST /rest/v2/container/x-site/backups/site-b?action=take-offline",
            "POST /rest/v2/container/x-site/backups/site-b?action=bring-online",
        ]
    );
    assert_eq!(client.api_generation(), Some(ApiGeneration::Container));
}

#[tokio::test]
async fn seed_ignored_a_cache_that_failed_behind_a_200() {
    let server = test_server::start(|_, _| {
        answer(
            200,
            r#"{"actionTokens":"ok","work":"Incorrect site name: site-b"}"#,
        )
    })
    .await;
    let err = server
        .client()
        .take_offline(&site("site-b"))
        .await
        .unwrap_err();
    assert!(matches!(err, IspnError::CacheFailures { .. }), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn seed_trusted_a_take_offline_answer_that_names_no_cache() {
    // (case, answer): each left every Keycloak cache online on a real server, or `work`.
    let table: [(&str, test_server::Handler); 3] = [
        ("200 {}: no cache backs up to the site (yet)", |_, _| {
            answer(200, "{}")
        }),
        ("204 without a body", |_, _| answer(204, "")),
        ("a cache the server does not have yet", |_, _| {
            answer(
                200,
                r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok"}"#,
            )
        }),
    ];
    for (case, handler) in table {
        let server = test_server::start(handler).await;
        let client = server.client();
        let unverified = client.take_offline(&site("site-b")).await;
        assert!(
            unverified.is_ok(),
            "{case}: the old reading says every cache is ok"
        );
        let err = client
            .take_offline_verified(&site("site-b"), &BackupCaches::keycloak())
            .await
            .unwrap_err();
        let IspnError::Unconfirmed { caches, .. } = &err else {
            panic!("{case}: {err}");
        };
        assert!(caches.missing.contains(&"work".to_owned()), "{case}: {err}");
        assert!(err.is_retryable(), "{case}");
    }
}

#[tokio::test]
async fn verified_take_offline_names_a_failed_cache_and_its_answer() {
    let server = test_server::start(|_, _| {
        answer(
            200,
            r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok","work":"ISPN000000: boom"}"#,
        )
    })
    .await;
    let err = server
        .client()
        .take_offline_verified(&site("site-b"), &BackupCaches::keycloak())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "site-a: take-offline not confirmed for every cache: failed: work=ISPN000000: boom"
    );
}

#[tokio::test]
async fn verified_take_offline_of_every_cache() {
    let server = test_server::start(|_, _| answer(200, ALL_OK)).await;
    let result = server
        .client()
        .take_offline_verified(&site("site-b"), &BackupCaches::keycloak())
        .await
        .unwrap();
    assert_eq!(result.caches().count(), 4);
}

#[tokio::test]
async fn plain_text_error_bodies_are_kept_and_classified() {
    let server = test_server::start(|_, path| {
        if path.contains("/caches/") {
            answer(404, "ISPN012010: site-x not found")
        } else {
            answer(500, "ISPN012047: boom")
        }
    })
    .await;
    let client = server.client();
    let err = client.take_offline(&site("site-b")).await.unwrap_err();
    assert!(
        err.is_retryable() && err.to_string().contains("ISPN012047"),
        "{err}"
    );
    let err = client
        .cache_action("work", &site("site-x"), XSiteAction::TakeOffline)
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable() && err.to_string().contains("ISPN012010"),
        "{err}"
    );
}

#[tokio::test]
async fn rejected_credentials_are_not_retryable() {
    let server = test_server::start(|_, _| answer(401, "")).await;
    let err = server
        .client()
        .take_offline(&site("site-b"))
        .await
        .unwrap_err();
    assert!(err.is_auth_failure() && !err.is_retryable(), "{err}");
}

#[tokio::test]
async fn certificates_are_verified_unless_explicitly_disabled() {
    let server = test_server::start(|_, _| answer(200, "HEALTHY")).await;
    let endpoint = SiteEndpoint::parse(&server.url).unwrap();
    let credentials = Credentials {
        user: "admin".to_owned(),
        password: Secret::new("pw"),
    };
    let system_roots = SiteClient::new(
        site("site-a"),
        endpoint.clone(),
        http_client(&TlsConfig::default()).unwrap(),
        credentials.clone(),
    );
    let err = system_roots
        .health(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, IspnError::Unreachable { .. }), "{err}");
    let insecure = TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    };
    let skip = SiteClient::new(
        site("site-a"),
        endpoint,
        http_client(&insecure).unwrap(),
        credentials,
    );
    assert_eq!(
        skip.health(Duration::from_secs(2)).await.unwrap(),
        Health::Healthy
    );
    assert_eq!(
        server
            .client()
            .health(Duration::from_secs(2))
            .await
            .unwrap(),
        Health::Healthy
    );
}

#[tokio::test]
async fn health_on_either_api_generation() {
    let v14 = test_server::start(|_, path| match path {
        "/rest/v2/cache-managers/default/health/status" => answer(200, "HEALTHY"),
        _ => answer(404, ""),
    })
    .await;
    let client = v14.client();
    for _ in 0..2 {
        assert_eq!(
            client.health(Duration::from_secs(2)).await.unwrap(),
            Health::Healthy
        );
    }
    assert_eq!(
        v14.paths(),
        vec![
            "GET /rest/v2/container/health/status",
            "GET /rest/v2/cache-managers/default/health/status",
            "GET /rest/v2/cache-managers/default/health/status",
        ]
    );
    // A server without the deprecated path (the old client read only that one).
    let without_deprecated = test_server::start(|_, path| match path {
        "/rest/v2/container/health/status" => answer(200, "DEGRADED"),
        _ => answer(404, ""),
    })
    .await;
    assert_eq!(
        without_deprecated
            .client()
            .health(Duration::from_secs(2))
            .await
            .unwrap(),
        Health::Degraded
    );
}

#[tokio::test]
async fn a_silent_server_fails_the_health_read_within_its_timeout() {
    let url = test_server::silent().await;
    let client = SiteClient::new(
        site("site-a"),
        SiteEndpoint::parse(&url).unwrap(),
        http_client(&TlsConfig::default()).unwrap(),
        Credentials {
            user: "u".into(),
            password: Secret::new("p"),
        },
    );
    let started = Instant::now();
    let err = client.health(Duration::from_millis(200)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_cannot_eat_the_deadline() {
    assert_eq!(
        test_server::start(|_, _| Answer::Hang)
            .await
            .client()
            .operation_timeout(),
        DEFAULT_OPERATION_TIMEOUT
    );
    assert_eq!(DEFAULT_OPERATION_TIMEOUT, Duration::from_secs(5));
    let limit = Duration::from_millis(300);
    // Reads the request after the TLS handshake, then nothing.
    let hung = test_server::start(|_, _| Answer::Hang).await;
    let hung = hung.client().with_operation_timeout(limit);
    // Accepts the connection, then nothing (not even the handshake).
    let silent = test_server::silent().await;
    let silent = test_server::client_trusting(&silent, &test_server::stranger_ca())
        .with_operation_timeout(limit);
    for client in [&hung, &silent] {
        let started = Instant::now();
        let err = client.take_offline(&site("site-b")).await.unwrap_err();
        assert!(
            matches!(err, IspnError::TimedOut { after, .. } if after == limit),
            "{err}"
        );
        assert!(err.is_retryable(), "{err}");
        let err = client
            .take_offline_verified(&site("site-b"), &BackupCaches::keycloak())
            .await
            .unwrap_err();
        assert!(matches!(err, IspnError::TimedOut { .. }), "{err}");
        let err = client.clear_cache("work").await.unwrap_err();
        assert!(matches!(err, IspnError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < limit * 3 + Duration::from_secs(1));
    }
}

#[tokio::test]
async fn the_operation_timeout_bounds_both_api_generations_together() {
    // The first generation hangs for less than the limit, the second one too: together they
    // take longer than the call may.
    let server = test_server::start(|_, path| {
        if path.starts_with("/rest/v2/container/") {
            answer(404, "")
        } else {
            Answer::Hang
        }
    })
    .await;
    let limit = Duration::from_millis(300);
    let client = server.client().with_operation_timeout(limit);
    let started = Instant::now();
    let err = client.backup_status().await.unwrap_err();
    assert!(matches!(err, IspnError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.paths().len(), 2);
}

#[tokio::test]
async fn status_push_state_and_cache_operations() {
    let server = test_server::start(|method, path| match (method, path) {
        ("GET", "/rest/v2/container/x-site/backups") => answer(
            200,
            r#"{"site-b":{"status":"mixed","online":["work"],"offline":["actionTokens"]}}"#,
        ),
        ("GET", "/rest/v2/caches/work/x-site/backups/") => {
            answer(200, r#"{"site-b":{"status":"offline"}}"#)
        }
        ("GET", "/rest/v2/caches/work/x-site/backups?action=push-state-status") => {
            answer(200, r#"{"site-b":"SENDING"}"#)
        }
        ("POST", "/rest/v2/caches/work/x-site/local?action=clear-push-state-status") => {
            answer(200, "ok")
        }
        ("POST", "/rest/v2/caches/work?action=clear") => answer(204, ""),
        _ => answer(404, "no"),
    })
    .await;
    let client = server.client();
    let status = client.backup_status().await.unwrap();
    assert_eq!(status["site-b"].status, "mixed");
    assert_eq!(status["site-b"].offline, vec!["actionTokens"]);
    assert_eq!(
        client.cache_backup_status("work").await.unwrap()["site-b"],
        "offline"
    );
    assert_eq!(
        client.push_state_status("work").await.unwrap()["site-b"],
        "SENDING"
    );
    client.clear_push_state_status("work").await.unwrap();
    client.clear_cache("work").await.unwrap();
}
