//! The real [`World`]: Global Accelerator and ELBv2, Secrets Manager, Infinispan, SNS.
//!
//! Built once per cold start; warm invocations reuse the clients, the secrets (with a TTL) and
//! what cannot change unnoticed about the accelerator ([`Known`]: its ARN, its listeners, each
//! endpoint's site, with a TTL). A warm fence lists the listeners and the known listeners'
//! groups at once (one round trip in sequence, so a listener, group or endpoint added or removed
//! since is seen), records its decision, then removes and takes offline. What is known is
//! dropped on any failed call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_topology::decisions::{Completion, DecisionRecord, DecisionStore, Recorded};
use aws_topology::globalaccelerator::{GlobalAccelerator, Known, Removal, Topology, TrafficDial};
use aws_topology::retry::AwsError;
use common::auth::BasicCredentials;
use common::notify::Notifier;
use common::secret::{Secret, SecretCache, SecretError};
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{BackupCaches, CacheResults, Credentials, IspnError, ProbeError, SiteClient};

use crate::config::FenceConfig;
use crate::decide::Liveness;
use crate::handler::{Failure, World};

/// How long a probe of a site's Infinispan may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long init waits for a site's Infinispan to answer its first read. A site that does not
/// answer (it may be the one that failed) delays a cold start by this much at most.
const CONNECT_AHEAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The key init reads to open the connection to the decision table: never a split-brain's
/// (those are `accelerator/site+site`).
const CONNECT_AHEAD_KEY: &str = "sitefence:connect-ahead";
/// How long a notification may take: it never turns a finished fence into a failure, nor eats
/// the time of the answer.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon after init's reads the first invocation must begin for them to stand in for its
/// own (besides having been asked for before they began).
const INIT_READS_SERVE_WITHIN: Duration = Duration::from_secs(1);

/// What init read for the first invocation: the accelerator and which sites' Infinispan
/// answered its health read. They stand in for the first invocation's own reads only when its
/// request reached Lambda before they began, as a cold start's request does: then they are as
/// fresh as the reads a warm fence makes after receiving its request. An environment Lambda
/// initialised ahead of demand (provisioned or proactive initialisation,
/// docs/aws-behaviours.md #92) reads afresh. Used at most once, each read taken when first
/// asked for ([`LiveWorld::begin_invocation`]).
#[derive(Default)]
struct InitReads {
    /// When the reads began, in milliseconds since the epoch.
    began_at_ms: u64,
    done_at: Option<Instant>,
    topology: Option<(AcceleratorDns, Topology)>,
    alive: std::collections::BTreeSet<SiteName>,
}

struct KnownAccelerator {
    known: Known,
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
    known: Mutex<HashMap<AcceleratorDns, KnownAccelerator>>,
    decisions: DecisionStore,
    backup_caches: BackupCaches,
    /// Init's reads, until the first invocation begins.
    init_reads: Mutex<InitReads>,
    /// Init's reads the running invocation may still use in place of its own.
    serving: Mutex<InitReads>,
}

impl LiveWorld {
    pub async fn new(config: &FenceConfig) -> Result<LiveWorld, IspnError> {
        // The decision table lives in the function's own region.
        let functions_config = common::aws::sdk_config(None).await;
        let in_region = |region: &str| {
            functions_config
                .to_builder()
                .region(Region::new(region.to_owned()))
                .build()
        };
        let accelerator_config = in_region(&config.accelerator_region);
        let secrets_config = in_region(&config.secrets_region);
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
            known: Mutex::new(configured_accelerator(config)),
            decisions: DecisionStore::new(&functions_config, config.decision_table.clone()),
            backup_caches: config.backup_caches.clone(),
            init_reads: Mutex::default(),
            serving: Mutex::default(),
        })
    }

    /// Called as each invocation begins, with when Lambda received its request (milliseconds
    /// since the epoch, when the event says): init's reads serve the first invocation when its
    /// request came before they began and they ended within [`INIT_READS_SERVE_WITHIN`], and
    /// no invocation after it.
    pub fn begin_invocation(&self, requested_at_ms: Option<u64>) {
        let reads = self
            .init_reads
            .lock()
            .map(|mut reads| std::mem::take(&mut *reads))
            .unwrap_or_default();
        let fresh = requested_at_ms.is_some_and(|requested| requested <= reads.began_at_ms)
            && reads
                .done_at
                .is_some_and(|done| done.elapsed() <= INIT_READS_SERVE_WITHIN);
        if let Ok(mut serving) = self.serving.lock() {
            *serving = if fresh { reads } else { InitReads::default() };
        }
    }

    /// Reads both secrets, each site's Infinispan health (without credentials: it needs none),
    /// the accelerator's topology when configured, and a key of the decision table, all at
    /// once, during init: a cold start's first fence then finds its connections open and, when
    /// its request was already waiting, its reads done ([`LiveWorld::begin_invocation`]).
    /// Bounded by `limit`; what fails or is late is done again by the invocation that needs it.
    pub async fn prefetch(&self, accelerator: Option<&AcceleratorDns>, limit: Duration) {
        // A clock that reads before the epoch gives 0: no request came before that, so the
        // reads then serve no invocation.
        let began_at_ms = crate::handler::now_ms();
        let secrets = async {
            if let Err(failure) = self.webhook_credentials().await {
                tracing::warn!(event = "prefetch_failed", what = "secrets", error = %failure.message);
            }
        };
        // Beside the secrets, without credentials: the health endpoint needs none, so the
        // probe waits for no password and attempts no login (docs/aws-behaviours.md #22). It
        // also opens each site's connection for the fence's authenticated calls. A site that
        // answers is one the first fence need not probe again.
        let probes = async {
            let probes = common::join::join_all(self.sites.values().map(|client| async move {
                match client.probe_anonymously(CONNECT_AHEAD_TIMEOUT).await {
                    Ok(_) => Some(client.site().clone()),
                    Err(err) => {
                        tracing::info!(event = "prefetch_failed", what = "infinispan", site = %client.site(), error = %err);
                        None
                    }
                }
            }))
            .await;
            probes
                .into_iter()
                .flatten()
                .collect::<std::collections::BTreeSet<_>>()
        };
        let topology = async {
            let accelerator = accelerator?;
            match self.topology(accelerator).await {
                Ok(Some(topology)) => Some((accelerator.clone(), topology)),
                Ok(None) => None,
                Err(failure) => {
                    tracing::warn!(event = "prefetch_failed", what = "topology", error = %failure.message);
                    None
                }
            }
        };
        // A read of a key no split-brain has opens the connection to the decision table (and
        // proves the table is there), so that the first fence's record is one round trip.
        let decisions = async {
            if let Err(err) = self.decisions.get(CONNECT_AHEAD_KEY).await {
                tracing::warn!(event = "prefetch_failed", what = "decision table", error = %err);
            }
        };
        match tokio::time::timeout(limit, async {
            tokio::join!(secrets, probes, topology, decisions)
        })
        .await
        {
            Ok(((), alive, topology, ())) => {
                if let Ok(mut reads) = self.init_reads.lock() {
                    *reads = InitReads {
                        began_at_ms,
                        done_at: Some(Instant::now()),
                        topology,
                        alive,
                    };
                }
            }
            Err(_) => tracing::warn!(event = "prefetch_failed", error = "timed out"),
        }
    }

    /// Init's topology of `accelerator`, when it may stand in for this invocation's read.
    fn take_init_topology(&self, accelerator: &AcceleratorDns) -> Option<Topology> {
        let mut serving = self.serving.lock().ok()?;
        match serving.topology.take() {
            Some((read, topology)) if read == *accelerator => Some(topology),
            _ => None,
        }
    }

    /// Whether init's probe found `site` answering, when it may stand in for this
    /// invocation's probe.
    fn take_init_alive(&self, site: &SiteName) -> bool {
        self.serving
            .lock()
            .map(|mut serving| serving.alive.remove(site))
            .unwrap_or(false)
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

    fn known(&self, accelerator: &AcceleratorDns) -> Option<Known> {
        let cache = self.known.lock().ok()?;
        let entry = cache.get(accelerator)?;
        (entry.resolved_at.elapsed() < self.topology_ttl).then(|| entry.known.clone())
    }
}

/// The accelerator deploy configured with its ARN, known from the start: the first read lists
/// its listeners at once instead of finding it among every accelerator first. Its listeners
/// and sites are still read (none is known). The ARN is the one the function's policy names,
/// found by deploy from the same DNS name; should the accelerator be gone, the read falls back
/// to finding it by DNS name.
fn configured_accelerator(config: &FenceConfig) -> HashMap<AcceleratorDns, KnownAccelerator> {
    let (Some(dns), Some(arn)) = (&config.accelerator_dns, &config.accelerator_arn) else {
        return HashMap::new();
    };
    HashMap::from([(
        dns.clone(),
        KnownAccelerator {
            known: Known {
                accelerator_arn: arn.clone(),
                listeners: Vec::new(),
                sites: BTreeMap::new(),
            },
            resolved_at: Instant::now(),
        },
    )])
}

/// A failed call: one that may succeed when retried answers 5xx (the sender resends), any
/// other fails the report loudly.
fn failure(retryable: bool, message: String) -> Failure {
    if retryable {
        Failure::transient(message)
    } else {
        Failure::fatal(message)
    }
}

fn aws_failure(err: AwsError) -> Failure {
    failure(err.retryable, err.to_string())
}

fn ispn_failure(err: IspnError) -> Failure {
    failure(err.is_retryable(), err.to_string())
}

fn secret_failure(err: SecretError) -> Failure {
    failure(err.is_retryable(), err.to_string())
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

    async fn reread_webhook_credentials(
        &self,
        rejected: &BasicCredentials,
    ) -> Result<Option<BasicCredentials>, Failure> {
        let fresh = self
            .secrets
            .refresh_after_rejection(&self.webhook_secret, &rejected.password)
            .await
            .map_err(secret_failure)?;
        Ok(fresh.map(|password| BasicCredentials {
            user: self.webhook_user.clone(),
            password,
        }))
    }

    async fn topology(&self, accelerator: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        if let Some(topology) = self.take_init_topology(accelerator) {
            return Ok(Some(topology));
        }
        let known = self.known(accelerator);
        let topology = self
            .accelerator
            .topology_from(accelerator, known.as_ref())
            .await
            .map_err(aws_failure)?;
        if let Ok(mut cache) = self.known.lock() {
            match &topology {
                Some(topology) => {
                    let resolved_at = match (known, cache.get(accelerator)) {
                        (Some(_), Some(entry)) => entry.resolved_at,
                        _ => Instant::now(),
                    };
                    cache.insert(
                        accelerator.clone(),
                        KnownAccelerator {
                            known: topology.known(),
                            resolved_at,
                        },
                    );
                }
                None => {
                    cache.remove(accelerator);
                }
            }
        }
        Ok(topology)
    }

    async fn backup_status(&self, site: &SiteName) -> Result<BTreeMap<String, String>, Failure> {
        let client = self.site(site)?;
        self.refresh_infinispan_credentials().await?;
        let status = client.backup_status().await.map_err(ispn_failure)?;
        Ok(status
            .into_iter()
            .map(|(remote, backup)| (remote, backup.status))
            .collect())
    }

    async fn read_secrets_afresh(&self) -> Result<(), Failure> {
        self.secrets.invalidate(&self.webhook_secret);
        self.secrets.invalidate(&self.infinispan_secret);
        let (webhook, infinispan) = tokio::join!(
            self.secrets.get(&self.webhook_secret),
            self.secrets.get(&self.infinispan_secret)
        );
        webhook.map_err(secret_failure)?;
        self.set_infinispan_password(infinispan.map_err(secret_failure)?);
        Ok(())
    }

    fn forget_topology(&self, accelerator: &AcceleratorDns) {
        if let Ok(mut cache) = self.known.lock() {
            cache.remove(accelerator);
        }
    }

    async fn probe(&self, site: &SiteName) -> Result<Liveness, Failure> {
        let client = self.site(site)?;
        if self.take_init_alive(site) {
            return Ok(Liveness::Alive);
        }
        if let Err(failure) = self.refresh_infinispan_credentials().await {
            tracing::warn!(event = "probe_without_fresh_credentials", error = %failure.message);
        }
        match client.probe(PROBE_TIMEOUT).await {
            Ok(_) => Ok(Liveness::Alive),
            Err(err @ ProbeError::Unreachable { .. }) => {
                tracing::info!(event = "probe_unreachable", site = %site, error = %err);
                Ok(Liveness::Unreachable)
            }
            // TLS trust, credentials, a wrong URL: a verdict from this would hand the
            // split-brain to the other site for a configuration error.
            Err(err @ ProbeError::Misconfigured { .. }) => Err(Failure::fatal(err.to_string())),
        }
    }

    async fn record(
        &self,
        proposal: &DecisionRecord,
        replacing: Option<&str>,
    ) -> Result<Recorded, Failure> {
        self.decisions
            .create(proposal, replacing)
            .await
            .map_err(aws_failure)
    }

    async fn recorded(&self, split_brain: &str) -> Result<Option<DecisionRecord>, Failure> {
        self.decisions.get(split_brain).await.map_err(aws_failure)
    }

    async fn complete(
        &self,
        split_brain: &str,
        decision_id: &str,
        completion: &Completion,
    ) -> Result<(), Failure> {
        let applied = self
            .decisions
            .complete(split_brain, decision_id, completion)
            .await
            .map_err(aws_failure)?;
        if !applied {
            // Replaced by a later decision since: this completion belongs to no record.
            tracing::info!(event = "completion_of_replaced_decision", decision_id);
        }
        Ok(())
    }

    async fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        deadline: Instant,
    ) -> Result<(), Failure> {
        self.accelerator
            .set_traffic_dial(group_arn, dial, deadline)
            .await
            .map_err(aws_failure)
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
        match client
            .take_offline_verified(remote, &self.backup_caches)
            .await
        {
            Ok(caches) => Ok(caches),
            Err(err) if err.is_auth_failure() => {
                // The password may have been rotated: read it again (at most once per
                // MIN_REREAD_INTERVAL, however many 401s) for this call's resend.
                if let Ok(rejected) = self.secrets.get(&self.infinispan_secret).await
                    && let Ok(Some(fresh)) = self
                        .secrets
                        .refresh_after_rejection(&self.infinispan_secret, &rejected)
                        .await
                {
                    self.set_infinispan_password(fresh);
                }
                Err(Failure::transient(err.to_string()))
            }
            Err(err) => Err(ispn_failure(err)),
        }
    }

    async fn notify(&self, subject: &str, record: &serde_json::Value) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        match tokio::time::timeout(NOTIFY_TIMEOUT, notifier.publish(subject, record)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(event = "notification_failed", error = %err),
            Err(_) => tracing::warn!(event = "notification_failed", error = "timed out"),
        }
    }
}
