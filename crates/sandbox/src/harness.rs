//! What a function's integration test needs around a sandbox world: start one in a scratch
//! directory, run a scenario against it, always stop it, and read back what the world saw
//! (the emulators' call counts, Infinispan's state over HTTPS, the functions' logs, the Lambda
//! host's measurements).
//!
//! Generic on purpose: nothing here knows what a function does. The scenario talks to the
//! world only through `sandbox.json` and the documented HTTP controls, as a test in any
//! language could. Behind the `harness` feature, so that the `sandbox` binary does not link an
//! HTTP client it never uses; every function crate enables it in its dev-dependencies.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::world::{SandboxInfo, World, WorldOptions};

/// How long one request to a function may take before the test gives up on it.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request to an emulator's control API may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a world configured by `configure` in a fresh scratch directory, runs `scenario`
/// against it on its own task, and stops the world whatever the scenario did: returned an
/// error, or failed an assertion (the panic is resumed once the world is down). The directory
/// is removed on success and kept, named in the error, on failure.
pub async fn with_world<C, F, Fut>(test: &str, configure: C, scenario: F) -> anyhow::Result<()>
where
    C: FnOnce(&mut WorldOptions),
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let dir = scratch_dir(test);
    let mut options = WorldOptions::new(&dir);
    configure(&mut options);
    let world = World::start(options)
        .await
        .with_context(|| format!("starting the sandbox (logs in {})", dir.display()))?;
    let sandbox = Sandbox::attach(&world, &dir)?;

    let outcome = tokio::spawn(scenario(sandbox)).await;
    world.shutdown().await;
    let logs = dir.join("logs");
    match outcome {
        Ok(Ok(())) => {
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Ok(Err(err)) => Err(err.context(format!("sandbox logs kept in {}", logs.display()))),
        Err(join) => {
            eprintln!("sandbox logs kept in {}", logs.display());
            match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(join) => Err(join.into()),
            }
        }
    }
}

/// A directory of its own under the system's temporary directory, unique per process and call.
pub fn scratch_dir(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sitefence-{test}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// A sample trigger from the workspace's `events/` directory, e.g. `fence/resolved.json`.
pub fn sample_event(relative: &str) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Calls counted by an emulator (`GET …/_sandbox/calls` of the AWS front or the Global
/// Accelerator emulator, `GET {control_url}/calls` of an Infinispan site).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Calls {
    pub total: u64,
    /// `service.Operation` on the AWS front, the operation on the others.
    #[serde(default)]
    pub by_operation: std::collections::BTreeMap<String, u64>,
    /// Each call's span, named as in `by_operation`.
    #[serde(default)]
    pub timeline: Vec<crate::timeline::Span>,
}

impl Calls {
    pub fn operation(&self, name: &str) -> u64 {
        self.by_operation.get(name).copied().unwrap_or(0)
    }
}

/// One function running in the world, as a test reaches it.
#[derive(Debug, Clone)]
pub struct FunctionUrls {
    /// `AWS_LAMBDA_FUNCTION_NAME`, e.g. `fence-lambda`.
    pub name: String,
    pub invoke_url: String,
    pub function_url: Option<String>,
    pub stats_url: String,
}

/// An HTTP answer, kept whole so that a test can assert on the status and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `X-Amz-Function-Error` of the Invoke API, when the function failed.
    pub function_error: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("answer is not JSON ({}): {}", self.status, self.body))
    }
}

/// A running world as a scenario sees it. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    pub info: SandboxInfo,
    /// The world's directory: `sandbox.json`'s siblings, `logs/`.
    pub dir: PathBuf,
    pub functions: Vec<FunctionUrls>,
    http: reqwest::Client,
    /// Trusts the sandbox CA and nothing else, as the functions do.
    https: reqwest::Client,
}

impl Sandbox {
    /// The controls of a running world whose directory is `dir` (for a caller that starts the
    /// world itself, like the bench; tests use [`with_world`]).
    pub fn attach(world: &World, dir: &Path) -> anyhow::Result<Sandbox> {
        let info = world.info().clone();
        let ca = std::fs::read(&info.ca_bundle)
            .with_context(|| format!("reading {}", info.ca_bundle.display()))?;
        let https = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
            .build()?;
        let functions = world
            .functions
            .iter()
            .map(|host| FunctionUrls {
                name: host.stats().function,
                invoke_url: host.invoke_url(),
                function_url: host.function_url(),
                stats_url: host.stats_url(),
            })
            .collect();
        Ok(Sandbox {
            info,
            dir: dir.to_path_buf(),
            functions,
            http: reqwest::Client::new(),
            https,
        })
    }

    /// A plain HTTP client for requests the helpers below do not cover.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The first function of that name (`fence-lambda`, …) the world runs.
    pub fn function(&self, name: &str) -> anyhow::Result<&FunctionUrls> {
        self.functions
            .iter()
            .find(|f| f.name == name)
            .with_context(|| format!("the world runs no {name}"))
    }

    /// POSTs the raw event to a function's Invoke API, like `cargo lambda invoke`.
    pub async fn invoke_raw(&self, function: &str, event: &Value) -> anyhow::Result<Answer> {
        let url = &self.function(function)?.invoke_url;
        let response = self
            .http
            .post(url)
            .json(event)
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("invoking {function}"))?;
        let status = response.status().as_u16();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Answer {
            status,
            function_error,
            body: response.text().await?,
        })
    }

    /// Invokes a function and returns its response; a function error (unhandled error, crash,
    /// timeout) or a refused invocation is an error here.
    pub async fn invoke(&self, function: &str, event: &Value) -> anyhow::Result<Value> {
        let answer = self.invoke_raw(function, event).await?;
        if answer.status != 200 {
            bail!("Invoke API answered {}: {}", answer.status, answer.body);
        }
        if let Some(kind) = &answer.function_error {
            bail!("function error ({kind}): {}", answer.body);
        }
        answer.json()
    }

    /// Like [`Sandbox::invoke`], also returning how long the caller waited.
    pub async fn timed_invoke(
        &self,
        function: &str,
        event: &Value,
    ) -> anyhow::Result<(Value, Duration)> {
        let started = Instant::now();
        let response = self.invoke(function, event).await?;
        Ok((response, started.elapsed()))
    }

    /// POSTs `body` as `application/json` to a function's Function URL, with HTTP Basic
    /// credentials when given.
    pub async fn post_function_url(
        &self,
        function: &str,
        body: &str,
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<Answer> {
        let url = self
            .function(function)?
            .function_url
            .as_deref()
            .with_context(|| format!("{function} has no Function URL"))?;
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .timeout(INVOKE_TIMEOUT);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {function}'s Function URL"))?;
        Ok(Answer {
            status: response.status().as_u16(),
            function_error: None,
            body: response.text().await?,
        })
    }

    /// The Lambda host's measurements of a function (`HostStats` as JSON).
    pub async fn host_stats(&self, function: &str) -> anyhow::Result<Value> {
        let url = &self.function(function)?.stats_url;
        self.get_json(url).await
    }

    /// Waits until `function` has nothing to do: every runtime that answered has asked for its
    /// next event, so what it did after its answer is done (docs/aws-behaviours.md #91).
    pub async fn wait_idle(&self, function: &str) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self.host_stats(function).await?["in_flight"] == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{function} still busy after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// AWS calls that went through the counting front to moto.
    pub async fn aws_calls(&self) -> anyhow::Result<Calls> {
        let url = format!("{}/_sandbox/calls", self.info.aws_endpoint_url);
        Ok(serde_json::from_value(self.get_json(&url).await?)?)
    }

    pub async fn reset_aws_calls(&self) -> anyhow::Result<()> {
        let url = format!("{}/_sandbox/calls/reset", self.info.aws_endpoint_url);
        self.control(&url, &serde_json::json!({})).await
    }

    /// `POST {aws_endpoint_url}/_sandbox/fault` (a fault, a latency or `{"reset": true}`).
    pub async fn aws_fault(&self, body: &Value) -> anyhow::Result<()> {
        let url = format!("{}/_sandbox/fault", self.info.aws_endpoint_url);
        self.control(&url, body).await
    }

    /// Calls received by the Global Accelerator emulator.
    pub async fn ga_calls(&self) -> anyhow::Result<Calls> {
        let url = format!(
            "{}/_sandbox/calls",
            self.info.globalaccelerator_endpoint_url
        );
        Ok(serde_json::from_value(self.get_json(&url).await?)?)
    }

    /// `POST {globalaccelerator_endpoint_url}/_sandbox/{control}`, e.g. `fault`, `health`,
    /// `reset`, `calls/reset`.
    pub async fn ga_control(&self, control: &str, body: &Value) -> anyhow::Result<()> {
        let url = format!(
            "{}/_sandbox/{control}",
            self.info.globalaccelerator_endpoint_url
        );
        self.control(&url, body).await
    }

    /// The endpoint ids of every endpoint group of the seeded accelerator, in the order of
    /// `endpoint_group_arns`, as the emulator's state shows them.
    pub async fn ga_group_endpoints(&self) -> anyhow::Result<Vec<Vec<String>>> {
        let url = format!(
            "{}/_sandbox/state",
            self.info.globalaccelerator_endpoint_url
        );
        let state = self.get_json(&url).await?;
        self.info
            .endpoint_group_arns
            .iter()
            .map(|arn| group_endpoints(&state, arn))
            .collect()
    }

    /// `POST {sites.SITE.control_url}/{control}`, e.g. `down`, `partition`, `fault`, `reset`.
    pub async fn ispn_control(
        &self,
        site: &str,
        control: &str,
        body: &Value,
    ) -> anyhow::Result<()> {
        let url = format!("{}/{control}", self.site(site)?.control_url);
        self.control(&url, body).await
    }

    /// Calls received by one site's Infinispan REST API.
    pub async fn ispn_calls(&self, site: &str) -> anyhow::Result<Calls> {
        let url = format!("{}/calls", self.site(site)?.control_url);
        Ok(serde_json::from_value(self.get_json(&url).await?)?)
    }

    /// GETs `path` from one site's Infinispan REST API over HTTPS (verified against the
    /// sandbox CA) with the Infinispan credentials, as an operator's client would.
    pub async fn ispn_get(&self, site: &str, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.site(site)?.ispn_url);
        let response = self
            .https
            .get(&url)
            .basic_auth(
                &self.info.infinispan.user,
                Some(&self.info.infinispan.password),
            )
            .timeout(CONTROL_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        json_answer(&url, response).await
    }

    /// Each cache's status of `site`'s backup to `remote` (`online`, `offline`), read cache by
    /// cache from Infinispan.
    pub async fn ispn_backup_status(
        &self,
        site: &str,
        remote: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let mut statuses = std::collections::BTreeMap::new();
        for cache in &self.info.infinispan.caches {
            let status = self
                .ispn_get(site, &format!("/rest/v2/caches/{cache}/x-site/backups/"))
                .await?;
            let value = status[remote]["status"]
                .as_str()
                .with_context(|| format!("{site}/{cache}: no status for {remote}: {status}"))?;
            statuses.insert(cache.clone(), value.to_owned());
        }
        Ok(statuses)
    }

    /// Back to the seeded world: the Global Accelerator topology (and no faults or health
    /// states), both Infinispan sites (backups online, link healed, up, counts zeroed), no AWS
    /// faults. Functions keep running warm; call counts of AWS and GA are zeroed too.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let empty = serde_json::json!({});
        self.ga_control("reset", &empty).await?;
        self.ga_control("calls/reset", &empty).await?;
        for site in self.info.sites.keys() {
            self.ispn_control(site, "reset", &empty).await?;
        }
        self.aws_fault(&serde_json::json!({"reset": true})).await?;
        self.reset_aws_calls().await
    }

    /// The files under `DIR/logs/` whose text contains `needle` (for secrets that must never
    /// be logged).
    pub fn logs_containing(&self, needle: &str) -> anyhow::Result<Vec<PathBuf>> {
        let logs = self.dir.join("logs");
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(&logs).with_context(|| format!("reading {}", logs.display()))?
        {
            let path = entry?.path();
            if path.is_file() {
                let bytes = std::fs::read(&path)?;
                if String::from_utf8_lossy(&bytes).contains(needle) {
                    found.push(path);
                }
            }
        }
        Ok(found)
    }

    /// One function's log, `DIR/logs/<crate>.log`.
    pub fn function_log(&self, function: &str) -> anyhow::Result<String> {
        let path = self.dir.join("logs").join(format!("{function}.log"));
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// One function's log once it holds `lines` EMF documents (or after 5 s, as it is then):
    /// the host copies the function's output into the log as it comes, so a line written
    /// just before the answer may land a moment after it.
    pub async fn function_log_with_metrics(
        &self,
        function: &str,
        lines: usize,
    ) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.function_log(function)?;
            // Counted, not parsed: the test checks each against the format.
            let found = log.lines().filter(|l| l.contains("\"_aws\"")).count();
            if found >= lines || std::time::Instant::now() > deadline {
                return Ok(log);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn site(&self, site: &str) -> anyhow::Result<&crate::world::SiteInfo> {
        self.info
            .sites
            .get(site)
            .with_context(|| format!("the sandbox has no site {site}"))
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(url)
            .timeout(CONTROL_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        json_answer(url, response).await
    }

    async fn control(&self, url: &str, body: &Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(url)
            .json(body)
            .timeout(CONTROL_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "POST {url} {body} answered {status}: {}",
                response.text().await?
            );
        }
        Ok(())
    }
}

/// The endpoint ids of group `arn` in the Global Accelerator emulator's `/_sandbox/state`.
fn group_endpoints(state: &Value, arn: &str) -> anyhow::Result<Vec<String>> {
    let groups = state["accelerators"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["Listeners"].as_array().into_iter().flatten())
        .flat_map(|l| l["EndpointGroups"].as_array().into_iter().flatten());
    for group in groups {
        if group["EndpointGroupArn"] == arn {
            return Ok(group["EndpointDescriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["EndpointId"].as_str().map(str::to_owned))
                .collect());
        }
    }
    bail!("no endpoint group {arn} in the emulator's state")
}

/// `median M ms (min A, max B, N invocations)`.
pub fn spread(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| millis(*t)).collect();
    ms.sort_by(f64::total_cmp);
    let (Some(min), Some(max)) = (ms.first(), ms.last()) else {
        return "no invocations".to_owned();
    };
    let middle = ms.len() / 2;
    let median = if ms.len().is_multiple_of(2) {
        (ms[middle - 1] + ms[middle]) / 2.0
    } else {
        ms[middle]
    };
    format!(
        "median {median:.1} ms (min {min:.1}, max {max:.1}, {} invocations)",
        ms.len()
    )
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `debug` or `release`: which build of the test (and so of the functions) measured.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The JSON body of a successful answer to `GET url`; the status and body otherwise.
async fn json_answer(url: &str, response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("GET {url} answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_an_even_and_an_odd_count() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            spread(&ms(&[30, 10, 20])),
            "median 20.0 ms (min 10.0, max 30.0, 3 invocations)"
        );
        assert_eq!(
            spread(&ms(&[10, 40, 20, 30])),
            "median 25.0 ms (min 10.0, max 40.0, 4 invocations)"
        );
        assert_eq!(spread(&[]), "no invocations");
    }

    #[test]
    fn group_endpoints_are_found_under_any_accelerator_and_listener() {
        let state = serde_json::json!({"accelerators": [
            {"Listeners": [{"EndpointGroups": [
                {"EndpointGroupArn": "g1", "EndpointDescriptions": [{"EndpointId": "lb-a"}]}
            ]}]},
            {"Listeners": [{"EndpointGroups": [
                {"EndpointGroupArn": "g2", "EndpointDescriptions": []}
            ]}]}
        ]});
        assert_eq!(group_endpoints(&state, "g1").unwrap(), vec!["lb-a"]);
        assert!(group_endpoints(&state, "g2").unwrap().is_empty());
        assert!(group_endpoints(&state, "g3").is_err());
    }

    #[test]
    fn calls_read_every_emulators_format() {
        let front: Calls = serde_json::from_value(serde_json::json!({
            "total": 3, "by_service": {"ec2": 3}, "by_operation": {"ec2.ReplaceRoute": 3}
        }))
        .unwrap();
        assert_eq!(front.operation("ec2.ReplaceRoute"), 3);
        assert_eq!(front.operation("ec2.CreateRoute"), 0);
    }
}
