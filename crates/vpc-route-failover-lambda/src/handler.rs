//! One invocation: read the event, find which appliance failed, move its routes, report.

use aws_topology::ec2::{
    Appliance, DescribedInstance, Ec2Error, EniId, InstanceId, InstanceState, RouteMove, RouteSkip,
    Vpc,
};
use common::mode::Mode;
use common::notify::Notifier;
use common::outcome::Disposition;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::Settings;
use crate::decide::{Current, Ignored, Pair, Plan, Role, Verdict, classify, plan};
use crate::event::{StateChange, parse_event};

/// The function's shared state, built once at cold start.
pub struct Failover<V> {
    pub ec2: V,
    pub settings: Settings,
    pub notifier: Option<Notifier>,
    /// Which instance each ENI was attached to, looked up on first use and kept: after a
    /// termination the ENI may be gone, and the cached owner is what still links the event's
    /// instance id to the failed appliance.
    pair: Mutex<Option<Pair>>,
}

/// What the invocation did, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    RoutesMoved,
    /// Monitor mode: these routes would have moved (`would_move`); none did.
    WouldMoveRoutes,
    NothingToMove,
    ReplacementNotRunning,
    /// EC2 does not confirm the event yet (the instance still shows running): nothing moved,
    /// the invocation fails so that Lambda retries it.
    Unconfirmed,
    Ignored,
    BadInput,
    Failed,
}

/// An appliance as the decision record shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplianceReport {
    pub role: Role,
    pub eni: EniId,
    pub instance: Option<InstanceId>,
    /// The instance's state as EC2 answered during the invocation (the event's is the
    /// invocation's `state`); absent when EC2 does not know the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedMove {
    #[serde(flatten)]
    pub route: RouteMove,
    pub error: String,
}

/// The decision record of one invocation, which is also the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `monitor`: the function only says what it would have done.
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
    pub disposition: Disposition,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<ApplianceReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ApplianceReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<RouteMove>,
    /// Monitor mode: the routes that would have moved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_move: Vec<RouteMove>,
    /// Routes that would move but were not (replacement not running).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_moved: Vec<RouteMove>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<RouteSkip>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_moves: Vec<FailedMove>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    fn new(disposition: Disposition, outcome: Outcome) -> Self {
        Self {
            // Set by `invoke`, which knows the function's mode.
            mode: Mode::Enforce,
            instance_id: None,
            state: None,
            disposition,
            outcome,
            reason: None,
            failed: None,
            replacement: None,
            moved: Vec::new(),
            would_move: Vec::new(),
            not_moved: Vec::new(),
            skipped: Vec::new(),
            failed_moves: Vec::new(),
            error: None,
        }
    }

    fn from_error(err: &Ec2Error) -> Self {
        let disposition = if err.is_transient() {
            Disposition::Transient
        } else {
            Disposition::Fatal
        };
        Self {
            error: Some(err.to_string()),
            ..Self::new(disposition, Outcome::Failed)
        }
    }
}

/// The invocation failed in a way a retry can fix; Lambda's asynchronous retry re-delivers the
/// event, which is safe because routes already moved are not planned again.
#[derive(Debug, thiserror::Error)]
#[error("route failover failed for now and will be retried: {0}")]
pub struct RetryLater(pub String);

impl From<RetryLater> for Diagnostic {
    fn from(err: RetryLater) -> Self {
        Diagnostic {
            error_type: "Transient".into(),
            error_message: err.to_string(),
        }
    }
}

impl<V: Vpc + Sync> Failover<V> {
    pub fn new(ec2: V, settings: Settings, notifier: Option<Notifier>) -> Self {
        Self {
            ec2,
            settings,
            notifier,
            pair: Mutex::new(None),
        }
    }

    /// Looks up which instance each ENI is attached to. A known owner is kept when the ENI is
    /// now detached or gone: the instance id of a terminated appliance must still be recognised.
    async fn resolve_pair(&self, known: Option<&Pair>) -> Result<Pair, Ec2Error> {
        let (primary, standby) = tokio::join!(
            self.owner(&self.settings.primary_eni),
            self.owner(&self.settings.standby_eni)
        );
        let (primary, standby) = (primary?, standby?);
        let keep = |found: Option<InstanceId>, role: Role| {
            found.or_else(|| known.and_then(|pair| pair.appliance(role).instance.clone()))
        };
        Ok(Pair {
            primary: Appliance {
                eni: self.settings.primary_eni.clone(),
                instance: keep(primary, Role::Primary),
            },
            standby: Appliance {
                eni: self.settings.standby_eni.clone(),
                instance: keep(standby, Role::Standby),
            },
        })
    }

    async fn owner(&self, eni: &EniId) -> Result<Option<InstanceId>, Ec2Error> {
        match self.ec2.eni_owner(eni).await {
            Err(Ec2Error::NetworkInterfaceNotFound(_)) => {
                tracing::warn!(eni = %eni, "network_interface_not_found");
                Ok(None)
            }
            other => other,
        }
    }

    /// The pair, looked up once; looked up again when `instance` is neither of them (an
    /// appliance may have been replaced since the cold start).
    async fn pair_for(&self, instance: &InstanceId) -> Result<Pair, Ec2Error> {
        let mut cached = self.pair.lock().await;
        if let Some(pair) = cached.as_ref()
            && pair.role_of(instance).is_some()
        {
            return Ok(pair.clone());
        }
        let pair = self.resolve_pair(cached.as_ref()).await?;
        tracing::info!(
            primary_eni = %pair.primary.eni,
            primary_instance = pair.primary.instance.as_ref().map(InstanceId::as_str),
            standby_eni = %pair.standby.eni,
            standby_instance = pair.standby.instance.as_ref().map(InstanceId::as_str),
            "appliances_resolved"
        );
        *cached = Some(pair.clone());
        Ok(pair)
    }

    pub async fn invoke(&self, event: &Value) -> Report {
        let change = match parse_event(event) {
            Ok(change) => change,
            Err(err) => {
                return Report {
                    mode: self.settings.mode,
                    reason: Some("unreadable_event".into()),
                    error: Some(err.to_string()),
                    ..Report::new(Disposition::BadInput, Outcome::BadInput)
                };
            }
        };
        let mut invocation = self.fail_over(&change).await;
        invocation.mode = self.settings.mode;
        invocation.instance_id = Some(change.instance);
        invocation.state = Some(change.state);
        invocation
    }

    /// Reads what EC2 says now, all at once: the route tables and both appliances' instances.
    /// The event's instance is read because a late or re-delivered event may describe an
    /// instance that has been started again since.
    ///
    /// One `DescribeInstances` per instance, not one for both: EC2 documents that a call naming
    /// an instance in an Availability Zone with a service disruption, or naming none (a filter
    /// only), fails whole, and an appliance's zone failing is when this function runs.
    async fn read_current(
        &self,
        change: &StateChange,
        replacement: &Appliance,
    ) -> Result<Current, Ec2Error> {
        let replacement_read = async {
            match &replacement.instance {
                None => Ok(None),
                Some(instance) => self.ec2.describe_instance(instance).await,
            }
        };
        let (tables, failed, replacement) = tokio::join!(
            self.ec2.route_tables(&self.settings.vpc),
            self.ec2.describe_instance(&change.instance),
            replacement_read
        );
        Ok(Current {
            tables: tables?,
            failed: failed?,
            replacement: replacement?,
        })
    }

    async fn fail_over(&self, change: &StateChange) -> Report {
        let pair = match self.pair_for(&change.instance).await {
            Ok(pair) => pair,
            Err(err) => return Report::from_error(&err),
        };
        let failed_role = match classify(change, &pair) {
            Verdict::FailOver(role) => role,
            Verdict::Ignore(ignored) => {
                let reason = match ignored {
                    Ignored::UnknownInstance => "unknown_instance",
                    Ignored::BackInService => "back_in_service",
                };
                return Report {
                    reason: Some(reason.into()),
                    ..Report::new(Disposition::Ignored, Outcome::Ignored)
                };
            }
        };
        let failed = pair.appliance(failed_role);
        let replacement_role = Pair::other(failed_role);
        let replacement = pair.appliance(replacement_role);

        let current = match self.read_current(change, replacement).await {
            Ok(current) => current,
            Err(err) => return Report::from_error(&err),
        };
        let report =
            |appliance: &Appliance, role, now: Option<DescribedInstance>| ApplianceReport {
                role,
                eni: appliance.eni.clone(),
                instance: appliance.instance.clone(),
                state: now.map(|now| now.state),
            };
        let base = |disposition, outcome| Report {
            failed: Some(report(failed, failed_role, current.failed)),
            replacement: Some(report(replacement, replacement_role, current.replacement)),
            ..Report::new(disposition, outcome)
        };

        let plan = plan(
            change,
            failed,
            replacement,
            &current,
            self.settings.allowed_tables.as_ref(),
        );
        let routes = match plan {
            Plan::RunningNow => {
                return Report {
                    reason: Some("instance_running_now".into()),
                    ..base(Disposition::Ignored, Outcome::Ignored)
                };
            }
            Plan::RunningSinceBeforeEvent => {
                return Report {
                    reason: Some("running_since_before_the_event".into()),
                    error: Some(format!(
                        "EC2 shows {} running, not started again after the {} event: its \
                         answer may lag the event; asking again later",
                        change.instance, change.state
                    )),
                    ..base(Disposition::Transient, Outcome::Unconfirmed)
                };
            }
            Plan::NothingToMove(routes) => {
                return Report {
                    skipped: routes.skipped,
                    ..base(Disposition::Done, Outcome::NothingToMove)
                };
            }
            Plan::ReplacementNotRunning { routes, .. } => {
                // An operator must act: both appliances are out of service.
                return Report {
                    reason: Some("replacement_not_running".into()),
                    not_moved: routes.moves,
                    skipped: routes.skipped,
                    ..base(Disposition::Fatal, Outcome::ReplacementNotRunning)
                };
            }
            Plan::Move(routes) => routes,
        };
        if self.settings.mode == Mode::Monitor {
            return Report {
                reason: Some(format!(
                    "monitor: would move {} route(s) to the {:?} appliance's ENI {}; nothing changed",
                    routes.moves.len(),
                    replacement_role,
                    replacement.eni
                )),
                would_move: routes.moves,
                skipped: routes.skipped,
                ..base(Disposition::Done, Outcome::WouldMoveRoutes)
            };
        }

        let mut moved = Vec::new();
        let mut failed_moves = Vec::new();
        let mut disposition = Disposition::Done;
        // Every route at once: each ReplaceRoute names its own destination, so none waits for
        // another, and the failover is one round trip however many routes move. EC2 throttles
        // each API by a token bucket per account and Region; a throttled move is transient and
        // the event's retry moves what is left (docs/aws-behaviours.md #93).
        let results = common::join::join_all(
            routes
                .moves
                .iter()
                .map(|route| self.ec2.replace_route(route)),
        )
        .await;
        for (route, result) in routes.moves.into_iter().zip(results) {
            match result {
                Ok(()) => moved.push(route),
                Err(err) => {
                    disposition = Disposition::most_severe([
                        disposition,
                        if err.is_transient() {
                            Disposition::Transient
                        } else {
                            Disposition::Fatal
                        },
                    ]);
                    failed_moves.push(FailedMove {
                        route,
                        error: err.to_string(),
                    });
                }
            }
        }
        let outcome = if failed_moves.is_empty() {
            Outcome::RoutesMoved
        } else {
            Outcome::Failed
        };
        Report {
            moved,
            failed_moves,
            skipped: routes.skipped,
            ..base(disposition, outcome)
        }
    }
}

/// The Lambda handler: invoke, write the decision record, notify, and fail the invocation only
/// when a retry can help.
pub async fn handle<V: Vpc + Sync>(
    failover: &Failover<V>,
    event: LambdaEvent<Value>,
) -> Result<Value, RetryLater> {
    let started = std::time::Instant::now();
    let invocation = failover.invoke(&event.payload).await;
    let mut record = serde_json::to_value(&invocation).unwrap_or(Value::Null);
    if let Some(fields) = record.as_object_mut() {
        fields.insert("request_id".into(), event.context.request_id.into());
    }
    common::logging::decision_record(&record);
    if matches!(
        invocation.disposition,
        Disposition::BadInput | Disposition::Fatal | Disposition::Transient
    ) {
        tracing::warn!(
            instance_id = invocation.instance_id.as_ref().map(InstanceId::as_str),
            outcome = ?invocation.outcome,
            reason = invocation.reason.as_deref(),
            error = invocation.error.as_deref(),
            failed_moves = invocation.failed_moves.len(),
            "routes_not_moved"
        );
    }
    if let Some(notifier) = &failover.notifier
        && let Some(subject) = notification_subject(&invocation)
        && let Err(err) = notifier.publish(subject, &record).await
    {
        tracing::warn!(topic_arn = notifier.topic_arn(), error = %err, "notification_failed");
    }
    common::metrics::emit(&common::metrics::Invocation {
        outcome: invocation.disposition,
        rule: None,
        duration: started.elapsed(),
        unfenced: None,
    });
    if invocation.disposition == Disposition::Transient {
        let first = invocation
            .error
            .clone()
            .or_else(|| invocation.failed_moves.first().map(|f| f.error.clone()))
            .unwrap_or_default();
        return Err(RetryLater(first));
    }
    Ok(record)
}

/// Routes moved, or routes that should have moved and did not: both are for an operator.
fn notification_subject(invocation: &Report) -> Option<&'static str> {
    if !invocation.failed_moves.is_empty() {
        Some("VPC route failover: some routes could NOT be moved")
    } else if invocation.outcome == Outcome::ReplacementNotRunning {
        Some("VPC route failover: routes NOT moved, the other appliance is not running")
    } else if !invocation.moved.is_empty() {
        Some("VPC route failover: routes moved to the other appliance")
    } else if !invocation.would_move.is_empty() {
        Some(
            "VPC route failover MONITOR: routes would move to the other appliance (nothing changed)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_topology::ec2::{Destination, Route, RouteOrigin, RouteTable};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex as StdMutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tokio::sync::Barrier;

    const PRIMARY_ENI: &str = "eni-00fea71a1c9255bef";
    const STANDBY_ENI: &str = "eni-071b4d6cbf57de651";
    const PRIMARY_INSTANCE: &str = "i-05a7780f2af7c126c";
    const STANDBY_INSTANCE: &str = "i-045ebd27124159b6d";

    /// When both appliances were launched: the morning of the sample events' day
    /// (2026-11-25T09:00:00Z).
    const LAUNCHED: u64 = 1_795_597_200;
    /// The `time` of `events/vpc/primary-stopped.json` (2026-11-25T10:02:52Z).
    const PRIMARY_STOPPED_AT: u64 = 1_795_600_972;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// A VPC with two appliances, as EC2 would answer for it.
    struct FakeVpc {
        tables: StdMutex<Vec<RouteTable>>,
        owners: StdMutex<BTreeMap<String, Option<String>>>,
        instances: StdMutex<BTreeMap<String, DescribedInstance>>,
        /// ReplaceRoute answers "throttled" for these destinations, once each.
        throttled: StdMutex<Vec<String>>,
        describe_unavailable: bool,
        /// Every read of the route tables and of an instance waits here: with a barrier for
        /// three, the reads finish only if they run at the same time.
        reads_meet: Option<Arc<Barrier>>,
        /// Every ReplaceRoute waits here: with a barrier for as many routes as move, the
        /// moves finish only if they run at the same time.
        moves_meet: Option<Arc<Barrier>>,
        replaced: StdMutex<u32>,
    }

    fn running_since(launched: u64) -> DescribedInstance {
        DescribedInstance {
            state: InstanceState::Running,
            launch_time: Some(at(launched)),
        }
    }

    fn transient(operation: &'static str) -> Ec2Error {
        Ec2Error::Transient {
            operation,
            message: "RequestLimitExceeded: Request limit exceeded.".into(),
        }
    }

    fn route(destination: Destination, eni: Option<&str>) -> Route {
        Route {
            destination: Some(destination),
            network_interface_id: eni.map(str::to_owned),
            instance_id: None,
            origin: RouteOrigin::CreateRoute,
            blackhole: false,
        }
    }

    fn v4(cidr: &str) -> Destination {
        Destination::Ipv4(cidr.into())
    }

    impl FakeVpc {
        /// The seed's test network and more: one table with the local route, the seed's
        /// 1.1.1.1/32, an IPv6 and a prefix-list route via the primary, a route via the standby,
        /// a default route to a gateway and a propagated route.
        fn new() -> Self {
            let routes = vec![
                Route {
                    origin: RouteOrigin::CreateRouteTable,
                    ..route(v4("10.0.0.0/16"), None)
                },
                route(v4("1.1.1.1/32"), Some(PRIMARY_ENI)),
                route(
                    Destination::Ipv6("2001:db8:1::/64".into()),
                    Some(PRIMARY_ENI),
                ),
                route(
                    Destination::PrefixList("pl-0a1b2c3d".into()),
                    Some(PRIMARY_ENI),
                ),
                route(v4("10.2.0.0/16"), Some(STANDBY_ENI)),
                route(v4("0.0.0.0/0"), None),
                Route {
                    origin: RouteOrigin::Propagated,
                    ..route(v4("172.16.0.0/12"), Some(PRIMARY_ENI))
                },
            ];
            Self {
                tables: StdMutex::new(vec![RouteTable {
                    id: "rtb-0123456789abcdef0".parse().unwrap(),
                    routes,
                }]),
                owners: StdMutex::new(BTreeMap::from([
                    (PRIMARY_ENI.into(), Some(PRIMARY_INSTANCE.into())),
                    (STANDBY_ENI.into(), Some(STANDBY_INSTANCE.into())),
                ])),
                instances: StdMutex::new(BTreeMap::from([
                    (PRIMARY_INSTANCE.into(), running_since(LAUNCHED)),
                    (STANDBY_INSTANCE.into(), running_since(LAUNCHED)),
                ])),
                throttled: StdMutex::new(Vec::new()),
                describe_unavailable: false,
                reads_meet: None,
                moves_meet: None,
                replaced: StdMutex::new(0),
            }
        }

        /// The VPC as EC2 shows it once the primary's instance is in `state`.
        fn with_primary(state: InstanceState) -> Self {
            let vpc = Self::new();
            vpc.set_state(PRIMARY_INSTANCE, state);
            vpc
        }

        fn set_state(&self, instance: &str, state: InstanceState) {
            if let Some(found) = self.instances.lock().unwrap().get_mut(instance) {
                found.state = state;
            }
        }

        async fn meet(&self) {
            if let Some(barrier) = &self.reads_meet {
                barrier.wait().await;
            }
        }

        /// Each route's destination and next hop (ENI, or "-" for none).
        fn next_hops(&self) -> Vec<(String, String)> {
            self.tables.lock().unwrap()[0]
                .routes
                .iter()
                .map(|r| {
                    let destination = r.destination.as_ref().map(ToString::to_string);
                    let hop = r.network_interface_id.clone().unwrap_or_else(|| "-".into());
                    (destination.unwrap_or_default(), hop)
                })
                .collect()
        }

        fn next_hop(&self, destination: &str) -> String {
            self.next_hops()
                .into_iter()
                .find(|(d, _)| d == destination)
                .map(|(_, hop)| hop)
                .unwrap_or_default()
        }

        fn replaced(&self) -> u32 {
            *self.replaced.lock().unwrap()
        }
    }

    impl Vpc for FakeVpc {
        async fn route_tables(
            &self,
            _vpc: &aws_topology::ec2::VpcId,
        ) -> Result<Vec<RouteTable>, Ec2Error> {
            self.meet().await;
            if self.describe_unavailable {
                return Err(transient("DescribeRouteTables"));
            }
            Ok(self.tables.lock().unwrap().clone())
        }

        async fn eni_owner(&self, eni: &EniId) -> Result<Option<InstanceId>, Ec2Error> {
            match self.owners.lock().unwrap().get(eni.as_str()) {
                None => Err(Ec2Error::NetworkInterfaceNotFound(eni.clone())),
                Some(owner) => Ok(owner.as_ref().map(|id| id.parse().unwrap())),
            }
        }

        async fn describe_instance(
            &self,
            instance: &InstanceId,
        ) -> Result<Option<DescribedInstance>, Ec2Error> {
            self.meet().await;
            Ok(self
                .instances
                .lock()
                .unwrap()
                .get(instance.as_str())
                .copied())
        }

        async fn replace_route(&self, change: &RouteMove) -> Result<(), Ec2Error> {
            if let Some(barrier) = &self.moves_meet {
                barrier.wait().await;
            }
            let destination = change.destination.to_string();
            {
                let mut throttled = self.throttled.lock().unwrap();
                if let Some(at) = throttled.iter().position(|d| *d == destination) {
                    throttled.remove(at);
                    return Err(transient("ReplaceRoute"));
                }
            }
            let mut tables = self.tables.lock().unwrap();
            let route = tables
                .iter_mut()
                .filter(|t| t.id == change.route_table_id)
                .flat_map(|t| t.routes.iter_mut())
                .find(|r| r.destination.as_ref() == Some(&change.destination))
                .ok_or_else(|| Ec2Error::Refused {
                    operation: "ReplaceRoute",
                    code: "InvalidRoute.NotFound".into(),
                    message: destination.clone(),
                })?;
            route.network_interface_id = Some(change.to.to_string());
            route.instance_id = None;
            route.blackhole = false;
            *self.replaced.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn settings() -> Settings {
        Settings {
            primary_eni: PRIMARY_ENI.parse().unwrap(),
            standby_eni: STANDBY_ENI.parse().unwrap(),
            vpc: "vpc-0bf5741eb0ef56a41".parse().unwrap(),
            allowed_tables: None,
            mode: Mode::Enforce,
        }
    }

    #[tokio::test]
    async fn monitor_mode_reports_the_routes_it_would_move_and_moves_none() {
        let vpc = FakeVpc::with_primary(InstanceState::Stopped);
        let before = vpc.next_hops();
        let function = Failover::new(
            vpc,
            Settings {
                mode: Mode::Monitor,
                ..settings()
            },
            None,
        );
        let response = handle(&function, lambda_event(sample("primary-stopped.json")))
            .await
            .unwrap();
        assert_eq!(
            function.ec2.replaced(),
            0,
            "no ReplaceRoute in monitor mode"
        );
        assert_eq!(function.ec2.next_hops(), before);
        assert_eq!(response["mode"], "monitor");
        assert_eq!(response["outcome"], "would_move_routes", "{response}");
        assert_eq!(response["disposition"], "done");
        // The three routes an enforcing function moves (see `samples_table`).
        assert_eq!(
            response["would_move"].as_array().map(Vec::len),
            Some(3),
            "{response}"
        );
        assert!(response.get("moved").is_none(), "{response}");
        assert!(
            response["reason"]
                .as_str()
                .unwrap()
                .starts_with("monitor: would move 3 route(s)"),
            "{response}"
        );
        let report = function.invoke(&sample("primary-stopped.json")).await;
        assert_eq!(
            notification_subject(&report),
            Some(
                "VPC route failover MONITOR: routes would move to the other appliance (nothing changed)"
            )
        );
    }

    fn failover(vpc: FakeVpc) -> Failover<FakeVpc> {
        Failover::new(vpc, settings(), None)
    }

    fn samples_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/vpc")
    }

    fn sample(name: &str) -> Value {
        let text = std::fs::read_to_string(samples_dir().join(name)).unwrap();
        serde_json::from_str(&text.replace("{{PRIMARY_INSTANCE_ID}}", PRIMARY_INSTANCE)).unwrap()
    }

    fn state_change(instance: &str, state: &str) -> Value {
        json!({
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "detail": {"instance-id": instance, "state": state}
        })
    }

    fn lambda_event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, Default::default())
    }

    #[test]
    fn every_sample_is_an_event_the_function_reads() {
        let mut names: Vec<String> = std::fs::read_dir(samples_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 7, "{names:?}");
        for name in names {
            parse_event(&sample(&name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        }
    }

    #[tokio::test]
    async fn samples_table() {
        let failed_over = [
            ("1.1.1.1/32", STANDBY_ENI),
            ("2001:db8:1::/64", STANDBY_ENI),
            ("pl-0a1b2c3d", STANDBY_ENI),
            ("10.2.0.0/16", STANDBY_ENI),
            ("172.16.0.0/12", PRIMARY_ENI),
        ];
        let untouched = [
            ("1.1.1.1/32", PRIMARY_ENI),
            ("2001:db8:1::/64", PRIMARY_ENI),
            ("pl-0a1b2c3d", PRIMARY_ENI),
            ("10.2.0.0/16", STANDBY_ENI),
            ("172.16.0.0/12", PRIMARY_ENI),
        ];
        // Each event arrives while EC2 shows the primary in the event's state.
        use InstanceState::*;
        let rows = [
            (
                "primary-stopping.json",
                Stopping,
                Outcome::RoutesMoved,
                &failed_over,
            ),
            (
                "primary-stopped.json",
                Stopped,
                Outcome::RoutesMoved,
                &failed_over,
            ),
            (
                "primary-shutting-down.json",
                ShuttingDown,
                Outcome::RoutesMoved,
                &failed_over,
            ),
            (
                "primary-terminated.json",
                Terminated,
                Outcome::RoutesMoved,
                &failed_over,
            ),
            (
                "primary-pending.json",
                Pending,
                Outcome::Ignored,
                &untouched,
            ),
            (
                "primary-running.json",
                Running,
                Outcome::Ignored,
                &untouched,
            ),
            (
                "other-instance-stopped.json",
                Running,
                Outcome::Ignored,
                &untouched,
            ),
        ];
        for (name, primary_state, outcome, hops) in rows {
            let function = failover(FakeVpc::with_primary(primary_state));
            let invocation = function.invoke(&sample(name)).await;
            assert_eq!(invocation.outcome, outcome, "{name}");
            for (destination, hop) in hops {
                assert_eq!(
                    function.ec2.next_hop(destination),
                    *hop,
                    "{name}: {destination}"
                );
            }
            assert_eq!(function.ec2.next_hop("0.0.0.0/0"), "-", "{name}");
        }
    }

    #[tokio::test]
    async fn moved_routes_and_propagated_skip_are_reported() {
        let function = failover(FakeVpc::with_primary(InstanceState::Stopped));
        let response = handle(&function, lambda_event(sample("primary-stopped.json")))
            .await
            .unwrap();
        assert_eq!(response["disposition"], "done");
        assert_eq!(response["outcome"], "routes_moved");
        assert_eq!(response["failed"]["role"], "primary");
        assert_eq!(response["failed"]["state"], "stopped");
        assert_eq!(response["replacement"]["eni"], STANDBY_ENI);
        assert_eq!(response["replacement"]["state"], "running");
        assert_eq!(response["moved"].as_array().map(Vec::len), Some(3));
        assert_eq!(response["moved"][1]["destination"]["kind"], "ipv6");
        assert_eq!(response["skipped"][0]["reason"], "propagated");
    }

    #[tokio::test]
    async fn repeated_event_changes_nothing() {
        let function = failover(FakeVpc::with_primary(InstanceState::Stopping));
        function.invoke(&sample("primary-stopping.json")).await;
        function
            .ec2
            .set_state(PRIMARY_INSTANCE, InstanceState::Stopped);
        let before = function.ec2.next_hops();
        let again = function.invoke(&sample("primary-stopped.json")).await;
        assert_eq!(again.outcome, Outcome::NothingToMove);
        assert_eq!(again.disposition, Disposition::Done);
        assert_eq!(function.ec2.next_hops(), before);
        assert_eq!(function.ec2.replaced(), 3);
    }

    #[tokio::test]
    async fn standby_not_running_keeps_routes_and_is_reported_not_retried() {
        let vpc = FakeVpc::with_primary(InstanceState::Stopped);
        vpc.set_state(STANDBY_INSTANCE, InstanceState::Stopped);
        let function = failover(vpc);
        let before = function.ec2.next_hops();
        let response = handle(&function, lambda_event(sample("primary-stopped.json")))
            .await
            .unwrap();
        assert_eq!(response["outcome"], "replacement_not_running");
        assert_eq!(response["disposition"], "fatal");
        assert_eq!(response["replacement"]["state"], "stopped");
        assert_eq!(response["not_moved"].as_array().map(Vec::len), Some(3));
        assert_eq!(function.ec2.next_hops(), before);
    }

    #[tokio::test]
    async fn standby_failure_moves_its_routes_to_the_primary() {
        let function = failover(FakeVpc::new());
        function
            .ec2
            .set_state(STANDBY_INSTANCE, InstanceState::Terminated);
        let invocation = function
            .invoke(&state_change(STANDBY_INSTANCE, "terminated"))
            .await;
        assert_eq!(invocation.outcome, Outcome::RoutesMoved);
        assert_eq!(function.ec2.next_hop("10.2.0.0/16"), PRIMARY_ENI);
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), PRIMARY_ENI);
    }

    #[tokio::test]
    async fn throttled_move_fails_the_invocation_and_the_retry_finishes_the_job() {
        let vpc = FakeVpc::with_primary(InstanceState::Stopped);
        vpc.throttled.lock().unwrap().push("2001:db8:1::/64".into());
        let function = failover(vpc);
        let first = handle(&function, lambda_event(sample("primary-stopped.json"))).await;
        assert!(first.unwrap_err().0.contains("RequestLimitExceeded"));
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), STANDBY_ENI);
        assert_eq!(function.ec2.next_hop("2001:db8:1::/64"), PRIMARY_ENI);

        let retry = handle(&function, lambda_event(sample("primary-stopped.json")))
            .await
            .unwrap();
        assert_eq!(retry["outcome"], "routes_moved");
        assert_eq!(retry["moved"].as_array().map(Vec::len), Some(1));
        assert_eq!(function.ec2.next_hop("2001:db8:1::/64"), STANDBY_ENI);
    }

    #[tokio::test]
    async fn unavailable_ec2_is_retried() {
        let function = failover(FakeVpc {
            describe_unavailable: true,
            ..FakeVpc::new()
        });
        let result = handle(&function, lambda_event(sample("primary-stopped.json"))).await;
        assert!(result.is_err());
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), PRIMARY_ENI);
    }

    #[tokio::test]
    async fn terminated_appliance_is_recognised_after_its_eni_is_gone() {
        let function = failover(FakeVpc::new());
        // A warm function has seen the pair (here through a `running` event).
        function.invoke(&sample("primary-running.json")).await;
        // Termination deletes the ENI; the routes through it turn into blackholes.
        function
            .ec2
            .set_state(PRIMARY_INSTANCE, InstanceState::Terminated);
        function.ec2.owners.lock().unwrap().remove(PRIMARY_ENI);
        for table in function.ec2.tables.lock().unwrap().iter_mut() {
            for route in &mut table.routes {
                route.blackhole = route.network_interface_id.as_deref() == Some(PRIMARY_ENI);
            }
        }
        let invocation = function.invoke(&sample("primary-terminated.json")).await;
        assert_eq!(invocation.outcome, Outcome::RoutesMoved);
        assert!(invocation.moved.iter().all(|m| m.was_blackhole));
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), STANDBY_ENI);
    }

    #[tokio::test]
    async fn replaced_appliance_is_looked_up_again() {
        let function = failover(FakeVpc::new());
        function.invoke(&sample("primary-running.json")).await;
        // The primary appliance was rebuilt: its ENI now belongs to a new instance.
        let rebuilt = "i-0aaaabbbbccccdddd";
        function
            .ec2
            .owners
            .lock()
            .unwrap()
            .insert(PRIMARY_ENI.into(), Some(rebuilt.into()));
        function.ec2.instances.lock().unwrap().insert(
            rebuilt.into(),
            DescribedInstance {
                state: InstanceState::Stopping,
                launch_time: Some(at(LAUNCHED)),
            },
        );
        let invocation = function.invoke(&state_change(rebuilt, "stopping")).await;
        assert_eq!(invocation.outcome, Outcome::RoutesMoved);
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), STANDBY_ENI);
    }

    #[tokio::test]
    async fn late_stopped_event_for_a_restarted_primary_moves_nothing() {
        let vpc = FakeVpc::new();
        // Started again a minute after the stop the event reports.
        vpc.instances.lock().unwrap().insert(
            PRIMARY_INSTANCE.into(),
            running_since(PRIMARY_STOPPED_AT + 60),
        );
        let function = failover(vpc);
        let before = function.ec2.next_hops();
        let response = handle(&function, lambda_event(sample("primary-stopped.json")))
            .await
            .unwrap();
        assert_eq!(response["disposition"], "ignored", "{response}");
        assert_eq!(response["outcome"], "ignored");
        assert_eq!(response["reason"], "instance_running_now");
        assert_eq!(response["state"], "stopped");
        assert_eq!(response["failed"]["state"], "running");
        assert_eq!(function.ec2.next_hops(), before);
        assert_eq!(function.ec2.replaced(), 0);
    }

    #[tokio::test]
    async fn stop_ec2_does_not_show_yet_is_retried_and_the_retry_moves_the_routes() {
        // EC2 still shows the primary running since its launch, before the event.
        let function = failover(FakeVpc::new());
        let before = function.ec2.next_hops();
        let first = handle(&function, lambda_event(sample("primary-stopping.json"))).await;
        let err = first.unwrap_err();
        assert!(err.0.contains("running"), "{err}");
        assert_eq!(function.ec2.next_hops(), before);
        let invocation = function.invoke(&sample("primary-stopping.json")).await;
        assert_eq!(invocation.outcome, Outcome::Unconfirmed);
        assert_eq!(invocation.disposition, Disposition::Transient);
        assert_eq!(
            invocation.reason.as_deref(),
            Some("running_since_before_the_event")
        );

        // Lambda's retry, once EC2 has caught up.
        function
            .ec2
            .set_state(PRIMARY_INSTANCE, InstanceState::Stopping);
        let retry = handle(&function, lambda_event(sample("primary-stopping.json")))
            .await
            .unwrap();
        assert_eq!(retry["outcome"], "routes_moved", "{retry}");
        assert_eq!(function.ec2.next_hop("1.1.1.1/32"), STANDBY_ENI);
    }

    /// Checking the event against EC2 adds no round trip: the instances are read while the route
    /// tables are (each read waits until all three have started).
    #[tokio::test]
    async fn instance_and_route_table_reads_overlap() {
        let vpc = FakeVpc {
            reads_meet: Some(Arc::new(Barrier::new(3))),
            ..FakeVpc::with_primary(InstanceState::Stopped)
        };
        let (_, invocation) = stopped_within_5_s(vpc, "the reads").await;
        assert_eq!(invocation.outcome, Outcome::RoutesMoved);
    }

    /// The primary-stopped sample through a function over `vpc`, which must finish within
    /// 5 s: where the fake holds `calls` at a barrier, they must run at the same time.
    async fn stopped_within_5_s(vpc: FakeVpc, calls: &str) -> (Failover<FakeVpc>, Report) {
        let function = failover(vpc);
        let invocation = tokio::time::timeout(
            Duration::from_secs(5),
            function.invoke(&sample("primary-stopped.json")),
        )
        .await
        .unwrap_or_else(|_| panic!("{calls} wait for each other: they must run at the same time"));
        (function, invocation)
    }

    #[tokio::test]
    async fn every_route_moves_at_once() {
        let counted = failover(FakeVpc::with_primary(InstanceState::Stopped));
        counted.invoke(&sample("primary-stopped.json")).await;
        let moving = counted.ec2.replaced() as usize;
        let vpc = FakeVpc {
            moves_meet: Some(Arc::new(Barrier::new(moving))),
            ..FakeVpc::with_primary(InstanceState::Stopped)
        };
        let (function, invocation) = stopped_within_5_s(vpc, "the moves").await;
        assert_eq!(invocation.outcome, Outcome::RoutesMoved);
        assert!(moving > 1, "the sample VPC moves several routes");
        assert_eq!(function.ec2.replaced() as usize, moving);
    }

    #[tokio::test]
    async fn unreadable_event_is_bad_input_not_retried() {
        let function = failover(FakeVpc::new());
        for event in [json!({}), state_change("i-0abc", "rebooting"), json!("x")] {
            let response = handle(&function, lambda_event(event.clone()))
                .await
                .unwrap_or_else(|err| panic!("{event}: {err}"));
            assert_eq!(response["disposition"], "bad_input", "{event}");
        }
        assert_eq!(function.ec2.replaced(), 0);
    }
}
