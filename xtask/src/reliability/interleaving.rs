//! The interleaving suite: rounds of concurrent and repeated `SiteOffline` reports against the
//! real fence binary (as many instances as its reserved concurrency, so reports really run at
//! once), on every shape of accelerator production runs ([`Shape`]), with random delays,
//! faults, a sync in flight and inputs that change while the fences decide; the invariants are
//! checked after every round.
//!
//! A round's *inputs* are what the fence may legitimately decide on: the accelerator's shape,
//! which sites report, and the sites' condition as the function can see it (an Infinispan
//! server down, a site's endpoints UNHEALTHY, the cross-site link cut), and how that condition
//! changes during the round ([`Change`]: a site's health flips between a report and its
//! resend, the preferred site's Infinispan flaps between the probes of two reports or comes
//! back). Everything else is *noise* that must not change the outcome beyond what the inputs
//! allow: the order and timing of the reports, how often each is sent (each site's Alertmanager
//! replicas), transient faults (Global Accelerator conflicts, throttling, a removal refused on
//! the second group, Infinispan 5xx, DynamoDB 5xx and throttling, latency), a push of state in
//! flight, and a flood of unauthenticated requests that takes most of the reserved concurrency.
//!
//! Reports are sent as Alertmanager sends them ([`alertmanager`]): 5xx and network errors are
//! retried with its backoff within its window, 429 and every other 4xx end the notification (a
//! report lost to a 429 is counted; the round must still end right through the others).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_topology::decisions::split_brain_key;
use common::site::{AcceleratorDns, SiteName};
use sandbox::world::SITES;
use serde_json::json;
use tokio::sync::watch;

use super::alertmanager::{self, Next};
use super::lab::{Answer, Lab, deployed_reserved_concurrency};
use super::shapes::{Shape, Shaped};

const A: &str = SITES[0];
const B: &str = SITES[1];

/// The sites' condition when a round begins, as the fence can observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Both sites up and healthy (a true split-brain).
    Healthy,
    /// This site's Infinispan REST API answers 503.
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

/// A change of the sites' condition during a round. Never a second fault on top of the first
/// (a survivor whose Infinispan is down for good cannot finish any fence): a health flip hits
/// the site that is down or unhealthy already, or either when both are well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Every load balancer of the site turns UNHEALTHY, or HEALTHY again.
    Health { site: &'static str, healthy: bool },
    /// The preferred site's Infinispan stops answering for this long, then answers again.
    PreferredFlap { down_ms: u64 },
    /// The preferred site's Infinispan, down since the round began, answers again.
    PreferredBack,
}

/// When a [`Change`] happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// This many ms after the round's reports start: while the first fences decide.
    Start(u64),
    /// This many ms after the first answer any report got: between a report and its resend,
    /// or between the probes of two reports.
    FirstAnswer(u64),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Health { site, healthy } => write!(
                f,
                "{site} turns {}",
                if *healthy { "HEALTHY" } else { "UNHEALTHY" }
            ),
            Change::PreferredFlap { down_ms } => {
                write!(f, "{A}'s Infinispan down for {down_ms} ms")
            }
            Change::PreferredBack => write!(f, "{A}'s Infinispan back"),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Start(ms) => write!(f, "{ms} ms into the round"),
            Trigger::FirstAnswer(ms) => write!(f, "{ms} ms after the first answer"),
        }
    }
}

/// What a round may decide on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Inputs {
    pub shape: Shape,
    pub condition: Condition,
    pub partitioned: bool,
    /// Sites that report the other one offline.
    pub reporters: BTreeSet<&'static str>,
    pub change: Option<(Change, Trigger)>,
}

impl Inputs {
    /// The inputs without their timing, to compare rounds.
    fn key(&self) -> String {
        let reporters: Vec<&str> = self.reporters.iter().copied().collect();
        format!(
            "{}: {}{}, reports from {}",
            self.shape.name(),
            self.condition,
            if self.partitioned { ", link cut" } else { "" },
            reporters.join(" and ")
        )
    }
}

impl fmt::Display for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key())?;
        if let Some((change, trigger)) = &self.change {
            write!(f, "; {change} {trigger}")?;
        }
        Ok(())
    }
}

/// What must not change the outcome.
#[derive(Debug, Clone)]
pub struct Noise {
    /// Per report: delay before it is sent, in ms; a reporter may appear several times (its
    /// Alertmanager replicas).
    pub reports: Vec<(&'static str, u64)>,
    /// Operation, AWS error, count.
    pub ga_faults: Vec<(&'static str, &'static str, u32)>,
    /// `RemoveEndpoints` refused on the second group a fence changes (error, count): the
    /// first group is done, the report answers 5xx, its resend goes on.
    pub second_group_fault: Option<(&'static str, u32)>,
    pub ga_latency_ms: u64,
    /// Site, HTTP status, count of take-offline failures.
    pub ispn_faults: Vec<(&'static str, u16, u32)>,
    pub ispn_latency_ms: u64,
    /// DynamoDB operation, HTTP status, error code, count (through the AWS front).
    pub record_faults: Vec<(&'static str, u16, &'static str, u32)>,
    /// A push of state started from this site before the reports.
    pub sync_from: Option<&'static str>,
    /// A flood of unauthenticated requests from the first report on: this many at a time,
    /// fewer than the reserved concurrency, for this many ms. A report is throttled (429) only
    /// while the flood and other reports take every slot.
    pub flood: Option<(usize, u64)>,
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

/// The sites' condition at one moment, as the survivor rule reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    ispn_down: Option<&'static str>,
    unhealthy: Option<&'static str>,
}

impl Facts {
    fn at_start(condition: Condition) -> Facts {
        match condition {
            Condition::Healthy => Facts {
                ispn_down: None,
                unhealthy: None,
            },
            Condition::Down(site) => Facts {
                ispn_down: Some(site),
                unhealthy: None,
            },
            Condition::Unhealthy(site) => Facts {
                ispn_down: None,
                unhealthy: Some(site),
            },
        }
    }

    /// The survivor rule as the README states it: health differs → the healthy site survives,
    /// whichever reports; alike → the preferred site if its Infinispan answers, else the other.
    fn survivor(self) -> (&'static str, &'static str) {
        match (self.unhealthy, self.ispn_down) {
            (Some(sick), _) => (other(sick), sick),
            (None, Some(A)) => (B, A),
            (None, _) => (A, B),
        }
    }
}

/// Every outcome the rule gives for the condition at some moment of the round: the decision is
/// the first deciding report's, on what it read then.
pub fn allowed(inputs: &Inputs) -> BTreeSet<(&'static str, &'static str)> {
    let start = Facts::at_start(inputs.condition);
    let mut outcomes = BTreeSet::from([start.survivor()]);
    if let Some((change, _)) = inputs.change {
        let changed = match change {
            Change::Health { site, healthy } => Facts {
                unhealthy: (!healthy).then_some(site),
                ..start
            },
            Change::PreferredFlap { .. } => Facts {
                ispn_down: Some(A),
                ..start
            },
            Change::PreferredBack => Facts {
                ispn_down: None,
                ..start
            },
        };
        outcomes.insert(changed.survivor());
    }
    outcomes
}

pub fn scenario(seed: u64, round: u64) -> Scenario {
    let mut rng = fastrand::Rng::with_seed(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let pick = |rng: &mut fastrand::Rng| if rng.bool() { A } else { B };
    let shape = Shape::ALL[rng.usize(..Shape::ALL.len())];
    let condition = match rng.u8(0..10) {
        0..=3 => Condition::Healthy,
        4 | 5 => Condition::Down(pick(&mut rng)),
        6 | 7 => Condition::Unhealthy(pick(&mut rng)),
        _ => Condition::Healthy,
    };
    let partitioned = rng.bool();
    // Dual reports most of the time, else one site reporting (repeatedly).
    let reporters: BTreeSet<&'static str> = match rng.u8(0..4) {
        0 => [A].into(),
        1 => [B].into(),
        _ => [A, B].into(),
    };
    let flap = |rng: &mut fastrand::Rng| Change::PreferredFlap {
        down_ms: rng.u64(100..1500),
    };
    let change = (rng.u8(0..3) == 0).then(|| {
        let change = match condition {
            Condition::Healthy if rng.bool() => Change::Health {
                site: pick(&mut rng),
                healthy: false,
            },
            Condition::Unhealthy(site) if rng.bool() => Change::Health {
                site,
                healthy: true,
            },
            Condition::Healthy | Condition::Unhealthy(_) => flap(&mut rng),
            Condition::Down(A) if rng.bool() => Change::PreferredBack,
            Condition::Down(site) => Change::Health {
                site,
                healthy: false,
            },
        };
        let trigger = if rng.bool() {
            Trigger::Start(rng.u64(0..200))
        } else {
            Trigger::FirstAnswer(rng.u64(0..100))
        };
        (change, trigger)
    });

    let mut reports = Vec::new();
    for reporter in &reporters {
        for _ in 0..rng.usize(1..=3) {
            reports.push((*reporter, rng.u64(0..80)));
        }
    }
    rng.shuffle(&mut reports);
    const GA_OPERATIONS: [&str; 4] = [
        "RemoveEndpoints",
        "UpdateEndpointGroup",
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
    let second_group_fault = (shape == Shape::TwoListeners && rng.bool()).then(|| {
        if rng.bool() {
            // Refused outright: the invocation fails after the first group.
            ("AccessDeniedException", 1)
        } else {
            ("InternalServiceErrorException", rng.u32(1..=3))
        }
    });
    let mut ispn_faults = Vec::new();
    for site in SITES {
        if rng.u8(0..4) == 0 {
            let status = if rng.bool() { 500 } else { 503 };
            ispn_faults.push((site, status, rng.u32(1..=2)));
        }
    }
    const RECORD_ERRORS: [(u16, &str); 3] = [
        (500, "InternalServerError"),
        (400, "ThrottlingException"),
        (400, "ProvisionedThroughputExceededException"),
    ];
    let mut record_faults = Vec::new();
    for operation in ["PutItem", "GetItem"] {
        if rng.u8(0..4) == 0 {
            let (status, error) = RECORD_ERRORS[rng.usize(..RECORD_ERRORS.len())];
            // Several reports use one fault up; enough that one fence's attempts (the SDK
            // retries three times) can all fail.
            record_faults.push((operation, status, error, rng.u32(1..=8)));
        }
    }
    let reserved = deployed_reserved_concurrency();
    let noise = Noise {
        reports,
        ga_faults,
        second_group_fault,
        ga_latency_ms: if rng.bool() { rng.u64(0..25) } else { 0 },
        ispn_faults,
        ispn_latency_ms: if rng.bool() { rng.u64(0..25) } else { 0 },
        record_faults,
        sync_from: match rng.u8(0..4) {
            0 => Some(A),
            1 => Some(B),
            _ => None,
        },
        flood: (rng.u8(0..5) == 0).then(|| {
            (
                reserved.saturating_sub(rng.usize(1..=3)).max(1),
                rng.u64(200..800),
            )
        }),
    };
    Scenario {
        round,
        seed,
        inputs: Inputs {
            shape,
            condition,
            partitioned,
            reporters,
            change,
        },
        noise,
    }
}

/// What one report finally got, sent as Alertmanager sends it.
#[derive(Debug, Clone)]
struct ReportResult {
    reporter: &'static str,
    attempts: u32,
    /// The status of the last attempt, `None` when it got no response.
    status: Option<u16>,
    /// Every attempt's status.
    statuses: Vec<Option<u16>>,
    last: Option<Answer>,
    error: Option<String>,
}

/// What a round ended with.
#[derive(Debug, Clone, Default)]
pub struct RoundOutcome {
    /// The recorded decision's `(survivor, loser)`.
    pub decided: Option<(String, String)>,
    pub violations: Vec<String>,
    pub attempts: u32,
    pub retried: u32,
    /// Reports whose notification ended on a 429.
    pub lost_to_429: u32,
    /// Every report of the round ended on a 429.
    pub all_reports_throttled: bool,
    /// Every attempt's answer: its status, or `none`.
    pub answers: BTreeMap<String, u64>,
    pub flood_sent: u32,
    pub flood_throttled: u32,
}

async fn send_as_alertmanager(
    lab: Arc<Lab>,
    accelerator: String,
    reporter: &'static str,
    delay_ms: u64,
    answered: Arc<watch::Sender<bool>>,
    seed: u64,
) -> ReportResult {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let window = alertmanager::window();
    let mut backoff = alertmanager::Backoff::default();
    let mut result = ReportResult {
        reporter,
        attempts: 0,
        status: None,
        statuses: Vec::new(),
        last: None,
        error: None,
    };
    loop {
        let tick = Instant::now();
        result.attempts += 1;
        match lab.report_to(&accelerator, reporter, other(reporter)).await {
            Ok(answer) => {
                result.status = Some(answer.status);
                result.last = Some(answer);
                result.error = None;
                answered.send_replace(true);
            }
            Err(err) => {
                result.status = None;
                result.error = Some(format!("{err:#}"));
            }
        }
        result.statuses.push(result.status);
        if alertmanager::after(result.status) != Next::Retry {
            return result;
        }
        // The backoff ticker's next tick is timed from this attempt's start; none comes once
        // the flush's context has ended.
        let next = tick + backoff.next(&mut rng);
        if next > started + window {
            return result;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
}

/// Applies a change of the inputs when its trigger comes.
async fn change_inputs(
    lab: Arc<Lab>,
    shaped: Shaped,
    change: Change,
    trigger: Trigger,
    mut answered: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    match trigger {
        Trigger::Start(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Trigger::FirstAnswer(ms) => {
            // No answer at all within a notification's window: change anyway, so that a flap
            // always ends.
            let _ = tokio::time::timeout(alertmanager::window(), answered.wait_for(|a| *a)).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    match change {
        Change::Health { site, healthy } => {
            let endpoints = shaped.load_balancers.get(site).cloned().unwrap_or_default();
            let state = if healthy { "HEALTHY" } else { "UNHEALTHY" };
            lab.set_health(&endpoints, state).await
        }
        Change::PreferredFlap { down_ms } => {
            lab.ispn_down(A, true).await?;
            tokio::time::sleep(Duration::from_millis(down_ms)).await;
            lab.ispn_down(A, false).await
        }
        Change::PreferredBack => lab.ispn_down(A, false).await,
    }
}

/// Keeps `size` unauthenticated requests in flight for `for_ms`; returns how many were sent
/// and how many of them were throttled (429).
async fn flood(lab: Arc<Lab>, delay_ms: u64, size: usize, for_ms: u64) -> (u32, u32) {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let until = Instant::now() + Duration::from_millis(for_ms);
    let body = super::lab::site_offline(&lab.info.accelerator_dns, &[(A, B)])
        .to_string()
        .into_bytes();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..size {
        let lab = Arc::clone(&lab);
        let body = body.clone();
        senders.spawn(async move {
            let (mut sent, mut throttled) = (0, 0);
            while Instant::now() < until {
                let answer = lab
                    .post(
                        &[("content-type", "application/json".to_string())],
                        body.clone(),
                    )
                    .await;
                sent += 1;
                throttled += u32::from(matches!(answer, Ok(Answer { status: 429, .. })));
            }
            (sent, throttled)
        });
    }
    let (mut sent, mut throttled) = (0, 0);
    while let Some(done) = senders.join_next().await {
        if let Ok((s, t)) = done {
            sent += s;
            throttled += t;
        }
    }
    (sent, throttled)
}

/// Applies a scenario's inputs and noise, sends its reports, and checks the invariants.
pub async fn run_round(lab: &Arc<Lab>, scenario: &Scenario) -> anyhow::Result<RoundOutcome> {
    lab.reset().await?;
    let inputs = &scenario.inputs;
    let noise = &scenario.noise;
    let shaped = lab.shaped(inputs.shape)?.clone();
    match inputs.condition {
        Condition::Healthy => {}
        Condition::Down(site) => lab.ispn_down(site, true).await?,
        Condition::Unhealthy(site) => {
            let endpoints = shaped.load_balancers.get(site).cloned().unwrap_or_default();
            lab.set_health(&endpoints, "UNHEALTHY").await?;
        }
    }
    if inputs.partitioned {
        lab.partition(true).await?;
    }
    for (operation, error, count) in &noise.ga_faults {
        lab.ga_fault(json!({"operation": operation, "error": error, "count": count}))
            .await?;
    }
    if let (Some((error, count)), Some(group)) = (noise.second_group_fault, shaped.groups.get(1)) {
        lab.ga_fault(json!({
            "operation": "RemoveEndpoints",
            "error": error,
            "count": count,
            "endpoint_group_arn": group,
        }))
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
    for (operation, status, error, count) in &noise.record_faults {
        lab.aws_fault(json!({
            "service": "dynamodb",
            "operation": operation,
            "status": status,
            "error": error,
            "count": count,
        }))
        .await?;
    }
    if let Some(from) = noise.sync_from {
        lab.start_sync(from).await?;
    }

    let (answered, watching) = watch::channel(false);
    let answered = Arc::new(answered);
    let changing = inputs.change.map(|(change, trigger)| {
        tokio::spawn(change_inputs(
            Arc::clone(lab),
            shaped.clone(),
            change,
            trigger,
            watching,
        ))
    });
    let flooding = noise.flood.map(|(size, for_ms)| {
        let first = noise.reports.iter().map(|(_, d)| *d).min().unwrap_or(0);
        tokio::spawn(flood(Arc::clone(lab), first, size, for_ms))
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (reporter, delay)) in noise.reports.iter().enumerate() {
        tasks.spawn(send_as_alertmanager(
            Arc::clone(lab),
            shaped.dns.clone(),
            reporter,
            *delay,
            Arc::clone(&answered),
            scenario.seed ^ scenario.round ^ ((index as u64) << 32),
        ));
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined?);
    }
    if let Some(changing) = changing {
        changing.await??;
    }
    let (flood_sent, flood_throttled) = match flooding {
        Some(flooding) => flooding.await?,
        None => (0, 0),
    };
    let mut outcome = check(lab, &shaped, scenario, &results).await?;
    outcome.flood_sent = flood_sent;
    outcome.flood_throttled = flood_throttled;
    Ok(outcome)
}

fn site(name: &str) -> anyhow::Result<SiteName> {
    SiteName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))
}

/// After every round: exactly one decision record, and it is one the rule allows for the
/// round's inputs; every report that answered 2xx carried out that decision; once one did, the
/// fence is complete (in every listener the loser takes no traffic and somebody does, the
/// survivor takes traffic, its backup to the loser is offline for every cache); no group was
/// emptied; every report ended 2xx, or lost to a 429 that Alertmanager does not retry.
///
/// A round whose every report was lost to a 429 (the flood took the function's whole reserved
/// concurrency) asked the fence nothing it could finish: Alertmanager sends again at the
/// group's next flush (docs/aws-behaviours.md #50). It must still leave one decision at most,
/// an allowed one whose survivor takes traffic, and no group emptied.
async fn check(
    lab: &Lab,
    shaped: &Shaped,
    scenario: &Scenario,
    results: &[ReportResult],
) -> anyhow::Result<RoundOutcome> {
    // A fault no fence used up would hit the lab's own reads.
    lab.ga_fault(json!({"reset": true})).await?;
    let mut outcome = RoundOutcome::default();
    let mut violations = Vec::new();

    let accelerator = AcceleratorDns::parse(&shaped.dns).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = split_brain_key(&accelerator, &site(A)?, &site(B)?);
    let all_throttled =
        !results.is_empty() && results.iter().all(|result| result.status == Some(429));
    outcome.all_reports_throttled = all_throttled;
    let records = lab.decisions().list().await?;
    if records.len() != 1 && !(all_throttled && records.is_empty()) {
        let keys: Vec<&str> = records.iter().map(|r| r.split_brain.as_str()).collect();
        violations.push(format!(
            "{} decision records, not one: {keys:?}",
            records.len()
        ));
    }
    let record = lab.decisions().get(&key).await?;
    let topology = lab.topology(shaped).await?;

    let mut delivered = 0;
    for result in results {
        for status in &result.statuses {
            let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            *outcome.answers.entry(status).or_default() += 1;
        }
        outcome.attempts += result.attempts;
        outcome.retried += result.attempts.saturating_sub(1);
        let Some(answer) = result.last.as_ref().filter(|_| result.status.is_some()) else {
            violations.push(format!(
                "report from {} got no answer in {} attempt(s): {}",
                result.reporter,
                result.attempts,
                result.error.as_deref().unwrap_or("?")
            ));
            continue;
        };
        match answer.status {
            200..=299 => delivered += 1,
            429 => {
                outcome.lost_to_429 += 1;
                continue;
            }
            status => {
                violations.push(format!(
                    "report from {} ended with {status} after {} attempt(s): {}",
                    result.reporter, result.attempts, answer.body
                ));
                continue;
            }
        }
        // A 2xx carried out the recorded decision.
        let alert = &answer.body["alerts"][0];
        let carried = record.as_ref().is_some_and(|r| {
            alert["outcome"] == "done"
                && alert["survivor"] == r.survivor.as_str()
                && alert["fenced"] == r.loser.as_str()
                && alert["decision"]["decision_id"] == r.decision_id.as_str()
        });
        if !carried {
            violations.push(format!(
                "report from {} answered {} but did not carry out the recorded decision {:?}: {}",
                result.reporter,
                answer.status,
                record.as_ref().map(|r| (
                    r.survivor.as_str(),
                    r.loser.as_str(),
                    r.decision_id.as_str()
                )),
                alert
            ));
        }
    }
    if delivered == 0 && !all_throttled {
        violations.push(format!(
            "no report finished the fence ({} lost to 429)",
            outcome.lost_to_429
        ));
    }

    match &record {
        // Nobody asked the fence anything it could answer: the next flush will.
        None if all_throttled => {}
        None => violations.push(format!("no decision recorded under {key}")),
        Some(record) => {
            let decided = (record.survivor.as_str(), record.loser.as_str());
            outcome.decided = Some((decided.0.to_owned(), decided.1.to_owned()));
            let allowed = allowed(&scenario.inputs);
            if !allowed.contains(&decided) {
                violations.push(format!(
                    "decided {} survives over {}, the rule allows {allowed:?}",
                    decided.0, decided.1
                ));
            }
            // A fence whose last report was throttled mid-way is finished by the next flush's.
            if !all_throttled {
                for violation in topology.check_fenced(&record.survivor, &record.loser) {
                    violations.push(format!("traffic: {violation}"));
                }
            }
            if !topology.site_takes_traffic(&record.survivor) {
                violations.push(format!("survivor {} takes no traffic", record.survivor));
            }
            if delivered > 0 {
                let backups = lab.backups(record.survivor.as_str()).await?;
                let caches = &lab.info.infinispan.caches;
                let offline = caches
                    .iter()
                    .all(|cache| backups.get(cache).is_some_and(|b| b == "offline"));
                if !offline {
                    violations.push(format!(
                        "a report answered 2xx but {}'s backups to {} are {backups:?}",
                        record.survivor, record.loser
                    ));
                }
            }
        }
    }
    for group in &topology.groups {
        if group.endpoints.is_empty() {
            violations.push(format!("endpoint group {} was emptied", group.arn));
        }
    }
    outcome.violations = violations;
    Ok(outcome)
}

/// One shape's share of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShapeFigures {
    pub rounds: u64,
    pub rounds_with_changes: u64,
    pub reports_sent: u64,
    pub violations: u64,
}

/// Figures of a whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub rounds: u64,
    pub worlds: usize,
    pub reserved_concurrency: usize,
    pub reports_sent: u64,
    pub retries_after_5xx: u64,
    /// Notifications that ended on a 429 (never retried).
    pub reports_lost_to_429: u64,
    /// Rounds whose every report ended on a 429 (held to "nothing half done" instead).
    #[serde(default)]
    pub rounds_all_reports_throttled: u64,
    /// Every attempt's answer: its status, or `none`.
    pub answers: BTreeMap<String, u64>,
    pub rounds_with_changes: u64,
    pub rounds_with_flood: u64,
    pub flood_requests: u64,
    pub flood_throttled: u64,
    /// DynamoDB calls the fences made through the AWS front (faulted ones included).
    pub record_calls: BTreeMap<String, u64>,
    pub violations: u64,
    pub by_shape: BTreeMap<String, ShapeFigures>,
    /// Inputs that do not change during the round → the distinct decisions seen for them.
    pub outcomes_by_inputs: BTreeMap<String, BTreeSet<String>>,
    /// Unchanging inputs seen with more than one decision (must stay 0).
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
        reserved_concurrency: deployed_reserved_concurrency(),
        ..Figures::default()
    };
    let mut finished = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        finished.extend(joined??);
    }
    finished.sort_by_key(|(scenario, _)| scenario.round);
    for (scenario, outcome) in finished {
        let inputs = &scenario.inputs;
        figures.rounds += 1;
        figures.reports_sent += u64::from(outcome.attempts);
        figures.retries_after_5xx += u64::from(outcome.retried);
        figures.reports_lost_to_429 += u64::from(outcome.lost_to_429);
        figures.rounds_all_reports_throttled += u64::from(outcome.all_reports_throttled);
        for (status, count) in &outcome.answers {
            *figures.answers.entry(status.clone()).or_default() += count;
        }
        figures.flood_requests += u64::from(outcome.flood_sent);
        figures.flood_throttled += u64::from(outcome.flood_throttled);
        figures.rounds_with_flood += u64::from(outcome.flood_sent > 0);
        figures.rounds_with_changes += u64::from(inputs.change.is_some());
        let shape = figures
            .by_shape
            .entry(inputs.shape.name().to_owned())
            .or_default();
        shape.rounds += 1;
        shape.rounds_with_changes += u64::from(inputs.change.is_some());
        shape.reports_sent += u64::from(outcome.attempts);
        if inputs.change.is_none() {
            figures
                .outcomes_by_inputs
                .entry(inputs.key())
                .or_default()
                .insert(outcome.decided.as_ref().map_or_else(
                    || "no decision".to_owned(),
                    |(survivor, _)| format!("{survivor} survives"),
                ));
        }
        if !outcome.violations.is_empty() {
            figures.violations += 1;
            shape.violations += 1;
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
    for lab in labs {
        let calls = lab.aws_calls().await?;
        for (operation, count) in calls.by_operation {
            if operation.starts_with("dynamodb.") {
                *figures.record_calls.entry(operation).or_default() += count;
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

    fn inputs(condition: Condition, reporters: &[&'static str], change: Option<Change>) -> Inputs {
        Inputs {
            shape: Shape::OneGroup,
            condition,
            partitioned: false,
            reporters: reporters.iter().copied().collect(),
            change: change.map(|c| (c, Trigger::FirstAnswer(0))),
        }
    }

    #[test]
    fn the_rule_the_suite_holds_the_fence_to() {
        type Row = (
            Condition,
            &'static [&'static str],
            (&'static str, &'static str),
        );
        let table: &[Row] = &[
            (Condition::Healthy, &[A, B], (A, B)),
            (Condition::Healthy, &[B], (A, B)),
            (Condition::Down(A), &[A, B], (B, A)),
            (Condition::Down(A), &[A], (B, A)),
            (Condition::Down(B), &[B], (A, B)),
            // An UNHEALTHY reporter is not skipped: the healthy site survives whoever reports.
            (Condition::Unhealthy(A), &[A], (B, A)),
            (Condition::Unhealthy(A), &[A, B], (B, A)),
            (Condition::Unhealthy(B), &[A], (A, B)),
        ];
        for (condition, reporters, outcome) in table {
            assert_eq!(
                allowed(&inputs(*condition, reporters, None)),
                BTreeSet::from([*outcome]),
                "{condition} {reporters:?}"
            );
        }
    }

    #[test]
    fn a_change_during_the_round_allows_the_outcome_before_and_after_it() {
        type Row = (Condition, Change, &'static [(&'static str, &'static str)]);
        let table: &[Row] = &[
            (
                Condition::Healthy,
                Change::Health {
                    site: A,
                    healthy: false,
                },
                &[(A, B), (B, A)],
            ),
            (
                Condition::Healthy,
                Change::Health {
                    site: B,
                    healthy: false,
                },
                &[(A, B)],
            ),
            (
                Condition::Unhealthy(A),
                Change::Health {
                    site: A,
                    healthy: true,
                },
                &[(A, B), (B, A)],
            ),
            (
                Condition::Healthy,
                Change::PreferredFlap { down_ms: 500 },
                &[(A, B), (B, A)],
            ),
            // Health decides before the probe: a flap changes nothing.
            (
                Condition::Unhealthy(B),
                Change::PreferredFlap { down_ms: 500 },
                &[(A, B)],
            ),
            (Condition::Down(A), Change::PreferredBack, &[(A, B), (B, A)]),
            (
                Condition::Down(B),
                Change::Health {
                    site: B,
                    healthy: false,
                },
                &[(A, B)],
            ),
        ];
        for (condition, change, outcomes) in table {
            let got = allowed(&inputs(*condition, &[A, B], Some(*change)));
            let want: BTreeSet<_> = outcomes.iter().copied().collect();
            assert_eq!(got, want, "{condition}, {change}");
        }
    }

    #[test]
    fn scenarios_are_reproducible_and_try_every_shape_and_change() {
        let a = scenario(7, 42);
        let b = scenario(7, 42);
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.noise.reports, b.noise.reports);
        let rounds: Vec<Scenario> = (0..400).map(|r| scenario(7, r)).collect();
        let kinds: BTreeSet<_> = rounds.iter().map(|s| s.inputs.condition).collect();
        assert!(kinds.len() >= 5, "every condition is drawn: {kinds:?}");
        let shapes: BTreeSet<_> = rounds.iter().map(|s| s.inputs.shape).collect();
        assert_eq!(shapes.len(), Shape::ALL.len());
        let changes: BTreeSet<_> = rounds
            .iter()
            .filter_map(|s| s.inputs.change)
            .map(|(change, _)| match change {
                Change::Health { .. } => "health",
                Change::PreferredFlap { .. } => "flap",
                Change::PreferredBack => "back",
            })
            .collect();
        assert_eq!(changes.len(), 3, "every kind of change is drawn");
        assert!(rounds.iter().any(|s| s.noise.flood.is_some()));
        assert!(rounds.iter().any(|s| s.noise.second_group_fault.is_some()));
        assert!(rounds.iter().any(|s| !s.noise.record_faults.is_empty()));
        // A flood alone never takes every slot: a report is throttled only beside another.
        assert!(
            rounds
                .iter()
                .filter_map(|s| s.noise.flood)
                .all(|(size, _)| size < deployed_reserved_concurrency())
        );
    }
}
