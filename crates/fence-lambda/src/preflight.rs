//! The preflight: an authenticated request that asks the fence what it would do now, so that
//! `sitefence doctor` proves, from where the fence runs and with the fence's own permissions,
//! credentials and CA, every read a fence needs. It never writes and never records a decision.
//!
//! A request is a preflight when it carries the header [`HEADER`] (any value) and passes the
//! same HTTP Basic check as an alert. Its body names the accelerator:
//! `{"accelerator": "<DnsName>"}`. The fence then, with nothing cached:
//!
//! 1. reads both secrets afresh from Secrets Manager (a rotated or changed Infinispan password
//!    shows up now, not at the end of the cache's time to live), and the accelerator with each
//!    endpoint's site resolved afresh (ELBv2 tags or the configured load balancers);
//! 2. probes every site's Infinispan with the fence's credentials and CA, and reads the
//!    decision store (the split-brain's record, if one stands);
//! 3. for each site reporting the other, plans the fence as the pure decision makes it
//!    ([`crate::decide::choose`], [`crate::decide::traffic_plan`]).
//!
//! It answers 200 with [`Preflight`] when nothing stands in the way of a fence, 500 with the
//! same body and its `problems` otherwise, each problem naming the broken link.

use std::collections::BTreeMap;

use aws_topology::decisions::split_brain_key;
use aws_topology::globalaccelerator::Topology;
use common::alertmanager::FiringSiteOffline;
use common::outcome::Disposition;
use common::site::{AcceleratorDns, SiteName};
use serde::{Deserialize, Serialize};

use crate::decide::{
    Choice, Liveness, SiteState, TrafficStep, Unfenceable, choose, site_state, traffic_plan,
};
use crate::handler::{Failure, Invocation, Report, Settings, World, until};

/// The header that makes an authenticated request a preflight.
pub const HEADER: &str = "x-sitefence-preflight";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    accelerator: String,
}

/// What the fence found, and would do.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    pub accelerator: AcceleratorDns,
    /// Every configured site: its place in the accelerator and its Infinispan.
    pub sites: Vec<SiteCheck>,
    /// Endpoints whose load balancer belongs to no site: a fence could not take them out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints_without_site: Vec<String>,
    /// The split-brain's decision record, when one is there (it decides, not today's facts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standing_decision: Option<StandingDecision>,
    /// What a fence would do now, for each site reporting the other.
    pub plans: Vec<PlannedFence>,
    /// Each broken link, said once; empty when a fence would go through.
    pub problems: Vec<Problem>,
}

/// Which link a problem breaks; `sitefence doctor` says how to fix each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A secret could not be read (permission, name, format).
    Secrets,
    /// The accelerator could not be read, or there is none by that name.
    Accelerator,
    /// An endpoint whose load balancer belongs to no site.
    EndpointWithoutSite,
    /// A configured site with no endpoint in the accelerator.
    SiteWithoutEndpoints,
    /// A site's Infinispan did not answer, or refused the fence's credentials or TLS.
    Infinispan,
    /// The decision table could not be read.
    DecisionStore,
    /// A fence would leave a listener to nobody.
    Unfenceable,
    /// The preflight did not finish in time.
    OutOfTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteName>,
    pub detail: String,
}

impl Problem {
    fn new(kind: ProblemKind, site: Option<&SiteName>, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            site: site.cloned(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteCheck {
    pub site: SiteName,
    pub state: SiteState,
    /// How many endpoints of the site the accelerator holds, taking traffic or not.
    pub endpoints: usize,
    /// The probe's answer, or why there was none.
    pub infinispan: String,
    /// Its backups to the other sites as the fence's credentials read them, by remote site.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub backups: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StandingDecision {
    pub survivor: SiteName,
    pub loser: SiteName,
    pub rule: String,
    pub decided_at_ms: u64,
    pub closed: bool,
    /// A `monitor` record was a rehearsal: it binds monitor-mode reports only, and an enforcing
    /// fence decides anew over it (`aws_topology::decisions`, "Monitor mode").
    pub mode: aws_topology::decisions::Mode,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedFence {
    pub reporter: SiteName,
    pub site: SiteName,
    /// `fence`, `skip` or `reject`, as the decision would go.
    pub choice: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survivor: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loser: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<TrafficStep>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfenceable: Vec<Unfenceable>,
}

/// Answers a preflight request (already authenticated).
pub async fn answer<W: World>(
    world: &W,
    settings: &Settings,
    invocation: &Invocation,
    body: &[u8],
) -> Report {
    let request: Request = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => {
            return Report::rejected(
                Disposition::BadInput,
                400,
                format!("a preflight's body is {{\"accelerator\": \"<DnsName>\"}}: {err}"),
            );
        }
    };
    let accelerator = match AcceleratorDns::parse(&request.accelerator) {
        Ok(accelerator) => accelerator,
        Err(err) => {
            return Report::rejected(Disposition::BadInput, 400, format!("accelerator: {err}"));
        }
    };
    let preflight = until(
        invocation.deadline,
        examine(world, settings, accelerator.clone()),
    )
    .await
    .unwrap_or_else(|| Preflight {
        accelerator,
        sites: Vec::new(),
        endpoints_without_site: Vec::new(),
        standing_decision: None,
        plans: Vec::new(),
        problems: vec![Problem::new(
            ProblemKind::OutOfTime,
            None,
            "the preflight ran out of time (a call that hangs: see the function's log)",
        )],
    });
    let outcome = if preflight.problems.is_empty() {
        Disposition::Done
    } else {
        Disposition::Fatal
    };
    let mut report = Report::rejected(
        outcome,
        outcome.http_status(),
        if preflight.problems.is_empty() {
            "preflight: a fence would go through".to_owned()
        } else {
            format!("preflight: {} problem(s)", preflight.problems.len())
        },
    );
    report.preflight = Some(preflight);
    report
}

async fn examine<W: World>(
    world: &W,
    settings: &Settings,
    accelerator: AcceleratorDns,
) -> Preflight {
    let mut problems = Vec::new();
    // Nothing cached: the sites of the endpoints and the secrets are read as a cold start reads them.
    world.forget_topology(&accelerator);
    let (secrets, topology) =
        tokio::join!(world.read_secrets_afresh(), world.topology(&accelerator));
    if let Err(failure) = &secrets {
        problems.push(Problem::new(
            ProblemKind::Secrets,
            None,
            format!("reading the secrets: {}", failure.message),
        ));
    }
    let sites: Vec<SiteName> = settings.policy.sites.iter().cloned().collect();
    let key = match sites.as_slice() {
        [a, b, ..] => Some(split_brain_key(&accelerator, a, b)),
        _ => None,
    };
    // The probes after the secrets: a probe with a password not yet read would be refused.
    // Per site, the probe (no credentials needed), then an authenticated read of the
    // cross-site backups, which shows that Infinispan accepts the fence's credentials.
    let probes = common::join::join_all(sites.iter().map(|site| async move {
        let probe = world.probe(site).await;
        let backups = match probe {
            Ok(Liveness::Alive) => Some(world.backup_status(site).await),
            _ => None,
        };
        (site.clone(), (probe, backups))
    }));
    let recorded = async {
        match &key {
            Some(key) => Some(world.recorded(key).await),
            None => None,
        }
    };
    let (probes, recorded) = tokio::join!(probes, recorded);
    let mut liveness: BTreeMap<SiteName, Result<Liveness, Failure>> = BTreeMap::new();
    let mut backups: BTreeMap<SiteName, BTreeMap<String, String>> = BTreeMap::new();
    for (site, (probe, backup_status)) in probes {
        match backup_status {
            Some(Ok(status)) => {
                for remote in sites.iter().filter(|s| **s != site) {
                    if !status.contains_key(remote.as_str()) {
                        problems.push(Problem::new(
                            ProblemKind::Infinispan,
                            Some(&site),
                            format!("{site}'s Infinispan has no cross-site backup to {remote}: the fence would have nothing to take offline"),
                        ));
                    }
                }
                backups.insert(site.clone(), status);
            }
            Some(Err(failure)) => problems.push(Problem::new(
                ProblemKind::Infinispan,
                Some(&site),
                format!(
                    "{site}'s Infinispan answers, but reading its cross-site backups with the fence's credentials failed: {}",
                    failure.message
                ),
            )),
            None => {}
        }
        liveness.insert(site, probe);
    }

    let standing_decision = match recorded {
        Some(Ok(Some(record))) => Some(StandingDecision {
            survivor: record.survivor,
            loser: record.loser,
            rule: record.rule,
            decided_at_ms: record.decided_at_ms,
            closed: record.closed.is_some(),
            mode: record.mode,
        }),
        Some(Ok(None)) | None => None,
        Some(Err(failure)) => {
            problems.push(Problem::new(
                ProblemKind::DecisionStore,
                None,
                format!("reading the decision store: {}", failure.message),
            ));
            None
        }
    };
    for (site, probe) in &liveness {
        match probe {
            Ok(Liveness::Alive) => {}
            Ok(Liveness::Unreachable) => problems.push(Problem::new(
                ProblemKind::Infinispan,
                Some(site),
                format!(
                    "{site}'s Infinispan does not answer from the fence (down, or no network path)"
                ),
            )),
            Err(failure) => problems.push(Problem::new(
                ProblemKind::Infinispan,
                Some(site),
                format!("{site}'s Infinispan: {}", failure.message),
            )),
        }
    }
    let topology = match topology {
        Ok(Some(topology)) => topology,
        unread => {
            let detail = match unread {
                Err(failure) => format!("reading the accelerator: {}", failure.message),
                _ => format!("no accelerator named {accelerator}"),
            };
            problems.push(Problem::new(ProblemKind::Accelerator, None, detail));
            return Preflight {
                accelerator,
                sites: Vec::new(),
                endpoints_without_site: Vec::new(),
                standing_decision,
                plans: Vec::new(),
                problems,
            };
        }
    };
    let endpoints_without_site = endpoints_without_site(&topology);
    for endpoint in &endpoints_without_site {
        problems.push(Problem::new(
            ProblemKind::EndpointWithoutSite,
            None,
            format!("endpoint {endpoint} belongs to no site: a fence could not take it out"),
        ));
    }
    let site_checks: Vec<SiteCheck> = sites
        .iter()
        .map(|site| {
            let endpoints = topology
                .groups
                .iter()
                .flat_map(|g| g.endpoints.iter())
                .filter(|e| e.site.as_ref() == Some(site))
                .count();
            if endpoints == 0 {
                problems.push(Problem::new(
                    ProblemKind::SiteWithoutEndpoints,
                    Some(site),
                    format!("{site} has no endpoint in the accelerator"),
                ));
            }
            SiteCheck {
                site: site.clone(),
                state: site_state(&topology, site),
                endpoints,
                infinispan: match liveness.get(site) {
                    Some(Ok(Liveness::Alive)) => "alive".to_owned(),
                    Some(Ok(Liveness::Unreachable)) => "unreachable".to_owned(),
                    Some(Err(failure)) => failure.message.clone(),
                    None => "not probed".to_owned(),
                },
                backups: backups.get(site).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let mut plans = Vec::new();
    for reporter in &sites {
        for site in sites.iter().filter(|s| *s != reporter) {
            let plan = plan_fence(&topology, settings, &accelerator, reporter, site, &liveness);
            if !plan.unfenceable.is_empty() {
                problems.push(Problem::new(
                    ProblemKind::Unfenceable,
                    Some(site),
                    format!(
                        "a fence of {} would leave listener(s) {} to nobody",
                        site,
                        plan.unfenceable
                            .iter()
                            .map(|u| u.listener_arn.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            plans.push(plan);
        }
    }
    Preflight {
        accelerator,
        sites: site_checks,
        endpoints_without_site,
        standing_decision,
        plans,
        problems,
    }
}

/// Every endpoint, taking traffic or not, whose site is unknown: once it takes traffic a fence
/// could not take it out.
fn endpoints_without_site(topology: &Topology) -> Vec<String> {
    topology
        .groups
        .iter()
        .flat_map(|g| g.endpoints.iter())
        .filter(|e| e.site.is_none())
        .map(|e| e.id.clone())
        .collect()
}

/// The fence the decision would make now if `reporter` reported `site`.
fn plan_fence(
    topology: &Topology,
    settings: &Settings,
    accelerator: &AcceleratorDns,
    reporter: &SiteName,
    site: &SiteName,
    liveness: &BTreeMap<SiteName, Result<Liveness, Failure>>,
) -> PlannedFence {
    let alert = FiringSiteOffline {
        reporter: reporter.clone(),
        site: site.clone(),
        accelerator: accelerator.clone(),
        fingerprint: "preflight".to_owned(),
    };
    let mut choice = choose(topology, &alert, &settings.policy, None);
    if let Choice::Probe(probed) = &choice
        && let Some(Ok(probe)) = liveness.get(probed)
    {
        choice = choose(topology, &alert, &settings.policy, Some(*probe));
    }
    let mut planned = PlannedFence {
        reporter: reporter.clone(),
        site: site.clone(),
        choice: "fence",
        reason: None,
        survivor: None,
        loser: None,
        rule: None,
        steps: Vec::new(),
        unfenceable: Vec::new(),
    };
    match choice {
        Choice::Decided(verdict) => {
            let traffic = traffic_plan(topology, &verdict.survivor, &verdict.loser);
            planned.rule = Some(verdict.rule.as_str());
            planned.survivor = Some(verdict.survivor);
            planned.loser = Some(verdict.loser);
            planned.steps = traffic.steps;
            planned.unfenceable = traffic.unfenceable;
        }
        Choice::Skip(reason) => {
            planned.choice = "skip";
            planned.reason = Some(reason);
        }
        Choice::Reject(reason) => {
            planned.choice = "reject";
            planned.reason = Some(reason);
        }
        Choice::Probe(probed) => {
            planned.choice = "undecided";
            planned.reason = Some(format!("the probe of {probed} gave no answer"));
        }
    }
    planned
}
