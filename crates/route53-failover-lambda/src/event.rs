//! The two shapes a CloudWatch alarm reaches the function in, parsed once into [`AlarmNotice`].
//!
//! * Through SNS: `Records[].Sns.Message` is the alarm as a JSON *string*, with `NewStateValue`
//!   and `Trigger.Namespace`, `Trigger.MetricName` and `Trigger.Dimensions`
//!   (`[{"name", "value"}]`), or, for a metric-math alarm, `Trigger.Metrics` and no metric at the
//!   top level of `Trigger`. One event may carry several records.
//! * Directly (alarm action → Lambda): `source: aws.cloudwatch`, `alarmData.state.value`, and
//!   `alarmData.configuration.metrics[].metricStat.metric` with `namespace`, `name` and
//!   `dimensions` as a name → value object.
//!
//! A record that cannot be read is an error of that record only: the other records of the batch
//! are still handled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which of the two shapes the event had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Sns,
    CloudwatchAlarm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Alarm,
    Ok,
    InsufficientData,
}

impl AlarmState {
    fn parse(value: &str) -> Result<Self, RecordError> {
        match value {
            "ALARM" => Ok(Self::Alarm),
            "OK" => Ok(Self::Ok),
            "INSUFFICIENT_DATA" => Ok(Self::InsufficientData),
            other => Err(RecordError::UnknownState(other.to_owned())),
        }
    }
}

/// What the alarm watches, as far as finding the health check goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmMetric {
    Single(Metric),
    /// A metric-math alarm: its expression may combine several health checks (or none), so no
    /// single health check can be read from it.
    MetricMath,
    /// A composite alarm: a rule over other alarms, no metric at all.
    Composite,
}

/// The one metric a plain alarm watches, as the event named it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metric {
    /// `None` when the event did not say (CloudWatch always does for a single-metric alarm).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// (name, value), in the order the event gave them.
    pub dimensions: Vec<(String, String)>,
}

/// One alarm state change, whichever way it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmNotice {
    pub alarm_name: String,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
    pub metric: AlarmMetric,
}

/// Why a record is not an alarm notice the function can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not an SNS notification (no Sns.Message)")]
    NotSns,
    #[error("SNS message is not a CloudWatch alarm: {0}")]
    NotAnAlarm(String),
    #[error("alarm state {0:?} is not ALARM, OK or INSUFFICIENT_DATA")]
    UnknownState(String),
}

/// Why the whole event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "event is neither SNS records nor a CloudWatch alarm invocation (source aws.cloudwatch)"
    )]
    UnknownShape,
    #[error("SNS event carries no records")]
    NoRecords,
    #[error("CloudWatch alarm invocation cannot be read: {0}")]
    BadAlarm(String),
}

/// The records of one invocation, each read on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub records: Vec<Result<AlarmNotice, RecordError>>,
}

/// Reads an invocation's event.
pub fn parse_event(event: &Value) -> Result<Trigger, EventError> {
    if let Some(records) = event.get("Records") {
        let records = records.as_array().ok_or(EventError::NoRecords)?;
        if records.is_empty() {
            return Err(EventError::NoRecords);
        }
        return Ok(Trigger {
            kind: TriggerKind::Sns,
            records: records.iter().map(parse_sns_record).collect(),
        });
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.cloudwatch") {
        let direct = DirectInvocation::deserialize(event)
            .map_err(|err| EventError::BadAlarm(err.to_string()))?;
        return Ok(Trigger {
            kind: TriggerKind::CloudwatchAlarm,
            records: vec![direct.alarm_data.into_notice()],
        });
    }
    Err(EventError::UnknownShape)
}

fn parse_sns_record(record: &Value) -> Result<AlarmNotice, RecordError> {
    let message = record
        .get("Sns")
        .and_then(|sns| sns.get("Message"))
        .and_then(Value::as_str)
        .ok_or(RecordError::NotSns)?;
    let alarm: SnsAlarm =
        serde_json::from_str(message).map_err(|err| RecordError::NotAnAlarm(err.to_string()))?;
    alarm.into_notice()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarm {
    alarm_name: String,
    new_state_value: String,
    old_state_value: Option<String>,
    trigger: Option<SnsTrigger>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsTrigger {
    namespace: Option<String>,
    metric_name: Option<String>,
    dimensions: Option<Vec<SnsDimension>>,
    metrics: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct SnsDimension {
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Value")]
    value: String,
}

impl SnsAlarm {
    fn into_notice(self) -> Result<AlarmNotice, RecordError> {
        let metric = match self.trigger {
            Some(SnsTrigger {
                metrics: Some(_), ..
            }) => AlarmMetric::MetricMath,
            Some(trigger) => AlarmMetric::Single(Metric {
                namespace: trigger.namespace,
                name: trigger.metric_name,
                dimensions: trigger
                    .dimensions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|dimension| (dimension.name, dimension.value))
                    .collect(),
            }),
            // No trigger at all: nothing names a metric or a health check.
            None => AlarmMetric::Single(Metric::default()),
        };
        Ok(AlarmNotice {
            alarm_name: self.alarm_name,
            state: AlarmState::parse(&self.new_state_value)?,
            previous_state: self
                .old_state_value
                .as_deref()
                .map(AlarmState::parse)
                .transpose()?,
            metric,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectInvocation {
    alarm_data: AlarmData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmData {
    alarm_name: String,
    state: StateValue,
    previous_state: Option<StateValue>,
    configuration: Option<AlarmConfiguration>,
}

#[derive(Deserialize)]
struct StateValue {
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmConfiguration {
    metrics: Option<Vec<DirectMetric>>,
    alarm_rule: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectMetric {
    metric_stat: Option<MetricStat>,
    expression: Option<String>,
}

#[derive(Deserialize)]
struct MetricStat {
    metric: DirectMetricId,
}

#[derive(Deserialize)]
struct DirectMetricId {
    namespace: Option<String>,
    name: Option<String>,
    dimensions: Option<BTreeMap<String, String>>,
}

impl AlarmData {
    fn into_notice(self) -> Result<AlarmNotice, RecordError> {
        let metric = match self.configuration {
            Some(AlarmConfiguration {
                alarm_rule: Some(_),
                ..
            }) => AlarmMetric::Composite,
            Some(AlarmConfiguration {
                metrics: Some(metrics),
                ..
            }) => direct_metric(metrics),
            _ => AlarmMetric::Single(Metric::default()),
        };
        Ok(AlarmNotice {
            alarm_name: self.alarm_name,
            state: AlarmState::parse(&self.state.value)?,
            previous_state: self
                .previous_state
                .map(|state| AlarmState::parse(&state.value))
                .transpose()?,
            metric,
        })
    }
}

/// A direct invocation always lists metrics; a plain alarm has exactly one, without expression.
fn direct_metric(metrics: Vec<DirectMetric>) -> AlarmMetric {
    let is_math = metrics.len() != 1 || metrics.iter().any(|m| m.expression.is_some());
    if is_math {
        return AlarmMetric::MetricMath;
    }
    let Some(metric) = metrics
        .into_iter()
        .find_map(|m| m.metric_stat)
        .map(|stat| stat.metric)
    else {
        return AlarmMetric::Single(Metric::default());
    };
    AlarmMetric::Single(Metric {
        namespace: metric.namespace,
        name: metric.name,
        dimensions: metric.dimensions.unwrap_or_default().into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sns(messages: &[Value]) -> Value {
        let records: Vec<Value> = messages
            .iter()
            .map(|message| json!({"EventSource": "aws:sns", "Sns": {"Message": message.to_string()}}))
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn sns_dimensions_keep_names_and_order() {
        let event = sns(&[json!({
            "AlarmName": "primary",
            "NewStateValue": "ALARM",
            "OldStateValue": "OK",
            "Trigger": {
                "MetricName": "HealthCheckStatus",
                "Namespace": "AWS/Route53",
                "Dimensions": [
                    {"value": "eu-west-1", "name": "Region"},
                    {"value": "hc-1", "name": "HealthCheckId"}
                ]
            }
        })]);
        let trigger = parse_event(&event).unwrap();
        assert_eq!(trigger.kind, TriggerKind::Sns);
        assert_eq!(
            trigger.records,
            vec![Ok(AlarmNotice {
                alarm_name: "primary".into(),
                state: AlarmState::Alarm,
                previous_state: Some(AlarmState::Ok),
                metric: AlarmMetric::Single(Metric {
                    namespace: Some("AWS/Route53".into()),
                    name: Some("HealthCheckStatus".into()),
                    dimensions: vec![
                        ("Region".into(), "eu-west-1".into()),
                        ("HealthCheckId".into(), "hc-1".into()),
                    ],
                }),
            })]
        );
    }

    /// The alarm's metric as each trigger shape names it, for the decision to check.
    #[test]
    fn metric_is_read_from_every_shape() {
        let sns_trigger = |trigger: Value| {
            let event =
                sns(&[json!({"AlarmName": "a", "NewStateValue": "ALARM", "Trigger": trigger})]);
            parse_event(&event).unwrap().records[0]
                .clone()
                .map(|n| n.metric)
        };
        let direct = |metrics: Value| {
            let event = json!({
                "source": "aws.cloudwatch",
                "alarmData": {
                    "alarmName": "a",
                    "state": {"value": "ALARM"},
                    "configuration": {"metrics": metrics}
                }
            });
            parse_event(&event).unwrap().records[0]
                .clone()
                .map(|n| n.metric)
        };
        let single = |namespace: Option<&str>, name: Option<&str>, dimensions: &[(&str, &str)]| {
            Ok(AlarmMetric::Single(Metric {
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                dimensions: dimensions
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
            }))
        };
        let rows = [
            (
                "sns_other_metric_keeps_its_namespace_and_name",
                sns_trigger(json!({
                    "MetricName": "CPUUtilization",
                    "Namespace": "AWS/EC2",
                    "Dimensions": [{"value": "hc-1", "name": "HealthCheckId"}]
                })),
                single(
                    Some("AWS/EC2"),
                    Some("CPUUtilization"),
                    &[("HealthCheckId", "hc-1")],
                ),
            ),
            (
                "sns_trigger_without_metric_names_none",
                sns_trigger(json!({"Dimensions": [{"value": "hc-1", "name": "HealthCheckId"}]})),
                single(None, None, &[("HealthCheckId", "hc-1")]),
            ),
            (
                // aws-lambda-go's `cloudwatch-alarm-sns-payload-multiple-metrics.json` shape: no
                // metric at the top of `Trigger`, the queries in `Metrics`.
                "sns_metric_math_is_metric_math_even_over_health_check_status",
                sns_trigger(json!({"Metrics": [
                    {"Expression": "MIN([m1])", "Id": "e1", "ReturnData": true},
                    {"Id": "m1", "ReturnData": false, "MetricStat": {"Metric": {
                        "Namespace": "AWS/Route53",
                        "MetricName": "HealthCheckStatus",
                        "Dimensions": [{"value": "hc-1", "name": "HealthCheckId"}]
                    }}}
                ]})),
                Ok(AlarmMetric::MetricMath),
            ),
            (
                "direct_single_metric_keeps_its_namespace_and_name",
                direct(json!([{"id": "m1", "metricStat": {"metric": {
                    "namespace": "AWS/Route53",
                    "name": "HealthCheckStatus",
                    "dimensions": {"HealthCheckId": "hc-1"}
                }}}])),
                single(
                    Some("AWS/Route53"),
                    Some("HealthCheckStatus"),
                    &[("HealthCheckId", "hc-1")],
                ),
            ),
            (
                "direct_metric_math_is_metric_math",
                direct(json!([
                    {"id": "e1", "expression": "MIN([m1])"},
                    {"id": "m1", "metricStat": {"metric": {
                        "namespace": "AWS/Route53",
                        "name": "HealthCheckStatus",
                        "dimensions": {"HealthCheckId": "hc-1"}
                    }}}
                ])),
                Ok(AlarmMetric::MetricMath),
            ),
        ];
        for (name, read, expected) in rows {
            assert_eq!(read, expected, "{name}");
        }
    }

    #[test]
    fn bad_record_does_not_spoil_the_batch() {
        let mut event = sns(&[json!({"AlarmName": "a", "NewStateValue": "OK"})]);
        event["Records"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Sns": {"Message": "Hello\r\nworld!"}}));
        event["Records"].as_array_mut().unwrap().push(json!({}));
        let trigger = parse_event(&event).unwrap();
        assert_eq!(trigger.records.len(), 3);
        assert!(trigger.records[0].is_ok());
        assert!(matches!(
            trigger.records[1],
            Err(RecordError::NotAnAlarm(_))
        ));
        assert_eq!(trigger.records[2], Err(RecordError::NotSns));
    }

    #[test]
    fn unknown_state_is_a_record_error() {
        let event = sns(&[json!({"AlarmName": "a", "NewStateValue": "MAYBE"})]);
        let trigger = parse_event(&event).unwrap();
        assert_eq!(
            trigger.records,
            vec![Err(RecordError::UnknownState("MAYBE".into()))]
        );
    }

    #[test]
    fn events_that_are_not_alarms_are_refused_whole() {
        let rows = [
            (json!({}), EventError::UnknownShape),
            (json!({"Records": []}), EventError::NoRecords),
            (json!({"Records": "x"}), EventError::NoRecords),
            (
                json!({"source": "aws.ec2", "detail": {}}),
                EventError::UnknownShape,
            ),
            (json!("just a string"), EventError::UnknownShape),
        ];
        for (event, expected) in rows {
            assert_eq!(parse_event(&event), Err(expected), "{event}");
        }
        assert!(matches!(
            parse_event(&json!({"source": "aws.cloudwatch"})),
            Err(EventError::BadAlarm(_))
        ));
    }

    #[test]
    fn direct_composite_alarm_names_no_metric() {
        let event = json!({
            "source": "aws.cloudwatch",
            "alarmData": {
                "alarmName": "composite",
                "state": {"value": "ALARM"},
                "configuration": {"alarmRule": "ALARM(a) OR ALARM(b)"}
            }
        });
        let trigger = parse_event(&event).unwrap();
        assert_eq!(trigger.kind, TriggerKind::CloudwatchAlarm);
        assert_eq!(
            trigger.records[0].as_ref().map(|n| n.metric.clone()),
            Ok(AlarmMetric::Composite)
        );
    }
}
