//! The edge of the `site` commands: clients built from `sitefence.toml`, and one observation of
//! the accelerator, both sites' Infinispan and the fence's decision records.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_topology::decisions::{DecisionStore, split_brain_key};
use aws_topology::globalaccelerator::GlobalAccelerator;
use common::secret::SecretCache;
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{Credentials, IspnError, SiteClient, SiteEndpoint, SiteView, TlsConfig};

use super::model::{BackupState, Decisions, Observed, PushState, Replication, SiteState};
use crate::aws::{self, Aws, AwsArgs};
use crate::config::Deployment;

/// Keycloak 26's caches with a cross-site backup, when `sitefence.toml` names none.
pub const KEYCLOAK_CACHES: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

/// One site as the commands reach it.
pub struct SiteHandle {
    pub name: SiteName,
    pub client: SiteClient,
    pub metrics_url: Option<String>,
    pub load_balancer: Option<String>,
}

/// Everything a `site` command talks to, built once from `sitefence.toml` and the AWS flags.
pub struct Ctx {
    pub dns: AcceleratorDns,
    pub accelerator: GlobalAccelerator,
    /// In the order of `sitefence.toml` (by name).
    pub sites: [SiteHandle; 2],
    pub caches: Vec<String>,
    /// The fence's decision records (the table `sitefence.toml` names).
    pub decisions: DecisionStore,
    /// Who runs the command, for the record a `bring-online` closes.
    sts: aws_sdk_sts::Client,
    /// The deployment's mode (`sitefence.toml`), shown by `site status`.
    pub mode: common::mode::Mode,
}

impl Ctx {
    pub async fn load(config: &Path, aws_args: &AwsArgs) -> anyhow::Result<Ctx> {
        let deployment = Deployment::load(config)?;
        let dns = AcceleratorDns::parse(&deployment.accelerator.dns_name)
            .map_err(|e| anyhow::anyhow!("accelerator.dns_name: {e}"))?;
        let regional = Aws::load(aws_args, &deployment).await.regional;
        // Global Accelerator has its own endpoint and region; the load balancers' tags are
        // read where the rest of AWS is.
        let accelerator_config = aws::load(
            aws_args,
            deployment.accelerator.endpoint_url.clone(),
            deployment.accelerator.region.clone(),
        )
        .await;
        let accelerator = GlobalAccelerator::new(&accelerator_config).with_elbv2_config(&regional);

        let password = SecretCache::new(&regional, SecretCache::DEFAULT_TTL)
            .get(&deployment.fence.infinispan_secret)
            .await
            .with_context(|| {
                format!(
                    "reading the Infinispan password (secret {})",
                    deployment.fence.infinispan_secret
                )
            })?;
        let ca_bundle_pem = match &deployment.fence.ca_bundle {
            Some(path) => {
                let path = config.parent().unwrap_or(Path::new(".")).join(path);
                Some(
                    std::fs::read(&path)
                        .with_context(|| format!("reading the CA bundle {}", path.display()))?,
                )
            }
            None => None,
        };
        // An operator's tool may wait longer than a Lambda: clears of big caches take time.
        let operation_timeout = Duration::from_secs(60);
        let http = ispn_client::http_client(&TlsConfig {
            ca_bundle_pem,
            request_timeout: operation_timeout,
            ..TlsConfig::default()
        })?;
        let mut sites = Vec::new();
        for (name, site) in &deployment.sites {
            let name = SiteName::parse(name).map_err(|e| anyhow::anyhow!("site `{name}`: {e}"))?;
            let endpoint = SiteEndpoint::parse(&site.infinispan_url)?;
            let credentials = Credentials {
                user: deployment.fence.infinispan_user.clone(),
                password: password.clone(),
            };
            sites.push(SiteHandle {
                client: SiteClient::new(name.clone(), endpoint, http.clone(), credentials)
                    .with_operation_timeout(operation_timeout),
                name,
                metrics_url: site.metrics_url.clone(),
                load_balancer: site.load_balancer_arn.clone(),
            });
        }
        let sites: [SiteHandle; 2] = sites
            .try_into()
            .map_err(|_| anyhow::anyhow!("sitefence.toml must name exactly two sites"))?;
        let caches = deployment
            .caches
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| KEYCLOAK_CACHES.iter().map(|c| (*c).to_owned()).collect());
        Ok(Ctx {
            dns,
            accelerator,
            sites,
            caches,
            decisions: DecisionStore::new(&regional, deployment.decision_table()),
            sts: aws_sdk_sts::Client::new(&regional),
            mode: deployment.mode,
        })
    }

    /// The caller's identity (its ARN) as AWS knows it, to name the operator in a record it
    /// closes; `None` when it cannot be read (the record then names the command only).
    pub async fn operator(&self) -> Option<String> {
        let identity = self.sts.get_caller_identity().send().await.ok()?;
        identity.arn().map(str::to_owned)
    }

    pub fn site(&self, name: &SiteName) -> anyhow::Result<&SiteHandle> {
        self.sites
            .iter()
            .find(|s| &s.name == name)
            .with_context(|| {
                format!(
                    "{name} is not a site of this deployment ({} and {})",
                    self.sites[0].name, self.sites[1].name
                )
            })
    }

    /// The accelerator and both sites' replication, read now.
    pub async fn observe(&self) -> anyhow::Result<Observed> {
        let topology = self
            .accelerator
            .topology(&self.dns)
            .await
            .context("reading the Global Accelerator")?
            .with_context(|| format!("no accelerator is named {}", self.dns.as_str()))?;
        let [first, second] = &self.sites;
        let (a, b, decisions) = tokio::join!(
            replication(first, &second.name, &self.caches),
            replication(second, &first.name, &self.caches),
            self.read_decisions()
        );
        let state = |site: &SiteHandle, replication| SiteState {
            name: site.name.clone(),
            load_balancer: site.load_balancer.clone(),
            replication,
        };
        Ok(Observed {
            accelerator_dns: self.dns.as_str().to_owned(),
            topology,
            sites: [state(first, a), state(second, b)],
            caches: self.caches.clone(),
            split_brain: split_brain_key(&self.dns, &first.name, &second.name),
            decisions,
            at_ms: now_ms(),
        })
    }

    /// Every decision record; a table that is missing or cannot be read is said, not fatal:
    /// the records inform the commands, the accelerator and Infinispan decide them.
    async fn read_decisions(&self) -> Decisions {
        let table = self.decisions.table().to_owned();
        match self.decisions.list().await {
            Ok(records) => Decisions::Read { table, records },
            Err(err) if err.has_code("ResourceNotFoundException") => Decisions::Unavailable(
                format!("table {table} does not exist: `deploy` creates it with the fence"),
            ),
            Err(err) => Decisions::Unavailable(format!("table {table} could not be read: {err}")),
        }
    }
}

/// Milliseconds since the epoch, as the fence stamps its decisions.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A cache the server does not know (or that has no backup there) is reported as such; any
/// other failure means the site cannot be read.
fn per_cache<T>(result: Result<T, IspnError>) -> Result<Result<T, String>, String> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(IspnError::Status {
            status: 404, body, ..
        }) => Ok(Err(body)),
        Err(err) => Err(err.to_string()),
    }
}

async fn replication(
    site: &SiteHandle,
    remote: &SiteName,
    caches: &[String],
) -> Result<Replication, String> {
    let mut backups = BTreeMap::new();
    let mut push = BTreeMap::new();
    for cache in caches {
        let backup = match per_cache(site.client.cache_backup_status(cache).await)? {
            Ok(map) => match map.get(remote.as_str()) {
                Some(status) => BackupState::parse(status),
                None => BackupState::Unknown(format!("no backup to {remote}")),
            },
            Err(body) => BackupState::Unknown(body),
        };
        backups.insert(cache.clone(), backup);
        let state = match per_cache(site.client.push_state_status(cache).await)? {
            Ok(map) => match map.get(remote.as_str()) {
                Some(status) => PushState::parse(status),
                // Servers leave a site out of the map until a push was started.
                None => PushState::Idle,
            },
            Err(body) => PushState::Unknown(body),
        };
        push.insert(cache.clone(), state);
    }
    let sees_remote = match site.client.site_view(site.metrics_url.as_deref()).await {
        Ok(views) => match views.get(remote.as_str()) {
            Some(SiteView::InView) => Some(true),
            Some(SiteView::NotInView) => Some(false),
            Some(SiteView::Unknown) | None => None,
        },
        Err(_) => None,
    };
    Ok(Replication {
        backups,
        push,
        sees_remote,
    })
}
