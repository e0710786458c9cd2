//! How a result maps to an HTTP status.
//!
//! Alertmanager (and Lambda's asynchronous callers) retry only on 5xx and network errors, so the
//! status says whether a retry can help: 4xx for bad or unauthenticated input, 2xx for work done
//! or ignored by design, 5xx for failures that may pass on a retry.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The action was carried out (or had already been carried out).
    Done,
    /// Nothing to do by design (resolved alert, other alert name, unknown accelerator...).
    Ignored,
    /// The request or alert is malformed; retrying the same input cannot help.
    BadInput,
    /// Missing or wrong credentials.
    Unauthorized,
    /// May pass on a retry (throttling, a dependency unreachable, a conflicting change).
    Transient,
    /// A failure a retry will most likely not fix (permissions, configuration).
    Fatal,
}

impl Disposition {
    pub fn http_status(self) -> u16 {
        match self {
            Disposition::Done | Disposition::Ignored => 200,
            Disposition::BadInput => 400,
            Disposition::Unauthorized => 401,
            Disposition::Transient => 503,
            Disposition::Fatal => 500,
        }
    }

    /// How much this outcome must weigh when several alerts share one response: a transient
    /// failure wins so that the sender retries (fencing is idempotent, so alerts already done are
    /// safe to repeat), then fatal, then bad input.
    fn severity(self) -> u8 {
        match self {
            Disposition::Ignored => 0,
            Disposition::Done => 1,
            Disposition::BadInput => 2,
            Disposition::Unauthorized => 3,
            Disposition::Fatal => 4,
            Disposition::Transient => 5,
        }
    }

    /// The outcome of a whole request made of several parts; `Ignored` when there are none.
    pub fn most_severe(outcomes: impl IntoIterator<Item = Disposition>) -> Disposition {
        outcomes
            .into_iter()
            .max_by_key(|d| d.severity())
            .unwrap_or(Disposition::Ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::Disposition::*;
    use super::*;

    #[test]
    fn statuses_follow_the_retry_rule() {
        let table = [
            (Done, 200),
            (Ignored, 200),
            (BadInput, 400),
            (Unauthorized, 401),
            (Transient, 503),
            (Fatal, 500),
        ];
        for (disposition, status) in table {
            assert_eq!(disposition.http_status(), status, "{disposition:?}");
        }
    }

    #[test]
    fn a_transient_failure_makes_the_whole_request_retried() {
        assert_eq!(
            Disposition::most_severe([Done, Transient, BadInput, Ignored]),
            Transient
        );
        assert_eq!(Disposition::most_severe([Done, Ignored]), Done);
        assert_eq!(Disposition::most_severe([Done, BadInput]), BadInput);
        assert_eq!(Disposition::most_severe([]), Ignored);
    }
}
