//! When each remote call began and ended, as the emulator that answered it saw it: the bench
//! lays an invocation's calls on one timeline (every emulator runs in one process, on one
//! clock) and counts the round trips in sequence.
//!
//! An emulator runs each request inside [`timed`]; the code that counts the call names it with
//! [`label`] (so a control request, which is not counted, leaves no span).

use std::cell::RefCell;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One remote call: its operation and when the emulator received it and answered it (the
/// head of the answer, its added latency included), in microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub operation: String,
    pub start_us: u64,
    pub end_us: u64,
}

tokio::task_local! {
    static LABEL: RefCell<Option<String>>;
}

/// Microseconds since the Unix epoch, the clock of every span.
pub fn now_us() -> u64 {
    unix_micros(SystemTime::now())
}

/// `at` on the clock of every span (0 before the epoch).
pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
    })
}

/// Names the call being timed (no effect outside [`timed`]).
pub fn label(operation: &str) {
    let _ = LABEL.try_with(|current| *current.borrow_mut() = Some(operation.to_owned()));
}

/// Runs one request; its span when it was [`label`]led.
pub async fn timed<F: Future>(request: F) -> (F::Output, Option<Span>) {
    let start_us = now_us();
    LABEL
        .scope(RefCell::new(None), async move {
            let output = request.await;
            let span = LABEL
                .with(|current| current.borrow_mut().take())
                .map(|operation| Span {
                    operation,
                    start_us,
                    end_us: now_us(),
                });
            (output, span)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_labelled_request_has_a_span_and_another_has_none() {
        let (answer, span) = timed(async {
            label("GetHealthCheck");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            7
        })
        .await;
        assert_eq!(answer, 7);
        let span = span.unwrap_or_else(|| panic!("no span"));
        assert_eq!(span.operation, "GetHealthCheck");
        assert!(span.end_us >= span.start_us + 2_000, "{span:?}");
        let (_, control) = timed(async {}).await;
        assert_eq!(control, None);
        label("outside any request");
    }
}
