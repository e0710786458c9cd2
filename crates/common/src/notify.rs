//! SNS notification of every action taken (`NOTIFY_TOPIC_ARN`).

use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;

#[derive(Debug, thiserror::Error)]
#[error("SNS publish to {topic_arn} failed: {message}")]
pub struct NotifyError {
    pub topic_arn: String,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Notifier {
    config: aws_sdk_sns::Config,
    /// Made at the first publish: a client's creation parses the SDK's endpoint partitions,
    /// and notifications go out after a function's answer, so a cold start need not wait for it.
    client: OnceLock<Client>,
    topic_arn: String,
}

impl Notifier {
    /// `None` when `NOTIFY_TOPIC_ARN` is not set.
    pub fn from_env(cfg: &SdkConfig) -> Option<Notifier> {
        crate::config::notify_topic_arn(|name| std::env::var(name).ok())
            .map(|topic_arn| Notifier::new(cfg, topic_arn))
    }

    /// The SNS client talks to the topic's own region (taken from its ARN), whatever `cfg`'s
    /// region is.
    pub fn new(cfg: &SdkConfig, topic_arn: String) -> Notifier {
        let mut config = aws_sdk_sns::config::Builder::from(cfg);
        if let Some(region) = arn_region(&topic_arn) {
            config = config.region(aws_config::Region::new(region.to_owned()));
        }
        Notifier {
            config: config.build(),
            client: OnceLock::new(),
            topic_arn,
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes `record` as the JSON message. A failure is for the caller to log: a
    /// notification must never fail the action it reports.
    pub async fn publish(
        &self,
        subject: &str,
        record: &serde_json::Value,
    ) -> Result<(), NotifyError> {
        self.client
            .get_or_init(|| Client::from_conf(self.config.clone()))
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(subject))
            .message(record.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| NotifyError {
                topic_arn: self.topic_arn.clone(),
                message: DisplayErrorContext(&err).to_string(),
            })
    }
}

/// `arn:PARTITION:sns:REGION:ACCOUNT:NAME` → `REGION`.
fn arn_region(arn: &str) -> Option<&str> {
    let mut fields = arn.split(':');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some("arn"), Some(_), Some("sns"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// SNS subjects are at most 100 printable ASCII characters, without line breaks.
fn sns_subject(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn topic_region_comes_from_the_arn() {
        assert_eq!(
            super::arn_region("arn:aws:sns:eu-west-1:123456789012:sitefence"),
            Some("eu-west-1")
        );
        assert_eq!(super::arn_region("sitefence"), None);
    }

    #[test]
    fn subjects_fit_sns_rules() {
        let s = super::sns_subject(&format!("fenced site-b\n{}", "é".repeat(200)));
        assert_eq!(s.len(), 100);
        assert!(s.starts_with("fenced site-b?"));
    }
}
