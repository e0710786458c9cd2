//! The AWS side of a two-site deployment. Each module's types and pure planning are always
//! there; its SDK client sits behind a cargo feature of the same name, so that a function links
//! only the SDKs it calls and the parsers can be fuzzed without any:
//!
//! * `globalaccelerator` (+ `elbv2`): accelerators, listeners and endpoint groups, and which site
//!   each endpoint belongs to (ELBv2 tags).
//! * `route53`: health checks and their failed-over path.
//! * `ec2`: VPC route tables and the appliances routes point at.
//! * `decisions`: the fence's decision record, one per split-brain (DynamoDB).

pub mod retry;

pub mod decisions;
pub mod ec2;
#[cfg(feature = "elbv2")]
pub mod elbv2;
pub mod globalaccelerator;
pub mod route53;
