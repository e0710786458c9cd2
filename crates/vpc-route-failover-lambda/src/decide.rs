//! Which appliance failed, and which routes move to the other one: pure decisions.

use std::collections::BTreeSet;

use aws_topology::ec2::{
    Appliance, InstanceId, InstanceState, RoutePlan, RouteTable, RouteTableId, plan_route_moves,
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

/// What to do with the failed appliance's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
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

/// Plans the fail-over of `failed` to `replacement`, given the VPC's route tables and the state
/// the replacement's instance was found in (`None`: no instance, or EC2 does not know it).
pub fn plan(
    tables: &[RouteTable],
    failed: &Appliance,
    replacement: &Appliance,
    replacement_state: Option<InstanceState>,
    allowed_tables: Option<&BTreeSet<RouteTableId>>,
) -> Plan {
    let routes = plan_route_moves(tables, failed, &replacement.eni, allowed_tables);
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

    fn change(instance: &str, state: &str) -> StateChange {
        StateChange {
            instance: instance.parse().unwrap(),
            state: state.parse().unwrap(),
        }
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
            Plan::NothingToMove(_) => ("nothing_to_move", 0),
            Plan::ReplacementNotRunning { routes, .. } => {
                ("replacement_not_running", routes.moves.len())
            }
            Plan::Move(routes) => ("move", routes.moves.len()),
        }
    }

    #[test]
    fn plan_table() {
        use InstanceState::*;
        let p = pair();
        let rows = [
            (
                "routes_move_to_running_standby",
                tables(vec![
                    route("1.1.1.1/32", PRIMARY_ENI_ID),
                    route("10.0.0.0/8", PRIMARY_ENI_ID),
                ]),
                Some(Running),
                ("move", 2),
            ),
            (
                "standby_stopped_is_reported_not_used",
                tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]),
                Some(Stopped),
                ("replacement_not_running", 1),
            ),
            (
                "standby_pending_is_not_running_yet",
                tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]),
                Some(Pending),
                ("replacement_not_running", 1),
            ),
            (
                "standby_unknown_to_ec2_is_not_running",
                tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]),
                None,
                ("replacement_not_running", 1),
            ),
            (
                "repeated_event_finds_nothing_to_move",
                tables(vec![route("1.1.1.1/32", STANDBY_ENI_ID)]),
                Some(Running),
                ("nothing_to_move", 0),
            ),
            (
                "nothing_to_move_needs_no_running_standby",
                tables(vec![route("1.1.1.1/32", STANDBY_ENI_ID)]),
                Some(Stopped),
                ("nothing_to_move", 0),
            ),
        ];
        for (name, tables, standby_state, expected) in rows {
            let plan = plan(&tables, &p.primary, &p.standby, standby_state, None);
            assert_eq!(kind(&plan), expected, "{name}");
        }
    }

    #[test]
    fn only_allowed_tables_count_as_something_to_move() {
        let p = pair();
        let allowed: BTreeSet<RouteTableId> = ["rtb-0ffff".parse().unwrap()].into();
        let plan = plan(
            &tables(vec![route("1.1.1.1/32", PRIMARY_ENI_ID)]),
            &p.primary,
            &p.standby,
            Some(InstanceState::Running),
            Some(&allowed),
        );
        let Plan::NothingToMove(routes) = plan else {
            panic!("expected nothing to move, got {plan:?}");
        };
        assert_eq!(routes.skipped.len(), 1);
    }
}
