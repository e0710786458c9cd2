//! The exhaustive check of the fence: the real [`handle`] driven over every interleaving of up
//! to three reports of one split-brain, with every input and fault below, and the invariants
//! checked in every state.
//!
//! # What it explores
//!
//! * **Reports**: every multiset of one to three of *site-a reports site-b* and *site-b reports
//!   site-a* (the order of concurrent reports is the scheduler's). A report answered 5xx is
//!   sent again once ([`RESENDS`]), after its answer, as Alertmanager does; 2xx and 4xx never.
//! * **Accelerators** ([`scenarios`]): one group with both sites; two listeners each with both
//!   sites; one group per site (the fence closes the loser's dial); site-a at weight 0 in the
//!   second listener; site-a with two load balancers.
//! * **Health**: at every topology read, each site healthy or unhealthy (so health flips
//!   between two reports' reads and between a report and its resend).
//! * **Probe**: at every probe call, alive, unreachable or misconfigured; answered before the
//!   topology read or after it (both branches of the `select!` in `fence`).
//! * **Faults** ([`Fault`], one per input, striking at most once, at any call of its kind):
//!   `PutItem` fails (before or after writing), the traffic step on the second group fails,
//!   take-offline fails. Every fault input also has its schedules where it never strikes.
//!
//! # How
//!
//! Every World call that touches shared state (topology read, `record`, `recorded`, traffic
//! steps, take-offline) and the probe is a step: the invocation's future waits at a gate
//! ([`Gate`]) until the search answers it, and the invocation is polled by hand (a
//! current-thread runtime only lends its timers, it never runs). The other calls read what
//! nobody writes (the webhook secret) or write what nobody reads (`notify`,
//! `forget_topology`) and are answered on the spot; the probe, an input nobody else sees, is
//! answered in the read's step when it comes first ([`Variant::ProbeThenRead`]).
//!
//! An invocation is deterministic given its request and the answers it got, so each of its
//! states is found by replaying the real handler from scratch with the answers of its
//! history ([`Memo::replay`]; a paused future goes on instead when it has not gone on
//! elsewhere yet). The answers come from [`FakeWorld`] itself, loaded with the schedule's
//! world, the fault and health chosen by the step ([`State::respond`]). The search is a depth
//! first walk over the states of schedules (the world, the fault left, where each invocation
//! is), each state explored once, with the number of complete schedules from it summed up.
//!
//! Reductions, all sound (the schedules a state stands for are counted, and the count came out
//! the same with and without the merging of states of identical reports):
//!
//! * Schedules that reach the same state are explored once; a finished invocation counts only
//!   by what the invariants read of its answer.
//! * States of one invocation are taken as one ([`Memo::class_of`]) once the fence has proposed
//!   its verdict: health, the probe's answer and their order have then done all they do. This
//!   is checked, not assumed: every call and answer from a class must lead all its members to
//!   one class, or the test fails naming it ([`Memo::child`], [`Memo::add`]).
//! * Ample sets: a step that touches nothing another step reads or writes is explored alone
//!   (the probe's answer after the read; take-offline when no fault can strike it).
//! * Reports of the same direction are interchangeable, their request ids with them
//!   ([`RENAMINGS`]): the fence uses its request id only as a name, as does the store.
//! * The model's store keeps no `facts` (read by no code), and digests leave out
//!   `decided_at_ms`: a record goes stale only 15 minutes after its decision.
//! * States are told apart by 128-bit SipHash digests (a collision among n states has a
//!   probability of about n² / 2¹²⁹).
//!
//! Bounds, so that the test takes well under a minute in a debug build on two cores (about
//! 30 s, 635 000 states): one resend, and three reports without faults (faults with one and
//! two reports). Both were run once beyond them, without a violation: two resends, 2.9 million
//! states in 111 s; three reports with every fault, 4.2 million states in 124 s (set
//! `SITEFENCE_MODEL_CHECK_FULL` to run that again).
//!
//! # Invariants
//!
//! After every complete schedule (every report answered, resends included):
//!
//! 1. Traffic: `Topology::check_fenced` is empty for the recorded decision (every listener to
//!    the survivor only, never to nobody), unless every report ended 5xx (then (5) holds).
//! 2. A report that answered 2xx for a fence: the survivor's backup to the loser is offline.
//! 3. Every report that fenced carried out the recorded decision (its survivor and id), and
//!    no backup but the survivor's to the loser went offline.
//! 4. One decision per split-brain: one record, created once.
//!
//! In every state: 5. no group emptied, no listener to nobody; 6. a verdict that needed the
//! probe follows its answer (a misconfigured probe is never a verdict).
//!
//! # Why its own search
//!
//! loom explores the memory orderings of threads sharing atomics; here the concurrency is
//! between Lambda invocations through AWS and Infinispan, and the choices are the world's
//! answers, which loom does not enumerate. stateright checks a model written in its own actor
//! API: a second fence whose faithfulness to this one is the open question. proptest samples,
//! and cannot say that nothing was left out. Driving the real `handle` against a
//! deterministic fake world, and searching its states, checks this code, every schedule, and
//! gives a schedule that breaks an invariant as steps to replay in a test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

use crate::decide::Liveness;
use crate::event::FunctionUrlRequest;
use crate::handler::{Failure, Invocation, Report, Settings, World, handle};
use crate::tests::{DNS, FakeWorld, authorized, endpoint, group, settings};

/// A report answered 5xx is sent again this many times at most (Alertmanager resends until
/// the alert resolves).
const RESENDS: usize = 1;
const ATTEMPTS: usize = 1 + RESENDS;
const MAX_REPORTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Inputs

/// Who reports whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ReportKind {
    AReportsB,
    BReportsA,
}

impl ReportKind {
    fn event(self) -> &'static str {
        match self {
            ReportKind::AReportsB => "site-b-offline-reported-by-site-a",
            ReportKind::BReportsA => "site-a-offline-reported-by-site-b",
        }
    }
}

/// An accelerator to start from.
struct Scenario {
    name: &'static str,
    groups: fn() -> Vec<EndpointGroup>,
    /// How long its check takes, roughly (to hand out the work).
    weight: u32,
}

fn in_listener(mut group: EndpointGroup, listener: &str) -> EndpointGroup {
    group.listener_arn = listener.to_owned();
    group
}

fn weighted(mut endpoint: Endpoint, weight: i32) -> Endpoint {
    endpoint.weight = Some(weight);
    endpoint
}

/// Health is the read's (see [`Variant::Health`]); the topologies start healthy.
const H: Health = Health::Healthy;

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "one_group",
            weight: 1,
            groups: || {
                vec![group(
                    "g1",
                    vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)],
                )]
            },
        },
        Scenario {
            name: "two_listeners",
            weight: 3,
            groups: || {
                vec![
                    in_listener(
                        group(
                            "g-443",
                            vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)],
                        ),
                        "l-443",
                    ),
                    in_listener(
                        group(
                            "g-80",
                            vec![
                                endpoint("lb-a80", "site-a", H),
                                endpoint("lb-b80", "site-b", H),
                            ],
                        ),
                        "l-80",
                    ),
                ]
            },
        },
        Scenario {
            // One group per region, one site per region: the fence closes the loser's dial.
            name: "group_per_site",
            weight: 1,
            groups: || {
                vec![
                    group("g-eu", vec![endpoint("lb-a", "site-a", H)]),
                    group("g-us", vec![endpoint("lb-b", "site-b", H)]),
                ]
            },
        },
        Scenario {
            // Site A at weight 0 in the second listener: A cannot survive there.
            name: "weight_zero",
            weight: 3,
            groups: || {
                vec![
                    in_listener(
                        group(
                            "g-443",
                            vec![endpoint("lb-a", "site-a", H), endpoint("lb-b", "site-b", H)],
                        ),
                        "l-443",
                    ),
                    in_listener(
                        group(
                            "g-80",
                            vec![
                                weighted(endpoint("lb-a80", "site-a", H), 0),
                                endpoint("lb-b80", "site-b", H),
                            ],
                        ),
                        "l-80",
                    ),
                ]
            },
        },
        Scenario {
            name: "two_load_balancers",
            weight: 1,
            groups: || {
                vec![group(
                    "g1",
                    vec![
                        endpoint("lb-a1", "site-a", H),
                        endpoint("lb-a2", "site-a", H),
                        endpoint("lb-b", "site-b", H),
                    ],
                )]
            },
        },
    ]
}

/// Every multiset of one to [`MAX_REPORTS`] reports (the order of concurrent reports is the
/// scheduler's business).
fn report_sets() -> Vec<Vec<ReportKind>> {
    let mut sets = Vec::new();
    for n in 1..=MAX_REPORTS {
        for b_reports in 0..=n {
            let mut set = vec![ReportKind::AReportsB; n - b_reports];
            set.extend(std::iter::repeat_n(ReportKind::BReportsA, b_reports));
            sets.push(set);
        }
    }
    sets
}

/// The fault a schedule may meet, once, at any call of its kind (or at none: every fault
/// input has the schedules without it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Three reports are checked without faults (see the module documentation).
    None,
    /// `PutItem` fails, before or after the write.
    Record,
    /// `RemoveEndpoints` (or `UpdateEndpointGroup`) on the accelerator's second group.
    SecondGroup,
    TakeOffline,
}

const FAULTS: [Fault; 3] = [Fault::Record, Fault::SecondGroup, Fault::TakeOffline];

/// The fault that may still strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Armed {
    record: bool,
    second_group: bool,
    take_offline: bool,
}

impl Armed {
    fn with(fault: Fault) -> Armed {
        Armed {
            record: fault == Fault::Record,
            second_group: fault == Fault::SecondGroup,
            take_offline: fault == Fault::TakeOffline,
        }
    }
}

/// One input: where the schedules start from.
struct Input<'a> {
    scenario: &'a Scenario,
    reports: &'a [ReportKind],
    fault: Fault,
    /// Per invocation, its tree in the [`Memo`].
    trees: Vec<usize>,
    /// The renamings (indices in [`RENAMINGS`]) that swap reports of the same direction only.
    renamings: Vec<usize>,
}

// ---------------------------------------------------------------------------------------------
// Calls and their answers

/// A World call that touches shared state, or an input only its caller sees (the probe). The
/// other calls (the webhook secret, `forget_topology`, `notify`) read what nobody writes or
/// write what nobody reads: they are answered on the spot, not scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Call {
    Topology,
    Probe,
    Recorded,
    Record,
    /// `RemoveEndpoints` or `UpdateEndpointGroup`.
    Traffic,
    TakeOffline,
}

/// A call's arguments, as the fence made it.
#[derive(Debug, Clone)]
enum Args {
    None,
    Record {
        proposal: Box<DecisionRecord>,
        replacing: Option<String>,
    },
    Recorded {
        split_brain: String,
    },
    Remove {
        group: String,
        ids: Vec<String>,
    },
    Dial {
        group: String,
        dial: TrafficDial,
    },
    TakeOffline {
        site: SiteName,
        remote: SiteName,
    },
}

impl Args {
    fn group(&self) -> Option<&str> {
        match self {
            Args::Remove { group, .. } | Args::Dial { group, .. } => Some(group),
            _ => None,
        }
    }
}

/// What a call was answered.
#[derive(Debug, Clone)]
enum Response {
    Topology(Result<Option<Topology>, Failure>),
    Probe(Result<Liveness, Failure>),
    Record(Result<Recorded, Failure>),
    Recorded(Result<Option<DecisionRecord>, Failure>),
    Removal(Result<Removal, Failure>),
    Dial(Result<(), Failure>),
    Offline(Result<CacheResults, Failure>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ProbeAnswer {
    Alive,
    Unreachable,
    Misconfigured,
}

const PROBE_ANSWERS: [ProbeAnswer; 3] = [
    ProbeAnswer::Alive,
    ProbeAnswer::Unreachable,
    ProbeAnswer::Misconfigured,
];

/// How the world answers a call: the choices of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Variant {
    /// The topology read, with each site's health at this read.
    Health {
        a_healthy: bool,
        b_healthy: bool,
    },
    Answer(ProbeAnswer),
    /// The probe answers, then the read (one step: the probe reads what nobody writes, so
    /// nothing between the two could change either).
    ProbeThenRead {
        answer: ProbeAnswer,
        a_healthy: bool,
        b_healthy: bool,
    },
    Succeed,
    /// The armed fault strikes: a transient failure, nothing changed.
    Fail,
    /// The record store writes, then the call fails (a timeout after the write).
    FailAfterWrite,
}

// ---------------------------------------------------------------------------------------------
// Replaying one invocation

struct Waiting {
    slot: u64,
    call: Call,
    args: Args,
    /// The tick of the gate's last poll.
    polled_at: u64,
}

/// The calls an invocation waits on, and the answer to give one of them.
#[derive(Default)]
struct Board {
    /// Counts polls and completions of gates.
    tick: u64,
    /// The tick of the last completed call: a gate polled before it is no longer awaited (the
    /// early probe, once the topology read won the race).
    last_completion: u64,
    waiting: Vec<Waiting>,
    next_slot: u64,
    grant: Option<(u64, Response)>,
}

impl Board {
    fn awaited(&self) -> impl Iterator<Item = &Waiting> {
        self.waiting
            .iter()
            .filter(|w| w.polled_at > self.last_completion)
    }

    /// Answers `call` at its next poll; `false` if the invocation does not wait for it.
    fn grant(&mut self, call: Call, response: Response) -> bool {
        let slot = self.awaited().find(|w| w.call == call).map(|w| w.slot);
        self.grant = slot.map(|slot| (slot, response));
        slot.is_some()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A World call waiting for its answer.
struct Gate<'a> {
    board: &'a Mutex<Board>,
    call: Call,
    args: Option<Args>,
    slot: Option<u64>,
    done: bool,
}

impl Future for Gate<'_> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Response> {
        let this = self.get_mut();
        let mut board = lock(this.board);
        board.tick += 1;
        let tick = board.tick;
        let Some(slot) = this.slot else {
            let slot = board.next_slot;
            board.next_slot += 1;
            board.waiting.push(Waiting {
                slot,
                call: this.call,
                args: this.args.take().unwrap_or(Args::None),
                polled_at: tick,
            });
            this.slot = Some(slot);
            return Poll::Pending;
        };
        if board
            .grant
            .as_ref()
            .is_some_and(|(granted, _)| *granted == slot)
            && let Some((_, response)) = board.grant.take()
        {
            board.waiting.retain(|w| w.slot != slot);
            board.last_completion = tick;
            this.done = true;
            return Poll::Ready(response);
        }
        if let Some(w) = board.waiting.iter_mut().find(|w| w.slot == slot) {
            w.polled_at = tick;
        }
        Poll::Pending
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        if let (Some(slot), false) = (self.slot, self.done) {
            lock(self.board).waiting.retain(|w| w.slot != slot);
        }
    }
}

/// The world as one replayed invocation sees it: every scheduled call waits on the board for
/// the answer the search gives it.
struct Replayed<'a> {
    board: Arc<Mutex<Board>>,
    secret: &'a FakeWorld,
}

impl Replayed<'_> {
    fn call(&self, call: Call, args: Args) -> Gate<'_> {
        Gate {
            board: &self.board,
            call,
            args: Some(args),
            slot: None,
            done: false,
        }
    }
}

fn unexpected(response: Response) -> Failure {
    Failure::fatal(format!("model check: answered {response:?}"))
}

impl World for Replayed<'_> {
    async fn webhook_credentials(&self) -> Result<BasicCredentials, Failure> {
        self.secret.webhook_credentials().await
    }

    async fn reread_webhook_credentials(
        &self,
        rejected: &BasicCredentials,
    ) -> Result<Option<BasicCredentials>, Failure> {
        self.secret.reread_webhook_credentials(rejected).await
    }

    async fn topology(&self, _: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        match self.call(Call::Topology, Args::None).await {
            Response::Topology(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    fn forget_topology(&self, _: &AcceleratorDns) {}

    // The model's reports are alerts; a preflight writes nothing, so it has no place in it.
    async fn read_secrets_afresh(&self) -> Result<(), Failure> {
        Err(Failure::fatal("model check: a preflight is not modelled"))
    }

    async fn backup_status(
        &self,
        _: &SiteName,
    ) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        Err(Failure::fatal("model check: a preflight is not modelled"))
    }

    async fn probe(&self, _: &SiteName) -> Result<Liveness, Failure> {
        match self.call(Call::Probe, Args::None).await {
            Response::Probe(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn record(
        &self,
        proposal: &DecisionRecord,
        replacing: Option<&str>,
    ) -> Result<Recorded, Failure> {
        let args = Args::Record {
            proposal: Box::new(proposal.clone()),
            replacing: replacing.map(str::to_owned),
        };
        match self.call(Call::Record, args).await {
            Response::Record(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn recorded(&self, split_brain: &str) -> Result<Option<DecisionRecord>, Failure> {
        let args = Args::Recorded {
            split_brain: split_brain.to_owned(),
        };
        match self.call(Call::Recorded, args).await {
            Response::Recorded(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        _: Instant,
    ) -> Result<Removal, Failure> {
        let args = Args::Remove {
            group: group_arn.to_owned(),
            ids: endpoint_ids.to_vec(),
        };
        match self.call(Call::Traffic, args).await {
            Response::Removal(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        _: Instant,
    ) -> Result<(), Failure> {
        let args = Args::Dial {
            group: group_arn.to_owned(),
            dial,
        };
        match self.call(Call::Traffic, args).await {
            Response::Dial(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn take_offline(
        &self,
        site: &SiteName,
        remote: &SiteName,
    ) -> Result<CacheResults, Failure> {
        let args = Args::TakeOffline {
            site: site.clone(),
            remote: remote.clone(),
        };
        match self.call(Call::TakeOffline, args).await {
            Response::Offline(answer) => answer,
            other => Err(unexpected(other)),
        }
    }

    async fn notify(&self, _: &str, _: &serde_json::Value) {}
}

// ---------------------------------------------------------------------------------------------
// Digests

/// 128 bits from two SipHash states fed the same bytes (the second after a prefix): two
/// different states share a digest with a probability of about n² / 2¹²⁹. Request ids are
/// kept apart ([`Digest::id`]), so that the digest can be taken again with the ids of
/// identical reports swapped ([`Named`]).
struct Digest {
    first: DefaultHasher,
    second: DefaultHasher,
    /// The ids met, in order: (report, attempt).
    ids: Vec<(u8, u8)>,
}

impl Digest {
    fn new() -> Digest {
        let mut second = DefaultHasher::new();
        second.write_u64(0x9e37_79b9_7f4a_7c15);
        Digest {
            first: DefaultHasher::new(),
            second,
            ids: Vec::new(),
        }
    }

    fn raw128(&self) -> u128 {
        (u128::from(self.first.finish()) << 64) | u128::from(self.second.finish())
    }

    /// A request id, `report-{r}-attempt-{a}`: kept apart.
    fn id(&mut self, id: &str) {
        let parsed = id
            .strip_prefix("report-")
            .and_then(|rest| rest.split_once("-attempt-"))
            .and_then(|(r, a)| Some((r.parse::<u8>().ok()?, a.parse::<u8>().ok()?)));
        match parsed {
            Some(pair) => {
                0xA5u8.hash(self);
                self.ids.push(pair);
            }
            None => id.hash(self),
        }
    }

    /// Another digest, its ids kept apart.
    fn include(&mut self, named: &Named) {
        (named.template, named.ids.len()).hash(self);
        self.ids.extend_from_slice(&named.ids);
    }

    fn named(&self) -> Named {
        Named::new(self.raw128(), self.ids.clone())
    }

    /// The digest with the ids as they are (`Named::under[0]`).
    fn finish128(&self) -> u128 {
        Named::renamed(self.raw128(), &self.ids, RENAMINGS[0])
    }
}

/// The permutations of three reports; the first is the identity.
const RENAMINGS: [[u8; 3]; 6] = [
    [0, 1, 2],
    [1, 0, 2],
    [0, 2, 1],
    [2, 1, 0],
    [1, 2, 0],
    [2, 0, 1],
];

/// A digest with its request ids apart, and the digest under each renaming of the reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Named {
    template: u128,
    ids: Vec<(u8, u8)>,
    under: [u128; 6],
}

impl Named {
    fn renamed(template: u128, ids: &[(u8, u8)], rename: [u8; 3]) -> u128 {
        if ids.is_empty() {
            return template;
        }
        let mut h = Digest::new();
        template.hash(&mut h);
        for (report, attempt) in ids {
            (rename[usize::from(*report)], attempt).hash(&mut h);
        }
        h.raw128()
    }

    fn new(template: u128, ids: Vec<(u8, u8)>) -> Named {
        let under = RENAMINGS.map(|rename| Named::renamed(template, &ids, rename));
        Named {
            template,
            ids,
            under,
        }
    }
}

/// Maps keyed by a [`Digest`] hash no further: its bits are spread already.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ByDigest<V> = HashMap<u128, V, BuildHasherDefault<Spread>>;

impl Hasher for Digest {
    fn write(&mut self, bytes: &[u8]) {
        self.first.write(bytes);
        self.second.write(bytes);
    }

    fn finish(&self) -> u64 {
        self.first.finish()
    }
}

fn hash_group(h: &mut Digest, g: &EndpointGroup) {
    g.arn.hash(h);
    g.listener_arn.hash(h);
    g.traffic_dial.percentage().to_bits().hash(h);
    g.endpoints.len().hash(h);
    for e in &g.endpoints {
        e.id.hash(h);
        e.site.as_ref().map(SiteName::as_str).hash(h);
        e.weight.hash(h);
        (e.health as u8).hash(h);
    }
}

/// Everything of a record but `decided_at_ms` and `facts`. The decision time is the wall
/// clock's: a record only goes stale [`Settings::decision_stale_after`] after it, far longer
/// than any schedule lasts, so no schedule can tell two decision times apart. The facts (a
/// copy of what the deciding report read, for operators) are not kept by the model's store
/// (see [`State::respond`]).
fn hash_record(h: &mut Digest, r: &DecisionRecord) {
    r.split_brain.hash(h);
    h.id(&r.decision_id);
    r.survivor.as_str().hash(h);
    r.loser.as_str().hash(h);
    r.rule.hash(h);
    r.reporter.as_str().hash(h);
    h.id(&r.request_id);
    format!("{:?}", r.mode).hash(h);
    r.closed.as_ref().map(|c| (c.at_ms, &c.by)).hash(h);
}

fn hash_failure(h: &mut Digest, f: &Failure) {
    (f.disposition as u8).hash(h);
    f.message.hash(h);
}

fn hash_result<T>(h: &mut Digest, result: &Result<T, Failure>, ok: impl FnOnce(&mut Digest, &T)) {
    match result {
        Ok(value) => {
            0u8.hash(h);
            ok(h, value);
        }
        Err(failure) => {
            1u8.hash(h);
            hash_failure(h, failure);
        }
    }
}

fn hash_response(h: &mut Digest, response: &Response) {
    match response {
        Response::Topology(r) => hash_result(h, r, |h, t| {
            if let Some(t) = t {
                t.listeners.hash(h);
                t.groups.iter().for_each(|g| hash_group(h, g));
            }
        }),
        Response::Probe(r) => hash_result(h, r, |h, l| (*l as u8).hash(h)),
        Response::Record(r) => hash_result(h, r, |h, recorded| match recorded {
            Recorded::Created => 0u8.hash(h),
            Recorded::Existing(record) => hash_record(h, record),
        }),
        Response::Recorded(r) => hash_result(h, r, |h, record| {
            record.iter().for_each(|record| hash_record(h, record));
        }),
        Response::Removal(r) => hash_result(h, r, |h, removal| {
            (&removal.removed, &removal.already_gone).hash(h);
        }),
        Response::Dial(r) => hash_result(h, r, |_, ()| {}),
        Response::Offline(r) => hash_result(h, r, |h, caches| caches.0.hash(h)),
    }
}

// ---------------------------------------------------------------------------------------------
// What each invocation does: a tree of its states, each found by replaying it from scratch

/// Which invocation: the report, and which attempt of it (its request id). What it does
/// depends on nothing else but the answers it gets, so its tree serves every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    report: ReportKind,
    index: usize,
    attempt: usize,
}

/// What the invariants read of an answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    survivor: Option<SiteName>,
    fenced: Option<SiteName>,
    decision_id: Option<String>,
    digest: Named,
}

impl Answer {
    fn of(decision: &Report) -> Answer {
        let alert = decision.alerts.first();
        let survivor = alert.and_then(|a| a.survivor.clone());
        let fenced = alert.and_then(|a| a.fenced.clone());
        let decision_id = alert.and_then(|a| a.decision.as_ref().map(|d| d.decision_id.clone()));
        let mut h = Digest::new();
        decision.status.hash(&mut h);
        decision.alerts.len().hash(&mut h);
        survivor.as_ref().map(SiteName::as_str).hash(&mut h);
        fenced.as_ref().map(SiteName::as_str).hash(&mut h);
        match &decision_id {
            Some(id) => h.id(id),
            None => 0u8.hash(&mut h),
        }
        Answer {
            status: decision.status,
            survivor,
            fenced,
            decision_id,
            digest: h.named(),
        }
    }
}

/// One state of an invocation: the calls it waits on, or its answer.
struct Node {
    /// The state before, and the call and answer that led here.
    parent: Option<(usize, Call, Response)>,
    waiting: Vec<(Call, Args)>,
    answer: Option<Answer>,
    /// An invariant the invocation broke on its way here.
    violation: Option<String>,
    /// By digest of the call and its answer.
    children: ByDigest<usize>,
    /// The accelerator as the invocation read it, without health.
    read: Option<u128>,
    /// The decision the invocation carries out, once `record` or `recorded` gave it one: its
    /// survivor, loser and id.
    adopted: Option<Named>,
    /// Every call and answer that led here.
    history: u128,
    class: usize,
}

/// States of one invocation taken as one (see [`Memo::class_of`]), and what each call and
/// answer leads to from them: the same class from every member, or the check fails.
struct Class {
    named: Named,
    members: Vec<usize>,
    edges: Vec<(Edge, usize)>,
    edge_index: ByDigest<usize>,
}

/// One invocation's states.
struct Tree {
    id: Identity,
    nodes: Vec<Node>,
    classes: Vec<Class>,
    class_index: ByDigest<usize>,
}

/// A call answered: the answer's digest, and for a read, what it read without health.
#[derive(Debug, Clone)]
struct Edge {
    call: Call,
    response: Response,
    key: u128,
    read: Option<u128>,
}

fn edge_key(call: Call, response: &Response) -> u128 {
    let mut h = Digest::new();
    call.hash(&mut h);
    hash_response(&mut h, response);
    h.finish128()
}

/// A call's arguments but the decision time and the facts (see [`hash_record`]).
fn hash_args(h: &mut Digest, args: &Args) {
    match args {
        Args::None => 0u8.hash(h),
        Args::Record {
            proposal,
            replacing,
        } => {
            1u8.hash(h);
            hash_record(h, proposal);
            match replacing {
                Some(id) => h.id(id),
                None => 0u8.hash(h),
            }
        }
        Args::Recorded { split_brain } => (2u8, split_brain).hash(h),
        Args::Remove { group, ids } => (3u8, group, ids).hash(h),
        Args::Dial { group, dial } => (4u8, group, dial.percentage().to_bits()).hash(h),
        Args::TakeOffline { site, remote } => (5u8, site.as_str(), remote.as_str()).hash(h),
    }
}

/// An invocation paused in one of its states: its first next state needs no replay.
struct Live<'a> {
    future: Pin<Box<dyn Future<Output = Report> + 'a>>,
    board: Arc<Mutex<Board>>,
}

/// The trees of the invocations met so far, and a world to answer calls with.
struct Memo<'a> {
    dns: AcceleratorDns,
    requests: &'a Requests,
    settings: &'a Settings,
    /// Holds the webhook secret the requests carry.
    secret: &'a FakeWorld,
    /// By tree and state.
    live: HashMap<(usize, usize), Live<'a>>,
    /// Answers the calls of a step (see [`State::respond`]).
    scratch: FakeWorld,
    trees: Vec<Tree>,
    tree_index: HashMap<Identity, usize>,
    /// Invocation states found, each by one replay of the real handler.
    replays: u64,
}

impl<'a> Memo<'a> {
    fn new(requests: &'a Requests, settings: &'a Settings, secret: &'a FakeWorld) -> Memo<'a> {
        Memo {
            dns: AcceleratorDns::parse(DNS).unwrap_or_else(|e| panic!("{DNS}: {e}")),
            requests,
            settings,
            secret,
            live: HashMap::new(),
            scratch: FakeWorld::new(),
            trees: Vec::new(),
            tree_index: HashMap::new(),
            replays: 0,
        }
    }

    /// The tree of invocation `id`, its first state (index 0) replayed.
    fn tree_of(&mut self, id: Identity) -> Result<usize, String> {
        if let Some(&tree) = self.tree_index.get(&id) {
            return Ok(tree);
        }
        self.trees.push(Tree {
            id,
            nodes: Vec::new(),
            classes: Vec::new(),
            class_index: ByDigest::default(),
        });
        let tree = self.trees.len() - 1;
        self.tree_index.insert(id, tree);
        let (root, live) = self.replay(tree, None, Vec::new(), None)?;
        self.add(tree, root, live)?;
        Ok(tree)
    }

    fn node(&self, tree: usize, node: usize) -> Result<&Node, String> {
        self.trees
            .get(tree)
            .and_then(|t| t.nodes.get(node))
            .ok_or_else(|| format!("no state {node} in tree {tree}"))
    }

    /// The state after `edge` from state `parent`; checks that every state of `parent`'s
    /// class goes to the same class.
    fn child(&mut self, tree: usize, parent: usize, edge: Edge) -> Result<usize, String> {
        let child = self.concrete_child(tree, parent, &edge)?;
        let t = &mut self.trees[tree];
        let (parent_class, child_class) = (t.nodes[parent].class, t.nodes[child].class);
        let class = &mut t.classes[parent_class];
        if let Some(&known) = class.edge_index.get(&edge.key) {
            return if class.edges[known].1 == child_class {
                Ok(child)
            } else {
                Err(diverged(t.id, parent, edge.call))
            };
        }
        class.edge_index.insert(edge.key, class.edges.len());
        class.edges.push((edge.clone(), child_class));
        let members = class.members.clone();
        for member in members.into_iter().filter(|m| *m != parent) {
            let other = self.concrete_child(tree, member, &edge)?;
            if self.node(tree, other)?.class != child_class {
                return Err(diverged(self.trees[tree].id, member, edge.call));
            }
        }
        Ok(child)
    }

    /// The state after `edge` from `parent`, replayed if new.
    fn concrete_child(&mut self, tree: usize, parent: usize, edge: &Edge) -> Result<usize, String> {
        let Edge {
            call,
            ref response,
            key,
            read,
        } = *edge;
        let t = &self.trees[tree];
        let from = t
            .nodes
            .get(parent)
            .ok_or_else(|| format!("no state {parent} in tree {tree}"))?;
        if let Some(&child) = from.children.get(&key) {
            return Ok(child);
        }
        // What the child read, and the decision it carries out.
        let read = read.or(from.read);
        let from_history = from.history;
        let adopted = match (call, response) {
            (Call::Record, Response::Record(Ok(Recorded::Created))) => {
                from.waiting.iter().find_map(|(_, args)| match args {
                    Args::Record { proposal, .. } => Some(decision_summary(proposal)),
                    _ => None,
                })
            }
            (Call::Record, Response::Record(Ok(Recorded::Existing(record)))) => {
                Some(decision_summary(record))
            }
            (Call::Recorded, Response::Recorded(Ok(Some(record)))) => {
                Some(decision_summary(record))
            }
            _ => from.adopted.clone(),
        };
        let mut path = vec![(call, response.clone())];
        let mut at = parent;
        while let Some((up, call, response)) = t.nodes.get(at).and_then(|n| n.parent.as_ref()) {
            path.push((*call, response.clone()));
            at = *up;
        }
        path.reverse();
        let history = {
            let mut h = Digest::new();
            (from_history, key).hash(&mut h);
            h.finish128()
        };
        let (mut node, live) =
            self.replay(tree, Some((parent, call, response.clone())), path, read)?;
        node.adopted = adopted;
        node.history = history;
        let child = self.add(tree, node, live)?;
        self.trees[tree].nodes[parent].children.insert(key, child);
        Ok(child)
    }

    /// Adds a state to its tree and its class; a class with calls answered already must lead
    /// the newcomer where it led the others.
    fn add(&mut self, tree: usize, node: Node, live: Option<Live<'a>>) -> Result<usize, String> {
        let t = &mut self.trees[tree];
        let index = t.nodes.len();
        let named = Memo::class_of(&node);
        let class_key = named.under[0];
        t.nodes.push(node);
        if let Some(live) = live {
            self.live.insert((tree, index), live);
        }
        let t = &mut self.trees[tree];
        let class = match t.class_index.get(&class_key) {
            Some(&class) => class,
            None => {
                t.classes.push(Class {
                    named,
                    members: Vec::new(),
                    edges: Vec::new(),
                    edge_index: ByDigest::default(),
                });
                let class = t.classes.len() - 1;
                t.class_index.insert(class_key, class);
                class
            }
        };
        t.nodes[index].class = class;
        t.classes[class].members.push(index);
        let edges: Vec<(Edge, usize)> = t.classes[class].edges.clone();
        for (edge, expected) in edges {
            let other = self.concrete_child(tree, index, &edge)?;
            if self.node(tree, other)?.class != expected {
                return Err(diverged(self.trees[tree].id, index, edge.call));
            }
        }
        Ok(index)
    }

    /// The class of a state. Until the invocation proposes a decision, the state alone. Then
    /// what it read (without health) and the calls it waits on with their arguments (its
    /// proposal among them); once `record` or `recorded` gave it the decision to carry out,
    /// what it read, that decision and the calls it waits on. That is, health, the probe's
    /// answer and the order they came in have done all they do once the verdict is proposed,
    /// and the proposal and what came before (a rule, a removal that found an endpoint gone)
    /// once the decision is known. That is not assumed: every call and answer from a class
    /// must lead every member to one class, and an answer to one answer ([`Memo::child`],
    /// [`Memo::add`]); two members that go apart fail the check.
    fn class_of(node: &Node) -> Named {
        let mut h = Digest::new();
        node.violation.hash(&mut h);
        let waits_on_decision = node
            .waiting
            .iter()
            .any(|(call, _)| matches!(call, Call::Record | Call::Recorded));
        match (&node.answer, &node.adopted) {
            (Some(answer), _) => {
                0u8.hash(&mut h);
                h.include(&answer.digest);
            }
            (None, Some(adopted)) => {
                (1u8, node.read).hash(&mut h);
                h.include(adopted);
            }
            (None, None) if waits_on_decision => (2u8, node.read).hash(&mut h),
            (None, None) => (3u8, node.history).hash(&mut h),
        }
        if node.answer.is_none() {
            for (call, args) in &node.waiting {
                call.hash(&mut h);
                hash_args(&mut h, args);
            }
        }
        h.named()
    }

    /// The invocation started: the real [`handle`], paused before its first poll.
    fn start(&mut self, id: Identity) -> Live<'a> {
        self.replays += 1;
        let board = Arc::new(Mutex::new(Board::default()));
        let world = Replayed {
            board: Arc::clone(&board),
            secret: self.secret,
        };
        // Far enough that no deadline passes: the runtime's timers are never driven anyway.
        let deadline = Instant::now() + Duration::from_secs(3600);
        let invocation = Invocation {
            request_id: format!("report-{}-attempt-{}", id.index, id.attempt),
            deadline,
            answer_by: deadline,
        };
        let (headers, body) = self.requests.of(id.report);
        let settings = self.settings;
        let future =
            Box::pin(async move { handle(&world, settings, &invocation, headers, body).await });
        Live { future, board }
    }

    /// The state `path` leads to: the parent's paused invocation goes on with the last
    /// answer, or, when it went on elsewhere already, the real [`handle`] runs from the start
    /// with every answer of `path`, until it waits for more or answers.
    fn replay(
        &mut self,
        tree: usize,
        parent: Option<(usize, Call, Response)>,
        path: Vec<(Call, Response)>,
        read: Option<u128>,
    ) -> Result<(Node, Option<Live<'a>>), String> {
        let id = self.trees[tree].id;
        let mut cx = Context::from_waker(Waker::noop());
        let paused = parent
            .as_ref()
            .and_then(|(p, _, _)| self.live.remove(&(tree, *p)));
        let (mut live, todo, mut answer) = match paused {
            Some(live) => (live, path.len().saturating_sub(1), None),
            None => {
                let mut live = self.start(id);
                let answer = match live.future.as_mut().poll(&mut cx) {
                    Poll::Ready(decision) => Some(decision),
                    Poll::Pending => None,
                };
                (live, 0, answer)
            }
        };
        for (at, (call, response)) in path.iter().enumerate().skip(todo) {
            if answer.is_some() {
                return Err(format!("{id:?} answered before call {at} of its history"));
            }
            if !lock(&live.board).grant(*call, response.clone()) {
                return Err(format!(
                    "{id:?} does not wait for {call:?} at call {at} of its history: the replay diverged"
                ));
            }
            if let Poll::Ready(decision) = live.future.as_mut().poll(&mut cx) {
                answer = Some(decision);
            }
            if lock(&live.board).grant.is_some() {
                return Err(format!("{id:?} did not take the answer to {call:?}"));
            }
        }
        // In the order of the calls, not of the polls (`select!` polls in a random order).
        let mut waiting: Vec<(Call, Args)> = lock(&live.board)
            .awaited()
            .map(|w| (w.call, w.args.clone()))
            .collect();
        waiting.sort_by_key(|(call, _)| *call);
        let violation = probe_violation(&waiting, &path);
        let node = Node {
            parent,
            waiting,
            answer: answer.as_ref().map(Answer::of),
            violation,
            children: ByDigest::default(),
            read,
            adopted: None,
            history: 0,
            class: 0,
        };
        Ok((node, answer.is_none().then_some(live)))
    }
}

/// What a record decides: survivor, loser, and which decision.
fn decision_summary(record: &DecisionRecord) -> Named {
    let mut h = Digest::new();
    (record.survivor.as_str(), record.loser.as_str()).hash(&mut h);
    h.id(&record.decision_id);
    h.named()
}

fn diverged(id: Identity, node: usize, call: Call) -> String {
    format!(
        "model check: {id:?} state {node} is classed with states that answer {call:?} otherwise: the class (Memo::class_of) is too coarse"
    )
}

/// Invariant (6): a verdict that needs the probe follows its answer; a misconfigured probe is
/// never a verdict.
fn probe_violation(waiting: &[(Call, Args)], path: &[(Call, Response)]) -> Option<String> {
    let probed = path.iter().find_map(|(_, response)| match response {
        Response::Probe(Ok(Liveness::Alive)) => Some(ProbeAnswer::Alive),
        Response::Probe(Ok(Liveness::Unreachable)) => Some(ProbeAnswer::Unreachable),
        Response::Probe(Err(_)) => Some(ProbeAnswer::Misconfigured),
        _ => None,
    });
    waiting.iter().find_map(|(_, args)| {
        let Args::Record { proposal, .. } = args else {
            return None;
        };
        let needs = match proposal.rule.as_str() {
            "reporter_preferred" | "preferred_site_alive" => Some(ProbeAnswer::Alive),
            "preferred_site_unreachable" => Some(ProbeAnswer::Unreachable),
            _ => None,
        };
        (needs.is_some() && probed != needs).then(|| {
            format!(
                "(6) proposes rule {} after the probe answered {probed:?}",
                proposal.rule
            )
        })
    })
}

// ---------------------------------------------------------------------------------------------
// The shared world, and one step of a schedule

/// The two webhook requests, as Alertmanager sends them.
struct Requests {
    a_reports_b: (HeaderMap, Vec<u8>),
    b_reports_a: (HeaderMap, Vec<u8>),
}

impl Requests {
    fn new() -> Requests {
        let read = |report: ReportKind| {
            let request = FunctionUrlRequest::from_event(authorized(report.event()))
                .unwrap_or_else(|e| panic!("{report:?}: {e}"));
            (request.headers, request.body)
        };
        Requests {
            a_reports_b: read(ReportKind::AReportsB),
            b_reports_a: read(ReportKind::BReportsA),
        }
    }

    fn of(&self, report: ReportKind) -> &(HeaderMap, Vec<u8>) {
        match report {
            ReportKind::AReportsB => &self.a_reports_b,
            ReportKind::BReportsA => &self.b_reports_a,
        }
    }
}

/// One step: an invocation's call answered, as the environment chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    invocation: usize,
    call: Call,
    variant: Variant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    /// A resend not sent (yet).
    Idle,
    Running(usize),
    Done(usize),
}

/// What the invocations share: [`FakeWorld`]'s state, with the digests of its parts and what
/// invariant (5) finds in it, worked out once per world.
struct Shared {
    groups: Vec<EndpointGroup>,
    groups_digest: u128,
    broken: Option<String>,
    backups: BTreeMap<(String, String), &'static str>,
    backups_digest: u128,
    records: BTreeMap<String, DecisionRecord>,
    records_named: Named,
}

impl Shared {
    fn new(
        groups: Vec<EndpointGroup>,
        backups: BTreeMap<(String, String), &'static str>,
        records: BTreeMap<String, DecisionRecord>,
    ) -> Shared {
        let mut shared = Shared {
            groups: Vec::new(),
            groups_digest: 0,
            broken: None,
            backups: BTreeMap::new(),
            backups_digest: 0,
            records: BTreeMap::new(),
            records_named: Named::new(0, Vec::new()),
        };
        shared.set_groups(groups);
        shared.set_backups(backups);
        shared.set_records(records);
        shared
    }

    fn set_groups(&mut self, groups: Vec<EndpointGroup>) {
        let mut h = Digest::new();
        groups.iter().for_each(|g| hash_group(&mut h, g));
        self.groups = groups;
        self.groups_digest = h.finish128();
        self.broken = self.broken();
    }

    fn set_backups(&mut self, backups: BTreeMap<(String, String), &'static str>) {
        let mut h = Digest::new();
        backups.hash(&mut h);
        self.backups = backups;
        self.backups_digest = h.finish128();
    }

    fn set_records(&mut self, records: BTreeMap<String, DecisionRecord>) {
        let mut h = Digest::new();
        records.values().for_each(|r| hash_record(&mut h, r));
        self.records = records;
        self.records_named = h.named();
    }

    /// The world's digest, its request ids renamed by `RENAMINGS[renaming]`.
    fn under(&self, renaming: usize) -> u128 {
        mix(
            mix(self.groups_digest, self.backups_digest),
            self.records_named.under[renaming],
        )
    }

    /// This world with other groups, backups or records (the rest shared).
    fn with(
        &self,
        groups: Option<Vec<EndpointGroup>>,
        backups: Option<BTreeMap<(String, String), &'static str>>,
        records: Option<BTreeMap<String, DecisionRecord>>,
    ) -> Rc<Shared> {
        let mut next = Shared {
            groups: Vec::new(),
            groups_digest: self.groups_digest,
            broken: self.broken.clone(),
            backups: BTreeMap::new(),
            backups_digest: self.backups_digest,
            records: BTreeMap::new(),
            records_named: self.records_named.clone(),
        };
        match groups {
            Some(groups) => next.set_groups(groups),
            None => next.groups = self.groups.clone(),
        }
        match backups {
            Some(backups) => next.set_backups(backups),
            None => next.backups = self.backups.clone(),
        }
        match records {
            Some(records) => next.set_records(records),
            None => next.records = self.records.clone(),
        }
        Rc::new(next)
    }

    fn topology(&self) -> Topology {
        let mut listeners: Vec<String> = Vec::new();
        for g in &self.groups {
            if !listeners.contains(&g.listener_arn) {
                listeners.push(g.listener_arn.clone());
            }
        }
        Topology {
            accelerator_arn: "arn:acc".to_owned(),
            listeners,
            groups: self.groups.clone(),
        }
    }

    /// Invariant (5): no group emptied, no listener to nobody.
    fn broken(&self) -> Option<String> {
        if let Some(g) = self.groups.iter().find(|g| g.endpoints.is_empty()) {
            return Some(format!("(5) group {} emptied", g.arn));
        }
        self.topology()
            .traffic()
            .into_iter()
            .find(|(_, to)| to.is_empty())
            .map(|(listener, _)| format!("(5) listener {listener} goes to nobody"))
    }
}

/// A state of a schedule: the world, the fault left, and where each invocation is in its
/// tree.
#[derive(Clone)]
struct State {
    shared: Rc<Shared>,
    armed: Armed,
    /// Creates that succeeded.
    created: u8,
    /// ReportKind `r`'s attempt `a` is invocation `r * ATTEMPTS + a`.
    invocations: Vec<Status>,
}

/// One more digest into a digest of digests (a multiply-xorshift round, order-sensitive).
fn mix(acc: u128, value: u128) -> u128 {
    let x =
        (acc ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ acc.rotate_left(41);
    x ^ (x >> 67)
}

/// Each site healthy or not, at a read.
const HEALTH: [(bool, bool); 4] = [(true, true), (true, false), (false, true), (false, false)];

/// A [`FakeWorld`] call: it never waits.
fn now<T>(future: impl Future<Output = T>) -> Result<T, String> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err("the fake world waited".to_owned()),
    }
}

impl State {
    fn initial(input: &Input<'_>) -> State {
        let world = FakeWorld::new();
        let mut invocations = vec![Status::Idle; input.reports.len() * ATTEMPTS];
        for report in 0..input.reports.len() {
            invocations[report * ATTEMPTS] = Status::Running(0);
        }
        State {
            shared: Rc::new(Shared::new(
                (input.scenario.groups)(),
                std::mem::take(&mut *lock(&world.backups)),
                BTreeMap::new(),
            )),
            armed: Armed::with(input.fault),
            created: 0,
            invocations,
        }
    }

    /// The state's digest, the same for states that differ only by swapping reports of the
    /// same direction (see [`Input::renamings`]).
    fn key(&self, memo: &Memo<'_>, input: &Input<'_>) -> Result<u128, String> {
        let mut parts: Vec<(u8, Option<&Named>)> = Vec::with_capacity(self.invocations.len());
        for (i, status) in self.invocations.iter().enumerate() {
            parts.push(match status {
                Status::Idle => (0, None),
                Status::Running(node) => {
                    let tree = &memo.trees[input.trees[i]];
                    let class = tree.nodes.get(*node).ok_or("no such state")?.class;
                    (1, Some(&tree.classes[class].named))
                }
                // A finished invocation does nothing more: only what the invariants read of
                // its answer counts.
                Status::Done(node) => {
                    let answer = memo.node(input.trees[i], *node)?.answer.as_ref();
                    (
                        2,
                        Some(
                            &answer
                                .ok_or("a finished invocation without an answer")?
                                .digest,
                        ),
                    )
                }
            });
        }
        let mut h = Digest::new();
        (self.armed, self.created).hash(&mut h);
        let faults = h.raw128();
        let mut best = u128::MAX;
        let mut slots = vec![(0u8, 0u128); parts.len()];
        for &renaming in &input.renamings {
            let rename = RENAMINGS[renaming];
            for (i, (tag, named)) in parts.iter().enumerate() {
                let (report, attempt) = (i / ATTEMPTS, i % ATTEMPTS);
                let slot = usize::from(rename[report]) * ATTEMPTS + attempt;
                slots[slot] = (*tag, named.map_or(0, |named| named.under[renaming]));
            }
            // The parts are digests already: mixing them in order is enough.
            let mut key = mix(self.shared.under(renaming), faults);
            for (tag, digest) in &slots {
                key = mix(mix(key, u128::from(*tag)), *digest);
            }
            best = best.min(key);
        }
        Ok(best)
    }

    /// Invariant (5), and what the invocations broke on their way here.
    fn violation(&self, memo: &Memo<'_>, input: &Input<'_>) -> Result<Option<String>, String> {
        if let Some(broken) = &self.shared.broken {
            return Ok(Some(broken.clone()));
        }
        for (i, status) in self.invocations.iter().enumerate() {
            if let Status::Running(node) | Status::Done(node) = status {
                let node = memo.node(input.trees[i], *node)?;
                if let Some(violation) = &node.violation {
                    return Ok(Some(format!("invocation {i}: {violation}")));
                }
                if node.answer.is_none() && node.waiting.is_empty() {
                    return Ok(Some(format!(
                        "invocation {i} is stuck: it waits for no call the scheduler can answer"
                    )));
                }
            }
        }
        Ok(None)
    }

    /// How a call may go: with a fault armed, it may strike this call.
    fn variants(&self, call: Call, args: &Args) -> Vec<Variant> {
        let fault = |armed: bool, after_write: bool| match (armed, after_write) {
            (false, _) => vec![Variant::Succeed],
            (true, true) => vec![Variant::Succeed, Variant::Fail, Variant::FailAfterWrite],
            (true, false) => vec![Variant::Succeed, Variant::Fail],
        };
        match call {
            Call::Topology => HEALTH
                .into_iter()
                .map(|(a_healthy, b_healthy)| Variant::Health {
                    a_healthy,
                    b_healthy,
                })
                .collect(),
            Call::Probe => PROBE_ANSWERS.into_iter().map(Variant::Answer).collect(),
            Call::Record => fault(self.armed.record, true),
            Call::Recorded => vec![Variant::Succeed],
            Call::Traffic => {
                let second = self.shared.groups.get(1).map(|g| g.arn.as_str());
                let on_second = args.group().is_some() && args.group() == second;
                fault(self.armed.second_group && on_second, false)
            }
            Call::TakeOffline => fault(self.armed.take_offline, false),
        }
    }

    /// The steps to explore from here. A step that touches nothing another step reads or
    /// writes, and that no invariant sees before the end, is explored alone (an ample set):
    /// every order of it and the others ends in the same states. Those are the probe's answer
    /// once the read is done, and taking a backup offline when no fault is left to strike it
    /// (nothing reads the backups; every take-offline writes the same answer). The probe
    /// beside the read answers as part of the read's step when it comes first.
    fn steps(&self, memo: &Memo<'_>, input: &Input<'_>) -> Result<Vec<Step>, String> {
        let mut running = Vec::new();
        for (invocation, status) in self.invocations.iter().enumerate() {
            if let Status::Running(node) = status {
                running.push((invocation, memo.node(input.trees[invocation], *node)?));
            }
        }
        let alone = running
            .iter()
            .position(|(_, node)| match node.waiting.as_slice() {
                [(Call::Probe, _)] => true,
                [(Call::TakeOffline, _)] => !self.armed.take_offline,
                _ => false,
            });
        if let Some(alone) = alone {
            running = vec![running[alone]];
        }
        let mut steps = Vec::new();
        for (invocation, node) in running {
            let reads = node.waiting.iter().any(|(call, _)| *call == Call::Topology);
            for (call, args) in &node.waiting {
                if *call == Call::Probe && reads {
                    for answer in PROBE_ANSWERS {
                        for (a_healthy, b_healthy) in HEALTH {
                            steps.push(Step {
                                invocation,
                                call: Call::Probe,
                                variant: Variant::ProbeThenRead {
                                    answer,
                                    a_healthy,
                                    b_healthy,
                                },
                            });
                        }
                    }
                    continue;
                }
                for variant in self.variants(*call, args) {
                    steps.push(Step {
                        invocation,
                        call: *call,
                        variant,
                    });
                }
            }
        }
        Ok(steps)
    }

    /// The state after `step`.
    fn apply(&self, step: Step, memo: &mut Memo<'_>, input: &Input<'_>) -> Result<State, String> {
        let i = step.invocation;
        let Status::Running(mut node) = self.invocations[i] else {
            return Err(format!("invocation {i} is not running"));
        };
        let tree = input.trees[i];
        let calls = match step.variant {
            Variant::ProbeThenRead {
                answer,
                a_healthy,
                b_healthy,
            } => vec![
                (Call::Probe, Variant::Answer(answer)),
                (
                    Call::Topology,
                    Variant::Health {
                        a_healthy,
                        b_healthy,
                    },
                ),
            ],
            variant => vec![(step.call, variant)],
        };
        let mut next = self.clone();
        for (call, variant) in calls {
            let from = memo.node(tree, node)?;
            if from.answer.is_some() {
                return Err(format!("invocation {i} answered before its {call:?}"));
            }
            let args = from
                .waiting
                .iter()
                .find(|(waits, _)| *waits == call)
                .map(|(_, args)| args.clone())
                .ok_or_else(|| format!("invocation {i} does not wait for {call:?}"))?;
            let groups_digest = next.shared.groups_digest;
            let response = next.respond(call, &args, variant, memo)?;
            // A read is the world's groups with this read's health: their digests say it.
            let edge = match variant {
                Variant::Health {
                    a_healthy,
                    b_healthy,
                } => {
                    let mut h = Digest::new();
                    (call, groups_digest, a_healthy, b_healthy).hash(&mut h);
                    Edge {
                        call,
                        response,
                        key: h.finish128(),
                        read: Some(groups_digest),
                    }
                }
                _ => Edge {
                    call,
                    key: edge_key(call, &response),
                    response,
                    read: None,
                },
            };
            node = memo.child(tree, node, edge)?;
        }
        match &memo.node(tree, node)?.answer {
            None => next.invocations[i] = Status::Running(node),
            Some(answer) => {
                next.invocations[i] = Status::Done(node);
                // Alertmanager resends a 5xx, after the answer.
                if answer.status >= 500 && i % ATTEMPTS + 1 < ATTEMPTS {
                    next.invocations[i + 1] = Status::Running(0);
                }
            }
        }
        Ok(next)
    }

    /// The world's answer to `call`, by [`FakeWorld`] (with the fault and the health this
    /// step chose), and the world after it.
    fn respond(
        &mut self,
        call: Call,
        args: &Args,
        variant: Variant,
        memo: &Memo<'_>,
    ) -> Result<Response, String> {
        let world = &memo.scratch;
        let deadline = Instant::now();
        let shared = Rc::clone(&self.shared);
        let response = match (call, args, variant) {
            (
                Call::Topology,
                _,
                Variant::Health {
                    a_healthy,
                    b_healthy,
                },
            ) => {
                *lock(&world.groups) = shared.groups.clone();
                let mut topology = now(world.topology(&memo.dns))?;
                let health = |healthy: bool| {
                    if healthy {
                        Health::Healthy
                    } else {
                        Health::Unhealthy
                    }
                };
                if let Ok(Some(topology)) = &mut topology {
                    for e in topology
                        .groups
                        .iter_mut()
                        .flat_map(|g| g.endpoints.iter_mut())
                    {
                        match e.site.as_ref().map(SiteName::as_str) {
                            Some("site-a") => e.health = health(a_healthy),
                            Some("site-b") => e.health = health(b_healthy),
                            _ => {}
                        }
                    }
                }
                Response::Topology(topology)
            }
            (Call::Probe, _, Variant::Answer(answer)) => Response::Probe(match answer {
                ProbeAnswer::Alive => Ok(Liveness::Alive),
                ProbeAnswer::Unreachable => Ok(Liveness::Unreachable),
                ProbeAnswer::Misconfigured => Err(Failure::fatal(
                    "probe: invalid peer certificate: UnknownIssuer",
                )),
            }),
            (Call::Record, Args::Record { .. }, Variant::Fail) => {
                self.armed.record = false;
                Response::Record(Err(Failure::transient("DynamoDB: ThrottlingException")))
            }
            (
                Call::Record,
                Args::Record {
                    proposal,
                    replacing,
                },
                _,
            ) => {
                // The model's store keeps no facts (a copy of what the deciding report read,
                // for operators): no code reads them back, and two decisions that differ only
                // in them are then one state.
                let proposal = DecisionRecord {
                    facts: serde_json::Value::Null,
                    ..(**proposal).clone()
                };
                *lock(&world.records) = shared.records.clone();
                let recorded = now(world.record(&proposal, replacing.as_deref()))?;
                if matches!(recorded, Ok(Recorded::Created)) {
                    self.created += 1;
                    let records = std::mem::take(&mut *lock(&world.records));
                    self.shared = shared.with(None, None, Some(records));
                }
                if variant == Variant::FailAfterWrite {
                    self.armed.record = false;
                    Response::Record(Err(Failure::transient("DynamoDB: request timed out")))
                } else {
                    Response::Record(recorded)
                }
            }
            (Call::Recorded, Args::Recorded { split_brain }, _) => {
                *lock(&world.records) = shared.records.clone();
                Response::Recorded(now(world.recorded(split_brain))?)
            }
            (Call::Traffic, _, Variant::Fail) => {
                self.armed.second_group = false;
                let failure =
                    Failure::transient("TransactionInProgressException past the retry budget");
                match args {
                    Args::Dial { .. } => Response::Dial(Err(failure)),
                    _ => Response::Removal(Err(failure)),
                }
            }
            (Call::Traffic, Args::Remove { group, ids }, _) => {
                *lock(&world.groups) = shared.groups.clone();
                let removal = now(world.remove_endpoints(group, ids, deadline))?;
                let groups = std::mem::take(&mut *lock(&world.groups));
                self.shared = shared.with(Some(groups), None, None);
                Response::Removal(removal)
            }
            (Call::Traffic, Args::Dial { group, dial }, _) => {
                *lock(&world.groups) = shared.groups.clone();
                let set = now(world.set_traffic_dial(group, *dial, deadline))?;
                let groups = std::mem::take(&mut *lock(&world.groups));
                self.shared = shared.with(Some(groups), None, None);
                Response::Dial(set)
            }
            (Call::TakeOffline, Args::TakeOffline { .. }, Variant::Fail) => {
                self.armed.take_offline = false;
                Response::Offline(Err(Failure::transient(
                    "take-offline failed for some caches: work=ISPN000000",
                )))
            }
            (Call::TakeOffline, Args::TakeOffline { site, remote }, _) => {
                *lock(&world.backups) = shared.backups.clone();
                let offline = now(world.take_offline(site, remote))?;
                let backups = std::mem::take(&mut *lock(&world.backups));
                self.shared = shared.with(None, Some(backups), None);
                Response::Offline(offline)
            }
            (call, args, variant) => {
                return Err(format!("no answer to {call:?} {args:?} {variant:?}"));
            }
        };
        Ok(response)
    }
}

/// The invariants of a finished schedule; its end state when they hold.
fn check_end(state: &State, memo: &Memo<'_>, input: &Input<'_>) -> Result<String, String> {
    let reports = input.reports;
    let shared = &state.shared;
    // (4) One decision per split-brain: one key, created once.
    if shared.records.len() > 1 || state.created > 1 {
        return Err(format!(
            "(4) {} records, {} creates for one split-brain",
            shared.records.len(),
            state.created
        ));
    }
    let record = shared.records.values().next();
    let mut answers: Vec<Option<&Answer>> = Vec::new();
    for (i, status) in state.invocations.iter().enumerate() {
        answers.push(match status {
            Status::Done(node) => memo.node(input.trees[i], *node)?.answer.as_ref(),
            Status::Running(_) => return Err(format!("invocation {i} never answered")),
            Status::Idle => None,
        });
    }
    // Each report's last answer, after its resends.
    let finals: Vec<u16> = (0..reports.len())
        .map(|r| {
            (0..ATTEMPTS)
                .rev()
                .find_map(|a| answers[r * ATTEMPTS + a])
                .map_or(0, |answer| answer.status)
        })
        .collect();
    let all_failed = finals.iter().all(|s| *s >= 500);
    for (i, answer) in answers.iter().enumerate() {
        let Some(answer) = answer else { continue };
        let who = format!(
            "report {} ({:?}) attempt {}",
            i / ATTEMPTS,
            reports[i / ATTEMPTS],
            i % ATTEMPTS
        );
        if let Some(survivor) = &answer.survivor {
            // (3) Every report that fenced carried out the recorded decision.
            let Some(record) = record else {
                return Err(format!(
                    "(3) {who} kept {survivor} with no decision recorded"
                ));
            };
            if *survivor != record.survivor
                || answer.fenced.as_ref() != Some(&record.loser)
                || answer.decision_id.as_deref() != Some(record.decision_id.as_str())
            {
                return Err(format!(
                    "(3) {who} kept {survivor} ({:?}), the record keeps {} ({})",
                    answer.decision_id, record.survivor, record.decision_id
                ));
            }
        }
        // (2) A 2xx for a fence: the survivor's backup to the loser is offline.
        if answer.status < 300
            && answer.decision_id.is_some()
            && let Some(record) = record
        {
            let key = (record.survivor.to_string(), record.loser.to_string());
            if shared.backups.get(&key) != Some(&"offline") {
                return Err(format!(
                    "(2) {who} answered {} but {}'s backup to {} is {:?}",
                    answer.status,
                    record.survivor,
                    record.loser,
                    shared.backups.get(&key)
                ));
            }
        }
    }
    // (1) Traffic to the survivor only, never to nobody, unless every report ended 5xx (then
    // (5) holds: nobody was left without traffic).
    match record {
        Some(record) if !all_failed => {
            let violations = shared
                .topology()
                .check_fenced(&record.survivor, &record.loser);
            if !violations.is_empty() {
                return Err(format!(
                    "(1) answers {finals:?}, yet: {}",
                    violations
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
        }
        None if !all_failed => {
            return Err(format!("(1) answers {finals:?} with no decision recorded"));
        }
        _ => {}
    }
    // (3) Only the recorded survivor's backup to the loser ever goes offline.
    for ((from, to), backup) in &shared.backups {
        let allowed = record.is_some_and(|r| r.survivor.as_str() == from && r.loser.as_str() == to);
        if *backup == "offline" && !allowed {
            return Err(format!(
                "(3) {from}'s backup to {to} went offline; the record: {:?}",
                record.map(|r| (&r.survivor, &r.loser))
            ));
        }
    }
    let groups: Vec<(&str, f32, Vec<&str>)> = shared
        .groups
        .iter()
        .map(|g| {
            (
                g.arn.as_str(),
                g.traffic_dial.percentage(),
                g.endpoints.iter().map(|e| e.id.as_str()).collect(),
            )
        })
        .collect();
    Ok(format!(
        "{reports:?} {groups:?} {:?} {:?} {finals:?}",
        shared.backups,
        record.map(|r| r.survivor.as_str())
    ))
}

// ---------------------------------------------------------------------------------------------
// The search: depth first over the states, each state once

#[derive(Debug, Default, Clone)]
struct Figures {
    /// Complete schedules (every interleaving of every choice) the states stand for.
    schedules: u128,
    states: u64,
    /// States where every report has answered.
    ends: u64,
    /// Distinct end states (the accelerator, the backups, the decision, the answers).
    end_states: BTreeSet<String>,
    violations: Vec<String>,
    violation_count: u64,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.schedules = self.schedules.saturating_add(other.schedules);
        self.states += other.states;
        self.ends += other.ends;
        self.end_states.extend(other.end_states);
        self.violation_count += other.violation_count;
        for v in other.violations {
            if self.violations.len() < 5 {
                self.violations.push(v);
            }
        }
    }
}

struct Search<'i, 'm, 'a> {
    input: &'i Input<'i>,
    memo: &'m mut Memo<'a>,
    /// Every state met, with the complete schedules from it.
    visited: ByDigest<u128>,
    path: Vec<Step>,
    figures: Figures,
}

impl Search<'_, '_, '_> {
    fn violation(&mut self, violation: String) {
        self.figures.violation_count += 1;
        if self.figures.violations.len() < 5 {
            let schedule: Vec<String> = self
                .path
                .iter()
                .map(|s| {
                    format!(
                        "report {} ({:?}) attempt {}: {:?} {:?}",
                        s.invocation / ATTEMPTS,
                        self.input.reports[s.invocation / ATTEMPTS],
                        s.invocation % ATTEMPTS,
                        s.call,
                        s.variant
                    )
                })
                .collect();
            self.figures.violations.push(format!(
                "{}, reports {:?}, fault {:?}: {violation}\n    {}",
                self.input.scenario.name,
                self.input.reports,
                self.input.fault,
                schedule.join("\n    ")
            ));
        }
    }

    /// The complete schedules from `state`.
    fn visit(&mut self, state: &State) -> u128 {
        let key = match state.key(self.memo, self.input) {
            Ok(key) => key,
            Err(e) => {
                self.violation(e);
                return 1;
            }
        };
        if let Some(&paths) = self.visited.get(&key) {
            return paths;
        }
        let paths = match self.expand(state) {
            Ok(paths) => paths,
            Err(e) => {
                self.violation(e);
                1
            }
        };
        self.visited.insert(key, paths);
        paths
    }

    fn expand(&mut self, state: &State) -> Result<u128, String> {
        if let Some(violation) = state.violation(self.memo, self.input)? {
            self.violation(violation);
            return Ok(1);
        }
        let steps = state.steps(self.memo, self.input)?;
        if steps.is_empty() {
            self.figures.ends += 1;
            match check_end(state, self.memo, self.input) {
                Ok(end) => {
                    self.figures.end_states.insert(end);
                }
                Err(violation) => self.violation(violation),
            }
            return Ok(1);
        }
        let mut paths: u128 = 0;
        for step in steps {
            self.path.push(step);
            let next = state.apply(step, self.memo, self.input);
            let from_next = match next {
                Ok(next) => self.visit(&next),
                Err(e) => {
                    self.violation(e);
                    1
                }
            };
            self.path.pop();
            paths = paths.saturating_add(from_next);
        }
        Ok(paths)
    }
}

/// Every schedule from one input.
fn explore(
    scenario: &Scenario,
    reports: &[ReportKind],
    fault: Fault,
    memo: &mut Memo<'_>,
) -> Figures {
    let mut trees = Vec::new();
    let mut figures = Figures::default();
    for invocation in 0..reports.len() * ATTEMPTS {
        let id = Identity {
            report: reports[invocation / ATTEMPTS],
            index: invocation / ATTEMPTS,
            attempt: invocation % ATTEMPTS,
        };
        match memo.tree_of(id) {
            Ok(tree) => trees.push(tree),
            Err(e) => {
                figures.violation_count += 1;
                figures.violations.push(e);
                return figures;
            }
        }
    }
    // Swapping reports of the same direction (and their ids) maps a state to one that
    // behaves the same.
    let renamings = (0..RENAMINGS.len())
        .filter(|&k| {
            RENAMINGS[k].iter().enumerate().all(|(from, &to)| {
                let to = usize::from(to);
                match (reports.get(from), reports.get(to)) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => from == to,
                    _ => false,
                }
            })
        })
        .collect();
    let input = Input {
        scenario,
        reports,
        fault,
        trees,
        renamings,
    };
    let mut search = Search {
        input: &input,
        memo,
        visited: ByDigest::default(),
        path: Vec::new(),
        figures,
    };
    let initial = State::initial(&input);
    search.figures.schedules = search.visit(&initial);
    search.figures.states = search.visited.len() as u64;
    // The paused invocations hold memory; another input starts from other states.
    search.memo.live.clear();
    search.figures
}

/// Runs `work` with the handler's timers available: they are made in a runtime's context,
/// but the runtime never runs (nothing is spawned, no timer driven): the futures are polled
/// by hand.
fn with_timers<T>(work: impl FnOnce() -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("a current-thread runtime: {e}"));
    let _context = runtime.enter();
    work()
}

#[test]
fn every_interleaving_of_up_to_three_reports_keeps_the_fence() {
    let started = Instant::now();
    let scenarios = scenarios();
    let sets = report_sets();
    // A worker takes a whole accelerator at a time: the states of its invocations found for
    // one input serve the next. The slowest first, so that the two finish together.
    let mut order: Vec<usize> = (0..scenarios.len()).collect();
    order.sort_by_key(|s| std::cmp::Reverse(scenarios[*s].weight));
    // Three reports with every fault too: about two minutes on two cores.
    let full = std::env::var_os("SITEFENCE_MODEL_CHECK_FULL").is_some();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Figures, f64)>> = Mutex::default();
    let replays = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                with_timers(|| {
                    let requests = Requests::new();
                    let settings = settings();
                    let secret = FakeWorld::new();
                    let mut memo = Memo::new(&requests, &settings, &secret);
                    while let Some(&s) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let began = Instant::now();
                        let mut figures = Figures::default();
                        for reports in &sets {
                            let faults: &[Fault] = if reports.len() < MAX_REPORTS || full {
                                &FAULTS
                            } else {
                                &[Fault::None]
                            };
                            for fault in faults {
                                figures.add(explore(&scenarios[s], reports, *fault, &mut memo));
                            }
                        }
                        lock(&results).push((s, figures, began.elapsed().as_secs_f64()));
                    }
                    replays.fetch_add(memo.replays as usize, Ordering::Relaxed);
                });
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut total = Figures::default();
    for (s, figures, seconds) in results {
        println!(
            "model check {:<20} {:>8} states {:>20} schedules {:>6} end states ({:>3} distinct) {seconds:>5.1} s",
            scenarios[s].name,
            figures.states,
            figures.schedules,
            figures.ends,
            figures.end_states.len()
        );
        total.add(figures);
    }
    println!(
        "model check total: {} states ({} schedules), {} distinct end states, {} handler replays, {} violations, {:.1} s",
        total.states,
        total.schedules,
        total.end_states.len(),
        replays.load(Ordering::Relaxed),
        total.violation_count,
        started.elapsed().as_secs_f64()
    );
    assert!(
        total.violations.is_empty(),
        "{} violations, first ones:\n{}",
        total.violation_count,
        total.violations.join("\n")
    );
}
