//! The real [`World`]: Global Accelerator and ELBv2, Secrets Manager, Infinispan, SNS.
//!
//! Built once per cold start; warm invocations reuse the clients, the secrets (with a TTL) and
//! the resolved topology (accelerator, groups, endpoint → site, with a TTL). A warm fence reads
//! only each group's current state (`DescribeEndpointGroup`), then removes and takes offline:
//! three remote calls for one group. The cached topology is dropped on any failed call and on
//! any inconsistency (an endpoint or group it does not know).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_topology::globalaccelerator::{GlobalAccelerator, Removal, Topology};
use aws_topology::retry::AwsError;
use common::auth::BasicCredentials;
use common::notify::Notifier;
use common::outcome::Disposition;
use common::secret::{Secret, SecretCache, SecretError};
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{CacheResults, Credentials, IspnError, SiteClient};

use crate::config::FenceConfig;
use crate::decision::Liveness;
use crate::handler::{Failure, World};

/// How long a probe of a site's Infinispan may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long init waits for a site's Infinispan to answer its first read. A site that does not
/// answer (it may be the one that failed) delays a cold start by this much at most.
const CONNECT_AHEAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the futures concurrently on this task and waits for all of them.
async fn join_all<F: Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

struct CachedTopology {
    topology: Topology,
    resolved_at: Instant,
}

pub struct LiveWorld {
    webhook_user: String,
    webhook_secret: String,
    infinispan_user: String,
    infinispan_secret: String,
    secrets: SecretCache,
    accelerator: Arc<GlobalAccelerator>,
    sites: BTreeMap<SiteName, SiteClient>,
    notifier: Option<Notifier>,
    topology_ttl: Duration,
    topologies: Mutex<HashMap<AcceleratorDns, CachedTopology>>,
}

impl LiveWorld {
    pub async fn new(config: &FenceConfig) -> Result<LiveWorld, IspnError> {
        let accelerator_config = common::aws::sdk_config(Some(&config.accelerator_region)).await;
        let secrets_config = accelerator_config
            .to_builder()
            .region(Region::new(config.secrets_region.clone()))
            .build();
        let http = ispn_client::http_client(&config.tls)?;
        let sites = config
            .sites
            .iter()
            .map(|(site, endpoint)| {
                let credentials = Credentials {
                    user: config.infinispan_user.clone(),
                    password: Secret::new(""),
                };
                (
                    site.clone(),
                    SiteClient::new(site.clone(), endpoint.clone(), http.clone(), credentials),
                )
            })
            .collect();
        Ok(LiveWorld {
            webhook_user: config.webhook_user.clone(),
            webhook_secret: config.webhook_secret.clone(),
            infinispan_user: config.infinispan_user.clone(),
            infinispan_secret: config.infinispan_secret.clone(),
            secrets: SecretCache::new(&secrets_config, config.secret_ttl),
            accelerator: Arc::new(
                GlobalAccelerator::new(&accelerator_config)
                    .with_known_sites(config.site_load_balancers.clone()),
            ),
            sites,
            notifier: Notifier::from_env(&accelerator_config),
            topology_ttl: config.topology_ttl,
            topologies: Mutex::default(),
        })
    }

    /// Reads both secrets and, when the accelerator is configured, its topology, at once, and
    /// once the Infinispan password is known opens a connection to every site's Infinispan
    /// (a health read): during init, so that a cold start's first fence finds all of it
    /// ready. Bounded by `limit`; what fails or is late is done again by the invocation that
    /// needs it.
    pub async fn prefetch(&self, accelerator: Option<&AcceleratorDns>, limit: Duration) {
        let secrets = async {
            if let Err(failure) = self.webhook_credentials().await {
                tracing::warn!(event = "prefetch_failed", what = "secrets", error = %failure.message);
                return;
            }
            // After the secrets: a read without the password would be refused, and logged by
            // Infinispan as a failed login at every cold start.
            join_all(self.sites.values().map(|client| async move {
                if let Err(err) = client.health(CONNECT_AHEAD_TIMEOUT).await {
                    tracing::info!(event = "prefetch_failed", what = "infinispan", site = %client.site(), error = %err);
                }
            }))
            .await;
        };
        let topology = async {
            if let Some(accelerator) = accelerator
                && let Err(failure) = self.topology(accelerator).await
            {
                tracing::warn!(event = "prefetch_failed", what = "topology", error = %failure.message);
            }
        };
        if tokio::time::timeout(limit, async { tokio::join!(secrets, topology) })
            .await
            .is_err()
        {
            tracing::warn!(event = "prefetch_failed", error = "timed out");
        }
    }

    fn site(&self, site: &SiteName) -> Result<&SiteClient, Failure> {
        self.sites.get(site).ok_or_else(|| {
            Failure::fatal(format!("site {site} is not in INFINISPAN_SITE_ENDPOINTS"))
        })
    }

    /// Gives every site client the current Infinispan password (from the cache when warm).
    async fn refresh_infinispan_credentials(&self) -> Result<(), Failure> {
        let password = self
            .secrets
            .get(&self.infinispan_secret)
            .await
            .map_err(secret_failure)?;
        self.set_infinispan_password(password);
        Ok(())
    }

    fn set_infinispan_password(&self, password: Secret) {
        for client in self.sites.values() {
            client.set_credentials(Credentials {
                user: self.infinispan_user.clone(),
                password: password.clone(),
            });
        }
    }

    fn cached_topology(&self, accelerator: &AcceleratorDns) -> Option<Topology> {
        let cache = self.topologies.lock().ok()?;
        let cached = cache.get(accelerator)?;
        (cached.resolved_at.elapsed() < self.topology_ttl).then(|| cached.topology.clone())
    }

    /// The cached topology with every group's current endpoints and health, read concurrently.
    async fn refresh(&self, cached: &Topology) -> Result<Topology, String> {
        let mut reads = tokio::task::JoinSet::new();
        for (index, group) in cached.groups.iter().enumerate() {
            let accelerator = Arc::clone(&self.accelerator);
            let arn = group.arn.clone();
            reads.spawn(async move { (index, accelerator.describe_group(&arn).await) });
        }
        let mut states = vec![None; cached.groups.len()];
        while let Some(joined) = reads.join_next().await {
            let (index, state) = joined.map_err(|e| e.to_string())?;
            states[index] = Some(state.map_err(|e| e.to_string())?);
        }
        let states = states
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or("a group was not read")?;
        cached.refreshed(states).map_err(|stale| stale.to_string())
    }
}

fn aws_failure(err: AwsError) -> Failure {
    Failure {
        disposition: if err.retryable {
            Disposition::Transient
        } else {
            Disposition::Fatal
        },
        message: err.to_string(),
    }
}

fn secret_failure(err: SecretError) -> Failure {
    Failure {
        disposition: if err.is_retryable() {
            Disposition::Transient
        } else {
            Disposition::Fatal
        },
        message: err.to_string(),
    }
}

impl World for LiveWorld {
    async fn webhook_credentials(&self) -> Result<BasicCredentials, Failure> {
        // Both secrets at once: a cold start pays one round trip for the two.
        let (webhook, infinispan) = tokio::join!(
            self.secrets.get(&self.webhook_secret),
            self.secrets.get(&self.infinispan_secret)
        );
        match infinispan {
            Ok(password) => self.set_infinispan_password(password),
            Err(err) => tracing::warn!(event = "secret_unavailable", error = %err),
        }
        let password = webhook.map_err(secret_failure)?;
        Ok(BasicCredentials {
            user: self.webhook_user.clone(),
            password,
        })
    }

    async fn topology(&self, accelerator: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        if let Some(cached) = self.cached_topology(accelerator) {
            match self.refresh(&cached).await {
                Ok(topology) => return Ok(Some(topology)),
                Err(reason) => {
                    tracing::info!(event = "topology_cache_stale", accelerator = %accelerator, %reason);
                    self.forget_topology(accelerator);
                }
            }
        }
        let topology = self
            .accelerator
            .topology(accelerator)
            .await
            .map_err(aws_failure)?;
        if let (Some(topology), Ok(mut cache)) = (&topology, self.topologies.lock()) {
            cache.insert(
                accelerator.clone(),
                CachedTopology {
                    topology: topology.clone(),
                    resolved_at: Instant::now(),
                },
            );
        }
        Ok(topology)
    }

    fn forget_topology(&self, accelerator: &AcceleratorDns) {
        if let Ok(mut cache) = self.topologies.lock() {
            cache.remove(accelerator);
        }
    }

    async fn probe(&self, site: &SiteName) -> Liveness {
        let Ok(client) = self.site(site) else {
            return Liveness::Unreachable;
        };
        if let Err(failure) = self.refresh_infinispan_credentials().await {
            tracing::warn!(event = "probe_without_fresh_credentials", error = %failure.message);
        }
        match client.health(PROBE_TIMEOUT).await {
            Ok(_) => Liveness::Alive,
            // It answered: the server is up, only our credentials are in question.
            Err(err) if err.is_auth_failure() => Liveness::Alive,
            Err(err) => {
                tracing::info!(event = "probe_unreachable", site = %site, error = %err);
                Liveness::Unreachable
            }
        }
    }

    async fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        deadline: Instant,
    ) -> Result<Removal, Failure> {
        self.accelerator
            .remove_endpoints(group_arn, endpoint_ids, deadline)
            .await
            .map_err(aws_failure)
    }

    async fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> Result<CacheResults, Failure> {
        let client = self.site(site)?;
        self.refresh_infinispan_credentials().await?;
        client.take_offline(remote).await.map_err(|err| {
            if err.is_auth_failure() {
                // The password may have been rotated: read it again on the retry.
                self.secrets.invalidate(&self.infinispan_secret);
                return Failure::transient(err.to_string());
            }
            Failure {
                disposition: if err.is_retryable() {
                    Disposition::Transient
                } else {
                    Disposition::Fatal
                },
                message: err.to_string(),
            }
        })
    }

    async fn notify(&self, subject: &str, record: &serde_json::Value) {
        if let Some(notifier) = &self.notifier
            && let Err(err) = notifier.publish(subject, record).await
        {
            tracing::warn!(event = "notification_failed", error = %err);
        }
    }
}
