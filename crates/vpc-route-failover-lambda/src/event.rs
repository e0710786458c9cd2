//! The EventBridge "EC2 Instance State-change Notification", parsed into a [`StateChange`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_topology::ec2::{InstanceId, InstanceState};
use serde::Deserialize;
use serde_json::Value;

pub const DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// One instance changing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub instance: InstanceId,
    pub state: InstanceState,
    /// When the state changed (the envelope's `time`); `None` when the event did not say.
    pub time: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not an EC2 instance state-change notification (detail-type {0:?})")]
    NotAStateChange(String),
    #[error("state-change notification cannot be read: {0}")]
    Unreadable(String),
    #[error("{0}")]
    InvalidInstance(String),
    #[error("{0}")]
    UnknownState(String),
    #[error("event time {0:?} is not an RFC 3339 timestamp")]
    InvalidTime(String),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    time: Option<String>,
    detail: Detail,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "instance-id")]
    instance_id: String,
    state: String,
}

pub fn parse_event(event: &Value) -> Result<StateChange, EventError> {
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    if let Some(other) = detail_type.filter(|t| *t != DETAIL_TYPE) {
        return Err(EventError::NotAStateChange(other.to_owned()));
    }
    let envelope =
        Envelope::deserialize(event).map_err(|err| EventError::Unreadable(err.to_string()))?;
    if envelope.detail_type.is_none() {
        return Err(EventError::NotAStateChange(String::new()));
    }
    let time = match envelope.time {
        None => None,
        Some(text) => Some(parse_time(&text).ok_or(EventError::InvalidTime(text))?),
    };
    Ok(StateChange {
        time,
        instance: envelope.detail.instance_id.parse().map_err(
            |err: aws_topology::ec2::InvalidId| EventError::InvalidInstance(err.to_string()),
        )?,
        state: envelope.detail.state.parse().map_err(
            |err: aws_topology::ec2::InvalidInstanceState| {
                EventError::UnknownState(err.to_string())
            },
        )?,
    })
}

/// An RFC 3339 timestamp, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`: EventBridge writes the
/// envelope's `time` as `2026-11-25T10:02:52Z`.
fn parse_time(text: &str) -> Option<SystemTime> {
    let number = |at: usize, digits: usize| -> Option<i64> {
        let field = text.get(at..at + digits)?;
        if !field.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        field.parse().ok()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    let bytes = text.as_bytes();
    if separators
        .iter()
        .any(|&(at, separator)| bytes.get(at) != Some(&separator))
        || !matches!(bytes.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && usize::try_from(month - 1)
            .ok()
            .and_then(|index| month_days.get(index))
            .is_some_and(|&days| (1..=days).contains(&day))
        && hour < 24
        && minute < 60
        // 60: a leap second.
        && second <= 60;
    if !valid {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Nanoseconds are the first nine digits, padded with zeros.
        for position in 0..9 {
            let digit = fraction
                .as_bytes()
                .get(position)
                .filter(|_| position < digits);
            nanos = nanos * 10 + digit.map_or(0, |d| u32::from(d - b'0'));
        }
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (
                rest.get(1..3)?.parse::<i64>().ok()?,
                rest.get(4..6)?.parse::<i64>().ok()?,
            );
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(instance: &str, state: &str) -> Value {
        json!({
            "version": "0",
            "detail-type": DETAIL_TYPE,
            "source": "aws.ec2",
            "detail": {"instance-id": instance, "state": state}
        })
    }

    #[test]
    fn seed_event_is_read() {
        // The event the seed's author captured from CloudWatch Events.
        let seed = json!({"version": "0", "id": "153bbf21-05cb-aa5f-f22d-c602cd2dbee4",
            "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
            "account": "731262942057", "time": "2021-12-11T12:59:41Z", "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:731262942057:instance/i-045ebd27124159b6d"],
            "detail": {"instance-id": "i-045ebd27124159b6d", "state": "pending"}});
        assert_eq!(
            parse_event(&seed),
            Ok(StateChange {
                instance: "i-045ebd27124159b6d".parse().unwrap(),
                state: InstanceState::Pending,
                time: Some(UNIX_EPOCH + Duration::from_secs(1_639_227_581)),
            })
        );
    }

    #[test]
    fn event_without_time_is_read_with_none() {
        let change = parse_event(&event("i-0abc", "stopped")).unwrap();
        assert_eq!(change.time, None);
    }

    #[test]
    fn times_parse_as_rfc3339() {
        let at = |seconds: u64, nanos: u32| Some(UNIX_EPOCH + Duration::new(seconds, nanos));
        let rows = [
            ("1970-01-01T00:00:00Z", at(0, 0)),
            ("2021-12-11T12:59:41Z", at(1_639_227_581, 0)),
            ("2026-11-25T10:02:52Z", at(1_795_600_972, 0)),
            ("2000-02-29T00:00:00Z", at(951_782_400, 0)),
            ("2026-11-25T10:02:52.5Z", at(1_795_600_972, 500_000_000)),
            (
                "2026-11-25T10:02:52.1234567891Z",
                at(1_795_600_972, 123_456_789),
            ),
            ("2026-11-25T11:02:52+01:00", at(1_795_600_972, 0)),
            ("2026-11-25t10:02:52z", at(1_795_600_972, 0)),
            ("2026-11-25T10:02:52", None),
            ("2026-11-25 10:02:52Z", None),
            ("2026-02-29T10:02:52Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-25T24:00:00Z", None),
            ("2026-11-25T10:02:52.Z", None),
            ("2026-11-25T10:02:52+1:00", None),
            ("1969-12-31T23:59:59Z", None),
            ("+026-11-25T10:02:52Z", None),
            ("2026-11-25T10:02:5\u{e9}Z", None),
            ("2026-11-25T10:02:52\u{e9}", None),
            ("", None),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_time(text), expected, "{text}");
        }
    }

    #[test]
    fn unreadable_events_say_why() {
        let rows = [
            (
                json!({"detail-type": "AWS API Call via CloudTrail", "detail": {}}),
                "not an EC2",
            ),
            (
                json!({"detail": {"instance-id": "i-1", "state": "stopped"}}),
                "not an EC2",
            ),
            (
                json!({"detail-type": DETAIL_TYPE}),
                "missing field `detail`",
            ),
            (event("eni-123", "stopped"), "not an instance id"),
            (event("i-0abc", "rebooting"), "not an EC2 instance state"),
            (
                json!({"detail-type": DETAIL_TYPE, "time": "yesterday",
                    "detail": {"instance-id": "i-0abc", "state": "stopped"}}),
                "not an RFC 3339 timestamp",
            ),
            (json!([1, 2]), "cannot be read"),
        ];
        for (input, expected) in rows {
            let err = parse_event(&input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
