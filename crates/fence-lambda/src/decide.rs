//! The fencing decision, a pure function of the topology, the alert and the policy.
//!
//! See the crate documentation for the survivor rule.

use std::collections::BTreeSet;

use aws_topology::globalaccelerator::{DEFAULT_WEIGHT, Health, Topology, TrafficDial};
use common::alertmanager::FiringSiteOffline;
use common::site::SiteName;
use serde::Serialize;

/// The sites the function knows (the keys of `INFINISPAN_SITE_ENDPOINTS`) and the one that wins
/// a split-brain between healthy sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub sites: BTreeSet<SiteName>,
    pub preferred: SiteName,
}

impl Policy {
    /// Which of two sites wins when both are healthy: the preferred site, else the
    /// alphabetically first (only reachable with more than two sites configured).
    pub(crate) fn stronger<'a>(&self, a: &'a SiteName, b: &'a SiteName) -> &'a SiteName {
        if *b == self.preferred || (*a != self.preferred && b < a) {
            b
        } else {
            a
        }
    }
}

/// What a direct health probe of a site's Infinispan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Alive,
    Unreachable,
}

/// Why the survivor is the survivor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SurvivorRule {
    /// Every endpoint of the offline site that takes traffic is UNHEALTHY, the reporter's are
    /// not.
    OfflineSiteUnhealthy,
    /// Every endpoint of the reporter that takes traffic is UNHEALTHY, the offline site's are
    /// not: the offline site survives. Under Keycloak's FAIL backup policy a survivor can be
    /// UNHEALTHY because its writes fail while its backup is online: its report must still
    /// finish the fence rather than be skipped.
    ReporterUnhealthy,
    /// The offline site takes no traffic (fenced earlier): finish the fence (resumable).
    OfflineSiteTakesNoTraffic,
    /// Both alike (healthy, or both unhealthy), the reporter is the preferred site and its
    /// Infinispan answers.
    ReporterPreferred,
    /// Both alike, the offline site is preferred and its Infinispan answers: the reporter is
    /// the one cut off.
    PreferredSiteAlive,
    /// Both alike, but the preferred site's Infinispan does not answer: the other survives.
    PreferredSiteUnreachable,
    /// The reporter takes no traffic (fenced earlier): finish that fence, the other site's
    /// backup to it goes offline (resumable).
    ReporterTakesNoTraffic,
}

impl SurvivorRule {
    /// The rule's name as records and logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SurvivorRule::OfflineSiteUnhealthy => "offline_site_unhealthy",
            SurvivorRule::ReporterUnhealthy => "reporter_unhealthy",
            SurvivorRule::OfflineSiteTakesNoTraffic => "offline_site_takes_no_traffic",
            SurvivorRule::ReporterPreferred => "reporter_preferred",
            SurvivorRule::PreferredSiteAlive => "preferred_site_alive",
            SurvivorRule::PreferredSiteUnreachable => "preferred_site_unreachable",
            SurvivorRule::ReporterTakesNoTraffic => "reporter_takes_no_traffic",
        }
    }
}

/// Who survives a split-brain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub survivor: SiteName,
    pub loser: SiteName,
    pub rule: SurvivorRule,
}

/// What to make of one report, before anything is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The alert cannot be acted on as given (4xx).
    Reject(String),
    /// Provably nothing to do for this report (2xx).
    Skip(String),
    /// The choice needs a health probe of this site's Infinispan first; call [`choose`] again
    /// with its result.
    Probe(SiteName),
    Decided(Verdict),
}

/// How a site looks in the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    /// No endpoint of the site takes traffic (removed, weight 0, or in a group dialed to 0).
    NoTraffic,
    /// At least one of the site's endpoints that take traffic is not UNHEALTHY.
    Healthy,
    /// Every endpoint of the site that takes traffic is UNHEALTHY.
    Unhealthy,
}

/// The state of `site` in `topology`, by the one rule of what takes traffic
/// ([`aws_topology::globalaccelerator::EndpointGroup::takes_traffic`]).
pub fn site_state(topology: &Topology, site: &SiteName) -> SiteState {
    let mut endpoints = topology
        .groups
        .iter()
        .flat_map(|g| g.traffic_endpoints())
        .filter(|e| e.site.as_ref() == Some(site))
        .peekable();
    if endpoints.peek().is_none() {
        SiteState::NoTraffic
    } else if endpoints.all(|e| e.health == Health::Unhealthy) {
        SiteState::Unhealthy
    } else {
        SiteState::Healthy
    }
}

/// Chooses the survivor of the split-brain `alert` reports. `probe` is the result of probing
/// the site [`Choice::Probe`] asked for, `None` before.
pub fn choose(
    topology: &Topology,
    alert: &FiringSiteOffline,
    policy: &Policy,
    probe: Option<Liveness>,
) -> Choice {
    let (reporter, offline) = (&alert.reporter, &alert.site);
    for (label, site) in [("reporter", reporter), ("site", offline)] {
        if !policy.sites.contains(site) {
            return Choice::Reject(format!(
                "{label} `{site}` is not a site of INFINISPAN_SITE_ENDPOINTS"
            ));
        }
    }
    if reporter == offline {
        return Choice::Reject(format!("site `{reporter}` reports itself offline"));
    }
    let decided = |survivor: &SiteName, rule| {
        let loser = if survivor == reporter {
            offline
        } else {
            reporter
        };
        Choice::Decided(Verdict {
            survivor: survivor.clone(),
            loser: loser.clone(),
            rule,
        })
    };
    match (
        site_state(topology, reporter),
        site_state(topology, offline),
    ) {
        (SiteState::NoTraffic, SiteState::NoTraffic) => Choice::Skip(format!(
            "neither `{reporter}` nor `{offline}` takes traffic in the accelerator"
        )),
        // The reporter was fenced earlier, possibly by this very report whose Infinispan step
        // failed (Alertmanager resends it): finish that fence, the survivor's backup to the
        // reporter must go offline.
        (SiteState::NoTraffic, _) => decided(offline, SurvivorRule::ReporterTakesNoTraffic),
        (_, SiteState::NoTraffic) => decided(reporter, SurvivorRule::OfflineSiteTakesNoTraffic),
        (SiteState::Healthy, SiteState::Unhealthy) => {
            decided(reporter, SurvivorRule::OfflineSiteUnhealthy)
        }
        (SiteState::Unhealthy, SiteState::Healthy) => {
            decided(offline, SurvivorRule::ReporterUnhealthy)
        }
        // Alike (both healthy, or both unhealthy, when Global Accelerator fails open): the
        // preferred site wins if its Infinispan answers, whichever site reports.
        (SiteState::Healthy, SiteState::Healthy) | (SiteState::Unhealthy, SiteState::Unhealthy) => {
            let preferred = policy.stronger(reporter, offline);
            let other = if preferred == reporter {
                offline
            } else {
                reporter
            };
            match probe {
                None => Choice::Probe(preferred.clone()),
                Some(Liveness::Alive) if preferred == reporter => {
                    decided(reporter, SurvivorRule::ReporterPreferred)
                }
                Some(Liveness::Alive) => decided(preferred, SurvivorRule::PreferredSiteAlive),
                Some(Liveness::Unreachable) => {
                    decided(other, SurvivorRule::PreferredSiteUnreachable)
                }
            }
        }
    }
}

/// One change to the accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum TrafficStep {
    /// `RemoveEndpoints`: the group keeps an endpoint of another site (or of none) with a
    /// weight above 0.
    RemoveEndpoints {
        group_arn: String,
        endpoint_ids: Vec<String>,
    },
    /// `UpdateEndpointGroup` with a traffic dial of 0: removing the loser's endpoints would
    /// leave the group with nothing that takes traffic (typically one group per region, one
    /// site per region). `site bring-online` sets `previous` back.
    CloseDial {
        group_arn: String,
        previous: TrafficDial,
    },
}

/// A listener the fence cannot take the loser out of without leaving it to nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unfenceable {
    pub listener_arn: String,
    pub reason: String,
}

/// What it takes, in the accelerator as it is, for `loser` to take no traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrafficPlan {
    pub steps: Vec<TrafficStep>,
    /// Listeners left as they are: they would go to nobody. A fence with any of these is not
    /// done (a 5xx naming them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfenceable: Vec<Unfenceable>,
}

/// The steps that leave, in every listener, traffic to `survivor` only and never to nobody
/// ([`Topology::check_fenced`] holds once they are done).
pub fn traffic_plan(topology: &Topology, survivor: &SiteName, loser: &SiteName) -> TrafficPlan {
    let mut plan = TrafficPlan::default();
    let traffic = topology.traffic();
    for (listener, to) in &traffic {
        if !to.sites.contains(loser) {
            continue;
        }
        if !to.sites.contains(survivor) {
            plan.unfenceable.push(Unfenceable {
                listener_arn: (*listener).to_owned(),
                reason: format!(
                    "{survivor} has no endpoint that takes traffic in this listener: taking {loser} out would leave it to nobody"
                ),
            });
            continue;
        }
        for group in topology.groups_of(listener) {
            let loser_ids: Vec<String> = group
                .endpoints
                .iter()
                .filter(|e| e.site.as_ref() == Some(loser))
                .map(|e| e.id.clone())
                .collect();
            if loser_ids.is_empty() {
                continue;
            }
            let others_weighted = group
                .endpoints
                .iter()
                .any(|e| e.site.as_ref() != Some(loser) && e.weight.unwrap_or(DEFAULT_WEIGHT) > 0);
            if others_weighted {
                plan.steps.push(TrafficStep::RemoveEndpoints {
                    group_arn: group.arn.clone(),
                    endpoint_ids: loser_ids,
                });
            } else if group.traffic_dial.is_open() {
                plan.steps.push(TrafficStep::CloseDial {
                    group_arn: group.arn.clone(),
                    previous: group.traffic_dial,
                });
            }
        }
    }
    plan
}

/// The accelerator after `steps`, as a fence expects to leave it (the exhaustive check and the
/// tests replay plans with it).
pub fn apply_steps(topology: &Topology, steps: &[TrafficStep]) -> Topology {
    let mut after = topology.clone();
    for step in steps {
        match step {
            TrafficStep::RemoveEndpoints {
                group_arn,
                endpoint_ids,
            } => {
                if let Some(group) = after.groups.iter_mut().find(|g| &g.arn == group_arn) {
                    group.endpoints.retain(|e| !endpoint_ids.contains(&e.id));
                }
            }
            TrafficStep::CloseDial { group_arn, .. } => {
                if let Some(group) = after.groups.iter_mut().find(|g| &g.arn == group_arn) {
                    group.traffic_dial = TrafficDial::CLOSED;
                }
            }
        }
    }
    after
}

#[cfg(test)]
mod tests {
    use aws_topology::globalaccelerator::{Endpoint, EndpointGroup};
    use common::site::AcceleratorDns;

    use super::*;

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            sites: [site("site-a"), site("site-b")].into(),
            preferred: site("site-a"),
        }
    }

    fn alert(reporter: &str, offline: &str) -> FiringSiteOffline {
        FiringSiteOffline {
            reporter: site(reporter),
            site: site(offline),
            accelerator: AcceleratorDns::parse("a1234567890abcdef.awsglobalaccelerator.com")
                .unwrap(),
            fingerprint: "f".into(),
        }
    }

    /// A group of listener `l1`: `(endpoint id, site, health)`; a site of `""` is an untagged
    /// endpoint.
    fn group(arn: &str, endpoints: &[(&str, &str, Health)]) -> EndpointGroup {
        group_in("l1", arn, 100.0, endpoints)
    }

    fn group_in(
        listener: &str,
        arn: &str,
        dial: f32,
        endpoints: &[(&str, &str, Health)],
    ) -> EndpointGroup {
        EndpointGroup {
            arn: arn.to_owned(),
            listener_arn: listener.to_owned(),
            region: "eu-west-1".to_owned(),
            traffic_dial: TrafficDial::from_percentage(Some(dial)),
            endpoints: endpoints
                .iter()
                .map(|(id, s, health)| Endpoint {
                    id: (*id).to_owned(),
                    site: (!s.is_empty()).then(|| site(s)),
                    weight: Some(128),
                    health: *health,
                })
                .collect(),
        }
    }

    fn topology(groups: Vec<EndpointGroup>) -> Topology {
        let mut listeners: Vec<String> = groups.iter().map(|g| g.listener_arn.clone()).collect();
        listeners.sort();
        listeners.dedup();
        Topology {
            accelerator_arn: "arn:aws:globalaccelerator::1:accelerator/x".into(),
            listeners,
            groups,
        }
    }

    use Health::{Healthy as H, Unhealthy as U};

    fn two_sites(a: Health, b: Health) -> Topology {
        topology(vec![group(
            "g1",
            &[("lb-a", "site-a", a), ("lb-b", "site-b", b)],
        )])
    }

    /// The verdict, answering a probe with `liveness`.
    fn verdict(
        t: &Topology,
        a: &FiringSiteOffline,
        p: &Policy,
        liveness: Liveness,
    ) -> Option<Verdict> {
        let mut result = choose(t, a, p, None);
        if let Choice::Probe(_) = result {
            result = choose(t, a, p, Some(liveness));
        }
        match result {
            Choice::Decided(v) => Some(v),
            _ => None,
        }
    }

    fn decided(c: Choice) -> Verdict {
        match c {
            Choice::Decided(v) => v,
            other => panic!("expected a verdict, got {other:?}"),
        }
    }

    #[test]
    fn offline_site_unhealthy_reporter_survives() {
        let v = decided(choose(
            &two_sites(H, U),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!((v.survivor, v.loser), (site("site-a"), site("site-b")));
        assert_eq!(v.rule, SurvivorRule::OfflineSiteUnhealthy);
        let plan = traffic_plan(&two_sites(H, U), &site("site-a"), &site("site-b"));
        assert_eq!(
            plan.steps,
            vec![TrafficStep::RemoveEndpoints {
                group_arn: "g1".into(),
                endpoint_ids: vec!["lb-b".into()]
            }]
        );
    }

    /// Defect (a): an UNHEALTHY reporter was skipped with a 2xx, also when the other site was
    /// already out of the accelerator, so the survivor's backup never went offline.
    #[test]
    fn unhealthy_reporter_is_not_skipped() {
        let gone = topology(vec![group("g1", &[("lb-a", "site-a", U)])]);
        let v = decided(choose(&gone, &alert("site-a", "site-b"), &policy(), None));
        assert_eq!(
            (v.survivor, v.rule),
            (site("site-a"), SurvivorRule::OfflineSiteTakesNoTraffic)
        );
        let v = decided(choose(
            &two_sites(U, H),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!(
            (v.survivor, v.rule),
            (site("site-b"), SurvivorRule::ReporterUnhealthy)
        );
    }

    #[test]
    fn both_unhealthy_is_decided_like_both_healthy() {
        let t = two_sites(U, U);
        assert_eq!(
            choose(&t, &alert("site-b", "site-a"), &policy(), None),
            Choice::Probe(site("site-a"))
        );
    }

    #[test]
    fn seed_guessed_unknown_site() {
        for a in [alert("site-a", "site-x"), alert("site-x", "site-b")] {
            let c = choose(&two_sites(H, H), &a, &policy(), None);
            assert!(
                matches!(c, Choice::Reject(ref why) if why.contains("site-x")),
                "{c:?}"
            );
        }
    }

    #[test]
    fn seed_handled_only_the_first_listener_and_group() {
        // Two listeners (443 and 80), each with both sites: both lose site-b.
        let t = topology(vec![
            group_in(
                "l-443",
                "g-443",
                100.0,
                &[("lb-a", "site-a", H), ("lb-b", "site-b", U)],
            ),
            group_in(
                "l-80",
                "g-80",
                100.0,
                &[("lb-a", "site-a", H), ("lb-b", "site-b", U)],
            ),
        ]);
        let plan = traffic_plan(&t, &site("site-a"), &site("site-b"));
        let groups: Vec<&str> = plan
            .steps
            .iter()
            .map(|s| match s {
                TrafficStep::RemoveEndpoints { group_arn, .. } => group_arn.as_str(),
                TrafficStep::CloseDial { group_arn, .. } => group_arn.as_str(),
            })
            .collect();
        assert_eq!(groups, vec!["g-443", "g-80"]);
        assert!(
            apply_steps(&t, &plan.steps)
                .check_fenced(&site("site-a"), &site("site-b"))
                .is_empty()
        );
    }

    #[test]
    fn more_than_20_endpoints_all_removed() {
        let mut endpoints: Vec<(String, &str, Health)> = (0..25)
            .map(|i| (format!("lb-b-{i}"), "site-b", U))
            .collect();
        endpoints.push(("lb-a".into(), "site-a", H));
        let refs: Vec<(&str, &str, Health)> = endpoints
            .iter()
            .map(|(i, s, h)| (i.as_str(), *s, *h))
            .collect();
        let plan = traffic_plan(
            &topology(vec![group("g1", &refs)]),
            &site("site-a"),
            &site("site-b"),
        );
        assert!(
            matches!(&plan.steps[0], TrafficStep::RemoveEndpoints { endpoint_ids, .. } if endpoint_ids.len() == 25)
        );
    }

    #[test]
    fn one_group_per_region_closes_the_losers_dial_instead_of_emptying_it() {
        let t = topology(vec![
            group_in("l1", "g-eu", 100.0, &[("lb-a", "site-a", H)]),
            group_in("l1", "g-us", 60.0, &[("lb-b", "site-b", H)]),
        ]);
        let plan = traffic_plan(&t, &site("site-a"), &site("site-b"));
        assert_eq!(
            plan.steps,
            vec![TrafficStep::CloseDial {
                group_arn: "g-us".into(),
                previous: TrafficDial::from_percentage(Some(60.0))
            }]
        );
        let after = apply_steps(&t, &plan.steps);
        assert!(
            after
                .check_fenced(&site("site-a"), &site("site-b"))
                .is_empty()
        );
        // The fenced site's endpoint stays: a later report sees it take no traffic.
        assert_eq!(site_state(&after, &site("site-b")), SiteState::NoTraffic);
    }

    #[test]
    fn a_listener_without_the_survivor_is_never_left_to_nobody() {
        let t = topology(vec![
            group_in(
                "l1",
                "g1",
                100.0,
                &[("lb-a", "site-a", H), ("lb-b", "site-b", H)],
            ),
            group_in("l2", "g2", 100.0, &[("lb-b2", "site-b", H)]),
        ]);
        let plan = traffic_plan(&t, &site("site-a"), &site("site-b"));
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.unfenceable.len(), 1);
        assert_eq!(plan.unfenceable[0].listener_arn, "l2");
    }

    #[test]
    fn weight_zero_counts_as_no_traffic() {
        let mut t = two_sites(H, H);
        t.groups[0].endpoints[1].weight = Some(0);
        let v = decided(choose(&t, &alert("site-a", "site-b"), &policy(), None));
        assert_eq!(v.rule, SurvivorRule::OfflineSiteTakesNoTraffic);
        // A survivor at weight 0 takes no traffic either: its group is not one to keep.
        let mut t = two_sites(H, H);
        t.groups[0].endpoints[0].weight = Some(0);
        let plan = traffic_plan(&t, &site("site-a"), &site("site-b"));
        assert!(plan.steps.is_empty());
        assert_eq!(plan.unfenceable.len(), 1);
    }

    #[test]
    fn an_untagged_endpoint_keeps_a_group_open_but_is_no_survivor() {
        let t = topology(vec![
            group_in(
                "l1",
                "g1",
                100.0,
                &[("lb-a", "site-a", H), ("lb-b", "site-b", U)],
            ),
            group_in(
                "l1",
                "g3",
                100.0,
                &[("i-123", "", H), ("lb-b3", "site-b", U)],
            ),
        ]);
        let plan = traffic_plan(&t, &site("site-a"), &site("site-b"));
        assert_eq!(plan.steps.len(), 2);
        assert!(plan.unfenceable.is_empty());
    }

    #[test]
    fn already_fenced_site_is_still_taken_offline() {
        let t = topology(vec![group("g1", &[("lb-a", "site-a", H)])]);
        let v = decided(choose(&t, &alert("site-a", "site-b"), &policy(), None));
        assert_eq!(v.rule, SurvivorRule::OfflineSiteTakesNoTraffic);
        assert_eq!((v.survivor, v.loser), (site("site-a"), site("site-b")));
        assert_eq!(
            traffic_plan(&t, &site("site-a"), &site("site-b")),
            TrafficPlan::default()
        );
    }

    #[test]
    fn reporter_fenced_by_its_own_report_still_gets_the_backup_offline() {
        let t = topology(vec![group("g1", &[("lb-a", "site-a", H)])]);
        let v = decided(choose(&t, &alert("site-b", "site-a"), &policy(), None));
        assert_eq!((v.survivor, v.loser), (site("site-a"), site("site-b")));
        assert_eq!(v.rule, SurvivorRule::ReporterTakesNoTraffic);
    }

    #[test]
    fn both_sites_without_traffic_skips() {
        let t = topology(vec![group("g1", &[("i-1", "", H)])]);
        let c = choose(&t, &alert("site-b", "site-a"), &policy(), None);
        assert!(
            matches!(c, Choice::Skip(ref why) if why.contains("neither")),
            "{c:?}"
        );
    }

    #[test]
    fn preferred_reporter_wins_a_split_brain_when_its_infinispan_answers() {
        let t = two_sites(H, H);
        let a = alert("site-a", "site-b");
        assert_eq!(
            choose(&t, &a, &policy(), None),
            Choice::Probe(site("site-a"))
        );
        let v = decided(choose(&t, &a, &policy(), Some(Liveness::Alive)));
        assert_eq!(
            (v.survivor, v.rule),
            (site("site-a"), SurvivorRule::ReporterPreferred)
        );
    }

    #[test]
    fn preferred_site_down_both_reports_pick_the_other_site() {
        let t = two_sites(H, H);
        for a in [alert("site-a", "site-b"), alert("site-b", "site-a")] {
            let v = decided(choose(&t, &a, &policy(), Some(Liveness::Unreachable)));
            assert_eq!(
                (v.survivor.as_str(), v.loser.as_str()),
                ("site-b", "site-a")
            );
            assert_eq!(v.rule, SurvivorRule::PreferredSiteUnreachable);
        }
    }

    #[test]
    fn both_orders_of_a_split_brain_pick_the_same_survivor() {
        for preferred in ["site-a", "site-b"] {
            let p = Policy {
                preferred: site(preferred),
                ..policy()
            };
            let t = two_sites(H, H);
            let first = verdict(&t, &alert("site-a", "site-b"), &p, Liveness::Alive);
            let second = verdict(&t, &alert("site-b", "site-a"), &p, Liveness::Alive);
            assert_eq!(first.map(|v| v.survivor), Some(site(preferred)));
            assert_eq!(second.map(|v| v.survivor), Some(site(preferred)));
        }
    }

    #[test]
    fn initial_health_counts_as_healthy() {
        let v = decided(choose(
            &two_sites(Health::Initial, U),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!(v.survivor, site("site-a"));
    }

    #[test]
    fn more_than_two_sites_rank_alphabetically_after_the_preferred() {
        let p = Policy {
            sites: [site("site-a"), site("site-b"), site("site-c")].into(),
            preferred: site("site-a"),
        };
        let t = topology(vec![group(
            "g1",
            &[("lb-b", "site-b", H), ("lb-c", "site-c", H)],
        )]);
        for a in [alert("site-b", "site-c"), alert("site-c", "site-b")] {
            assert_eq!(
                verdict(&t, &a, &p, Liveness::Alive).map(|v| v.survivor),
                Some(site("site-b"))
            );
        }
    }
}
