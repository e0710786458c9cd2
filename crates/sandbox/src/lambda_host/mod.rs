//! A local Lambda: runs a function's real bootstrap binary (or `python -m awslambdaric`)
//! behind the Lambda Runtime API, the way the Lambda service runs it.
//!
//! * Each instance (execution environment) of the function is one process with its own
//!   Runtime API address, served at the root path (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`,
//!   no scheme, no path: awslambdaric crashes on a path). All instances take invocations from
//!   one queue, one at a time each, so `instances > 1` is real concurrency.
//! * [`FunctionHost::invoke_url`] is Lambda's Invoke API path
//!   (`POST /2015-03-31/functions/NAME/invocations`, raw event in, payload out, function errors
//!   flagged with `X-Amz-Function-Error`); [`FunctionHost::function_url`] is a Function URL
//!   front that speaks payload format 2.0.
//! * Timeouts kill the instance, exits are restarted cold on demand, reserved concurrency
//!   throttles with 429, and the host measures cold starts and peak RSS itself.
//!
//! The host is written from the Runtime API and Function URL documentation; it shares no
//! code or types with the function crates.

mod function_url;
mod ids;
mod invoke_api;
mod lock;
mod process;
mod runtime_api;
mod state;
pub mod url_auth;
mod wire;

use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;

use state::Shared;

/// How long `start` waits for prestarted instances to reach the Runtime API. Lambda gives
/// init 10 s; test machines under a parallel cargo build need more.
const PRESTART_WAIT: Duration = Duration::from_secs(60);

/// How long `shutdown` waits for killed instances to be reaped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// One function as Lambda would be configured to run it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// `AWS_LAMBDA_FUNCTION_NAME`, e.g. `fence-lambda`.
    pub name: String,
    /// The bootstrap binary, or the Python interpreter.
    pub program: PathBuf,
    /// E.g. `["-m", "awslambdaric", "seed_fence_lambda.handler"]`; empty for a bootstrap.
    pub args: Vec<String>,
    /// The function's code directory (`LAMBDA_TASK_ROOT`); the current directory when `None`.
    pub cwd: Option<PathBuf>,
    /// The function's environment variables. Nothing of the host's environment is inherited
    /// except `PATH` (which this list may override).
    pub env: Vec<(String, String)>,
    /// `_HANDLER` (`bootstrap` for Rust).
    pub handler: String,
    /// How many execution environments may run at once (at least 1).
    pub instances: usize,
    /// When set, invocations beyond this many in flight are throttled (429), not queued.
    pub reserved_concurrency: Option<usize>,
    /// The function timeout: an invocation running longer is failed and its instance killed.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (not enforced; peak RSS is reported instead).
    pub memory_mb: u32,
    /// Every line the instances print on stdout or stderr is appended here.
    pub log_path: PathBuf,
    /// Whether to serve a Function URL front.
    pub function_url: bool,
    /// Start all instances now and wait until they poll for work (warm), instead of on the
    /// first invocations (cold).
    pub prestart: bool,
    /// Who may call the Function URL.
    pub url_access: UrlAccess,
}

pub use url_auth::UrlAccess;

/// See [`FunctionHost::reconfigurer`].
#[derive(Clone)]
pub struct Reconfigurer(std::sync::Weak<Shared>);

impl Reconfigurer {
    /// Applies `configuration`; false once the host is gone.
    pub fn reconfigure(&self, configuration: Configuration) -> bool {
        match self.0.upgrade() {
            Some(shared) => {
                shared.reconfigure(configuration);
                true
            }
            None => false,
        }
    }
}

/// What Lambda's configuration of a function decides, and what may change while the host
/// runs ([`FunctionHost::reconfigure`]): the fields of [`FunctionSpec`] of the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub reserved_concurrency: Option<usize>,
    pub url_access: UrlAccess,
}

impl Configuration {
    /// Whether an execution environment started under `self` must be replaced to run under
    /// `other` (Lambda starts new environments after UpdateFunctionConfiguration).
    fn needs_new_environments(&self, other: &Configuration) -> bool {
        self.env != other.env || self.timeout != other.timeout || self.memory_mb != other.memory_mb
    }
}

impl FunctionSpec {
    pub fn configuration(&self) -> Configuration {
        Configuration {
            env: self.env.clone(),
            timeout: self.timeout,
            memory_mb: self.memory_mb,
            reserved_concurrency: self.reserved_concurrency,
            url_access: self.url_access.clone(),
        }
    }
}

/// Why a function host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid function spec for {name:?}: {reason}")]
    InvalidSpec { name: String, reason: String },
    #[error("cannot open the function log {path}: {source}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind a loopback port: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("function {name} did not become ready: {detail} (see {log_path})")]
    InitFailed {
        name: String,
        detail: String,
        log_path: PathBuf,
    },
}

/// What the host measured, for benchmarks and tests.
#[derive(Debug, Clone, Serialize)]
pub struct HostStats {
    pub function: String,
    /// Invocations finished (successfully or not).
    pub invocations: u64,
    /// Invocations that ended in a function error, a timeout or a crash.
    pub errors: u64,
    pub timeouts: u64,
    /// Requests refused with 429 because of reserved concurrency.
    pub throttles: u64,
    /// When a runtime last posted an answer, on the emulators' clock
    /// ([`crate::timeline::now_us`]): where an invocation's wait ends and its after-answer
    /// work begins.
    pub last_answered_us: Option<u64>,
    /// Processes started, each one a cold start.
    pub cold_starts: u64,
    pub in_flight: usize,
    /// The largest peak RSS of any instance, in KiB.
    pub peak_rss_kb: u64,
    /// Every instance ever started, oldest first.
    pub instances: Vec<InstanceStats>,
}

/// One execution environment (process) of the function.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStats {
    pub pid: u32,
    pub alive: bool,
    /// When the process was started, in milliseconds since the Unix epoch.
    pub spawned_at_ms: u64,
    /// The same instant in microseconds on the emulators' clock (`sandbox::timeline`), where
    /// the cold start ([`InstanceStats::cold_start_ms`]) begins.
    pub spawned_at_us: u64,
    /// Process start → first poll of `/invocation/next` (the init phase).
    pub init_ms: Option<f64>,
    /// Process start → first response or error posted: the cold start a caller sees.
    pub cold_start_ms: Option<f64>,
    /// Peak resident set size of the function's own image (`VmHWM`, sampled when each
    /// invocation starts and ends and before a kill), in KiB.
    pub peak_rss_kb: u64,
    pub invocations: u64,
    /// How the process ended (`exit status 0`, `signal: killed`), while it has.
    pub exit: Option<String>,
}

/// A running function: its Runtime API, its invoke URL and (optionally) its Function URL.
/// Dropping it kills every instance.
pub struct FunctionHost {
    shared: Arc<Shared>,
    invoke_url: String,
    stats_url: String,
    function_url: Option<String>,
    runtime_api: String,
    tasks: Vec<AbortHandle>,
}

impl FunctionHost {
    pub async fn start(spec: FunctionSpec) -> Result<FunctionHost, HostError> {
        validate(&spec)?;
        let log = process::LogSink::open(&spec.log_path).map_err(|source| HostError::LogFile {
            path: spec.log_path.clone(),
            source,
        })?;
        let invoke_listener = crate::net::bind_loopback().await.map_err(HostError::Bind)?;
        let runtime_listener = crate::net::bind_loopback().await.map_err(HostError::Bind)?;
        let url_listener = match spec.function_url {
            true => Some(crate::net::bind_loopback().await.map_err(HostError::Bind)?),
            false => None,
        };
        let invoke_addr = invoke_listener.local_addr().map_err(HostError::Bind)?;
        let runtime_addr = runtime_listener.local_addr().map_err(HostError::Bind)?;

        let (shared, exits) = Shared::new(spec, log, runtime_api::serve);
        let mut tasks = vec![shared.supervise(exits)];
        tasks.push(runtime_api::serve(
            shared.clone(),
            runtime_listener,
            state::Poller::External,
        ));
        tasks.push(invoke_api::serve(shared.clone(), invoke_listener));
        let function_url = match url_listener {
            Some(listener) => {
                let addr = listener.local_addr().map_err(HostError::Bind)?;
                tasks.push(function_url::serve(shared.clone(), listener));
                Some(format!("http://{addr}/"))
            }
            None => None,
        };
        let host = FunctionHost {
            invoke_url: format!(
                "http://{invoke_addr}{}",
                invoke_api::invoke_path(&shared.spec.name)
            ),
            stats_url: format!("http://{invoke_addr}{}", invoke_api::STATS_PATH),
            function_url,
            runtime_api: runtime_addr.to_string(),
            shared,
            tasks,
        };
        if host.shared.spec.prestart {
            host.shared.prestart()?;
            host.shared.wait_ready(PRESTART_WAIT).await?;
        }
        tracing::info!(
            function = %host.shared.spec.name,
            invoke_url = %host.invoke_url,
            function_url = host.function_url.as_deref().unwrap_or("-"),
            "function host started"
        );
        Ok(host)
    }

    /// `POST` the raw event here, like Lambda's Invoke API (it is that API's path).
    pub fn invoke_url(&self) -> String {
        self.invoke_url.clone()
    }

    /// `GET` here for [`HostStats`] as JSON.
    pub fn stats_url(&self) -> String {
        self.stats_url.clone()
    }

    /// `http://127.0.0.1:PORT/` when the spec asked for a Function URL.
    pub fn function_url(&self) -> Option<String> {
        self.function_url.clone()
    }

    /// A Runtime API address (`127.0.0.1:PORT`) for a runtime started by hand, e.g. a
    /// debugger session: it takes invocations from the same queue as the host's instances,
    /// but the host cannot kill it on timeout.
    pub fn runtime_api(&self) -> String {
        self.runtime_api.clone()
    }

    /// The pids of the instances alive now.
    pub fn pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Waits until the function has nothing to do: no invocation queued or running, and
    /// every runtime that answered has asked for its next event (what it does in between,
    /// Lambda still counts as the invocation's). `false` when `limit` passed first.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        self.shared.wait_idle(limit).await
    }

    pub fn stats(&self) -> HostStats {
        self.shared.stats()
    }

    /// The configuration invocations run under now.
    pub fn configuration(&self) -> Configuration {
        self.shared.configuration().as_ref().clone()
    }

    /// Applies a new configuration, as Lambda does after a configuration change: the Function
    /// URL's access rule and the reserved concurrency take effect for the next request; a new
    /// environment, timeout or memory size replaces idle instances now and busy ones once
    /// their invocation ends, so that every later invocation starts cold under it.
    pub fn reconfigure(&self, configuration: Configuration) {
        self.shared.reconfigure(configuration);
    }

    /// A handle that reconfigures this host from another task for as long as it lives.
    pub fn reconfigurer(&self) -> Reconfigurer {
        Reconfigurer(Arc::downgrade(&self.shared))
    }

    /// Kills every instance and waits until each is gone.
    pub async fn shutdown(self) {
        self.shared.kill_all();
        self.shared.wait_all_exited(SHUTDOWN_WAIT).await;
        // Drop aborts the servers.
    }
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        self.shared.kill_all();
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn validate(spec: &FunctionSpec) -> Result<(), HostError> {
    let invalid = |reason: &str| {
        Err(HostError::InvalidSpec {
            name: spec.name.clone(),
            reason: reason.to_string(),
        })
    };
    // Lambda's own rule for function names; the name also goes into a URL path.
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return invalid("a function name is 1 to 64 letters, digits, '-' or '_'");
    }
    if spec.instances == 0 {
        return invalid("instances must be at least 1");
    }
    if spec.timeout.is_zero() {
        return invalid("the timeout must be positive");
    }
    Ok(())
}
