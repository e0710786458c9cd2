//! The procedures of the HA guide as pure plans: what was observed → the steps still to do.
//!
//! A plan only holds the steps the observed state still needs, so running a command twice does
//! nothing the second time, and a command interrupted half-way continues where it stopped when
//! run again. A plan that cannot be carried out safely is a [`Refusal`], before anything changes.

use std::fmt;

use aws_topology::decisions::DecisionRecord;
use aws_topology::elbv2::elb_region;
use aws_topology::globalaccelerator::{DEFAULT_WEIGHT, EndpointGroup, Health, TrafficDial};
use common::site::SiteName;

use super::model::{BackupState, Decisions, Observed, PushState, Replication, SITE_WEIGHT};
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
    /// Global Accelerator `UpdateEndpointGroup`: the traffic dial of a group that holds only
    /// `site`'s endpoints set back to `dial` (chapter 8 after a fence that closed the dial
    /// rather than remove the site's endpoint: one group per region, one site per region).
    OpenTrafficDial {
        group: String,
        site: SiteName,
        dial: TrafficDial,
        /// The decision whose facts hold the dial before the fence; `None`: no record held
        /// it, so the dial goes to 100 %.
        before: Option<String>,
    },
    /// The fence's decision record of the split-brain closed (DynamoDB, conditioned on its
    /// decision id and its being open), so that a later, different split-brain of the two sites
    /// is decided anew rather than by this decision.
    CloseDecision {
        split_brain: String,
        decision_id: String,
        survivor: SiteName,
        loser: SiteName,
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
            Step::OpenTrafficDial {
                group,
                site,
                dial,
                before,
            } => {
                write!(
                    f,
                    "Global Accelerator: open the traffic dial of endpoint group {group} ({site}'s endpoints only) to {dial}"
                )?;
                match before {
                    Some(decision) => {
                        write!(f, ", its dial before the fence (decision {decision})")
                    }
                    None => f.write_str(" (no decision record holds its dial before the fence)"),
                }
            }
            Step::CloseDecision {
                split_brain,
                decision_id,
                survivor,
                loser,
            } => write!(
                f,
                "decision records: close decision {decision_id} of split-brain {split_brain} ({survivor} survived, {loser} was fenced), so that a later split-brain is decided anew"
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
        if !rest.iter().any(|e| group.takes_traffic(e)) {
            return refuse(format!(
                "taking {site} offline would leave endpoint group {} with no endpoint that takes traffic (Global Accelerator would fail open and keep sending traffic to {site})",
                group.arn
            ));
        }
        if rest
            .iter()
            .filter(|e| group.takes_traffic(e))
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
/// region; open each endpoint group dial the fence closed for it (a group of the site's
/// endpoints only whose dial is 0) to the dial before the fence; and, once the site is back and
/// the sites are in sync, close the decision record of the split-brain that fenced it, so that
/// a later, different split-brain is decided anew. Refused while the sites are not in sync
/// unless `force`.
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
    let in_region = |g: &EndpointGroup| region.is_none_or(|r| g.region.is_empty() || g.region == r);
    if !observed.topology.groups.iter().any(in_region) {
        return refuse(format!(
            "the accelerator has no endpoint group in {} for {load_balancer}",
            region.unwrap_or("any region")
        ));
    }
    // The open decision that fenced this site: its facts hold each group's dial before the
    // fence, and it is the record to close once the site is back.
    let fenced_by = observed
        .decision()
        .filter(|r| r.closed.is_none() && &r.loser == site);

    let mut steps = Vec::new();
    for group in &observed.topology.groups {
        let present = group.endpoints.iter().find(|e| &e.id == load_balancer);
        let add = in_region(group)
            && present.is_none_or(|e| e.weight.unwrap_or(DEFAULT_WEIGHT) != SITE_WEIGHT);
        if add {
            steps.push(Step::AddEndpoint {
                group: group.arn.clone(),
                site: site.clone(),
                endpoint: load_balancer.clone(),
                weight: SITE_WEIGHT,
            });
        }
        // Only a group the site has to itself (once added to): a closed group that also holds
        // another site's endpoints was not closed for this site, and opening it would send that
        // site traffic.
        let ours = |e: &aws_topology::globalaccelerator::Endpoint| {
            e.site.as_ref() == Some(site) || &e.id == load_balancer
        };
        let only_ours = (add || !group.endpoints.is_empty()) && group.endpoints.iter().all(ours);
        if only_ours && !group.traffic_dial.is_open() {
            let before = fenced_by.and_then(|r| {
                dial_before_fence(r, &group.arn).map(|dial| (dial, r.decision_id.clone()))
            });
            steps.push(Step::OpenTrafficDial {
                group: group.arn.clone(),
                site: site.clone(),
                dial: before.as_ref().map_or(TrafficDial::FULL, |(dial, _)| *dial),
                before: before.map(|(_, decision)| decision),
            });
        } else if !group.traffic_dial.is_open() && group.endpoints.iter().any(ours) {
            notes.push(format!(
                "endpoint group {} holds {site}'s endpoint and others, and its traffic dial is 0: left closed (the fence closes only a group of the fenced site's endpoints alone)",
                group.arn
            ));
        }
    }

    if let Some(record) = observed.decision().filter(|r| r.closed.is_none()) {
        let back = after(observed, &steps).site_takes_traffic(site);
        if &record.loser != site {
            notes.push(format!(
                "decision {} of split-brain {} fenced {}, not {site}: it stays open",
                record.decision_id, record.split_brain, record.loser
            ));
        } else if !problems.is_empty() {
            notes.push(format!(
                "decision {} that fenced {site} stays open while the sites are not in sync: run `cargo xtask site bring-online {site}` again once they are, and it closes it",
                record.decision_id
            ));
        } else if !back {
            notes.push(format!(
                "decision {} that fenced {site} stays open: {site} would still take no traffic after this plan",
                record.decision_id
            ));
        } else {
            steps.push(Step::CloseDecision {
                split_brain: record.split_brain.clone(),
                decision_id: record.decision_id.clone(),
                survivor: record.survivor.clone(),
                loser: record.loser.clone(),
            });
        }
    }
    if let Decisions::Unavailable(why) = &observed.decisions {
        notes.push(format!(
            "the fence's decision records were not read ({why}): no record is closed, and a dial the fence closed goes back to 100 %"
        ));
    }
    Ok(Plan {
        title: format!("bring {site} online (add it back to the Global Accelerator)"),
        steps,
        notes,
    })
}

/// The traffic dial `group_arn` had when `record`'s fence read the accelerator (its
/// `facts.groups[]`), when the record holds one above 0. The facts are JSON the fence wrote
/// (possibly an older or newer fence): read leniently, never trusted to be there.
fn dial_before_fence(record: &DecisionRecord, group_arn: &str) -> Option<TrafficDial> {
    let percentage = record
        .facts
        .get("groups")?
        .as_array()?
        .iter()
        .find(|g| g.get("arn").and_then(|a| a.as_str()) == Some(group_arn))?
        .get("traffic_dial")?
        .as_f64()?;
    // A percentage (0..=100, clamped by `from_percentage`): f32 holds it as Global
    // Accelerator does.
    let dial = TrafficDial::from_percentage(Some(percentage as f32));
    dial.is_open().then_some(dial)
}

/// The accelerator as it will be once the Global Accelerator steps of `steps` are done.
fn after(observed: &Observed, steps: &[Step]) -> aws_topology::globalaccelerator::Topology {
    let mut topology = observed.topology.clone();
    for step in steps {
        match step {
            Step::AddEndpoint {
                group,
                site,
                endpoint,
                weight,
            } => {
                if let Some(g) = topology.groups.iter_mut().find(|g| &g.arn == group) {
                    g.endpoints.retain(|e| &e.id != endpoint);
                    g.endpoints.push(aws_topology::globalaccelerator::Endpoint {
                        id: endpoint.clone(),
                        site: Some(site.clone()),
                        weight: Some(*weight),
                        health: Health::Initial,
                    });
                }
            }
            Step::RemoveEndpoint {
                group, endpoint, ..
            } => {
                if let Some(g) = topology.groups.iter_mut().find(|g| &g.arn == group) {
                    g.endpoints.retain(|e| &e.id != endpoint);
                }
            }
            Step::OpenTrafficDial { group, dial, .. } => {
                if let Some(g) = topology.groups.iter_mut().find(|g| &g.arn == group) {
                    g.traffic_dial = *dial;
                }
            }
            _ => {}
        }
    }
    topology
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
    if observed.topology.site_takes_traffic(stale) {
        return refuse(format!(
            "{stale} still takes traffic from the Global Accelerator: clearing its caches would log its users out. Take it offline first (`cargo xtask site take-offline {stale}`), or swap --from and --to if {stale} is the good site"
        ));
    }
    if !observed.topology.site_takes_traffic(good) {
        return refuse(format!(
            "{good} takes traffic in no listener: it is not the site users work on, so its data is not the reference"
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
    use aws_topology::decisions::{Closure, Mode};
    use serde_json::{Value, json};

    use super::super::verdict::tests::{
        NOW_MS, SPLIT_BRAIN, Side, World, both, group_arn, listener, offline, online, only_a,
        per_region, side, site,
    };
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
                    Step::OpenTrafficDial {
                        group,
                        dial,
                        before,
                        ..
                    } => format!(
                        "open {} {dial}{}",
                        group.rsplit('/').next().unwrap_or(group),
                        before
                            .as_ref()
                            .map(|d| format!(" from {d}"))
                            .unwrap_or_default()
                    ),
                    Step::CloseDecision { decision_id, .. } => format!("close {decision_id}"),
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

    /// The decision that fenced `loser`, an hour ago, with `facts`.
    fn decision(loser: &str, facts: Value) -> DecisionRecord {
        let survivor = if loser == "site-a" {
            "site-b"
        } else {
            "site-a"
        };
        DecisionRecord {
            split_brain: SPLIT_BRAIN.to_owned(),
            decision_id: "d-1".to_owned(),
            survivor: site(survivor),
            loser: site(loser),
            rule: "reporter_preferred".to_owned(),
            reporter: site(survivor),
            decided_at_ms: NOW_MS - 3_600_000,
            request_id: "d-1".to_owned(),
            facts,
            mode: Mode::Enforce,
            closed: None,
        }
    }

    /// The fence's `facts.groups[]`: each group's ARN and dial (and what else it records).
    fn facts(dials: &[(&str, Value)]) -> Value {
        json!({
            "reporter": "healthy",
            "site": "healthy",
            "groups": dials
                .iter()
                .map(|(arn, dial)| json!({"arn": arn, "listener": "l", "traffic_dial": dial, "endpoints": []}))
                .collect::<Vec<_>>(),
        })
    }

    fn with(mut observed: Observed, records: Vec<DecisionRecord>) -> Observed {
        observed.decisions = Decisions::Read {
            table: "sitefence-decisions".to_owned(),
            records,
        };
        observed
    }

    fn b_group(i: usize) -> String {
        group_arn(&listener(i), &format!("b{i}"))
    }

    fn in_sync() -> World {
        World {
            groups: Vec::new(),
            a: Some(online()),
            b: Some(online()),
        }
    }

    /// One group per region and site: the fence closed site-b's group's dial (its endpoint
    /// stays, weight 128); bring-online opens it to the dial before the fence, from the record.
    #[test]
    fn bring_online_opens_the_dial_the_fence_closed() {
        let fenced = per_region(&in_sync(), 1, TrafficDial::CLOSED);
        let at_50 = facts(&[(&b_group(0), json!(50.0))]);
        let closed_record = DecisionRecord {
            closed: Some(Closure {
                at_ms: NOW_MS - 1,
                by: "site bring-online".to_owned(),
            }),
            ..decision("site-b", facts(&[(&b_group(0), json!(50.0))]))
        };
        let mut done = per_region(&in_sync(), 1, TrafficDial::FULL);
        done = with(done, vec![closed_record.clone()]);
        let mut unreadable = fenced.clone();
        unreadable.decisions = Decisions::Unavailable("no such table".to_owned());
        let not_synced = per_region(
            &World {
                a: Some(offline()),
                ..in_sync()
            },
            1,
            TrafficDial::CLOSED,
        );
        let table: Vec<(&str, Observed, bool, &str)> = vec![
            (
                "dial_from_the_records_facts_then_the_record_closed",
                with(fenced.clone(), vec![decision("site-b", at_50.clone())]),
                false,
                "open b0 50% from d-1, close d-1",
            ),
            (
                "dial_was_full_before_the_fence",
                with(
                    fenced.clone(),
                    vec![decision("site-b", facts(&[(&b_group(0), json!(100))]))],
                ),
                false,
                "open b0 100% from d-1, close d-1",
            ),
            (
                "no_record_opens_to_100",
                fenced.clone(),
                false,
                "open b0 100%",
            ),
            (
                "records_unreadable_open_to_100_and_close_nothing",
                unreadable.clone(),
                false,
                "open b0 100%",
            ),
            (
                "facts_without_the_group_open_to_100",
                with(
                    fenced.clone(),
                    vec![decision("site-b", json!({"groups": "not a list"}))],
                ),
                false,
                "open b0 100%, close d-1",
            ),
            (
                "facts_with_a_closed_dial_open_to_100",
                with(
                    fenced.clone(),
                    vec![decision("site-b", facts(&[(&b_group(0), json!(0))]))],
                ),
                false,
                "open b0 100%, close d-1",
            ),
            (
                "not_in_sync_is_refused",
                with(not_synced.clone(), vec![decision("site-b", at_50.clone())]),
                false,
                "refused: the sites are not in sync",
            ),
            (
                "forced_opens_but_keeps_the_record",
                with(not_synced, vec![decision("site-b", at_50.clone())]),
                true,
                "open b0 50% from d-1",
            ),
            (
                "interrupted_after_the_dial_only_closes_the_record",
                with(
                    per_region(&in_sync(), 1, TrafficDial::from_percentage(Some(50.0))),
                    vec![decision("site-b", at_50.clone())],
                ),
                false,
                "close d-1",
            ),
            ("done_is_nothing_to_do", done, false, ""),
        ];
        for (name, observed, force, want) in table {
            let got = shape(&bring_online(&observed, &b(), force));
            assert!(
                got.starts_with(want) && (want.starts_with("refused") || got == want),
                "{name}: got `{got}`, want `{want}`"
            );
        }
        let forced = bring_online(
            &with(
                per_region(
                    &World {
                        a: Some(offline()),
                        ..in_sync()
                    },
                    1,
                    TrafficDial::CLOSED,
                ),
                vec![decision("site-b", at_50)],
            ),
            &b(),
            true,
        )
        .unwrap();
        assert!(
            forced
                .notes
                .iter()
                .any(|n| n.contains("decision d-1 that fenced site-b stays open")),
            "{forced}"
        );
        let unread = bring_online(&unreadable, &b(), false).unwrap();
        assert!(
            unread
                .notes
                .iter()
                .any(|n| n.contains("no such table") && n.contains("100 %")),
            "{unread}"
        );
    }

    #[test]
    fn bring_online_with_weight_zero() {
        // Weight 0 in a shared group: set back to 128, nothing else.
        let shared = World {
            groups: vec![vec![
                ("site-a", 128, Health::Healthy),
                ("site-b", 0, Health::Healthy),
            ]],
            ..in_sync()
        };
        // Weight 0 in site-b's own group, dial closed too: both undone.
        let mut own = per_region(&in_sync(), 1, TrafficDial::CLOSED);
        own.topology.groups[1].endpoints[0].weight = Some(0);
        // Weight 0 alone, dial open: the weight is what keeps site-b out.
        let mut open = per_region(&in_sync(), 1, TrafficDial::FULL);
        open.topology.groups[1].endpoints[0].weight = Some(0);
        let record = || vec![decision("site-b", facts(&[(&b_group(0), json!(100.0))]))];
        let table: Vec<(&str, Observed, &str)> = vec![
            (
                "shared_group",
                with(shared.observed(), record()),
                "add site-b 128, close d-1",
            ),
            (
                "own_group_dial_closed",
                with(own, record()),
                "add site-b 128, open b0 100% from d-1, close d-1",
            ),
            (
                "own_group_dial_open",
                with(open, record()),
                "add site-b 128, close d-1",
            ),
        ];
        for (name, observed, want) in table {
            let got = shape(&bring_online(&observed, &b(), false));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn bring_online_in_every_listener() {
        let three = per_region(&in_sync(), 3, TrafficDial::CLOSED);
        let before = facts(&[
            (&b_group(0), json!(100.0)),
            (&b_group(1), json!(25.0)),
            (&b_group(2), json!(100.0)),
        ]);
        assert_eq!(
            shape(&bring_online(
                &with(three.clone(), vec![decision("site-b", before.clone())]),
                &b(),
                false
            )),
            "open b0 100% from d-1, open b1 25% from d-1, open b2 100% from d-1, close d-1"
        );
        // One listener reopened by hand already: only the others.
        let mut partly = with(three, vec![decision("site-b", before)]);
        partly.topology.groups[3].traffic_dial = TrafficDial::FULL;
        assert_eq!(
            shape(&bring_online(&partly, &b(), false)),
            "open b0 100% from d-1, open b2 100% from d-1, close d-1"
        );
        // A listener with one shared group the fence removed site-b from, next to a listener
        // with one group per region whose dial it closed.
        let mut mixed = with(
            per_region(&in_sync(), 2, TrafficDial::CLOSED),
            vec![decision("site-b", facts(&[(&b_group(1), json!(100.0))]))],
        );
        mixed.topology.groups.remove(1);
        mixed.topology.groups[0].region = "eu-west-1".to_owned();
        assert_eq!(
            shape(&bring_online(&mixed, &b(), false)),
            "add site-b 128, open b1 100% from d-1, close d-1"
        );
        // A second load balancer of site-b (not the configured one), alone in a group of
        // another region whose dial the fence closed: opened too.
        let mut second = with(
            per_region(&in_sync(), 1, TrafficDial::CLOSED),
            vec![decision("site-b", facts(&[(&b_group(0), json!(100.0))]))],
        );
        let mut other_region = second.topology.groups[1].clone();
        other_region.arn = group_arn(&listener(0), "b-second");
        other_region.region = "ap-south-1".to_owned();
        other_region.endpoints[0].id = super::super::verdict::tests::lb_in("site-b", "ap-south-1");
        second.topology.groups.push(other_region);
        assert_eq!(
            shape(&bring_online(&second, &b(), false)),
            "open b0 100% from d-1, open b-second 100%, close d-1"
        );
        // A closed group shared with site-a was not closed for site-b: left closed.
        let mut shared_closed = per_region(&in_sync(), 1, TrafficDial::CLOSED);
        let a_endpoint = shared_closed.topology.groups[0].endpoints[0].clone();
        shared_closed.topology.groups[1].endpoints.push(a_endpoint);
        let plan = bring_online(&shared_closed, &b(), false).unwrap();
        assert!(plan.steps.is_empty(), "{plan}");
        assert!(
            plan.notes.iter().any(|n| n.contains("left closed")),
            "{plan}"
        );
    }

    #[test]
    fn bring_online_closes_only_the_record_that_fenced_the_site() {
        let back = per_region(&in_sync(), 1, TrafficDial::FULL);
        let record = decision("site-b", facts(&[]));
        let other_pair = DecisionRecord {
            split_brain: "a1.awsglobalaccelerator.com/site-b+site-c".to_owned(),
            ..record.clone()
        };
        let closed = DecisionRecord {
            closed: Some(Closure {
                at_ms: NOW_MS - 1,
                by: "site bring-online".to_owned(),
            }),
            ..record.clone()
        };
        let fenced_a = decision("site-a", facts(&[]));
        // Back more than the stale-after ago without bring-online: the record went stale; it
        // is still open, and bring-online closes it.
        let stale = DecisionRecord {
            decided_at_ms: NOW_MS - 86_400_000,
            ..record.clone()
        };
        let table: Vec<(&str, Vec<DecisionRecord>, &str)> = vec![
            (
                "back_and_in_sync_closes_it",
                vec![other_pair.clone(), record.clone()],
                "close d-1",
            ),
            ("a_stale_record_is_closed_too", vec![stale], "close d-1"),
            ("already_closed", vec![closed], ""),
            ("another_pair_of_sites", vec![other_pair], ""),
            ("it_fenced_the_other_site", vec![fenced_a], ""),
            ("no_record", vec![], ""),
        ];
        for (name, records, want) in table {
            let observed = with(back.clone(), records);
            assert_eq!(shape(&bring_online(&observed, &b(), false)), want, "{name}");
        }
        let plan = bring_online(
            &with(back, vec![decision("site-a", facts(&[]))]),
            &b(),
            false,
        )
        .unwrap();
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("fenced site-a, not site-b: it stays open")),
            "{plan}"
        );
        let text = bring_online(
            &with(
                per_region(&in_sync(), 1, TrafficDial::CLOSED),
                vec![decision("site-b", facts(&[(&b_group(0), json!(100.0))]))],
            ),
            &b(),
            false,
        )
        .unwrap()
        .to_string();
        assert!(
            text.contains("open the traffic dial of endpoint group")
                && text.contains("to 100%, its dial before the fence (decision d-1)")
                && text.contains("decision records: close decision d-1 of split-brain a1.awsglobalaccelerator.com/site-a+site-b (site-a survived, site-b was fenced)"),
            "{text}"
        );
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
