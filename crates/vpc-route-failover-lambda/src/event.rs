//! The EventBridge "EC2 Instance State-change Notification", parsed into a [`StateChange`].

use aws_topology::ec2::{InstanceId, InstanceState};
use serde::Deserialize;
use serde_json::Value;

pub const DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// One instance changing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub instance: InstanceId,
    pub state: InstanceState,
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
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
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
    Ok(StateChange {
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
            })
        );
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
            (json!([1, 2]), "cannot be read"),
        ];
        for (input, expected) in rows {
            let err = parse_event(&input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
