//! What each scenario must end in, what the drill saw, the timeline and the final table. Pure:
//! no I/O, so the verdicts are tested like tables.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// The outcome a scenario must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Fence(ExpectedFence),
    /// Monitor mode: the fence decides (recorded, marked monitor) that `fenced` would go and
    /// answers every report 200, and nothing changes: both sites stay in every group, the
    /// dials as they were, both backups online.
    Monitor(ExpectedFence),
    /// The Route 53 health check probes `path` (the failed-over path).
    HealthCheckPinned {
        path: String,
    },
    /// Every route that went through the primary appliance now goes through the standby.
    RoutesMoved {
        routes: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFence {
    pub survivor: String,
    pub fenced: String,
    /// The sites whose Alertmanager must have reported the other site.
    pub reporters: BTreeSet<String>,
    /// At least one webhook must have failed with a 5xx (and been retried by Alertmanager).
    pub retried: bool,
}

/// One webhook the fence function answered, from its decision record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// (reporter, reported site) of each alert of the notification.
    pub reports: Vec<(String, String)>,
    pub summary: String,
    /// The function answered in monitor mode (its alerts say `"mode": "monitor"`).
    pub monitor: bool,
}

/// The split-brain's decision record as the decision table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSeen {
    pub survivor: String,
    pub loser: String,
    /// `enforce` or `monitor`.
    pub mode: String,
}

/// A fence scenario's state as the operator would read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FenceObservation {
    /// Sites with at least one endpoint left in the accelerator.
    pub in_accelerator: BTreeSet<String>,
    /// Each site's backup to the other site: `online`, `offline`, `mixed` or why it is unknown.
    pub backups: BTreeMap<String, String>,
    /// Every webhook answered so far.
    pub answers: Vec<Answer>,
    /// Endpoint groups whose traffic dial differs from before the fault.
    pub dials_changed: BTreeSet<String>,
    /// The split-brain's decision record, once there is one (read for monitor mode).
    pub recorded: Option<RecordSeen>,
}

impl FenceObservation {
    fn reporters(&self) -> BTreeSet<String> {
        self.answers
            .iter()
            .flat_map(|a| a.reports.iter().map(|(reporter, _)| reporter.clone()))
            .collect()
    }

    fn failed_answers(&self) -> usize {
        self.answers.iter().filter(|a| a.status >= 500).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Fence(FenceObservation),
    HealthCheck {
        path: Option<String>,
    },
    Routes {
        via_standby: usize,
        via_primary: usize,
    },
}

impl Expected {
    pub fn describe(&self) -> String {
        match self {
            Expected::Fence(fence) => {
                let mut text = format!(
                    "{} fenced: accelerator keeps only {}, {}'s backup to {} offline; reported by {}",
                    fence.fenced,
                    fence.survivor,
                    fence.survivor,
                    fence.fenced,
                    join(&fence.reporters)
                );
                if fence.retried {
                    text.push_str("; a 5xx retried by Alertmanager");
                }
                text
            }
            Expected::Monitor(fence) => format!(
                "monitor: decision recorded (mode monitor) that {} would be fenced and {} survive; \
                 nothing changed: accelerator keeps {} and {}, dials unchanged, both backups online; reported by {}",
                fence.fenced,
                fence.survivor,
                fence.survivor,
                fence.fenced,
                join(&fence.reporters)
            ),
            Expected::HealthCheckPinned { path } => format!("health check probes {path}"),
            Expected::RoutesMoved { routes } => {
                format!("{routes} route(s) via the standby, none via the primary")
            }
        }
    }
}

impl Observed {
    pub fn describe(&self) -> String {
        match self {
            Observed::Fence(fence) => {
                let backups: Vec<String> = fence
                    .backups
                    .iter()
                    .map(|(site, status)| format!("{site}'s backup {status}"))
                    .collect();
                let in_accelerator = if fence.in_accelerator.is_empty() {
                    "nothing".to_string()
                } else {
                    join(&fence.in_accelerator)
                };
                let mut text = format!(
                    "accelerator keeps {in_accelerator}; {}; reported by {}; {} webhook(s), {} answered 5xx",
                    backups.join(", "),
                    join(&fence.reporters()),
                    fence.answers.len(),
                    fence.failed_answers()
                );
                if !fence.dials_changed.is_empty() {
                    let _ = write!(text, "; dial changed in {}", join(&fence.dials_changed));
                }
                let monitored = fence.answers.iter().filter(|a| a.monitor).count();
                if monitored > 0 {
                    let _ = write!(text, "; {monitored} answered in monitor mode");
                }
                if let Some(record) = &fence.recorded {
                    let _ = write!(
                        text,
                        "; decision recorded (mode {}): {} survives, {} loses",
                        record.mode, record.survivor, record.loser
                    );
                }
                text
            }
            Observed::HealthCheck { path } => match path {
                Some(path) => format!("health check probes {path}"),
                None => "health check not readable".to_string(),
            },
            Observed::Routes {
                via_standby,
                via_primary,
            } => format!("{via_standby} route(s) via the standby, {via_primary} via the primary"),
        }
    }
}

fn join(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        return "nobody".to_string();
    }
    items.iter().cloned().collect::<Vec<_>>().join(" and ")
}

/// One decision as `site history` listed it after a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub survivor: String,
    pub loser: String,
    /// `enforce` or `monitor`.
    pub mode: String,
    /// The fence recorded its completion (the steps done, the time to complete).
    pub completed: bool,
}

/// What `site history` must list once a fence scenario has reached its outcome (the decision
/// table is emptied before each scenario, so what it lists is this scenario's): the decision
/// the drill caused, in its mode; an enforced fence with its completion. Empty for the
/// scenarios that decide nothing (Route 53, VPC).
pub fn history_problems(expected: &Expected, listed: &[Listed]) -> Vec<String> {
    let (want, mode) = match expected {
        Expected::Fence(want) => (want, "enforce"),
        Expected::Monitor(want) => (want, "monitor"),
        Expected::HealthCheckPinned { .. } | Expected::RoutesMoved { .. } => return Vec::new(),
    };
    let decision = listed
        .iter()
        .find(|l| l.survivor == want.survivor && l.loser == want.fenced && l.mode == mode);
    match decision {
        None => vec![format!(
            "`site history` does not list the drill's decision ({} survives, {} fenced, mode {mode}); it lists {}",
            want.survivor,
            want.fenced,
            if listed.is_empty() {
                "nothing".to_owned()
            } else {
                listed
                    .iter()
                    .map(|l| {
                        format!(
                            "{} survives, {} fenced, mode {}",
                            l.survivor, l.loser, l.mode
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        )],
        Some(found) if mode == "enforce" && !found.completed => vec![format!(
            "`site history` lists the drill's fence of {} without its steps and time to complete",
            want.fenced
        )],
        Some(_) => Vec::new(),
    }
}

/// Everything that differs from the expected outcome; empty means the scenario passed.
pub fn problems(expected: &Expected, observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    match (expected, observed) {
        (Expected::Fence(want), Observed::Fence(seen)) => {
            let only_survivor = BTreeSet::from([want.survivor.clone()]);
            if seen.in_accelerator != only_survivor {
                problems.push(format!(
                    "the accelerator should keep only {}, it keeps {}",
                    want.survivor,
                    join(&seen.in_accelerator)
                ));
            }
            match seen.backups.get(&want.survivor).map(String::as_str) {
                Some("offline") => {}
                other => problems.push(format!(
                    "{}'s backup to {} should be offline, it is {}",
                    want.survivor,
                    want.fenced,
                    other.unwrap_or("unknown")
                )),
            }
            let reporters = seen.reporters();
            if reporters != want.reporters {
                problems.push(format!(
                    "reports should come from {}, they came from {}",
                    join(&want.reporters),
                    join(&reporters)
                ));
            }
            if let Some(wrong) = seen
                .answers
                .iter()
                .flat_map(|a| &a.reports)
                .find(|(reporter, site)| reporter == site)
            {
                problems.push(format!("{} reported itself offline", wrong.0));
            }
            if want.retried && seen.failed_answers() == 0 {
                problems.push("no webhook failed, so nothing was retried".to_string());
            }
            match seen.answers.last() {
                Some(last) if last.status == 200 => {}
                Some(last) => problems.push(format!(
                    "the last webhook was answered {}: {}",
                    last.status, last.summary
                )),
                None => problems.push("the fence function received no webhook".to_string()),
            }
        }
        (Expected::Monitor(want), Observed::Fence(seen)) => {
            let both = BTreeSet::from([want.survivor.clone(), want.fenced.clone()]);
            if seen.in_accelerator != both {
                problems.push(format!(
                    "monitor mode changes nothing: the accelerator should keep {}, it keeps {}",
                    join(&both),
                    join(&seen.in_accelerator)
                ));
            }
            if !seen.dials_changed.is_empty() {
                problems.push(format!(
                    "monitor mode changes nothing: the dial of {} changed",
                    join(&seen.dials_changed)
                ));
            }
            for site in &both {
                match seen.backups.get(site).map(String::as_str) {
                    Some("online") => {}
                    other => problems.push(format!(
                        "monitor mode changes nothing: {site}'s backup should be online, it is {}",
                        other.unwrap_or("unknown")
                    )),
                }
            }
            let reporters = seen.reporters();
            if reporters != want.reporters {
                problems.push(format!(
                    "reports should come from {}, they came from {}",
                    join(&want.reporters),
                    join(&reporters)
                ));
            }
            if seen.answers.is_empty() {
                problems.push("the fence function received no webhook".to_string());
            }
            if let Some(answer) = seen.answers.iter().find(|a| a.status != 200 || !a.monitor) {
                problems.push(format!(
                    "every webhook should be answered 200 in monitor mode; one was answered {}{}: {}",
                    answer.status,
                    if answer.monitor { "" } else { " not in monitor mode" },
                    answer.summary
                ));
            }
            let wanted = RecordSeen {
                survivor: want.survivor.clone(),
                loser: want.fenced.clone(),
                mode: "monitor".to_string(),
            };
            match &seen.recorded {
                Some(record) if *record == wanted => {}
                Some(record) => problems.push(format!(
                    "the decision record should say {} survives, {} fenced, mode monitor; it says {} survives, {} fenced, mode {}",
                    wanted.survivor, wanted.loser, record.survivor, record.loser, record.mode
                )),
                None => problems.push("no decision was recorded".to_string()),
            }
        }
        (Expected::HealthCheckPinned { path }, Observed::HealthCheck { path: seen }) => {
            if seen.as_deref() != Some(path.as_str()) {
                problems.push(format!(
                    "the health check should probe {path}, it probes {}",
                    seen.as_deref().unwrap_or("an unknown path")
                ));
            }
        }
        (
            Expected::RoutesMoved { routes },
            Observed::Routes {
                via_standby,
                via_primary,
            },
        ) => {
            if via_standby != routes || *via_primary != 0 {
                problems.push(format!(
                    "{routes} route(s) should go via the standby and none via the primary; \
                     {via_standby} via the standby, {via_primary} via the primary"
                ));
            }
        }
        _ => problems.push("the observation does not fit the scenario".to_string()),
    }
    problems
}

/// A state the drill watches for; the time to fence is read from the first time each was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The sites left in the accelerator changed to these.
    Accelerator(BTreeSet<String>),
    /// This site's backup to the other site went offline.
    BackupOffline(String),
    HealthCheckPath(String),
    RoutesViaStandby(usize),
    /// The split-brain's decision was recorded in this mode.
    DecisionRecorded(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Duration,
    pub text: String,
    pub fact: Option<Fact>,
}

impl Event {
    /// `  +12.3 s  text`: one line of the live timeline.
    pub fn line(&self) -> String {
        format!("  {:>+7.1} s  {}", self.at.as_secs_f64(), self.text)
    }
}

/// A scenario's timeline; offsets are from the fault.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub events: Vec<Event>,
    seen: BTreeSet<String>,
}

impl Timeline {
    /// Adds an event and returns it (to print it at once).
    pub fn push(&mut self, at: Duration, text: impl Into<String>, fact: Option<Fact>) -> &Event {
        self.events.push(Event {
            at,
            text: text.into(),
            fact,
        });
        let last = self.events.len() - 1;
        &self.events[last]
    }

    /// Adds the event only the first time `key` is given (a signal that stays true while it is
    /// polled, e.g. "the alert is firing").
    pub fn once(
        &mut self,
        key: &str,
        at: Duration,
        text: impl Into<String>,
        fact: Option<Fact>,
    ) -> Option<&Event> {
        if !self.seen.insert(key.to_string()) {
            return None;
        }
        Some(self.push(at, text, fact))
    }

    fn first(&self, matches: impl Fn(&Fact) -> bool) -> Option<Duration> {
        self.events
            .iter()
            .find(|e| e.fact.as_ref().is_some_and(&matches))
            .map(|e| e.at)
    }
}

/// Seconds from the fault to the expected end state: for a fence, the later of "the accelerator
/// keeps only the survivor" and "the survivor's backup is offline". `None` when it never got there.
pub fn time_to_fence(expected: &Expected, timeline: &Timeline) -> Option<f64> {
    let at = match expected {
        Expected::Fence(fence) => {
            let only_survivor = BTreeSet::from([fence.survivor.clone()]);
            let accelerator = timeline.first(|f| *f == Fact::Accelerator(only_survivor.clone()))?;
            let backup = timeline.first(|f| *f == Fact::BackupOffline(fence.survivor.clone()))?;
            accelerator.max(backup)
        }
        // Monitor mode fences nothing: its time is that of the recorded decision.
        Expected::Monitor(_) => {
            timeline.first(|f| *f == Fact::DecisionRecorded("monitor".to_string()))?
        }
        Expected::HealthCheckPinned { path } => {
            timeline.first(|f| *f == Fact::HealthCheckPath(path.clone()))?
        }
        Expected::RoutesMoved { routes } => {
            timeline.first(|f| *f == Fact::RoutesViaStandby(*routes))?
        }
    };
    Some((at.as_secs_f64() * 10.0).round() / 10.0)
}

/// One line of the final table, and of `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub scenario: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    pub time_to_fence_s: Option<f64>,
}

impl Row {
    pub fn new(
        scenario: &str,
        expected: &Expected,
        observed: &Observed,
        timeline: &Timeline,
    ) -> Row {
        let passed = problems(expected, observed).is_empty();
        Row {
            scenario: scenario.to_string(),
            expected: expected.describe(),
            observed: observed.describe(),
            passed,
            time_to_fence_s: if passed {
                time_to_fence(expected, timeline)
            } else {
                None
            },
        }
    }
}

impl Row {
    /// A scenario the drill could not run to the end.
    pub fn failed(scenario: &str, error: &str) -> Row {
        Row {
            scenario: scenario.to_string(),
            expected: "(the scenario did not run to the end)".to_string(),
            observed: format!("drill error: {error}"),
            passed: false,
            time_to_fence_s: None,
        }
    }
}

/// The final table: one block per scenario (the outcomes are sentences, too long for columns).
pub fn render_table(profile: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<17} {:<6} {:>14}  expected / observed",
        "scenario", "result", "time to fence"
    );
    for row in rows {
        let time = row
            .time_to_fence_s
            .map_or_else(|| "-".to_string(), |s| format!("{s:.1} s"));
        let _ = writeln!(
            out,
            "{:<17} {:<6} {:>14}  expected: {}",
            row.scenario,
            if row.passed { "PASS" } else { "FAIL" },
            time,
            row.expected
        );
        let _ = writeln!(
            out,
            "{:<17} {:<6} {:>14}  observed: {}",
            "", "", "", row.observed
        );
    }
    let failed = rows.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "profile {profile}: {} scenario(s), {} passed, {failed} failed",
        rows.len(),
        rows.len() - failed
    );
    out
}

/// The fence function's decision record from one line of its log (`target: decision`); `None`
/// for every other line.
pub fn parse_decision(line: &str) -> Option<Answer> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("target")?.as_str()? != "decision" {
        return None;
    }
    let decision = value.get("decision")?;
    let status = u16::try_from(decision.get("status")?.as_u64()?).ok()?;
    let alerts = decision
        .get("alerts")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let reports = alerts
        .iter()
        .filter_map(|alert| Some((text(alert, "reporter")?, text(alert, "site")?)))
        .collect();
    let summary = alerts
        .iter()
        .filter_map(|alert| text(alert, "reason"))
        .find(|reason| !reason.is_empty())
        .or_else(|| text(decision, "reason"))
        .unwrap_or_default();
    let monitor = !alerts.is_empty()
        && alerts
            .iter()
            .all(|alert| text(alert, "mode").as_deref() == Some("monitor"));
    Some(Answer {
        status,
        reports,
        summary,
        monitor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn answer(status: u16, reports: &[(&str, &str)]) -> Answer {
        Answer {
            status,
            reports: reports
                .iter()
                .map(|(r, s)| (r.to_string(), s.to_string()))
                .collect(),
            summary: format!("answered {status}"),
            monitor: false,
        }
    }

    fn monitored(answers: Vec<Answer>) -> Vec<Answer> {
        answers
            .into_iter()
            .map(|a| Answer { monitor: true, ..a })
            .collect()
    }

    /// A partition in monitor mode as it must end: nothing changed, the decision recorded.
    fn rehearsed(answers: Vec<Answer>) -> FenceObservation {
        FenceObservation {
            in_accelerator: set(&["site-a", "site-b"]),
            backups: [("site-a", "online"), ("site-b", "online")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            answers,
            dials_changed: BTreeSet::new(),
            recorded: Some(RecordSeen {
                survivor: "site-a".into(),
                loser: "site-b".into(),
                mode: "monitor".into(),
            }),
        }
    }

    #[test]
    fn monitor_verdicts() {
        let expected = Expected::Monitor(ExpectedFence {
            survivor: "site-a".into(),
            fenced: "site-b".into(),
            reporters: set(&["site-a", "site-b"]),
            retried: false,
        });
        let both = monitored(vec![
            answer(200, &[("site-a", "site-b")]),
            answer(200, &[("site-b", "site-a")]),
        ]);
        let mut removed = rehearsed(both.clone());
        removed.in_accelerator = set(&["site-a"]);
        let mut dialled = rehearsed(both.clone());
        dialled.dials_changed = set(&["…/endpoint-group/b"]);
        let mut offline = rehearsed(both.clone());
        offline.backups.insert("site-a".into(), "offline".into());
        let mut unrecorded = rehearsed(both.clone());
        unrecorded.recorded = None;
        let mut enforce_record = rehearsed(both.clone());
        if let Some(record) = &mut enforce_record.recorded {
            record.mode = "enforce".into();
        }
        let enforced = rehearsed(vec![
            answer(200, &[("site-a", "site-b")]),
            answer(200, &[("site-b", "site-a")]),
        ]);
        let table: Vec<(&str, FenceObservation, bool)> = vec![
            (
                "nothing_changed_decision_recorded",
                rehearsed(both.clone()),
                true,
            ),
            ("an_endpoint_removed", removed, false),
            ("a_dial_changed", dialled, false),
            ("a_backup_taken_offline", offline, false),
            ("no_decision_recorded", unrecorded, false),
            ("recorded_as_enforce", enforce_record, false),
            ("answered_in_enforce_mode", enforced, false),
            ("one_report_only", rehearsed(both[..1].to_vec()), false),
        ];
        for (name, seen, passes) in table {
            let found = problems(&expected, &Observed::Fence(seen));
            assert_eq!(found.is_empty(), passes, "{name}: {found:?}");
        }
        let mut timeline = Timeline::default();
        timeline.push(
            Duration::from_millis(4_260),
            "",
            Some(Fact::DecisionRecorded("monitor".into())),
        );
        assert_eq!(time_to_fence(&expected, &timeline), Some(4.3));
    }

    #[test]
    fn site_history_must_list_the_drills_fence_with_its_completion() {
        let listed = |mode: &str, completed| Listed {
            survivor: "site-a".into(),
            loser: "site-b".into(),
            mode: mode.into(),
            completed,
        };
        let expected = partition_expected();
        assert!(history_problems(&expected, &[listed("enforce", true)]).is_empty());
        assert!(
            history_problems(&expected, &[])
                .iter()
                .any(|p| p.contains("lists nothing"))
        );
        assert!(
            history_problems(&expected, &[listed("enforce", false)])
                .iter()
                .any(|p| p.contains("without its steps"))
        );
        assert_eq!(
            history_problems(&expected, &[listed("monitor", true)]).len(),
            1
        );
        let Expected::Fence(fence) = expected else {
            unreachable!("partition_expected is a fence");
        };
        assert!(
            history_problems(&Expected::Monitor(fence), &[listed("monitor", false)]).is_empty()
        );
        assert!(
            history_problems(&Expected::RoutesMoved { routes: 3 }, &[]).is_empty(),
            "the VPC scenario decides nothing"
        );
    }

    fn partition_expected() -> Expected {
        Expected::Fence(ExpectedFence {
            survivor: "site-a".into(),
            fenced: "site-b".into(),
            reporters: set(&["site-a", "site-b"]),
            retried: false,
        })
    }

    fn fenced_b(answers: Vec<Answer>) -> FenceObservation {
        FenceObservation {
            in_accelerator: set(&["site-a"]),
            backups: [("site-a", "offline"), ("site-b", "online")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            answers,
            ..FenceObservation::default()
        }
    }

    #[test]
    fn verdicts() {
        let both_report = vec![
            answer(200, &[("site-a", "site-b")]),
            answer(200, &[("site-b", "site-a")]),
        ];
        let mut kept_both = fenced_b(both_report.clone());
        kept_both.in_accelerator = set(&["site-a", "site-b"]);
        let mut wrong_survivor = fenced_b(both_report.clone());
        wrong_survivor.in_accelerator = set(&["site-b"]);
        let mut emptied = fenced_b(both_report.clone());
        emptied.in_accelerator = BTreeSet::new();
        let mut backup_online = fenced_b(both_report.clone());
        backup_online
            .backups
            .insert("site-a".into(), "online".into());
        let mut backup_unknown = fenced_b(both_report.clone());
        backup_unknown.backups.clear();
        let flaky = Expected::Fence(ExpectedFence {
            survivor: "site-a".into(),
            fenced: "site-b".into(),
            reporters: set(&["site-a"]),
            retried: true,
        });
        let retried = fenced_b(vec![
            answer(503, &[("site-a", "site-b")]),
            answer(200, &[("site-a", "site-b")]),
        ]);
        let never_failed = fenced_b(vec![answer(200, &[("site-a", "site-b")])]);
        let still_failing = fenced_b(vec![answer(503, &[("site-a", "site-b")])]);
        let pinned = Expected::HealthCheckPinned {
            path: "/lb-check-failed-over".into(),
        };
        let moved = Expected::RoutesMoved { routes: 3 };
        let partition = partition_expected();

        let table: Vec<(&str, &Expected, Observed, bool)> = vec![
            (
                "partition_fenced_b_reported_by_both",
                &partition,
                Observed::Fence(fenced_b(both_report.clone())),
                true,
            ),
            (
                "partition_needs_both_reports",
                &partition,
                Observed::Fence(fenced_b(both_report[..1].to_vec())),
                false,
            ),
            (
                "nobody_fenced",
                &partition,
                Observed::Fence(kept_both),
                false,
            ),
            (
                "wrong_survivor",
                &partition,
                Observed::Fence(wrong_survivor),
                false,
            ),
            (
                "never_empties_the_accelerator",
                &partition,
                Observed::Fence(emptied),
                false,
            ),
            (
                "ga_updated_but_backup_still_online",
                &partition,
                Observed::Fence(backup_online),
                false,
            ),
            (
                "backup_state_unknown",
                &partition,
                Observed::Fence(backup_unknown),
                false,
            ),
            (
                "self_report_is_wrong",
                &partition,
                Observed::Fence(fenced_b(vec![
                    answer(200, &[("site-a", "site-a")]),
                    answer(200, &[("site-b", "site-a")]),
                ])),
                false,
            ),
            ("flaky_retried", &flaky, Observed::Fence(retried), true),
            (
                "flaky_without_failure_proves_no_retry",
                &flaky,
                Observed::Fence(never_failed),
                false,
            ),
            (
                "flaky_last_answer_failed",
                &flaky,
                Observed::Fence(still_failing),
                false,
            ),
            (
                "route53_pinned",
                &pinned,
                Observed::HealthCheck {
                    path: Some("/lb-check-failed-over".into()),
                },
                true,
            ),
            (
                "route53_not_pinned",
                &pinned,
                Observed::HealthCheck {
                    path: Some("/lb-check".into()),
                },
                false,
            ),
            (
                "route53_unreadable",
                &pinned,
                Observed::HealthCheck { path: None },
                false,
            ),
            (
                "vpc_moved",
                &moved,
                Observed::Routes {
                    via_standby: 3,
                    via_primary: 0,
                },
                true,
            ),
            (
                "vpc_half_moved",
                &moved,
                Observed::Routes {
                    via_standby: 2,
                    via_primary: 1,
                },
                false,
            ),
            (
                "mismatched_observation",
                &moved,
                Observed::HealthCheck { path: None },
                false,
            ),
        ];
        for (name, expected, observed, passes) in table {
            let found = problems(expected, &observed);
            assert_eq!(found.is_empty(), passes, "{name}: {found:?}");
            let row = Row::new(name, expected, &observed, &Timeline::default());
            assert_eq!(row.passed, passes, "{name}");
        }
    }

    #[test]
    fn time_to_fence_is_the_later_of_accelerator_and_backup() {
        let mut timeline = Timeline::default();
        timeline.push(Duration::ZERO, "link cut", None);
        timeline.push(
            Duration::from_millis(2_000),
            "accelerator changed",
            Some(Fact::Accelerator(set(&["site-a"]))),
        );
        assert_eq!(time_to_fence(&partition_expected(), &timeline), None);
        timeline.push(
            Duration::from_millis(3_240),
            "backup offline",
            Some(Fact::BackupOffline("site-a".into())),
        );
        assert_eq!(time_to_fence(&partition_expected(), &timeline), Some(3.2));
        // Another site's backup going offline is not the fence.
        let mut other = Timeline::default();
        other.push(
            Duration::from_secs(1),
            "",
            Some(Fact::Accelerator(set(&["site-a"]))),
        );
        other.push(
            Duration::from_secs(1),
            "",
            Some(Fact::BackupOffline("site-b".into())),
        );
        assert_eq!(time_to_fence(&partition_expected(), &other), None);
    }

    #[test]
    fn time_to_fence_of_route53_and_vpc() {
        let mut timeline = Timeline::default();
        timeline.push(
            Duration::from_millis(450),
            "",
            Some(Fact::HealthCheckPath("/lb-check-failed-over".into())),
        );
        timeline.push(
            Duration::from_millis(1_260),
            "",
            Some(Fact::RoutesViaStandby(3)),
        );
        let pinned = Expected::HealthCheckPinned {
            path: "/lb-check-failed-over".into(),
        };
        assert_eq!(time_to_fence(&pinned, &timeline), Some(0.5));
        assert_eq!(
            time_to_fence(&Expected::RoutesMoved { routes: 3 }, &timeline),
            Some(1.3)
        );
        assert_eq!(
            time_to_fence(&Expected::RoutesMoved { routes: 4 }, &timeline),
            None
        );
    }

    #[test]
    fn once_records_a_signal_only_the_first_time() {
        let mut timeline = Timeline::default();
        assert!(
            timeline
                .once("firing:site-a", Duration::from_secs(1), "firing", None)
                .is_some()
        );
        assert!(
            timeline
                .once("firing:site-a", Duration::from_secs(2), "firing", None)
                .is_none()
        );
        assert_eq!(timeline.events.len(), 1);
        assert_eq!(timeline.events[0].line(), "     +1.0 s  firing");
    }

    #[test]
    fn failed_rows_have_no_time_to_fence_and_json_has_the_documented_fields() {
        let mut timeline = Timeline::default();
        timeline.push(
            Duration::from_secs(1),
            "",
            Some(Fact::Accelerator(set(&["site-a"]))),
        );
        timeline.push(
            Duration::from_secs(1),
            "",
            Some(Fact::BackupOffline("site-a".into())),
        );
        let half = Observed::Fence(fenced_b(vec![answer(200, &[("site-a", "site-b")])]));
        let row = Row::new("partition", &partition_expected(), &half, &timeline);
        assert!(!row.passed);
        assert_eq!(row.time_to_fence_s, None);
        let json = serde_json::to_value([&row]).unwrap_or_default();
        let keys: BTreeSet<&str> = json[0]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            BTreeSet::from([
                "scenario",
                "expected",
                "observed",
                "passed",
                "time_to_fence_s"
            ])
        );
        assert!(json[0]["time_to_fence_s"].is_null());
        let table = render_table("fast", &[row]);
        assert!(
            table.contains("FAIL") && table.contains("1 failed"),
            "{table}"
        );
    }

    #[test]
    fn decision_records_are_read_from_the_function_log() {
        let line = r#"{"timestamp":"2026-12-01T12:00:00.000Z","level":"INFO","target":"decision","function":"fence-lambda","decision":{"status":503,"outcome":"transient","alerts":[{"index":0,"status":"firing","reporter":"site-a","site":"site-b","outcome":"transient","reason":"taking site-a's backup to site-b offline: 503"}]}}"#;
        let parsed = parse_decision(line);
        assert_eq!(
            parsed,
            Some(Answer {
                status: 503,
                reports: vec![("site-a".into(), "site-b".into())],
                summary: "taking site-a's backup to site-b offline: 503".into(),
                monitor: false,
            })
        );
        let monitor = r#"{"target":"decision","decision":{"status":200,"outcome":"done","alerts":[{"index":0,"status":"firing","reporter":"site-b","site":"site-a","outcome":"done","mode":"monitor","reason":"monitor: would fence site-b"}]}}"#;
        assert_eq!(parse_decision(monitor).map(|a| a.monitor), Some(true));
        let rejected = r#"{"target":"decision","decision":{"status":401,"outcome":"unauthorized","reason":"wrong password","alerts":[]}}"#;
        assert_eq!(
            parse_decision(rejected).map(|a| (a.status, a.summary)),
            Some((401, "wrong password".to_string()))
        );
        assert_eq!(
            parse_decision(r#"{"target":"fence_lambda::live","event":"probe_unreachable"}"#),
            None
        );
        assert_eq!(parse_decision("not json"), None);
    }
}
