//! One invocation: authenticate, read the webhook, decide and act per alert, answer.
//!
//! All I/O goes through [`World`], so the whole request path runs in tests against a fake
//! world; [`crate::live::LiveWorld`] is the real one.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_topology::decisions::{
    Completion, DecisionRecord, Mode, Recorded, Standing, split_brain_key,
};
use aws_topology::globalaccelerator::{DEFAULT_WEIGHT, Health, Removal, Topology, TrafficDial};
use common::alertmanager::{Alert, AlertStatus, FiringSiteOffline, Webhook};
use common::auth::{self, AuthOutcome, BasicCredentials};
use common::outcome::Disposition;
use common::site::{AcceleratorDns, SiteName};
use http::HeaderMap;
use ispn_client::CacheResults;
use serde::Serialize;

use crate::decide::{
    Choice, Liveness, Policy, SiteState, TrafficPlan, TrafficStep, Unfenceable, choose, site_state,
    traffic_plan,
};

/// A failed call, already classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub disposition: Disposition,
    pub message: String,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            disposition: Disposition::Transient,
            message: message.into(),
        }
    }
    pub fn fatal(message: impl Into<String>) -> Failure {
        Failure {
            disposition: Disposition::Fatal,
            message: message.into(),
        }
    }
}

/// Everything the function reads or changes outside itself.
pub trait World: Sync {
    fn webhook_credentials(&self)
    -> impl Future<Output = Result<BasicCredentials, Failure>> + Send;
    /// The webhook credentials read again from the secret store after `rejected` failed a
    /// request's check (a rotation takes effect at once); `None` when there is nothing newer
    /// (or a re-read is not allowed yet: rate-limited).
    fn reread_webhook_credentials(
        &self,
        rejected: &BasicCredentials,
    ) -> impl Future<Output = Result<Option<BasicCredentials>, Failure>> + Send;
    /// The accelerator's topology as it is now; `None` when there is no such accelerator.
    fn topology(
        &self,
        accelerator: &AcceleratorDns,
    ) -> impl Future<Output = Result<Option<Topology>, Failure>> + Send;
    /// Reads both secrets from the secret store, not from a cache, and keeps what it read (a
    /// preflight: a changed password shows up now).
    fn read_secrets_afresh(&self) -> impl Future<Output = Result<(), Failure>> + Send;
    /// The state of `site`'s backups to every remote site (`online`, `offline`, `mixed`, by
    /// remote), read with the fence's credentials: the health probe needs none, so this is
    /// what shows that Infinispan accepts them (a preflight).
    fn backup_status(
        &self,
        site: &SiteName,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, Failure>> + Send;
    /// Drops what is cached about the accelerator, after a failed or inconsistent call.
    fn forget_topology(&self, accelerator: &AcceleratorDns);
    /// A short, direct health probe of a site's Infinispan: a verdict ([`Liveness`]), or a
    /// failure when the probe itself is misconfigured (TLS trust, credentials, URL), which
    /// must never read as "the site is down".
    fn probe(&self, site: &SiteName) -> impl Future<Output = Result<Liveness, Failure>> + Send;
    /// Creates `proposal` as the split-brain's decision unless one stands (see
    /// [`aws_topology::decisions`]); `replacing` names a stale record to replace.
    fn record(
        &self,
        proposal: &DecisionRecord,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<Recorded, Failure>> + Send;
    /// The decision record of `split_brain`, if any.
    fn recorded(
        &self,
        split_brain: &str,
    ) -> impl Future<Output = Result<Option<DecisionRecord>, Failure>> + Send;
    fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<Removal, Failure>> + Send;
    fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Takes `site`'s backup to `remote` offline for every configured cache; an error unless
    /// every one of them answered ok.
    fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> impl Future<Output = Result<CacheResults, Failure>> + Send;
    /// Best effort and bounded in time: a failure is logged, never returned.
    fn notify(&self, subject: &str, record: &serde_json::Value) -> impl Future<Output = ()> + Send;
    /// Adds `completion` to the decision `decision_id` of `split_brain` (for `site history`):
    /// after the fence's work, bounded by the caller, a failure only logged. A world that keeps
    /// no completions does nothing.
    fn complete(
        &self,
        _split_brain: &str,
        _decision_id: &str,
        _completion: &Completion,
    ) -> impl Future<Output = Result<(), Failure>> + Send {
        async { Ok(()) }
    }
}

/// What the handler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub alert_name: String,
    pub policy: Policy,
    /// How long Global Accelerator conflicts and throttling are retried.
    pub retry_budget: Duration,
    /// See [`aws_topology::decisions::DEFAULT_STALE_AFTER`].
    pub decision_stale_after: Duration,
    /// [`Mode::Monitor`]: decide, record (marked monitor), notify and report the plan, change
    /// nothing. Applied here, after the pure decision, which is the same in both modes.
    pub mode: Mode,
}

/// The invocation the request arrived in.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id: the decision id of a decision this invocation records.
    pub request_id: String,
    /// When the fence's work stops, finished or not (a 5xx then: the resend goes on from
    /// there). See [`crate::event`].
    pub deadline: Instant,
    /// When the work after the answer (notifications, the completion) must be over: a little
    /// before the invocation's end ([`crate::event::ANSWER_RESERVE`]).
    pub answer_by: Instant,
}

/// Runs `work` until `deadline`; `None` when the deadline came first.
pub(crate) async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work)
        .await
        .ok()
}

/// What happened to one alert of the notification.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub index: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    pub status: AlertStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorDns>,
    pub outcome: Disposition,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survivor: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fenced: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<GroupResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dials_closed: Vec<DialClosed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfenceable: Vec<Unfenceable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_offline: Option<BackupOffline>,
    /// `monitor` when the function runs in monitor mode (absent: enforce).
    #[serde(skip_serializing_if = "is_enforce")]
    pub mode: Mode,
    /// Monitor mode: what this report would have done. None of it was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<Planned>,
    /// How long each step took, in milliseconds: where a slow fence spent its time.
    #[serde(skip_serializing_if = "StepTimes::is_empty")]
    pub step_ms: StepTimes,
    /// When the alert started firing (its `startsAt`, milliseconds since the epoch): how long
    /// an incomplete fence has been waiting, for the metrics. Not part of the record.
    #[serde(skip)]
    pub firing_since_ms: Option<u64>,
    /// When the fence's work ended (milliseconds since the epoch), for its completion.
    #[serde(skip)]
    pub completed_at_ms: Option<u64>,
}

fn is_enforce(mode: &Mode) -> bool {
    *mode == Mode::Enforce
}

/// What a monitor-mode fence would have done, in the order it would have done it: the
/// accelerator's changes, then the take-offline.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Each `RemoveEndpoints` and each traffic dial set to 0, per endpoint group.
    pub traffic: Vec<TrafficStep>,
    /// The survivor's backup to the loser that would go offline (every configured cache).
    pub take_offline: PlannedOffline,
    /// Listeners the fence could not take the loser out of (it would answer 5xx naming them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfenceable: Vec<Unfenceable>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedOffline {
    pub site: SiteName,
    pub remote: SiteName,
}

/// Milliseconds per step of a fence; a step not reached is absent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepTimes {
    /// The accelerator read, with the probe beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<f64>,
    /// Recording (or adopting) the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decide: Option<f64>,
    /// The accelerator's changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    /// The take-offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<f64>,
}

impl StepTimes {
    fn is_empty(&self) -> bool {
        self.read.is_none() && self.decide.is_none()
    }
}

fn since_ms(start: Instant) -> Option<f64> {
    Some((start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0)
}

/// What this report read before deciding: kept in the decision record.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub reporter: SiteState,
    pub site: SiteState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Liveness>,
    /// Each endpoint group: its listener, dial and endpoints (site, weight, health).
    pub groups: Vec<GroupFacts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupFacts {
    pub arn: String,
    pub listener: String,
    pub traffic_dial: TrafficDial,
    pub endpoints: Vec<(String, Option<SiteName>, i32, Health)>,
}

impl Facts {
    fn read(topology: &Topology, alert: &FiringSiteOffline, probe: Option<Liveness>) -> Facts {
        Facts {
            reporter: site_state(topology, &alert.reporter),
            site: site_state(topology, &alert.site),
            probe,
            groups: topology
                .groups
                .iter()
                .map(|g| GroupFacts {
                    arn: g.arn.clone(),
                    listener: g.listener_arn.clone(),
                    traffic_dial: g.traffic_dial,
                    endpoints: g
                        .endpoints
                        .iter()
                        .map(|e| {
                            (
                                e.id.clone(),
                                e.site.clone(),
                                e.weight.unwrap_or(DEFAULT_WEIGHT),
                                e.health,
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The decision this report carried out.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRef {
    pub split_brain: String,
    pub decision_id: String,
    pub decided_at_ms: u64,
    /// `recorded`: this report decided; `adopted`: an earlier report's decision stood.
    pub how: &'static str,
    /// Why an earlier record was replaced, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// The mode of the record: a monitor-mode report may adopt an enforce decision.
    pub mode: Mode,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    pub group_arn: String,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_gone: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialClosed {
    pub group_arn: String,
    pub previous: TrafficDial,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupOffline {
    pub site: SiteName,
    pub remote: SiteName,
    pub caches: CacheResults,
}

/// The answer to one invocation, also its decision record (logged once, never with a secret).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: u16,
    pub outcome: Disposition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong inside, for the log only: an unauthenticated caller is never told (it
    /// may name an account, a role or a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub alerts: Vec<AlertReport>,
    /// The answer to a preflight request ([`crate::preflight`]); such a request has no alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::preflight::Preflight>,
    /// What is left to do once the answer has gone.
    #[serde(skip)]
    pub after_answer: AfterAnswer,
}

impl Report {
    pub(crate) fn rejected(outcome: Disposition, status: u16, reason: impl Into<String>) -> Report {
        Report {
            status,
            outcome,
            reason: Some(reason.into()),
            detail: None,
            alerts: Vec::new(),
            preflight: None,
            after_answer: AfterAnswer::default(),
        }
    }

    /// The webhook secret could not be read: a status the sender retries, the cause kept for
    /// the log only (the caller is not authenticated yet).
    fn credentials_unavailable(failure: Failure) -> Report {
        let mut decision = Report::rejected(
            failure.disposition,
            failure.disposition.http_status(),
            "cannot check credentials now",
        );
        decision.detail = Some(failure.message);
        decision
    }

    /// An event Lambda could not have written (see [`crate::event`]).
    pub fn bad_event(reason: String) -> Report {
        Report::rejected(Disposition::BadInput, 400, reason)
    }

    /// The whole record, as logged.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({"status": self.status, "error": e.to_string()}))
    }

    /// The HTTP response: the record as JSON without the internal detail, and
    /// `WWW-Authenticate` on a 401.
    pub fn http_response(&self) -> http::Response<String> {
        let mut body = self.to_json();
        if let Some(object) = body.as_object_mut() {
            object.remove("detail");
        }
        let mut response = http::Response::new(body.to_string());
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if self.status == 401 {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(auth::WWW_AUTHENTICATE),
            );
        }
        response
    }
}

/// Handles one webhook request, given its headers and its (already base64-decoded) body.
pub async fn handle<W: World>(
    world: &W,
    settings: &Settings,
    invocation: &Invocation,
    headers: &HeaderMap,
    body: &[u8],
) -> Report {
    let read = until(invocation.deadline, world.webhook_credentials())
        .await
        .unwrap_or_else(|| Err(Failure::transient("reading the webhook secret timed out")));
    let credentials = match read {
        Ok(credentials) => credentials,
        Err(failure) => {
            return Report::credentials_unavailable(failure);
        }
    };
    let header = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    if let AuthOutcome::Unauthorized(failure) = auth::check_basic(header, &credentials) {
        // A password rotated since the secret was cached: read it again (rate-limited) and
        // check once more, so a rotation takes effect in seconds and the old password stops
        // working as soon as the new one is read.
        let fresh = if failure.password_may_be_rotated() {
            let reread = until(
                invocation.deadline,
                world.reread_webhook_credentials(&credentials),
            )
            .await
            .unwrap_or_else(|| {
                Err(Failure::transient(
                    "re-reading the webhook secret timed out",
                ))
            });
            match reread {
                Ok(fresh) => fresh,
                Err(reread) => {
                    return Report::credentials_unavailable(reread);
                }
            }
        } else {
            None
        };
        let accepted = fresh.is_some_and(|fresh| {
            matches!(auth::check_basic(header, &fresh), AuthOutcome::Authorized)
        });
        if !accepted {
            return Report::rejected(Disposition::Unauthorized, 401, failure.reason());
        }
    }
    if let Some(content_type) = headers.get(http::header::CONTENT_TYPE)
        && !is_json(content_type.as_bytes())
    {
        return Report::rejected(
            Disposition::BadInput,
            415,
            "Content-Type must be application/json",
        );
    }
    if headers.contains_key(crate::preflight::HEADER) {
        return crate::preflight::answer(world, settings, invocation, body).await;
    }
    let webhook = match Webhook::parse(body) {
        Ok(webhook) => webhook,
        Err(err) => {
            return Report::rejected(Disposition::BadInput, err.http_status(), err.to_string());
        }
    };

    let mut alerts = Vec::with_capacity(webhook.alerts.len());
    for (index, alert) in webhook.alerts.iter().enumerate() {
        alerts.push(handle_alert(world, settings, invocation, index, alert).await);
    }
    let outcome = Disposition::most_severe(alerts.iter().map(|a| a.outcome));
    let reason = alerts
        .is_empty()
        .then(|| "no alerts in the notification".to_owned());
    let after_answer = AfterAnswer {
        notifications: alerts.iter().filter_map(notification).collect(),
        completions: alerts.iter().filter_map(pending_completion).collect(),
        invocation_ends: Some(invocation.answer_by),
    };
    Report {
        status: outcome.http_status(),
        outcome,
        reason,
        detail: None,
        alerts,
        preflight: None,
        after_answer,
    }
}

fn is_json(content_type: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(content_type) else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

async fn handle_alert<W: World>(
    world: &W,
    settings: &Settings,
    invocation: &Invocation,
    index: usize,
    alert: &Alert,
) -> AlertReport {
    let mut report = AlertReport {
        index,
        fingerprint: alert.fingerprint.clone(),
        alertname: alert.alertname().map(str::to_owned),
        status: alert.status,
        reporter: None,
        site: None,
        accelerator: None,
        outcome: Disposition::Ignored,
        reason: String::new(),
        facts: None,
        decision: None,
        survivor: None,
        fenced: None,
        rule: None,
        removed: Vec::new(),
        dials_closed: Vec::new(),
        unfenceable: Vec::new(),
        backup_offline: None,
        mode: settings.mode,
        would: None,
        step_ms: StepTimes::default(),
        firing_since_ms: alert.starts_at_ms(),
        completed_at_ms: None,
    };
    if alert.alertname() != Some(settings.alert_name.as_str()) {
        report.reason = format!("not a {} alert", settings.alert_name);
        return report;
    }
    if alert.status != AlertStatus::Firing {
        report.reason =
            "only firing alerts act; bringing a site back is an operator action".to_owned();
        return report;
    }
    let firing = match FiringSiteOffline::from_alert(alert) {
        Ok(firing) => firing,
        Err(err) => {
            report.outcome = Disposition::BadInput;
            report.reason = err.to_string();
            return report;
        }
    };
    report.reporter = Some(firing.reporter.clone());
    report.site = Some(firing.site.clone());
    report.accelerator = Some(firing.accelerator.clone());
    let outcome = until(
        invocation.deadline,
        fence(world, settings, invocation, &firing, &mut report),
    )
    .await;
    report.completed_at_ms = Some(now_ms());
    report.outcome = match outcome {
        Some(outcome) => outcome,
        None => {
            report.reason = format!(
                "out of time before the fence was done (the resend carries on){}{}",
                if report.reason.is_empty() {
                    ""
                } else {
                    "; last: "
                },
                report.reason
            );
            Disposition::Transient
        }
    };
    report
}

/// The notification a report sends, if any: what a fence changed, or (monitor mode) what it
/// would have changed, with the report as the message.
fn notification(report: &AlertReport) -> Option<PendingNotification> {
    let changed = report.removed.iter().any(|g| !g.removed.is_empty())
        || !report.dials_closed.is_empty()
        || report.backup_offline.is_some();
    // Monitor mode tells what it would have done as enforce mode tells what it did: the
    // rehearsal shows that the notification path works too.
    let would_fence = report.would.is_some() && report.outcome == Disposition::Done;
    if !changed && !would_fence {
        return None;
    }
    let fenced = report.fenced.as_ref().map_or("?", SiteName::as_str);
    let survivor = report.survivor.as_ref().map_or("?", SiteName::as_str);
    let subject = if would_fence {
        format!("sitefence MONITOR: would fence {fenced}, {survivor} survives (nothing changed)")
    } else {
        format!(
            "sitefence: {fenced} fenced, {survivor} survives ({:?})",
            report.outcome
        )
    };
    Some(PendingNotification {
        subject,
        record: serde_json::to_value(report).unwrap_or_default(),
    })
}

/// How long recording the completions may take: they are history, never worth a timeout.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(1);

/// What an invocation does once its answer is on its way: the notifications of what it
/// changed, and recording each complete fence's completion for `site history`. Lambda returns
/// the answer when the runtime posts it and keeps the environment (and the invocation's time)
/// until the runtime asks for the next event (docs/aws-behaviours.md #91), so this costs the
/// sender no round trip; the bootstrap runs it in between. Whoever handles a report without a runtime runs it before returning
/// ([`crate::event::handle_event`]).
#[derive(Debug, Clone, Default)]
pub struct AfterAnswer {
    notifications: Vec<PendingNotification>,
    completions: Vec<PendingCompletion>,
    /// Shortly before the invocation's own end: nothing here may outlive it.
    invocation_ends: Option<Instant>,
}

#[derive(Debug, Clone)]
struct PendingNotification {
    subject: String,
    record: serde_json::Value,
}

#[derive(Debug, Clone)]
struct PendingCompletion {
    split_brain: String,
    decision_id: String,
    completion: Completion,
}

impl AfterAnswer {
    pub fn is_empty(&self) -> bool {
        self.completions.is_empty() && self.notifications.is_empty()
    }

    /// Sends each notification and adds each completion to its decision, all at once,
    /// bounded; a failure is logged and changes nothing (the answer has gone).
    pub async fn run<W: World>(self, world: &W) {
        if self.is_empty() {
            return;
        }
        let ends = self.invocation_ends;
        let notifications = self.notifications.iter().map(|pending| async move {
            let sent = match ends {
                Some(ends) => until(ends, world.notify(&pending.subject, &pending.record))
                    .await
                    .is_some(),
                None => {
                    world.notify(&pending.subject, &pending.record).await;
                    true
                }
            };
            if !sent {
                tracing::warn!(
                    event = "notification_failed",
                    error = "no time left to notify"
                );
            }
        });
        let mut bound = Instant::now() + COMPLETION_TIMEOUT;
        if let Some(ends) = ends {
            bound = bound.min(ends);
        }
        let writes = self.completions.iter().map(|pending| async move {
            let written = until(
                bound,
                world.complete(&pending.split_brain, &pending.decision_id, &pending.completion),
            )
            .await;
            match written {
                Some(Ok(())) => {}
                Some(Err(failure)) => {
                    tracing::warn!(event = "completion_not_recorded", decision_id = %pending.decision_id, error = %failure.message);
                }
                None => {
                    tracing::warn!(event = "completion_not_recorded", decision_id = %pending.decision_id, error = "timed out");
                }
            }
        });
        tokio::join!(
            common::join::join_all(notifications),
            common::join::join_all(writes)
        );
    }
}

/// The completion of this report's decision once its fence is complete: when, what was done,
/// who reported it.
fn pending_completion(report: &AlertReport) -> Option<PendingCompletion> {
    if report.outcome != Disposition::Done {
        return None;
    }
    let (Some(decision), Some(reporter)) = (&report.decision, &report.reporter) else {
        return None;
    };
    // A monitor-mode report that adopted an enforcing decision did none of its steps.
    if decision.mode != report.mode {
        return None;
    }
    Some(PendingCompletion {
        split_brain: decision.split_brain.clone(),
        decision_id: decision.decision_id.clone(),
        completion: Completion {
            completed_at_ms: report.completed_at_ms.unwrap_or_else(now_ms),
            steps: steps_done(report),
            reporters: std::collections::BTreeSet::from([reporter.clone()]),
        },
    })
}

/// What a complete fence's report did, one line per kind of step.
fn steps_done(report: &AlertReport) -> Vec<String> {
    let mut steps = Vec::new();
    if let Some(would) = &report.would {
        steps.push(format!(
            "monitor mode, nothing changed: would have made {} accelerator change(s) and taken {}'s backup to {} offline",
            would.traffic.len(),
            would.take_offline.site,
            would.take_offline.remote
        ));
    }
    let removed: usize = report.removed.iter().map(|g| g.removed.len()).sum();
    let gone: usize = report.removed.iter().map(|g| g.already_gone.len()).sum();
    if removed > 0 {
        steps.push(format!("removed {removed} endpoint(s)"));
    }
    if gone > 0 {
        steps.push(format!("{gone} endpoint(s) already gone"));
    }
    if !report.dials_closed.is_empty() {
        steps.push(format!(
            "closed {} traffic dial(s)",
            report.dials_closed.len()
        ));
    }
    if let Some(backup) = &report.backup_offline {
        steps.push(format!(
            "{}'s backup to {} offline ({} cache(s))",
            backup.site,
            backup.remote,
            backup.caches.0.len()
        ));
    }
    steps
}

/// Milliseconds since the epoch; 0 when the clock reads before it.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads the accelerator with the probe of the preferred site beside it, decides (or adopts
/// the recorded decision), records, then takes the loser out of every listener and the
/// survivor's backup to it offline.
async fn fence<W: World>(
    world: &W,
    settings: &Settings,
    invocation: &Invocation,
    alert: &FiringSiteOffline,
    report: &mut AlertReport,
) -> Disposition {
    // The probe a split-brain needs (both sites alike) goes out with the accelerator read
    // rather than after it, so that it costs no round trip in sequence; when the choice does
    // not need it, it is dropped (a read of Infinispan's health, harmless).
    let mut step = Instant::now();
    let probed_site = settings
        .policy
        .stronger(&alert.reporter, &alert.site)
        .clone();
    let topology_read = world.topology(&alert.accelerator);
    let early_probe = world.probe(&probed_site);
    tokio::pin!(topology_read, early_probe);
    let mut early_liveness = None;
    let topology = loop {
        tokio::select! {
            topology = &mut topology_read => break topology,
            liveness = &mut early_probe, if early_liveness.is_none() => {
                early_liveness = Some(liveness);
            }
        }
    };
    let topology = match topology {
        Ok(Some(topology)) => topology,
        Ok(None) => {
            report.reason = format!("no accelerator named {}", alert.accelerator);
            return Disposition::Ignored;
        }
        Err(failure) => {
            world.forget_topology(&alert.accelerator);
            report.reason = format!("reading the accelerator: {}", failure.message);
            return failure.disposition;
        }
    };
    let mut choice = choose(&topology, alert, &settings.policy, None);
    let mut probe_failure = None;
    let mut probed = None;
    if let Choice::Probe(site) = &choice {
        let liveness = match early_liveness {
            Some(liveness) if *site == probed_site => liveness,
            None if *site == probed_site => early_probe.await,
            _ => world.probe(site).await,
        };
        match liveness {
            Ok(liveness) => {
                probed = Some(liveness);
                choice = choose(&topology, alert, &settings.policy, Some(liveness));
            }
            Err(failure) => probe_failure = Some((site.clone(), failure)),
        }
    }
    report.facts = Some(Facts::read(&topology, alert, probed));
    report.step_ms.read = since_ms(step);
    step = Instant::now();
    let key = split_brain_key(&alert.accelerator, &alert.reporter, &alert.site);
    let now = now_ms();
    // In enforce mode a standing monitor-mode record does not stand (it changed nothing): see
    // `aws_topology::decisions`, "Monitor mode".
    let standing = |record: &DecisionRecord| {
        record.standing_for(settings.mode, &topology, now, settings.decision_stale_after)
    };
    let record = match choice {
        Choice::Reject(reason) => {
            report.reason = reason;
            return Disposition::BadInput;
        }
        Choice::Skip(reason) => {
            report.reason = reason;
            return Disposition::Ignored;
        }
        // The probe could not decide (misconfigured): a standing decision needs no probe;
        // without one this is a loud failure naming the cause, never a verdict.
        Choice::Probe(site) => match (world.recorded(&key).await, probe_failure) {
            (Ok(Some(record)), _) if standing(&record) == Standing::Stands => Adopted {
                record,
                how: "adopted",
                replaced: None,
            },
            (_, Some((probed, failure))) => {
                report.reason = format!(
                    "cannot decide: probing {probed}'s Infinispan is misconfigured: {}",
                    failure.message
                );
                return Disposition::most_severe([failure.disposition, Disposition::Fatal]);
            }
            (_, None) => {
                report.reason = format!("the choice still needs a probe of {site}");
                return Disposition::Fatal;
            }
        },
        Choice::Decided(verdict) => {
            let proposal = DecisionRecord {
                split_brain: key.clone(),
                decision_id: invocation.request_id.clone(),
                survivor: verdict.survivor.clone(),
                loser: verdict.loser.clone(),
                rule: verdict.rule.as_str().to_owned(),
                reporter: alert.reporter.clone(),
                decided_at_ms: now,
                request_id: invocation.request_id.clone(),
                facts: serde_json::to_value(&report.facts).unwrap_or_default(),
                mode: settings.mode,
                closed: None,
            };
            match settle(world, &proposal, standing).await {
                Ok(adopted) => adopted,
                Err(failure) => {
                    report.reason = format!("recording the decision: {}", failure.message);
                    return failure.disposition;
                }
            }
        }
    };
    let Adopted {
        record,
        how,
        replaced,
    } = record;
    report.decision = Some(DecisionRef {
        split_brain: record.split_brain.clone(),
        decision_id: record.decision_id.clone(),
        decided_at_ms: record.decided_at_ms,
        how,
        replaced,
        mode: record.mode,
    });
    report.survivor = Some(record.survivor.clone());
    report.fenced = Some(record.loser.clone());
    report.rule = Some(record.rule.clone());

    report.step_ms.decide = since_ms(step);
    step = Instant::now();
    // Global Accelerator first: the backup goes offline only once no traffic reaches the loser.
    let plan = traffic_plan(&topology, &record.survivor, &record.loser);
    if settings.mode == Mode::Monitor {
        return monitor(report, &record, plan);
    }
    for step in &plan.steps {
        let result = match step {
            TrafficStep::RemoveEndpoints {
                group_arn,
                endpoint_ids,
            } => world
                .remove_endpoints(group_arn, endpoint_ids, invocation.deadline)
                .await
                .map(|done| {
                    report.removed.push(GroupResult {
                        group_arn: group_arn.clone(),
                        removed: done.removed,
                        already_gone: done.already_gone,
                    });
                }),
            TrafficStep::CloseDial {
                group_arn,
                previous,
            } => world
                .set_traffic_dial(group_arn, TrafficDial::CLOSED, invocation.deadline)
                .await
                .map(|()| {
                    report.dials_closed.push(DialClosed {
                        group_arn: group_arn.clone(),
                        previous: *previous,
                    });
                }),
        };
        if let Err(failure) = result {
            world.forget_topology(&alert.accelerator);
            report.reason = format!(
                "taking {} out of the accelerator: {}",
                record.loser, failure.message
            );
            return failure.disposition;
        }
    }
    report.step_ms.traffic = since_ms(step);
    step = Instant::now();
    let offline = world.take_offline(&record.survivor, &record.loser).await;
    report.step_ms.backup = since_ms(step);
    match offline {
        Ok(caches) => {
            report.backup_offline = Some(BackupOffline {
                site: record.survivor.clone(),
                remote: record.loser.clone(),
                caches,
            });
        }
        Err(failure) => {
            report.reason = format!(
                "taking {}'s backup to {} offline: {}",
                record.survivor, record.loser, failure.message
            );
            return failure.disposition;
        }
    }
    if !plan.unfenceable.is_empty() {
        report.unfenceable = plan.unfenceable;
        let listeners: Vec<&str> = report
            .unfenceable
            .iter()
            .map(|u| u.listener_arn.as_str())
            .collect();
        report.reason = format!(
            "{} still takes traffic in listener(s) {} where {} has no endpoint that takes traffic: add {}'s endpoints there, the next resend finishes the fence",
            record.loser,
            listeners.join(", "),
            record.survivor,
            record.survivor
        );
        return Disposition::Fatal;
    }
    let removed: usize = report.removed.iter().map(|g| g.removed.len()).sum();
    report.reason = format!(
        "fenced {}: {removed} endpoint(s) removed, {} dial(s) closed, {}'s backup to it offline",
        record.loser,
        report.dials_closed.len(),
        record.survivor
    );
    Disposition::Done
}

/// Monitor mode: the decision is recorded; report what the fence would do now, and do none of
/// it. Done (2xx) even when the plan has an unfenceable listener: nothing was attempted, and
/// the plan names it for the operator.
fn monitor(report: &mut AlertReport, record: &DecisionRecord, plan: TrafficPlan) -> Disposition {
    let removals: usize = plan
        .steps
        .iter()
        .map(|step| match step {
            TrafficStep::RemoveEndpoints { endpoint_ids, .. } => endpoint_ids.len(),
            TrafficStep::CloseDial { .. } => 0,
        })
        .sum();
    let dials = plan
        .steps
        .iter()
        .filter(|step| matches!(step, TrafficStep::CloseDial { .. }))
        .count();
    let unfenceable = if plan.unfenceable.is_empty() {
        String::new()
    } else {
        format!(
            "; {} listener(s) could not be fenced (would.unfenceable)",
            plan.unfenceable.len()
        )
    };
    report.reason = format!(
        "monitor: would fence {}: remove {removals} endpoint(s), close {dials} dial(s), take {}'s backup to it offline; nothing changed{unfenceable}",
        record.loser, record.survivor,
    );
    report.would = Some(Planned {
        traffic: plan.steps,
        take_offline: PlannedOffline {
            site: record.survivor.clone(),
            remote: record.loser.clone(),
        },
        unfenceable: plan.unfenceable,
    });
    Disposition::Done
}

/// The decision that stands for a split-brain, and how this report came to it.
struct Adopted {
    record: DecisionRecord,
    how: &'static str,
    replaced: Option<String>,
}

/// Records `proposal` unless a decision stands; adopts the standing one otherwise. A closed
/// record is replaced by the create itself; a stale one by a create conditioned on its id, so
/// that two reports replacing it at once still make one decision.
async fn settle<W: World>(
    world: &W,
    proposal: &DecisionRecord,
    standing: impl Fn(&DecisionRecord) -> Standing,
) -> Result<Adopted, Failure> {
    let mut replacing: Option<(String, String)> = None;
    // Bounded: each pass either settles or replaces one record that no longer stands.
    for _ in 0..3 {
        let replaced_id = replacing.as_ref().map(|(id, _)| id.as_str());
        match world.record(proposal, replaced_id).await? {
            Recorded::Created => {
                return Ok(Adopted {
                    record: proposal.clone(),
                    how: "recorded",
                    replaced: replacing.map(|(_, why)| why),
                });
            }
            Recorded::Existing(existing) => match standing(&existing) {
                Standing::Stands => {
                    return Ok(Adopted {
                        record: *existing,
                        how: "adopted",
                        replaced: None,
                    });
                }
                // Closed between the create's check and now: the next create replaces it.
                Standing::Closed => replacing = None,
                Standing::Stale(why) => replacing = Some((existing.decision_id, why)),
            },
        }
    }
    Err(Failure::transient(
        "the decision record kept changing under this report",
    ))
}

impl Report {
    /// The invocation's metrics ([`common::metrics`]): its outcome, the survivor rule of the
    /// first alert that carried out a decision, and, when a fence of this request is not
    /// complete (an alert of ours answered 5xx), how long its alert has been firing at `now_ms`.
    pub fn metrics(&self, duration: Duration, now_ms: u64) -> common::metrics::Invocation<'_> {
        let unfenced = self
            .alerts
            .iter()
            .filter(|alert| {
                alert.site.is_some()
                    && matches!(alert.outcome, Disposition::Transient | Disposition::Fatal)
            })
            .filter_map(|alert| alert.firing_since_ms)
            .map(|since| Duration::from_millis(now_ms.saturating_sub(since)))
            .max();
        common::metrics::Invocation {
            outcome: self.outcome,
            rule: self.alerts.iter().find_map(|alert| alert.rule.as_deref()),
            duration,
            unfenced,
        }
    }
}
