//! The exhaustive check: the real [`handle`] over every interleaving of up to three reports.
//!
//! (Design notes and figures: see the module's end, [`explore`] and the test.)

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_topology::decisions::{DecisionRecord, Recorded};
use aws_topology::globalaccelerator::{
    Endpoint, EndpointGroup, Health, Removal, Topology, TrafficDial,
};
use common::auth::BasicCredentials;
use common::site::{AcceleratorDns, SiteName};
use http::HeaderMap;
use ispn_client::CacheResults;

use crate::decision::Liveness;
use crate::handler::{Decision, Failure, Invocation, Settings, World, handle};
use crate::lambda::FunctionUrlRequest;
use crate::tests::{FakeWorld, authorized, endpoint, group, settings};

/// A report answered 5xx is sent again at most this many times (Alertmanager resends until the
/// alert resolves; two resends are enough for every fault here to have struck and passed).
const RESENDS: usize = 2;
const ATTEMPTS: usize = 1 + RESENDS;
const MAX_REPORTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Inputs

/// Who reports whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Report {
    AReportsB,
    BReportsA,
}

impl Report {
    fn event(self) -> &'static str {
        match self {
            Report::AReportsB => "site-b-offline-reported-by-site-a",
            Report::BReportsA => "site-a-offline-reported-by-site-b",
        }
    }
}

/// An accelerator to start from.
struct Scenario {
    name: &'static str,
    groups: fn() -> Vec<EndpointGroup>,
}

fn in_listener(mut group: EndpointGroup, listener: &str) -> EndpointGroup {
    group.listener_arn = listener.to_owned();
    group
}

fn weighted(mut endpoint: Endpoint, weight: i32) -> Endpoint {
    endpoint.weight = Some(weight);
    endpoint
}

/// Health is set per read by the checker; the topologies start healthy.
const H: Health = Health::Healthy;

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "one_group",
            groups: || vec![group("g1", vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)])],
        },
        Scenario {
            name: "two_listeners",
            groups: || {
                vec![
                    in_listener(group("g-443", vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)]), "l-443"),
                    in_listener(group("g-80", vec![endpoint("lb-a80", "site-a", H), endpoint("lb-b80", "site-b", H)]), "l-80"),
                ]
            },
        },
        Scenario {
            name: "group_per_site",
            groups: || {
                vec![
                    group("g-eu", vec![endpoint("lb-a", "site-a", H)]),
                    group("g-us", vec![endpoint("lb-b", "site-b", H)]),
                ]
            },
        },
        Scenario {
            name: "weight_zero",
            groups: || {
                vec![
                    in_listener(group("g-443", vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)]), "l-443"),
                    in_listener(group("g-80", vec![weighted(endpoint("lb-a80", "site-a", H), 0), endpoint("lb-b80", "site-b", H)]), "l-80"),
                ]
            },
        },
        Scenario {
            name: "two_load_balancers",
            groups: || {
                vec![group("g1", vec![endpoint("lb-a1", "site-a", H), endpoint("lb-a2", "site-a", H), endpoint("lb-b", "site-b", H)])]
            },
        },
    ]
}

/// Every multiset of one to [`MAX_REPORTS`] reports (the order of concurrent reports is the
/// scheduler's business).
fn report_sets() -> Vec<Vec<Report>> {
    let mut sets = Vec::new();
    for n in 1..=MAX_REPORTS {
        for b_reports in 0..=n {
            let mut set = vec![Report::AReportsB; n - b_reports];
            set.extend(std::iter::repeat_n(Report::BReportsA, b_reports));
            sets.push(set);
        }
    }
    sets
}

// ---------------------------------------------------------------------------------------------
// Steps

/// A World call that touches shared state, or an input only its caller sees (the probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    Topology,
    Probe,
    Recorded,
    Record,
    /// `RemoveEndpoints` or `UpdateEndpointGroup`, on the group at this index.
    Traffic(usize),
    TakeOffline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ProbeAnswer {
    Alive,
    Unreachable,
    Misconfigured,
}

/// How a granted call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    /// The topology read, with each site's health at this read.
    Health { a_healthy: bool, b_healthy: bool },
    Answer(ProbeAnswer),
    Succeed,
    /// The armed fault strikes (a transient failure; nothing changed).
    Fail,
    /// The record store writes, then the call fails (a timeout after the write).
    FailAfterWrite,
}

/// The faults that may still strike, each at most once per schedule, at any call of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Armed {
    record: bool,
    /// A traffic step on the second group of the accelerator.
    second_group: bool,
    take_offline: bool,
}

const ALL_FAULTS: Armed = Armed {
    record: true,
    second_group: true,
    take_offline: true,
};

/// One step a scheduler may grant: an invocation's pending call, and how it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Step {
    invocation: usize,
    call: Call,
    variant: Variant,
}

impl Step {
    fn describe(&self, reports: &[Report]) -> String {
        let report = self.invocation / ATTEMPTS;
        let attempt = self.invocation % ATTEMPTS;
        format!(
            "report {report} ({:?}) attempt {attempt}: {:?} {:?}",
            reports[report], self.call, self.variant
        )
    }
}

/// Whether `x` and `y` commute in a state where `armed` faults may strike: the same world and
/// the same answers whichever goes first, and neither enables or disables the other.
fn independent(x: &Step, y: &Step, armed: Armed) -> bool {
    if x.invocation == y.invocation {
        return false;
    }
    use Call::*;
    match (x.call, y.call) {
        // An input nobody else sees.
        (Probe, _) | (_, Probe) => true,
        (Topology, Traffic(_)) | (Traffic(_), Topology) => false,
        (Record, Record | Recorded) | (Recorded, Record) => false,
        (Traffic(g), Traffic(h)) => g != h,
        // Nothing reads the backups; only who meets the fault differs.
        (TakeOffline, TakeOffline) => !armed.take_offline,
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// The board: the calls waiting for the scheduler

struct Waiting {
    slot: u64,
    invocation: usize,
    call: Call,
    /// The tick of the gate's last poll.
    polled_at: u64,
}

struct Board {
    /// Counts polls and completions of gates.
    tick: u64,
    /// Per invocation, the tick of its last completed call: a gate polled before it is not
    /// awaited any more (the early probe, once the topology read won the race).
    last_completion: Vec<u64>,
    waiting: Vec<Waiting>,
    next_slot: u64,
    grant: Option<(u64, Variant)>,
    armed: Armed,
    /// How many creates succeeded.
    created: usize,
    probe_answers: Vec<Option<ProbeAnswer>>,
    second_group: Option<String>,
}

impl Board {
    fn new(invocations: usize, second_group: Option<String>) -> Board {
        Board {
            tick: 0,
            last_completion: vec![0; invocations],
            waiting: Vec::new(),
            next_slot: 0,
            grant: None,
            armed: ALL_FAULTS,
            created: 0,
            probe_answers: vec![None; invocations],
            second_group,
        }
    }

    fn variants(&self, call: Call) -> Vec<Variant> {
        let fault = |armed: bool| {
            if armed {
                vec![Variant::Succeed, Variant::Fail]
            } else {
                vec![Variant::Succeed]
            }
        };
        match call {
            Call::Topology => [(true, true), (true, false), (false, true), (false, false)]
                .into_iter()
                .map(|(a_healthy, b_healthy)| Variant::Health {
                    a_healthy,
                    b_healthy,
                })
                .collect(),
            Call::Probe => [
                ProbeAnswer::Alive,
                ProbeAnswer::Unreachable,
                ProbeAnswer::Misconfigured,
            ]
            .into_iter()
            .map(Variant::Answer)
            .collect(),
            Call::Record if self.armed.record => {
                vec![Variant::Succeed, Variant::Fail, Variant::FailAfterWrite]
            }
            Call::Record | Call::Recorded => vec![Variant::Succeed],
            Call::Traffic(g) => fault(self.armed.second_group && g == 1),
            Call::TakeOffline => fault(self.armed.take_offline),
        }
    }

    /// The steps a scheduler may grant now, in a fixed order.
    fn enabled(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for w in &self.waiting {
            if w.polled_at <= self.last_completion[w.invocation] {
                continue;
            }
            for variant in self.variants(w.call) {
                steps.push(Step {
                    invocation: w.invocation,
                    call: w.call,
                    variant,
                });
            }
        }
        steps.sort();
        steps
    }
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A World call waiting for the scheduler's grant.
struct Gate<'a> {
    board: &'a Mutex<Board>,
    invocation: usize,
    call: Call,
    slot: Option<u64>,
    done: bool,
}

impl Future for Gate<'_> {
    type Output = Variant;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Variant> {
        let this = self.get_mut();
        let mut board = lock(this.board);
        board.tick += 1;
        let tick = board.tick;
        let Some(slot) = this.slot else {
            let slot = board.next_slot;
            board.next_slot += 1;
            board.waiting.push(Waiting {
                slot,
                invocation: this.invocation,
                call: this.call,
                polled_at: tick,
            });
            this.slot = Some(slot);
            return Poll::Pending;
        };
        match board.grant {
            Some((granted, variant)) if granted == slot => {
                board.grant = None;
                board.waiting.retain(|w| w.slot != slot);
                board.last_completion[this.invocation] = tick;
                this.done = true;
                Poll::Ready(variant)
            }
            _ => {
                if let Some(w) = board.waiting.iter_mut().find(|w| w.slot == slot) {
                    w.polled_at = tick;
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        if let (Some(slot), false) = (self.slot, self.done) {
            lock(self.board).waiting.retain(|w| w.slot != slot);
        }
    }
}

/// One invocation's view of the world: every call that touches shared state waits for the
/// scheduler, then goes to the shared [`FakeWorld`].
struct Gated<'a> {
    world: &'a FakeWorld,
    board: &'a Mutex<Board>,
    invocation: usize,
}

impl Gated<'_> {
    fn gate(&self, call: Call) -> Gate<'_> {
        Gate {
            board: self.board,
            invocation: self.invocation,
            call,
            slot: None,
            done: false,
        }
    }

    fn group_index(&self, group_arn: &str) -> usize {
        let groups = self.world.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.iter().position(|g| g.arn == group_arn).unwrap_or(usize::MAX)
    }

    /// Whether the second-group fault strikes this traffic step.
    async fn traffic_gate(&self, group_arn: &str) -> Result<(), Failure> {
        let index = self.group_index(group_arn);
        match self.gate(Call::Traffic(index)).await {
            Variant::Fail => {
                lock(self.board).armed.second_group = false;
                Err(Failure::transient(
                    "TransactionInProgressException past the retry budget",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl World for Gated<'_> {
    async fn webhook_credentials(&self) -> Result<BasicCredentials, Failure> {
        self.world.webhook_credentials().await
    }

    async fn reread_webhook_credentials(
        &self,
        rejected: &BasicCredentials,
    ) -> Result<Option<BasicCredentials>, Failure> {
        self.world.reread_webhook_credentials(rejected).await
    }

    async fn topology(&self, accelerator: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        let Variant::Health {
            a_healthy,
            b_healthy,
        } = self.gate(Call::Topology).await
        else {
            return Err(Failure::fatal("model check: a read granted without health"));
        };
        let mut topology = self.world.topology(accelerator).await?;
        let health = |healthy: bool| if healthy { Health::Healthy } else { Health::Unhealthy };
        for group in topology.iter_mut().flat_map(|t| t.groups.iter_mut()) {
            for e in &mut group.endpoints {
                match e.site.as_ref().map(SiteName::as_str) {
                    Some("site-a") => e.health = health(a_healthy),
                    Some("site-b") => e.health = health(b_healthy),
                    _ => {}
                }
            }
        }
        Ok(topology)
    }

    fn forget_topology(&self, accelerator: &AcceleratorDns) {
        self.world.forget_topology(accelerator);
    }

    async fn probe(&self, _: &SiteName) -> Result<Liveness, Failure> {
        let Variant::Answer(answer) = self.gate(Call::Probe).await else {
            return Err(Failure::fatal("model check: a probe granted without an answer"));
        };
        lock(self.board).probe_answers[self.invocation] = Some(answer);
        match answer {
            ProbeAnswer::Alive => Ok(Liveness::Alive),
            ProbeAnswer::Unreachable => Ok(Liveness::Unreachable),
            ProbeAnswer::Misconfigured => Err(Failure::fatal(
                "probe: invalid peer certificate: UnknownIssuer",
            )),
        }
    }

    async fn record(
        &self,
        proposal: &DecisionRecord,
        replacing: Option<&str>,
    ) -> Result<Recorded, Failure> {
        let variant = self.gate(Call::Record).await;
        if variant == Variant::Fail {
            lock(self.board).armed.record = false;
            return Err(Failure::transient("DynamoDB: ThrottlingException"));
        }
        let recorded = self.world.record(proposal, replacing).await?;
        let mut board = lock(self.board);
        if recorded == Recorded::Created {
            board.created += 1;
        }
        if variant == Variant::FailAfterWrite {
            board.armed.record = false;
            return Err(Failure::transient("DynamoDB: request timed out"));
        }
        Ok(recorded)
    }

    async fn recorded(&self, split_brain: &str) -> Result<Option<DecisionRecord>, Failure> {
        self.gate(Call::Recorded).await;
        self.world.recorded(split_brain).await
    }

    async fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        deadline: Instant,
    ) -> Result<Removal, Failure> {
        self.traffic_gate(group_arn).await?;
        self.world
            .remove_endpoints(group_arn, endpoint_ids, deadline)
            .await
    }

    async fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        deadline: Instant,
    ) -> Result<(), Failure> {
        self.traffic_gate(group_arn).await?;
        self.world.set_traffic_dial(group_arn, dial, deadline).await
    }

    async fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> Result<CacheResults, Failure> {
        if self.gate(Call::TakeOffline).await == Variant::Fail {
            lock(self.board).armed.take_offline = false;
            return Err(Failure::transient(
                "take-offline failed for some caches: work=ISPN000000",
            ));
        }
        self.world.take_offline(site, remote).await
    }

    async fn notify(&self, subject: &str, record: &serde_json::Value) {
        self.world.notify(subject, record).await;
    }
}
