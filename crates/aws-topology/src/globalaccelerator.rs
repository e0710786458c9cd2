//! The accelerator in front of both sites: its endpoint groups, which site each endpoint
//! belongs to, and removing endpoints.
//!
//! Every page of `ListAccelerators`, every listener and every endpoint group is read (the seeds
//! read only the first of each), the accelerator is matched on `DnsName` or `DualStackDnsName`,
//! and endpoints are removed with `RemoveEndpoints` and added back with `AddEndpoints` (no
//! read-modify-write of the group), retried on `TransactionInProgressException` and throttling
//! within a deadline.

use std::collections::{BTreeMap, BTreeSet};

use common::site::SiteName;
use serde::Serialize;

#[cfg(feature = "globalaccelerator")]
mod client;
#[cfg(feature = "globalaccelerator")]
pub use client::GlobalAccelerator;

/// The region of the Global Accelerator API, wherever the accelerator's endpoints are.
pub const API_REGION: &str = "us-west-2";

/// `RemoveEndpoints` takes at most this many endpoints.
pub const ENDPOINTS_PER_REMOVE: usize = 10;
/// `AddEndpoints` takes at most this many endpoints.
pub const ENDPOINTS_PER_ADD: usize = 10;

/// An endpoint to add to a group (or re-weight, when it is already there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointToAdd {
    pub id: String,
    /// 0..=255; the HA guide gives each site 128.
    pub weight: i32,
    /// Off for NLBs in the HA guide (the NLB terminates nothing; the pods see the NLB's address).
    pub client_ip_preservation: bool,
}

/// The health Global Accelerator reports for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    Healthy,
    Unhealthy,
    Initial,
    Unknown,
}

/// The weight Global Accelerator gives an endpoint added without one.
pub const DEFAULT_WEIGHT: i32 = 128;

/// An endpoint group's traffic dial, the share (0–100 %) of its listener's traffic for the
/// group's region that the group takes. A new group's dial is 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct TrafficDial(f32);

// Only built from values Global Accelerator accepts (0.0..=100.0, never NaN), so equality is
// total.
impl Eq for TrafficDial {}

impl TrafficDial {
    pub const FULL: TrafficDial = TrafficDial(100.0);
    pub const CLOSED: TrafficDial = TrafficDial(0.0);

    /// The dial as Global Accelerator reports it; a value outside 0–100 is clamped, a missing
    /// one is the default 100.
    pub fn from_percentage(percentage: Option<f32>) -> TrafficDial {
        match percentage {
            Some(p) if p.is_nan() => TrafficDial::FULL,
            Some(p) => TrafficDial(p.clamp(0.0, 100.0)),
            None => TrafficDial::FULL,
        }
    }

    pub fn percentage(self) -> f32 {
        self.0
    }

    /// Whether the group takes any traffic at all.
    pub fn is_open(self) -> bool {
        self.0 > 0.0
    }
}

impl std::fmt::Display for TrafficDial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub id: String,
    /// From the load balancer's `site` tag; `None` when unknown (never guessed).
    pub site: Option<SiteName>,
    pub weight: Option<i32>,
    pub health: Health,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointGroup {
    pub arn: String,
    /// The listener the group belongs to (part of the group's ARN).
    pub listener_arn: String,
    pub region: String,
    pub traffic_dial: TrafficDial,
    pub endpoints: Vec<Endpoint>,
}

impl EndpointGroup {
    /// **The** rule of what takes traffic, for the fence, its invariant and the operator's
    /// tool alike: an endpoint takes traffic when its weight is above 0 (no weight is Global
    /// Accelerator's default, 128) and its group's traffic dial is above 0. Health does not
    /// enter: Global Accelerator sends traffic to UNHEALTHY endpoints when all of a group's
    /// endpoints are unhealthy (it fails open), so only the configuration says where traffic
    /// can go.
    pub fn takes_traffic(&self, endpoint: &Endpoint) -> bool {
        self.traffic_dial.is_open() && endpoint.weight.unwrap_or(DEFAULT_WEIGHT) > 0
    }

    /// The endpoints that take traffic.
    pub fn traffic_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(|e| self.takes_traffic(e))
    }
}

/// An accelerator's endpoint groups (over all its listeners) with each endpoint's site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub accelerator_arn: String,
    /// Every listener, also those without an endpoint group.
    pub listeners: Vec<String>,
    pub groups: Vec<EndpointGroup>,
}

/// Where traffic can go in one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListenerTraffic {
    /// Sites with at least one endpoint that takes traffic.
    pub sites: BTreeSet<SiteName>,
    /// Endpoints that take traffic but belong to no known site.
    pub unknown_endpoints: Vec<String>,
}

impl ListenerTraffic {
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty() && self.unknown_endpoints.is_empty()
    }
}

/// A listener where a fence left traffic going where it must not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum TrafficViolation {
    #[error("listener {listener}: {loser} still takes traffic")]
    LoserTakesTraffic { listener: String, loser: SiteName },
    #[error("listener {listener}: no endpoint takes traffic (it had {survivor} or {loser})")]
    Nobody {
        listener: String,
        survivor: SiteName,
        loser: SiteName,
    },
}

impl Topology {
    /// The groups of `listener`.
    pub fn groups_of<'a>(&'a self, listener: &'a str) -> impl Iterator<Item = &'a EndpointGroup> {
        self.groups
            .iter()
            .filter(move |g| g.listener_arn == listener)
    }

    /// Per listener, where traffic can go ([`EndpointGroup::takes_traffic`]).
    pub fn traffic(&self) -> BTreeMap<&str, ListenerTraffic> {
        let mut traffic: BTreeMap<&str, ListenerTraffic> = self
            .listeners
            .iter()
            .map(|l| (l.as_str(), ListenerTraffic::default()))
            .collect();
        for group in &self.groups {
            let listener = traffic.entry(group.listener_arn.as_str()).or_default();
            for endpoint in group.traffic_endpoints() {
                match &endpoint.site {
                    Some(site) => {
                        listener.sites.insert(site.clone());
                    }
                    None => listener.unknown_endpoints.push(endpoint.id.clone()),
                }
            }
        }
        traffic
    }

    /// Whether any endpoint of `site` takes traffic, in any listener.
    pub fn site_takes_traffic(&self, site: &SiteName) -> bool {
        self.groups
            .iter()
            .any(|g| g.traffic_endpoints().any(|e| e.site.as_ref() == Some(site)))
    }

    /// Whether `site` has any endpoint in the accelerator, taking traffic or not.
    pub fn site_present(&self, site: &SiteName) -> bool {
        self.groups
            .iter()
            .flat_map(|g| g.endpoints.iter())
            .any(|e| e.site.as_ref() == Some(site))
    }

    /// The fence's invariant: in every listener that has an endpoint of `survivor` or `loser`,
    /// `loser` takes no traffic and somebody does.
    pub fn check_fenced(&self, survivor: &SiteName, loser: &SiteName) -> Vec<TrafficViolation> {
        let traffic = self.traffic();
        let mut violations = Vec::new();
        for (listener, to) in traffic {
            let ours = self.groups_of(listener).any(|g| {
                g.endpoints
                    .iter()
                    .any(|e| e.site.as_ref().is_some_and(|s| s == survivor || s == loser))
            });
            if !ours {
                continue;
            }
            if to.sites.contains(loser) {
                violations.push(TrafficViolation::LoserTakesTraffic {
                    listener: listener.to_owned(),
                    loser: loser.clone(),
                });
            } else if to.is_empty() {
                violations.push(TrafficViolation::Nobody {
                    listener: listener.to_owned(),
                    survivor: survivor.clone(),
                    loser: loser.clone(),
                });
            }
        }
        violations
    }

    /// What a fence may remember about the accelerator between invocations: only what cannot
    /// change under it unnoticed (see [`Known`]).
    pub fn known(&self) -> Known {
        Known {
            accelerator_arn: self.accelerator_arn.clone(),
            listeners: self.listeners.clone(),
            sites: self
                .groups
                .iter()
                .flat_map(|g| g.endpoints.iter())
                .map(|e| (e.id.clone(), e.site.clone()))
                .collect(),
        }
    }
}

/// What a warm read starts from: the accelerator's ARN (fixed for its DNS name), the listeners
/// seen last time, and each endpoint's site (a load balancer's `site` tag). A warm read lists
/// the listeners *and* the known listeners' groups at once, so a listener, group or endpoint
/// added or removed since is seen by the very next read, for one round trip in sequence; only a
/// new listener or an endpoint of unknown site costs a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub accelerator_arn: String,
    pub listeners: Vec<String>,
    pub sites: BTreeMap<String, Option<SiteName>>,
}

/// The listener an endpoint group belongs to: its ARN up to `/endpoint-group/`.
pub fn listener_of(group_arn: &str) -> &str {
    group_arn
        .find("/endpoint-group/")
        .map_or(group_arn, |at| &group_arn[..at])
}

/// One endpoint as `ListEndpointGroups`/`DescribeEndpointGroup` return it (no site).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    pub id: String,
    pub weight: Option<i32>,
    pub health: Health,
}

/// One group as Global Accelerator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub arn: String,
    pub listener_arn: String,
    pub region: String,
    pub traffic_dial: TrafficDial,
    pub endpoints: Vec<EndpointState>,
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub removed: Vec<String>,
    /// Endpoints that were no longer in the group (removed earlier, e.g. by a concurrent fence).
    pub already_gone: Vec<String>,
}

/// Puts listeners, groups and sites together.
pub fn assemble(
    accelerator_arn: String,
    listeners: Vec<String>,
    groups: Vec<GroupState>,
    sites: &BTreeMap<String, Option<SiteName>>,
) -> Topology {
    Topology {
        accelerator_arn,
        listeners,
        groups: groups
            .into_iter()
            .map(|g| EndpointGroup {
                arn: g.arn,
                listener_arn: g.listener_arn,
                region: g.region,
                traffic_dial: g.traffic_dial,
                endpoints: g
                    .endpoints
                    .into_iter()
                    .map(|e| Endpoint {
                        site: sites.get(&e.id).cloned().flatten(),
                        id: e.id,
                        weight: e.weight,
                        health: e.health,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod traffic_tests {
    use super::*;

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    /// `(endpoint, site, weight)`
    type EndpointRow<'a> = (&'a str, &'a str, i32);
    /// `(listener, group, dial, endpoints)`
    type GroupRow<'a> = (&'a str, &'a str, f32, &'a [EndpointRow<'a>]);

    fn topology(groups: &[GroupRow]) -> Topology {
        let mut listeners: Vec<String> = groups.iter().map(|g| g.0.to_owned()).collect();
        listeners.dedup();
        Topology {
            accelerator_arn: "acc".into(),
            listeners,
            groups: groups
                .iter()
                .map(|(listener, arn, dial, endpoints)| EndpointGroup {
                    arn: (*arn).to_owned(),
                    listener_arn: (*listener).to_owned(),
                    region: "eu-west-1".into(),
                    traffic_dial: TrafficDial::from_percentage(Some(*dial)),
                    endpoints: endpoints
                        .iter()
                        .map(|(id, s, weight)| Endpoint {
                            id: (*id).to_owned(),
                            site: (!s.is_empty()).then(|| site(s)),
                            weight: Some(*weight),
                            health: Health::Healthy,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn weight_zero_or_a_closed_dial_takes_no_traffic() {
        let t = topology(&[
            (
                "l1",
                "g1",
                100.0,
                &[("a", "site-a", 128), ("b", "site-b", 0)],
            ),
            ("l2", "g2", 0.0, &[("b2", "site-b", 128)]),
            ("l2", "g3", 50.0, &[("a3", "site-a", 1)]),
        ]);
        let traffic = t.traffic();
        assert_eq!(traffic["l1"].sites, BTreeSet::from([site("site-a")]));
        assert_eq!(traffic["l2"].sites, BTreeSet::from([site("site-a")]));
        assert!(!t.site_takes_traffic(&site("site-b")));
        assert!(t.site_present(&site("site-b")));
        assert!(t.check_fenced(&site("site-a"), &site("site-b")).is_empty());
    }

    #[test]
    fn a_missing_weight_is_the_default_weight() {
        let mut t = topology(&[("l1", "g1", 100.0, &[("b", "site-b", 0)])]);
        t.groups[0].endpoints[0].weight = None;
        assert!(t.site_takes_traffic(&site("site-b")));
    }

    #[test]
    fn the_invariant_names_each_listener_that_breaks_it() {
        let t = topology(&[
            (
                "l1",
                "g1",
                100.0,
                &[("a", "site-a", 128), ("b", "site-b", 128)],
            ),
            ("l2", "g2", 0.0, &[("a2", "site-a", 128)]),
            ("l3", "g3", 100.0, &[("x", "", 128)]),
        ]);
        let violations = t.check_fenced(&site("site-a"), &site("site-b"));
        assert_eq!(
            violations,
            vec![
                TrafficViolation::LoserTakesTraffic {
                    listener: "l1".into(),
                    loser: site("site-b")
                },
                TrafficViolation::Nobody {
                    listener: "l2".into(),
                    survivor: site("site-a"),
                    loser: site("site-b")
                },
            ]
        );
    }

    #[test]
    fn a_group_belongs_to_the_listener_in_its_arn() {
        assert_eq!(
            listener_of("arn:aws:globalaccelerator::1:accelerator/x/listener/y/endpoint-group/z"),
            "arn:aws:globalaccelerator::1:accelerator/x/listener/y"
        );
    }
}

#[cfg(all(test, feature = "globalaccelerator"))]
mod tests {
    use std::time::Instant;

    use common::site::AcceleratorDns;

    use super::*;
    use crate::retry::Backoff;

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    fn state(arn: &str, ids: &[(&str, Health)]) -> GroupState {
        GroupState {
            arn: arn.to_owned(),
            listener_arn: "l1".to_owned(),
            region: "eu-west-1".to_owned(),
            traffic_dial: TrafficDial::FULL,
            endpoints: ids
                .iter()
                .map(|(id, health)| EndpointState {
                    id: (*id).to_owned(),
                    weight: Some(128),
                    health: *health,
                })
                .collect(),
        }
    }

    #[test]
    fn untagged_endpoints_have_no_site() {
        let sites = BTreeMap::from([("lb-a".to_owned(), Some(site("site-a")))]);
        let topology = assemble(
            "acc".to_owned(),
            vec!["l1".to_owned()],
            vec![state(
                "g1",
                &[("lb-a", Health::Healthy), ("i-123", Health::Healthy)],
            )],
            &sites,
        );
        assert_eq!(topology.groups[0].endpoints[1].site, None);
    }

    /// A local stand-in for the Global Accelerator (awsJson1.1) and ELBv2 (Query/XML) APIs,
    /// just enough to show what the client sends: every page, every listener, tag batches,
    /// retries.
    mod fake {
        use std::collections::BTreeMap;
        use std::sync::{Arc, Mutex};

        use serde_json::{Value, json};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        use tokio::net::TcpListener;

        pub const DNS: &str = "a1234567890abcdef.awsglobalaccelerator.com";
        pub const ACC: &str = "arn:aws:globalaccelerator::123456789012:accelerator/target";

        pub fn lb(site: &str, i: usize) -> String {
            format!(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/{site}-{i}/0123456789abcdef"
            )
        }

        /// Endpoint ids with their health state.
        pub type Endpoints = Vec<(String, &'static str)>;

        #[derive(Default)]
        pub struct State {
            /// group ARN → (listener ARN, endpoint ids with health)
            pub groups: BTreeMap<String, (String, Endpoints)>,
            /// load balancer ARN → site tag
            pub tags: BTreeMap<String, String>,
            pub transaction_in_progress: usize,
            pub calls: Vec<(String, usize)>,
        }

        pub type Shared = Arc<Mutex<State>>;

        pub async fn serve(state: Shared) -> String {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let mut stream = BufReader::new(stream);
                        let mut headers = BTreeMap::new();
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        loop {
                            line.clear();
                            stream.read_line(&mut line).await.unwrap();
                            let Some((k, v)) = line.trim_end().split_once(':') else {
                                break;
                            };
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                        let length: usize = headers
                            .get("content-length")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        stream.read_exact(&mut body).await.unwrap();
                        let body = String::from_utf8(body).unwrap();
                        let (status, content_type, answer) = match headers.get("x-amz-target") {
                            Some(target) => {
                                let operation =
                                    target.rsplit('.').next().unwrap_or_default().to_owned();
                                let input: Value = serde_json::from_str(&body).unwrap_or(json!({}));
                                let (status, out) = globalaccelerator(&state, &operation, &input);
                                (status, "application/x-amz-json-1.1", out.to_string())
                            }
                            None => (200, "text/xml", describe_tags(&state, &body)),
                        };
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                            answer.len()
                        );
                        stream
                            .get_mut()
                            .write_all(response.as_bytes())
                            .await
                            .unwrap();
                    });
                }
            });
            url
        }

        fn error(code: &str) -> (u16, Value) {
            (400, json!({"__type": code, "Message": code}))
        }

        fn group_json(arn: &str, endpoints: &[(String, &'static str)]) -> Value {
            json!({
                "EndpointGroupArn": arn,
                "EndpointGroupRegion": "eu-west-1",
                "EndpointDescriptions": endpoints.iter().map(|(id, health)| json!({"EndpointId": id, "Weight": 128, "HealthState": health})).collect::<Vec<_>>(),
            })
        }

        fn globalaccelerator(state: &Shared, operation: &str, input: &Value) -> (u16, Value) {
            let mut state = state.lock().unwrap();
            let token = input["NextToken"].as_str();
            match operation {
                // The target is on the second page and matches only by its dual-stack name.
                "ListAccelerators" => {
                    state.calls.push((operation.to_owned(), 0));
                    match token {
                        None => (
                            200,
                            json!({"Accelerators": [{"AcceleratorArn": "arn:other", "DnsName": "other.awsglobalaccelerator.com"}], "NextToken": "page-2"}),
                        ),
                        Some(_) => (
                            200,
                            json!({"Accelerators": [{"AcceleratorArn": ACC, "DnsName": "z.awsglobalaccelerator.com", "DualStackDnsName": DNS}]}),
                        ),
                    }
                }
                "ListListeners" => {
                    state.calls.push((operation.to_owned(), 0));
                    let listener = if token.is_none() {
                        "listener-443"
                    } else {
                        "listener-80"
                    };
                    let mut out = json!({"Listeners": [{"ListenerArn": listener}]});
                    if token.is_none() {
                        out["NextToken"] = "page-2".into();
                    }
                    (200, out)
                }
                "ListEndpointGroups" => {
                    state.calls.push((operation.to_owned(), 0));
                    let listener = input["ListenerArn"].as_str().unwrap_or_default();
                    let groups: Vec<Value> = state
                        .groups
                        .iter()
                        .filter(|(_, (l, _))| l == listener)
                        .map(|(arn, (_, e))| group_json(arn, e))
                        .collect();
                    (200, json!({"EndpointGroups": groups}))
                }
                "DescribeEndpointGroup" => {
                    state.calls.push((operation.to_owned(), 0));
                    let arn = input["EndpointGroupArn"].as_str().unwrap_or_default();
                    match state.groups.get(arn) {
                        Some((_, endpoints)) => {
                            (200, json!({"EndpointGroup": group_json(arn, endpoints)}))
                        }
                        None => error("EndpointGroupNotFoundException"),
                    }
                }
                "AddEndpoints" => {
                    let configs = input["EndpointConfigurations"].as_array().unwrap().clone();
                    state.calls.push((operation.to_owned(), configs.len()));
                    if configs.is_empty() || configs.len() > 10 {
                        return error("InvalidArgumentException");
                    }
                    if state.transaction_in_progress > 0 {
                        state.transaction_in_progress -= 1;
                        return error("TransactionInProgressException");
                    }
                    let arn = input["EndpointGroupArn"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let Some((_, endpoints)) = state.groups.get_mut(&arn) else {
                        return error("EndpointGroupNotFoundException");
                    };
                    for config in configs {
                        let id = config["EndpointId"].as_str().unwrap().to_owned();
                        if !endpoints.iter().any(|(e, _)| *e == id) {
                            endpoints.push((id, "INITIAL"));
                        }
                    }
                    (200, json!({"EndpointGroupArn": arn}))
                }
                "RemoveEndpoints" => {
                    let ids: Vec<String> = input["EndpointIdentifiers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["EndpointId"].as_str().unwrap().to_owned())
                        .collect();
                    state.calls.push((operation.to_owned(), ids.len()));
                    if ids.is_empty() || ids.len() > 10 {
                        return error("InvalidArgumentException");
                    }
                    if state.transaction_in_progress > 0 {
                        state.transaction_in_progress -= 1;
                        return error("TransactionInProgressException");
                    }
                    let arn = input["EndpointGroupArn"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let Some((_, endpoints)) = state.groups.get_mut(&arn) else {
                        return error("EndpointGroupNotFoundException");
                    };
                    if ids.iter().any(|id| !endpoints.iter().any(|(e, _)| e == id)) {
                        return error("EndpointNotFoundException");
                    }
                    endpoints.retain(|(e, _)| !ids.contains(e));
                    (200, json!({}))
                }
                _ => error("UnknownOperationException"),
            }
        }

        /// `Action=DescribeTags&ResourceArns.member.N=ARN...` → Query XML.
        fn describe_tags(state: &Shared, form: &str) -> String {
            let mut state = state.lock().unwrap();
            let arns: Vec<String> = form
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .filter(|(k, _)| k.starts_with("ResourceArns.member."))
                .map(|(_, v)| v.replace("%3A", ":").replace("%2F", "/"))
                .collect();
            state.calls.push(("DescribeTags".to_owned(), arns.len()));
            let members: String = arns
                .iter()
                .map(|arn| {
                    let tags = match state.tags.get(arn) {
                        Some(site) => {
                            format!("<member><Key>site</Key><Value>{site}</Value></member>")
                        }
                        None => String::new(),
                    };
                    format!("<member><ResourceArn>{arn}</ResourceArn><Tags>{tags}</Tags></member>")
                })
                .collect();
            format!(
                "<DescribeTagsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTagsResult><TagDescriptions>{members}</TagDescriptions></DescribeTagsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeTagsResponse>"
            )
        }
    }

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_globalaccelerator::config::{Credentials, SharedCredentialsProvider};

    /// Two listeners (two pages), each with a group holding one site-a endpoint and `b_count`
    /// site-b endpoints.
    async fn accelerator(b_count: usize) -> (GlobalAccelerator, fake::Shared) {
        let mut state = fake::State::default();
        for (listener, group_arn) in [("listener-443", "group-443"), ("listener-80", "group-80")] {
            let mut endpoints = vec![(fake::lb("site-a", 0), "HEALTHY")];
            endpoints.extend((0..b_count).map(|i| (fake::lb("site-b", i), "UNHEALTHY")));
            state
                .groups
                .insert(group_arn.to_owned(), (listener.to_owned(), endpoints));
        }
        state
            .tags
            .insert(fake::lb("site-a", 0), "site-a".to_owned());
        for i in 0..b_count {
            state
                .tags
                .insert(fake::lb("site-b", i), "site-b".to_owned());
        }
        let state = Arc::new(Mutex::new(state));
        let url = fake::serve(state.clone()).await;
        let config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "test",
            )))
            // The loop under test does the retrying; the SDK's own would hide the calls.
            .retry_config(RetryConfig::disabled())
            .build();
        let backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_attempts: 10,
        };
        (GlobalAccelerator::new(&config).with_backoff(backoff), state)
    }

    fn calls(state: &fake::Shared, operation: &str) -> Vec<usize> {
        state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(o, _)| o == operation)
            .map(|(_, n)| *n)
            .collect()
    }

    fn dns() -> AcceleratorDns {
        AcceleratorDns::parse(fake::DNS).unwrap()
    }

    #[tokio::test]
    async fn seed_read_only_the_first_page_listener_and_group() {
        let (ga, state) = accelerator(1).await;
        let topology = ga
            .topology(&dns())
            .await
            .unwrap()
            .expect("found on page 2 by DualStackDnsName");
        assert_eq!(topology.accelerator_arn, fake::ACC);
        let groups: Vec<&str> = topology.groups.iter().map(|g| g.arn.as_str()).collect();
        assert_eq!(groups, vec!["group-443", "group-80"]);
        for group in &topology.groups {
            let sites: Vec<Option<&str>> = group
                .endpoints
                .iter()
                .map(|e| e.site.as_ref().map(SiteName::as_str))
                .collect();
            assert_eq!(sites, vec![Some("site-a"), Some("site-b")]);
            assert_eq!(group.endpoints[1].health, Health::Unhealthy);
        }
        assert_eq!(calls(&state, "ListAccelerators").len(), 2);
    }

    #[tokio::test]
    async fn more_than_20_endpoints_are_tagged_in_batches_of_20() {
        let (ga, state) = accelerator(30).await;
        let topology = ga.topology(&dns()).await.unwrap().unwrap();
        let tagged = topology
            .groups
            .iter()
            .flat_map(|g| &g.endpoints)
            .filter(|e| e.site.is_some())
            .count();
        assert_eq!(tagged, 62);
        // 31 distinct load balancers (both groups share them): 20 + 11.
        assert_eq!(calls(&state, "DescribeTags"), vec![20, 11]);
    }

    #[tokio::test]
    async fn configured_sites_are_not_read_from_tags() {
        let (ga, state) = accelerator(3).await;
        // Every site-b load balancer configured; site-a's is not.
        let known = (0..3)
            .map(|i| (fake::lb("site-b", i), site("site-b")))
            .collect();
        let ga = ga.with_known_sites(known);
        let topology = ga.topology(&dns()).await.unwrap().unwrap();
        assert!(
            topology
                .groups
                .iter()
                .flat_map(|g| &g.endpoints)
                .all(|e| e.site.is_some())
        );
        assert_eq!(calls(&state, "DescribeTags"), vec![1], "site-a's only");

        let (ga, state) = accelerator(1).await;
        let known = [("site-a", 0), ("site-b", 0)]
            .into_iter()
            .map(|(s, i)| (fake::lb(s, i), site(s)))
            .collect();
        let topology = ga.with_known_sites(known).topology(&dns()).await.unwrap();
        assert!(topology.is_some());
        assert!(
            calls(&state, "DescribeTags").is_empty(),
            "no tag read at all"
        );
    }

    #[tokio::test]
    async fn unknown_accelerator_is_none() {
        let (ga, _) = accelerator(1).await;
        let other = AcceleratorDns::parse("b0000000000000000.awsglobalaccelerator.com").unwrap();
        assert_eq!(ga.topology(&other).await.unwrap(), None);
    }

    #[tokio::test]
    async fn transaction_in_progress_is_retried_until_removed() {
        let (ga, state) = accelerator(1).await;
        state.lock().unwrap().transaction_in_progress = 2;
        let ids = vec![fake::lb("site-b", 0)];
        let removal = ga
            .remove_endpoints("group-443", &ids, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(removal.removed, ids);
        assert_eq!(calls(&state, "RemoveEndpoints").len(), 3);
        let group = ga.describe_group("group-443").await.unwrap();
        assert_eq!(
            group
                .endpoints
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
            vec![fake::lb("site-a", 0)]
        );
    }

    #[tokio::test]
    async fn transaction_in_progress_past_the_deadline_is_a_retryable_error() {
        let (ga, state) = accelerator(1).await;
        state.lock().unwrap().transaction_in_progress = 1000;
        let err = ga
            .remove_endpoints(
                "group-443",
                &[fake::lb("site-b", 0)],
                Instant::now() + Duration::from_millis(30),
            )
            .await
            .unwrap_err();
        assert!(
            err.retryable && err.has_code("TransactionInProgressException"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn removal_goes_by_10_and_counts_endpoints_already_gone() {
        let (ga, state) = accelerator(25).await;
        let mut ids: Vec<String> = (0..25).map(|i| fake::lb("site-b", i)).collect();
        ids.push(fake::lb("site-b", 99)); // not in the group (removed by a concurrent fence)
        let removal = ga
            .remove_endpoints("group-80", &ids, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(removal.removed.len(), 25);
        assert_eq!(removal.already_gone, vec![fake::lb("site-b", 99)]);
        assert!(
            calls(&state, "RemoveEndpoints")
                .iter()
                .all(|n| *n <= ENDPOINTS_PER_REMOVE)
        );
        let group = ga.describe_group("group-80").await.unwrap();
        assert_eq!(group.endpoints.len(), 1, "only site-a is left");
    }

    #[tokio::test]
    async fn add_endpoints_retries_transaction_in_progress_and_is_idempotent() {
        let (ga, state) = accelerator(0).await;
        state.lock().unwrap().transaction_in_progress = 2;
        let site_b = EndpointToAdd {
            id: fake::lb("site-b", 0),
            weight: 128,
            client_ip_preservation: false,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        ga.add_endpoints("group-443", std::slice::from_ref(&site_b), deadline)
            .await
            .unwrap();
        ga.add_endpoints("group-443", std::slice::from_ref(&site_b), deadline)
            .await
            .unwrap();
        assert_eq!(calls(&state, "AddEndpoints"), vec![1, 1, 1, 1]);
        let ids: Vec<String> = ga
            .describe_group("group-443")
            .await
            .unwrap()
            .endpoints
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![fake::lb("site-a", 0), fake::lb("site-b", 0)]);
    }

    #[tokio::test]
    async fn missing_group_is_a_permanent_error() {
        let (ga, _) = accelerator(1).await;
        let err = ga.describe_group("group-gone").await.unwrap_err();
        assert!(
            !err.retryable && err.has_code("EndpointGroupNotFoundException"),
            "{err}"
        );
    }
}
