//! One invocation: read the event, decide each record, pin what must be pinned, report.

use aws_topology::route53::{self, HealthChecks, PathChange, PathStep, Route53Error};
use common::mode::Mode;
use common::notify::Notifier;
use common::outcome::Disposition;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::decide::{Ignored, Plan, Policy, Rejected, decide};
use crate::event::{AlarmState, TriggerKind, parse_event};

/// The function's shared state, built once at cold start.
pub struct Failover<S> {
    pub route53: S,
    pub policy: Policy,
    pub notifier: Option<Notifier>,
    /// [`Mode::Monitor`]: decide, read the health check, report and notify the pin it would
    /// make, write nothing.
    pub mode: Mode,
    /// The health checks as this process last saw them: a warm pin writes with the known
    /// `HealthCheckVersion` at once (one round trip), and Route 53 refuses it if anything
    /// changed since (then read, re-plan, write).
    pub known: route53::Known,
}

/// What happened to the health check of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The health check now probes the failed-over path.
    Pinned,
    /// It already did: nothing was written.
    AlreadyFailedOver,
    /// Monitor mode: it would now be pinned (`from_path` → `to_path`); nothing was written.
    WouldPin,
    None,
}

/// One record's line in the decision record and the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordOutcome {
    pub record: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<AlarmState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
    /// The metric of an alarm ignored for watching another metric than `HealthCheckStatus`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    pub disposition: Disposition,
    pub action: Action,
    /// Why nothing was done, in words an operator can grep for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_path: Option<String>,
    /// The `HealthCheckVersion` the write was made against (or found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Writes lost to a concurrent change of the health check and retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordOutcome {
    fn new(record: usize, disposition: Disposition) -> Self {
        Self {
            record,
            alarm: None,
            state: None,
            health_check_id: None,
            namespace: None,
            metric_name: None,
            disposition,
            action: Action::None,
            reason: None,
            from_path: None,
            to_path: None,
            version: None,
            conflicts: None,
            error: None,
        }
    }
}

/// The decision record of one invocation, which is also the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerKind>,
    /// `monitor`: every action is what the function would have done.
    pub mode: Mode,
    pub disposition: Disposition,
    pub records: Vec<RecordOutcome>,
    /// Set when the event as a whole could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    pub fn pinned(&self) -> impl Iterator<Item = &RecordOutcome> {
        self.records.iter().filter(|r| r.action == Action::Pinned)
    }
}

/// The invocation failed in a way a retry can fix; Lambda's asynchronous retry re-delivers the
/// whole event, which is safe because records already handled find their health check pinned.
#[derive(Debug, thiserror::Error)]
#[error("{failed} record(s) failed for now and will be retried: {first}")]
pub struct RetryLater {
    pub failed: usize,
    pub first: String,
}

impl From<RetryLater> for Diagnostic {
    fn from(err: RetryLater) -> Self {
        Diagnostic {
            error_type: "Transient".into(),
            error_message: err.to_string(),
        }
    }
}

impl<S: HealthChecks + Sync> Failover<S> {
    /// Handles every record of the event; a record's failure never stops the others.
    pub async fn invoke(&self, event: &Value) -> Report {
        let trigger = match parse_event(event) {
            Ok(trigger) => trigger,
            Err(err) => {
                return Report {
                    trigger: None,
                    mode: self.mode,
                    disposition: Disposition::BadInput,
                    records: Vec::new(),
                    error: Some(err.to_string()),
                };
            }
        };
        let mut records = Vec::with_capacity(trigger.records.len());
        for (index, record) in trigger.records.into_iter().enumerate() {
            let outcome = match record {
                Ok(notice) => {
                    let decision = decide(&notice, &self.policy);
                    let back_to_ok = notice.state == AlarmState::Ok
                        && matches!(decision, Plan::Ignore(Ignored::NotInAlarm { .. }));
                    let mut outcome = self.handle_decision(index, decision).await;
                    if back_to_ok {
                        self.learn(&notice, &mut outcome).await;
                    }
                    outcome.alarm = Some(notice.alarm_name);
                    outcome.state = Some(notice.state);
                    outcome
                }
                Err(err) => RecordOutcome {
                    reason: Some("unreadable_record".into()),
                    error: Some(err.to_string()),
                    ..RecordOutcome::new(index, Disposition::BadInput)
                },
            };
            records.push(outcome);
        }
        Report {
            trigger: Some(trigger.kind),
            mode: self.mode,
            disposition: Disposition::most_severe(records.iter().map(|r| r.disposition)),
            records,
            error: None,
        }
    }

    async fn handle_decision(&self, index: usize, decision: Plan) -> RecordOutcome {
        let id = match decision {
            Plan::Pin(id) => id,
            Plan::Ignore(ignored) => {
                let ignored_record = RecordOutcome::new(index, Disposition::Ignored);
                return match ignored {
                    Ignored::NotInAlarm { .. } => RecordOutcome {
                        reason: Some("not_in_alarm".into()),
                        ..ignored_record
                    },
                    Ignored::NotInAllowlist { health_check_id } => RecordOutcome {
                        reason: Some("not_in_allowlist".into()),
                        health_check_id: Some(health_check_id),
                        ..ignored_record
                    },
                    Ignored::NotHealthCheckStatus {
                        namespace,
                        metric_name,
                    } => RecordOutcome {
                        reason: Some("not_route53_health_check_status_alarm".into()),
                        namespace,
                        metric_name,
                        ..ignored_record
                    },
                };
            }
            Plan::Reject(rejected) => {
                let (reason, error) = match rejected {
                    Rejected::MetricMathAlarm => ("metric_math_alarm", None),
                    Rejected::CompositeAlarm => ("composite_alarm", None),
                    Rejected::NoHealthCheckDimension => ("no_health_check_dimension", None),
                    Rejected::InvalidHealthCheckId { value } => (
                        "invalid_health_check_id",
                        Some(format!("{value:?} is not a health check id")),
                    ),
                };
                return RecordOutcome {
                    reason: Some(reason.into()),
                    error,
                    ..RecordOutcome::new(index, Disposition::BadInput)
                };
            }
        };
        let health_check_id = Some(id.to_string());
        if self.mode == Mode::Monitor {
            return self.would_pin(index, &id).await;
        }
        let pinned = route53::pin_known(
            &self.route53,
            &self.known,
            &id,
            &self.policy.failed_over_path,
        )
        .await;
        match pinned {
            Ok(PathChange::Changed {
                from,
                to,
                version,
                conflicts,
            }) => RecordOutcome {
                health_check_id,
                action: Action::Pinned,
                from_path: from,
                to_path: Some(to),
                version: Some(version),
                conflicts: Some(conflicts),
                ..RecordOutcome::new(index, Disposition::Done)
            },
            Ok(PathChange::AlreadySet { path, version }) => RecordOutcome {
                health_check_id,
                action: Action::AlreadyFailedOver,
                to_path: Some(path),
                version: Some(version),
                ..RecordOutcome::new(index, Disposition::Done)
            },
            Err(err) => RecordOutcome {
                health_check_id,
                reason: Some(failure_reason(&err).into()),
                error: Some(err.to_string()),
                ..RecordOutcome::new(index, failure_disposition(&err))
            },
        }
    }
}

impl<S: HealthChecks + Sync> Failover<S> {
    /// An `OK` notice: the health check is healthy again (after a failover, the operator has
    /// failed back). Reading it now lets the next `ALARM` pin it with one versioned write; a
    /// failed read changes nothing but that (the next pin reads first).
    async fn learn(&self, notice: &crate::event::AlarmNotice, outcome: &mut RecordOutcome) {
        let Some(id) = crate::decide::watched_health_check(notice, &self.policy) else {
            return;
        };
        outcome.health_check_id = Some(id.to_string());
        match route53::learn(&self.route53, &self.known, &id).await {
            Ok(check) => outcome.version = Some(check.version),
            Err(err) => {
                tracing::info!(health_check_id = %id, error = %err, "health_check_not_read");
            }
        }
    }

    /// Monitor mode: what [`route53::pin`] would do now, from one read of the health check
    /// and the same plan, without its write.
    async fn would_pin(&self, index: usize, id: &route53::HealthCheckId) -> RecordOutcome {
        let health_check_id = Some(id.to_string());
        let to = &self.policy.failed_over_path;
        let planned = self
            .route53
            .read(id)
            .await
            .and_then(|current| Ok((route53::plan_path(&current, to)?, current)));
        match planned {
            Ok((PathStep::AlreadySet, current)) => RecordOutcome {
                health_check_id,
                action: Action::AlreadyFailedOver,
                to_path: Some(to.clone()),
                version: Some(current.version),
                ..RecordOutcome::new(index, Disposition::Done)
            },
            Ok((PathStep::Write { version }, current)) => RecordOutcome {
                health_check_id,
                action: Action::WouldPin,
                reason: Some("monitor: would pin the health check; nothing written".into()),
                from_path: current.resource_path,
                to_path: Some(to.clone()),
                version: Some(version),
                ..RecordOutcome::new(index, Disposition::Done)
            },
            Err(err) => RecordOutcome {
                health_check_id,
                reason: Some(failure_reason(&err).into()),
                error: Some(err.to_string()),
                ..RecordOutcome::new(index, failure_disposition(&err))
            },
        }
    }
}

fn failure_disposition(err: &Route53Error) -> Disposition {
    match err {
        _ if err.is_transient() => Disposition::Transient,
        // The alarm names a health check that cannot be pinned: its wiring is wrong, and the
        // same event will always fail the same way.
        Route53Error::NotFound(_) | Route53Error::NoPath { .. } => Disposition::BadInput,
        _ => Disposition::Fatal,
    }
}

fn failure_reason(err: &Route53Error) -> &'static str {
    match err {
        Route53Error::NotFound(_) => "health_check_not_found",
        Route53Error::NoPath { .. } => "health_check_probes_no_path",
        Route53Error::VersionConflict { .. } | Route53Error::StaleVersion(_) => {
            "health_check_version_conflict"
        }
        Route53Error::Transient { .. } => "route53_unavailable",
        Route53Error::Refused { .. } => "route53_refused",
    }
}

/// The Lambda handler: invoke, write the decision record, notify, and fail the invocation only
/// when a retry can help.
pub async fn handle<S: HealthChecks + Sync>(
    failover: &Failover<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, RetryLater> {
    let started = std::time::Instant::now();
    let invocation = failover.invoke(&event.payload).await;
    let mut record = serde_json::to_value(&invocation).unwrap_or(Value::Null);
    if let Some(fields) = record.as_object_mut() {
        fields.insert("request_id".into(), event.context.request_id.into());
    }
    common::logging::decision_record(&record);
    for outcome in &invocation.records {
        if matches!(
            outcome.disposition,
            Disposition::BadInput | Disposition::Fatal | Disposition::Transient
        ) {
            tracing::warn!(
                record = outcome.record,
                alarm = outcome.alarm.as_deref(),
                health_check_id = outcome.health_check_id.as_deref(),
                reason = outcome.reason.as_deref(),
                error = outcome.error.as_deref(),
                disposition = ?outcome.disposition,
                "record_not_acted_on"
            );
        }
    }
    if let Some(notifier) = &failover.notifier {
        notify(notifier, &invocation).await;
    }
    common::metrics::emit(&common::metrics::Invocation {
        outcome: invocation.disposition,
        rule: None,
        duration: started.elapsed(),
        unfenced: None,
    });
    let transient: Vec<&RecordOutcome> = invocation
        .records
        .iter()
        .filter(|r| r.disposition == Disposition::Transient)
        .collect();
    match transient.first() {
        Some(first) => Err(RetryLater {
            failed: transient.len(),
            first: first.error.clone().unwrap_or_default(),
        }),
        None => Ok(record),
    }
}

/// One SNS message per health check pinned, and one per health check that could not be pinned
/// for a reason a retry will not fix: both need an operator.
async fn notify(notifier: &Notifier, invocation: &Report) {
    for outcome in &invocation.records {
        let subject = match (outcome.action, outcome.disposition) {
            (Action::Pinned, _) => "Route 53 failover: health check pinned to the failed-over path",
            (Action::WouldPin, _) => {
                "Route 53 failover MONITOR: health check would be pinned (nothing changed)"
            }
            (_, Disposition::Fatal) => "Route 53 failover: health check could NOT be pinned",
            _ => continue,
        };
        let record = serde_json::to_value(outcome).unwrap_or(Value::Null);
        if let Err(err) = notifier.publish(subject, &record).await {
            tracing::warn!(
                topic_arn = notifier.topic_arn(),
                error = %err,
                health_check_id = outcome.health_check_id.as_deref(),
                "notification_failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_topology::route53::{HealthCheck, HealthCheckId};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    const PRIMARY: &str = "233e180f-f023-45a3-954e-415303f21eab";
    const SECONDARY: &str = "8c1b7e52-0f3a-4d8e-9a51-2b6f0c9d4e11";

    /// Route 53 as far as this function sees it; `unavailable` health checks answer as a
    /// throttled or unreachable Route 53 would.
    #[derive(Default)]
    struct FakeRoute53 {
        checks: Mutex<BTreeMap<HealthCheckId, HealthCheck>>,
        unavailable: Vec<HealthCheckId>,
        writes: Mutex<u32>,
        reads: Mutex<u32>,
    }

    impl FakeRoute53 {
        fn with(ids: &[&str]) -> Self {
            let checks = ids
                .iter()
                .map(|id| {
                    let id: HealthCheckId = id.parse().unwrap();
                    let check = HealthCheck {
                        id: id.clone(),
                        version: 1,
                        kind: "HTTPS".into(),
                        resource_path: Some(route53::ORIGINAL_PATH.into()),
                        disabled: false,
                    };
                    (id, check)
                })
                .collect();
            Self {
                checks: Mutex::new(checks),
                ..Self::default()
            }
        }
        fn path(&self, id: &str) -> Option<String> {
            let id: HealthCheckId = id.parse().unwrap();
            self.checks.lock().unwrap()[&id].resource_path.clone()
        }
        fn writes(&self) -> u32 {
            *self.writes.lock().unwrap()
        }
        fn reads(&self) -> u32 {
            *self.reads.lock().unwrap()
        }
        /// An operator (or anyone else) sets the path: a new version.
        fn set_path_behind_our_back(&self, id: &str, path: &str) {
            let id: HealthCheckId = id.parse().unwrap();
            let mut checks = self.checks.lock().unwrap();
            let check = checks.get_mut(&id).unwrap();
            check.resource_path = Some(path.into());
            check.version += 1;
        }
    }

    impl HealthChecks for FakeRoute53 {
        async fn read(&self, id: &HealthCheckId) -> Result<HealthCheck, Route53Error> {
            *self.reads.lock().unwrap() += 1;
            if self.unavailable.contains(id) {
                return Err(Route53Error::Transient {
                    operation: "GetHealthCheck",
                    message: "Throttling: Rate exceeded".into(),
                });
            }
            self.checks
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .ok_or_else(|| Route53Error::NotFound(id.clone()))
        }

        async fn write_path(
            &self,
            id: &HealthCheckId,
            version: i64,
            path: &str,
        ) -> Result<(), Route53Error> {
            *self.writes.lock().unwrap() += 1;
            let mut checks = self.checks.lock().unwrap();
            let check = checks
                .get_mut(id)
                .ok_or_else(|| Route53Error::NotFound(id.clone()))?;
            if check.version != version {
                return Err(Route53Error::StaleVersion(id.clone()));
            }
            check.resource_path = Some(path.into());
            check.version += 1;
            Ok(())
        }
    }

    fn failover(route53: FakeRoute53, allowed: Option<&[&str]>) -> Failover<FakeRoute53> {
        Failover {
            route53,
            policy: Policy {
                failed_over_path: route53::FAILED_OVER_PATH.into(),
                allowed: allowed.map(|ids| ids.iter().map(|id| id.parse().unwrap()).collect()),
            },
            notifier: None,
            mode: Mode::Enforce,
            known: route53::Known::default(),
        }
    }

    #[tokio::test]
    async fn monitor_mode_reports_the_pin_and_writes_nothing() {
        let function = Failover {
            mode: Mode::Monitor,
            ..failover(FakeRoute53::with(&[PRIMARY]), None)
        };
        let response = handle(
            &function,
            LambdaEvent::new(sample("sns-alarm.json", PRIMARY), Default::default()),
        )
        .await
        .unwrap();
        assert_eq!(function.route53.writes(), 0);
        assert_eq!(
            function.route53.path(PRIMARY).as_deref(),
            Some(route53::ORIGINAL_PATH)
        );
        assert_eq!(response["mode"], "monitor");
        assert_eq!(response["disposition"], "done");
        let record = &response["records"][0];
        assert_eq!(record["action"], "would_pin", "{response}");
        assert_eq!(record["from_path"], route53::ORIGINAL_PATH);
        assert_eq!(record["to_path"], route53::FAILED_OVER_PATH);
        assert!(
            record["reason"].as_str().unwrap().starts_with("monitor:"),
            "{record}"
        );
        // What cannot be pinned fails in monitor mode as it would in enforce mode.
        let unknown = function
            .invoke(&json!({"Records": [sns_alarm(SECONDARY)]}))
            .await;
        assert_eq!(
            summary(&unknown),
            vec![(
                Disposition::BadInput,
                Action::None,
                Some("health_check_not_found".into())
            )]
        );
        assert_eq!(function.route53.writes(), 0);
    }

    fn samples_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/route53")
    }

    /// A sample event with its placeholder replaced by `health_check_id`.
    fn sample(name: &str, health_check_id: &str) -> Value {
        let text = std::fs::read_to_string(samples_dir().join(name)).unwrap();
        serde_json::from_str(&text.replace("{{HEALTH_CHECK_ID}}", health_check_id)).unwrap()
    }

    fn sns_alarm(health_check_id: &str) -> Value {
        sns_alarm_on("AWS/Route53", "HealthCheckStatus", health_check_id)
    }

    /// An SNS record of an alarm on `namespace` `metric_name` that has a `HealthCheckId`
    /// dimension.
    fn sns_alarm_on(namespace: &str, metric_name: &str, health_check_id: &str) -> Value {
        let message = json!({
            "AlarmName": format!("alarm-{health_check_id}"),
            "NewStateValue": "ALARM",
            "OldStateValue": "OK",
            "Trigger": {
                "MetricName": metric_name,
                "Namespace": namespace,
                "Dimensions": [{"name": "HealthCheckId", "value": health_check_id}]
            }
        });
        json!({"EventSource": "aws:sns", "Sns": {"Message": message.to_string()}})
    }

    fn summary(invocation: &Report) -> Vec<(Disposition, Action, Option<String>)> {
        invocation
            .records
            .iter()
            .map(|r| (r.disposition, r.action, r.reason.clone()))
            .collect()
    }

    #[test]
    fn every_sample_is_an_event_the_function_reads() {
        let mut names: Vec<String> = std::fs::read_dir(samples_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 6, "{names:?}");
        for name in names {
            let event = sample(&name, PRIMARY);
            let trigger = parse_event(&event).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(!trigger.records.is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn samples_table() {
        use Disposition::*;
        let pinned = (Done, Action::Pinned, None);
        let not_in_alarm = (Ignored, Action::None, Some("not_in_alarm".to_owned()));
        let rows = [
            ("sns-alarm.json", vec![pinned.clone()], true),
            ("sns-ok.json", vec![not_in_alarm.clone()], false),
            ("sns-insufficient-data.json", vec![not_in_alarm], false),
            (
                "sns-batch-alarm-and-test-message.json",
                vec![
                    pinned.clone(),
                    (BadInput, Action::None, Some("unreadable_record".into())),
                ],
                true,
            ),
            ("cloudwatch-alarm-direct.json", vec![pinned], true),
            (
                "sns-metric-math-alarm.json",
                vec![(BadInput, Action::None, Some("metric_math_alarm".into()))],
                false,
            ),
        ];
        for (name, expected, failed_over) in rows {
            let function = failover(FakeRoute53::with(&[PRIMARY]), None);
            let invocation = function.invoke(&sample(name, PRIMARY)).await;
            assert_eq!(summary(&invocation), expected, "{name}");
            let path = function.route53.path(PRIMARY);
            let expected_path = if failed_over {
                route53::FAILED_OVER_PATH
            } else {
                route53::ORIGINAL_PATH
            };
            assert_eq!(path.as_deref(), Some(expected_path), "{name}");
        }
    }

    #[tokio::test]
    async fn repeated_alarm_is_a_no_op() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        let event = sample("sns-alarm.json", PRIMARY);
        function.invoke(&event).await;
        let again = function.invoke(&event).await;
        assert_eq!(
            summary(&again),
            vec![(Disposition::Done, Action::AlreadyFailedOver, None)]
        );
        assert_eq!(function.route53.writes(), 1);
    }

    fn alarm_in(state: &str, health_check_id: &str) -> Value {
        let mut event = sample("sns-alarm.json", health_check_id);
        let message = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
        let mut message: Value = serde_json::from_str(message).unwrap();
        message["NewStateValue"] = state.into();
        event["Records"][0]["Sns"]["Message"] = message.to_string().into();
        event
    }

    #[tokio::test]
    async fn after_a_fail_back_and_its_ok_notice_the_next_pin_is_one_write() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        function.invoke(&alarm_in("ALARM", PRIMARY)).await;
        assert_eq!(
            (function.route53.reads(), function.route53.writes()),
            (1, 1)
        );
        // The operator fails back; the alarm goes OK and says so.
        function
            .route53
            .set_path_behind_our_back(PRIMARY, route53::ORIGINAL_PATH);
        let ok = function.invoke(&alarm_in("OK", PRIMARY)).await;
        assert_eq!(
            summary(&ok),
            vec![(
                Disposition::Ignored,
                Action::None,
                Some("not_in_alarm".into())
            )]
        );
        assert_eq!(ok.records[0].version, Some(3));
        assert_eq!(
            (function.route53.reads(), function.route53.writes()),
            (2, 1)
        );
        let again = function.invoke(&alarm_in("ALARM", PRIMARY)).await;
        assert_eq!(
            summary(&again),
            vec![(Disposition::Done, Action::Pinned, None)]
        );
        assert_eq!(again.records[0].conflicts, Some(0));
        assert_eq!(
            (function.route53.reads(), function.route53.writes()),
            (2, 2)
        );
        assert_eq!(
            function.route53.path(PRIMARY).as_deref(),
            Some(route53::FAILED_OVER_PATH)
        );
    }

    #[tokio::test]
    async fn a_change_after_the_ok_notice_is_read_before_the_pin_and_never_overwritten_blindly() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        function.invoke(&alarm_in("OK", PRIMARY)).await;
        // Someone points the health check elsewhere after the function last read it.
        function
            .route53
            .set_path_behind_our_back(PRIMARY, "/maintenance");
        let pinned = function.invoke(&alarm_in("ALARM", PRIMARY)).await;
        let record = &pinned.records[0];
        assert_eq!(record.action, Action::Pinned);
        // The write with the version read at OK was refused; the pin read the change first.
        assert_eq!(record.conflicts, Some(1));
        assert_eq!(record.from_path.as_deref(), Some("/maintenance"));
        assert_eq!(
            (function.route53.reads(), function.route53.writes()),
            (2, 2)
        );
    }

    #[tokio::test]
    async fn pinned_record_reports_paths_and_version() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        let response = handle(
            &function,
            LambdaEvent::new(sample("sns-alarm.json", PRIMARY), Default::default()),
        )
        .await
        .unwrap();
        let record = &response["records"][0];
        assert_eq!(record["health_check_id"], PRIMARY);
        assert_eq!(record["from_path"], "/lb-check");
        assert_eq!(record["to_path"], "/lb-check-failed-over");
        assert_eq!(record["version"], 1);
        assert_eq!(response["disposition"], "done");
        assert_eq!(response["trigger"], "sns");
    }

    #[tokio::test]
    async fn transient_failure_of_one_record_retries_the_invocation_after_the_others_ran() {
        let route53 = FakeRoute53 {
            unavailable: vec![SECONDARY.parse().unwrap()],
            ..FakeRoute53::with(&[PRIMARY, SECONDARY])
        };
        let function = failover(route53, None);
        let event = json!({"Records": [sns_alarm(SECONDARY), sns_alarm(PRIMARY)]});
        let result = handle(&function, LambdaEvent::new(event, Default::default())).await;
        let err = result.unwrap_err();
        assert_eq!(err.failed, 1);
        assert!(err.first.contains("Throttling"), "{err}");
        assert_eq!(
            function.route53.path(PRIMARY).as_deref(),
            Some(route53::FAILED_OVER_PATH)
        );
        assert_eq!(Diagnostic::from(err).error_type, "Transient");
    }

    #[tokio::test]
    async fn bad_input_never_fails_the_invocation() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        let rows = [
            json!({"hello": "world"}),
            json!({"Records": [sns_alarm(SECONDARY)]}),
            json!({"Records": [{"Sns": {"Message": "{}"}}]}),
        ];
        for event in rows {
            let response = handle(
                &function,
                LambdaEvent::new(event.clone(), Default::default()),
            )
            .await
            .unwrap_or_else(|err| panic!("{event}: {err}"));
            assert_eq!(response["disposition"], "bad_input", "{event}");
        }
        assert_eq!(function.route53.writes(), 0);
    }

    #[tokio::test]
    async fn alarm_on_another_metric_never_pins_its_health_check_and_is_not_retried() {
        let function = failover(FakeRoute53::with(&[PRIMARY, SECONDARY]), None);
        let event = json!({"Records": [
            sns_alarm_on("AWS/Route53", "HealthCheckPercentageHealthy", PRIMARY),
            sns_alarm_on("Custom/Probes", "HealthCheckStatus", SECONDARY),
        ]});
        let response = handle(&function, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        assert_eq!(response["disposition"], "ignored", "{response}");
        let records = response["records"].as_array().unwrap();
        let expected = [
            ("AWS/Route53", "HealthCheckPercentageHealthy"),
            ("Custom/Probes", "HealthCheckStatus"),
        ];
        for (record, (namespace, metric_name)) in records.iter().zip(expected) {
            assert_eq!(record["disposition"], "ignored", "{record}");
            assert_eq!(record["reason"], "not_route53_health_check_status_alarm");
            assert_eq!(record["namespace"], namespace);
            assert_eq!(record["metric_name"], metric_name);
        }
        for id in [PRIMARY, SECONDARY] {
            assert_eq!(
                function.route53.path(id).as_deref(),
                Some(route53::ORIGINAL_PATH)
            );
        }
        assert_eq!(function.route53.writes(), 0);
    }

    #[tokio::test]
    async fn unknown_health_check_is_reported_as_bad_input() {
        let function = failover(FakeRoute53::with(&[PRIMARY]), None);
        let invocation = function
            .invoke(&json!({"Records": [sns_alarm(SECONDARY)]}))
            .await;
        assert_eq!(
            summary(&invocation),
            vec![(
                Disposition::BadInput,
                Action::None,
                Some("health_check_not_found".into())
            )]
        );
    }

    #[tokio::test]
    async fn allowlist_keeps_other_health_checks_untouched() {
        let function = failover(FakeRoute53::with(&[PRIMARY, SECONDARY]), Some(&[PRIMARY]));
        let event = json!({"Records": [sns_alarm(SECONDARY), sns_alarm(PRIMARY)]});
        let invocation = function.invoke(&event).await;
        assert_eq!(
            summary(&invocation),
            vec![
                (
                    Disposition::Ignored,
                    Action::None,
                    Some("not_in_allowlist".into())
                ),
                (Disposition::Done, Action::Pinned, None),
            ]
        );
        assert_eq!(
            function.route53.path(SECONDARY).as_deref(),
            Some(route53::ORIGINAL_PATH)
        );
    }
}
