//! What to do with one alarm notice: pin a health check, ignore the notice, or reject it.

use std::collections::BTreeSet;

use aws_topology::route53::HealthCheckId;
use serde::Serialize;

use crate::alarm::{AlarmMetric, AlarmNotice, AlarmState};

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
pub enum Decision {
    Pin(HealthCheckId),
    Ignore(Ignored),
    Reject(Rejected),
}

/// Decides one notice. The health check comes from the dimension *named* `HealthCheckId`: the
/// seed read the first dimension, which is whatever the alarm's author listed first.
pub fn decide(notice: &AlarmNotice, policy: &Policy) -> Decision {
    if notice.state != AlarmState::Alarm {
        return Decision::Ignore(Ignored::NotInAlarm {
            state: notice.state,
        });
    }
    let dimensions = match &notice.metric {
        AlarmMetric::Single(dimensions) => dimensions,
        AlarmMetric::MetricMath => return Decision::Reject(Rejected::MetricMathAlarm),
        AlarmMetric::Composite => return Decision::Reject(Rejected::CompositeAlarm),
    };
    let Some((_, value)) = dimensions
        .iter()
        .find(|(name, _)| name == HEALTH_CHECK_DIMENSION)
    else {
        return Decision::Reject(Rejected::NoHealthCheckDimension);
    };
    let Ok(id) = value.parse::<HealthCheckId>() else {
        return Decision::Reject(Rejected::InvalidHealthCheckId {
            value: value.clone(),
        });
    };
    if let Some(allowed) = &policy.allowed
        && !allowed.contains(&id)
    {
        return Decision::Ignore(Ignored::NotInAllowlist {
            health_check_id: id.to_string(),
        });
    }
    Decision::Pin(id)
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

    fn dims(pairs: &[(&str, &str)]) -> AlarmMetric {
        AlarmMetric::Single(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn pin(id: &str) -> Decision {
        Decision::Pin(id.parse().unwrap())
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
        let rows: Vec<(&str, AlarmNotice, Policy, Decision)> = vec![
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
                Decision::Ignore(Ignored::NotInAlarm { state: Ok }),
            ),
            (
                "insufficient_data_is_not_a_failure",
                notice(InsufficientData, health_check.clone()),
                policy(None),
                Decision::Ignore(Ignored::NotInAlarm {
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
                "metric_math_alarm_without_dimensions_is_reported_not_acted_on",
                notice(Alarm, AlarmMetric::MetricMath),
                policy(None),
                Decision::Reject(Rejected::MetricMathAlarm),
            ),
            (
                "metric_math_alarm_returning_ok_is_just_ignored",
                notice(Ok, AlarmMetric::MetricMath),
                policy(None),
                Decision::Ignore(Ignored::NotInAlarm { state: Ok }),
            ),
            (
                "composite_alarm_is_reported",
                notice(Alarm, AlarmMetric::Composite),
                policy(None),
                Decision::Reject(Rejected::CompositeAlarm),
            ),
            (
                "alarm_on_another_metric_names_no_health_check",
                notice(Alarm, dims(&[("InstanceId", "i-0abc")])),
                policy(None),
                Decision::Reject(Rejected::NoHealthCheckDimension),
            ),
            (
                "alarm_without_dimensions_names_no_health_check",
                notice(Alarm, dims(&[])),
                policy(None),
                Decision::Reject(Rejected::NoHealthCheckDimension),
            ),
            (
                "garbage_health_check_id_is_rejected",
                notice(Alarm, dims(&[(HEALTH_CHECK_DIMENSION, "../etc")])),
                policy(None),
                Decision::Reject(Rejected::InvalidHealthCheckId {
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
                Decision::Ignore(Ignored::NotInAllowlist {
                    health_check_id: SECONDARY.into(),
                }),
            ),
        ];
        for (name, notice, policy, expected) in rows {
            assert_eq!(decide(&notice, &policy), expected, "{name}");
        }
    }
}
