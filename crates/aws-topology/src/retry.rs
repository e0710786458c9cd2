//! Retrying AWS calls that failed for a reason a retry can fix, within a time budget.
//!
//! The SDK's own retry (standard mode) already retries throttling and transient network errors
//! a few times. This loop is for what the SDK does not retry, above all Global Accelerator's
//! `TransactionInProgressException` (another change to the accelerator is being applied), and
//! for throttling that outlasts the SDK's attempts. Backoff is exponential with full jitter
//! (a uniform random wait between 0 and the exponential step), so that two functions racing on
//! one accelerator do not retry in lockstep; it stops when the next wait would end past the
//! deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a failed attempt means for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after a backoff.
    Transient,
    /// Give up now: a retry cannot help.
    Permanent,
}

/// An AWS call failed (any service; built from an SDK error in the service modules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    /// The AWS error code, when the service answered one.
    pub code: Option<String>,
    pub message: String,
    /// Whether a later attempt may succeed (throttling, a transaction in progress, 5xx,
    /// timeouts and network errors).
    pub retryable: bool,
}

impl AwsError {
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The classification [`retry`] needs.
    pub fn retry(&self) -> Retry {
        if self.retryable {
            Retry::Transient
        } else {
            Retry::Permanent
        }
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    /// The upper bound of the wait after `failures` failed attempts (1-based).
    fn ceiling(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// Time and sleeping, so that tests can run the loop without waiting.
pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The real clock (tokio's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// Runs `attempt` until it succeeds, fails permanently, runs out of attempts, or the next
/// backoff would end after `deadline`; returns the last error then. `classify` decides which
/// errors are worth another attempt.
pub async fn retry<T, E, F, Fut>(
    operation: &str,
    backoff: &Backoff,
    deadline: Instant,
    classify: impl Fn(&E) -> Retry,
    attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    retry_with_clock(&TokioClock, operation, backoff, deadline, classify, attempt).await
}

/// [`retry`] with a given clock.
pub async fn retry_with_clock<T, E, F, Fut, C>(
    clock: &C,
    operation: &str,
    backoff: &Backoff,
    deadline: Instant,
    classify: impl Fn(&E) -> Retry,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
    C: Clock,
{
    let mut failures = 0u32;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        failures += 1;
        if classify(&error) == Retry::Permanent || failures >= backoff.max_attempts {
            return Err(error);
        }
        let ceiling = backoff.ceiling(failures);
        let wait = Duration::from_nanos(fastrand::u64(0..=ceiling.as_nanos() as u64));
        let now = clock.now();
        if now + wait >= deadline {
            tracing::warn!(operation, attempts = failures, error = %error, "retry_budget_exhausted");
            return Err(error);
        }
        tracing::info!(operation, attempt = failures, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
        clock.sleep(wait).await;
    }
}

/// How an SDK call failed, before each service names it in its own error type.
#[cfg(feature = "sdk")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkFailure {
    /// Throttling, a 5xx, one of the service's "not now" codes, or the request may not even
    /// have arrived (timeout, connection failure, unreadable response).
    Transient(String),
    /// Refused as sent: trying again gets the same answer.
    Refused { code: String, message: String },
}

/// Sorts an SDK error of any service, the one classifier of this crate: a service error is
/// transient when its status is 429 or 5xx or its code is one of [`TRANSIENT_CODES`], refused
/// otherwise; a request that could not be built is
/// refused; anything else (timeout, dispatch, response) is transient.
#[cfg(feature = "sdk")]
pub fn classify_sdk<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::http::Response,
    >,
) -> SdkFailure
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;

    let message = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("Unknown");
            let status = context.raw().status().as_u16();
            if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                SdkFailure::Transient(message)
            } else {
                SdkFailure::Refused {
                    code: code.to_owned(),
                    message: context.err().message().unwrap_or_default().to_owned(),
                }
            }
        }
        SdkError::ConstructionFailure(_) => SdkFailure::Refused {
            code: "ConstructionFailure".to_owned(),
            message,
        },
        _ => SdkFailure::Transient(message),
    }
}

/// The codes that mean "not now" for the services this crate calls, whatever the status: one
/// list for every client (Global Accelerator, ELBv2, DynamoDB, Route 53, EC2), so that a code
/// one service uses for throttling is never a refusal in another's classifier.
#[cfg(feature = "sdk")]
pub(crate) const TRANSIENT_CODES: &[&str] = &[
    "TransactionInProgressException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "InternalServiceErrorException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
];

#[cfg(feature = "sdk")]
impl AwsError {
    /// Classifies an SDK error of any AWS service with [`classify_sdk`]: the status (429, 5xx)
    /// and the "not now" codes make it retryable.
    pub fn from_sdk<E>(
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> AwsError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        use aws_smithy_types::error::metadata::ProvideErrorMetadata;

        let code = err.code().map(str::to_owned);
        let retryable = matches!(classify_sdk(&err), SdkFailure::Transient(_));
        AwsError {
            operation,
            code,
            message: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
            retryable,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A clock whose sleeps advance time at once.
    struct FakeClock {
        now: Mutex<Instant>,
        slept: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new(start: Instant) -> Self {
            FakeClock {
                now: Mutex::new(start),
                slept: Mutex::new(Vec::new()),
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
            *self.now.lock().unwrap() += duration;
            self.slept.lock().unwrap().push(duration);
            std::future::ready(())
        }
    }

    #[derive(Debug, PartialEq)]
    enum Failure {
        InProgress,
        Denied,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn classify(f: &Failure) -> Retry {
        match f {
            Failure::InProgress => Retry::Transient,
            Failure::Denied => Retry::Permanent,
        }
    }

    /// Fails with the given errors in turn, then succeeds with the number of attempts made.
    async fn run(
        clock: &FakeClock,
        budget: Duration,
        mut failures: Vec<Failure>,
    ) -> (Result<u32, Failure>, u32) {
        failures.reverse();
        let mut calls = 0;
        let backoff = Backoff::default();
        let result = retry_with_clock(
            clock,
            "RemoveEndpoints",
            &backoff,
            clock.now() + budget,
            classify,
            || {
                calls += 1;
                let next = failures.pop();
                let calls = calls;
                async move {
                    match next {
                        Some(failure) => Err(failure),
                        None => Ok(calls),
                    }
                }
            },
        )
        .await;
        (result, calls)
    }

    #[tokio::test]
    async fn transaction_in_progress_twice_then_success() {
        let clock = FakeClock::new(Instant::now());
        let (result, calls) = run(
            &clock,
            Duration::from_secs(30),
            vec![Failure::InProgress, Failure::InProgress],
        )
        .await;
        assert_eq!(result, Ok(3));
        assert_eq!(calls, 3);
        let slept = clock.slept.lock().unwrap();
        assert_eq!(slept.len(), 2);
        assert!(
            slept[0] <= Duration::from_millis(100) && slept[1] <= Duration::from_millis(200),
            "{slept:?}"
        );
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let clock = FakeClock::new(Instant::now());
        let (result, calls) = run(&clock, Duration::from_secs(30), vec![Failure::Denied]).await;
        assert_eq!(result, Err(Failure::Denied));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn gives_up_within_the_time_budget() {
        let clock = FakeClock::new(Instant::now());
        let start = clock.now();
        let budget = Duration::from_secs(3);
        let (result, calls) = run(
            &clock,
            budget,
            (0..100).map(|_| Failure::InProgress).collect(),
        )
        .await;
        assert_eq!(result, Err(Failure::InProgress));
        assert!(calls >= 2, "should have retried, made {calls} calls");
        assert!(clock.now() < start + budget, "slept past the deadline");
        assert!(calls <= Backoff::default().max_attempts);
    }

    #[tokio::test]
    async fn stops_after_max_attempts() {
        let clock = FakeClock::new(Instant::now());
        let (result, calls) = run(
            &clock,
            Duration::from_secs(3600),
            (0..100).map(|_| Failure::InProgress).collect(),
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls, Backoff::default().max_attempts);
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_the_max() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(6), Duration::from_secs(2));
        assert_eq!(b.ceiling(60), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn real_clock_with_tiny_delays() {
        let backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
            max_attempts: 5,
        };
        let mut left = 2;
        let result: Result<&str, Failure> = retry(
            "op",
            &backoff,
            Instant::now() + Duration::from_secs(5),
            classify,
            || {
                let fail = left > 0;
                left -= 1;
                async move {
                    if fail {
                        Err(Failure::InProgress)
                    } else {
                        Ok("done")
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok("done"));
    }

    #[cfg(feature = "sdk")]
    #[test]
    fn transaction_in_progress_and_throttling_are_transient_denials_are_not() {
        for code in ["TransactionInProgressException", "ThrottlingException"] {
            assert!(TRANSIENT_CODES.contains(&code));
        }
        for code in ["AccessDeniedException", "EndpointGroupNotFoundException"] {
            assert!(!TRANSIENT_CODES.contains(&code));
        }
    }
}
