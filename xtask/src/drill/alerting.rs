//! Real Prometheus and Alertmanager for the drill: one pair per site, as in production, where each
//! site's Prometheus scrapes its own Infinispan and its Alertmanager reports the other site with
//! `reporter` = the local site. Two pairs (rather than one pair with per-site external labels)
//! keep what matters to the fence: two independent Alertmanagers whose webhooks reach the function
//! concurrently in a split-brain, each with its own group wait and retries.
//!
//! The configuration is what `cargo xtask manifests` generates (`manifests::render` for the
//! rules and `alertmanager.yml`, `manifests::prometheus_config` for the scrape), pointed at the
//! sandbox's Function URL with Basic auth. Every process listens on 127.0.0.1 on a free port,
//! keeps its data in its own directory, runs in its own process group and is stopped when the
//! stack is dropped.

use crate::manifests::{self, Inputs, Profile, PrometheusSetup};
use crate::sandbox_cmd;
use anyhow::{Context, bail};
use sandbox::world::SandboxInfo;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One site's Prometheus and Alertmanager.
pub struct SitePair {
    pub site: String,
    pub remote: String,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    /// The Alertmanager's configuration file (a test rewrites it and reloads).
    pub alertmanager_config: PathBuf,
}

pub struct AlertingStack {
    pub pairs: Vec<SitePair>,
    children: Vec<Process>,
}

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl AlertingStack {
    /// Writes the configuration under `dir` and starts both pairs; returns once every process
    /// answers `/-/ready`. A port is picked free and bound by the process a moment later, so
    /// another process can take it in between: a start that fails on a port in use is made
    /// again with new ports (what it had started is stopped when it is dropped).
    pub async fn start(info: &SandboxInfo, dir: &Path, profile: Profile) -> anyhow::Result<Self> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Self::start_once(info, dir, profile).await {
                Err(error)
                    if attempt < ATTEMPTS
                        && format!("{error:#}").contains("address already in use") =>
                {
                    println!(
                        "  a port was taken before Prometheus or Alertmanager bound it: starting again"
                    );
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    async fn start_once(info: &SandboxInfo, dir: &Path, profile: Profile) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let deployment = crate::sandbox_world::deployment_from_sandbox(info);
        let function_url = info
            .fence
            .function_url
            .as_deref()
            .context("the sandbox has no fence Function URL")?;
        let files = manifests::render(&Inputs {
            deployment: &deployment,
            function_url,
            webhook_password: &info.fence.password,
            profile,
        })?;
        manifests::write(dir, &files)?;

        let mut stack = AlertingStack {
            pairs: Vec::new(),
            children: Vec::new(),
        };
        for site in deployment.sites.keys() {
            let remote = deployment
                .sites
                .keys()
                .find(|other| *other != site)
                .context("the sandbox needs two sites")?
                .clone();
            let alertmanager_port = free_port()?;
            let prometheus_port = free_port()?;
            let alertmanager_addr = format!("127.0.0.1:{alertmanager_port}");
            let prometheus_addr = format!("127.0.0.1:{prometheus_port}");

            let rules_file = format!("{site}.rules.yml");
            let config = manifests::prometheus_config(
                &deployment,
                site,
                profile,
                &PrometheusSetup {
                    alertmanager: &alertmanager_addr,
                    rules_file: &rules_file,
                },
            )?;
            let prometheus_yml = dir.join("prometheus").join(format!("{site}.yml"));
            std::fs::write(&prometheus_yml, config)
                .with_context(|| format!("writing {}", prometheus_yml.display()))?;

            let data = dir.join("data");
            let alertmanager_data = data.join(format!("alertmanager-{site}"));
            let prometheus_data = data.join(format!("prometheus-{site}"));
            std::fs::create_dir_all(&alertmanager_data)?;
            std::fs::create_dir_all(&prometheus_data)?;

            let alertmanager_config = dir.join("alertmanager").join(format!("{site}.yml"));
            let mut alertmanager = Command::new(crate::tools::ALERTMANAGER.program);
            alertmanager
                .arg(format!("--config.file={}", alertmanager_config.display()))
                .arg(format!("--storage.path={}", alertmanager_data.display()))
                .arg(format!("--web.listen-address={alertmanager_addr}"))
                // No gossip: two single-instance Alertmanagers, one per site, as deployed.
                .arg("--cluster.listen-address=");
            stack.spawn(&format!("alertmanager-{site}"), alertmanager, dir)?;

            let mut prometheus = Command::new(crate::tools::PROMETHEUS.program);
            prometheus
                .arg(format!("--config.file={}", prometheus_yml.display()))
                .arg(format!("--storage.tsdb.path={}", prometheus_data.display()))
                .arg(format!("--web.listen-address={prometheus_addr}"));
            stack.spawn(&format!("prometheus-{site}"), prometheus, dir)?;

            stack.pairs.push(SitePair {
                site: site.clone(),
                remote,
                prometheus_url: format!("http://{prometheus_addr}"),
                alertmanager_url: format!("http://{alertmanager_addr}"),
                alertmanager_config,
            });
        }
        stack.wait_ready().await?;
        Ok(stack)
    }

    fn spawn(&mut self, name: &str, mut command: Command, dir: &Path) -> anyhow::Result<()> {
        let log = dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Its own process group: the drill stops it, also after a Ctrl-C.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", crate::workspace::describe(&command)))?;
        self.children.push(Process {
            name: name.to_string(),
            child,
            log,
        });
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let urls: Vec<String> = self
            .pairs
            .iter()
            .flat_map(|p| [p.alertmanager_url.clone(), p.prometheus_url.clone()])
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        for url in urls {
            loop {
                let ready = http
                    .get(format!("{url}/-/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                for process in &mut self.children {
                    if let Some(status) = process.child.try_wait()? {
                        bail!(
                            "{} exited ({status}) before it was ready:\n{}",
                            process.name,
                            sandbox_cmd::tail(&process.log, 20)
                        );
                    }
                }
                if Instant::now() > deadline {
                    bail!("{url} was not ready within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Rewrites a site's Alertmanager configuration with `edit` and has it reloaded
    /// (`POST /-/reload`, which fails when Alertmanager refuses the new file).
    pub async fn rewrite_alertmanager(
        &self,
        site: &str,
        edit: impl FnOnce(&str) -> String,
    ) -> anyhow::Result<()> {
        let pair = self
            .pairs
            .iter()
            .find(|p| p.site == site)
            .with_context(|| format!("no Alertmanager for {site}"))?;
        let text = std::fs::read_to_string(&pair.alertmanager_config)
            .with_context(|| format!("reading {}", pair.alertmanager_config.display()))?;
        std::fs::write(&pair.alertmanager_config, edit(&text))
            .with_context(|| format!("writing {}", pair.alertmanager_config.display()))?;
        let response = reqwest::Client::new()
            .post(format!("{}/-/reload", pair.alertmanager_url))
            .send()
            .await
            .context("reloading Alertmanager")?;
        anyhow::ensure!(
            response.status().is_success(),
            "Alertmanager refused the rewritten configuration: {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Silences `alertname` in every Alertmanager for `length` (`POST /api/v2/silences`), so
    /// that a scenario that breaks things on purpose sends no webhook and fences nothing.
    pub async fn silence(&self, alertname: &str, length: Duration) -> anyhow::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let silence = serde_json::json!({
            "matchers": [{"name": "alertname", "value": alertname, "isRegex": false, "isEqual": true}],
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + length),
            "createdBy": "sitefence drill",
            "comment": "the doctor scenario breaks links on purpose",
        });
        let http = reqwest::Client::new();
        for pair in &self.pairs {
            let response = http
                .post(format!("{}/api/v2/silences", pair.alertmanager_url))
                .json(&silence)
                .send()
                .await
                .with_context(|| format!("silencing {alertname} in {}", pair.alertmanager_url))?;
            anyhow::ensure!(
                response.status().is_success(),
                "{} refused the silence: {}",
                pair.alertmanager_url,
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// SIGTERM to every process, SIGKILL to any still running 5 s later.
    pub fn stop(&mut self) {
        for process in &self.children {
            if let Ok(pid) = libc::pid_t::try_from(process.child.id()) {
                // SAFETY: signalling a child we started and have not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for process in &mut self.children {
            while Instant::now() < deadline && matches!(process.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(process.child.try_wait(), Ok(None)) {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
        self.children.clear();
    }
}

impl Drop for AlertingStack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on right now (the kernel's pick; released before the tool binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `since_epoch` as RFC 3339 in UTC, seconds precision.
fn rfc3339(since_epoch: Duration) -> String {
    let seconds = since_epoch.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or_default();
    let (year, month, day) = common::logging::civil_from_days(days);
    let rest = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
