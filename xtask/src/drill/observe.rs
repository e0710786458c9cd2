//! The drill's hands and eyes on the sandbox: the test controls that inject faults and reset the
//! world, and the reads an operator would make — the accelerator through the Global Accelerator
//! API, the backups through Infinispan's REST API, the health check and routes through the AWS
//! APIs, Prometheus and Alertmanager through their HTTP APIs, the fence's decisions from its log.

use super::judge::{self, Answer, RecordSeen};
use anyhow::{Context, bail};
use aws_topology::decisions::{DecisionStore, split_brain_key};
use aws_topology::ec2::{Appliance, EniId, Vpc, VpcId, plan_route_moves};
use aws_topology::globalaccelerator::GlobalAccelerator;
use aws_topology::route53::{self, HealthCheckId, HealthChecks as _};
use common::mode::Mode;
use common::secret::Secret;
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{Credentials, SiteClient, SiteEndpoint, TlsConfig};
use sandbox::world::SandboxInfo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Sandbox {
    pub info: SandboxInfo,
    http: reqwest::Client,
    accelerator: GlobalAccelerator,
    ispn: BTreeMap<String, SiteClient>,
    route53: aws_sdk_route53::Client,
    ec2: aws_sdk_ec2::Client,
    /// Lambda and the decision table straight in moto: the drill's operator actions and reads,
    /// not calls of the functions.
    lambda: aws_sdk_lambda::Client,
    decisions: DecisionStore,
    logs: PathBuf,
}

impl Sandbox {
    pub async fn connect(info: SandboxInfo, dir: &Path) -> anyhow::Result<Sandbox> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let aws_args = crate::aws::AwsArgs::default();
        let ga_config = crate::aws::load(
            &aws_args,
            Some(info.globalaccelerator_endpoint_url.clone()),
            sandbox::world::ACCELERATOR_REGION.to_string(),
        )
        .await;
        let regional = crate::aws::load(
            &aws_args,
            Some(info.aws_endpoint_url.clone()),
            info.region.clone(),
        )
        .await;
        let in_moto =
            crate::aws::load(&aws_args, Some(info.moto_url.clone()), info.region.clone()).await;
        let table = crate::sandbox_world::deployment_from_sandbox(&info).decision_table();
        let route53_config = crate::aws::load(
            &aws_args,
            Some(info.aws_endpoint_url.clone()),
            sandbox::world::ROUTE53_REGION.to_string(),
        )
        .await;

        let ca = std::fs::read(&info.ca_bundle)
            .with_context(|| format!("reading {}", info.ca_bundle.display()))?;
        let ispn_http = ispn_client::http_client(&TlsConfig {
            ca_bundle_pem: Some(ca),
            request_timeout: Duration::from_secs(3),
            ..TlsConfig::default()
        })?;
        let mut ispn = BTreeMap::new();
        for (site, s) in &info.sites {
            let client = SiteClient::new(
                SiteName::parse(site)?,
                SiteEndpoint::parse(&s.ispn_url)?,
                ispn_http.clone(),
                Credentials {
                    user: info.infinispan.user.clone(),
                    password: Secret::new(info.infinispan.password.clone()),
                },
            );
            ispn.insert(site.clone(), client);
        }
        Ok(Sandbox {
            accelerator: GlobalAccelerator::new(&ga_config),
            route53: aws_sdk_route53::Client::new(&route53_config),
            ec2: aws_sdk_ec2::Client::new(&regional),
            lambda: aws_sdk_lambda::Client::new(&in_moto),
            decisions: DecisionStore::new(&in_moto, table),
            ispn,
            http,
            logs: dir.join("logs"),
            info,
        })
    }

    /// POSTs a test control (JSON body); anything but 2xx is an error.
    pub async fn control(&self, url: &str, body: Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            bail!("POST {url} {body}: {status} {}", response.text().await?);
        }
        Ok(())
    }

    pub fn control_url(&self, site: &str) -> anyhow::Result<&str> {
        Ok(self
            .info
            .sites
            .get(site)
            .with_context(|| format!("no site {site} in the sandbox"))?
            .control_url
            .as_str())
    }

    pub fn endpoint_id(&self, site: &str) -> anyhow::Result<&str> {
        Ok(self
            .info
            .sites
            .get(site)
            .with_context(|| format!("no site {site} in the sandbox"))?
            .endpoint_id
            .as_str())
    }

    /// Back to the seeded world: the accelerator and both Infinispan sites (controls), the
    /// health check's original path and the routes back on a running primary (operator actions).
    pub async fn reset(&self) -> anyhow::Result<()> {
        let ga = &self.info.globalaccelerator_endpoint_url;
        self.control(&format!("{ga}/_sandbox/reset"), json!({}))
            .await?;
        for site in self.info.sites.values() {
            self.control(&format!("{}/reset", site.control_url), json!({}))
                .await?;
        }
        let id: HealthCheckId = self.info.route53.health_check_id.parse()?;
        route53::failback(&self.route53, &id, route53::ORIGINAL_PATH)
            .await
            .context("restoring the health check's path")?;

        let vpc = &self.info.vpc;
        self.ec2
            .start_instances()
            .instance_ids(&vpc.primary.instance_id)
            .send()
            .await
            .context("starting the primary appliance")?;
        let tables = self.ec2.route_tables(&vpc.vpc_id.parse::<VpcId>()?).await?;
        let standby = Appliance {
            eni: vpc.standby.eni.parse()?,
            instance: Some(vpc.standby.instance_id.parse()?),
        };
        let primary: EniId = vpc.primary.eni.parse()?;
        for change in plan_route_moves(&tables, &standby, &primary, None).moves {
            Vpc::replace_route(&self.ec2, &change)
                .await
                .context("moving a route back to the primary")?;
        }
        Ok(())
    }

    /// The sites that still have an endpoint in the accelerator (every endpoint group).
    pub async fn sites_in_accelerator(&self) -> anyhow::Result<BTreeSet<String>> {
        let by_endpoint: BTreeMap<&str, &str> = self
            .info
            .sites
            .iter()
            .map(|(site, s)| (s.endpoint_id.as_str(), site.as_str()))
            .collect();
        let mut sites = BTreeSet::new();
        for arn in &self.info.endpoint_group_arns {
            let group = self.accelerator.describe_group(arn).await?;
            for endpoint in group.endpoints {
                let site = by_endpoint
                    .get(endpoint.id.as_str())
                    .map_or_else(|| endpoint.id.clone(), |s| s.to_string());
                sites.insert(site);
            }
        }
        Ok(sites)
    }

    /// Each endpoint group's traffic dial.
    pub async fn dials(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut dials = BTreeMap::new();
        for arn in &self.info.endpoint_group_arns {
            let group = self.accelerator.describe_group(arn).await?;
            dials.insert(arn.clone(), group.traffic_dial.to_string());
        }
        Ok(dials)
    }

    /// The decision record of the split-brain between the two sites, as the table holds it.
    pub async fn recorded(&self) -> anyhow::Result<Option<RecordSeen>> {
        let sites: Vec<SiteName> = self
            .info
            .sites
            .keys()
            .map(|s| SiteName::parse(s))
            .collect::<Result<_, _>>()?;
        let [a, b] = sites.as_slice() else {
            bail!("the drill needs exactly two sites");
        };
        let key = split_brain_key(&AcceleratorDns::parse(&self.info.accelerator_dns)?, a, b);
        let record = self
            .decisions
            .get(&key)
            .await
            .with_context(|| format!("reading the decision record {key}"))?;
        Ok(record.map(|r| RecordSeen {
            survivor: r.survivor.to_string(),
            loser: r.loser.to_string(),
            mode: r.mode.to_string(),
        }))
    }

    /// Switches the deployed fence to `mode` as an operator would without a redeploy
    /// (`UpdateFunctionConfiguration` with the environment's `SITEFENCE_MODE` set or removed),
    /// and waits until the sandbox's host has picked the change up.
    pub async fn set_fence_mode(&self, mode: Mode) -> anyhow::Result<()> {
        use ops::deploy::plan::Function;
        let deployment = crate::sandbox_world::deployment_from_sandbox(&self.info);
        let name = Function::Fence.name(&deployment);
        let current = self
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "GetFunctionConfiguration {name}: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        let mut variables = current
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        variables.remove(common::mode::MODE_VAR);
        variables.extend(common::mode::to_var(mode));
        self.lambda
            .update_function_configuration()
            .function_name(&name)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "UpdateFunctionConfiguration {name}: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        // The host re-reads its configuration every WATCH_INTERVAL and starts new execution
        // environments under it; three intervals leave room for a read under way.
        tokio::time::sleep(sandbox::deployed::WATCH_INTERVAL * 3).await;
        Ok(())
    }

    /// Each site's backup to the other, as that site's REST API reports it.
    pub async fn backups(&self) -> BTreeMap<String, String> {
        let mut backups = BTreeMap::new();
        for (site, client) in &self.ispn {
            let status = match client.backup_status().await {
                Ok(statuses) => statuses
                    .into_iter()
                    .find(|(remote, _)| remote != site)
                    .map_or_else(|| "absent".to_string(), |(_, s)| s.status),
                Err(err) if err.is_retryable() => "unreachable".to_string(),
                Err(err) => format!("unreadable ({err})"),
            };
            backups.insert(site.clone(), status);
        }
        backups
    }

    pub async fn health_check_path(&self) -> Option<String> {
        let id: HealthCheckId = self.info.route53.health_check_id.parse().ok()?;
        self.route53.read(&id).await.ok()?.resource_path
    }

    /// Routes of the sandbox's route table through (the standby, the primary) appliance's ENI.
    pub async fn routes(&self) -> anyhow::Result<(usize, usize)> {
        let vpc = &self.info.vpc;
        let tables = self.ec2.route_tables(&vpc.vpc_id.parse::<VpcId>()?).await?;
        let via = |eni: &str| {
            tables
                .iter()
                .filter(|t| t.id.as_str() == vpc.route_table_id)
                .flat_map(|t| &t.routes)
                .filter(|r| r.network_interface_id.as_deref() == Some(eni))
                .count()
        };
        Ok((via(&vpc.standby.eni), via(&vpc.primary.eni)))
    }

    pub async fn stop_primary(&self) -> anyhow::Result<()> {
        self.ec2
            .stop_instances()
            .instance_ids(&self.info.vpc.primary.instance_id)
            .send()
            .await
            .context("stopping the primary appliance")?;
        Ok(())
    }

    /// Sends a raw trigger event to a function's Invoke API; the status and the function's answer.
    pub async fn invoke(&self, url: &str, event: &Value) -> anyhow::Result<(u16, String)> {
        let response = self
            .http
            .post(url)
            .json(event)
            .send()
            .await
            .with_context(|| format!("invoking {url}"))?;
        let error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(match error {
            Some(kind) => (status, format!("function error {kind}: {body}")),
            None => (status, body),
        })
    }

    pub fn fence_log(&self) -> FenceLog {
        FenceLog::at_end(self.logs.join("fence-lambda.log"))
    }

    /// An instant query; each series' labels and value.
    pub async fn prometheus_query(
        &self,
        prometheus_url: &str,
        query: &str,
    ) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        let body: Value = self
            .http
            .get(reqwest::Url::parse_with_params(
                &format!("{prometheus_url}/api/v1/query"),
                [("query", query)],
            )?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let results = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(results
            .iter()
            .filter_map(|r| {
                let labels = serde_json::from_value(r["metric"].clone()).ok()?;
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((labels, value))
            })
            .collect())
    }

    /// The states (`pending`, `firing`) of Prometheus's alerts named `alert_name`.
    pub async fn prometheus_alerts(
        &self,
        prometheus_url: &str,
        alert_name: &str,
    ) -> anyhow::Result<Vec<String>> {
        let body: Value = self
            .http
            .get(format!("{prometheus_url}/api/v1/alerts"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["labels"]["alertname"] == alert_name)
            .filter_map(|a| a["state"].as_str().map(str::to_string))
            .collect())
    }

    /// Active alerts named `alert_name` that Alertmanager holds.
    pub async fn alertmanager_alerts(
        &self,
        alertmanager_url: &str,
        alert_name: &str,
    ) -> anyhow::Result<usize> {
        let body: Value = self
            .http
            .get(reqwest::Url::parse_with_params(
                &format!("{alertmanager_url}/api/v2/alerts"),
                [("active", "true"), ("silenced", "false")],
            )?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .filter(|a| a["labels"]["alertname"] == alert_name)
                    .count()
            })
            .unwrap_or(0))
    }
}

/// The fence function's log, read from where it ended when the scenario began.
pub struct FenceLog {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl FenceLog {
    fn at_end(path: PathBuf) -> FenceLog {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        FenceLog {
            path,
            offset,
            partial: String::new(),
        }
    }

    /// The decisions logged since the last call (complete lines only).
    pub fn new_answers(&mut self) -> Vec<Answer> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(read) = file.read_to_end(&mut bytes) else {
            return Vec::new();
        };
        self.offset += read as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut answers = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            answers.extend(judge::parse_decision(line.trim()));
        }
        answers
    }
}
