//! The client against canned answers: errors, endpoints, API generations, actions.

use super::*;
use common::secret::Secret;

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
