//! Split-brain fencing for a two-site deployment (Keycloak + Infinispan behind an AWS Global
//! Accelerator), triggered by Alertmanager's `SiteOffline` alert through a Function URL.
//!
//! # The survivor rule
//!
//! A `SiteOffline` alert says that site R (label `reporter`) lost sight of site O (label
//! `site`). For each firing alert:
//!
//! 1. R and O must be different sites known to the function (the keys of
//!    `INFINISPAN_SITE_ENDPOINTS`); otherwise the alert is rejected (4xx).
//! 2. Health first. A site is unhealthy when all its endpoints in the accelerator are
//!    `UNHEALTHY`. R unhealthy → nothing to do (the other site's report handles it), 2xx. R with
//!    no endpoint left → it was fenced already, possibly by this very report whose Infinispan
//!    step failed: finish that fence (O's backup to R goes offline). O unhealthy, or O with no
//!    endpoint left (fenced earlier: the fence is finished, it is resumable), and R healthy → R
//!    survives.
//! 3. Both healthy: a true split-brain, or a site failure the accelerator has not seen yet. The
//!    preferred site P wins (`PREFERRED_SITE`, default the alphabetically first site) if its
//!    Infinispan answers a short, direct probe; if not, the other site survives. Both reports of
//!    one split-brain decide on the same fact whichever site sends them, so they pick the same
//!    survivor whatever their order and concurrency (a survivor whose Infinispan cannot be
//!    reached could not have its backup taken offline anyway).
//! 4. The loser's endpoints are removed from every endpoint group of the accelerator that keeps
//!    at least one endpoint of another site (a group that would be emptied is left alone and
//!    reported), then the survivor's Infinispan backup to the loser is taken offline for every
//!    cache, also when the endpoints were already gone. Global Accelerator strictly first.
//!    An unknown accelerator, resolved alerts and other alert names are ignored (2xx); a
//!    resolved alert never adds anything back.
//! 5. Status codes: 401 for missing or wrong credentials (with `WWW-Authenticate`), 400/413/415
//!    for malformed bodies, 2xx when done or ignored, 503 when a retry may succeed (throttling or
//!    `TransactionInProgressException` past the time budget, Infinispan unreachable, a cache
//!    that did not go offline), so that Alertmanager retries.
//!
//! The response body and the one decision record logged per invocation say, per alert, what
//! was done or why not.

pub mod config;
pub mod decide;
pub mod event;
pub mod handler;
#[cfg(feature = "live")]
pub mod live;

#[cfg(test)]
mod model_check;
#[cfg(test)]
mod tests;
