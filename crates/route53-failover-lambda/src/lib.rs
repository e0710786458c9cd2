//! The Route 53 failover function (seed 000, Keycloak's active/passive setup).
//!
//! A CloudWatch alarm watches the primary site's Route 53 health check. When it goes to `ALARM`
//! (through SNS, or invoking the function directly), the function points that health check at a
//! path that never answers, so that Route 53 keeps the traffic on the secondary site even once the
//! primary answers again: the primary must not serve before an operator has synchronised the
//! sites and failed back (`cargo xtask route53 failback`).
//!
//! * [`event`]: the trigger event, parsed into [`event::AlarmNotice`]s, one per record.
//! * [`config`]: the environment the function reads ([`config::vars`] names every variable) and
//!   the one a deployment writes ([`config::Environment`]).
//! * [`decide`]: the pure decision per notice under a [`decide::Policy`].
//! * [`handler`]: the invocation (decide, pin through `aws_topology::route53`, report) and the
//!   Lambda handler.

pub mod config;
pub mod decide;
pub mod event;
#[cfg(feature = "live")]
pub mod handler;

#[cfg(feature = "live")]
pub use handler::{Failover, handle};

/// The function's name in logs and decision records.
pub const FUNCTION_NAME: &str = "route53-failover-lambda";
