//! Shared pieces of the sitefence functions.
//!
//! * [`config`]: settings from the environment, with the seeds' variable names as aliases.
//! * [`logging`]: JSON logs on stdout and the one decision record per invocation.
//! * [`metrics`]: the one CloudWatch Embedded Metric Format line per invocation, and the count
//!   of remote calls it reports.
//! * [`aws`] (feature `aws`, implied by the others): the AWS SDK configuration every function
//!   starts from.
//! * [`secret`]: a [`secret::Secret`] never prints its value; with the `secrets` feature,
//!   [`secret::SecretCache`] reads Secrets Manager and keeps values across warm invocations.
//! * [`auth`]: the HTTP Basic check of the fence webhook (both fields, constant time).
//! * [`site`]: validated names ([`site::SiteName`], [`site::AcceleratorDns`]).
//! * [`alertmanager`]: the Alertmanager webhook (version 4) and the typed `SiteOffline` alert.
//! * [`outcome`]: how a result maps to an HTTP status, so that senders retry only what may pass
//!   on a retry.
//! * [`join`]: running a varying number of futures at once on one task.
//! * [`notify`] (feature `notify`): SNS notification of every action taken.
//! * [`mode`]: enforce or monitor (change nothing, say what would be done), for all three
//!   functions, their decision records and the operator's tool.
//!
//! Function URL requests (payload format 2.0, including base64 bodies) are decoded by the fence
//! (`fence_lambda::event`); this crate starts from the decoded body bytes.

pub mod alertmanager;
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod join;
pub mod logging;
pub mod metrics;
pub mod mode;
#[cfg(feature = "notify")]
pub mod notify;
pub mod outcome;
pub mod secret;
pub mod site;
