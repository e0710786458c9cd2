//! What the `site` commands observe of a deployment: the accelerator's listeners and endpoint
//! groups, each site's cross-site replication towards the other, and the fence's decision
//! records. Plain data, built by `observe` and read by the pure `verdict` and `plan` functions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_topology::decisions::{DEFAULT_STALE_AFTER, DecisionRecord, Standing};
use aws_topology::globalaccelerator::Topology;
use common::site::SiteName;

/// The weight the HA guide gives each site's endpoint (chapter 8).
pub const SITE_WEIGHT: i32 = 128;

/// One cache's backup towards the other site, as Infinispan reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupState {
    Online,
    Offline,
    /// Differs between the nodes of the cluster.
    Mixed,
    Failed,
    /// Anything else, e.g. `no backup to site-b` or `no such cache`.
    Unknown(String),
}

impl BackupState {
    pub fn parse(text: &str) -> BackupState {
        match text.trim().to_ascii_lowercase().as_str() {
            "online" => BackupState::Online,
            "offline" => BackupState::Offline,
            "mixed" => BackupState::Mixed,
            "failed" => BackupState::Failed,
            _ => BackupState::Unknown(text.trim().to_owned()),
        }
    }
}

impl fmt::Display for BackupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupState::Online => f.write_str("online"),
            BackupState::Offline => f.write_str("offline"),
            BackupState::Mixed => f.write_str("mixed"),
            BackupState::Failed => f.write_str("failed"),
            BackupState::Unknown(text) => write!(f, "?{text}"),
        }
    }
}

/// One cache's push-state status towards the other site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushState {
    Idle,
    Sending,
    Ok,
    Error,
    Canceled,
    Unknown(String),
}

impl PushState {
    pub fn parse(text: &str) -> PushState {
        match text.trim().to_ascii_uppercase().as_str() {
            "IDLE" => PushState::Idle,
            "SENDING" => PushState::Sending,
            "OK" => PushState::Ok,
            "ERROR" => PushState::Error,
            "CANCELED" | "CANCELLED" => PushState::Canceled,
            _ => PushState::Unknown(text.trim().to_owned()),
        }
    }

    /// No push running and none failed: what a site in sync reports.
    pub fn settled(&self) -> bool {
        matches!(self, PushState::Idle | PushState::Ok)
    }
}

impl fmt::Display for PushState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushState::Idle => f.write_str("IDLE"),
            PushState::Sending => f.write_str("SENDING"),
            PushState::Ok => f.write_str("OK"),
            PushState::Error => f.write_str("ERROR"),
            PushState::Canceled => f.write_str("CANCELED"),
            PushState::Unknown(text) => write!(f, "?{text}"),
        }
    }
}

/// A site's replication towards the other site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Every cache the deployment replicates, with its backup towards the other site.
    pub backups: BTreeMap<String, BackupState>,
    /// Every cache's push-state status towards the other site.
    pub push: BTreeMap<String, PushState>,
    /// Whether this site has the other in its cross-site view
    /// (`vendor_jgroups_site_view_status`); `None` when the metrics could not be read.
    pub sees_remote: Option<bool>,
}

impl Replication {
    pub fn all_backups(&self, state: &BackupState) -> bool {
        self.backups.values().all(|s| s == state)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteState {
    pub name: SiteName,
    /// The site's NLB as `sitefence.toml` names it (what `bring-online` adds back).
    pub load_balancer: Option<String>,
    /// `Err` holds why the site's Infinispan could not be read.
    pub replication: Result<Replication, String>,
}

/// The fence's decision records, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decisions {
    /// Every record of the deployment's table (one per pair of sites), closed ones included.
    Read {
        table: String,
        records: Vec<DecisionRecord>,
    },
    /// Why there are none to show: no such table, or it could not be read. The commands carry
    /// on without them.
    Unavailable(String),
}

/// Everything the `site` commands decide on, observed at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub accelerator_dns: String,
    pub topology: Topology,
    /// The two sites, in the order of `sitefence.toml`.
    pub sites: [SiteState; 2],
    pub caches: Vec<String>,
    /// The key of the split-brain between the two sites behind this accelerator
    /// (`aws_topology::decisions::split_brain_key`): the record `bring-online` closes.
    pub split_brain: String,
    pub decisions: Decisions,
    /// When this was observed, in ms since the epoch: what a record's standing is computed at.
    pub at_ms: u64,
}

impl Observed {
    pub fn site(&self, name: &SiteName) -> Option<&SiteState> {
        self.sites.iter().find(|s| &s.name == name)
    }

    /// The site that is not `name` (the deployment has exactly two).
    pub fn other(&self, name: &SiteName) -> Option<&SiteState> {
        self.site(name)?;
        self.sites.iter().find(|s| &s.name != name)
    }

    /// The decision record of the split-brain between the two sites, when the records were
    /// read and there is one.
    pub fn decision(&self) -> Option<&DecisionRecord> {
        match &self.decisions {
            Decisions::Read { records, .. } => {
                records.iter().find(|r| r.split_brain == self.split_brain)
            }
            Decisions::Unavailable(_) => None,
        }
    }

    /// Whether `record` still decides its split-brain, against the accelerator as observed and
    /// with the fence's default stale-after.
    pub fn standing(&self, record: &DecisionRecord) -> Standing {
        record.standing(&self.topology, self.at_ms, DEFAULT_STALE_AFTER)
    }
}

/// Where a site takes traffic, by the fence's own rule ([`takes_traffic`]: an
/// endpoint with a weight above 0 in a group whose traffic dial is above 0), counted per
/// listener: with one endpoint group per region, a site takes a listener's traffic through its
/// region's group only, and that is all of its share.
///
/// [`takes_traffic`]: aws_topology::globalaccelerator::EndpointGroup::takes_traffic
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// In every listener that serves the sites.
    Everywhere,
    /// In some listeners only.
    Partly { listeners: usize, of: usize },
    /// In none.
    Nowhere,
}

/// The listeners that serve the sites: those with an endpoint of a known site, taking traffic
/// or not (a fenced site's endpoint stays in a group whose dial the fence closed). A listener
/// of nothing but untagged endpoints is not the sites', as the fence's invariant
/// ([`Topology::check_fenced`]) holds it.
fn site_listeners(topology: &Topology) -> BTreeSet<&str> {
    topology
        .groups
        .iter()
        .filter(|g| g.endpoints.iter().any(|e| e.site.is_some()))
        .map(|g| g.listener_arn.as_str())
        .collect()
}

pub fn traffic(topology: &Topology, site: &SiteName) -> Traffic {
    let to = topology.traffic();
    let listeners = site_listeners(topology);
    let of = listeners.len();
    let taking = listeners
        .iter()
        .filter(|l| to.get(*l).is_some_and(|t| t.sites.contains(site)))
        .count();
    match taking {
        0 => Traffic::Nowhere,
        n if n == of => Traffic::Everywhere,
        n => Traffic::Partly { listeners: n, of },
    }
}
