//! One invocation: authenticate, read the webhook, decide and act per alert, answer.
//!
//! All I/O goes through [`World`], so the whole request path runs in tests against a fake
//! world; [`crate::live::LiveWorld`] is the real one.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_topology::globalaccelerator::{Removal, Topology};
use common::alertmanager::{Alert, AlertStatus, FiringSiteOffline, Webhook};
use common::auth::{self, AuthOutcome, BasicCredentials};
use common::outcome::Disposition;
use common::site::{AcceleratorDns, SiteName};
use http::HeaderMap;
use ispn_client::CacheResults;
use serde::Serialize;

use crate::decision::{KeptGroup, Liveness, Plan, Policy, SurvivorRule, plan};

/// A failed call, already classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub disposition: Disposition,
    pub message: String,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            disposition: Disposition::Transient,
            message: message.into(),
        }
    }
    pub fn fatal(message: impl Into<String>) -> Failure {
        Failure {
            disposition: Disposition::Fatal,
            message: message.into(),
        }
    }
}

/// Everything the function reads or changes outside itself.
pub trait World: Sync {
    fn webhook_credentials(&self)
    -> impl Future<Output = Result<BasicCredentials, Failure>> + Send;
    /// The accelerator's topology; `None` when there is no such accelerator.
    fn topology(
        &self,
        accelerator: &AcceleratorDns,
    ) -> impl Future<Output = Result<Option<Topology>, Failure>> + Send;
    /// Drops what is cached about the accelerator, after a failed or inconsistent call.
    fn forget_topology(&self, accelerator: &AcceleratorDns);
    /// A short, direct health probe of a site's Infinispan.
    fn probe(&self, site: &SiteName) -> impl Future<Output = Liveness> + Send;
    fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<Removal, Failure>> + Send;
    /// Takes `site`'s backup to `remote` offline for every cache.
    fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> impl Future<Output = Result<CacheResults, Failure>> + Send;
    /// Best effort: a failure is logged, never returned.
    fn notify(&self, subject: &str, record: &serde_json::Value) -> impl Future<Output = ()> + Send;
}

/// What the handler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub alert_name: String,
    pub policy: Policy,
    /// How long Global Accelerator conflicts and throttling are retried.
    pub retry_budget: Duration,
}

/// What happened to one alert of the notification.
#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub index: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
    pub status: AlertStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorDns>,
    pub outcome: Disposition,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Liveness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survivor: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fenced: Option<SiteName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<SurvivorRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<GroupResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_groups: Vec<KeptGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_offline: Option<BackupOffline>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    pub group_arn: String,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_gone: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupOffline {
    pub site: SiteName,
    pub remote: SiteName,
    pub caches: CacheResults,
}

/// The answer to one invocation, also its decision record (logged once, never with a secret).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub status: u16,
    pub outcome: Disposition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub alerts: Vec<AlertReport>,
}

impl Decision {
    fn rejected(outcome: Disposition, status: u16, reason: impl Into<String>) -> Decision {
        Decision {
            status,
            outcome,
            reason: Some(reason.into()),
            alerts: Vec::new(),
        }
    }

    /// An event Lambda could not have written (see [`crate::lambda`]).
    pub fn bad_event(reason: String) -> Decision {
        Decision::rejected(Disposition::BadInput, 400, reason)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({"status": self.status, "error": e.to_string()}))
    }

    /// The HTTP response: the record as JSON, and `WWW-Authenticate` on a 401.
    pub fn http_response(&self) -> http::Response<String> {
        let mut response = http::Response::new(self.to_json().to_string());
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if self.status == 401 {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(auth::WWW_AUTHENTICATE),
            );
        }
        response
    }
}

/// Handles one webhook request, given its headers and its (already base64-decoded) body.
pub async fn handle<W: World>(
    world: &W,
    settings: &Settings,
    headers: &HeaderMap,
    body: &[u8],
    deadline: Instant,
) -> Decision {
    let credentials = match world.webhook_credentials().await {
        Ok(credentials) => credentials,
        Err(failure) => {
            return Decision::rejected(
                failure.disposition,
                failure.disposition.http_status(),
                format!("cannot check credentials: {}", failure.message),
            );
        }
    };
    let header = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    if let AuthOutcome::Unauthorized(failure) = auth::check_basic(header, &credentials) {
        return Decision::rejected(Disposition::Unauthorized, 401, failure.reason());
    }
    if let Some(content_type) = headers.get(http::header::CONTENT_TYPE)
        && !is_json(content_type.as_bytes())
    {
        return Decision::rejected(
            Disposition::BadInput,
            415,
            "Content-Type must be application/json",
        );
    }
    let webhook = match Webhook::parse(body) {
        Ok(webhook) => webhook,
        Err(err) => {
            return Decision::rejected(Disposition::BadInput, err.http_status(), err.to_string());
        }
    };

    let mut alerts = Vec::with_capacity(webhook.alerts.len());
    for (index, alert) in webhook.alerts.iter().enumerate() {
        alerts.push(handle_alert(world, settings, index, alert, deadline).await);
    }
    let outcome = Disposition::most_severe(alerts.iter().map(|a| a.outcome));
    let reason = alerts
        .is_empty()
        .then(|| "no alerts in the notification".to_owned());
    Decision {
        status: outcome.http_status(),
        outcome,
        reason,
        alerts,
    }
}

fn is_json(content_type: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(content_type) else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

async fn handle_alert<W: World>(
    world: &W,
    settings: &Settings,
    index: usize,
    alert: &Alert,
    deadline: Instant,
) -> AlertReport {
    let mut report = AlertReport {
        index,
        fingerprint: alert.fingerprint.clone(),
        alertname: alert.alertname().map(str::to_owned),
        status: alert.status,
        reporter: None,
        site: None,
        accelerator: None,
        outcome: Disposition::Ignored,
        reason: String::new(),
        probe: None,
        survivor: None,
        fenced: None,
        rule: None,
        removed: Vec::new(),
        kept_groups: Vec::new(),
        backup_offline: None,
    };
    if alert.alertname() != Some(settings.alert_name.as_str()) {
        report.reason = format!("not a {} alert", settings.alert_name);
        return report;
    }
    if alert.status != AlertStatus::Firing {
        report.reason =
            "only firing alerts act; bringing a site back is an operator action".to_owned();
        return report;
    }
    let firing = match FiringSiteOffline::from_alert(alert) {
        Ok(firing) => firing,
        Err(err) => {
            report.outcome = Disposition::BadInput;
            report.reason = err.to_string();
            return report;
        }
    };
    report.reporter = Some(firing.reporter.clone());
    report.site = Some(firing.site.clone());
    report.accelerator = Some(firing.accelerator.clone());
    report.outcome = fence(world, settings, &firing, deadline, &mut report).await;
    if !report.removed.is_empty() || report.backup_offline.is_some() {
        let subject = format!(
            "sitefence: {} fenced, {} survives ({:?})",
            report.fenced.as_ref().map_or("?", SiteName::as_str),
            report.survivor.as_ref().map_or("?", SiteName::as_str),
            report.outcome
        );
        let record = serde_json::to_value(&report).unwrap_or_default();
        world.notify(&subject, &record).await;
    }
    report
}

async fn fence<W: World>(
    world: &W,
    settings: &Settings,
    alert: &FiringSiteOffline,
    deadline: Instant,
    report: &mut AlertReport,
) -> Disposition {
    // The probe a split-brain needs (both sites healthy) goes out with the accelerator read
    // rather than after it, so that it costs no round trip in sequence; when the plan does not
    // need it, it is dropped (a read of Infinispan's health, harmless).
    let probed_site = settings
        .policy
        .stronger(&alert.reporter, &alert.site)
        .clone();
    let topology_read = world.topology(&alert.accelerator);
    let early_probe = world.probe(&probed_site);
    tokio::pin!(topology_read, early_probe);
    let mut early_liveness = None;
    let topology = loop {
        tokio::select! {
            topology = &mut topology_read => break topology,
            liveness = &mut early_probe, if early_liveness.is_none() => {
                early_liveness = Some(liveness);
            }
        }
    };
    let topology = match topology {
        Ok(Some(topology)) => topology,
        Ok(None) => {
            report.reason = format!("no accelerator named {}", alert.accelerator);
            return Disposition::Ignored;
        }
        Err(failure) => {
            world.forget_topology(&alert.accelerator);
            report.reason = format!("reading the accelerator: {}", failure.message);
            return failure.disposition;
        }
    };
    let mut decision = plan(&topology, alert, &settings.policy, None);
    if let Plan::Probe(site) = &decision {
        let liveness = match early_liveness {
            Some(liveness) if *site == probed_site => liveness,
            None if *site == probed_site => early_probe.await,
            _ => world.probe(site).await,
        };
        report.probe = Some(liveness);
        decision = plan(&topology, alert, &settings.policy, Some(liveness));
    }
    let fence = match decision {
        Plan::Fence(fence) => fence,
        Plan::Reject(reason) => {
            report.reason = reason;
            return Disposition::BadInput;
        }
        Plan::Skip(reason) => {
            report.reason = reason;
            return Disposition::Ignored;
        }
        Plan::Probe(site) => {
            report.reason = format!("decision still needs a probe of {site}");
            return Disposition::Fatal;
        }
    };
    report.survivor = Some(fence.survivor.clone());
    report.fenced = Some(fence.loser.clone());
    report.rule = Some(fence.rule);
    report.kept_groups = fence.kept.clone();

    // Global Accelerator first: the backup goes offline only once no traffic reaches the loser.
    for removal in &fence.removals {
        match world
            .remove_endpoints(&removal.group_arn, &removal.endpoint_ids, deadline)
            .await
        {
            Ok(done) => report.removed.push(GroupResult {
                group_arn: removal.group_arn.clone(),
                removed: done.removed,
                already_gone: done.already_gone,
            }),
            Err(failure) => {
                world.forget_topology(&alert.accelerator);
                report.reason = format!(
                    "removing {} from {}: {}",
                    fence.loser, removal.group_arn, failure.message
                );
                return failure.disposition;
            }
        }
    }
    match world.take_offline(&fence.survivor, &fence.loser).await {
        Ok(caches) => {
            report.backup_offline = Some(BackupOffline {
                site: fence.survivor.clone(),
                remote: fence.loser.clone(),
                caches,
            });
        }
        Err(failure) => {
            report.reason = format!(
                "taking {}'s backup to {} offline: {}",
                fence.survivor, fence.loser, failure.message
            );
            return failure.disposition;
        }
    }
    let removed: usize = report.removed.iter().map(|g| g.removed.len()).sum();
    report.reason = format!(
        "fenced {}: {removed} endpoint(s) removed, {} group(s) kept, {}'s backup to it offline",
        fence.loser,
        fence.kept.len(),
        fence.survivor
    );
    Disposition::Done
}
