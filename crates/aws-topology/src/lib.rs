//! The AWS side of a two-site deployment, each service behind its own cargo feature so that a
//! function links only the SDKs it calls:
//!
//! * `globalaccelerator` (+ `elbv2`): accelerators, listeners and endpoint groups, and which site
//!   each endpoint belongs to (ELBv2 tags).
//! * `route53`: health checks and their failed-over path.
//! * `ec2`: VPC route tables and the appliances routes point at.

pub mod retry;

#[cfg(feature = "ec2")]
pub mod ec2;
#[cfg(feature = "elbv2")]
pub mod elbv2;
#[cfg(feature = "globalaccelerator")]
pub mod globalaccelerator;
#[cfg(feature = "route53")]
pub mod route53;
