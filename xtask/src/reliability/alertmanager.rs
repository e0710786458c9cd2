//! How Alertmanager sends a webhook notification, which the interleaving suite's reports follow
//! (docs/aws-behaviours.md, entries 7 and 33; prometheus/alertmanager `notify/webhook/webhook.go`,
//! `notify/util.go`, `notify/retry_stage.go`, `dispatch/dispatch.go`):
//!
//! * no response (a network error) and 5xx are retried; 2xx is delivered; every other status,
//!   429 and the rest of 4xx included, ends the notification at once (the webhook's `Retrier`
//!   has no extra retry codes);
//! * the first attempt goes out at once, the next ones after an exponential backoff (cenkalti
//!   `ExponentialBackOff` defaults: 500 ms, ×1.5, ±50 %, at most 60 s);
//! * attempts stop when the flush's context ends: the group's `group_interval` (at least 10 s).
//!
//! Times are scaled down by [`SCALE`] so that a round takes seconds, not minutes.

use std::time::Duration;

/// Alertmanager's times divided by this.
pub const SCALE: u32 = 4;
/// `group_interval` of the deployment's Alertmanager (`xtask manifests`, seed profile: 90 s).
const GROUP_INTERVAL: Duration = Duration::from_secs(90);
/// `notify.MinTimeout`: a flush's context lasts at least this long.
const MIN_TIMEOUT: Duration = Duration::from_secs(10);
const INITIAL_INTERVAL: Duration = Duration::from_millis(500);
const MULTIPLIER: f64 = 1.5;
const RANDOMIZATION: f64 = 0.5;
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// What Alertmanager does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Retry,
    /// The notification failed and is not retried (it goes out again only at the group's next
    /// flush, which a round does not wait for).
    GiveUp,
}

/// `Retrier.Check` of the webhook notifier; `None` is an attempt without a response.
pub fn after(status: Option<u16>) -> Next {
    match status {
        None => Next::Retry,
        Some(200..=299) => Next::Delivered,
        Some(500..=599) => Next::Retry,
        Some(_) => Next::GiveUp,
    }
}

/// How long one notification's attempts go on, scaled.
pub fn window() -> Duration {
    GROUP_INTERVAL.max(MIN_TIMEOUT) / SCALE
}

/// The waits between attempts, scaled.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            current: INITIAL_INTERVAL / SCALE,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt: the current interval ± 50 %, then the interval grows.
    pub fn next(&mut self, rng: &mut fastrand::Rng) -> Duration {
        let delta = self.current.as_secs_f64() * RANDOMIZATION;
        let low = self.current.as_secs_f64() - delta;
        let wait = Duration::from_secs_f64(low + rng.f64() * 2.0 * delta);
        self.current = self.current.mul_f64(MULTIPLIER).min(MAX_INTERVAL / SCALE);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_5xx_and_network_errors_are_retried() {
        let table: &[(Option<u16>, Next)] = &[
            (Some(200), Next::Delivered),
            (Some(204), Next::Delivered),
            (Some(500), Next::Retry),
            (Some(502), Next::Retry),
            (Some(503), Next::Retry),
            (None, Next::Retry),
            (Some(429), Next::GiveUp),
            (Some(400), Next::GiveUp),
            (Some(401), Next::GiveUp),
            (Some(403), Next::GiveUp),
            (Some(413), Next::GiveUp),
            (Some(302), Next::GiveUp),
        ];
        for (status, next) in table {
            assert_eq!(after(*status), *next, "{status:?}");
        }
    }

    #[test]
    fn backoff_grows_by_half_within_half_either_way_up_to_its_cap() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut backoff = Backoff::default();
        let mut interval = INITIAL_INTERVAL.as_secs_f64() / f64::from(SCALE);
        let cap = MAX_INTERVAL.as_secs_f64() / f64::from(SCALE);
        for _ in 0..40 {
            let wait = backoff.next(&mut rng).as_secs_f64();
            assert!(
                wait >= interval * 0.5 - 1e-9 && wait <= interval * 1.5 + 1e-9,
                "{wait} for {interval}"
            );
            interval = (interval * MULTIPLIER).min(cap);
        }
        assert_eq!(window(), Duration::from_millis(22_500));
    }
}
