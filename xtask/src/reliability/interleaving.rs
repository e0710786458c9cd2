//! The interleaving suite: rounds of concurrent and repeated `SiteOffline` reports against the
//! real fence binary (several instances, so reports really run at once), with random delays,
//! Global Accelerator and Infinispan faults and a sync in flight, and the invariants checked
//! after every round.
//!
//! A round's *inputs* are what the fence may legitimately decide on: which sites report, and
//! the sites' condition as the function can see it (an Infinispan server down, a site's
//! endpoints UNHEALTHY, the cross-site link cut). Everything else is *noise* that must not change
//! the outcome: the order and timing of the reports, how often each is repeated, transient
//! faults (`TransactionInProgressException`, throttling, Infinispan 5xx, latency) and a push of
//! state in flight. A site that goes down or comes back *during* a round changes the inputs while
//! the fences decide; that case is in the fault-survival table, one fence at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox::world::SITES;
use serde_json::json;

use super::lab::{Answer, Lab};

const A: &str = SITES[0];
const B: &str = SITES[1];
/// Alertmanager resends a notification that got a 5xx; a report that has no 2xx after this long
/// counts as a fence that did not finish.
const ROUND_DEADLINE: Duration = Duration::from_secs(45);

/// The sites' condition during a round, as the fence can observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Both sites up and healthy (a true split-brain).
    Healthy,
    /// This site's Infinispan REST API answers 503 for the whole round.
    Down(&'static str),
    /// This site's endpoints are UNHEALTHY in the accelerator.
    Unhealthy(&'static str),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Healthy => write!(f, "healthy"),
            Condition::Down(site) => write!(f, "{site} Infinispan down"),
            Condition::Unhealthy(site) => write!(f, "{site} UNHEALTHY"),
        }
    }
}

/// What a round may decide on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Inputs {
    pub condition: Condition,
    pub partitioned: bool,
    /// Sites that report the other one offline.
    pub reporters: BTreeSet<&'static str>,
}

impl fmt::Display for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reporters: Vec<&str> = self.reporters.iter().copied().collect();
        write!(
            f,
            "{}{}, reports from {}",
            self.condition,
            if self.partitioned { ", link cut" } else { "" },
            reporters.join(" and ")
        )
    }
}

/// What must not change the outcome.
#[derive(Debug, Clone)]
pub struct Noise {
    /// Per report: delay before it is sent, in ms; a reporter may appear several times.
    pub reports: Vec<(&'static str, u64)>,
    pub ga_faults: Vec<(&'static str, &'static str, u32)>,
    pub ga_latency_ms: u64,
    /// Site, HTTP status, count of take-offline failures.
    pub ispn_faults: Vec<(&'static str, u16, u32)>,
    pub ispn_latency_ms: u64,
    /// A push of state started from this site before the reports.
    pub sync_from: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub round: u64,
    pub seed: u64,
    pub inputs: Inputs,
    pub noise: Noise,
}

fn other(site: &str) -> &'static str {
    if site == A { B } else { A }
}

/// The survivor rule as the README states it, for a round's inputs: `Some((survivor, loser))`,
/// or `None` when no report may fence (only an UNHEALTHY site reported).
pub fn expected(inputs: &Inputs) -> Option<(&'static str, &'static str)> {
    match inputs.condition {
        // The preferred site survives while its Infinispan answers.
        Condition::Healthy | Condition::Down(B) => Some((A, B)),
        Condition::Down(_) => Some((B, A)),
        Condition::Unhealthy(sick) => {
            let healthy = other(sick);
            inputs
                .reporters
                .contains(healthy)
                .then_some((healthy, sick))
        }
    }
}

pub fn scenario(seed: u64, round: u64) -> Scenario {
    let mut rng = fastrand::Rng::with_seed(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let condition = match rng.u8(0..10) {
        0..=3 => Condition::Healthy,
        4 | 5 => Condition::Down(if rng.bool() { A } else { B }),
        6 | 7 => Condition::Unhealthy(if rng.bool() { A } else { B }),
        _ => Condition::Healthy,
    };
    let partitioned = rng.bool();
    // Dual reports most of the time, else one site reporting (repeatedly).
    let reporters: BTreeSet<&'static str> = match rng.u8(0..4) {
        0 => [A].into(),
        1 => [B].into(),
        _ => [A, B].into(),
    };
    let mut reports = Vec::new();
    for reporter in &reporters {
        for _ in 0..rng.usize(1..=3) {
            reports.push((*reporter, rng.u64(0..80)));
        }
    }
    rng.shuffle(&mut reports);
    const GA_OPERATIONS: [&str; 3] = [
        "RemoveEndpoints",
        "DescribeEndpointGroup",
        "ListEndpointGroups",
    ];
    const GA_ERRORS: [&str; 2] = ["TransactionInProgressException", "ThrottlingException"];
    let mut ga_faults = Vec::new();
    for operation in GA_OPERATIONS {
        if rng.u8(0..3) == 0 {
            ga_faults.push((operation, GA_ERRORS[rng.usize(0..2)], rng.u32(1..=3)));
        }
    }
    let mut ispn_faults = Vec::new();
    for site in SITES {
        if rng.u8(0..4) == 0 {
            let status = if rng.bool() { 500 } else { 503 };
            ispn_faults.push((site, status, rng.u32(1..=2)));
        }
    }
    let noise = Noise {
        reports,
        ga_faults,
        ga_latency_ms: if rng.bool() { rng.u64(0..25) } else { 0 },
        ispn_faults,
        ispn_latency_ms: if rng.bool() { rng.u64(0..25) } else { 0 },
        sync_from: match rng.u8(0..4) {
            0 => Some(A),
            1 => Some(B),
            _ => None,
        },
    };
    Scenario {
        round,
        seed,
        inputs: Inputs {
            condition,
            partitioned,
            reporters,
        },
        noise,
    }
}

/// What one report finally got (after Alertmanager-style retries on 5xx).
#[derive(Debug, Clone)]
struct ReportResult {
    reporter: &'static str,
    attempts: u32,
    last: Option<Answer>,
    error: Option<String>,
}

/// What a round ended with.
#[derive(Debug, Clone, Default)]
pub struct RoundOutcome {
    /// The site whose endpoints are all gone, if any.
    pub removed: Option<String>,
    pub violations: Vec<String>,
    pub attempts: u32,
    pub retried: u32,
}

async fn send_until_done(lab: Arc<Lab>, reporter: &'static str, delay_ms: u64) -> ReportResult {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let started = Instant::now();
    let mut result = ReportResult {
        reporter,
        attempts: 0,
        last: None,
        error: None,
    };
    loop {
        result.attempts += 1;
        match lab.report(reporter, other(reporter)).await {
            Ok(answer) => {
                let retry = answer.status >= 500;
                result.last = Some(answer);
                result.error = None;
                if !retry {
                    return result;
                }
            }
            // Alertmanager retries network errors too.
            Err(err) => result.error = Some(format!("{err:#}")),
        }
        if started.elapsed() > ROUND_DEADLINE {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..250))).await;
    }
}

/// Applies a scenario's inputs and noise, sends its reports, and checks the invariants.
pub async fn run_round(lab: &Arc<Lab>, scenario: &Scenario) -> anyhow::Result<RoundOutcome> {
    lab.reset().await?;
    let inputs = &scenario.inputs;
    let noise = &scenario.noise;
    match inputs.condition {
        Condition::Healthy => {}
        Condition::Down(site) => lab.ispn_down(site, true).await?,
        Condition::Unhealthy(site) => lab.unhealthy(site).await?,
    }
    if inputs.partitioned {
        lab.partition(true).await?;
    }
    for (operation, error, count) in &noise.ga_faults {
        lab.ga_fault(json!({"operation": operation, "error": error, "count": count}))
            .await?;
    }
    if noise.ga_latency_ms > 0 {
        lab.ga_fault(json!({"latency_ms": noise.ga_latency_ms}))
            .await?;
    }
    for (site, status, count) in &noise.ispn_faults {
        lab.ispn_fault(
            site,
            json!({"operation": "take-offline", "status": status, "count": count}),
        )
        .await?;
    }
    if noise.ispn_latency_ms > 0 {
        for site in SITES {
            lab.ispn_fault(site, json!({"latency_ms": noise.ispn_latency_ms}))
                .await?;
        }
    }
    if let Some(from) = noise.sync_from {
        lab.start_sync(from).await?;
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (reporter, delay) in &noise.reports {
        tasks.spawn(send_until_done(Arc::clone(lab), reporter, *delay));
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined?);
    }
    check(lab, scenario, &results).await
}

async fn check(
    lab: &Lab,
    scenario: &Scenario,
    results: &[ReportResult],
) -> anyhow::Result<RoundOutcome> {
    let mut outcome = RoundOutcome::default();
    let mut violations = Vec::new();
    let groups = lab.endpoint_groups().await?;

    // 1. No endpoint group is ever emptied.
    for (arn, sites) in &groups {
        if sites.is_empty() {
            violations.push(format!("endpoint group {arn} is empty"));
        }
    }
    // 2. At most one site removed.
    let present: BTreeSet<&str> = groups.values().flatten().map(String::as_str).collect();
    let removed: Vec<&str> = SITES
        .iter()
        .copied()
        .filter(|s| !present.contains(s))
        .collect();
    if removed.len() > 1 {
        violations.push(format!("{} sites removed", removed.len()));
    }
    outcome.removed = removed.first().map(|s| s.to_string());

    // 3. Every report finished (2xx), and every fence that answered 2xx has the survivor's
    //    backup to the loser offline.
    let mut backups: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for site in SITES {
        backups.insert(site, lab.backups(site).await?);
    }
    let mut survivors = BTreeSet::new();
    for result in results {
        outcome.attempts += result.attempts;
        outcome.retried += result.attempts.saturating_sub(1);
        let Some(answer) = &result.last else {
            violations.push(format!(
                "report from {} got no answer: {}",
                result.reporter,
                result.error.as_deref().unwrap_or("?")
            ));
            continue;
        };
        if !(200..300).contains(&answer.status) {
            violations.push(format!(
                "report from {} ended with {} after {} attempt(s): {}",
                result.reporter, answer.status, result.attempts, answer.body
            ));
            continue;
        }
        for alert in answer.body["alerts"].as_array().into_iter().flatten() {
            if alert["outcome"] != "done" {
                continue;
            }
            let survivor = alert["survivor"].as_str().unwrap_or_default();
            let loser = alert["fenced"].as_str().unwrap_or_default();
            survivors.insert((survivor.to_string(), loser.to_string()));
            let offline = backups.get(survivor).is_some_and(|caches| {
                !caches.is_empty() && caches.values().all(|b| b == "offline")
            });
            if !offline {
                violations.push(format!(
                    "a fence answered 2xx ({survivor} survives, {loser} fenced) but {survivor}'s backups are {:?}",
                    backups.get(survivor)
                ));
            }
            if !present.contains(survivor) {
                violations.push(format!("survivor {survivor} has no endpoint left"));
            }
        }
    }

    // 4. The outcome is the one the survivor rule gives for these inputs.
    let expected = expected(&scenario.inputs);
    let expected_removed = expected.map(|(_, loser)| loser);
    if outcome.removed.as_deref() != expected_removed {
        violations.push(format!(
            "removed {:?}, the rule says {:?}",
            outcome.removed, expected_removed
        ));
    }
    for (survivor, loser) in &survivors {
        if Some((survivor.as_str(), loser.as_str())) != expected {
            violations.push(format!(
                "a fence chose {survivor} over {loser}, the rule says {expected:?}"
            ));
        }
    }
    if let Some((survivor, loser)) = expected {
        let still = groups
            .values()
            .any(|sites| sites.iter().any(|s| s == loser));
        if !still
            && !backups
                .get(survivor)
                .is_some_and(|c| c.values().all(|b| b == "offline"))
        {
            violations.push(format!(
                "{loser} removed but {survivor}'s backup to it is not offline"
            ));
        }
    }
    outcome.violations = violations;
    Ok(outcome)
}

/// Figures of a whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub rounds: u64,
    pub worlds: usize,
    pub reports_sent: u64,
    pub retries_after_5xx: u64,
    pub violations: u64,
    /// Inputs → the distinct outcomes (removed site) seen for them.
    pub outcomes_by_inputs: BTreeMap<String, BTreeSet<String>>,
    /// Inputs seen with more than one outcome (must stay 0).
    pub inputs_with_several_outcomes: u64,
    pub seconds: f64,
    pub first_violations: Vec<String>,
}

/// Runs `rounds` rounds over the given worlds (each world runs one round at a time).
pub async fn run(labs: &[Arc<Lab>], rounds: u64, seed: u64) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for lab in labs {
        let lab = Arc::clone(lab);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let round = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if round >= rounds {
                    return Ok::<_, anyhow::Error>(done);
                }
                let scenario = scenario(seed, round);
                let outcome = run_round(&lab, &scenario).await?;
                if round % 100 == 99 {
                    eprintln!(
                        "  interleaving: {} rounds, {:.0} s",
                        round + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
                done.push((scenario, outcome));
            }
        });
    }
    let mut figures = Figures {
        worlds: labs.len(),
        ..Figures::default()
    };
    while let Some(joined) = tasks.join_next().await {
        for (scenario, outcome) in joined?? {
            figures.rounds += 1;
            figures.reports_sent += u64::from(outcome.attempts);
            figures.retries_after_5xx += u64::from(outcome.retried);
            figures
                .outcomes_by_inputs
                .entry(scenario.inputs.to_string())
                .or_default()
                .insert(
                    outcome
                        .removed
                        .map_or("nothing removed".to_string(), |s| format!("{s} removed")),
                );
            if !outcome.violations.is_empty() {
                figures.violations += 1;
                if figures.first_violations.len() < 10 {
                    figures.first_violations.push(format!(
                        "round {} (seed {}): {}; noise {:?}: {}",
                        scenario.round,
                        scenario.seed,
                        scenario.inputs,
                        scenario.noise,
                        outcome.violations.join("; ")
                    ));
                }
            }
        }
    }
    figures.inputs_with_several_outcomes = figures
        .outcomes_by_inputs
        .values()
        .filter(|o| o.len() > 1)
        .count() as u64;
    figures.seconds = started.elapsed().as_secs_f64();
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(condition: Condition, reporters: &[&'static str]) -> Inputs {
        Inputs {
            condition,
            partitioned: false,
            reporters: reporters.iter().copied().collect(),
        }
    }

    #[test]
    fn the_rule_the_suite_holds_the_fence_to() {
        type Row = (
            Condition,
            &'static [&'static str],
            Option<(&'static str, &'static str)>,
        );
        let table: &[Row] = &[
            (Condition::Healthy, &[A, B], Some((A, B))),
            (Condition::Healthy, &[B], Some((A, B))),
            (Condition::Down(A), &[A, B], Some((B, A))),
            (Condition::Down(A), &[A], Some((B, A))),
            (Condition::Down(B), &[B], Some((A, B))),
            (Condition::Unhealthy(A), &[A], None),
            (Condition::Unhealthy(A), &[A, B], Some((B, A))),
            (Condition::Unhealthy(B), &[A], Some((A, B))),
        ];
        for (condition, reporters, survivor) in table {
            assert_eq!(
                expected(&inputs(*condition, reporters)),
                *survivor,
                "{condition} {reporters:?}"
            );
        }
    }

    #[test]
    fn scenarios_are_reproducible_from_their_seed() {
        let a = scenario(7, 42);
        let b = scenario(7, 42);
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.noise.reports, b.noise.reports);
        let kinds: BTreeSet<_> = (0..200).map(|r| scenario(7, r).inputs.condition).collect();
        assert!(kinds.len() >= 5, "every condition is drawn: {kinds:?}");
    }
}
