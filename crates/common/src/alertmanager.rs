//! The Alertmanager webhook (payload version 4), and the typed alerts parsed from it.
//!
//! Limits are checked before any parsing work: the body size first, then the number of alerts
//! while the array is read (the parser stops at the first alert over the limit).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::site::{AcceleratorDns, NameError, SiteName};

/// Largest accepted webhook body.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most alerts accepted in one notification (Alertmanager's `max_alerts` should stay below).
pub const MAX_ALERTS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
    #[serde(other)]
    Unknown,
}

/// One notification. Fields Alertmanager may add later are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default)]
    pub receiver: String,
    pub status: AlertStatus,
    #[serde(deserialize_with = "bounded_alerts")]
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn alertname(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }

    /// When the alert started firing, in milliseconds since the epoch (`None` when `startsAt`
    /// is absent or not a timestamp).
    pub fn starts_at_ms(&self) -> Option<u64> {
        self.starts_at
            .as_deref()
            .and_then(crate::logging::parse_rfc3339_ms)
    }
}

/// Why a body is not a webhook we accept.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("empty request body")]
    Empty,
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("request body is not an Alertmanager webhook: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// 413 for an oversized body (or too many alerts), 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            WebhookError::Malformed(m) if m.starts_with(TOO_MANY_ALERTS) => 413,
            _ => 400,
        }
    }
}

const TOO_MANY_ALERTS: &str = "more than";

impl Webhook {
    pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::TooLarge {
                size: body.len(),
                limit: MAX_BODY_BYTES,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(WebhookError::Empty);
        }
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
    }
}

fn bounded_alerts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Alert>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<Alert>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an array of at most {MAX_ALERTS} alerts")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Alert>, A::Error> {
            let mut alerts = Vec::new();
            while let Some(alert) = seq.next_element()? {
                if alerts.len() == MAX_ALERTS {
                    return Err(serde::de::Error::custom(format!(
                        "{TOO_MANY_ALERTS} {MAX_ALERTS} alerts in one notification"
                    )));
                }
                alerts.push(alert);
            }
            Ok(alerts)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// A firing `SiteOffline` alert: `reporter` lost sight of `site`, both behind `accelerator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiringSiteOffline {
    pub reporter: SiteName,
    pub site: SiteName,
    pub accelerator: AcceleratorDns,
    pub fingerprint: String,
}

/// Why an alert's labels do not make a `SiteOffline` alert; names the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("label `{0}` is missing or empty")]
    MissingLabel(&'static str),
    #[error("label `{label}` {reason}")]
    InvalidLabel {
        label: &'static str,
        reason: NameError,
    },
    #[error("label `reporter` and label `site` are both `{0}`: a site cannot report itself")]
    ReporterIsSite(SiteName),
}

impl FiringSiteOffline {
    /// Reads the labels `reporter`, `site` and `accelerator` (the caller has checked the
    /// status and the alert name).
    pub fn from_alert(alert: &Alert) -> Result<FiringSiteOffline, AlertError> {
        let label = |name: &'static str| {
            alert
                .labels
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .ok_or(AlertError::MissingLabel(name))
        };
        let site_label = |name: &'static str| {
            SiteName::parse(label(name)?).map_err(|reason| AlertError::InvalidLabel {
                label: name,
                reason,
            })
        };
        let reporter = site_label("reporter")?;
        let site = site_label("site")?;
        let accelerator = AcceleratorDns::parse(label("accelerator")?).map_err(|reason| {
            AlertError::InvalidLabel {
                label: "accelerator",
                reason,
            }
        })?;
        if reporter == site {
            return Err(AlertError::ReporterIsSite(site));
        }
        Ok(FiringSiteOffline {
            reporter,
            site,
            accelerator,
            fingerprint: alert.fingerprint.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
      "receiver": "fence", "status": "firing", "version": "4",
      "groupKey": "{}:{accelerator=\"a.awsglobalaccelerator.com\"}", "truncatedAlerts": 0,
      "externalURL": "http://am:9093", "groupLabels": {"accelerator": "a.awsglobalaccelerator.com"},
      "commonLabels": {}, "commonAnnotations": {}, "someFutureField": [1, 2],
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "SiteOffline", "site": "site-b", "reporter": "site-a",
                   "accelerator": "a.awsglobalaccelerator.com"},
        "annotations": {}, "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph", "fingerprint": "abc123", "extra": true
      }]
    }"#;

    #[test]
    fn parses_a_webhook_and_tolerates_unknown_fields() {
        let webhook = Webhook::parse(FULL.as_bytes()).unwrap();
        assert_eq!(webhook.status, AlertStatus::Firing);
        assert_eq!(webhook.alerts.len(), 1);
        let alert = FiringSiteOffline::from_alert(&webhook.alerts[0]).unwrap();
        assert_eq!(alert.reporter.as_str(), "site-a");
        assert_eq!(alert.site.as_str(), "site-b");
        assert_eq!(alert.accelerator.as_str(), "a.awsglobalaccelerator.com");
        assert_eq!(alert.fingerprint, "abc123");
    }

    #[test]
    fn body_limits_come_before_parsing() {
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        let err = Webhook::parse(&huge).unwrap_err();
        assert_eq!(err.http_status(), 413);

        let alert = r#"{"status":"firing","labels":{}}"#;
        let many = format!(
            r#"{{"status":"firing","alerts":[{}]}}"#,
            vec![alert; MAX_ALERTS + 1].join(",")
        );
        let err = Webhook::parse(many.as_bytes()).unwrap_err();
        assert_eq!(err.http_status(), 413, "{err}");
        let enough = format!(
            r#"{{"status":"firing","alerts":[{}]}}"#,
            vec![alert; MAX_ALERTS].join(",")
        );
        assert_eq!(
            Webhook::parse(enough.as_bytes()).unwrap().alerts.len(),
            MAX_ALERTS
        );
    }

    #[test]
    fn seed_crashed_on_non_json_body() {
        for body in ["", "   ", "not json", "{\"status\": \"firing\"}", "[]"] {
            let err = Webhook::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.http_status(), 400, "{body:?}: {err}");
        }
    }

    #[test]
    fn seed_crashed_on_missing_labels() {
        let table = [
            (r#"{"site":"b","accelerator":"x.com"}"#, "reporter"),
            (r#"{"reporter":"a","accelerator":"x.com"}"#, "site"),
            (r#"{"reporter":"a","site":"b"}"#, "accelerator"),
            (
                r#"{"reporter":"a","site":" ","accelerator":"x.com"}"#,
                "site",
            ),
        ];
        for (labels, missing) in table {
            let alert: Alert =
                serde_json::from_str(&format!(r#"{{"status":"firing","labels":{labels}}}"#))
                    .unwrap();
            let err = FiringSiteOffline::from_alert(&alert).unwrap_err();
            assert_eq!(err, AlertError::MissingLabel(missing), "{labels}");
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn invalid_or_self_reporting_labels_are_rejected() {
        let alert = |labels: &str| -> Alert {
            serde_json::from_str(&format!(r#"{{"status":"firing","labels":{labels}}}"#)).unwrap()
        };
        let err = FiringSiteOffline::from_alert(&alert(
            r#"{"reporter":"a b","site":"b","accelerator":"x.com"}"#,
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            AlertError::InvalidLabel {
                label: "reporter",
                ..
            }
        ));
        let err = FiringSiteOffline::from_alert(&alert(
            r#"{"reporter":"b","site":"b","accelerator":"x.com"}"#,
        ))
        .unwrap_err();
        assert!(matches!(err, AlertError::ReporterIsSite(_)));
    }
}
