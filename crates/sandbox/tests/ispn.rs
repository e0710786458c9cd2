//! The Infinispan emulator over real HTTPS, with a client that trusts only the sandbox CA.

use std::time::{Duration, Instant};

use reqwest::{Certificate, Client, Response, StatusCode};
use sandbox::ispn::{self, IspnSite, IspnSiteOptions, IspnVersion, KEYCLOAK_26_CACHES};
use sandbox::tls::SandboxCa;
use serde_json::{Value, json};

const USER: &str = "developer";
const SITE_A: &str = "site-a";
const SITE_B: &str = "site-b";

struct Pair {
    a: IspnSite,
    b: IspnSite,
    password: String,
    ca: SandboxCa,
    client: Client,
}

async fn start(version: IspnVersion, push_delay: Duration) -> Pair {
    let ca = SandboxCa::generate().unwrap();
    let password = format!("pw-{}", fastrand::u64(..));
    let options = |name: &str, remote: &str| IspnSiteOptions {
        version,
        push_delay,
        ..IspnSiteOptions::new(name, remote, USER, &password)
    };
    let tls = ca.server_config(&[]).unwrap();
    let (a, b) = ispn::start_pair(options(SITE_A, SITE_B), options(SITE_B, SITE_A), tls)
        .await
        .unwrap();
    let client = trusting(&ca);
    Pair {
        a,
        b,
        password,
        ca,
        client,
    }
}

fn trusting(ca: &SandboxCa) -> Client {
    let cert = Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap();
    Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Pair {
    fn site(&self, name: &str) -> &IspnSite {
        if name == SITE_A { &self.a } else { &self.b }
    }

    async fn post(&self, site: &str, path: &str) -> Response {
        let url = format!("{}{path}", self.site(site).url());
        self.client
            .post(url)
            .basic_auth(USER, Some(&self.password))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, site: &str, path: &str) -> Response {
        let url = format!("{}{path}", self.site(site).url());
        self.client
            .get(url)
            .basic_auth(USER, Some(&self.password))
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, site: &str, path: &str) -> Value {
        let response = self.get(site, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    async fn control(&self, site: &str, path: &str, body: Value) -> Response {
        let url = format!("{}{path}", self.site(site).control_url());
        self.client.post(url).json(&body).send().await.unwrap()
    }

    async fn control_ok(&self, site: &str, path: &str, body: Value) {
        let response = self.control(site, path, body).await;
        assert_eq!(response.status(), StatusCode::OK, "control {path}");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }

    async fn state(&self, site: &str) -> Value {
        let url = format!("{}/state", self.site(site).control_url());
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The value of `vendor_jgroups_site_view_status` for `seen` on `reporter`'s metrics page.
    async fn site_view(&self, reporter: &str, seen: &str) -> String {
        let page = self
            .client
            .get(self.site(reporter).metrics_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("vendor_jgroups_site_view_status{{site=\"{seen}\"}} ");
        page.lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in:\n{page}"))
            .to_string()
    }

    async fn push_status(&self, site: &str, cache: &str) -> Value {
        self.get_json(
            site,
            &format!("/rest/v2/caches/{cache}/x-site/backups?action=push-state-status"),
        )
        .await
    }

    async fn wait_push_status(&self, site: &str, cache: &str, remote: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.push_status(site, cache).await;
            if status[remote] == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "push status stayed {status}, wanted {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count(&self, site: &str, cache: &str) -> u64 {
        self.state(site).await["caches"][cache]["count"]
            .as_u64()
            .unwrap()
    }
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

const TAKE_OFFLINE_B: &str = "/rest/v2/container/x-site/backups/site-b?action=take-offline";

#[tokio::test]
async fn rest_calls_need_the_right_user_and_password() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let url = format!("{}/rest/v2/container/x-site/backups", pair.a.url());

    let anonymous = pair.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"default\""
    );
    for (user, password) in [(USER, "wrong"), ("intruder", pair.password.as_str())] {
        let response = pair
            .client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
    let garbage = pair
        .client
        .get(&url)
        .header("authorization", "Basic %%%not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        pair.get(SITE_A, "/rest/v2/container/x-site/backups")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_and_metrics_need_no_auth() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let health = pair
        .client
        .get(format!(
            "{}/rest/v2/cache-managers/default/health/status",
            pair.a.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(content_type(&health).starts_with("text/plain"));
    assert_eq!(health.text().await.unwrap(), "HEALTHY");

    let metrics = pair.client.get(pair.a.metrics_url()).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(content_type(&metrics).contains("version=0.0.4"));
    let page = metrics.text().await.unwrap();
    assert!(
        page.contains("# TYPE vendor_jgroups_site_view_status gauge"),
        "{page}"
    );
}

#[tokio::test]
async fn container_take_offline_takes_every_cache_offline() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-b": {"status": "online"}})
    );

    let response = pair.post(SITE_A, TAKE_OFFLINE_B).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("application/json"));
    let results: Value = response.json().await.unwrap();
    let expected: serde_json::Map<String, Value> = KEYCLOAK_26_CACHES
        .iter()
        .map(|c| (c.to_string(), json!("ok")))
        .collect();
    assert_eq!(results, Value::Object(expected));

    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups/")
            .await,
        json!({"site-b": {"status": "offline"}})
    );
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups/site-b")
            .await,
        json!({"status": "offline"})
    );
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/caches/work/x-site/backups/")
            .await,
        json!({"site-b": {"status": "offline"}})
    );
    // Only the reporter's side changes.
    assert_eq!(
        pair.get_json(SITE_B, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-a": {"status": "online"}})
    );
}

#[tokio::test]
async fn unknown_site_answers_200_with_an_error_for_every_cache() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let response = pair
        .post(
            SITE_A,
            "/rest/v2/container/x-site/backups/site-x?action=take-offline",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let results: Value = response.json().await.unwrap();
    for cache in KEYCLOAK_26_CACHES {
        assert_eq!(results[cache], "Incorrect site name: site-x", "{results}");
    }
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-b": {"status": "online"}})
    );
    let missing = pair
        .get(SITE_A, "/rest/v2/container/x-site/backups/site-x")
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cache_level_errors_are_plain_text() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;

    let unknown_cache = pair
        .post(
            SITE_A,
            "/rest/v2/caches/nope/x-site/backups/site-b?action=take-offline",
        )
        .await;
    assert_eq!(unknown_cache.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&unknown_cache), "text/plain");
    assert!(
        unknown_cache
            .text()
            .await
            .unwrap()
            .starts_with("ISPN012010")
    );

    let unknown_site = pair
        .post(
            SITE_A,
            "/rest/v2/caches/work/x-site/backups/site-x?action=take-offline",
        )
        .await;
    assert_eq!(unknown_site.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&unknown_site), "text/plain");
    assert_eq!(
        unknown_site.text().await.unwrap(),
        "Cache 'work' does not backup to site 'site-x'"
    );

    let bad_action = pair
        .post(
            SITE_A,
            "/rest/v2/caches/work/x-site/backups/site-b?action=explode",
        )
        .await;
    assert_eq!(bad_action.status(), StatusCode::BAD_REQUEST);

    let ok = pair
        .post(
            SITE_A,
            "/rest/v2/caches/work/x-site/backups/site-b?action=take-offline",
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "");
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await["site-b"]["status"],
        "mixed"
    );
}

#[tokio::test]
async fn version_14_serves_only_the_cache_managers_path() {
    let pair = start(IspnVersion::V14, Duration::from_millis(300)).await;
    let old = "/rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline";
    let response = pair.post(SITE_A, old).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["work"], "ok");
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/cache-managers/default/x-site/backups/")
            .await,
        json!({"site-b": {"status": "offline"}})
    );
    assert_eq!(
        pair.post(SITE_A, TAKE_OFFLINE_B).await.status(),
        StatusCode::NOT_FOUND
    );
    // A route the server does not have answers 404 even without credentials.
    let anonymous = pair
        .client
        .post(format!("{}{TAKE_OFFLINE_B}", pair.a.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn version_15_serves_only_the_container_path() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    assert_eq!(
        pair.post(SITE_A, TAKE_OFFLINE_B).await.status(),
        StatusCode::OK
    );
    let old = "/rest/v2/cache-managers/default/x-site/backups/site-b?action=take-offline";
    assert_eq!(pair.post(SITE_A, old).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn partition_drops_each_site_from_the_others_view() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "1");
    assert_eq!(pair.site_view(SITE_B, SITE_A).await, "1");

    pair.control_ok(SITE_A, "/partition", json!({"partitioned": true}))
        .await;
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "0");
    assert_eq!(pair.site_view(SITE_B, SITE_A).await, "0");
    assert_eq!(pair.site_view(SITE_A, SITE_A).await, "1");

    pair.control_ok(SITE_B, "/partition", json!({"partitioned": false}))
        .await;
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "1");
    assert_eq!(pair.site_view(SITE_B, SITE_A).await, "1");
}

#[tokio::test]
async fn down_site_answers_503_and_leaves_the_other_sites_view() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.control_ok(SITE_B, "/down", json!({"down": true}))
        .await;

    let rest = pair.get(SITE_B, "/rest/v2/container/x-site/backups").await;
    assert_eq!(rest.status(), StatusCode::SERVICE_UNAVAILABLE);
    let metrics = pair.client.get(pair.b.metrics_url()).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "0");
    // The surviving site still fences.
    assert_eq!(
        pair.post(SITE_A, TAKE_OFFLINE_B).await.status(),
        StatusCode::OK
    );

    pair.control_ok(SITE_B, "/down", json!({"down": false}))
        .await;
    assert_eq!(
        pair.get(SITE_B, "/rest/v2/container/x-site/backups")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "1");
}

#[tokio::test]
async fn push_state_goes_sending_then_ok_and_clears_to_idle() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    assert_eq!(
        pair.push_status(SITE_A, "work").await,
        json!({"site-b": "IDLE"})
    );

    let start = pair
        .post(
            SITE_A,
            "/rest/v2/caches/work/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(start.status(), StatusCode::OK);
    assert_eq!(
        pair.push_status(SITE_A, "work").await,
        json!({"site-b": "SENDING"})
    );
    pair.wait_push_status(SITE_A, "work", SITE_B, "OK").await;

    let clear = pair
        .post(
            SITE_A,
            "/rest/v2/caches/work/x-site/local?action=clear-push-state-status",
        )
        .await;
    assert_eq!(clear.status(), StatusCode::OK);
    assert_eq!(clear.json::<Value>().await.unwrap(), json!("ok"));
    assert_eq!(
        pair.push_status(SITE_A, "work").await,
        json!({"site-b": "IDLE"})
    );
}

#[tokio::test]
async fn push_state_fails_while_partitioned() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;

    // Cut during the push.
    let start = pair
        .post(
            SITE_A,
            "/rest/v2/container/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(start.json::<Value>().await.unwrap()["work"], "ok");
    pair.control_ok(SITE_A, "/partition", json!({"partitioned": true}))
        .await;
    pair.wait_push_status(SITE_A, "work", SITE_B, "ERROR").await;

    // Started while cut: the cache-level call fails at once with a plain-text 500.
    let refused = pair
        .post(
            SITE_A,
            "/rest/v2/caches/loginFailures/x-site/backups/site-b?action=start-push-state",
        )
        .await;
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type(&refused), "text/plain");
    assert!(refused.text().await.unwrap().starts_with("ISPN012047"));
    assert_eq!(
        pair.push_status(SITE_A, "loginFailures").await,
        json!({"site-b": "ERROR"})
    );
}

#[tokio::test]
async fn clear_empties_the_cache_and_a_push_restores_it() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    // Keycloak's procedure: stop the stale site replicating, so the clear stays local.
    let offline = pair
        .post(
            SITE_B,
            "/rest/v2/container/x-site/backups/site-a?action=take-offline",
        )
        .await;
    assert_eq!(offline.status(), StatusCode::OK);

    let clear = pair.post(SITE_B, "/rest/v2/caches/work?action=clear").await;
    assert_eq!(clear.status(), StatusCode::NO_CONTENT);
    assert_eq!(pair.count(SITE_B, "work").await, 0);
    assert_eq!(pair.count(SITE_A, "work").await, 100);
    assert_eq!(
        pair.get_json(SITE_B, "/rest/v2/caches/work?action=size")
            .await,
        json!(0)
    );

    pair.post(
        SITE_A,
        "/rest/v2/container/x-site/backups/site-b?action=start-push-state",
    )
    .await;
    pair.wait_push_status(SITE_A, "work", SITE_B, "OK").await;
    assert_eq!(pair.count(SITE_B, "work").await, 100);
}

#[tokio::test]
async fn clear_with_backup_online_reaches_the_other_site() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let clear = pair.post(SITE_B, "/rest/v2/caches/work?action=clear").await;
    assert_eq!(clear.status(), StatusCode::NO_CONTENT);
    assert_eq!(pair.count(SITE_A, "work").await, 0);
}

#[tokio::test]
async fn status_fault_fails_the_next_calls_then_clears() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.control_ok(
        SITE_A,
        "/fault",
        json!({"operation": "take-offline", "status": 500, "count": 2}),
    )
    .await;
    for attempt in 0..2 {
        let response = pair.post(SITE_A, TAKE_OFFLINE_B).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "attempt {attempt}"
        );
        assert_eq!(content_type(&response), "text/plain");
        assert!(!response.text().await.unwrap().is_empty());
    }
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-b": {"status": "online"}})
    );
    let third = pair.post(SITE_A, TAKE_OFFLINE_B).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-b": {"status": "offline"}})
    );
}

#[tokio::test]
async fn cache_failure_fault_answers_200_with_that_cache_failed() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.control_ok(
        SITE_A,
        "/fault",
        json!({"operation": "take-offline", "cache_failures": {"work": "ISPN000000: boom"}, "count": 1}),
    )
    .await;
    let response = pair.post(SITE_A, TAKE_OFFLINE_B).await;
    assert_eq!(response.status(), StatusCode::OK);
    let results: Value = response.json().await.unwrap();
    assert_eq!(results["work"], "ISPN000000: boom");
    assert_eq!(results["actionTokens"], "ok");
    let status = pair
        .get_json(SITE_A, "/rest/v2/container/x-site/backups")
        .await;
    assert_eq!(status["site-b"]["status"], "mixed");
    assert_eq!(status["site-b"]["online"], json!(["work"]));
    assert_eq!(
        pair.state(SITE_A).await["caches"]["work"]["backup"],
        "online"
    );

    // Used up: the retry takes the last cache offline.
    let retry: Value = pair
        .post(SITE_A, TAKE_OFFLINE_B)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry["work"], "ok");
}

#[tokio::test]
async fn latency_fault_slows_rest_calls() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.control_ok(SITE_A, "/fault", json!({"latency_ms": 200}))
        .await;
    let started = Instant::now();
    pair.get(SITE_A, "/rest/v2/container/x-site/backups").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    pair.control_ok(SITE_A, "/fault", json!({"reset": true}))
        .await;
    assert_eq!(pair.state(SITE_A).await["latency_ms"], 0);
}

#[tokio::test]
async fn calls_are_counted_by_operation() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.post(SITE_A, TAKE_OFFLINE_B).await;
    pair.post(SITE_A, TAKE_OFFLINE_B).await;
    pair.get(SITE_A, "/rest/v2/container/x-site/backups").await;
    pair.client.get(pair.a.metrics_url()).send().await.unwrap();

    let url = format!("{}/calls", pair.a.control_url());
    let calls: Value = pair
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["total"], 3, "{calls}");
    assert_eq!(
        calls["by_operation"],
        json!({"take-offline": 2, "status": 1})
    );
    // Each call's span, in the order they were made (the bench's timeline).
    let spans = calls["timeline"].as_array().cloned().unwrap_or_default();
    assert_eq!(spans.len(), 3, "{calls}");
    assert!(
        spans
            .iter()
            .all(|s| s["end_us"].as_u64() >= s["start_us"].as_u64()),
        "{calls}"
    );

    pair.control_ok(SITE_A, "/calls/reset", json!({})).await;
    let calls: Value = pair
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["total"], 0);
}

#[tokio::test]
async fn reset_restores_the_seeded_site() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    pair.post(SITE_A, TAKE_OFFLINE_B).await;
    pair.post(SITE_A, "/rest/v2/caches/work?action=clear").await;
    pair.control_ok(
        SITE_A,
        "/fault",
        json!({"operation": "status", "status": 503, "count": 5}),
    )
    .await;
    pair.control_ok(SITE_A, "/partition", json!({"partitioned": true}))
        .await;
    pair.control_ok(SITE_A, "/down", json!({"down": true}))
        .await;

    pair.control_ok(SITE_A, "/reset", json!({})).await;
    let state = pair.state(SITE_A).await;
    assert_eq!(state["down"], false);
    assert_eq!(state["partitioned"], false);
    assert_eq!(state["faults"], json!([]));
    assert_eq!(
        state["caches"]["work"],
        json!({"backup": "online", "push_state": "IDLE", "count": 100})
    );
    assert_eq!(
        pair.get_json(SITE_A, "/rest/v2/container/x-site/backups")
            .await,
        json!({"site-b": {"status": "online"}})
    );
    assert_eq!(pair.site_view(SITE_A, SITE_B).await, "1");
}

#[tokio::test]
async fn controls_reject_bad_requests_clearly() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let url = format!("{}/partition", pair.a.control_url());
    let bad = pair
        .client
        .post(&url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );

    let unknown = pair
        .control(
            SITE_A,
            "/fault",
            json!({"operation": "explode", "status": 500}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        pair.control(SITE_A, "/nothing", json!({})).await.status(),
        StatusCode::NOT_FOUND
    );

    // The same controls answer under the `/_sandbox` prefix.
    let state = pair
        .client
        .get(format!("{}/_sandbox/state", pair.a.control_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_without_the_sandbox_ca_fails_the_handshake() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let stranger = trusting(&SandboxCa::generate().unwrap());
    let error = stranger.get(pair.a.metrics_url()).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    // The CA itself is what makes the difference.
    let trusted = trusting(&pair.ca)
        .get(pair.a.metrics_url())
        .send()
        .await
        .unwrap();
    assert_eq!(trusted.status(), StatusCode::OK);
}

#[tokio::test]
async fn servers_stop_when_the_sites_are_dropped() {
    let pair = start(IspnVersion::V15, Duration::from_millis(300)).await;
    let url = pair.a.metrics_url();
    let client = pair.client.clone();
    drop(pair);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.get(url).send().await.is_err());
}
