//! Split-brain fencing for a two-site deployment (Keycloak + Infinispan behind an AWS Global
//! Accelerator), triggered by Alertmanager's `SiteOffline` alert through a Function URL.
//!
//! # What it does
//!
//! A `SiteOffline` alert says that site R (label `reporter`) lost sight of site O (label
//! `site`). README's "Fencing a split-brain" is the full rule; in short, per firing alert:
//!
//! 1. R and O must be two different sites the function knows, or the alert is rejected (4xx).
//! 2. Read the accelerator (its listeners and their endpoint groups) with a probe of the
//!    preferred site's Infinispan beside it. Health decides where the two sites differ; where
//!    they are alike, the probe does ([`decide::choose`]).
//! 3. Record the decision with a conditional create in DynamoDB, or adopt the one already
//!    recorded for this split-brain: every later, resent or concurrent report carries out the
//!    same decision ([`handler`], `aws_topology::decisions`).
//! 4. In every listener take the loser out: remove its endpoints where its group keeps another
//!    weighted endpoint, else close the group's traffic dial ([`decide::traffic_plan`]); then
//!    take the survivor's backup to the loser offline for every cache. Global Accelerator
//!    strictly first.
//! 5. Answer 2xx only when all that is done or provably not needed; 401 for missing or wrong
//!    credentials, 400/413/415 for malformed bodies, 5xx when a retry may succeed, so that
//!    Alertmanager resends.
//!
//! The response body and the one decision record logged per invocation ([`handler::Report`])
//! say, per alert, what was done or why not.

pub mod config;
pub mod decide;
pub mod event;
pub mod handler;
#[cfg(feature = "live")]
pub mod live;
pub mod preflight;

#[cfg(test)]
mod model_check;
#[cfg(test)]
mod tests;
