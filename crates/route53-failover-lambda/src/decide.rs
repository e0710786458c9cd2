//! What to do with one alarm notice: pin a health check, ignore the notice, or reject it.

use std::collections::BTreeSet;

use aws_topology::route53::HealthCheckId;
use serde::Serialize;

use crate::event::{AlarmMetric, AlarmNotice, AlarmState, Metric};

/// The namespace and metric of the one alarm this function serves: Route 53's status of a
/// health check (1 healthy, 0 failed).
pub const HEALTH_CHECK_NAMESPACE: &str = "AWS/Route53";
pub const HEALTH_CHECK_METRIC: &str = "HealthCheckStatus";

/// The dimension CloudWatch's `AWS/Route53` metrics carry the health check in.
pub const HEALTH_CHECK_DIMENSION: &str = "HealthCheckId";

/// The deployment's settings, read once at cold start (`config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `FAILED_OVER_PATH`: where a failed health check is pointed so it stays failed.
    pub failed_over_path: String,
    /// `HEALTH_CHECK_IDS`: when set, only these health checks are ever pinned.
    pub allowed: Option<BTreeSet<HealthCheckId>>,
}

/// Why a notice leads to no action although it was read fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Ignored {
    /// Only a transition into `ALARM` fails over; `OK` and `INSUFFICIENT_DATA` never fail back
    /// (that is an operator's decision, after the sites are in sync).
    NotInAlarm { state: AlarmState },
    /// `HEALTH_CHECK_IDS` is set and does not list this health check.
    NotInAllowlist { health_check_id: String },
    /// The alarm watches another metric than `AWS/Route53` `HealthCheckStatus`, though it may
    /// carry a `HealthCheckId` dimension (`HealthCheckPercentageHealthy`, a custom metric...):
    /// its `ALARM` says nothing about the health check failing.
    NotHealthCheckStatus {
        namespace: Option<String>,
        metric_name: Option<String>,
    },
}

/// Why a notice cannot be acted on: the alarm is not one this function can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Rejected {
    /// Metric math can combine any number of health checks; guessing one could fail over the
    /// wrong site.
    MetricMathAlarm,
    CompositeAlarm,
    /// The alarm's metric has no `HealthCheckId` dimension: it does not watch a health check.
    NoHealthCheckDimension,
    InvalidHealthCheckId {
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Pin(HealthCheckId),
    Ignore(Ignored),
    Reject(Rejected),
}

/// Decides one notice. Only an alarm on `AWS/Route53` `HealthCheckStatus` pins anything; the
/// health check comes from the dimension *named* `HealthCheckId`: the seed read the first
/// dimension, which is whatever the alarm's author listed first.
pub fn decide(notice: &AlarmNotice, policy: &Policy) -> Plan {
    if notice.state != AlarmState::Alarm {
        return Plan::Ignore(Ignored::NotInAlarm {
            state: notice.state,
        });
    }
    let metric = match &notice.metric {
        AlarmMetric::Single(metric) => metric,
        AlarmMetric::MetricMath => return Plan::Reject(Rejected::MetricMathAlarm),
        AlarmMetric::Composite => return Plan::Reject(Rejected::CompositeAlarm),
    };
    if !is_health_check_status(metric) {
        return Plan::Ignore(Ignored::NotHealthCheckStatus {
            namespace: metric.namespace.clone(),
            metric_name: metric.name.clone(),
        });
    }
    let Some((_, value)) = metric
        .dimensions
        .iter()
        .find(|(name, _)| name == HEALTH_CHECK_DIMENSION)
    else {
        return Plan::Reject(Rejected::NoHealthCheckDimension);
    };
    let Ok(id) = value.parse::<HealthCheckId>() else {
        return Plan::Reject(Rejected::InvalidHealthCheckId {
            value: value.clone(),
        });
    };
    if let Some(allowed) = &policy.allowed
        && !allowed.contains(&id)
    {
        return Plan::Ignore(Ignored::NotInAllowlist {
            health_check_id: id.to_string(),
        });
    }
    Plan::Pin(id)
}

/// The health check an alarm watches, when its `ALARM` would pin it (the rules of [`decide`],
/// whatever the state). An `OK` notice of it means the health check is healthy again, which
/// after a failover is an operator's fail-back: the function reads it then, so that the next
/// pin is one write against the version it read (`handler`).
pub fn watched_health_check(notice: &AlarmNotice, policy: &Policy) -> Option<HealthCheckId> {
    let alarm = AlarmNotice {
        state: AlarmState::Alarm,
        ..notice.clone()
    };
    match decide(&alarm, policy) {
        Plan::Pin(id) => Some(id),
        Plan::Ignore(_) | Plan::Reject(_) => None,
    }
}

/// Both must be named and exact: an event that leaves either out names no metric to trust.
fn is_health_check_status(metric: &Metric) -> bool {
    metric.namespace.as_deref() == Some(HEALTH_CHECK_NAMESPACE)
        && metric.name.as_deref() == Some(HEALTH_CHECK_METRIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "233e180f-f023-45a3-954e-415303f21eab";
    const SECONDARY: &str = "8c1b7e52-0f3a-4d8e-9a51-2b6f0c9d4e11";

    fn notice(state: AlarmState, metric: AlarmMetric) -> AlarmNotice {
        AlarmNotice {
            alarm_name: "primary-health".into(),
            state,
            previous_state: Some(AlarmState::Ok),
            metric,
        }
    }

    /// An alarm on `namespace` `name` (`None`: the event did not say) with these dimensions.
    fn on(namespace: Option<&str>, name: Option<&str>, pairs: &[(&str, &str)]) -> AlarmMetric {
        AlarmMetric::Single(Metric {
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            dimensions: pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    /// An alarm on `AWS/Route53` `HealthCheckStatus` with these dimensions.
    fn dims(pairs: &[(&str, &str)]) -> AlarmMetric {
        on(
            Some(HEALTH_CHECK_NAMESPACE),
            Some(HEALTH_CHECK_METRIC),
            pairs,
        )
    }

    fn not_health_check_status(namespace: Option<&str>, name: Option<&str>) -> Plan {
        Plan::Ignore(Ignored::NotHealthCheckStatus {
            namespace: namespace.map(str::to_owned),
            metric_name: name.map(str::to_owned),
        })
    }

    fn pin(id: &str) -> Plan {
        Plan::Pin(id.parse().unwrap())
    }

    fn policy(allowed: Option<&[&str]>) -> Policy {
        Policy {
            failed_over_path: aws_topology::route53::FAILED_OVER_PATH.into(),
            allowed: allowed.map(|ids| ids.iter().map(|id| id.parse().unwrap()).collect()),
        }
    }

    #[test]
    fn decide_table() {
        use AlarmState::*;
        let health_check = dims(&[(HEALTH_CHECK_DIMENSION, PRIMARY)]);
        let rows: Vec<(&str, AlarmNotice, Policy, Plan)> = vec![
            (
                "alarm_pins_the_health_check",
                notice(Alarm, health_check.clone()),
                policy(None),
                pin(PRIMARY),
            ),
            (
                "ok_never_fails_back",
                notice(Ok, health_check.clone()),
                policy(None),
                Plan::Ignore(Ignored::NotInAlarm { state: Ok }),
            ),
            (
                "insufficient_data_is_not_a_failure",
                notice(InsufficientData, health_check.clone()),
                policy(None),
                Plan::Ignore(Ignored::NotInAlarm {
                    state: InsufficientData,
                }),
            ),
            (
                "seed_bug_health_check_id_not_first_dimension",
                notice(
                    Alarm,
                    dims(&[("Region", "us-east-1"), (HEALTH_CHECK_DIMENSION, PRIMARY)]),
                ),
                policy(None),
                pin(PRIMARY),
            ),
            (
                // Even when every query is `AWS/Route53` `HealthCheckStatus`: the expression
                // decides, and it may combine several health checks.
                "metric_math_alarm_is_reported_not_acted_on",
                notice(Alarm, AlarmMetric::MetricMath),
                policy(None),
                Plan::Reject(Rejected::MetricMathAlarm),
            ),
            (
                "metric_math_alarm_returning_ok_is_just_ignored",
                notice(Ok, AlarmMetric::MetricMath),
                policy(None),
                Plan::Ignore(Ignored::NotInAlarm { state: Ok }),
            ),
            (
                "composite_alarm_is_reported",
                notice(Alarm, AlarmMetric::Composite),
                policy(None),
                Plan::Reject(Rejected::CompositeAlarm),
            ),
            (
                "other_route53_metric_with_health_check_dimension_is_ignored",
                notice(
                    Alarm,
                    on(
                        Some("AWS/Route53"),
                        Some("HealthCheckPercentageHealthy"),
                        &[(HEALTH_CHECK_DIMENSION, PRIMARY)],
                    ),
                ),
                policy(None),
                not_health_check_status(Some("AWS/Route53"), Some("HealthCheckPercentageHealthy")),
            ),
            (
                "health_check_status_of_another_namespace_is_ignored",
                notice(
                    Alarm,
                    on(
                        Some("Custom/Probes"),
                        Some(HEALTH_CHECK_METRIC),
                        &[(HEALTH_CHECK_DIMENSION, PRIMARY)],
                    ),
                ),
                policy(None),
                not_health_check_status(Some("Custom/Probes"), Some(HEALTH_CHECK_METRIC)),
            ),
            (
                "alarm_on_another_metric_is_ignored",
                notice(
                    Alarm,
                    on(
                        Some("AWS/EC2"),
                        Some("CPUUtilization"),
                        &[("InstanceId", "i-0abc")],
                    ),
                ),
                policy(None),
                not_health_check_status(Some("AWS/EC2"), Some("CPUUtilization")),
            ),
            (
                "alarm_naming_no_metric_is_ignored_even_with_a_health_check_dimension",
                notice(Alarm, on(None, None, &[(HEALTH_CHECK_DIMENSION, PRIMARY)])),
                policy(None),
                not_health_check_status(None, None),
            ),
            (
                "namespace_and_metric_are_compared_exactly",
                notice(
                    Alarm,
                    on(
                        Some("aws/route53"),
                        Some("healthcheckstatus"),
                        &[(HEALTH_CHECK_DIMENSION, PRIMARY)],
                    ),
                ),
                policy(None),
                not_health_check_status(Some("aws/route53"), Some("healthcheckstatus")),
            ),
            (
                "other_metric_returning_ok_is_just_not_in_alarm",
                notice(
                    Ok,
                    on(
                        Some("AWS/EC2"),
                        Some("CPUUtilization"),
                        &[(HEALTH_CHECK_DIMENSION, PRIMARY)],
                    ),
                ),
                policy(None),
                Plan::Ignore(Ignored::NotInAlarm { state: Ok }),
            ),
            (
                "health_check_status_without_health_check_dimension_is_rejected",
                notice(Alarm, dims(&[("Region", "us-east-1")])),
                policy(None),
                Plan::Reject(Rejected::NoHealthCheckDimension),
            ),
            (
                "alarm_without_dimensions_names_no_health_check",
                notice(Alarm, dims(&[])),
                policy(None),
                Plan::Reject(Rejected::NoHealthCheckDimension),
            ),
            (
                "garbage_health_check_id_is_rejected",
                notice(Alarm, dims(&[(HEALTH_CHECK_DIMENSION, "../etc")])),
                policy(None),
                Plan::Reject(Rejected::InvalidHealthCheckId {
                    value: "../etc".into(),
                }),
            ),
            (
                "allowlisted_health_check_is_pinned",
                notice(Alarm, health_check.clone()),
                policy(Some(&[SECONDARY, PRIMARY])),
                pin(PRIMARY),
            ),
            (
                "health_check_outside_allowlist_is_ignored",
                notice(Alarm, dims(&[(HEALTH_CHECK_DIMENSION, SECONDARY)])),
                policy(Some(&[PRIMARY])),
                Plan::Ignore(Ignored::NotInAllowlist {
                    health_check_id: SECONDARY.into(),
                }),
            ),
        ];
        for (name, notice, policy, expected) in rows {
            assert_eq!(decide(&notice, &policy), expected, "{name}");
        }
    }
}
