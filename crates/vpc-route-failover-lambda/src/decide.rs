//! Which appliance failed, and which routes move to the other one: pure decisions.

use std::collections::BTreeSet;

use aws_topology::ec2::{
    Appliance, DescribedInstance, InstanceId, InstanceState, RoutePlan, RouteTable, RouteTableId,
    plan_route_moves,
};
use serde::Serialize;

use crate::event::StateChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Standby,
}

/// The two appliances, with the instances their ENIs were attached to when last looked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub primary: Appliance,
    pub standby: Appliance,
}

impl Pair {
    /// The role of the appliance running as `instance`, if either does.
    pub fn role_of(&self, instance: &InstanceId) -> Option<Role> {
        if self.primary.instance.as_ref() == Some(instance) {
            Some(Role::Primary)
        } else if self.standby.instance.as_ref() == Some(instance) {
            Some(Role::Standby)
        } else {
            None
        }
    }

    pub fn appliance(&self, role: Role) -> &Appliance {
        match role {
            Role::Primary => &self.primary,
            Role::Standby => &self.standby,
        }
    }

    pub fn other(role: Role) -> Role {
        match role {
            Role::Primary => Role::Standby,
            Role::Standby => Role::Primary,
        }
    }
}

/// Why an event leads to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignored {
    /// Neither appliance runs as this instance.
    UnknownInstance,
    /// `pending` / `running`: the appliance is coming back. Routes are not moved back
    /// automatically; that is the operator's call.
    BackInService,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ignore(Ignored),
    /// The appliance in this role is out of service: its routes go to the other one.
    FailOver(Role),
}

/// Decides whether the state change takes one of the pair out of service.
pub fn classify(change: &StateChange, pair: &Pair) -> Verdict {
    let Some(role) = pair.role_of(&change.instance) else {
        return Verdict::Ignore(Ignored::UnknownInstance);
    };
    if change.state.is_out_of_service() {
        Verdict::FailOver(role)
    } else {
        Verdict::Ignore(Ignored::BackInService)
    }
}

/// What EC2 answered when the invocation looked, after the event and before anything moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Every route table of the VPC.
    pub tables: Vec<RouteTable>,
    /// The instance the event is about; `None` when EC2 no longer knows it.
    pub failed: Option<DescribedInstance>,
    /// The other appliance's instance; `None` when it has none or EC2 does not know it.
    pub replacement: Option<DescribedInstance>,
}

/// What to do with the failed appliance's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The instance the event calls out of service is running now, launched after the event: it
    /// was started again since, and a late or re-delivered event must not move routes away
    /// from it.
    RunningNow,
    /// EC2 shows the instance running, launched before the event (or one of the two times is
    /// unknown): EC2's answer may lag the event, its API being eventually consistent. Neither
    /// moving routes away from a running appliance nor dropping a real failure is safe; ask EC2
    /// again later.
    RunningSinceBeforeEvent,
    /// No route (in the allowed tables) points at the failed appliance: done already, or never
    /// needed.
    NothingToMove(RoutePlan),
    /// Routes must move, but the appliance they would move to is not running: moving them would
    /// trade one dead next hop for another.
    ReplacementNotRunning {
        state: Option<InstanceState>,
        routes: RoutePlan,
    },
    Move(RoutePlan),
}

/// Plans the fail-over of `failed` (the appliance `change` took out of service) to
/// `replacement`, given what EC2 answered after the event. The event is checked against the
/// failed instance's state now first: only a `running` instance contradicts it (one that is
/// stopping, stopped, gone or even pending again forwards nothing now).
pub fn plan(
    change: &StateChange,
    failed: &Appliance,
    replacement: &Appliance,
    current: &Current,
    allowed_tables: Option<&BTreeSet<RouteTableId>>,
) -> Plan {
    if let Some(now) = current.failed
        && now.state == InstanceState::Running
    {
        let launched_after_event = match (now.launch_time, change.time) {
            (Some(launched), Some(event)) => launched > event,
            _ => false,
        };
        return if launched_after_event {
            Plan::RunningNow
        } else {
            Plan::RunningSinceBeforeEvent
        };
    }
    let replacement_state = current.replacement.map(|now| now.state);
    let routes = plan_route_moves(&current.tables, failed, &replacement.eni, allowed_tables);
    if routes.moves.is_empty() {
        Plan::NothingToMove(routes)
    } else if replacement_state != Some(InstanceState::Running) {
        Plan::ReplacementNotRunning {
            state: replacement_state,
            routes,
        }
    } else {
        Plan::Move(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_topology::ec2::{Destination, Route, RouteOrigin};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const PRIMARY_ENI_ID: &str = "eni-00fea71a1c9255bef";
    const STANDBY_ENI_ID: &str = "eni-071b4d6cbf57de651";
    const PRIMARY_INSTANCE: &str = "i-05a7780f2af7c126c";
    const STANDBY_INSTANCE: &str = "i-045ebd27124159b6d";

    fn pair() -> Pair {
        Pair {
            primary: Appliance {
                eni: PRIMARY_ENI_ID.parse().unwrap(),
                instance: Some(PRIMARY_INSTANCE.parse().unwrap()),
            },
            standby: Appliance {
                eni: STANDBY_ENI_ID.parse().unwrap(),
                instance: Some(STANDBY_INSTANCE.parse().unwrap()),
            },
        }
    }

    /// The time of the events below.
    const EVENT_TIME: u64 = 1_795_600_972;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn change(instance: &str, state: &str) -> StateChange {
        StateChange {
            instance: instance.parse().unwrap(),
            state: state.parse().unwrap(),
            time: Some(at(EVENT_TIME)),
        }
    }

    /// An instance in `state`, last launched at `launched` (seconds since the epoch).
    fn described(state: InstanceState, launched: Option<u64>) -> Option<DescribedInstance> {
        Some(DescribedInstance {
            state,
            launch_time: launched.map(at),
        })
    }

    #[test]
    fn classify_table() {
        use Verdict::*;
        let rows = [
            (
                "primary_stopping_fails_over",
                change(PRIMARY_INSTANCE, "stopping"),
                FailOver(Role::Primary),
            ),
            (
                "primary_stopped_fails_over",
                change(PRIMARY_INSTANCE, "stopped"),
                FailOver(Role::Primary),
            ),
            (
                "primary_shutting_down_fails_over",
                change(PRIMARY_INSTANCE, "shutting-down"),
                FailOver(Role::Primary),
            ),
            (
                "primary_terminated_fails_over",
                change(PRIMARY_INSTANCE, "terminated"),
                FailOver(Role::Primary),
            ),
            (
                "standby_stopped_fails_over_to_primary",
                change(STANDBY_INSTANCE, "stopped"),
                FailOver(Role::Standby),
            ),
            (
                "pending_is_no_automatic_failback",
                change(PRIMARY_INSTANCE, "pending"),
                Ignore(Ignored::BackInService),
            ),
            (
                "running_is_no_automatic_failback",
                change(PRIMARY_INSTANCE, "running"),
                Ignore(Ignored::BackInService),
            ),
            (
                "unknown_instance_ignored",
                change("i-0123456789abcdef0", "stopped"),
                Ignore(Ignored::UnknownInstance),
            ),
        ];
        for (name, event, expected) in rows {
            assert_eq!(classify(&event, &pair()), expected, "{name}");
        }
    }

    #[test]
    fn detached_eni_matches_no_instance() {
        let pair = Pair {
            primary: Appliance {
                instance: None,
                ..pair().primary
            },
            ..pair()
        };
        assert_eq!(
            classify(&change(PRIMARY_INSTANCE, "stopped"), &pair),
            Verdict::Ignore(Ignored::UnknownInstance)
        );
    }

    fn route(cidr: &str, eni: &str) -> Route {
        Route {
            destination: Some(Destination::Ipv4(cidr.into())),
            network_interface_id: Some(eni.into()),
            instance_id: None,
            origin: RouteOrigin::CreateRoute,
            blackhole: false,
        }
    }

    fn tables(routes: Vec<Route>) -> Vec<RouteTable> {
        vec![RouteTable {
            id: "rtb-0a1b2c3d".parse().unwrap(),
            routes,
        }]
    }

    fn kind(plan: &Plan) -> (&'static str, usize) {
        match plan {
            Plan::RunningNow => ("running_now", 0),
            Plan::RunningSinceBeforeEvent => ("running_since_before_event", 0),
            Plan::NothingToMove(_) => ("nothing_to_move", 0),
            Plan::ReplacementNotRunning { routes, .. } => {
                ("replacement_not_running", routes.moves.len())
            }
            Plan::Move(routes) => ("move", routes.moves.len()),
        }
    }

    /// EC2's answer after a `stopped` event of the primary: its tables, the primary's instance
    /// now, the standby's state now (launched long before the event).
    fn current(
        tables: Vec<RouteTable>,
        primary: Option<DescribedInstance>,
        standby: Option<InstanceState>,
    ) -> Current {
        Current {
            tables,
            failed: primary,
            replacement: standby.and_then(|state| described(state, Some(EVENT_TIME - 86_400))),
        }
    }

    #[test]
    fn plan_table() {
        use InstanceState::*;
        let p = pair();
        let via_primary = || tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]);
        let stopped = described(Stopped, Some(EVENT_TIME - 3600));
        let rows = [
            (
                "routes_move_to_running_standby",
                change(PRIMARY_INSTANCE, "stopped"),
                current(
                    tables(vec![
                        route("1.1.1.1/32", PRIMARY_ENI_ID),
                        route("10.0.0.0/8", PRIMARY_ENI_ID),
                    ]),
                    stopped,
                    Some(Running),
                ),
                ("move", 2),
            ),
            (
                "stopping_event_while_ec2_says_stopping_moves",
                change(PRIMARY_INSTANCE, "stopping"),
                current(
                    via_primary(),
                    described(Stopping, Some(EVENT_TIME - 3600)),
                    Some(Running),
                ),
                ("move", 1),
            ),
            (
                "late_stopped_event_for_a_restarted_instance_moves_nothing",
                change(PRIMARY_INSTANCE, "stopped"),
                current(
                    via_primary(),
                    described(Running, Some(EVENT_TIME + 60)),
                    Some(Running),
                ),
                ("running_now", 0),
            ),
            (
                "late_stopping_event_for_a_restarted_instance_moves_nothing",
                change(PRIMARY_INSTANCE, "stopping"),
                current(
                    via_primary(),
                    described(Running, Some(EVENT_TIME + 1)),
                    Some(Running),
                ),
                ("running_now", 0),
            ),
            (
                "running_since_before_the_event_may_be_ec2_lagging_and_is_asked_again",
                change(PRIMARY_INSTANCE, "stopping"),
                current(
                    via_primary(),
                    described(Running, Some(EVENT_TIME - 3600)),
                    Some(Running),
                ),
                ("running_since_before_event", 0),
            ),
            (
                "launched_in_the_events_second_is_not_after_it",
                change(PRIMARY_INSTANCE, "stopping"),
                current(
                    via_primary(),
                    described(Running, Some(EVENT_TIME)),
                    Some(Running),
                ),
                ("running_since_before_event", 0),
            ),
            (
                "running_without_launch_time_is_asked_again",
                change(PRIMARY_INSTANCE, "stopped"),
                current(via_primary(), described(Running, None), Some(Running)),
                ("running_since_before_event", 0),
            ),
            (
                "running_and_event_without_time_is_asked_again",
                StateChange {
                    time: None,
                    ..change(PRIMARY_INSTANCE, "stopped")
                },
                current(
                    via_primary(),
                    described(Running, Some(EVENT_TIME + 60)),
                    Some(Running),
                ),
                ("running_since_before_event", 0),
            ),
            (
                "pending_again_forwards_nothing_yet_so_routes_move",
                change(PRIMARY_INSTANCE, "stopped"),
                current(
                    via_primary(),
                    described(Pending, Some(EVENT_TIME + 60)),
                    Some(Running),
                ),
                ("move", 1),
            ),
            (
                "instance_ec2_no_longer_knows_is_out_of_service",
                change(PRIMARY_INSTANCE, "terminated"),
                current(via_primary(), None, Some(Running)),
                ("move", 1),
            ),
            (
                "standby_stopped_is_reported_not_used",
                change(PRIMARY_INSTANCE, "stopped"),
                current(via_primary(), stopped, Some(Stopped)),
                ("replacement_not_running", 1),
            ),
            (
                "standby_pending_is_not_running_yet",
                change(PRIMARY_INSTANCE, "stopped"),
                current(via_primary(), stopped, Some(Pending)),
                ("replacement_not_running", 1),
            ),
            (
                "standby_unknown_to_ec2_is_not_running",
                change(PRIMARY_INSTANCE, "stopped"),
                current(via_primary(), stopped, None),
                ("replacement_not_running", 1),
            ),
            (
                "repeated_event_finds_nothing_to_move",
                change(PRIMARY_INSTANCE, "stopped"),
                current(
                    tables(vec![route("1.1.1.1/32", STANDBY_ENI_ID)]),
                    stopped,
                    Some(Running),
                ),
                ("nothing_to_move", 0),
            ),
            (
                "nothing_to_move_needs_no_running_standby",
                change(PRIMARY_INSTANCE, "stopped"),
                current(
                    tables(vec![route("1.1.1.1/32", STANDBY_ENI_ID)]),
                    stopped,
                    Some(Stopped),
                ),
                ("nothing_to_move", 0),
            ),
        ];
        for (name, event, current, expected) in rows {
            let plan = plan(&event, &p.primary, &p.standby, &current, None);
            assert_eq!(kind(&plan), expected, "{name}");
        }
    }

    #[test]
    fn only_allowed_tables_count_as_something_to_move() {
        let p = pair();
        let allowed: BTreeSet<RouteTableId> = ["rtb-0ffff".parse().unwrap()].into();
        let plan = plan(
            &change(PRIMARY_INSTANCE, "stopped"),
            &p.primary,
            &p.standby,
            &current(
                tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]),
                described(InstanceState::Stopped, Some(EVENT_TIME - 3600)),
                Some(InstanceState::Running),
            ),
            Some(&allowed),
        );
        let Plan::NothingToMove(routes) = plan else {
            panic!("expected nothing to move, got {plan:?}");
        };
        assert_eq!(routes.skipped.len(), 1);
    }
}
