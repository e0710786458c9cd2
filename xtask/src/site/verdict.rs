//! The one-line verdict of `site status`, a pure function of what was observed.
//!
//! - **healthy**: both sites take traffic in every endpoint group, and the sites are in sync.
//! - **fenced: X out**: X takes traffic in no endpoint group and the other site in every one
//!   (whatever the replication; the line says whether the sites are in sync yet, i.e. what the
//!   next step is).
//! - **split**: both sites take traffic in every endpoint group but replication between them is
//!   broken: the cross-site link is down or a backup is not online — users on the two sites see
//!   different data.
//! - **inconsistent**: anything else — a site in some groups only, no site at all, or both
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
                    Traffic::Partly { groups, of } => Some(format!(
                        "{site} takes traffic in {groups} of {of} endpoint groups"
                    )),
                    Traffic::Nowhere => Some(format!("{site} takes traffic in no endpoint group")),
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
            Verdict::Healthy => f.write_str(
                "healthy: both sites take traffic in every endpoint group and are in sync",
            ),
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

    use aws_topology::globalaccelerator::{Endpoint, EndpointGroup, Health, Topology};

    use super::super::model::{Replication, SiteState};
    use super::*;

    pub const CACHES: [&str; 2] = ["sessions", "work"];

    pub fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    /// A compact description of one observed state, for table-driven tests.
    #[derive(Clone)]
    pub struct World {
        /// Per endpoint group: the sites present with their weight.
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
        format!("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/{site}/1")
    }

    impl World {
        pub fn observed(&self) -> Observed {
            let groups = self
                .groups
                .iter()
                .enumerate()
                .map(|(i, endpoints)| EndpointGroup {
                    arn: format!("group-{i}"),
                    region: "eu-west-1".to_owned(),
                    endpoints: endpoints
                        .iter()
                        .map(|(s, weight, health)| Endpoint {
                            id: lb(s),
                            site: Some(site(s)),
                            weight: Some(*weight),
                            health: *health,
                        })
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
                accelerator_dns: "a1.awsglobalaccelerator.com".to_owned(),
                topology: Topology {
                    accelerator_arn: "acc".to_owned(),
                    groups,
                },
                sites: [state("site-a", &self.a), state("site-b", &self.b)],
                caches: CACHES.iter().map(|c| (*c).to_owned()).collect(),
            }
        }
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
