//! The emulator over HTTPS: the answers a client must not take for success, and the health
//! paths of each version.

use std::time::Duration;

use reqwest::{Certificate, Client, StatusCode};
use serde_json::{Value, json};

use super::{IspnSite, IspnSiteOptions, IspnVersion, start_pair};
use crate::tls::SandboxCa;

const USER: &str = "developer";
const PASSWORD: &str = "pw-wire";

struct Pair {
    a: IspnSite,
    _b: IspnSite,
    client: Client,
}

async fn start(version: IspnVersion) -> Pair {
    let ca = SandboxCa::generate().unwrap();
    let options = |name: &str, remote: &str| IspnSiteOptions {
        version,
        push_delay: Duration::from_millis(300),
        ..IspnSiteOptions::new(name, remote, USER, PASSWORD)
    };
    let tls = ca.server_config(&[]).unwrap();
    let (a, b) = start_pair(
        options("site-a", "site-b"),
        options("site-b", "site-a"),
        tls,
    )
    .await
    .unwrap();
    let client = Client::builder()
        .tls_certs_only([Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Pair { a, _b: b, client }
}

impl Pair {
    async fn fault(&self, body: Value) {
        let response = self
            .client
            .post(format!("{}/fault", self.a.control_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{body}");
    }

    /// `POST take-offline` on site-a: status and body.
    async fn take_offline(&self) -> (StatusCode, String) {
        let response = self
            .client
            .post(format!(
                "{}/rest/v2/container/x-site/backups/site-b?action=take-offline",
                self.a.url()
            ))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Cache → backup status on site-a, from the control API.
    async fn backups(&self) -> Value {
        let state: Value = self
            .client
            .get(format!("{}/state", self.a.control_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let caches = state["caches"].as_object().unwrap();
        caches
            .iter()
            .map(|(cache, value)| (cache.clone(), value["backup"].clone()))
            .collect()
    }

    async fn health(&self, path: &str, password: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.a.url()))
            .basic_auth(USER, Some(password))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn take_offline_can_answer_for_no_cache_and_leave_every_cache_online() {
    let pair = start(IspnVersion::V15).await;
    let online = json!({
        "actionTokens": "online", "authenticationSessions": "online",
        "loginFailures": "online", "work": "online"
    });
    // (fault, status, body): what a server without the caches (yet) answers.
    let table = [
        (json!({"answer": "empty_object"}), StatusCode::OK, "{}"),
        (json!({"answer": "no_content"}), StatusCode::NO_CONTENT, ""),
    ];
    for (mut fault, status, body) in table {
        fault["operation"] = json!("take-offline");
        pair.fault(fault.clone()).await;
        assert_eq!(
            pair.take_offline().await,
            (status, body.to_owned()),
            "{fault}"
        );
        assert_eq!(
            pair.backups().await,
            online,
            "{fault}: nothing went offline"
        );
    }
}

#[tokio::test]
async fn take_offline_can_leave_a_cache_out_of_its_answer_and_online() {
    let pair = start(IspnVersion::V15).await;
    pair.fault(json!({"operation": "take-offline", "omit_caches": ["work"]}))
        .await;
    let (status, body) = pair.take_offline().await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer,
        json!({"actionTokens": "ok", "authenticationSessions": "ok", "loginFailures": "ok"})
    );
    assert_eq!(pair.backups().await["work"], "online");
    assert_eq!(pair.backups().await["actionTokens"], "offline");
    // One call only: the next one answers for every cache.
    let (_, body) = pair.take_offline().await;
    assert!(body.contains("\"work\":\"ok\""), "{body}");
    assert_eq!(pair.backups().await["work"], "offline");
}

#[tokio::test]
async fn health_paths_per_version_and_no_password_needed() {
    let container = "/rest/v2/container/health/status";
    let cache_managers = "/rest/v2/cache-managers/default/health/status";
    let healthy = (StatusCode::OK, "HEALTHY".to_owned());
    let v15 = start(IspnVersion::V15).await;
    assert_eq!(v15.health(container, PASSWORD).await, healthy);
    // As in Infinispan, the health status is anonymous: a wrong password still reads it.
    assert_eq!(v15.health(container, "wrong").await, healthy);
    assert_eq!(v15.health(cache_managers, PASSWORD).await, healthy);
    let v14 = start(IspnVersion::V14).await;
    assert_eq!(
        v14.health(container, PASSWORD).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(v14.health(cache_managers, "wrong").await, healthy);
}

#[tokio::test]
async fn health_can_answer_as_a_proxy_or_a_route_without_a_server_would() {
    let pair = start(IspnVersion::V15).await;
    let container = "/rest/v2/container/health/status";
    pair.fault(json!({"operation": "health", "status": 401}))
        .await;
    assert_eq!(
        pair.health(container, PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    pair.fault(json!({"operation": "health", "status": 503}))
        .await;
    assert_eq!(
        pair.health(container, PASSWORD).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(pair.health(container, PASSWORD).await.0, StatusCode::OK);
}
