//! The fencing decision, a pure function of the topology, the alert and the policy.
//!
//! See the crate documentation for the survivor rule.

use std::collections::BTreeSet;

use aws_topology::globalaccelerator::{Health, Topology};
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
    /// Every endpoint of the offline site is UNHEALTHY, the reporter's are not.
    OfflineSiteUnhealthy,
    /// The offline site has no endpoint left in the accelerator (fenced earlier): finish the
    /// fence (resumable).
    OfflineSiteAlreadyRemoved,
    /// Both healthy, the reporter is the preferred site and its Infinispan answers.
    ReporterPreferred,
    /// Both healthy, the offline site is preferred and its Infinispan answers: the reporter is
    /// the one cut off.
    PreferredSiteAlive,
    /// Both healthy, but the preferred site's Infinispan does not answer: the other survives.
    PreferredSiteUnreachable,
    /// The reporter has no endpoint left in the accelerator (fenced earlier): finish that
    /// fence, the other site's backup to it goes offline (resumable).
    ReporterAlreadyRemoved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRemoval {
    pub group_arn: String,
    pub endpoint_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptGroup {
    pub group_arn: String,
    pub reason: &'static str,
}

/// Fence `loser`: remove its endpoints, then take `survivor`'s backup to it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fence {
    pub survivor: SiteName,
    pub loser: SiteName,
    pub rule: SurvivorRule,
    pub removals: Vec<GroupRemoval>,
    /// Groups where the loser has endpoints that are kept, because removing them would leave
    /// the group without an endpoint of another site.
    pub kept: Vec<KeptGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The alert cannot be acted on as given (4xx).
    Reject(String),
    /// Nothing to do for this report (2xx).
    Skip(String),
    /// The decision needs a health probe of this site's Infinispan first; call [`plan`] again
    /// with its result.
    Probe(SiteName),
    Fence(Fence),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteHealth {
    /// No endpoint of the site is in the accelerator.
    Absent,
    /// At least one endpoint is not UNHEALTHY (HEALTHY or INITIAL).
    Healthy,
    /// Every endpoint of the site is UNHEALTHY.
    Unhealthy,
}

fn site_health(topology: &Topology, site: &SiteName) -> SiteHealth {
    let mut endpoints = topology
        .groups
        .iter()
        .flat_map(|g| g.endpoints.iter())
        .filter(|e| e.site.as_ref() == Some(site))
        .peekable();
    if endpoints.peek().is_none() {
        SiteHealth::Absent
    } else if endpoints.all(|e| e.health == Health::Unhealthy) {
        SiteHealth::Unhealthy
    } else {
        SiteHealth::Healthy
    }
}

/// Decides what to do about `alert`. `probe` is the result of probing the site [`Plan::Probe`]
/// asked for, `None` before.
pub fn plan(
    topology: &Topology,
    alert: &FiringSiteOffline,
    policy: &Policy,
    probe: Option<Liveness>,
) -> Plan {
    let (reporter, offline) = (&alert.reporter, &alert.site);
    for (label, site) in [("reporter", reporter), ("site", offline)] {
        if !policy.sites.contains(site) {
            return Plan::Reject(format!(
                "{label} `{site}` is not a site of INFINISPAN_SITE_ENDPOINTS"
            ));
        }
    }
    if reporter == offline {
        return Plan::Reject(format!("site `{reporter}` reports itself offline"));
    }
    let (survivor, rule) = match (
        site_health(topology, reporter),
        site_health(topology, offline),
    ) {
        (SiteHealth::Absent, SiteHealth::Absent) => {
            return Plan::Skip(format!(
                "neither `{reporter}` nor `{offline}` has an endpoint in the accelerator"
            ));
        }
        // The reporter was fenced earlier, possibly by this very report whose Infinispan step
        // failed (Alertmanager resends it): finish that fence, the survivor's backup to the
        // reporter must go offline. Skipping here left it online for good.
        (SiteHealth::Absent, _) => (offline, SurvivorRule::ReporterAlreadyRemoved),
        (SiteHealth::Unhealthy, _) => {
            return Plan::Skip(format!(
                "reporter `{reporter}` is UNHEALTHY in the accelerator; the other site's report decides"
            ));
        }
        (SiteHealth::Healthy, SiteHealth::Absent) => {
            (reporter, SurvivorRule::OfflineSiteAlreadyRemoved)
        }
        (SiteHealth::Healthy, SiteHealth::Unhealthy) => {
            (reporter, SurvivorRule::OfflineSiteUnhealthy)
        }
        // Both healthy: the preferred site wins if its Infinispan answers, whichever site
        // reports. Both reports of one split-brain must decide on the same fact: trusting the
        // preferred reporter without a probe while the other report probes it made the two
        // disagree when the preferred site's Infinispan was down (the sandbox's interleaving
        // suite emptied the endpoint group that way), and left a survivor whose backup could
        // never be taken offline.
        (SiteHealth::Healthy, SiteHealth::Healthy) => {
            let preferred = policy.stronger(reporter, offline);
            let other = if preferred == reporter {
                offline
            } else {
                reporter
            };
            match probe {
                None => return Plan::Probe(preferred.clone()),
                Some(Liveness::Alive) if preferred == reporter => {
                    (reporter, SurvivorRule::ReporterPreferred)
                }
                Some(Liveness::Alive) => (preferred, SurvivorRule::PreferredSiteAlive),
                Some(Liveness::Unreachable) => (other, SurvivorRule::PreferredSiteUnreachable),
            }
        }
    };
    let loser = if survivor == reporter {
        offline
    } else {
        reporter
    };

    let mut removals = Vec::new();
    let mut kept = Vec::new();
    for group in &topology.groups {
        let endpoint_ids: Vec<String> = group
            .endpoints
            .iter()
            .filter(|e| e.site.as_ref() == Some(loser))
            .map(|e| e.id.clone())
            .collect();
        if endpoint_ids.is_empty() {
            continue;
        }
        let keeps_another_site = group
            .endpoints
            .iter()
            .any(|e| e.site.as_ref().is_some_and(|s| s != loser));
        if keeps_another_site {
            removals.push(GroupRemoval {
                group_arn: group.arn.clone(),
                endpoint_ids,
            });
        } else {
            kept.push(KeptGroup {
                group_arn: group.arn.clone(),
                reason: "removing would leave no endpoint of another site",
            });
        }
    }
    Plan::Fence(Fence {
        survivor: survivor.clone(),
        loser: loser.clone(),
        rule,
        removals,
        kept,
    })
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

    /// `(endpoint id, site, health)`; a site of `""` is an untagged endpoint.
    fn group(arn: &str, endpoints: &[(&str, &str, Health)]) -> EndpointGroup {
        EndpointGroup {
            arn: arn.to_owned(),
            region: "eu-west-1".to_owned(),
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
        Topology {
            accelerator_arn: "arn:aws:globalaccelerator::1:accelerator/x".into(),
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

    /// The survivor the plan settles on, answering a probe with `liveness`.
    fn survivor(
        t: &Topology,
        a: &FiringSiteOffline,
        p: &Policy,
        liveness: Liveness,
    ) -> Option<SiteName> {
        let mut result = plan(t, a, p, None);
        if let Plan::Probe(_) = result {
            result = plan(t, a, p, Some(liveness));
        }
        match result {
            Plan::Fence(f) => Some(f.survivor),
            _ => None,
        }
    }

    fn fence(p: Plan) -> Fence {
        match p {
            Plan::Fence(f) => f,
            other => panic!("expected a fence, got {other:?}"),
        }
    }

    #[test]
    fn offline_site_unhealthy_reporter_survives() {
        let f = fence(plan(
            &two_sites(H, U),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!(f.survivor, site("site-a"));
        assert_eq!(f.loser, site("site-b"));
        assert_eq!(f.rule, SurvivorRule::OfflineSiteUnhealthy);
        assert_eq!(
            f.removals,
            vec![GroupRemoval {
                group_arn: "g1".into(),
                endpoint_ids: vec!["lb-b".into()]
            }]
        );
    }

    #[test]
    fn seed_acted_when_reporter_unhealthy() {
        let p = plan(
            &two_sites(U, H),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        );
        assert!(
            matches!(p, Plan::Skip(ref why) if why.contains("UNHEALTHY")),
            "{p:?}"
        );
    }

    #[test]
    fn seed_guessed_unknown_site() {
        let p = plan(
            &two_sites(H, H),
            &alert("site-a", "site-x"),
            &policy(),
            None,
        );
        assert!(
            matches!(p, Plan::Reject(ref why) if why.contains("site-x")),
            "{p:?}"
        );
        let p = plan(
            &two_sites(H, H),
            &alert("site-x", "site-b"),
            &policy(),
            None,
        );
        assert!(matches!(p, Plan::Reject(_)), "{p:?}");
    }

    #[test]
    fn seed_handled_only_the_first_listener_and_group() {
        // Two listeners' groups (e.g. 443 and 80), each with both sites: both lose site-b.
        let t = topology(vec![
            group("g-443", &[("lb-a", "site-a", H), ("lb-b", "site-b", U)]),
            group("g-80", &[("lb-a", "site-a", H), ("lb-b", "site-b", U)]),
        ]);
        let f = fence(plan(&t, &alert("site-a", "site-b"), &policy(), None));
        let groups: Vec<&str> = f.removals.iter().map(|r| r.group_arn.as_str()).collect();
        assert_eq!(groups, vec!["g-443", "g-80"]);
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
        let f = fence(plan(
            &topology(vec![group("g1", &refs)]),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!(f.removals[0].endpoint_ids.len(), 25);
    }

    #[test]
    fn never_removes_last_endpoint() {
        // g2 holds only site-b: removing it would empty the group.
        let t = topology(vec![
            group("g1", &[("lb-a", "site-a", H), ("lb-b", "site-b", U)]),
            group("g2", &[("lb-b2", "site-b", U)]),
            // An untagged endpoint is not "another site".
            group("g3", &[("i-123", "", H), ("lb-b3", "site-b", U)]),
        ]);
        let f = fence(plan(&t, &alert("site-a", "site-b"), &policy(), None));
        assert_eq!(f.removals.len(), 1);
        assert_eq!(f.removals[0].group_arn, "g1");
        let kept: Vec<&str> = f.kept.iter().map(|k| k.group_arn.as_str()).collect();
        assert_eq!(kept, vec!["g2", "g3"]);
    }

    #[test]
    fn already_removed_site_is_still_taken_offline() {
        // The GA step happened earlier; the Infinispan step failed then: it must still run.
        let t = topology(vec![group("g1", &[("lb-a", "site-a", H)])]);
        let f = fence(plan(&t, &alert("site-a", "site-b"), &policy(), None));
        assert_eq!(f.rule, SurvivorRule::OfflineSiteAlreadyRemoved);
        assert_eq!((f.survivor, f.loser), (site("site-a"), site("site-b")));
        assert!(f.removals.is_empty());
    }

    #[test]
    fn reporter_fenced_by_its_own_report_still_gets_the_backup_offline() {
        // site-b reported site-a, lost (site-a answered the probe), its endpoints were removed,
        // then taking site-a's backup offline failed: Alertmanager resends site-b's report.
        let t = topology(vec![group("g1", &[("lb-a", "site-a", H)])]);
        let f = fence(plan(&t, &alert("site-b", "site-a"), &policy(), None));
        assert_eq!((f.survivor, f.loser), (site("site-a"), site("site-b")));
        assert_eq!(f.rule, SurvivorRule::ReporterAlreadyRemoved);
        assert!(f.removals.is_empty() && f.kept.is_empty());
    }

    #[test]
    fn both_sites_gone_from_the_accelerator_skips() {
        let t = topology(vec![group("g1", &[("i-1", "", H)])]);
        let p = plan(&t, &alert("site-b", "site-a"), &policy(), None);
        assert!(
            matches!(p, Plan::Skip(ref why) if why.contains("neither")),
            "{p:?}"
        );
    }

    #[test]
    fn preferred_reporter_wins_a_split_brain_when_its_infinispan_answers() {
        let t = two_sites(H, H);
        let a = alert("site-a", "site-b");
        assert_eq!(plan(&t, &a, &policy(), None), Plan::Probe(site("site-a")));
        let f = fence(plan(&t, &a, &policy(), Some(Liveness::Alive)));
        assert_eq!(f.survivor, site("site-a"));
        assert_eq!(f.rule, SurvivorRule::ReporterPreferred);
    }

    #[test]
    fn preferred_site_down_both_reports_pick_the_other_site() {
        // site-a (preferred) has its Infinispan down and both sites report each other: before,
        // site-a's report fenced site-b unprobed while site-b's fenced site-a, and run at once
        // they emptied the endpoint group.
        let t = two_sites(H, H);
        for a in [alert("site-a", "site-b"), alert("site-b", "site-a")] {
            let f = fence(plan(&t, &a, &policy(), Some(Liveness::Unreachable)));
            assert_eq!(
                (f.survivor.as_str(), f.loser.as_str()),
                ("site-b", "site-a")
            );
            assert_eq!(f.rule, SurvivorRule::PreferredSiteUnreachable);
        }
    }

    #[test]
    fn non_preferred_reporter_probes_the_preferred_site() {
        let t = two_sites(H, H);
        let a = alert("site-b", "site-a");
        assert_eq!(plan(&t, &a, &policy(), None), Plan::Probe(site("site-a")));
        let alive = fence(plan(&t, &a, &policy(), Some(Liveness::Alive)));
        assert_eq!(
            (alive.survivor.as_str(), alive.loser.as_str()),
            ("site-a", "site-b")
        );
        assert_eq!(alive.removals[0].endpoint_ids, vec!["lb-b".to_string()]);
        let dead = fence(plan(&t, &a, &policy(), Some(Liveness::Unreachable)));
        assert_eq!(
            (dead.survivor.as_str(), dead.loser.as_str()),
            ("site-b", "site-a")
        );
        assert_eq!(dead.rule, SurvivorRule::PreferredSiteUnreachable);
    }

    #[test]
    fn both_orders_of_a_split_brain_pick_the_same_survivor() {
        for preferred in ["site-a", "site-b"] {
            let p = Policy {
                preferred: site(preferred),
                ..policy()
            };
            let t = two_sites(H, H);
            let first = survivor(&t, &alert("site-a", "site-b"), &p, Liveness::Alive);
            let second = survivor(&t, &alert("site-b", "site-a"), &p, Liveness::Alive);
            assert_eq!(first, Some(site(preferred)));
            assert_eq!(second, Some(site(preferred)));
        }
    }

    #[test]
    fn split_brain_either_interleaving_never_empties_a_group() {
        // Whichever report runs first, the second one sees its result and agrees.
        let p = policy();
        let start = two_sites(H, H);
        let orders = [
            [alert("site-a", "site-b"), alert("site-b", "site-a")],
            [alert("site-b", "site-a"), alert("site-a", "site-b")],
        ];
        for order in orders {
            let mut t = start.clone();
            let mut survivors = Vec::new();
            for a in &order {
                let mut result = plan(&t, a, &p, None);
                if let Plan::Probe(_) = result {
                    result = plan(&t, a, &p, Some(Liveness::Alive));
                }
                if let Plan::Fence(f) = result {
                    for r in &f.removals {
                        let g = t.groups.iter_mut().find(|g| g.arn == r.group_arn).unwrap();
                        g.endpoints.retain(|e| !r.endpoint_ids.contains(&e.id));
                    }
                    survivors.push(f.survivor);
                }
            }
            assert!(t.groups.iter().all(|g| !g.endpoints.is_empty()));
            assert_eq!(t.groups[0].endpoints[0].site, Some(site("site-a")));
            assert!(
                survivors.iter().all(|s| *s == site("site-a")),
                "{survivors:?}"
            );
        }
    }

    #[test]
    fn dead_preferred_site_with_stale_healthy_state_fails_over() {
        // site-a (preferred) died but the accelerator has not noticed yet; site-b reports it.
        assert_eq!(
            survivor(
                &two_sites(H, H),
                &alert("site-b", "site-a"),
                &policy(),
                Liveness::Unreachable
            ),
            Some(site("site-b"))
        );
        // Once the accelerator sees site-a UNHEALTHY no probe is needed.
        let f = fence(plan(
            &two_sites(U, H),
            &alert("site-b", "site-a"),
            &policy(),
            None,
        ));
        assert_eq!(f.survivor, site("site-b"));
    }

    #[test]
    fn initial_health_counts_as_healthy() {
        let f = fence(plan(
            &two_sites(Health::Initial, U),
            &alert("site-a", "site-b"),
            &policy(),
            None,
        ));
        assert_eq!(f.survivor, site("site-a"));
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
        assert_eq!(
            survivor(&t, &alert("site-b", "site-c"), &p, Liveness::Alive),
            Some(site("site-b"))
        );
        assert_eq!(
            survivor(&t, &alert("site-c", "site-b"), &p, Liveness::Alive),
            Some(site("site-b"))
        );
    }
}
