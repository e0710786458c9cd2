//! The cross-site API as the server speaks it: its generation, the actions, and what the
//! server answers (per-cache results, backup status, health).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which generation of the container-level cross-site API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ApiGeneration {
    /// Infinispan 15 and later: `/rest/v2/container/x-site/...`.
    Container,
    /// Infinispan 14: `/rest/v2/cache-managers/default/x-site/...`.
    CacheManager,
}

impl ApiGeneration {
    /// Where the cross-site resources are.
    pub(crate) fn prefix(self) -> &'static [&'static str] {
        match self {
            ApiGeneration::Container => &["rest", "v2", "container", "x-site"],
            ApiGeneration::CacheManager => &["rest", "v2", "cache-managers", "default", "x-site"],
        }
    }

    /// The cluster health as one word, anonymous on both generations.
    pub(crate) fn health_status(self) -> &'static [&'static str] {
        match self {
            ApiGeneration::Container => &["rest", "v2", "container", "health", "status"],
            ApiGeneration::CacheManager => &[
                "rest",
                "v2",
                "cache-managers",
                "default",
                "health",
                "status",
            ],
        }
    }
}

pub(crate) const API_UNKNOWN: u8 = 0;
pub(crate) const API_CONTAINER: u8 = 1;
pub(crate) const API_CACHE_MANAGER: u8 = 2;

/// A container-level cross-site action on every cache with a backup to a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XSiteAction {
    TakeOffline,
    BringOnline,
    StartPushState,
    CancelPushState,
}

impl XSiteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            XSiteAction::TakeOffline => "take-offline",
            XSiteAction::BringOnline => "bring-online",
            XSiteAction::StartPushState => "start-push-state",
            XSiteAction::CancelPushState => "cancel-push-state",
        }
    }
}

/// What each cache answered to a container-level action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheResults(pub BTreeMap<String, String>);

impl CacheResults {
    /// Caches whose answer is not `ok`.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(_, outcome)| !outcome.eq_ignore_ascii_case("ok"))
            .map(|(cache, outcome)| (cache.as_str(), outcome.as_str()))
    }

    pub fn all_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn caches(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The state of the backups to one remote site, over all caches (container level).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// `online`, `offline` or `mixed`.
    pub status: String,
    #[serde(default)]
    pub online: Vec<String>,
    #[serde(default)]
    pub offline: Vec<String>,
    #[serde(default)]
    pub mixed: Vec<String>,
}

/// The cluster health as `GET /rest/v2/container/health/status` (14.x:
/// `/rest/v2/cache-managers/default/health/status`) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Health {
    Healthy,
    HealthyRebalancing,
    Degraded,
    Other(String),
}

impl Health {
    pub(crate) fn parse(text: &str) -> Health {
        match text.trim().trim_matches('"') {
            "HEALTHY" => Health::Healthy,
            "HEALTHY_REBALANCING" => Health::HealthyRebalancing,
            "DEGRADED" => Health::Degraded,
            other => Health::Other(other.to_owned()),
        }
    }
}
