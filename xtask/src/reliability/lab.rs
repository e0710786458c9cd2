//! One sandbox world as the reliability suite drives it: the fence's real bootstrap binary behind
//! the Function URL front, and the emulators' test controls (reset, faults, health, state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_topology::decisions::DecisionStore;
use aws_topology::globalaccelerator::{GlobalAccelerator, Topology};
use base64::Engine;
use common::site::{AcceleratorDns, SiteName};
use sandbox::world::{FunctionOptions, SITES, SandboxInfo, World, WorldOptions, sdk_config};
use serde_json::{Value, json};

use super::shapes::{self, Shape, Shaped};

/// How a world's fence function runs.
#[derive(Debug, Clone)]
pub struct FenceSetup {
    pub instances: usize,
    /// Lambda's reserved concurrency: invocations beyond it are throttled (429).
    pub reserved_concurrency: Option<usize>,
    pub timeout: Duration,
    pub push_delay: Duration,
    /// Settings on top of the sandbox's (`RETRY_BUDGET_SECONDS`, `SECRET_TTL_SECONDS`, ...).
    pub extra_env: Vec<(String, String)>,
}

/// The fence's reserved concurrency as deploy sets it.
pub fn deployed_reserved_concurrency() -> usize {
    usize::try_from(crate::deploy::plan::FENCE_RESERVED_CONCURRENCY).unwrap_or(1)
}

impl Default for FenceSetup {
    fn default() -> Self {
        let reserved = deployed_reserved_concurrency();
        FenceSetup {
            // As deployed: as many execution environments as the reservation lets Lambda run,
            // so concurrent reports really run in parallel, and the 429 beyond it.
            instances: reserved,
            reserved_concurrency: Some(reserved),
            timeout: Duration::from_secs(30),
            push_delay: Duration::from_millis(300),
            extra_env: Vec::new(),
        }
    }
}

/// A running world and an HTTP client for it. Stop it with [`Lab::shutdown`].
pub struct Lab {
    pub dir: PathBuf,
    pub info: SandboxInfo,
    world: World,
    http: reqwest::Client,
    /// Trusts the sandbox CA, for calls to the Infinispan REST API itself (a sync).
    ispn_http: reqwest::Client,
    /// The fence's decision records, read straight from moto (not through the AWS front: the
    /// lab's reads are no calls of the function and meet none of its faults).
    decisions: DecisionStore,
    /// The accelerators of every shape ([`Lab::make_shapes`]); the seeded one alone before.
    shaped: Vec<Shaped>,
}

/// An answer of the fence's Function URL.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Lab {
    pub async fn start(dir: &Path, fence_binary: &Path, setup: &FenceSetup) -> anyhow::Result<Lab> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut options = WorldOptions::new(dir);
        options.push_delay = setup.push_delay;
        let mut fence = FunctionOptions::bootstrap(fence_binary).with_environment(
            crate::sandbox_world::deploy_environment(crate::deploy::plan::Function::Fence),
        );
        fence.instances = setup.instances;
        fence.reserved_concurrency = setup.reserved_concurrency;
        fence.timeout = setup.timeout;
        fence.extra_env = setup.extra_env.clone();
        options.fence = Some(fence);
        let world = World::start(options)
            .await
            .with_context(|| format!("starting a sandbox world in {}", dir.display()))?;
        let info = world.info().clone();
        let ca = std::fs::read(&info.ca_bundle).context("reading the sandbox CA")?;
        let ispn_http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .timeout(Duration::from_secs(10))
            .build()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let table = crate::sandbox_world::ensure_decision_table(&info).await?;
        let decisions = DecisionStore::new(&sdk_config(&info.moto_url, &info.region).await, table);
        let seeded = Shaped {
            shape: Shape::OneGroup,
            dns: info.accelerator_dns.clone(),
            load_balancers: SITES
                .iter()
                .filter_map(|site| Some((*site, vec![info.sites.get(*site)?.endpoint_id.clone()])))
                .collect(),
            groups: info.endpoint_group_arns.clone(),
        };
        Ok(Lab {
            dir: dir.to_path_buf(),
            info,
            world,
            http,
            ispn_http,
            decisions,
            shaped: vec![seeded],
        })
    }

    /// Adds an accelerator of every other shape ([`shapes`]) and makes the emulator's reset
    /// restore them.
    pub async fn make_shapes(&mut self) -> anyhow::Result<()> {
        self.shaped = shapes::make_all(&self.info).await?;
        self.world.ga.remember_as_seeded();
        Ok(())
    }

    /// The accelerator of `shape`.
    pub fn shaped(&self, shape: Shape) -> anyhow::Result<&Shaped> {
        self.shaped
            .iter()
            .find(|s| s.shape == shape)
            .with_context(|| format!("this world has no accelerator of shape {shape:?}"))
    }

    pub fn decisions(&self) -> &DecisionStore {
        &self.decisions
    }

    /// The accelerator as the fence's own client reads it, every endpoint's site known.
    pub async fn topology(&self, shaped: &Shaped) -> anyhow::Result<Topology> {
        let mut sites = BTreeMap::new();
        for (id, site) in shaped.sites_by_load_balancer() {
            sites.insert(
                id,
                SiteName::parse(site).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        let client = GlobalAccelerator::new(
            &sdk_config(
                &self.info.globalaccelerator_endpoint_url,
                aws_topology::globalaccelerator::API_REGION,
            )
            .await,
        )
        .with_known_sites(sites);
        let dns = AcceleratorDns::parse(&shaped.dns).map_err(|e| anyhow::anyhow!("{e}"))?;
        client
            .topology(&dns)
            .await?
            .with_context(|| format!("no accelerator {}", shaped.dns))
    }

    pub async fn shutdown(self) {
        self.world.shutdown().await;
    }

    pub fn function_url(&self) -> anyhow::Result<&str> {
        self.info
            .fence
            .function_url
            .as_deref()
            .context("the world runs no fence function")
    }

    /// The `Authorization` header the fence expects.
    pub fn basic_auth(&self) -> String {
        basic(&self.info.fence.user, &self.info.fence.password)
    }

    /// Every secret value of this world, and its encodings that could reach a log.
    pub fn secrets(&self) -> Vec<String> {
        let fence = &self.info.fence;
        let ispn = &self.info.infinispan;
        vec![
            fence.password.clone(),
            ispn.password.clone(),
            basic(&fence.user, &fence.password)
                .trim_start_matches("Basic ")
                .to_string(),
            basic(&ispn.user, &ispn.password)
                .trim_start_matches("Basic ")
                .to_string(),
        ]
    }

    /// POSTs a body to the fence's Function URL with the given headers (none added).
    pub async fn post(&self, headers: &[(&str, String)], body: Vec<u8>) -> anyhow::Result<Answer> {
        let mut request = self.http.post(self.function_url()?).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    /// Sends one Alertmanager notification, authenticated, as Alertmanager does.
    pub async fn report(&self, reporter: &str, site: &str) -> anyhow::Result<Answer> {
        self.report_to(&self.info.accelerator_dns, reporter, site)
            .await
    }

    /// [`Lab::report`] about the accelerator named `accelerator`.
    pub async fn report_to(
        &self,
        accelerator: &str,
        reporter: &str,
        site: &str,
    ) -> anyhow::Result<Answer> {
        let body = site_offline(accelerator, &[(reporter, site)]);
        self.post(
            &[
                ("authorization", self.basic_auth()),
                ("content-type", "application/json".to_string()),
            ],
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Every control back to the seeded state: topology, health, faults, latency, Infinispan,
    /// and no decision record.
    pub async fn reset(&self) -> anyhow::Result<()> {
        crate::sandbox_world::reset_decisions(&self.info).await?;
        let ga = &self.info.globalaccelerator_endpoint_url;
        self.control(&format!("{ga}/_sandbox/reset"), json!({}))
            .await?;
        self.control(
            &format!("{}/_sandbox/fault", self.info.aws_endpoint_url),
            json!({"reset": true}),
        )
        .await?;
        for site in self.info.sites.values() {
            self.control(&format!("{}/reset", site.control_url), json!({}))
                .await?;
        }
        Ok(())
    }

    pub async fn control(&self, url: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.http.post(url).json(&body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("control {url} {body} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, url: &str) -> anyhow::Result<Value> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    fn site_control(&self, site: &str) -> anyhow::Result<&str> {
        Ok(&self
            .info
            .sites
            .get(site)
            .with_context(|| format!("no site {site}"))?
            .control_url)
    }

    pub async fn ga_fault(&self, body: Value) -> anyhow::Result<()> {
        let url = format!(
            "{}/_sandbox/fault",
            self.info.globalaccelerator_endpoint_url
        );
        self.control(&url, body).await.map(drop)
    }

    pub async fn aws_fault(&self, body: Value) -> anyhow::Result<()> {
        let url = format!("{}/_sandbox/fault", self.info.aws_endpoint_url);
        self.control(&url, body).await.map(drop)
    }

    /// The AWS calls the world's functions made through the AWS front.
    pub async fn aws_calls(&self) -> anyhow::Result<sandbox::aws_front::CallCounts> {
        let calls = self
            .get(&format!("{}/_sandbox/calls", self.info.aws_endpoint_url))
            .await?;
        Ok(serde_json::from_value(calls)?)
    }

    pub async fn ispn_fault(&self, site: &str, body: Value) -> anyhow::Result<()> {
        let url = format!("{}/fault", self.site_control(site)?);
        self.control(&url, body).await.map(drop)
    }

    pub async fn ispn_down(&self, site: &str, down: bool) -> anyhow::Result<()> {
        let url = format!("{}/down", self.site_control(site)?);
        self.control(&url, json!({ "down": down })).await.map(drop)
    }

    pub async fn partition(&self, partitioned: bool) -> anyhow::Result<()> {
        let url = format!("{}/partition", self.site_control(SITES[0])?);
        self.control(&url, json!({ "partitioned": partitioned }))
            .await
            .map(drop)
    }

    pub async fn unhealthy(&self, site: &str) -> anyhow::Result<()> {
        let endpoint = self
            .info
            .sites
            .get(site)
            .with_context(|| format!("no site {site}"))?
            .endpoint_id
            .clone();
        self.set_health(&[endpoint], "UNHEALTHY").await
    }

    /// Imposes a health state (`HEALTHY`, `UNHEALTHY`) on endpoints, in every group.
    pub async fn set_health(&self, endpoints: &[String], state: &str) -> anyhow::Result<()> {
        let url = format!(
            "{}/_sandbox/health",
            self.info.globalaccelerator_endpoint_url
        );
        for endpoint in endpoints {
            self.control(&url, json!({"endpoint_id": endpoint, "state": state}))
                .await?;
        }
        Ok(())
    }

    /// Starts pushing `from`'s state to the other site (the last step of "synchronize sites"),
    /// through Infinispan's REST API as an operator would; the answer is not checked (a push
    /// while the link is cut or a site is down fails, as it does in Infinispan).
    pub async fn start_sync(&self, from: &str) -> anyhow::Result<()> {
        let site = self.info.sites.get(from).context("no such site")?;
        let to = SITES
            .iter()
            .find(|s| **s != from)
            .context("no other site")?;
        let url = format!(
            "{}/rest/v2/container/x-site/backups/{to}?action=start-push-state",
            site.ispn_url.trim_end_matches('/')
        );
        let _ = self
            .ispn_http
            .post(url)
            .header(
                "authorization",
                basic(&self.info.infinispan.user, &self.info.infinispan.password),
            )
            .send()
            .await;
        Ok(())
    }

    /// Endpoint group ARN → the sites of the endpoints it holds (untagged ids as they are).
    pub async fn endpoint_groups(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let state = self
            .get(&format!(
                "{}/_sandbox/state",
                self.info.globalaccelerator_endpoint_url
            ))
            .await?;
        let site_of: BTreeMap<&str, &str> = self
            .info
            .sites
            .iter()
            .map(|(site, s)| (s.endpoint_id.as_str(), site.as_str()))
            .collect();
        let mut groups = BTreeMap::new();
        let accelerators = state["accelerators"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for accelerator in &accelerators {
            if accelerator["Accelerator"]["AcceleratorArn"] != self.info.accelerator_arn.as_str() {
                continue;
            }
            for listener in accelerator["Listeners"].as_array().into_iter().flatten() {
                for group in listener["EndpointGroups"].as_array().into_iter().flatten() {
                    let arn = group["EndpointGroupArn"].as_str().unwrap_or_default();
                    let sites = group["EndpointDescriptions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["EndpointId"].as_str())
                        .map(|id| site_of.get(id).copied().unwrap_or(id).to_string())
                        .collect();
                    groups.insert(arn.to_string(), sites);
                }
            }
        }
        if groups.is_empty() {
            bail!("the accelerator has no endpoint group at all");
        }
        Ok(groups)
    }

    /// Cache → backup status (`online`/`offline`) of `site`'s backup to the other site.
    pub async fn backups(&self, site: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let state = self
            .get(&format!("{}/state", self.site_control(site)?))
            .await?;
        Ok(state["caches"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(cache, s)| {
                (
                    cache.clone(),
                    s["backup"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect())
    }
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// An Alertmanager (version 4) notification with one firing `SiteOffline` alert per
/// `(reporter, site)` pair.
pub fn site_offline(accelerator: &str, pairs: &[(&str, &str)]) -> Value {
    let alerts: Vec<Value> = pairs
        .iter()
        .map(|(reporter, site)| {
            json!({
                "status": "firing",
                "labels": {
                    "alertname": "SiteOffline",
                    "accelerator": accelerator,
                    "namespace": "default",
                    "reporter": reporter,
                    "site": site,
                },
                "annotations": {"summary": format!("Site {site} is offline as seen from {reporter}")},
                "startsAt": "2026-11-25T10:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("http://prometheus.{reporter}.example:9090/graph"),
                "fingerprint": format!("{reporter}{site}"),
            })
        })
        .collect();
    json!({
        "receiver": "sitefence",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"accelerator": accelerator},
        "commonLabels": {"alertname": "SiteOffline", "accelerator": accelerator},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{accelerator=\"{accelerator}\"}}"),
        "truncatedAlerts": 0,
    })
}
