//! `sitefence.toml`: one file that describes a deployment, read by `deploy`, `destroy`,
//! `manifests` and the `site` commands. The documented example is `infra/sitefence.example.toml`.

use anyhow::Context;
use common::mode::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Prefix of every resource `deploy` creates, and the value of its ownership tag.
    pub name: String,
    /// Region of the functions, secrets and load balancers.
    pub region: String,
    /// An AWS endpoint override for every service but Global Accelerator (sandbox, LocalStack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Caches with a cross-site backup, which `site sync` clears and pushes (Keycloak 26's four
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caches: Option<Vec<String>>,
    /// `enforce` (the default) or `monitor`: the three functions decide, record, notify and
    /// log what they would do, and change nothing. Deploy passes it to each function as
    /// `SITEFENCE_MODE`.
    #[serde(default, skip_serializing_if = "is_enforce")]
    pub mode: Mode,
    pub accelerator: Accelerator,
    /// The two sites, by the name Infinispan knows them (`spec.service.sites.local.name`).
    pub sites: BTreeMap<String, Site>,
    pub fence: Fence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<Vpc>,
    /// SNS topic told of every action the functions take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_topic_arn: Option<String>,
    /// Days CloudWatch Logs keeps each function's log group (`/aws/lambda/<function>`), which
    /// deploy creates: one of [`LOG_RETENTION_DAYS`].
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: i32,
    /// The alarms deploy sets on the functions (they notify the `<name>-alarms` topic).
    #[serde(default)]
    pub alarms: Alarms,
    /// The ZIPs `deploy` uploads, when not `cargo xtask build`'s output (`--zips` and
    /// `--arch` win over it). The sandbox names its native builds here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSource>,
}

/// The retention periods CloudWatch Logs accepts (`PutRetentionPolicy`'s `retentionInDays`).
pub const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Thresholds of the functions' alarms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alarms {
    /// A `SiteOffline` alert that has fired this long (seconds) while its fence is still not
    /// complete sets off the fence's "not completed" alarm (the fence's `UnfencedSeconds`
    /// metric). At least 60: the metric is evaluated per minute.
    #[serde(default = "default_fence_not_completed_seconds")]
    pub fence_not_completed_seconds: u64,
}

impl Default for Alarms {
    fn default() -> Alarms {
        Alarms {
            fence_not_completed_seconds: default_fence_not_completed_seconds(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSource {
    /// `DIR/<function>/bootstrap.zip`; relative to this file.
    pub zips: PathBuf,
    /// Lambda's architecture name of the binaries inside: `arm64` or `x86_64`.
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// `DnsName` or `DualStackDnsName` of the Global Accelerator in front of both sites.
    pub dns_name: String,
    /// The Global Accelerator API lives only in us-west-2.
    #[serde(default = "default_accelerator_region")]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Infinispan REST endpoint of the site: a host, host:port or https URL.
    pub infinispan_url: String,
    /// Where Prometheus scrapes the site's Infinispan metrics (drill; defaults to `{infinispan_url}/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// Kubernetes namespace of the Infinispan cluster (the `namespace` label of the alert).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The site's load balancer (Global Accelerator endpoint), tagged `site=<name>`; the fence
    /// takes it as this site's without reading its tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_arn: Option<String>,
    /// Test-only control endpoint of a sandbox site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_control_url: Option<String>,
    /// The site's Prometheus (its HTTP API's base URL, e.g. `http://prometheus.monitoring:9090`):
    /// `doctor` checks that the alert rule is loaded and healthy and that the other site's
    /// metric is seen. Without it that check is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// The site's Alertmanager (its base URL, e.g. `http://alertmanager.monitoring:9093`):
    /// `doctor` checks that it routes the alert to the fence's Function URL. Without it that
    /// check is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fence {
    pub webhook_user: String,
    /// Secrets Manager name of the webhook password (created with a generated value when absent).
    pub webhook_secret: String,
    pub infinispan_user: String,
    pub infinispan_secret: String,
    /// The site that survives a true split-brain when both are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_site: Option<String>,
    /// PEM bundle of the CA that signed the Infinispan endpoints' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default = "default_alert_name")]
    pub alert_name: String,
    /// Function URL of the deployed fence (written by `deploy` and `sandbox up`; looked up when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_url: Option<String>,
    /// DynamoDB table of the fence's decision records, one per split-brain (default
    /// `<name>-decisions`; see [`Deployment::decision_table`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_table: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53 {
    /// Health checks the failover function may pin (the primary site's).
    pub health_check_ids: Vec<String>,
    /// Route 53 health-check metrics and alarms live in us-east-1.
    #[serde(default = "default_route53_region")]
    pub region: String,
    #[serde(default = "default_failed_over_path")]
    pub failed_over_path: String,
    #[serde(default = "default_original_path")]
    pub original_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub vpc_id: String,
    pub primary_eni: String,
    pub standby_eni: String,
    /// Instance ids of the appliances, for the EventBridge rule's pattern.
    pub primary_instance_id: String,
    pub standby_instance_id: String,
    /// Only these route tables are changed (all of the VPC's when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_table_ids: Vec<String>,
}

fn is_enforce(mode: &Mode) -> bool {
    *mode == Mode::Enforce
}

pub fn default_accelerator_region() -> String {
    aws_topology::globalaccelerator::API_REGION.to_string()
}
pub fn default_namespace() -> String {
    "default".to_string()
}
pub fn default_alert_name() -> String {
    "SiteOffline".to_string()
}
pub fn default_route53_region() -> String {
    aws_topology::route53::ALARM_REGION.to_string()
}
pub fn default_failed_over_path() -> String {
    aws_topology::route53::FAILED_OVER_PATH.to_string()
}
pub fn default_original_path() -> String {
    aws_topology::route53::ORIGINAL_PATH.to_string()
}
/// A month of logs: enough to look back at an incident, not a cost that grows forever (a group
/// Lambda creates itself keeps its logs forever).
pub fn default_log_retention_days() -> i32 {
    30
}
/// Five minutes: a few of Alertmanager's resends (its group interval is 90 s in the generated
/// manifests), well beyond a fence's own time (20 s of retries at most).
pub fn default_fence_not_completed_seconds() -> u64 {
    300
}

impl Deployment {
    pub fn load(path: &Path) -> anyhow::Result<Deployment> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Deployment::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Deployment> {
        let deployment: Deployment = toml::from_str(text)?;
        deployment.validate()?;
        Ok(deployment)
    }

    /// The table of the fence's decision records: `fence.decision_table`, else named after the
    /// deployment like every other resource deploy creates.
    pub fn decision_table(&self) -> String {
        self.fence
            .decision_table
            .clone()
            .unwrap_or_else(|| format!("{}-decisions", self.name))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            LOG_RETENTION_DAYS.contains(&self.log_retention_days),
            "log_retention_days = {}: CloudWatch Logs accepts only {LOG_RETENTION_DAYS:?}",
            self.log_retention_days
        );
        anyhow::ensure!(
            self.alarms.fence_not_completed_seconds >= 60,
            "alarms.fence_not_completed_seconds = {}: at least 60 (the metric is evaluated per minute)",
            self.alarms.fence_not_completed_seconds
        );
        anyhow::ensure!(
            self.sites.len() == 2,
            "exactly two sites are supported, found {}",
            self.sites.len()
        );
        if let Some(preferred) = &self.fence.preferred_site {
            anyhow::ensure!(
                self.sites.contains_key(preferred),
                "fence.preferred_site `{preferred}` is not one of the sites"
            );
        }
        let table = self.decision_table();
        anyhow::ensure!(
            is_table_name(&table),
            "decision table name `{table}` ({}): DynamoDB wants 3 to 255 of a-z, A-Z, 0-9, `_`, `-` and `.`",
            if self.fence.decision_table.is_some() {
                "fence.decision_table"
            } else {
                "derived from `name`; set fence.decision_table"
            }
        );
        Ok(())
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// A name DynamoDB accepts for a table.
fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let example = crate::example_config();
        let deployment = Deployment::load(&example).map_err(|e| format!("{e:#}"));
        assert!(deployment.is_ok(), "{deployment:?}");
    }

    #[test]
    fn rejects_unknown_fields_and_a_third_site() {
        let good = std::fs::read_to_string(crate::example_config()).unwrap_or_default();
        let typo = good.replacen("webhook_user", "webhook_usr", 1);
        assert!(Deployment::parse(&typo).is_err());
        let third = format!("{good}\n[sites.site-c]\ninfinispan_url = \"ispn-c.example\"\n");
        assert!(Deployment::parse(&third).is_err());
    }

    #[test]
    fn log_retention_and_alarm_thresholds_default_and_are_checked() {
        let good = std::fs::read_to_string(crate::example_config()).unwrap_or_default();
        let defaults = Deployment::parse(&good).map_err(|e| format!("{e:#}"));
        assert_eq!(defaults.as_ref().map(|d| d.log_retention_days), Ok(30));
        assert_eq!(
            defaults.map(|d| d.alarms.fence_not_completed_seconds),
            Ok(300)
        );
        let set = |line: &str| format!("{line}\n{good}");
        let week = Deployment::parse(&set("log_retention_days = 7"));
        assert_eq!(week.ok().map(|d| d.log_retention_days), Some(7));
        for bad in ["log_retention_days = 10", "log_retention_days = 0"] {
            let err = Deployment::parse(&set(bad))
                .map(|_| ())
                .map_err(|e| format!("{e:#}"));
            assert!(
                err.as_ref().is_err_and(|e| e.contains("[1, 3, 5")),
                "{bad}: {err:?}"
            );
        }
        let threshold = format!("{good}\n[alarms]\nfence_not_completed_seconds = 30\n");
        assert!(Deployment::parse(&threshold).is_err());
        let threshold = format!("{good}\n[alarms]\nfence_not_completed_seconds = 600\n");
        let parsed = Deployment::parse(&threshold).map_err(|e| format!("{e:#}"));
        let round_trip = parsed
            .and_then(|d| d.to_toml().map_err(|e| format!("{e:#}")))
            .and_then(|text| Deployment::parse(&text).map_err(|e| format!("{e:#}")));
        assert_eq!(
            round_trip.map(|d| d.alarms.fence_not_completed_seconds),
            Ok(600)
        );
    }

    #[test]
    fn the_decision_table_is_named_after_the_deployment_unless_configured() {
        let good = std::fs::read_to_string(crate::example_config()).unwrap_or_default();
        let derived = Deployment::parse(&good).map(|d| d.decision_table());
        assert_eq!(derived.ok().as_deref(), Some("keycloak-fence-decisions"));
        let configured = good.replacen(
            "[fence]\n",
            "[fence]\ndecision_table = \"fence.records\"\n",
            1,
        );
        let named = Deployment::parse(&configured).map(|d| d.decision_table());
        assert_eq!(named.ok().as_deref(), Some("fence.records"));
        for bad in ["ab", "fence records", "fence/records"] {
            let text = good.replacen(
                "[fence]\n",
                &format!("[fence]\ndecision_table = \"{bad}\"\n"),
                1,
            );
            assert!(Deployment::parse(&text).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_mode_is_enforce_unless_set_and_only_written_when_monitor() {
        let good = std::fs::read_to_string(crate::example_config()).unwrap_or_default();
        let enforce = Deployment::parse(&good).map_err(|e| format!("{e:#}"));
        assert_eq!(enforce.as_ref().map(|d| d.mode), Ok(Mode::Enforce));
        assert!(
            enforce
                .and_then(|d| d.to_toml().map_err(|e| format!("{e:#}")))
                .is_ok_and(|text| !text.contains("mode")),
            "the default is not written"
        );
        let monitor = good.replacen("# mode = \"monitor\"", "mode = \"monitor\"", 1);
        let parsed = Deployment::parse(&monitor).map_err(|e| format!("{e:#}"));
        assert_eq!(parsed.as_ref().map(|d| d.mode), Ok(Mode::Monitor));
        let round_trip = parsed
            .and_then(|d| d.to_toml().map_err(|e| format!("{e:#}")))
            .and_then(|text| Deployment::parse(&text).map_err(|e| format!("{e:#}")));
        assert_eq!(round_trip.map(|d| d.mode), Ok(Mode::Monitor));
        let typo = good.replacen("# mode = \"monitor\"", "mode = \"monitr\"", 1);
        let err = Deployment::parse(&typo)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        assert!(err.as_ref().is_err_and(|e| e.contains("monitr")), "{err:?}");
    }
}
