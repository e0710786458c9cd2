//! One CloudWatch Embedded Metric Format (EMF) line per invocation, for all three functions: the
//! only owner of the format, its namespace, metric names, units and dimensions.
//!
//! # The line
//!
//! [`emit`] writes, once per invocation and after the decision record, one JSON object on a line
//! of its own on stdout:
//!
//! ```json
//! {"_aws":{"Timestamp":1796000000000,"CloudWatchMetrics":[
//!   {"Namespace":"sitefence","Dimensions":[["FunctionName"]],
//!    "Metrics":[{"Name":"Duration","Unit":"Milliseconds"},{"Name":"RemoteCalls","Unit":"Count"},
//!               {"Name":"ColdStart","Unit":"Count"},{"Name":"UnfencedSeconds","Unit":"Seconds"}]},
//!   {"Namespace":"sitefence","Dimensions":[["FunctionName","Outcome"]],
//!    "Metrics":[{"Name":"Invocations","Unit":"Count"}]},
//!   {"Namespace":"sitefence","Dimensions":[["FunctionName","Rule"]],
//!    "Metrics":[{"Name":"Decisions","Unit":"Count"}]}]},
//!  "FunctionName":"keycloak-fence-fence","Outcome":"done","Rule":"preferred_site_alive",
//!  "Duration":6.8,"RemoteCalls":6,"ColdStart":0,"Invocations":1,"Decisions":1}
//! ```
//!
//! CloudWatch Logs extracts metrics only from a log event that *is* an EMF object, with nothing
//! before or after it, so the line is written by itself to stdout, never inside a `tracing`
//! event (whose JSON would nest it) and never through Lambda's text log format prefix (the
//! functions write their own JSON lines; docs/aws-behaviours.md, 70).
//!
//! # Dimensions, chosen for cost
//!
//! Every distinct (metric name, dimension set, dimension values) is one custom metric, billed
//! monthly. So each dimension set carries only the metrics it is for, in a directive of its own:
//! the measurements (`Duration`, `RemoteCalls`, `ColdStart`, `UnfencedSeconds`) by function
//! only; the outcome (six values of [`Disposition`]) only on an `Invocations` count; the
//! fence's survivor rule (seven values) only on a `Decisions` count. A fence deployment then
//! has at most 4 + 6 + 7 custom metrics, each other function 3 + 6, however long it runs. The
//! per-outcome duration or a per-request breakdown belongs in CloudWatch Logs Insights over the
//! decision records, not in metrics.
//!
//! # Why not a crate
//!
//! The issue asked for a maintained crate unless its cost said otherwise. Two were read:
//! `metrics_cloudwatch_embedded` 0.10 writes one dimension set per document holding every
//! label, so the three sets above (and the cost they save) cannot be expressed; it also goes
//! through the `metrics` facade's global recorder, writes one document per label set, and its
//! default feature links `lambda_http`, which the fence dropped for its cold start and ZIP
//! (BENCHMARKS.md). `metrique` (awslabs) can express them but brings about fifteen crates
//! (macros, a background writer thread, `rand`, `itertools`, `hashbrown`) for one line of five
//! numbers, and a queue that Lambda freezes after the response unless flushed by hand. This
//! module is serde_json, which every function links already, and adds no crate; the cost of the
//! line itself is in BENCHMARKS.md ("Metrics (issue 18)").
//!
//! # What is counted
//!
//! * `Duration`: the handler's time, from the event to the answer (the runtime's own overhead
//!   and Lambda's are in `AWS/Lambda` `Duration`).
//! * `RemoteCalls`: every HTTP request to AWS (each attempt, retries included: counted by the
//!   SDK's HTTP client, [`crate::aws::sdk_config`]) and to Infinispan (`ispn-client`) since the
//!   previous line. The first line of a process includes init's calls (the fence reads its
//!   secrets and topology during init), so that a cold start shows what it cost.
//! * `ColdStart`: 1 on the first invocation of the process, else 0.
//! * `UnfencedSeconds` (fence only, present only when it applies): how long the oldest firing
//!   alert of this request whose fence did not complete (a 5xx: transient or fatal) has been
//!   firing, from the alert's `startsAt`. It is what the "not completed in time" alarm reads:
//!   Alertmanager resends an unanswered alert at every group interval, so while a fence stays
//!   incomplete this keeps arriving, growing.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::outcome::Disposition;

/// The CloudWatch namespace of every metric the functions emit.
pub const NAMESPACE: &str = "sitefence";

/// Dimension names.
pub mod dimensions {
    /// The deployed function's name (`AWS_LAMBDA_FUNCTION_NAME`), as `AWS/Lambda` names it.
    pub const FUNCTION: &str = "FunctionName";
    pub const OUTCOME: &str = "Outcome";
    pub const RULE: &str = "Rule";
}

/// Metric names.
pub mod names {
    pub const DURATION: &str = "Duration";
    pub const REMOTE_CALLS: &str = "RemoteCalls";
    pub const COLD_START: &str = "ColdStart";
    pub const UNFENCED_SECONDS: &str = "UnfencedSeconds";
    pub const INVOCATIONS: &str = "Invocations";
    pub const DECISIONS: &str = "Decisions";
}

/// The EMF limits of one directive (CloudWatch's specification).
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

static REMOTE_CALLS: AtomicU64 = AtomicU64::new(0);
static COLD: AtomicBool = AtomicBool::new(true);
static FUNCTION_NAME: OnceLock<String> = OnceLock::new();

/// Counts one request to a remote service (AWS or Infinispan).
pub fn count_remote_call() {
    REMOTE_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// What one invocation reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation<'a> {
    pub outcome: Disposition,
    /// The fence's survivor rule, when the invocation carried out a decision.
    pub rule: Option<&'a str>,
    pub duration: Duration,
    /// See the module's documentation; `None` when no fence of the request is incomplete.
    pub unfenced: Option<Duration>,
}

/// What the process knows around the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub function: &'a str,
    pub cold_start: bool,
    pub remote_calls: u64,
    pub timestamp_ms: u64,
}

/// Writes the invocation's EMF line to stdout: once per invocation, never failing it.
pub fn emit(invocation: &Invocation<'_>) {
    let context = Context {
        function: function_name(),
        cold_start: COLD.swap(false, Ordering::Relaxed),
        remote_calls: REMOTE_CALLS.swap(0, Ordering::Relaxed),
        timestamp_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let line = document(invocation, &context);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The deployed name Lambda gives the process, else the name the logs use.
fn function_name() -> &'static str {
    FUNCTION_NAME.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| crate::logging::function().to_owned())
    })
}

/// The EMF document of one invocation.
pub fn document(invocation: &Invocation<'_>, context: &Context<'_>) -> Value {
    let directive = |dimensions: &[&str], metrics: &[(&str, &str)]| {
        json!({
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": metrics
                .iter()
                .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
                .collect::<Vec<_>>(),
        })
    };
    let mut measured = vec![
        (names::DURATION, "Milliseconds"),
        (names::REMOTE_CALLS, "Count"),
        (names::COLD_START, "Count"),
    ];
    if invocation.unfenced.is_some() {
        measured.push((names::UNFENCED_SECONDS, "Seconds"));
    }
    let mut directives = vec![
        directive(&[dimensions::FUNCTION], &measured),
        directive(
            &[dimensions::FUNCTION, dimensions::OUTCOME],
            &[(names::INVOCATIONS, "Count")],
        ),
    ];
    let rule = invocation.rule.map(dimension_value);
    if rule.is_some() {
        directives.push(directive(
            &[dimensions::FUNCTION, dimensions::RULE],
            &[(names::DECISIONS, "Count")],
        ));
    }
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        json!({"Timestamp": context.timestamp_ms, "CloudWatchMetrics": directives}),
    );
    root.insert(dimensions::FUNCTION.into(), json!(context.function));
    root.insert(
        dimensions::OUTCOME.into(),
        json!(outcome_name(invocation.outcome)),
    );
    if let Some(rule) = rule {
        root.insert(dimensions::RULE.into(), json!(rule));
        root.insert(names::DECISIONS.into(), json!(1));
    }
    let millis = (invocation.duration.as_secs_f64() * 10_000.0).round() / 10.0;
    root.insert(names::DURATION.into(), json!(millis));
    root.insert(names::REMOTE_CALLS.into(), json!(context.remote_calls));
    root.insert(
        names::COLD_START.into(),
        json!(u8::from(context.cold_start)),
    );
    root.insert(names::INVOCATIONS.into(), json!(1));
    if let Some(unfenced) = invocation.unfenced {
        root.insert(names::UNFENCED_SECONDS.into(), json!(unfenced.as_secs()));
    }
    Value::Object(root)
}

/// The outcome as the decision records spell it (`transient`, `bad_input`, ...).
pub fn outcome_name(outcome: Disposition) -> &'static str {
    match outcome {
        Disposition::Done => "done",
        Disposition::Ignored => "ignored",
        Disposition::BadInput => "bad_input",
        Disposition::Unauthorized => "unauthorized",
        Disposition::Transient => "transient",
        Disposition::Fatal => "fatal",
    }
}

/// A dimension value from a fixed vocabulary (a rule name): anything else, which a record
/// changed by hand could hold, becomes `other` rather than a new custom metric per value.
fn dimension_value(value: &str) -> &str {
    let plain = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { value } else { "other" }
}

/// The EMF documents of a log (the lines that carry `_aws`), each [`check`]ed; the first line
/// that fails, with the reason.
pub fn documents_in(log: &str) -> Result<Vec<Value>, String> {
    log.lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| check(line).map_err(|e| format!("{e}: {line}")))
        .collect()
}

/// Parses `line` as an EMF document and checks it against the specification's rules:
/// `_aws.Timestamp` a number, at least one directive, each with the namespace, dimension sets of
/// 1 to 30 keys that are string members of the root, and 1 to 100 metrics that are number
/// members of it, each with a unit. For tests, and for anyone reading the functions' logs.
pub fn check(line: &str) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = doc.get("_aws").ok_or("no _aws member")?;
    if !aws["Timestamp"].is_u64() {
        return Err("_aws.Timestamp is not a number of milliseconds".into());
    }
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    for directive in directives {
        if directive["Namespace"] != NAMESPACE {
            return Err(format!("namespace {}", directive["Namespace"]));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let keys = set
                .as_array()
                .filter(|k| !k.is_empty() && k.len() <= MAX_DIMENSIONS_PER_SET)
                .ok_or("a dimension set is empty or over 30 keys")?;
            for key in keys {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                if !doc[key].is_string() {
                    return Err(format!(
                        "dimension {key} is not a string member of the root"
                    ));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .filter(|m| !m.is_empty() && m.len() <= MAX_METRICS_PER_DIRECTIVE)
            .ok_or("Metrics is empty or over 100")?;
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no name")?;
            if !doc[name].is_number() {
                return Err(format!("metric {name} is not a number member of the root"));
            }
            if !metric["Unit"].is_string() {
                return Err(format!("metric {name} has no unit"));
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(cold_start: bool) -> Context<'static> {
        Context {
            function: "keycloak-fence-fence",
            cold_start,
            remote_calls: 6,
            timestamp_ms: 1_796_000_000_000,
        }
    }

    fn assert_valid_emf(line: &str) -> Value {
        check(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[test]
    fn a_completed_fence_has_its_rule_and_no_unfenced_time() {
        let invocation = Invocation {
            outcome: Disposition::Done,
            rule: Some("preferred_site_alive"),
            duration: Duration::from_micros(6_840),
            unfenced: None,
        };
        let line = document(&invocation, &context(false)).to_string();
        let doc = assert_valid_emf(&line);
        assert_eq!(doc["FunctionName"], "keycloak-fence-fence");
        assert_eq!(doc["Outcome"], "done");
        assert_eq!(doc["Rule"], "preferred_site_alive");
        assert_eq!(doc["Duration"], 6.8);
        assert_eq!(doc["RemoteCalls"], 6);
        assert_eq!(doc["ColdStart"], 0);
        assert_eq!(doc["Decisions"], 1);
        assert!(doc.get("UnfencedSeconds").is_none(), "{line}");
        let sets: Vec<Value> = doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .map(|d| d.iter().map(|d| d["Dimensions"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(
            sets,
            [
                json!([["FunctionName"]]),
                json!([["FunctionName", "Outcome"]]),
                json!([["FunctionName", "Rule"]])
            ]
        );
    }

    #[test]
    fn an_incomplete_fence_says_how_long_its_alert_has_fired() {
        let invocation = Invocation {
            outcome: Disposition::Transient,
            rule: None,
            duration: Duration::from_millis(20_000),
            unfenced: Some(Duration::from_secs(427)),
        };
        let line = document(&invocation, &context(true)).to_string();
        let doc = assert_valid_emf(&line);
        assert_eq!(doc["Outcome"], "transient");
        assert_eq!(doc["UnfencedSeconds"], 427);
        assert_eq!(doc["ColdStart"], 1);
        assert!(doc.get("Rule").is_none() && doc.get("Decisions").is_none());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_rule_outside_the_vocabulary_is_other() {
        for (rule, shown) in [
            ("reporter_unhealthy", "reporter_unhealthy"),
            ("Reporter Unhealthy", "other"),
            ("", "other"),
        ] {
            let invocation = Invocation {
                outcome: Disposition::Done,
                rule: Some(rule),
                duration: Duration::ZERO,
                unfenced: None,
            };
            let doc = document(&invocation, &context(false));
            assert_eq!(doc["Rule"], shown, "{rule}");
        }
    }

    #[test]
    fn every_outcome_is_named_as_the_records_name_it() {
        for outcome in [
            Disposition::Done,
            Disposition::Ignored,
            Disposition::BadInput,
            Disposition::Unauthorized,
            Disposition::Transient,
            Disposition::Fatal,
        ] {
            assert_eq!(json!(outcome), json!(outcome_name(outcome)));
        }
    }

    #[test]
    fn the_line_is_one_json_object_on_one_line() {
        let invocation = Invocation {
            outcome: Disposition::Fatal,
            rule: None,
            duration: Duration::from_millis(3),
            unfenced: None,
        };
        let line = document(&invocation, &context(false)).to_string();
        assert!(line.starts_with('{') && line.ends_with('}') && !line.contains('\n'));
    }
}
