//! The VPC route failover function (seed 003).
//!
//! Two network appliances (primary and standby) sit in one VPC, and routes send traffic to the
//! primary's network interface. When EventBridge reports that one of them is stopping, stopped,
//! shutting down or terminated, the function points every route whose next hop is that appliance
//! (by ENI or by instance id) at the other one's ENI, in place with `ReplaceRoute`. An appliance
//! coming back (`pending`, `running`) moves nothing back: that is an operator's decision. Before
//! anything moves, the event is checked against what EC2 says of the instance now: a late or
//! re-delivered stop event for an instance that has been started again moves nothing.
//!
//! * [`event`]: the EventBridge event, parsed into an [`event::StateChange`].
//! * [`config`]: the [`config::Settings`] the function reads ([`config::vars`] names every
//!   variable) and the environment a deployment writes ([`config::Environment`]).
//! * [`decide`]: the pure decisions (which appliance failed, what to move).
//! * [`handler`]: the invocation (resolve the pair, read the route tables through
//!   `aws_topology::ec2`, move, report) and the Lambda handler.

pub mod config;
pub mod decide;
pub mod event;
#[cfg(feature = "live")]
pub mod handler;

#[cfg(feature = "live")]
pub use handler::{Failover, handle};

/// The function's name in logs and decision records.
pub const FUNCTION_NAME: &str = "vpc-route-failover-lambda";
