//! VPC route tables and the network appliances their routes point at.
//!
//! An appliance (a router, firewall or SD-WAN instance) is reached through its network interface
//! (ENI). Failing over moves every route whose next hop is the failed appliance to its standby's
//! ENI with `ReplaceRoute`, which changes the target in place: deleting and re-creating the route
//! (what the seed does) leaves a window in which the destination is not routed at all.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;

#[cfg(feature = "ec2")]
mod client;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {what} (expected an id starting with {prefix:?})")]
pub struct InvalidId {
    pub what: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

/// An EC2 resource id with its fixed prefix checked once, where it enters the program.
macro_rules! ec2_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                let trimmed = value.trim();
                let well_formed = trimmed.len() > $prefix.len()
                    && trimmed.starts_with($prefix)
                    && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if well_formed {
                    Ok(Self(trimmed.to_owned()))
                } else {
                    Err(InvalidId {
                        what: $what,
                        prefix: $prefix,
                        value: value.to_owned(),
                    })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ec2_id!(
    /// A network interface, `eni-…`.
    EniId,
    "a network interface id",
    "eni-"
);
ec2_id!(
    /// An EC2 instance, `i-…`.
    InstanceId,
    "an instance id",
    "i-"
);
ec2_id!(
    /// A route table, `rtb-…`.
    RouteTableId,
    "a route table id",
    "rtb-"
);
ec2_id!(
    /// A VPC, `vpc-…`.
    VpcId,
    "a VPC id",
    "vpc-"
);

/// The lifecycle states of an EC2 instance, as EC2 and EventBridge spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an EC2 instance state")]
pub struct InvalidInstanceState(pub String);

impl InstanceState {
    /// States in which the appliance no longer forwards traffic (or is about to stop).
    pub fn is_out_of_service(self) -> bool {
        matches!(
            self,
            Self::Stopping | Self::Stopped | Self::ShuttingDown | Self::Terminated
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
        }
    }
}

impl FromStr for InstanceState {
    type Err = InvalidInstanceState;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            other => return Err(InvalidInstanceState(other.to_owned())),
        })
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instance as `DescribeInstances` shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribedInstance {
    pub state: InstanceState,
    /// When the instance was *last* launched: EC2 sets it again each time a stopped instance
    /// starts, so a launch after an event means the instance was restarted since. `None` when
    /// EC2 did not say.
    pub launch_time: Option<SystemTime>,
}

/// Where a route sends traffic to; `ReplaceRoute` names the route by exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Destination {
    Ipv4(String),
    Ipv6(String),
    PrefixList(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(cidr) | Self::Ipv6(cidr) => f.write_str(cidr),
            Self::PrefixList(id) => f.write_str(id),
        }
    }
}

/// How a route came to be; only static routes can be replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteOrigin {
    /// The table's own `local` route.
    CreateRouteTable,
    CreateRoute,
    /// Propagated by a virtual private gateway or advertised by a route server: owned by that
    /// gateway, changed by it, not by `ReplaceRoute`.
    Propagated,
}

/// One route as this crate sees it: destination, next hop, origin and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None` when EC2 (or an emulator) returned a route without a destination this crate can
    /// name in `ReplaceRoute`.
    pub destination: Option<Destination>,
    pub network_interface_id: Option<String>,
    pub instance_id: Option<String>,
    pub origin: RouteOrigin,
    /// The next hop is gone (a stopped or detached appliance), traffic is dropped.
    pub blackhole: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: RouteTableId,
    pub routes: Vec<Route>,
}

/// An appliance: its ENI, and the instance that ENI was attached to when last looked up (routes
/// created with an instance id name the instance, not the ENI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appliance {
    pub eni: EniId,
    pub instance: Option<InstanceId>,
}

impl Appliance {
    /// Whether the route's next hop is this appliance, by ENI or by instance id.
    pub fn is_next_hop_of(&self, route: &Route) -> bool {
        let by_eni = route.network_interface_id.as_deref() == Some(self.eni.as_str());
        let by_instance = match (&self.instance, route.instance_id.as_deref()) {
            (Some(instance), Some(target)) => instance.as_str() == target,
            _ => false,
        };
        by_eni || by_instance
    }
}

/// A route to point at another ENI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteMove {
    pub route_table_id: RouteTableId,
    pub destination: Destination,
    /// The next hop as the route named it (an ENI or an instance id).
    pub from: String,
    pub to: EniId,
    /// The route was already a blackhole: the failed appliance's ENI is gone or detached.
    pub was_blackhole: bool,
}

/// Why a route of the failed appliance is left where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Owned by a gateway's propagation, not by `ReplaceRoute`.
    Propagated,
    /// The route table is not in the configured allowlist.
    TableNotAllowed,
    /// EC2 returned the route without a destination `ReplaceRoute` could name.
    UnknownDestination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSkip {
    pub route_table_id: RouteTableId,
    pub destination: Option<Destination>,
    pub reason: SkipReason,
}

/// Every route of the failed appliance, split into those to move and those left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    pub moves: Vec<RouteMove>,
    pub skipped: Vec<RouteSkip>,
}

/// Plans moving every route whose next hop is `failed` to `replacement`. Blackhole routes move
/// too: they are exactly the routes the failure broke. Routes already on `replacement` and routes
/// to anything else are not in the plan, so a repeated event plans nothing.
pub fn plan_route_moves(
    tables: &[RouteTable],
    failed: &Appliance,
    replacement: &EniId,
    allowed_tables: Option<&BTreeSet<RouteTableId>>,
) -> RoutePlan {
    let mut plan = RoutePlan::default();
    for table in tables {
        let table_allowed = allowed_tables.is_none_or(|allowed| allowed.contains(&table.id));
        for route in table.routes.iter().filter(|r| failed.is_next_hop_of(r)) {
            let skip = |reason| RouteSkip {
                route_table_id: table.id.clone(),
                destination: route.destination.clone(),
                reason,
            };
            if !table_allowed {
                plan.skipped.push(skip(SkipReason::TableNotAllowed));
                continue;
            }
            if route.origin == RouteOrigin::Propagated {
                plan.skipped.push(skip(SkipReason::Propagated));
                continue;
            }
            let Some(destination) = route.destination.clone() else {
                plan.skipped.push(skip(SkipReason::UnknownDestination));
                continue;
            };
            let from = route
                .network_interface_id
                .clone()
                .or_else(|| route.instance_id.clone())
                .unwrap_or_default();
            plan.moves.push(RouteMove {
                route_table_id: table.id.clone(),
                destination,
                from,
                to: replacement.clone(),
                was_blackhole: route.blackhole,
            });
        }
    }
    plan
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    #[error("network interface {0} does not exist")]
    NetworkInterfaceNotFound(EniId),
    #[error("EC2 {operation} failed for now: {message}")]
    Transient {
        operation: &'static str,
        message: String,
    },
    #[error("EC2 {operation} was refused ({code}): {message}")]
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
}

impl Ec2Error {
    /// Whether trying again later can succeed (throttling, 5xx, network).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// The EC2 calls route failover makes; the SDK client in production, a fake in tests.
pub trait Vpc {
    /// Every route table of the VPC, all pages.
    fn route_tables(
        &self,
        vpc: &VpcId,
    ) -> impl Future<Output = Result<Vec<RouteTable>, Ec2Error>> + Send;

    /// The instance the ENI is attached to; `None` when it is detached.
    fn eni_owner(
        &self,
        eni: &EniId,
    ) -> impl Future<Output = Result<Option<InstanceId>, Ec2Error>> + Send;

    /// The instance's state and last launch; `None` when EC2 no longer knows the instance (or
    /// reports a state this crate does not know).
    fn describe_instance(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = Result<Option<DescribedInstance>, Ec2Error>> + Send;

    /// Points the route at the move's ENI, in place.
    fn replace_route(
        &self,
        change: &RouteMove,
    ) -> impl Future<Output = Result<(), Ec2Error>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_ENI: &str = "eni-00fea71a1c9255bef";
    const STANDBY_ENI: &str = "eni-071b4d6cbf57de651";
    const PRIMARY_INSTANCE: &str = "i-05a7780f2af7c126c";

    fn primary() -> Appliance {
        Appliance {
            eni: PRIMARY_ENI.parse().unwrap(),
            instance: Some(PRIMARY_INSTANCE.parse().unwrap()),
        }
    }

    fn standby_eni() -> EniId {
        STANDBY_ENI.parse().unwrap()
    }

    fn to_eni(destination: Destination, eni: &str) -> Route {
        Route {
            destination: Some(destination),
            network_interface_id: Some(eni.to_owned()),
            instance_id: None,
            origin: RouteOrigin::CreateRoute,
            blackhole: false,
        }
    }

    fn v4(cidr: &str) -> Destination {
        Destination::Ipv4(cidr.to_owned())
    }

    fn table(id: &str, routes: Vec<Route>) -> RouteTable {
        RouteTable {
            id: id.parse().unwrap(),
            routes,
        }
    }

    fn local() -> Route {
        Route {
            destination: Some(v4("10.0.0.0/16")),
            network_interface_id: None,
            instance_id: None,
            origin: RouteOrigin::CreateRouteTable,
            blackhole: false,
        }
    }

    /// The plan as an operator reads it in the decision record, one line per route.
    fn summary(plan: &RoutePlan) -> Vec<String> {
        let moves = plan.moves.iter().map(|m| {
            let blackhole = if m.was_blackhole { " (blackhole)" } else { "" };
            format!("move {} {} -> {}{blackhole}", m.destination, m.from, m.to)
        });
        let skips = plan.skipped.iter().map(|s| {
            let destination = s.destination.as_ref().map(ToString::to_string);
            format!(
                "skip {} in {}: {:?}",
                destination.unwrap_or_default(),
                s.route_table_id,
                s.reason
            )
        });
        moves.chain(skips).collect()
    }

    struct Row {
        name: &'static str,
        tables: Vec<RouteTable>,
        allowed: Option<BTreeSet<RouteTableId>>,
        expected: Vec<String>,
    }

    fn row(name: &'static str, tables: Vec<RouteTable>, expected: &[&str]) -> Row {
        Row {
            name,
            tables,
            allowed: None,
            expected: expected
                .iter()
                .map(|line| {
                    line.replace("PRIMARY_ENI", PRIMARY_ENI)
                        .replace("PRIMARY_INSTANCE", PRIMARY_INSTANCE)
                        .replace("STANDBY_ENI", STANDBY_ENI)
                })
                .collect(),
        }
    }

    #[test]
    fn plan_route_moves_table() {
        let propagated = Route {
            origin: RouteOrigin::Propagated,
            ..to_eni(v4("172.16.0.0/12"), PRIMARY_ENI)
        };
        let blackhole = Route {
            blackhole: true,
            ..to_eni(v4("1.1.1.1/32"), PRIMARY_ENI)
        };
        let by_instance = Route {
            network_interface_id: None,
            instance_id: Some(PRIMARY_INSTANCE.to_owned()),
            ..to_eni(v4("192.168.0.0/16"), PRIMARY_ENI)
        };
        let lost_destination = Route {
            destination: None,
            ..to_eni(v4("0.0.0.0/0"), PRIMARY_ENI)
        };
        let to_gateway = Route {
            network_interface_id: None,
            ..to_eni(v4("0.0.0.0/0"), PRIMARY_ENI)
        };
        let ipv6 = Destination::Ipv6("2001:db8::/64".to_owned());
        let prefix_list = Destination::PrefixList("pl-0123abcd".to_owned());
        let two_tables = || {
            vec![
                table("rtb-a", vec![to_eni(v4("10.1.0.0/16"), PRIMARY_ENI)]),
                table("rtb-b", vec![to_eni(v4("10.3.0.0/16"), PRIMARY_ENI)]),
            ]
        };

        let rows = [
            row(
                "seed_ipv4_route_to_failed_eni_moves",
                vec![table(
                    "rtb-a",
                    vec![local(), to_eni(v4("1.1.1.1/32"), PRIMARY_ENI)],
                )],
                &["move 1.1.1.1/32 PRIMARY_ENI -> STANDBY_ENI"],
            ),
            row(
                "ipv6_route_moves",
                vec![table("rtb-a", vec![to_eni(ipv6, PRIMARY_ENI)])],
                &["move 2001:db8::/64 PRIMARY_ENI -> STANDBY_ENI"],
            ),
            row(
                "prefix_list_route_moves",
                vec![table("rtb-a", vec![to_eni(prefix_list, PRIMARY_ENI)])],
                &["move pl-0123abcd PRIMARY_ENI -> STANDBY_ENI"],
            ),
            row(
                "propagated_route_is_left_to_its_gateway",
                vec![table("rtb-a", vec![propagated])],
                &["skip 172.16.0.0/12 in rtb-a: Propagated"],
            ),
            row(
                "blackhole_route_of_failed_eni_moves",
                vec![table("rtb-a", vec![blackhole])],
                &["move 1.1.1.1/32 PRIMARY_ENI -> STANDBY_ENI (blackhole)"],
            ),
            row(
                "route_naming_the_instance_moves",
                vec![table("rtb-a", vec![by_instance])],
                &["move 192.168.0.0/16 PRIMARY_INSTANCE -> STANDBY_ENI"],
            ),
            row(
                "both_enis_in_one_table_only_failed_ones_move",
                vec![table(
                    "rtb-a",
                    vec![
                        to_eni(v4("10.1.0.0/16"), PRIMARY_ENI),
                        to_eni(v4("10.2.0.0/16"), STANDBY_ENI),
                    ],
                )],
                &["move 10.1.0.0/16 PRIMARY_ENI -> STANDBY_ENI"],
            ),
            row(
                "unrelated_routes_untouched",
                vec![table(
                    "rtb-a",
                    vec![
                        local(),
                        to_gateway,
                        to_eni(v4("10.9.0.0/16"), "eni-0000000000000000f"),
                    ],
                )],
                &[],
            ),
            row(
                "repeated_event_finds_nothing_to_move",
                vec![table("rtb-a", vec![to_eni(v4("1.1.1.1/32"), STANDBY_ENI)])],
                &[],
            ),
            Row {
                allowed: Some(["rtb-a".parse().unwrap()].into()),
                ..row(
                    "table_outside_allowlist_is_reported_not_moved",
                    two_tables(),
                    &[
                        "move 10.1.0.0/16 PRIMARY_ENI -> STANDBY_ENI",
                        "skip 10.3.0.0/16 in rtb-b: TableNotAllowed",
                    ],
                )
            },
            row(
                "route_without_destination_is_reported",
                vec![table("rtb-a", vec![lost_destination])],
                &["skip  in rtb-a: UnknownDestination"],
            ),
            row(
                "every_table_of_the_vpc_is_searched",
                two_tables(),
                &[
                    "move 10.1.0.0/16 PRIMARY_ENI -> STANDBY_ENI",
                    "move 10.3.0.0/16 PRIMARY_ENI -> STANDBY_ENI",
                ],
            ),
        ];
        for row in rows {
            let plan = plan_route_moves(
                &row.tables,
                &primary(),
                &standby_eni(),
                row.allowed.as_ref(),
            );
            assert_eq!(summary(&plan), row.expected, "{}", row.name);
        }
    }

    #[test]
    fn appliance_with_unknown_instance_matches_by_eni_only() {
        let detached = Appliance {
            eni: PRIMARY_ENI.parse().unwrap(),
            instance: None,
        };
        let by_instance = Route {
            network_interface_id: None,
            instance_id: Some(PRIMARY_INSTANCE.to_owned()),
            ..to_eni(v4("10.0.0.0/8"), PRIMARY_ENI)
        };
        assert!(!detached.is_next_hop_of(&by_instance));
        assert!(detached.is_next_hop_of(&to_eni(v4("10.0.0.0/8"), PRIMARY_ENI)));
    }

    #[test]
    fn instance_states_parse_as_eventbridge_spells_them() {
        let out_of_service: Vec<bool> = [
            "pending",
            "running",
            "stopping",
            "stopped",
            "shutting-down",
            "terminated",
        ]
        .iter()
        .map(|s| s.parse::<InstanceState>().unwrap().is_out_of_service())
        .collect();
        assert_eq!(out_of_service, [false, false, true, true, true, true]);
        assert!("rebooting".parse::<InstanceState>().is_err());
        assert_eq!(InstanceState::ShuttingDown.to_string(), "shutting-down");
    }

    #[test]
    fn ids_are_checked_against_their_prefix() {
        assert!("eni-0abc".parse::<EniId>().is_ok());
        assert!("i-0abc".parse::<EniId>().is_err());
        assert!("eni-".parse::<EniId>().is_err());
        assert!("vpc-0bf5741eb0ef56a41".parse::<VpcId>().is_ok());
        assert!("rtb-1; drop".parse::<RouteTableId>().is_err());
        let err = "eni-00fea71a1c9255bef".parse::<InstanceId>().unwrap_err();
        assert!(err.to_string().contains("instance id"), "{err}");
    }
}
