//! The procedures of the HA guide as pure plans: what was observed → the steps still to do.
//!
//! A plan only holds the steps the observed state still needs, so running a command twice does
//! nothing the second time, and a command interrupted half-way continues where it stopped when
//! run again. A plan that cannot be carried out safely is a [`Refusal`], before anything changes.

use std::fmt;

use aws_topology::elbv2::elb_region;
use aws_topology::globalaccelerator::Health;
use common::site::SiteName;

use super::model::{BackupState, Observed, PushState, Replication, SITE_WEIGHT, Traffic, traffic};
use super::verdict::sync_problems;

/// One change, in the order the plan makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Global Accelerator `RemoveEndpoints` (chapter 16).
    RemoveEndpoint {
        group: String,
        site: SiteName,
        endpoint: String,
    },
    /// Global Accelerator `AddEndpoints` with the guide's weight (chapter 8); for an endpoint
    /// already in the group, this sets its weight.
    AddEndpoint {
        group: String,
        site: SiteName,
        endpoint: String,
        weight: i32,
    },
    /// On `site`, every cache's backup to `remote` taken offline.
    TakeBackupOffline { site: SiteName, remote: SiteName },
    /// Every entry of `cache` on `site` removed (with its backup offline, so only there).
    ClearCache { site: SiteName, cache: String },
    /// On `site`, every cache's backup to `remote` brought online.
    BringBackupOnline { site: SiteName, remote: SiteName },
    /// State transfer from `from` to `to`: every cache (container level), or only `caches`.
    PushState {
        from: SiteName,
        to: SiteName,
        caches: Option<Vec<String>>,
    },
    /// Poll the push-state status of `caches` on `from` until none is `SENDING`.
    WaitForPush {
        from: SiteName,
        to: SiteName,
        caches: Vec<String>,
    },
    /// Reset `cache`'s push-state status on `site` (back to `IDLE`).
    ClearPushStatus { site: SiteName, cache: String },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RemoveEndpoint {
                group,
                site,
                endpoint,
            } => write!(
                f,
                "Global Accelerator: remove {site}'s endpoint {endpoint} from endpoint group {group}"
            ),
            Step::AddEndpoint {
                group,
                site,
                endpoint,
                weight,
            } => write!(
                f,
                "Global Accelerator: add {site}'s endpoint {endpoint} to endpoint group {group} with weight {weight}"
            ),
            Step::TakeBackupOffline { site, remote } => write!(
                f,
                "{site}: take the backup to {remote} offline for every cache (so that clearing {site} does not clear {remote})"
            ),
            Step::ClearCache { site, cache } => write!(f, "{site}: clear cache {cache}"),
            Step::BringBackupOnline { site, remote } => {
                write!(
                    f,
                    "{site}: bring the backup to {remote} online for every cache"
                )
            }
            Step::PushState {
                from,
                to,
                caches: None,
            } => write!(f, "{from}: push state to {to} for every cache"),
            Step::PushState {
                from,
                to,
                caches: Some(caches),
            } => write!(f, "{from}: push state to {to} for {}", caches.join(", ")),
            Step::WaitForPush { from, to, caches } => write!(
                f,
                "{from}: wait until the push to {to} is done for {}",
                caches.join(", ")
            ),
            Step::ClearPushStatus { site, cache } => {
                write!(f, "{site}: clear the push-state status of {cache}")
            }
        }
    }
}

/// What a command will do, shown before it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub title: String,
    pub steps: Vec<Step>,
    /// What the operator must know or do by hand (outside AWS and Infinispan).
    pub notes: Vec<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan: {}", self.title)?;
        if self.steps.is_empty() {
            writeln!(f, "  nothing to do")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>2}. {step}", i + 1)?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// Why a command will not run; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; nothing was changed", self.0)
    }
}

impl std::error::Error for Refusal {}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(reason.into()))
}

fn known<'a>(
    observed: &'a Observed,
    name: &SiteName,
) -> Result<&'a super::model::SiteState, Refusal> {
    match observed.site(name) {
        Some(site) => Ok(site),
        None => refuse(format!(
            "{name} is not a site of this deployment ({} and {})",
            observed.sites[0].name, observed.sites[1].name
        )),
    }
}

fn takes_traffic(endpoint: &aws_topology::globalaccelerator::Endpoint) -> bool {
    endpoint.weight.unwrap_or(SITE_WEIGHT) > 0
}

/// Chapter 16: remove the site's endpoints from every endpoint group, never leaving a group
/// without an endpoint that takes traffic (Global Accelerator would then fail open).
pub fn take_offline(observed: &Observed, site: &SiteName) -> Result<Plan, Refusal> {
    let state = known(observed, site)?;
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    for group in &observed.topology.groups {
        let (ours, rest): (Vec<_>, Vec<_>) = group.endpoints.iter().partition(|e| {
            e.site.as_ref() == Some(site) || state.load_balancer.as_deref() == Some(&e.id)
        });
        if ours.is_empty() {
            continue;
        }
        if !rest.iter().any(|e| takes_traffic(e)) {
            return refuse(format!(
                "taking {site} offline would leave endpoint group {} with no endpoint that takes traffic (Global Accelerator would fail open and keep sending traffic to {site})",
                group.arn
            ));
        }
        if rest
            .iter()
            .filter(|e| takes_traffic(e))
            .all(|e| e.health == Health::Unhealthy)
        {
            notes.push(format!(
                "every endpoint left in {} is UNHEALTHY: users will get errors until it recovers",
                group.arn
            ));
        }
        steps.extend(ours.into_iter().map(|e| Step::RemoveEndpoint {
            group: group.arn.clone(),
            site: site.clone(),
            endpoint: e.id.clone(),
        }));
    }
    if !steps.is_empty() {
        notes.push(format!(
            "cross-site replication keeps running; after the maintenance, `cargo xtask site status` tells whether {site} needs a sync before `cargo xtask site bring-online {site}`"
        ));
    }
    Ok(Plan {
        title: format!("take {site} offline (remove it from the Global Accelerator)"),
        steps,
        notes,
    })
}

/// Chapter 8: add the site's load balancer back, weight 128, to every endpoint group in its
/// region; refused while the sites are not in sync unless `force`.
pub fn bring_online(observed: &Observed, site: &SiteName, force: bool) -> Result<Plan, Refusal> {
    let state = known(observed, site)?;
    let Some(load_balancer) = &state.load_balancer else {
        return refuse(format!(
            "sites.{site}.load_balancer_arn is not set in sitefence.toml: bring-online needs the load balancer to add back"
        ));
    };
    let problems = sync_problems(observed);
    let mut notes = Vec::new();
    if !problems.is_empty() {
        let listed = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let other = observed.other(site).map(|s| s.name.to_string());
        let other = other.as_deref().unwrap_or("the other site");
        if !force {
            return refuse(format!(
                "the sites are not in sync ({listed}): users sent to {site} would see stale data. Run `cargo xtask site sync --from {other} --to {site}` first, or pass --force"
            ));
        }
        notes.push(format!(
            "--force: bringing {site} online although the sites are not in sync ({listed})"
        ));
    }
    let region = elb_region(load_balancer);
    let groups: Vec<_> = observed
        .topology
        .groups
        .iter()
        .filter(|g| region.is_none_or(|r| g.region.is_empty() || g.region == r))
        .collect();
    if groups.is_empty() {
        return refuse(format!(
            "the accelerator has no endpoint group in {} for {load_balancer}",
            region.unwrap_or("any region")
        ));
    }
    let steps = groups
        .into_iter()
        .filter(|g| {
            !g.endpoints
                .iter()
                .any(|e| &e.id == load_balancer && e.weight == Some(SITE_WEIGHT))
        })
        .map(|g| Step::AddEndpoint {
            group: g.arn.clone(),
            site: site.clone(),
            endpoint: load_balancer.clone(),
            weight: SITE_WEIGHT,
        })
        .collect();
    Ok(Plan {
        title: format!("bring {site} online (add it back to the Global Accelerator)"),
        steps,
        notes,
    })
}

fn reachable<'a>(observed: &'a Observed, name: &SiteName) -> Result<&'a Replication, Refusal> {
    match &known(observed, name)?.replication {
        Ok(replication) => Ok(replication),
        Err(message) => refuse(format!("{name}'s Infinispan cannot be read: {message}")),
    }
}

/// Chapter 15: make `stale` a copy of `good`. Take `stale`'s backup to `good` offline, clear
/// `stale`'s caches, bring its backup online, push state from `good`, wait, clear the push
/// status. Resumes from what is observed: a push still running is waited for, caches already
/// pushed are not cleared again (only the others are pushed again, as the guide says for a
/// cache that ended in `ERROR`), and sites already in sync need nothing.
pub fn sync(observed: &Observed, good: &SiteName, stale: &SiteName) -> Result<Plan, Refusal> {
    if good == stale {
        return refuse(format!("--from and --to are both {good}"));
    }
    let g = reachable(observed, good)?;
    let s = reachable(observed, stale)?;
    let title = format!("synchronize {stale} from {good} (make {stale} a copy of {good})");
    if let Some(blind) = [(good, g, stale), (stale, s, good)]
        .into_iter()
        .find(|(_, r, _)| r.sees_remote == Some(false))
    {
        return refuse(format!(
            "the cross-site link is down ({} does not see {} in its cross-site view): a push from {good} cannot reach {stale}. Heal the link between the sites first",
            blind.0, blind.2
        ));
    }
    match traffic(&observed.topology, stale) {
        Traffic::Nowhere => {}
        Traffic::Everywhere | Traffic::Partly { .. } => {
            return refuse(format!(
                "{stale} still takes traffic from the Global Accelerator: clearing its caches would log its users out. Take it offline first (`cargo xtask site take-offline {stale}`), or swap --from and --to if {stale} is the good site"
            ));
        }
    }
    if traffic(&observed.topology, good) == Traffic::Nowhere {
        return refuse(format!(
            "{good} takes traffic in no endpoint group: it is not the site users work on, so its data is not the reference"
        ));
    }

    let push_of = |c: &str| g.push.get(c).cloned().unwrap_or(PushState::Idle);
    let online = |r: &Replication, c: &str| r.backups.get(c) == Some(&BackupState::Online);
    let caches = &observed.caches;
    let done: Vec<&String> = caches
        .iter()
        .filter(|c| push_of(c) == PushState::Ok && online(g, c) && online(s, c))
        .collect();
    let sending: Vec<&String> = caches
        .iter()
        .filter(|c| push_of(c) == PushState::Sending)
        .collect();
    let todo: Vec<String> = caches
        .iter()
        .filter(|c| !done.contains(c) && !sending.contains(c))
        .cloned()
        .collect();
    let clear_status = |caches: &mut dyn Iterator<Item = &String>| -> Vec<Step> {
        caches
            .map(|c| Step::ClearPushStatus {
                site: good.clone(),
                cache: c.clone(),
            })
            .collect()
    };

    let mut steps = Vec::new();
    let mut notes = Vec::new();
    if sync_problems(observed).is_empty() {
        // In sync already: at most the push statuses of a finished sync are left to clear.
        let pushed: Vec<&String> = caches
            .iter()
            .filter(|c| push_of(c) == PushState::Ok)
            .collect();
        steps.extend(clear_status(&mut pushed.into_iter()));
        return Ok(Plan {
            title,
            steps,
            notes,
        });
    }
    let all = |r: &Replication, state: BackupState| r.all_backups(&state);
    if done.is_empty() && sending.is_empty() {
        notes.push(format!(
            "scale Keycloak on {stale} to 0 before this (chapter 15: its local caches would be stale) and back to its replicas after"
        ));
        if !all(s, BackupState::Offline) {
            steps.push(Step::TakeBackupOffline {
                site: stale.clone(),
                remote: good.clone(),
            });
        }
        steps.extend(caches.iter().map(|c| Step::ClearCache {
            site: stale.clone(),
            cache: c.clone(),
        }));
        steps.push(Step::BringBackupOnline {
            site: stale.clone(),
            remote: good.clone(),
        });
        if !all(g, BackupState::Online) {
            steps.push(Step::BringBackupOnline {
                site: good.clone(),
                remote: stale.clone(),
            });
        }
        steps.push(Step::PushState {
            from: good.clone(),
            to: stale.clone(),
            caches: None,
        });
        steps.push(Step::WaitForPush {
            from: good.clone(),
            to: stale.clone(),
            caches: caches.clone(),
        });
        steps.extend(clear_status(&mut caches.iter()));
    } else {
        // A sync already cleared and pushed: finish it. Caches that are not pushed (ERROR,
        // CANCELED, IDLE) are pushed again on their own, without clearing the others.
        if !all(s, BackupState::Online) {
            steps.push(Step::BringBackupOnline {
                site: stale.clone(),
                remote: good.clone(),
            });
        }
        if !all(g, BackupState::Online) {
            steps.push(Step::BringBackupOnline {
                site: good.clone(),
                remote: stale.clone(),
            });
        }
        if !todo.is_empty() {
            steps.push(Step::PushState {
                from: good.clone(),
                to: stale.clone(),
                caches: Some(todo.clone()),
            });
        }
        let waiting: Vec<String> = caches
            .iter()
            .filter(|c| !done.contains(c))
            .cloned()
            .collect();
        if !waiting.is_empty() {
            steps.push(Step::WaitForPush {
                from: good.clone(),
                to: stale.clone(),
                caches: waiting,
            });
        }
        steps.extend(clear_status(&mut caches.iter()));
    }
    Ok(Plan {
        title,
        steps,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use aws_topology::globalaccelerator::Health;

    use super::super::model::{BackupState as B, PushState as P};
    use super::super::verdict::tests::{Side, World, both, offline, online, only_a, side, site};
    use super::*;

    fn a() -> SiteName {
        site("site-a")
    }
    fn b() -> SiteName {
        site("site-b")
    }

    /// A short name per step, so that a table row reads as the sequence it expects.
    fn shape(plan: &Result<Plan, Refusal>) -> String {
        match plan {
            Err(refusal) => format!("refused: {}", refusal.0),
            Ok(plan) => plan
                .steps
                .iter()
                .map(|s| match s {
                    Step::RemoveEndpoint { site, .. } => format!("remove {site}"),
                    Step::AddEndpoint { site, weight, .. } => format!("add {site} {weight}"),
                    Step::TakeBackupOffline { site, .. } => format!("offline {site}"),
                    Step::ClearCache { site, cache } => format!("clear {site} {cache}"),
                    Step::BringBackupOnline { site, .. } => format!("online {site}"),
                    Step::PushState { caches: None, .. } => "push all".to_owned(),
                    Step::PushState {
                        caches: Some(c), ..
                    } => format!("push {}", c.join("+")),
                    Step::WaitForPush { caches, .. } => format!("wait {}", caches.join("+")),
                    Step::ClearPushStatus { cache, .. } => format!("clear-status {cache}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    const FULL_SYNC: &str = "offline site-b, clear site-b sessions, clear site-b work, online site-b, online site-a, push all, wait sessions+work, clear-status sessions, clear-status work";

    #[test]
    fn sync_table() {
        let link_down = Side {
            sees: Some(false),
            ..offline()
        };
        let pushed = side(B::Online, P::Ok);
        let sending = side(B::Online, P::Sending);
        let work_error = Side {
            push_of: vec![("work", P::Error)],
            ..pushed.clone()
        };
        let b_offline = side(B::Offline, P::Idle);
        let table: Vec<(&str, World, &str)> = vec![
            (
                "after_the_fence_everything_is_done",
                World {
                    groups: only_a(),
                    a: Some(offline()),
                    b: Some(online()),
                },
                FULL_SYNC,
            ),
            (
                "interrupted_while_clearing_does_not_take_offline_again",
                World {
                    groups: only_a(),
                    a: Some(offline()),
                    b: Some(b_offline),
                },
                "clear site-b sessions, clear site-b work, online site-b, online site-a, push all, wait sessions+work, clear-status sessions, clear-status work",
            ),
            (
                "interrupted_while_pushing_waits_for_the_push",
                World {
                    groups: only_a(),
                    a: Some(sending),
                    b: Some(online()),
                },
                "wait sessions+work, clear-status sessions, clear-status work",
            ),
            (
                "interrupted_after_the_push_only_clears_the_status",
                World {
                    groups: only_a(),
                    a: Some(pushed),
                    b: Some(online()),
                },
                "clear-status sessions, clear-status work",
            ),
            (
                "a_cache_in_error_is_pushed_again_alone",
                World {
                    groups: only_a(),
                    a: Some(work_error),
                    b: Some(online()),
                },
                "push work, wait work, clear-status sessions, clear-status work",
            ),
            (
                "already_in_sync_is_nothing_to_do",
                World {
                    groups: only_a(),
                    a: Some(online()),
                    b: Some(online()),
                },
                "",
            ),
            (
                "link_down_is_refused",
                World {
                    groups: only_a(),
                    a: Some(link_down),
                    b: Some(online()),
                },
                "refused: the cross-site link is down",
            ),
            (
                "stale_site_taking_traffic_is_refused",
                World {
                    groups: both(),
                    a: Some(offline()),
                    b: Some(online()),
                },
                "refused: site-b still takes traffic",
            ),
            (
                "stale_site_unreadable_is_refused",
                World {
                    groups: only_a(),
                    a: Some(offline()),
                    b: None,
                },
                "refused: site-b's Infinispan cannot be read",
            ),
        ];
        for (name, world, want) in table {
            let got = shape(&sync(&world.observed(), &a(), &b()));
            assert!(got.starts_with(want), "{name}: got `{got}`, want `{want}`");
            if !want.starts_with("refused") {
                assert_eq!(got, want, "{name}");
            }
        }
    }

    #[test]
    fn sync_the_wrong_way_round_is_refused() {
        let fenced = World {
            groups: only_a(),
            a: Some(offline()),
            b: Some(online()),
        };
        let got = shape(&sync(&fenced.observed(), &b(), &a()));
        assert!(
            got.starts_with("refused: site-a still takes traffic"),
            "{got}"
        );
        let same = shape(&sync(&fenced.observed(), &a(), &a()));
        assert!(same.starts_with("refused: --from and --to"), "{same}");
    }

    #[test]
    fn bring_online_table() {
        let in_sync_out = World {
            groups: only_a(),
            a: Some(online()),
            b: Some(online()),
        };
        let not_synced = World {
            groups: only_a(),
            a: Some(offline()),
            b: Some(online()),
        };
        let weight_zero = World {
            groups: vec![vec![
                ("site-a", 128, Health::Healthy),
                ("site-b", 0, Health::Healthy),
            ]],
            a: Some(online()),
            b: Some(online()),
        };
        let table: Vec<(&str, &World, bool, &str)> = vec![
            (
                "in_sync_adds_with_weight_128",
                &in_sync_out,
                false,
                "add site-b 128",
            ),
            (
                "not_in_sync_is_refused",
                &not_synced,
                false,
                "refused: the sites are not in sync",
            ),
            (
                "forced_while_not_in_sync",
                &not_synced,
                true,
                "add site-b 128",
            ),
            (
                "weight_zero_is_set_back_to_128",
                &weight_zero,
                false,
                "add site-b 128",
            ),
        ];
        for (name, world, force, want) in table {
            let got = shape(&bring_online(&world.observed(), &b(), force));
            assert!(got.starts_with(want), "{name}: got `{got}`, want `{want}`");
        }
        let healthy = World {
            groups: both(),
            a: Some(online()),
            b: Some(online()),
        };
        assert_eq!(
            shape(&bring_online(&healthy.observed(), &b(), false)),
            "",
            "idempotent"
        );
        let forced = bring_online(&not_synced.observed(), &b(), true).unwrap();
        assert!(forced.notes.iter().any(|n| n.contains("--force")));
    }

    #[test]
    fn bring_online_without_a_load_balancer_is_refused() {
        let mut observed = World {
            groups: only_a(),
            a: Some(online()),
            b: Some(online()),
        }
        .observed();
        observed.sites[1].load_balancer = None;
        let got = shape(&bring_online(&observed, &b(), true));
        assert!(got.contains("load_balancer_arn is not set"), "{got}");
    }

    #[test]
    fn take_offline_table() {
        let healthy = World {
            groups: both(),
            a: Some(online()),
            b: Some(online()),
        };
        let two_groups = World {
            groups: vec![
                vec![
                    ("site-a", 128, Health::Healthy),
                    ("site-b", 128, Health::Healthy),
                ],
                vec![
                    ("site-a", 128, Health::Healthy),
                    ("site-b", 128, Health::Healthy),
                ],
            ],
            a: Some(online()),
            b: Some(online()),
        };
        let a_weight_zero = World {
            groups: vec![vec![
                ("site-a", 0, Health::Healthy),
                ("site-b", 128, Health::Healthy),
            ]],
            a: Some(online()),
            b: Some(online()),
        };
        let fenced = World {
            groups: only_a(),
            a: Some(offline()),
            b: Some(online()),
        };
        let table: Vec<(&str, &World, &str, &str)> = vec![
            (
                "removes_from_the_one_group",
                &healthy,
                "site-b",
                "remove site-b",
            ),
            (
                "removes_from_every_group",
                &two_groups,
                "site-b",
                "remove site-b, remove site-b",
            ),
            ("already_out_is_nothing_to_do", &fenced, "site-b", ""),
            (
                "never_removes_the_last_endpoint",
                &fenced,
                "site-a",
                "refused: taking site-a offline would leave",
            ),
            (
                "never_leaves_only_weight_zero",
                &a_weight_zero,
                "site-b",
                "refused: taking site-b offline would leave",
            ),
            (
                "unknown_site_is_refused",
                &healthy,
                "site-c",
                "refused: site-c is not a site",
            ),
        ];
        for (name, world, target, want) in table {
            let got = shape(&take_offline(&world.observed(), &site(target)));
            assert!(
                got.starts_with(want) && (want.starts_with("refused") || got == want),
                "{name}: got `{got}`, want `{want}`"
            );
        }
    }

    #[test]
    fn plans_read_as_the_guide_does() {
        let fenced = World {
            groups: only_a(),
            a: Some(offline()),
            b: Some(online()),
        };
        let text = sync(&fenced.observed(), &a(), &b()).unwrap().to_string();
        assert!(
            text.contains("site-b: take the backup to site-a offline"),
            "{text}"
        );
        assert!(
            text.contains("site-a: push state to site-b for every cache"),
            "{text}"
        );
        assert!(text.contains("scale Keycloak on site-b to 0"), "{text}");
    }
}
