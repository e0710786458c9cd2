//! The request path end to end against a fake world: one row per seed defect or rule.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_topology::decisions::{Completion, DecisionRecord, Recorded};
use aws_topology::globalaccelerator::{
    Endpoint, EndpointGroup, Health, Removal, Topology, TrafficDial,
};
use base64::Engine;
use common::auth::BasicCredentials;
use common::outcome::Disposition;
use common::secret::Secret;
use common::site::{AcceleratorDns, SiteName};
use ispn_client::CacheResults;

use crate::decide::{Liveness, Policy};
use crate::event::{FunctionUrlRequest, handle_event};
use crate::handler::{Failure, Settings, World};
use aws_topology::decisions::Mode;

pub(crate) const DNS: &str = "a1234567890abcdef.awsglobalaccelerator.com";
const USER: &str = "alertmanager";
const PASSWORD: &str = "webhook-pw-7d1e";
const CACHES: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

pub(crate) fn site(name: &str) -> SiteName {
    SiteName::parse(name).unwrap()
}

pub(crate) fn endpoint(id: &str, site_name: &str, health: Health) -> Endpoint {
    Endpoint {
        id: id.to_owned(),
        site: (!site_name.is_empty()).then(|| site(site_name)),
        weight: Some(128),
        health,
    }
}

pub(crate) fn group(arn: &str, endpoints: Vec<Endpoint>) -> EndpointGroup {
    EndpointGroup {
        arn: arn.to_owned(),
        listener_arn: "listener-443".to_owned(),
        region: "eu-west-1".to_owned(),
        traffic_dial: TrafficDial::FULL,
        endpoints,
    }
}

/// Global Accelerator, Infinispan and Secrets Manager as plain state (also the world of the
/// exhaustive check, [`crate::model_check`]).
pub(crate) struct FakeWorld {
    webhook_password: Result<String, Failure>,
    pub(crate) groups: Mutex<Vec<EndpointGroup>>,
    /// (site, remote) → `online` / `offline`.
    pub(crate) backups: Mutex<BTreeMap<(String, String), &'static str>>,
    liveness: Liveness,
    take_offline_failures: Mutex<Vec<Failure>>,
    remove_failures: Mutex<Vec<Failure>>,
    topology_failure: Option<Failure>,
    forgotten: Mutex<u32>,
    /// Preflights' fresh reads of the secrets.
    secrets_read_afresh: Mutex<u32>,
    notified: Mutex<Vec<String>>,
    /// Calls that change the accelerator or Infinispan (RemoveEndpoints, a dial, a
    /// take-offline), whether they succeed or not.
    writes: Mutex<u32>,
    /// The completions added to decisions: (decision id, completion).
    completions: Mutex<Vec<(String, Completion)>>,
    /// Every topology read and take-offline hangs (a server that accepts and never answers).
    hang: bool,
    /// The decision records, by split-brain key, with DynamoDB's conditional create.
    pub(crate) records: Mutex<BTreeMap<String, DecisionRecord>>,
    /// Yield to the executor inside calls, so that concurrent invocations interleave.
    yields: usize,
}

impl FakeWorld {
    pub(crate) fn new() -> FakeWorld {
        FakeWorld {
            webhook_password: Ok(PASSWORD.to_owned()),
            groups: Mutex::new(vec![group(
                "g1",
                vec![
                    endpoint("lb-a", "site-a", Health::Healthy),
                    endpoint("lb-b", "site-b", Health::Unhealthy),
                ],
            )]),
            backups: Mutex::new(BTreeMap::from([
                (("site-a".into(), "site-b".into()), "online"),
                (("site-b".into(), "site-a".into()), "online"),
            ])),
            liveness: Liveness::Alive,
            take_offline_failures: Mutex::default(),
            remove_failures: Mutex::default(),
            topology_failure: None,
            forgotten: Mutex::new(0),
            secrets_read_afresh: Mutex::new(0),
            notified: Mutex::default(),
            writes: Mutex::new(0),
            completions: Mutex::default(),
            records: Mutex::default(),
            hang: false,
            yields: 0,
        }
    }

    fn endpoints(&self) -> Vec<Vec<String>> {
        self.groups
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.endpoints.iter().map(|e| e.id.clone()).collect())
            .collect()
    }

    pub(crate) fn backup(&self, from: &str, to: &str) -> &'static str {
        self.backups.lock().unwrap()[&(from.to_owned(), to.to_owned())]
    }

    async fn pause(&self) {
        for _ in 0..self.yields {
            tokio::task::yield_now().await;
        }
    }
}

impl World for FakeWorld {
    async fn webhook_credentials(&self) -> Result<BasicCredentials, Failure> {
        let password = self.webhook_password.clone()?;
        Ok(BasicCredentials {
            user: USER.to_owned(),
            password: Secret::new(password),
        })
    }

    async fn topology(&self, accelerator: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        self.pause().await;
        if self.hang {
            std::future::pending::<()>().await;
        }
        if let Some(failure) = &self.topology_failure {
            return Err(failure.clone());
        }
        if accelerator.as_str() != DNS {
            return Ok(None);
        }
        let groups = self.groups.lock().unwrap().clone();
        let mut listeners: Vec<String> = Vec::new();
        for g in &groups {
            if !listeners.contains(&g.listener_arn) {
                listeners.push(g.listener_arn.clone());
            }
        }
        Ok(Some(Topology {
            accelerator_arn: "arn:acc".to_owned(),
            listeners,
            groups,
        }))
    }

    fn forget_topology(&self, _: &AcceleratorDns) {
        *self.forgotten.lock().unwrap() += 1;
    }

    async fn backup_status(&self, site: &SiteName) -> Result<BTreeMap<String, String>, Failure> {
        Ok(self
            .backups
            .lock()
            .unwrap()
            .iter()
            .filter(|((from, _), _)| from == site.as_str())
            .map(|((_, to), state)| (to.clone(), (*state).to_owned()))
            .collect())
    }

    async fn read_secrets_afresh(&self) -> Result<(), Failure> {
        *self.secrets_read_afresh.lock().unwrap() += 1;
        Ok(())
    }

    async fn reread_webhook_credentials(
        &self,
        _: &BasicCredentials,
    ) -> Result<Option<BasicCredentials>, Failure> {
        Ok(None)
    }

    async fn probe(&self, _: &SiteName) -> Result<Liveness, Failure> {
        Ok(self.liveness)
    }

    async fn record(
        &self,
        proposal: &DecisionRecord,
        replacing: Option<&str>,
    ) -> Result<Recorded, Failure> {
        self.pause().await;
        let mut records = self.records.lock().unwrap();
        let existing = records.get(&proposal.split_brain);
        let allowed = match (existing, replacing) {
            (None, None) => true,
            (Some(r), None) => r.closed.is_some(),
            (Some(r), Some(id)) => r.decision_id == id && r.closed.is_none(),
            (None, Some(_)) => false,
        };
        if allowed {
            records.insert(proposal.split_brain.clone(), proposal.clone());
            Ok(Recorded::Created)
        } else {
            existing
                .cloned()
                .map(|r| Recorded::Existing(Box::new(r)))
                .ok_or_else(|| Failure::transient("no record to replace"))
        }
    }

    async fn recorded(&self, split_brain: &str) -> Result<Option<DecisionRecord>, Failure> {
        Ok(self.records.lock().unwrap().get(split_brain).cloned())
    }

    async fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        _: Instant,
    ) -> Result<(), Failure> {
        *self.writes.lock().unwrap() += 1;
        self.pause().await;
        let mut groups = self.groups.lock().unwrap();
        let group = groups
            .iter_mut()
            .find(|g| g.arn == group_arn)
            .ok_or_else(|| Failure::fatal("no group"))?;
        group.traffic_dial = dial;
        Ok(())
    }

    async fn remove_endpoints(
        &self,
        group_arn: &str,
        ids: &[String],
        _: Instant,
    ) -> Result<Removal, Failure> {
        *self.writes.lock().unwrap() += 1;
        self.pause().await;
        if let Some(failure) = self.remove_failures.lock().unwrap().pop() {
            return Err(failure);
        }
        let mut groups = self.groups.lock().unwrap();
        let group = groups
            .iter_mut()
            .find(|g| g.arn == group_arn)
            .ok_or_else(|| Failure::fatal("no group"))?;
        let mut removal = Removal::default();
        for id in ids {
            if group.endpoints.iter().any(|e| &e.id == id) {
                removal.removed.push(id.clone());
            } else {
                removal.already_gone.push(id.clone());
            }
        }
        group.endpoints.retain(|e| !ids.contains(&e.id));
        Ok(removal)
    }

    async fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> Result<CacheResults, Failure> {
        *self.writes.lock().unwrap() += 1;
        self.pause().await;
        if let Some(failure) = self.take_offline_failures.lock().unwrap().pop() {
            return Err(failure);
        }
        self.backups
            .lock()
            .unwrap()
            .insert((site.to_string(), remote.to_string()), "offline");
        Ok(CacheResults(
            CACHES
                .iter()
                .map(|c| ((*c).to_owned(), "ok".to_owned()))
                .collect(),
        ))
    }

    async fn notify(&self, subject: &str, _: &serde_json::Value) {
        self.notified.lock().unwrap().push(subject.to_owned());
    }

    async fn complete(
        &self,
        _: &str,
        decision_id: &str,
        completion: &Completion,
    ) -> Result<(), Failure> {
        self.completions
            .lock()
            .unwrap()
            .push((decision_id.to_owned(), completion.clone()));
        Ok(())
    }
}

pub(crate) fn settings() -> Settings {
    Settings {
        alert_name: "SiteOffline".to_owned(),
        policy: Policy {
            sites: [site("site-a"), site("site-b")].into(),
            preferred: site("site-a"),
        },
        retry_budget: Duration::from_secs(5),
        decision_stale_after: Duration::from_secs(900),
        mode: aws_topology::decisions::Mode::Enforce,
    }
}

pub(crate) fn event(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../events/fence/{name}.function-url.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Sends a Function URL event (as JSON) through the handler, like the runtime would.
async fn invoke(
    world: &FakeWorld,
    request: &serde_json::Value,
) -> (u16, http::HeaderMap, serde_json::Value) {
    let request_id = format!("req-{}", fastrand::u64(..));
    let response = handle_event(world, &settings(), request.clone(), 0, &request_id).await;
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| {
            (
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect();
    let body = serde_json::from_str(&response.body).unwrap();
    (response.status_code, headers, body)
}

fn with_auth(mut request: serde_json::Value, header: &str) -> serde_json::Value {
    request["headers"]["authorization"] = header.into();
    request
}

pub(crate) fn authorized(name: &str) -> serde_json::Value {
    with_auth(event(name), &basic(&format!("{USER}:{PASSWORD}")))
}

fn set_body(mut request: serde_json::Value, body: &str) -> serde_json::Value {
    request["body"] = body.into();
    request
}

fn set_labels(
    mut request: serde_json::Value,
    change: impl Fn(&mut serde_json::Value),
) -> serde_json::Value {
    let mut webhook: serde_json::Value =
        serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    for alert in webhook["alerts"].as_array_mut().unwrap() {
        change(&mut alert["labels"]);
    }
    request["body"] = webhook.to_string().into();
    request
}

fn untouched(world: &FakeWorld) -> bool {
    world.endpoints() == vec![vec!["lb-a".to_owned(), "lb-b".to_owned()]]
        && world.backup("site-a", "site-b") == "online"
        && world.backup("site-b", "site-a") == "online"
}

fn fenced_b(world: &FakeWorld) -> bool {
    world
        .groups
        .lock()
        .unwrap()
        .iter()
        .all(|g| g.endpoints.iter().all(|e| e.site != Some(site("site-b"))))
        && world.backup("site-a", "site-b") == "offline"
        && world.backup("site-b", "site-a") == "online"
}

struct Case {
    name: &'static str,
    setup: fn(&mut FakeWorld),
    request: fn() -> serde_json::Value,
    status: u16,
    outcome: fn(&FakeWorld) -> bool,
}

fn no_setup(_: &mut FakeWorld) {}

#[tokio::test]
async fn seed_defects_table() {
    let cases = [
        Case {
            name: "fences_site_b_reported_by_site_a",
            setup: no_setup,
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 200,
            outcome: fenced_b,
        },
        Case {
            name: "seed_accepted_username_only_auth",
            setup: no_setup,
            request: || {
                with_auth(
                    event("site-b-offline-reported-by-site-a"),
                    &basic(&format!("{USER}:")),
                )
            },
            status: 401,
            outcome: untouched,
        },
        Case {
            name: "seed_accepted_right_user_wrong_password",
            setup: no_setup,
            request: || {
                with_auth(
                    event("site-b-offline-reported-by-site-a"),
                    &basic(&format!("{USER}:nope")),
                )
            },
            status: 401,
            outcome: untouched,
        },
        Case {
            name: "seed_accepted_wrong_user_right_password",
            setup: no_setup,
            request: || {
                with_auth(
                    event("site-b-offline-reported-by-site-a"),
                    &basic(&format!("admin:{PASSWORD}")),
                )
            },
            status: 401,
            outcome: untouched,
        },
        Case {
            name: "seed_answered_403_without_www_authenticate_on_missing_auth",
            setup: no_setup,
            request: || event("site-b-offline-reported-by-site-a"),
            status: 401,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_500_on_malformed_auth_header",
            setup: no_setup,
            request: || with_auth(event("site-b-offline-reported-by-site-a"), "Basic %%%"),
            status: 401,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_on_non_json_body",
            setup: no_setup,
            request: || {
                set_body(
                    authorized("site-b-offline-reported-by-site-a"),
                    "this is not json",
                )
            },
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_on_empty_body",
            setup: no_setup,
            request: || set_body(authorized("site-b-offline-reported-by-site-a"), ""),
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "base64_body_is_decoded",
            setup: no_setup,
            request: || authorized("site-b-offline-reported-by-site-a.base64"),
            status: 200,
            outcome: fenced_b,
        },
        Case {
            name: "wrong_content_type_is_415",
            setup: no_setup,
            request: || {
                let mut r = authorized("site-b-offline-reported-by-site-a");
                r["headers"]["content-type"] = "text/plain".into();
                r
            },
            status: 415,
            outcome: untouched,
        },
        Case {
            name: "oversized_body_is_413",
            setup: no_setup,
            request: || {
                set_body(
                    authorized("site-b-offline-reported-by-site-a"),
                    &" ".repeat(common::alertmanager::MAX_BODY_BYTES + 1),
                )
            },
            status: 413,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_on_missing_labels",
            setup: no_setup,
            request: || {
                set_labels(authorized("site-b-offline-reported-by-site-a"), |l| {
                    l.as_object_mut().unwrap().remove("reporter");
                })
            },
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_on_missing_site_label",
            setup: no_setup,
            request: || {
                set_labels(authorized("site-b-offline-reported-by-site-a"), |l| {
                    l.as_object_mut().unwrap().remove("site");
                })
            },
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "seed_crashed_on_missing_accelerator_label",
            setup: no_setup,
            request: || {
                set_labels(authorized("site-b-offline-reported-by-site-a"), |l| {
                    l.as_object_mut().unwrap().remove("accelerator");
                })
            },
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "seed_guessed_unknown_site",
            setup: no_setup,
            request: || {
                set_labels(authorized("site-b-offline-reported-by-site-a"), |l| {
                    l["site"] = "site-x".into()
                })
            },
            status: 400,
            outcome: untouched,
        },
        Case {
            name: "seed_handled_only_the_first_listener",
            setup: |w| {
                w.groups.get_mut().unwrap().push(group(
                    "g2-second-listener",
                    vec![
                        endpoint("lb-a2", "site-a", Health::Healthy),
                        endpoint("lb-b2", "site-b", Health::Unhealthy),
                    ],
                ));
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 200,
            outcome: |w| {
                fenced_b(w)
                    && w.endpoints() == vec![vec!["lb-a".to_owned()], vec!["lb-a2".to_owned()]]
            },
        },
        Case {
            name: "seed_read_tags_one_by_one_more_than_20_endpoints",
            setup: |w| {
                let groups = w.groups.get_mut().unwrap();
                groups[0].endpoints.extend(
                    (0..24).map(|i| endpoint(&format!("lb-b-{i}"), "site-b", Health::Unhealthy)),
                );
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 200,
            outcome: |w| fenced_b(w) && w.endpoints() == vec![vec!["lb-a".to_owned()]],
        },
        Case {
            name: "never_removes_last_endpoint",
            setup: |w| {
                w.groups.get_mut().unwrap().push(group(
                    "g-only-b",
                    vec![endpoint("lb-b9", "site-b", Health::Unhealthy)],
                ));
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 200,
            outcome: |w| {
                w.endpoints() == vec![vec!["lb-a".to_owned()], vec!["lb-b9".to_owned()]]
                    && w.backup("site-a", "site-b") == "offline"
            },
        },
        Case {
            // Defect (a): an UNHEALTHY reporter was skipped with a 2xx. Under Keycloak's FAIL
            // backup policy the survivor is UNHEALTHY because its writes fail while its backup
            // is online; both sites alike, the preferred site (answering) survives.
            name: "unhealthy_reporter_still_fences",
            setup: |w| {
                let groups = w.groups.get_mut().unwrap();
                groups[0].endpoints[0].health = Health::Unhealthy;
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 200,
            outcome: fenced_b,
        },
        Case {
            name: "seed_acted_on_resolved_alert",
            setup: no_setup,
            request: || authorized("resolved"),
            status: 200,
            outcome: untouched,
        },
        Case {
            name: "other_alertname_is_ignored",
            setup: no_setup,
            request: || authorized("other-alertname"),
            status: 200,
            outcome: untouched,
        },
        Case {
            name: "unknown_accelerator_is_ignored_with_2xx",
            setup: no_setup,
            request: || {
                set_labels(authorized("site-b-offline-reported-by-site-a"), |l| {
                    l["accelerator"] = "b0000000000000000.awsglobalaccelerator.com".into()
                })
            },
            status: 200,
            outcome: untouched,
        },
        Case {
            name: "seed_ignored_per_cache_failure_map",
            setup: |w| {
                w.take_offline_failures
                    .get_mut()
                    .unwrap()
                    .push(Failure::transient(
                        "site-a: take-offline failed for some caches: work=ISPN000000",
                    ));
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 503,
            // Global Accelerator strictly first: already fenced there.
            outcome: |w| {
                w.endpoints() == vec![vec!["lb-a".to_owned()]]
                    && w.backup("site-a", "site-b") == "online"
            },
        },
        Case {
            name: "throttling_beyond_the_budget_is_503",
            setup: |w| {
                w.remove_failures
                    .get_mut()
                    .unwrap()
                    .push(Failure::transient(
                        "RemoveEndpoints: TransactionInProgressException",
                    ));
            },
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 503,
            outcome: |w| untouched(w) && *w.forgotten.lock().unwrap() == 1,
        },
        Case {
            name: "secrets_unavailable_is_503",
            setup: |w| w.webhook_password = Err(Failure::transient("ThrottlingException")),
            request: || authorized("site-b-offline-reported-by-site-a"),
            status: 503,
            outcome: untouched,
        },
        Case {
            name: "split_brain_in_one_notification_keeps_the_preferred_site",
            setup: |w| w.groups.get_mut().unwrap()[0].endpoints[1].health = Health::Healthy,
            request: || authorized("several-alerts"),
            status: 200,
            outcome: fenced_b,
        },
        Case {
            name: "split_brain_reported_by_the_non_preferred_site_probes_and_keeps_the_preferred",
            setup: |w| w.groups.get_mut().unwrap()[0].endpoints[1].health = Health::Healthy,
            request: || authorized("site-a-offline-reported-by-site-b"),
            status: 200,
            outcome: fenced_b,
        },
        Case {
            name: "dead_preferred_site_is_fenced",
            setup: |w| {
                w.groups.get_mut().unwrap()[0].endpoints[1].health = Health::Healthy;
                w.liveness = Liveness::Unreachable;
            },
            request: || authorized("site-a-offline-reported-by-site-b"),
            status: 200,
            outcome: |w| {
                w.endpoints() == vec![vec!["lb-b".to_owned()]]
                    && w.backup("site-b", "site-a") == "offline"
                    && w.backup("site-a", "site-b") == "online"
            },
        },
    ];
    for case in cases {
        let mut world = FakeWorld::new();
        (case.setup)(&mut world);
        let (status, headers, body) = invoke(&world, &(case.request)()).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(
            (case.outcome)(&world),
            "{}: state {:?} {:?}; {body}",
            case.name,
            world.endpoints(),
            world.backups.lock().unwrap()
        );
        assert_eq!(
            headers.contains_key("www-authenticate"),
            status == 401,
            "{}",
            case.name
        );
        assert!(
            !body.to_string().contains(PASSWORD),
            "{}: password in the answer",
            case.name
        );
    }
}

#[tokio::test]
async fn unauthorized_answers_carry_the_basic_realm() {
    let world = FakeWorld::new();
    let (status, headers, body) = invoke(&world, &event("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], r#"Basic realm="sitefence""#);
    assert_eq!(body["outcome"], "unauthorized");
}

#[tokio::test]
async fn fencing_is_resumable_after_an_infinispan_failure() {
    let world = FakeWorld::new();
    world
        .take_offline_failures
        .lock()
        .unwrap()
        .push(Failure::transient("site-a: cannot reach Infinispan"));
    let (status, _, _) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 503);
    assert_eq!(world.endpoints(), vec![vec!["lb-a".to_owned()]]);
    assert_eq!(world.backup("site-a", "site-b"), "online");
    // Alertmanager retries: the endpoints are gone already, the backup must still go offline.
    let (status, _, body) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 200, "{body}");
    assert!(fenced_b(&world));
    // The resend carries out the recorded decision.
    assert_eq!(body["alerts"][0]["rule"], "offline_site_unhealthy");
    assert_eq!(body["alerts"][0]["decision"]["how"], "adopted");
    // And once more: still 2xx, nothing else changes.
    let (status, _, _) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 200);
    assert!(fenced_b(&world));
}

#[tokio::test]
async fn resolved_alert_after_a_fence_adds_nothing_back() {
    let world = FakeWorld::new();
    invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    let (status, _, body) = invoke(&world, &authorized("resolved")).await;
    assert_eq!(status, 200);
    assert_eq!(body["alerts"][0]["outcome"], "ignored");
    assert!(fenced_b(&world));
}

#[tokio::test]
async fn the_answer_says_per_alert_what_was_done() {
    let world = FakeWorld::new();
    let (_, _, body) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    let alert = &body["alerts"][0];
    assert_eq!(body["outcome"], "done");
    assert_eq!(alert["survivor"], "site-a");
    assert_eq!(alert["fenced"], "site-b");
    assert_eq!(alert["rule"], "offline_site_unhealthy");
    assert_eq!(alert["removed"][0]["removed"], serde_json::json!(["lb-b"]));
    assert_eq!(alert["backup_offline"]["caches"]["work"], "ok");
    assert_eq!(
        world.notified.lock().unwrap().len(),
        1,
        "one notification per action"
    );

    let (_, _, body) = invoke(&world, &authorized("several-alerts")).await;
    let outcomes: Vec<&str> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    // The second alert is site-b (already fenced) reporting site-a: it adopts the recorded
    // decision, finishes that fence (site-a's backup to site-b offline again) and removes
    // nothing more.
    assert_eq!(outcomes, vec!["done", "done"], "{body}");
    assert_eq!(body["alerts"][1]["decision"]["how"], "adopted", "{body}");
    assert_eq!(body["alerts"][1]["survivor"], "site-a", "{body}");
    assert_eq!(world.endpoints(), vec![vec!["lb-a".to_owned()]]);
}

#[tokio::test]
async fn split_brain_reports_at_the_same_moment_keep_exactly_one_site() {
    // Both sites report each other while both look healthy; the two invocations interleave at
    // every call. Whatever the interleaving, one site survives, always the same, and no group
    // is ever emptied.
    for yields in 0..4 {
        for a_first in [true, false] {
            let mut world = FakeWorld::new();
            world.groups.get_mut().unwrap()[0].endpoints[1].health = Health::Healthy;
            world.yields = yields;
            let a = authorized("site-b-offline-reported-by-site-a");
            let b = authorized("site-a-offline-reported-by-site-b");
            let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
            let (r1, r2) = tokio::join!(invoke(&world, first), invoke(&world, second));
            assert_eq!((r1.0, r2.0), (200, 200));
            assert_eq!(
                world.endpoints(),
                vec![vec!["lb-a".to_owned()]],
                "yields {yields}, a_first {a_first}"
            );
            assert!(fenced_b(&world));
        }
    }
}

#[test]
fn every_sample_event_is_a_valid_function_url_request() {
    let dir = format!("{}/../../events/fence", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".function-url.json") {
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(event["requestContext"]["http"]["method"], "POST", "{name}");
            let request =
                FunctionUrlRequest::from_event(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!request.body.is_empty(), "{name}");
            seen += 1;
        } else if name.ends_with(".json") {
            common::alertmanager::Webhook::parse(text.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    assert!(seen >= 6, "found {seen} Function URL events");
}

#[tokio::test]
async fn an_unauthenticated_caller_never_sees_internal_error_text() {
    let mut world = FakeWorld::new();
    world.webhook_password = Err(Failure::transient(
        "secret arn:aws:secretsmanager:eu-west-1:123456789012:secret:sitefence/webhook-AbCdEf: AccessDeniedException: role arn:aws:iam::123456789012:role/fence",
    ));
    let request = with_auth(
        event("site-b-offline-reported-by-site-a"),
        &basic("someone:guess"),
    );
    let (status, _, body) = invoke(&world, &request).await;
    assert_eq!(status, 503);
    let text = body.to_string();
    for internal in ["arn:", "123456789012", "sitefence/webhook", "AccessDenied"] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    // The log keeps it: the record carries it as `detail`, which the answer drops.
    let response = handle_event(&world, &settings(), request, 0, "req-x").await;
    assert!(!response.body.contains("detail"), "{}", response.body);
}

#[tokio::test]
async fn a_hanging_world_is_a_5xx_before_the_invocation_deadline() {
    let mut world = FakeWorld::new();
    world.hang = true;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let lambda_timeout = Duration::from_secs(4);
    let started = Instant::now();
    let response = handle_event(
        &world,
        &settings(),
        authorized("site-b-offline-reported-by-site-a"),
        now_ms + lambda_timeout.as_millis() as u64,
        "req-hang",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(response.status_code, 503, "{}", response.body);
    assert!(response.body.contains("out of time"), "{}", response.body);
    // Work stops at the deadline (the invocation's end less the answer margin).
    assert!(
        took <= lambda_timeout - crate::event::ANSWER_MARGIN + Duration::from_millis(300),
        "{took:?}"
    );
}

#[test]
fn the_worst_case_answers_before_the_lambda_timeout() {
    // What deploy sets (60 s) and the default retry budget; and a short function timeout,
    // where the invocation's own deadline cuts the budget.
    for (lambda_timeout, budget) in [
        (Duration::from_secs(60), crate::config::DEFAULT_RETRY_BUDGET),
        (Duration::from_secs(10), crate::config::DEFAULT_RETRY_BUDGET),
    ] {
        let worst = crate::event::worst_case_answer(lambda_timeout, budget);
        assert!(
            worst + crate::event::ANSWER_RESERVE <= lambda_timeout,
            "{worst:?} for {lambda_timeout:?}"
        );
    }
}

#[test]
fn dispositions_used_by_the_table_map_to_statuses() {
    assert_eq!(Disposition::Transient.http_status(), 503);
}

/// A preflight request for the fake's accelerator, as `sitefence doctor` sends it.
fn preflight_request(authorization: Option<&str>) -> serde_json::Value {
    let mut request = event("resolved");
    request["headers"][crate::preflight::HEADER] = "1".into();
    if let Some(header) = authorization {
        request["headers"]["authorization"] = header.into();
    }
    request["body"] =
        serde_json::json!({"accelerator": "a1234567890abcdef.awsglobalaccelerator.com"})
            .to_string()
            .into();
    request
}

#[tokio::test]
async fn a_preflight_answers_the_plan_and_changes_nothing() {
    let world = FakeWorld::new();
    let authorization = basic(&format!("{USER}:{PASSWORD}"));
    let (status, _, body) = invoke(&world, &preflight_request(Some(&authorization))).await;
    assert_eq!(status, 200, "{body}");
    let preflight = &body["preflight"];
    assert_eq!(preflight["problems"], serde_json::json!([]), "{body}");
    // Both directions are planned; site-b is unhealthy, so either report fences it.
    let plans = preflight["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2, "{body}");
    for plan in plans {
        assert_eq!(plan["choice"], "fence", "{body}");
        assert_eq!(plan["loser"], "site-b", "{body}");
        assert_eq!(plan["steps"][0]["step"], "remove_endpoints", "{body}");
    }
    assert_eq!(preflight["sites"][0]["infinispan"], "alive", "{body}");
    // Read with the fence's credentials: the probe needs none.
    assert_eq!(
        preflight["sites"][0]["backups"]["site-b"], "online",
        "{body}"
    );
    assert_eq!(*world.secrets_read_afresh.lock().unwrap(), 1);
    assert!(untouched(&world), "a preflight changed the world");
    assert!(
        world.records.lock().unwrap().is_empty(),
        "a preflight recorded a decision"
    );
    assert!(
        world.notified.lock().unwrap().is_empty(),
        "a preflight notified"
    );
    assert!(body["alerts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_preflight_needs_the_webhook_credentials() {
    let world = FakeWorld::new();
    for authorization in [None, Some(basic(&format!("{USER}:wrong")))] {
        let (status, _, body) = invoke(&world, &preflight_request(authorization.as_deref())).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.get("preflight").is_none(), "{body}");
    }
    assert_eq!(*world.secrets_read_afresh.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_preflight_names_an_endpoint_without_a_site_and_a_site_without_endpoints() {
    let mut world = FakeWorld::new();
    world.groups = Mutex::new(vec![group(
        "g1",
        vec![
            endpoint("lb-a", "site-a", Health::Healthy),
            endpoint("lb-x", "", Health::Healthy),
        ],
    )]);
    let authorization = basic(&format!("{USER}:{PASSWORD}"));
    let (status, _, body) = invoke(&world, &preflight_request(Some(&authorization))).await;
    assert_eq!(status, 500, "{body}");
    let problems = body["preflight"]["problems"].to_string();
    assert!(
        problems.contains("endpoint lb-x belongs to no site"),
        "{problems}"
    );
    assert!(
        problems.contains("site-b has no endpoint in the accelerator"),
        "{problems}"
    );
    assert_eq!(body["preflight"]["endpoints_without_site"][0], "lb-x");
}

#[tokio::test]
async fn a_preflight_with_a_bad_body_is_a_400() {
    let world = FakeWorld::new();
    let authorization = basic(&format!("{USER}:{PASSWORD}"));
    let mut request = preflight_request(Some(&authorization));
    request["body"] = "{\"accelerator\": 5}".into();
    let (status, _, body) = invoke(&world, &request).await;
    assert_eq!(status, 400, "{body}");
}

/// `site history` shows what each fence did and when it completed: a report that completes
/// the fence adds itself to the decision's completion; one that fails adds nothing.
#[tokio::test]
async fn a_complete_fence_records_its_completion_a_failed_one_does_not() {
    let world = FakeWorld::new();
    world
        .take_offline_failures
        .lock()
        .unwrap()
        .push(Failure::transient("site-a: cannot reach Infinispan"));
    let (status, _, _) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 503);
    assert!(world.completions.lock().unwrap().is_empty());
    let (status, _, body) = invoke(&world, &authorized("site-b-offline-reported-by-site-a")).await;
    assert_eq!(status, 200, "{body}");
    let completions = world.completions.lock().unwrap().clone();
    assert_eq!(completions.len(), 1, "{completions:?}");
    let (decision_id, completion) = &completions[0];
    assert_eq!(
        Some(decision_id.as_str()),
        body["alerts"][0]["decision"]["decision_id"].as_str()
    );
    assert_eq!(
        completion
            .reporters
            .iter()
            .map(SiteName::as_str)
            .collect::<Vec<_>>(),
        ["site-a"]
    );
    assert!(
        completion
            .steps
            .iter()
            .any(|s| s.contains("backup to site-b offline")),
        "{:?}",
        completion.steps
    );
}

/// The answer leaves before the notification and the completion: they are what the answer
/// leaves to do (docs/aws-behaviours.md #91), done once the bootstrap has posted it.
#[tokio::test]
async fn the_answer_leaves_before_the_notification_and_the_completion() {
    let world = FakeWorld::new();
    let request = authorized("site-b-offline-reported-by-site-a");
    let (response, after_answer) =
        crate::event::answer_event(&world, &settings(), request, 0, "req-after").await;
    assert_eq!(response.status_code, 200, "{}", response.body);
    assert!(world.notified.lock().unwrap().is_empty());
    assert!(world.completions.lock().unwrap().is_empty());
    assert!(!after_answer.is_empty());

    after_answer.run(&world).await;
    assert_eq!(world.notified.lock().unwrap().len(), 1);
    assert_eq!(world.completions.lock().unwrap().len(), 1);
}

/// Sends a request through the handler with the function in `mode`.
async fn invoke_in(
    world: &FakeWorld,
    mode: Mode,
    request: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let settings = Settings { mode, ..settings() };
    let request_id = format!("req-{}", fastrand::u64(..));
    let response = handle_event(world, &settings, request.clone(), 0, &request_id).await;
    (
        response.status_code,
        serde_json::from_str(&response.body).unwrap(),
    )
}

fn only_record(world: &FakeWorld) -> DecisionRecord {
    let records = world.records.lock().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    records.values().next().cloned().unwrap()
}

#[tokio::test]
async fn monitor_mode_decides_records_notifies_and_changes_nothing() {
    let world = FakeWorld::new();
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        *world.writes.lock().unwrap(),
        0,
        "no write call in monitor mode"
    );
    assert!(untouched(&world));
    let alert = &body["alerts"][0];
    assert_eq!(alert["mode"], "monitor", "{body}");
    assert_eq!(alert["survivor"], "site-a");
    assert_eq!(alert["fenced"], "site-b");
    assert!(
        alert["reason"]
            .as_str()
            .unwrap()
            .starts_with("monitor: would fence site-b: remove 1 endpoint(s), close 0 dial(s)"),
        "{body}"
    );
    // What it would have done, step by step: the accelerator, then the backup.
    assert_eq!(
        alert["would"]["traffic"],
        serde_json::json!([{"step": "remove_endpoints", "group_arn": "g1", "endpoint_ids": ["lb-b"]}]),
        "{body}"
    );
    assert_eq!(
        alert["would"]["take_offline"],
        serde_json::json!({"site": "site-a", "remote": "site-b"})
    );
    assert!(alert.get("removed").is_none() && alert.get("backup_offline").is_none());
    assert_eq!(alert["decision"]["mode"], "monitor");
    let record = only_record(&world);
    assert_eq!(record.mode, Mode::Monitor);
    assert_eq!(
        (record.survivor.as_str(), record.loser.as_str()),
        ("site-a", "site-b")
    );
    let notified = world.notified.lock().unwrap().clone();
    assert_eq!(notified.len(), 1, "{notified:?}");
    assert!(
        notified[0].contains("MONITOR") && notified[0].contains("would fence site-b"),
        "{notified:?}"
    );

    // The other site's report of the same split-brain adopts the monitor decision, as an
    // enforcing one would, and changes nothing either.
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-a-offline-reported-by-site-b"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"][0]["decision"]["how"], "adopted", "{body}");
    assert_eq!(body["alerts"][0]["fenced"], "site-b", "{body}");
    assert_eq!(*world.writes.lock().unwrap(), 0);
    assert!(untouched(&world));
}

#[tokio::test]
async fn monitor_mode_plans_a_closed_dial_where_removal_would_empty_a_group() {
    let world = FakeWorld::new();
    // One group per site (two regions): taking site-b out means closing its group's dial.
    *world.groups.lock().unwrap() = vec![
        group("ga", vec![endpoint("lb-a", "site-a", Health::Healthy)]),
        group("gb", vec![endpoint("lb-b", "site-b", Health::Unhealthy)]),
    ];
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(*world.writes.lock().unwrap(), 0);
    assert_eq!(
        body["alerts"][0]["would"]["traffic"][0]["step"], "close_dial",
        "{body}"
    );
    assert!(
        world
            .groups
            .lock()
            .unwrap()
            .iter()
            .all(|g| g.traffic_dial == TrafficDial::FULL)
    );
}

/// The rule (`aws_topology::decisions`, "Monitor mode"): a monitor decision binds monitor
/// reports only. An enforcing fence that finds one standing decides anew from today's facts
/// and replaces it, so a rehearsal can never make a real fence skip its probe and fence the
/// site the rehearsal chose.
#[tokio::test]
async fn an_enforcing_fence_decides_anew_over_a_standing_monitor_record() {
    let mut world = FakeWorld::new();
    // Both healthy: the probe of the preferred site decides. It answers in the rehearsal...
    world.groups.get_mut().unwrap()[0].endpoints[1].health = Health::Healthy;
    let (status, _) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200);
    let rehearsal = only_record(&world);
    assert_eq!(
        (rehearsal.mode, rehearsal.loser.as_str()),
        (Mode::Monitor, "site-b")
    );
    // ...and no longer when the real fence runs: site-a must lose now, not site-b as the
    // standing monitor record says.
    world.liveness = Liveness::Unreachable;
    let (status, body) = invoke_in(
        &world,
        Mode::Enforce,
        &authorized("site-a-offline-reported-by-site-b"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alert = &body["alerts"][0];
    assert_eq!(alert["decision"]["how"], "recorded", "{body}");
    assert!(
        alert["decision"]["replaced"]
            .as_str()
            .is_some_and(|why| why.contains("monitor mode")),
        "{body}"
    );
    assert_eq!(alert["fenced"], "site-a", "{body}");
    let record = only_record(&world);
    assert_eq!(
        (record.mode, record.loser.as_str()),
        (Mode::Enforce, "site-a")
    );
    assert_eq!(world.endpoints(), vec![vec!["lb-b".to_owned()]]);
    assert_eq!(world.backup("site-b", "site-a"), "offline");
}

#[tokio::test]
async fn a_monitor_report_adopts_a_standing_enforce_record_and_never_replaces_it() {
    let world = FakeWorld::new();
    let (status, _) = invoke_in(
        &world,
        Mode::Enforce,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(fenced_b(&world));
    let enforced = only_record(&world);
    let writes = *world.writes.lock().unwrap();
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-a-offline-reported-by-site-b"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alert = &body["alerts"][0];
    assert_eq!(alert["decision"]["how"], "adopted", "{body}");
    assert_eq!(alert["decision"]["mode"], "enforce", "{body}");
    // The fence is done: nothing left in the accelerator; the take-offline would be
    // repeated (it is idempotent), which monitor mode only says.
    assert_eq!(alert["would"]["traffic"], serde_json::json!([]), "{body}");
    assert_eq!(*world.writes.lock().unwrap(), writes);
    assert_eq!(only_record(&world), enforced);
}

#[tokio::test]
async fn monitor_mode_skips_and_rejects_what_enforce_mode_skips_and_rejects() {
    let world = FakeWorld::new();
    for (name, status) in [("resolved", 200), ("other-alertname", 200)] {
        let (got, body) = invoke_in(&world, Mode::Monitor, &authorized(name)).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body["alerts"][0].get("would").is_none(), "{name}: {body}");
    }
    assert!(world.notified.lock().unwrap().is_empty());
    assert!(world.records.lock().unwrap().is_empty());
    assert_eq!(*world.writes.lock().unwrap(), 0);
}

/// A completion is what the decision's own mode did: a rehearsal records its own ("would have
/// …"), and a monitor-mode report that adopts an enforcing decision adds nothing to it.
#[tokio::test]
async fn a_monitor_report_completes_only_a_monitor_decision() {
    let world = FakeWorld::new();
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let completions = world.completions.lock().unwrap().clone();
    assert_eq!(completions.len(), 1, "{completions:?}");
    assert!(
        completions[0].1.steps[0].starts_with("monitor mode, nothing changed"),
        "{completions:?}"
    );

    let world = FakeWorld::new();
    let (status, _) = invoke_in(
        &world,
        Mode::Enforce,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = invoke_in(
        &world,
        Mode::Monitor,
        &authorized("site-b-offline-reported-by-site-a"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"][0]["decision"]["how"], "adopted", "{body}");
    let completions = world.completions.lock().unwrap().clone();
    assert_eq!(
        completions.len(),
        1,
        "only the enforcing report completed its decision: {completions:?}"
    );
}
