//! The one-line verdict of `site status`, a pure function of what was observed.
//!
//! Where a site takes traffic is the fence's own rule (`EndpointGroup::takes_traffic`: weight
//! above 0 in a group whose traffic dial is above 0), counted per listener ([`traffic`]).
//!
//! - **healthy**: both sites take traffic in every listener, and the sites are in sync.
//! - **fenced: X out**: X takes traffic in no listener and the other site in every one
//!   (whatever the replication; the line says whether the sites are in sync yet, i.e. what the
//!   next step is).
//! - **split**: both sites take traffic in every listener but replication between them is
//!   broken: the cross-site link is down or a backup is not online — users on the two sites see
//!   different data.
//! - **inconsistent**: anything else — a site in some listeners only, no site at all, or both
//!   sites taking traffic while a site's Infinispan cannot be read or a push has not completed.
//!
//! The sites are **in sync** when both Infinispans answer, neither misses the other in its
//! cross-site view, every cache's backup is online in both directions and no push-state is
//! running or failed (`IDLE` or `OK`).

use std::fmt;

use common::site::SiteName;

use super::model::{BackupState, Observed, PushState, Traffic, traffic};

/// Why two sites are not in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unreachable {
        site: SiteName,
        message: String,
    },
    LinkDown {
        site: SiteName,
        remote: SiteName,
    },
    BackupNotOnline {
        site: SiteName,
        remote: SiteName,
        caches: Vec<(String, BackupState)>,
    },
    PushNotDone {
        site: SiteName,
        remote: SiteName,
        caches: Vec<(String, PushState)>,
    },
}

impl Problem {
    /// Writes on one site no longer reach the other.
    pub fn breaks_replication(&self) -> bool {
        matches!(
            self,
            Problem::LinkDown { .. } | Problem::BackupNotOnline { .. }
        )
    }
}

fn cache_list<S: fmt::Display>(caches: &[(String, S)]) -> String {
    caches
        .iter()
        .map(|(cache, state)| format!("{cache}={state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable { site, message } => {
                write!(f, "{site}'s Infinispan cannot be read: {message}")
            }
            Problem::LinkDown { site, remote } => write!(
                f,
                "{site} does not see {remote} in its cross-site view (the link is down)"
            ),
            Problem::BackupNotOnline {
                site,
                remote,
                caches,
            } => write!(
                f,
                "{site}'s backup to {remote} is not online: {}",
                cache_list(caches)
            ),
            Problem::PushNotDone {
                site,
                remote,
                caches,
            } => write!(
                f,
                "{site}'s push-state to {remote} is not done: {}",
                cache_list(caches)
            ),
        }
    }
}

/// Everything that keeps the two sites from being in sync (empty: in sync).
pub fn sync_problems(observed: &Observed) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (site, remote) in [
        (&observed.sites[0], &observed.sites[1]),
        (&observed.sites[1], &observed.sites[0]),
    ] {
        let replication = match &site.replication {
            Ok(replication) => replication,
            Err(message) => {
                problems.push(Problem::Unreachable {
                    site: site.name.clone(),
                    message: message.clone(),
                });
                continue;
            }
        };
        if replication.sees_remote == Some(false) {
            problems.push(Problem::LinkDown {
                site: site.name.clone(),
                remote: remote.name.clone(),
            });
        }
        let offline: Vec<(String, BackupState)> = replication
            .backups
            .iter()
            .filter(|(_, s)| **s != BackupState::Online)
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect();
        if !offline.is_empty() {
            problems.push(Problem::BackupNotOnline {
                site: site.name.clone(),
                remote: remote.name.clone(),
                caches: offline,
            });
        }
        let unsettled: Vec<(String, PushState)> = replication
            .push
            .iter()
            .filter(|(_, s)| !s.settled())
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect();
        if !unsettled.is_empty() {
            problems.push(Problem::PushNotDone {
                site: site.name.clone(),
                remote: remote.name.clone(),
                caches: unsettled,
            });
        }
    }
    problems
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Fenced {
        out: SiteName,
        survivor: SiteName,
        /// Empty when the sites are in sync (the fenced site may be brought back).
        problems: Vec<Problem>,
    },
    Split {
        problems: Vec<Problem>,
    },
    Inconsistent {
        reasons: Vec<String>,
    },
}

pub fn verdict(observed: &Observed) -> Verdict {
    let [a, b] = [&observed.sites[0].name, &observed.sites[1].name];
    let problems = sync_problems(observed);
    let traffic_a = traffic(&observed.topology, a);
    let traffic_b = traffic(&observed.topology, b);
    match (traffic_a, traffic_b) {
        (Traffic::Everywhere, Traffic::Everywhere) => {
            if problems.is_empty() {
                Verdict::Healthy
            } else if problems.iter().any(Problem::breaks_replication) {
                Verdict::Split { problems }
            } else {
                Verdict::Inconsistent {
                    reasons: problems.iter().map(ToString::to_string).collect(),
                }
            }
        }
        (Traffic::Everywhere, Traffic::Nowhere) => Verdict::Fenced {
            out: b.clone(),
            survivor: a.clone(),
            problems,
        },
        (Traffic::Nowhere, Traffic::Everywhere) => Verdict::Fenced {
            out: a.clone(),
            survivor: b.clone(),
            problems,
        },
        _ => {
            let mut reasons: Vec<String> = [(a, traffic_a), (b, traffic_b)]
                .into_iter()
                .filter_map(|(site, t)| match t {
                    Traffic::Everywhere => None,
                    Traffic::Partly { listeners, of } => Some(format!(
                        "{site} takes traffic in {listeners} of {of} listeners"
                    )),
                    Traffic::Nowhere => Some(format!("{site} takes traffic in no listener")),
                })
                .collect();
            reasons.extend(problems.iter().map(ToString::to_string));
            Verdict::Inconsistent { reasons }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Healthy => {
                f.write_str("healthy: both sites take traffic in every listener and are in sync")
            }
            Verdict::Fenced {
                out,
                survivor,
                problems,
            } => match problems.first() {
                None => write!(
                    f,
                    "fenced: {out} out; the sites are in sync, next: cargo xtask site bring-online {out}"
                ),
                Some(first)
                    if problems
                        .iter()
                        .any(|p| matches!(p, Problem::LinkDown { .. })) =>
                {
                    write!(
                        f,
                        "fenced: {out} out; not in sync ({first}), next: heal the link, then cargo xtask site sync --from {survivor} --to {out}"
                    )
                }
                Some(first) => write!(
                    f,
                    "fenced: {out} out; not in sync ({first}), next: cargo xtask site sync --from {survivor} --to {out}"
                ),
            },
            Verdict::Split { problems } => write!(
                f,
                "split: both sites take traffic but do not replicate to each other ({})",
                problems
                    .iter()
                    .filter(|p| p.breaks_replication())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Verdict::Inconsistent { reasons } => {
                write!(f, "inconsistent: {}", reasons.join("; "))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use aws_topology::globalaccelerator::{Endpoint, EndpointGroup, Health, Topology, TrafficDial};

    use super::super::model::{Decisions, Replication, SiteState};
    use super::*;

    pub const CACHES: [&str; 2] = ["sessions", "work"];

    pub fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    /// A compact description of one observed state, for table-driven tests.
    #[derive(Clone)]
    pub struct World {
        /// Per endpoint group, each of its own listener (one group per region and listener, all
        /// in eu-west-1) with its dial at 100 %: the sites present with their weight.
        pub groups: Vec<Vec<(&'static str, i32, Health)>>,
        pub a: Option<Side>,
        pub b: Option<Side>,
    }

    #[derive(Clone)]
    pub struct Side {
        pub backup: BackupState,
        pub push: PushState,
        pub sees: Option<bool>,
        /// Per-cache overrides of `push`.
        pub push_of: Vec<(&'static str, PushState)>,
        pub backup_of: Vec<(&'static str, BackupState)>,
    }

    pub fn side(backup: BackupState, push: PushState) -> Side {
        Side {
            backup,
            push,
            sees: Some(true),
            push_of: Vec::new(),
            backup_of: Vec::new(),
        }
    }

    pub fn online() -> Side {
        side(BackupState::Online, PushState::Idle)
    }

    pub fn offline() -> Side {
        side(BackupState::Offline, PushState::Idle)
    }

    pub fn both() -> Vec<Vec<(&'static str, i32, Health)>> {
        vec![vec![
            ("site-a", 128, Health::Healthy),
            ("site-b", 128, Health::Healthy),
        ]]
    }

    pub fn only_a() -> Vec<Vec<(&'static str, i32, Health)>> {
        vec![vec![("site-a", 128, Health::Healthy)]]
    }

    pub fn lb(site: &str) -> String {
        lb_in(site, "eu-west-1")
    }

    pub fn lb_in(site: &str, region: &str) -> String {
        format!("arn:aws:elasticloadbalancing:{region}:123456789012:loadbalancer/net/{site}/1")
    }

    pub const ACCELERATOR_DNS: &str = "a1.awsglobalaccelerator.com";
    /// The split-brain key of the two sites (`split_brain_key`).
    pub const SPLIT_BRAIN: &str = "a1.awsglobalaccelerator.com/site-a+site-b";
    /// When the worlds are observed.
    pub const NOW_MS: u64 = 1_800_000_000_000;

    pub fn listener(i: usize) -> String {
        format!("arn:aws:globalaccelerator::123456789012:accelerator/acc/listener/l{i}")
    }

    pub fn group_arn(listener: &str, name: &str) -> String {
        format!("{listener}/endpoint-group/{name}")
    }

    pub fn endpoint(id: String, name: &str, weight: i32, health: Health) -> Endpoint {
        Endpoint {
            id,
            site: Some(site(name)),
            weight: Some(weight),
            health,
        }
    }

    impl World {
        pub fn observed(&self) -> Observed {
            let groups = self
                .groups
                .iter()
                .enumerate()
                .map(|(i, endpoints)| EndpointGroup {
                    arn: group_arn(&listener(i), &format!("g{i}")),
                    listener_arn: listener(i),
                    region: "eu-west-1".to_owned(),
                    traffic_dial: TrafficDial::FULL,
                    endpoints: endpoints
                        .iter()
                        .map(|(s, weight, health)| endpoint(lb(s), s, *weight, *health))
                        .collect(),
                })
                .collect();
            let state = |name: &str, side: &Option<Side>| SiteState {
                name: site(name),
                load_balancer: Some(lb(name)),
                replication: match side {
                    None => Err("connection refused".to_owned()),
                    Some(side) => Ok(Replication {
                        backups: CACHES
                            .iter()
                            .map(|c| {
                                let state = side
                                    .backup_of
                                    .iter()
                                    .find(|(k, _)| k == c)
                                    .map(|(_, s)| s.clone())
                                    .unwrap_or_else(|| side.backup.clone());
                                ((*c).to_owned(), state)
                            })
                            .collect::<BTreeMap<_, _>>(),
                        push: CACHES
                            .iter()
                            .map(|c| {
                                let state = side
                                    .push_of
                                    .iter()
                                    .find(|(k, _)| k == c)
                                    .map(|(_, s)| s.clone())
                                    .unwrap_or_else(|| side.push.clone());
                                ((*c).to_owned(), state)
                            })
                            .collect(),
                        sees_remote: side.sees,
                    }),
                },
            };
            Observed {
                accelerator_dns: ACCELERATOR_DNS.to_owned(),
                topology: Topology {
                    accelerator_arn: "acc".to_owned(),
                    listeners: (0..self.groups.len()).map(listener).collect(),
                    groups,
                },
                sites: [state("site-a", &self.a), state("site-b", &self.b)],
                caches: CACHES.iter().map(|c| (*c).to_owned()).collect(),
                split_brain: SPLIT_BRAIN.to_owned(),
                decisions: Decisions::Read {
                    table: "sitefence-decisions".to_owned(),
                    records: Vec::new(),
                },
                at_ms: NOW_MS,
            }
        }
    }

    /// One endpoint group per region and site, as with one site per region: in each of
    /// `listeners` listeners, site-a's load balancer alone in a us-east-1 group (dial 100 %)
    /// and site-b's alone in an eu-west-1 group whose dial is `b_dial` (0 once a fence closed
    /// it); replication as `sides` says.
    pub fn per_region(sides: &World, listeners: usize, b_dial: TrafficDial) -> Observed {
        let mut observed = sides.observed();
        let a_lb = lb_in("site-a", "us-east-1");
        observed.sites[0].load_balancer = Some(a_lb.clone());
        observed.topology.listeners = (0..listeners).map(listener).collect();
        observed.topology.groups = (0..listeners)
            .flat_map(|i| {
                let l = listener(i);
                [
                    EndpointGroup {
                        arn: group_arn(&l, &format!("a{i}")),
                        listener_arn: l.clone(),
                        region: "us-east-1".to_owned(),
                        traffic_dial: TrafficDial::FULL,
                        endpoints: vec![endpoint(a_lb.clone(), "site-a", 128, Health::Healthy)],
                    },
                    EndpointGroup {
                        arn: group_arn(&l, &format!("b{i}")),
                        listener_arn: l.clone(),
                        region: "eu-west-1".to_owned(),
                        traffic_dial: b_dial,
                        endpoints: vec![endpoint(lb("site-b"), "site-b", 128, Health::Healthy)],
                    },
                ]
            })
            .collect();
        observed
    }

    fn kind(v: &Verdict) -> String {
        match v {
            Verdict::Healthy => "healthy".to_owned(),
            Verdict::Fenced { out, problems, .. } => format!(
                "fenced: {out} out{}",
                if problems.is_empty() { ", in sync" } else { "" }
            ),
            Verdict::Split { .. } => "split".to_owned(),
            Verdict::Inconsistent { .. } => "inconsistent".to_owned(),
        }
    }

    #[test]
    fn verdict_table() {
        let blind = Side {
            sees: Some(false),
            ..online()
        };
        let no_metrics = Side {
            sees: None,
            ..online()
        };
        let pushed_ok = side(BackupState::Online, PushState::Ok);
        let sending = side(BackupState::Online, PushState::Sending);
        let one_push_error = Side {
            push_of: vec![("work", PushState::Error)],
            ..online()
        };
        let mixed = Side {
            backup_of: vec![("work", BackupState::Mixed)],
            ..online()
        };
        let table: Vec<(&str, World, &str)> = vec![
            (
                "seeded_topology_is_healthy",
                World {
                    groups: both(),
                    a: Some(online()),
                    b: Some(online()),
                },
                "healthy",
            ),
            (
                "pushed_ok_not_yet_cleared_is_still_healthy",
                World {
                    groups: both(),
                    a: Some(pushed_ok.clone()),
                    b: Some(online()),
                },
                "healthy",
            ),
            (
                "missing_metrics_do_not_spoil_health",
                World {
                    groups: both(),
                    a: Some(no_metrics),
                    b: Some(online()),
                },
                "healthy",
            ),
            (
                "after_the_fence_site_b_is_out_and_not_in_sync",
                World {
                    groups: only_a(),
                    a: Some(offline()),
                    b: Some(online()),
                },
                "fenced: site-b out",
            ),
            (
                "site_b_down_while_fenced_is_still_fenced",
                World {
                    groups: only_a(),
                    a: Some(offline()),
                    b: None,
                },
                "fenced: site-b out",
            ),
            (
                "after_sync_site_b_out_and_in_sync",
                World {
                    groups: only_a(),
                    a: Some(pushed_ok),
                    b: Some(online()),
                },
                "fenced: site-b out, in sync",
            ),
            (
                "push_still_running_is_not_in_sync",
                World {
                    groups: only_a(),
                    a: Some(sending.clone()),
                    b: Some(online()),
                },
                "fenced: site-b out",
            ),
            (
                "one_cache_push_error_is_not_in_sync",
                World {
                    groups: only_a(),
                    a: Some(one_push_error.clone()),
                    b: Some(online()),
                },
                "fenced: site-b out",
            ),
            (
                "site_a_out_is_fenced_the_other_way",
                World {
                    groups: vec![vec![("site-b", 128, Health::Healthy)]],
                    a: Some(online()),
                    b: Some(offline()),
                },
                "fenced: site-a out",
            ),
            (
                "weight_zero_takes_no_traffic",
                World {
                    groups: vec![vec![
                        ("site-a", 128, Health::Healthy),
                        ("site-b", 0, Health::Healthy),
                    ]],
                    a: Some(offline()),
                    b: Some(online()),
                },
                "fenced: site-b out",
            ),
            (
                "both_in_with_a_backup_offline_is_split",
                World {
                    groups: both(),
                    a: Some(offline()),
                    b: Some(online()),
                },
                "split",
            ),
            (
                "both_in_with_the_link_down_is_split",
                World {
                    groups: both(),
                    a: Some(blind.clone()),
                    b: Some(blind),
                },
                "split",
            ),
            (
                "both_in_with_one_cache_mixed_is_split",
                World {
                    groups: both(),
                    a: Some(mixed),
                    b: Some(online()),
                },
                "split",
            ),
            (
                "both_in_while_pushing_is_inconsistent",
                World {
                    groups: both(),
                    a: Some(sending),
                    b: Some(online()),
                },
                "inconsistent",
            ),
            (
                "both_in_after_a_failed_push_is_inconsistent",
                World {
                    groups: both(),
                    a: Some(one_push_error),
                    b: Some(online()),
                },
                "inconsistent",
            ),
            (
                "both_in_with_an_unreadable_site_is_inconsistent",
                World {
                    groups: both(),
                    a: Some(online()),
                    b: None,
                },
                "inconsistent",
            ),
            (
                "site_b_in_one_group_of_two_is_inconsistent",
                World {
                    groups: vec![
                        vec![
                            ("site-a", 128, Health::Healthy),
                            ("site-b", 128, Health::Healthy),
                        ],
                        vec![("site-a", 128, Health::Healthy)],
                    ],
                    a: Some(online()),
                    b: Some(online()),
                },
                "inconsistent",
            ),
            (
                "no_site_anywhere_is_inconsistent",
                World {
                    groups: vec![vec![]],
                    a: Some(online()),
                    b: Some(online()),
                },
                "inconsistent",
            ),
            (
                "accelerator_without_groups_is_inconsistent",
                World {
                    groups: vec![],
                    a: Some(online()),
                    b: Some(online()),
                },
                "inconsistent",
            ),
        ];
        for (name, world, want) in table {
            let got = verdict(&world.observed());
            assert_eq!(kind(&got), want, "{name}: {got}");
        }
    }

    /// With one endpoint group per region and site, each site takes a listener's traffic
    /// through its own group: counted per group, neither site would ever be "everywhere".
    #[test]
    fn per_region_groups_table() {
        let in_sync = World {
            groups: Vec::new(),
            a: Some(online()),
            b: Some(online()),
        };
        let after_fence = World {
            a: Some(offline()),
            ..in_sync.clone()
        };
        let mut b_back_in_one_listener = per_region(&in_sync, 2, TrafficDial::CLOSED);
        b_back_in_one_listener.topology.groups[1].traffic_dial = TrafficDial::FULL;
        let mut b_weight_zero = per_region(&in_sync, 1, TrafficDial::FULL);
        b_weight_zero.topology.groups[1].endpoints[0].weight = Some(0);
        let table: Vec<(&str, Observed, &str)> = vec![
            (
                "both_regions_open_is_healthy",
                per_region(&in_sync, 1, TrafficDial::FULL),
                "healthy",
            ),
            (
                "a_closed_dial_takes_no_traffic",
                per_region(&after_fence, 1, TrafficDial::CLOSED),
                "fenced: site-b out",
            ),
            (
                "closed_in_every_listener_is_fenced",
                per_region(&in_sync, 3, TrafficDial::CLOSED),
                "fenced: site-b out, in sync",
            ),
            (
                "a_dial_at_one_percent_still_takes_traffic",
                per_region(&in_sync, 1, TrafficDial::from_percentage(Some(1.0))),
                "healthy",
            ),
            (
                "weight_zero_in_an_open_group_takes_no_traffic",
                b_weight_zero,
                "fenced: site-b out, in sync",
            ),
            (
                "reopened_in_one_listener_of_two_is_inconsistent",
                b_back_in_one_listener,
                "inconsistent",
            ),
        ];
        for (name, observed, want) in table {
            let got = verdict(&observed);
            assert_eq!(kind(&got), want, "{name}: {got}");
        }
        let mut partly = per_region(&in_sync, 2, TrafficDial::CLOSED);
        partly.topology.groups[1].traffic_dial = TrafficDial::FULL;
        let line = verdict(&partly).to_string();
        assert!(
            line.contains("site-b takes traffic in 1 of 2 listeners"),
            "{line}"
        );
    }

    #[test]
    fn the_verdict_line_names_the_next_command() {
        let fenced = World {
            groups: only_a(),
            a: Some(offline()),
            b: Some(online()),
        };
        let line = verdict(&fenced.observed()).to_string();
        assert!(
            line.starts_with("fenced: site-b out")
                && line.contains("cargo xtask site sync --from site-a --to site-b"),
            "{line}"
        );
        let synced = World {
            groups: only_a(),
            a: Some(side(BackupState::Online, PushState::Ok)),
            b: Some(online()),
        };
        let line = verdict(&synced.observed()).to_string();
        assert!(
            line.contains("cargo xtask site bring-online site-b"),
            "{line}"
        );
        let partitioned = World {
            groups: only_a(),
            a: Some(Side {
                sees: Some(false),
                ..offline()
            }),
            b: Some(online()),
        };
        let line = verdict(&partitioned.observed()).to_string();
        assert!(line.contains("heal the link"), "{line}");
    }
}
