//! The function's invocation queue and its instances: who runs what, timeouts, exits,
//! cold starts, throttling and the numbers behind [`HostStats`].

use bytes::Bytes;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;

use super::lock::lock;
use super::process::{self, Exit, Launch, LogSink, ProcessGroup};
use super::{Configuration, FunctionSpec, HostError, HostStats, InstanceStats, ids};

/// The account the sandbox plays (moto's default).
pub(super) const ACCOUNT_ID: &str = "123456789012";

/// How an invocation ended, as the front that asked for it needs to know.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    /// The payload the runtime posted. `http_integration` marks a streamed response that
    /// starts with a JSON prelude (status, headers, cookies) and 8 NUL bytes.
    Response {
        payload: Bytes,
        http_integration: bool,
    },
    /// A function error document (`errorType`, `errorMessage`, …): reported by the runtime,
    /// or made by the host for timeouts and crashes.
    Error { body: Bytes },
}

/// Who is polling the Runtime API: one of the host's instances, or a runtime started by
/// hand against [`super::FunctionHost::runtime_api`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Poller {
    Instance(u64),
    External,
}

/// A request to run the function once.
pub(super) struct Invocation {
    pub request_id: String,
    pub event: Bytes,
    pub client_context: Option<String>,
}

/// The event as `/invocation/next` hands it out.
pub(super) struct NextEvent {
    pub request_id: String,
    pub event: Bytes,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
}

#[derive(Debug)]
pub(super) struct Throttled;

#[derive(Debug)]
pub(super) struct UnknownRequest;

/// One unit of reserved concurrency, held from admission until the invocation ends (even
/// when the caller has gone away, as Lambda counts it).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Queued {
    invocation: Invocation,
    reply: oneshot::Sender<Outcome>,
    slot: Slot,
}

struct Running {
    reply: oneshot::Sender<Outcome>,
    poller: Poller,
    watchdog: AbortHandle,
    _slot: Slot,
}

/// An invocation whose answer is posted (and sent to the caller) while its runtime has not
/// asked for the next event yet: as on Lambda, the environment is still busy, its unit of
/// concurrency held and the timeout running (docs/aws-behaviours.md #91).
struct Answered {
    poller: Poller,
    watchdog: AbortHandle,
    _slot: Slot,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Started, not yet polling: the init phase.
    Init,
    Idle,
    Busy(String),
    /// Posted its answer to this request, not polling again yet.
    Answered(String),
    /// Killed by the host (timeout, shutdown); its exit has not been seen yet.
    Killed,
    Exited(String),
}

struct Instance {
    id: u64,
    pid: u32,
    group: Arc<ProcessGroup>,
    spawned_at: SystemTime,
    started: Instant,
    server: AbortHandle,
    phase: Phase,
    init: Option<Duration>,
    cold_start: Option<Duration>,
    invocations: u64,
    peak_rss_kb: u64,
    /// What the runtime posted to `/runtime/init/error`, if it did.
    init_error: Option<Bytes>,
    /// The configuration generation it was started under ([`State::generation`]).
    generation: u64,
}

impl Instance {
    fn alive(&self) -> bool {
        !matches!(self.phase, Phase::Killed | Phase::Exited(_))
    }

    fn free(&self) -> bool {
        matches!(self.phase, Phase::Init | Phase::Idle)
    }

    fn sample_rss(&mut self) {
        if let Some(kb) = process::peak_rss_kb(self.pid) {
            self.peak_rss_kb = self.peak_rss_kb.max(kb);
        }
    }

    fn kill(&mut self) {
        if self.alive() {
            self.sample_rss();
            self.group.kill();
            self.server.abort();
            self.phase = Phase::Killed;
        }
    }
}

#[derive(Default)]
struct Totals {
    invocations: u64,
    errors: u64,
    timeouts: u64,
    throttles: u64,
    last_answered_us: Option<u64>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    running: HashMap<String, Running>,
    answered: HashMap<String, Answered>,
    instances: Vec<Instance>,
    next_instance: u64,
    totals: Totals,
    /// Set by `kill_all`: nothing new is started after it.
    stopped: bool,
    /// Bumped by each reconfiguration that needs new execution environments.
    generation: u64,
}

pub(super) struct ExitReport {
    instance: u64,
    exit: Exit,
}

pub(super) struct Shared {
    pub spec: FunctionSpec,
    pub region: String,
    pub function_arn: String,
    pub url_id: String,
    launch: Launch,
    log: Arc<LogSink>,
    runtime: tokio::runtime::Handle,
    exits: mpsc::UnboundedSender<ExitReport>,
    in_flight: Arc<AtomicUsize>,
    /// What Lambda's configuration says now; replaced whole by `reconfigure`.
    configuration: Mutex<Arc<Configuration>>,
    state: Mutex<State>,
    /// Signalled when an invocation is queued.
    work: Notify,
    /// Signalled when an instance starts polling or exits.
    changed: Notify,
    /// Serves an instance's Runtime API: given by the host, so that this module does not name
    /// the server that names it (`runtime_api` takes invocations from here).
    serve_runtime_api: ServeRuntimeApi,
}

/// Starts the Runtime API server of one poller on a bound listener.
pub(super) type ServeRuntimeApi = fn(Arc<Shared>, tokio::net::TcpListener, Poller) -> AbortHandle;

impl Shared {
    /// Must be called inside a Tokio runtime.
    pub(super) fn new(
        spec: FunctionSpec,
        log: Arc<LogSink>,
        serve_runtime_api: ServeRuntimeApi,
    ) -> (Arc<Shared>, mpsc::UnboundedReceiver<ExitReport>) {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| {
                spec.env
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "us-east-1".to_string());
        let task_root = spec
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        let task_root = std::fs::canonicalize(&task_root).unwrap_or(task_root);
        let (exits, exit_reports) = mpsc::unbounded_channel();
        let configuration = Mutex::new(Arc::new(spec.configuration()));
        let shared = Shared {
            function_arn: format!(
                "arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{}",
                spec.name
            ),
            url_id: ids::url_id(&spec.name),
            launch: Launch {
                region: region.clone(),
                task_root,
            },
            region,
            spec,
            log,
            runtime: tokio::runtime::Handle::current(),
            exits,
            in_flight: Arc::new(AtomicUsize::new(0)),
            configuration,
            state: Mutex::new(State::default()),
            work: Notify::new(),
            changed: Notify::new(),
            serve_runtime_api,
        };
        (Arc::new(shared), exit_reports)
    }

    pub(super) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(super) fn configuration(&self) -> Arc<Configuration> {
        lock(&self.configuration).clone()
    }

    pub(super) fn reconfigure(self: &Arc<Self>, new: Configuration) {
        let renew = {
            let mut current = lock(&self.configuration);
            if **current == new {
                return;
            }
            let renew = current.needs_new_environments(&new);
            *current = Arc::new(new);
            renew
        };
        tracing::info!(function = %self.spec.name, new_environments = renew, "configuration changed");
        if renew {
            let mut state = lock(&self.state);
            state.generation += 1;
            let generation = state.generation;
            for instance in state
                .instances
                .iter_mut()
                .filter(|i| i.free() && i.generation < generation)
            {
                instance.kill();
            }
            self.start_instances(&mut state);
        }
    }

    /// Handles instance exits for as long as the host lives.
    pub(super) fn supervise(
        self: &Arc<Self>,
        mut exits: mpsc::UnboundedReceiver<ExitReport>,
    ) -> AbortHandle {
        let shared = self.clone();
        self.runtime
            .spawn(async move {
                while let Some(report) = exits.recv().await {
                    shared.on_exit(report);
                }
            })
            .abort_handle()
    }

    /// Queues an invocation, starting an instance for it if none is free. The receiver gets
    /// the outcome; dropping it does not cancel the invocation (Lambda does not either).
    pub(super) fn submit(
        self: &Arc<Self>,
        invocation: Invocation,
    ) -> Result<oneshot::Receiver<Outcome>, Throttled> {
        let slot = self.admit()?;
        let (reply, outcome) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            state.queue.push_back(Queued {
                invocation,
                reply,
                slot,
            });
            self.start_instances(&mut state);
        }
        self.work.notify_waiters();
        Ok(outcome)
    }

    fn admit(&self) -> Result<Slot, Throttled> {
        match self.configuration().reserved_concurrency {
            Some(limit) => self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .map_err(|_| {
                    lock(&self.state).totals.throttles += 1;
                    Throttled
                })?,
            None => self.in_flight.fetch_add(1, Ordering::AcqRel),
        };
        Ok(Slot(self.in_flight.clone()))
    }

    /// Starts instances while invocations wait that no free instance will take.
    fn start_instances(self: &Arc<Self>, state: &mut State) {
        if state.stopped {
            return;
        }
        loop {
            let alive = state.instances.iter().filter(|i| i.alive()).count();
            let free = state.instances.iter().filter(|i| i.free()).count();
            if state.queue.len() <= free || alive >= self.spec.instances {
                return;
            }
            if let Err(error) = self.start_instance(state) {
                tracing::warn!(function = %self.spec.name, %error, "cannot start an instance");
                // Lambda fails the invocation when the runtime cannot start at all.
                if let Some(queued) = state.queue.pop_back() {
                    let body = error_document(
                        "Runtime.InvalidEntrypoint",
                        &format!(
                            "RequestId: {} Error: cannot start {}: {error}",
                            queued.invocation.request_id,
                            self.spec.program.display()
                        ),
                    );
                    state.totals.invocations += 1;
                    state.totals.errors += 1;
                    let _ = queued.reply.send(Outcome::Error { body });
                }
                return;
            }
        }
    }

    fn start_instance(self: &Arc<Self>, state: &mut State) -> Result<u32, HostError> {
        let id = state.next_instance;
        state.next_instance += 1;
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(HostError::Bind)?;
        let address = listener.local_addr().map_err(HostError::Bind)?;
        let listener = {
            let _runtime = self.runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(HostError::Bind)?
        };
        let exits = self.exits.clone();
        let configuration = self.configuration();
        let on_exit = move |exit| {
            // The host may be gone already; then nobody needs to know.
            let _ = exits.send(ExitReport { instance: id, exit });
        };
        let spawned = process::spawn(
            &self.spec,
            &configuration,
            &self.launch,
            address,
            &self.log,
            on_exit,
        )
        .map_err(|source| HostError::Spawn {
            program: self.spec.program.clone(),
            source,
        })?;
        let server = (self.serve_runtime_api)(self.clone(), listener, Poller::Instance(id));
        tracing::debug!(function = %self.spec.name, pid = spawned.pid, runtime_api = %address, "instance started");
        state.instances.push(Instance {
            id,
            pid: spawned.pid,
            group: spawned.group,
            spawned_at: SystemTime::now(),
            started: Instant::now(),
            server,
            phase: Phase::Init,
            init: None,
            cold_start: None,
            invocations: 0,
            peak_rss_kb: 0,
            init_error: None,
            generation: state.generation,
        });
        Ok(spawned.pid)
    }

    /// Starts every instance now (warm start).
    pub(super) fn prestart(self: &Arc<Self>) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        while state.instances.iter().filter(|i| i.alive()).count() < self.spec.instances {
            self.start_instance(&mut state)?;
        }
        Ok(())
    }

    /// Waits until every instance started so far polls for work; fails if one exits first.
    pub(super) async fn wait_ready(&self, limit: Duration) -> Result<(), HostError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = lock(&self.state);
                if let Some(instance) = state.instances.iter().find(|i| !i.alive()) {
                    let detail = match &instance.phase {
                        Phase::Exited(status) => {
                            format!("instance {} exited during init ({status})", instance.pid)
                        }
                        _ => format!("instance {} was killed during init", instance.pid),
                    };
                    return Err(self.init_failed(detail));
                }
                if state.instances.iter().all(|i| i.phase != Phase::Init) {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(self.init_failed(format!(
                    "no instance polled the Runtime API within {} s",
                    limit.as_secs()
                )));
            }
        }
    }

    fn init_failed(&self, detail: String) -> HostError {
        HostError::InitFailed {
            name: self.spec.name.clone(),
            detail,
            log_path: self.spec.log_path.clone(),
        }
    }

    /// `GET /invocation/next`: waits for an invocation and hands it to `poller`.
    pub(super) async fn next(self: &Arc<Self>, poller: Poller) -> NextEvent {
        loop {
            let work = self.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            if let Some(next) = self.take(poller) {
                return next;
            }
            work.await;
        }
    }

    fn take(self: &Arc<Self>, poller: Poller) -> Option<NextEvent> {
        let mut state = lock(&self.state);
        let now = SystemTime::now();
        // Asking for the next event ends the invocation it answered last.
        let before = state.answered.len();
        state.answered.retain(|_, answered| {
            let ends = answered.poller == poller;
            if ends {
                answered.watchdog.abort();
            }
            !ends
        });
        if state.answered.len() != before {
            self.changed.notify_waiters();
        }
        let generation = state.generation;
        if let Poller::Instance(id) = poller {
            let instance = state.instances.iter_mut().find(|i| i.id == id)?;
            if !instance.alive() {
                // A killed instance's last poll: it must not take work. Its server is
                // being torn down, so this request ends with it.
                return None;
            }
            if instance.phase == Phase::Init {
                instance.init = Some(instance.started.elapsed());
                self.changed.notify_waiters();
            }
            // Started under a configuration that has changed since: it takes no more work.
            if instance.generation < generation {
                instance.kill();
                drop(state);
                self.changed.notify_waiters();
                return None;
            }
            instance.phase = Phase::Idle;
        }
        let queued = state.queue.pop_front()?;
        let request_id = queued.invocation.request_id.clone();
        if let Poller::Instance(id) = poller
            && let Some(instance) = state.instances.iter_mut().find(|i| i.id == id)
        {
            instance.phase = Phase::Busy(request_id.clone());
            instance.invocations += 1;
            instance.sample_rss();
        }
        let timeout = self.configuration().timeout;
        let watchdog = {
            let shared = Arc::downgrade(self);
            let request_id = request_id.clone();
            self.runtime
                .spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if let Some(shared) = shared.upgrade() {
                        shared.time_out(&request_id);
                    }
                })
                .abort_handle()
        };
        state.running.insert(
            request_id.clone(),
            Running {
                reply: queued.reply,
                poller,
                watchdog,
                _slot: queued.slot,
            },
        );
        Some(NextEvent {
            request_id,
            event: queued.invocation.event,
            deadline_ms: ids::unix_millis(now + timeout),
            function_arn: self.function_arn.clone(),
            trace_id: ids::trace_id(now),
            client_context: queued.invocation.client_context,
        })
    }

    /// `POST /invocation/{id}/response` or `/error`.
    pub(super) fn complete(
        &self,
        poller: Poller,
        request_id: &str,
        outcome: Outcome,
    ) -> Result<(), UnknownRequest> {
        let mut state = lock(&self.state);
        if !state
            .running
            .get(request_id)
            .is_some_and(|r| r.poller == poller)
        {
            return Err(UnknownRequest);
        }
        let running = state.running.remove(request_id).ok_or(UnknownRequest)?;
        state.totals.last_answered_us = Some(crate::timeline::now_us());
        // The caller has its answer now; the environment stays busy, and the timeout keeps
        // running, until the runtime asks for the next event.
        state.answered.insert(
            request_id.to_string(),
            Answered {
                poller,
                watchdog: running.watchdog,
                _slot: running._slot,
            },
        );
        if let Poller::Instance(id) = poller
            && let Some(instance) = state.instances.iter_mut().find(|i| i.id == id)
        {
            if instance.phase == Phase::Busy(request_id.to_string()) {
                instance.phase = Phase::Answered(request_id.to_string());
            }
            if instance.cold_start.is_none() {
                instance.cold_start = Some(instance.started.elapsed());
            }
            instance.sample_rss();
        }
        state.totals.invocations += 1;
        if matches!(outcome, Outcome::Error { .. }) {
            state.totals.errors += 1;
        }
        let _ = running.reply.send(outcome);
        Ok(())
    }

    /// `POST /runtime/init/error`: kept for the invocation that this failed start will fail.
    pub(super) fn init_error(&self, poller: Poller, body: Bytes) {
        if let Poller::Instance(id) = poller
            && let Some(instance) = lock(&self.state).instances.iter_mut().find(|i| i.id == id)
        {
            instance.init_error = Some(body);
        }
    }

    /// The function timeout passed: Lambda stops the environment and fails the invocation.
    fn time_out(self: &Arc<Self>, request_id: &str) {
        let mut state = lock(&self.state);
        if let Some(answered) = state.answered.remove(request_id) {
            // Answered, but still at work when the time ran out: Lambda stops the environment;
            // the caller has had its answer.
            if let Poller::Instance(id) = answered.poller
                && let Some(instance) = state.instances.iter_mut().find(|i| i.id == id)
            {
                instance.kill();
            }
            state.totals.timeouts += 1;
            tracing::info!(function = %self.spec.name, request_id, "timed out after its answer");
            self.start_instances(&mut state);
            drop(state);
            self.changed.notify_waiters();
            return;
        }
        let Some(running) = state.running.remove(request_id) else {
            return;
        };
        if let Poller::Instance(id) = running.poller
            && let Some(instance) = state.instances.iter_mut().find(|i| i.id == id)
        {
            instance.sample_rss();
            instance.kill();
        }
        state.totals.invocations += 1;
        state.totals.errors += 1;
        state.totals.timeouts += 1;
        let seconds = self.configuration().timeout.as_secs_f64();
        tracing::info!(function = %self.spec.name, request_id, seconds, "invocation timed out");
        let body = error_document(
            "Sandbox.Timedout",
            &format!("RequestId: {request_id} Error: Task timed out after {seconds:.2} seconds"),
        );
        let _ = running.reply.send(Outcome::Error { body });
        // Queued invocations need a replacement instance.
        self.start_instances(&mut state);
        drop(state);
        self.changed.notify_waiters();
    }

    fn on_exit(self: &Arc<Self>, report: ExitReport) {
        let mut state = lock(&self.state);
        let Some(index) = state.instances.iter().position(|i| i.id == report.instance) else {
            return;
        };
        let instance = &mut state.instances[index];
        instance.server.abort();
        let never_ran = instance.invocations == 0;
        let init_error = instance.init_error.take();
        let (pid, status) = (instance.pid, report.exit.status);
        instance.phase = Phase::Exited(status.clone());
        tracing::debug!(function = %self.spec.name, pid, %status, "instance exited");

        // The invocation it was running, if any, fails the way Lambda reports a crash.
        let poller = Poller::Instance(report.instance);
        state.answered.retain(|_, answered| {
            let ends = answered.poller == poller;
            if ends {
                answered.watchdog.abort();
            }
            !ends
        });
        let orphan = state
            .running
            .iter()
            .find(|(_, running)| running.poller == poller)
            .map(|(id, _)| id.clone());
        let failed = match orphan {
            Some(request_id) => state.running.remove(&request_id).map(|running| {
                running.watchdog.abort();
                (request_id, running.reply)
            }),
            // A runtime that dies before taking any work fails the invocation it was
            // started for, as a failed init does on Lambda.
            None if never_ran && !state.stopped => state
                .queue
                .pop_front()
                .map(|queued| (queued.invocation.request_id, queued.reply)),
            None => None,
        };
        if let Some((request_id, reply)) = failed {
            let body = init_error.unwrap_or_else(|| {
                error_document(
                    "Runtime.ExitError",
                    &format!("RequestId: {request_id} Error: Runtime exited with error: {status}"),
                )
            });
            state.totals.invocations += 1;
            state.totals.errors += 1;
            let _ = reply.send(Outcome::Error { body });
        }
        self.start_instances(&mut state);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Waits until no invocation is queued, running, or answered with its runtime still at
    /// work; `false` when `limit` passed first.
    pub(super) async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.in_flight.load(Ordering::Acquire) == 0;
            }
        }
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        lock(&self.state)
            .instances
            .iter()
            .filter(|i| i.alive())
            .map(|i| i.pid)
            .collect()
    }

    pub(super) fn stats(&self) -> HostStats {
        let mut state = lock(&self.state);
        let in_flight = self.in_flight.load(Ordering::Acquire);
        let millis = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let instances: Vec<InstanceStats> = state
            .instances
            .iter_mut()
            .map(|instance| {
                if instance.alive() {
                    instance.sample_rss();
                }
                InstanceStats {
                    pid: instance.pid,
                    alive: instance.alive(),
                    spawned_at_ms: ids::unix_millis(instance.spawned_at),
                    spawned_at_us: crate::timeline::unix_micros(instance.spawned_at),
                    init_ms: millis(instance.init),
                    cold_start_ms: millis(instance.cold_start),
                    peak_rss_kb: instance.peak_rss_kb,
                    invocations: instance.invocations,
                    exit: match &instance.phase {
                        Phase::Exited(status) => Some(status.clone()),
                        _ => None,
                    },
                }
            })
            .collect();
        HostStats {
            function: self.spec.name.clone(),
            invocations: state.totals.invocations,
            errors: state.totals.errors,
            timeouts: state.totals.timeouts,
            throttles: state.totals.throttles,
            last_answered_us: state.totals.last_answered_us,
            cold_starts: instances.len() as u64,
            in_flight,
            peak_rss_kb: instances.iter().map(|i| i.peak_rss_kb).max().unwrap_or(0),
            instances,
        }
    }

    /// Kills every instance; nothing is started afterwards.
    pub(super) fn kill_all(&self) {
        let mut state = lock(&self.state);
        state.stopped = true;
        for instance in &mut state.instances {
            instance.kill();
        }
        for running in state.running.values() {
            running.watchdog.abort();
        }
    }

    pub(super) async fn wait_all_exited(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let exited = lock(&self.state)
                .instances
                .iter()
                .all(|i| matches!(i.phase, Phase::Exited(_)));
            if exited {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(function = %self.spec.name, "instances not reaped in time");
                return;
            }
        }
    }
}

/// A Lambda error document, as the Invoke API returns for function errors.
pub(super) fn error_document(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({ "errorType": error_type, "errorMessage": message }).to_string())
}
