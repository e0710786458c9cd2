//! Route 53 health checks and the path they probe.
//!
//! Failing over means pointing the primary site's health check at a path that never answers, so
//! that Route 53 keeps the traffic on the secondary even after the primary comes back (it must not
//! serve before the sites are synchronised). Failing back is the operator restoring the original
//! path. Both are the same write: set the path, guarded by `HealthCheckVersion` so that a
//! concurrent change of the health check is never overwritten blindly.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

#[cfg(feature = "route53")]
mod client;

/// Route 53 publishes health-check metrics in CloudWatch in this region only, so the alarm, its
/// SNS topic and the failover function live there.
pub const ALARM_REGION: &str = "us-east-1";

/// The path the health check probes in normal operation (the Keycloak HA guide's `/lb-check`).
pub const ORIGINAL_PATH: &str = "/lb-check";
/// A path that never answers: a health check pointed there stays unhealthy until an operator
/// fails back.
pub const FAILED_OVER_PATH: &str = "/lb-check-failed-over";
/// How many times a write is attempted when another writer keeps changing the health check
/// between our read and our write.
pub const MAX_WRITE_ATTEMPTS: u32 = 5;

/// A Route 53 health check id (a UUID in practice). Checked once at the edge so that nothing
/// built from an alarm or an environment variable can smuggle an empty or odd id into a request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HealthCheckId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Route 53 health check id (letters, digits and '-', at most 64 characters)")]
pub struct InvalidHealthCheckId(pub String);

impl HealthCheckId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HealthCheckId {
    type Err = InvalidHealthCheckId;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let trimmed = value.trim();
        let well_formed = !trimmed.is_empty()
            && trimmed.len() <= 64
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if well_formed {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(InvalidHealthCheckId(value.to_owned()))
        }
    }
}

impl fmt::Display for HealthCheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What this crate needs to know of a health check to change its path safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub id: HealthCheckId,
    /// `HealthCheckVersion`: every update must name the version it was planned against.
    pub version: i64,
    /// `HTTP`, `HTTPS`, `TCP`, `CALCULATED`, ... as Route 53 spells it.
    pub kind: String,
    pub resource_path: Option<String>,
    /// Route 53 treats a disabled health check as healthy, whatever its path.
    pub disabled: bool,
}

impl HealthCheck {
    /// Only HTTP(S) checks probe a path; pinning any other kind would change nothing.
    pub fn probes_a_path(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "HTTP" | "HTTPS" | "HTTP_STR_MATCH" | "HTTPS_STR_MATCH"
        )
    }
}

/// The next write, decided from what was just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// The health check already probes the wanted path: nothing to write.
    AlreadySet,
    /// Write the path, conditional on the health check still being at `version`.
    Write { version: i64 },
}

/// Decides the write that brings `current` to `path`.
pub fn plan_path(current: &HealthCheck, path: &str) -> Result<PathStep, Route53Error> {
    if !current.probes_a_path() {
        return Err(Route53Error::NoPath {
            id: current.id.clone(),
            kind: current.kind.clone(),
        });
    }
    if current.resource_path.as_deref() == Some(path) {
        Ok(PathStep::AlreadySet)
    } else {
        Ok(PathStep::Write {
            version: current.version,
        })
    }
}

/// What a path change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    /// The health check already probed the path; nothing was written.
    AlreadySet { path: String, version: i64 },
    /// The path was written. `conflicts` counts writes lost to a concurrent change and retried
    /// after a fresh read.
    Changed {
        from: Option<String>,
        to: String,
        version: i64,
        conflicts: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Route53Error {
    #[error("health check {0} does not exist")]
    NotFound(HealthCheckId),
    #[error("health check {id} is of type {kind}, which probes no path")]
    NoPath { id: HealthCheckId, kind: String },
    #[error(
        "health check {id} changed under every one of {attempts} writes (HealthCheckVersionMismatch)"
    )]
    VersionConflict { id: HealthCheckId, attempts: u32 },
    /// The write lost to a concurrent change: re-read and plan again.
    #[error("health check {0} changed since it was read (HealthCheckVersionMismatch)")]
    StaleVersion(HealthCheckId),
    #[error("Route 53 {operation} failed for now: {message}")]
    Transient {
        operation: &'static str,
        message: String,
    },
    #[error("Route 53 {operation} was refused ({code}): {message}")]
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
}

impl Route53Error {
    /// Whether trying again later can succeed (throttling, 5xx, network, a health check that
    /// keeps changing), as opposed to a request that will be refused every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. } | Self::VersionConflict { .. } | Self::StaleVersion(_)
        )
    }
}

/// Reading and writing health checks; the SDK client in production, a fake in tests (moto keeps
/// `HealthCheckVersion` at 1 and accepts stale versions, so it cannot show a conflict).
pub trait HealthChecks {
    fn read(
        &self,
        id: &HealthCheckId,
    ) -> impl Future<Output = Result<HealthCheck, Route53Error>> + Send;

    /// Sets the path if the health check is still at `version`; a lost race answers
    /// [`Route53Error::StaleVersion`].
    fn write_path(
        &self,
        id: &HealthCheckId,
        version: i64,
        path: &str,
    ) -> impl Future<Output = Result<(), Route53Error>> + Send;
}

/// What a warm process last saw of each health check: the state at a `HealthCheckVersion`,
/// from its last read or its own last write (Route 53 increments the version on every update,
/// aws-behaviours #14). A write conditional on a known version needs no read first: if the
/// health check changed since, Route 53 refuses it and [`set_path_known`] reads and re-plans.
#[derive(Debug, Default)]
pub struct Known(std::sync::Mutex<std::collections::BTreeMap<HealthCheckId, HealthCheck>>);

impl Known {
    fn get(&self, id: &HealthCheckId) -> Option<HealthCheck> {
        self.lock().get(id).cloned()
    }

    fn set(&self, check: HealthCheck) {
        self.lock().insert(check.id.clone(), check);
    }

    fn forget(&self, id: &HealthCheckId) {
        self.lock().remove(id);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<HealthCheckId, HealthCheck>> {
        // Every update is one insert or remove: a panic elsewhere cannot leave it half-done.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Points the health check at `path`: read, plan, write with the version read, and on a version
/// conflict read again and re-plan (the other writer may already have set the path), at most
/// [`MAX_WRITE_ATTEMPTS`] writes.
pub async fn set_path(
    store: &impl HealthChecks,
    id: &HealthCheckId,
    path: &str,
) -> Result<PathChange, Route53Error> {
    set_path_known(store, &Known::default(), id, path).await
}

/// [`set_path`] from what `known` holds of the health check: with a known version, the write
/// goes first, conditional on it (one round trip when nothing changed since); a refused write
/// (the health check changed: an operator's fail-back, a concurrent pin) reads, re-plans (no
/// write when the path is already set) and writes with the version read. `known` then holds the
/// state after this call, or nothing after a failure.
/// When the known path is already `path`, it reads first as without a known version: a
/// repeated alarm writes nothing.
pub async fn set_path_known(
    store: &impl HealthChecks,
    known: &Known,
    id: &HealthCheckId,
    path: &str,
) -> Result<PathChange, Route53Error> {
    let result = write_from(store, known.get(id), id, path).await;
    match &result {
        Ok((_, state)) => known.set(state.clone()),
        Err(_) => known.forget(id),
    }
    result.map(|(change, _)| change)
}

async fn write_from(
    store: &impl HealthChecks,
    mut last_seen: Option<HealthCheck>,
    id: &HealthCheckId,
    path: &str,
) -> Result<(PathChange, HealthCheck), Route53Error> {
    let mut conflicts = 0;
    loop {
        let (current, from_known) = match last_seen.take() {
            Some(known) => (known, true),
            None => (store.read(id).await?, false),
        };
        let version = match plan_path(&current, path)? {
            PathStep::AlreadySet if !from_known => {
                let change = PathChange::AlreadySet {
                    path: path.to_owned(),
                    version: current.version,
                };
                return Ok((change, current));
            }
            // Already set when last seen: only a read can tell whether it still is without
            // writing (a repeated alarm must not write), and it is one round trip too.
            PathStep::AlreadySet => continue,
            PathStep::Write { version } => version,
        };
        match store.write_path(id, version, path).await {
            Ok(()) => {
                let after = HealthCheck {
                    version: version + 1,
                    resource_path: Some(path.to_owned()),
                    ..current.clone()
                };
                let change = PathChange::Changed {
                    from: current.resource_path,
                    to: path.to_owned(),
                    version,
                    conflicts,
                };
                return Ok((change, after));
            }
            Err(Route53Error::StaleVersion(_)) => {
                conflicts += 1;
                tracing::info!(
                    health_check_id = %id,
                    version,
                    conflicts,
                    known = from_known,
                    "health_check_version_conflict"
                );
                if conflicts >= MAX_WRITE_ATTEMPTS {
                    return Err(Route53Error::VersionConflict {
                        id: id.clone(),
                        attempts: conflicts,
                    });
                }
            }
            Err(other) => return Err(other),
        }
    }
}

/// Pins the health check to the failed-over path (the Route 53 failover function's action).
pub async fn pin(
    store: &impl HealthChecks,
    id: &HealthCheckId,
    failed_over_path: &str,
) -> Result<PathChange, Route53Error> {
    set_path(store, id, failed_over_path).await
}

/// Reads the health check into `known` (forgotten when it cannot be read).
pub async fn learn(
    store: &impl HealthChecks,
    known: &Known,
    id: &HealthCheckId,
) -> Result<HealthCheck, Route53Error> {
    match store.read(id).await {
        Ok(check) => {
            known.set(check.clone());
            Ok(check)
        }
        Err(err) => {
            known.forget(id);
            Err(err)
        }
    }
}

/// [`pin`] from what this process last knew of the health check (the warm Route 53 function).
pub async fn pin_known(
    store: &impl HealthChecks,
    known: &Known,
    id: &HealthCheckId,
    failed_over_path: &str,
) -> Result<PathChange, Route53Error> {
    set_path_known(store, known, id, failed_over_path).await
}

/// Restores the health check's original path (the operator's fail-back, once the sites are in
/// sync); [`ORIGINAL_PATH`] unless the deployment uses another.
pub async fn failback(
    store: &impl HealthChecks,
    id: &HealthCheckId,
    original_path: &str,
) -> Result<PathChange, Route53Error> {
    set_path(store, id, original_path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn id() -> HealthCheckId {
        "233e180f-f023-45a3-954e-415303f21eab".parse().unwrap()
    }

    fn check(path: &str, version: i64) -> HealthCheck {
        HealthCheck {
            id: id(),
            version,
            kind: "HTTPS".to_owned(),
            resource_path: Some(path.to_owned()),
            disabled: false,
        }
    }

    /// A health check that behaves like Route 53's optimistic locking: a write names a version
    /// and loses when another writer got there first. `interference` lists writes by "someone
    /// else" applied just before each of our writes.
    struct FakeRoute53 {
        state: Mutex<HealthCheck>,
        interference: Mutex<Vec<Option<String>>>,
        writes: Mutex<u32>,
        reads: Mutex<u32>,
    }

    impl FakeRoute53 {
        fn new(current: HealthCheck, interference: Vec<Option<String>>) -> Self {
            Self {
                state: Mutex::new(current),
                interference: Mutex::new(interference),
                writes: Mutex::new(0),
                reads: Mutex::new(0),
            }
        }
        fn path(&self) -> Option<String> {
            self.state.lock().unwrap().resource_path.clone()
        }
        fn version(&self) -> i64 {
            self.state.lock().unwrap().version
        }
        fn writes(&self) -> u32 {
            *self.writes.lock().unwrap()
        }
        fn reads(&self) -> u32 {
            *self.reads.lock().unwrap()
        }
        /// Someone else (an operator, another invocation) updates the health check.
        fn change_behind_our_back(&self, path: &str) {
            let mut state = self.state.lock().unwrap();
            state.resource_path = Some(path.to_owned());
            state.version += 1;
        }
    }

    impl HealthChecks for FakeRoute53 {
        async fn read(&self, id: &HealthCheckId) -> Result<HealthCheck, Route53Error> {
            *self.reads.lock().unwrap() += 1;
            let state = self.state.lock().unwrap().clone();
            if &state.id == id {
                Ok(state)
            } else {
                Err(Route53Error::NotFound(id.clone()))
            }
        }

        async fn write_path(
            &self,
            id: &HealthCheckId,
            version: i64,
            path: &str,
        ) -> Result<(), Route53Error> {
            *self.writes.lock().unwrap() += 1;
            let mut state = self.state.lock().unwrap();
            if &state.id != id {
                return Err(Route53Error::NotFound(id.clone()));
            }
            let mut interference = self.interference.lock().unwrap();
            if !interference.is_empty() {
                let other = interference.remove(0);
                if let Some(other_path) = other {
                    state.resource_path = Some(other_path);
                    state.version += 1;
                }
            }
            if state.version != version {
                return Err(Route53Error::StaleVersion(id.clone()));
            }
            state.resource_path = Some(path.to_owned());
            state.version += 1;
            Ok(())
        }
    }

    #[test]
    fn plan_path_table() {
        let tcp = HealthCheck {
            kind: "TCP".to_owned(),
            resource_path: None,
            ..check(ORIGINAL_PATH, 3)
        };
        let no_path_yet = HealthCheck {
            resource_path: None,
            ..check(ORIGINAL_PATH, 2)
        };
        let rows: Vec<(&str, HealthCheck, &str, Result<PathStep, Route53Error>)> = vec![
            (
                "healthy_check_gets_failed_over_path_with_its_version",
                check(ORIGINAL_PATH, 7),
                FAILED_OVER_PATH,
                Ok(PathStep::Write { version: 7 }),
            ),
            (
                "already_failed_over_is_a_no_op",
                check(FAILED_OVER_PATH, 7),
                FAILED_OVER_PATH,
                Ok(PathStep::AlreadySet),
            ),
            (
                "failback_of_a_pinned_check_writes",
                check(FAILED_OVER_PATH, 8),
                ORIGINAL_PATH,
                Ok(PathStep::Write { version: 8 }),
            ),
            (
                "check_without_path_gets_one",
                no_path_yet,
                FAILED_OVER_PATH,
                Ok(PathStep::Write { version: 2 }),
            ),
            (
                "tcp_check_has_no_path_to_pin",
                tcp,
                FAILED_OVER_PATH,
                Err(Route53Error::NoPath {
                    id: id(),
                    kind: "TCP".to_owned(),
                }),
            ),
        ];
        for (name, current, path, expected) in rows {
            assert_eq!(plan_path(&current, path), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn pin_moves_health_check_to_failed_over_path() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let change = pin(&route53, &id(), FAILED_OVER_PATH).await.unwrap();
        assert_eq!(route53.path().as_deref(), Some(FAILED_OVER_PATH));
        assert_eq!(
            change,
            PathChange::Changed {
                from: Some(ORIGINAL_PATH.to_owned()),
                to: FAILED_OVER_PATH.to_owned(),
                version: 1,
                conflicts: 0,
            }
        );
    }

    #[tokio::test]
    async fn warm_pin_with_the_known_version_is_one_write_and_no_read() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 3), vec![]);
        let known = Known::default();
        known.set(check(ORIGINAL_PATH, 3));
        let change = pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        assert_eq!((route53.reads(), route53.writes()), (0, 1));
        assert_eq!(route53.path().as_deref(), Some(FAILED_OVER_PATH));
        assert_eq!(
            change,
            PathChange::Changed {
                from: Some(ORIGINAL_PATH.to_owned()),
                to: FAILED_OVER_PATH.to_owned(),
                version: 3,
                conflicts: 0,
            }
        );
        // What the write left is known: version 4 at the failed-over path.
        assert_eq!(known.get(&id()), Some(check(FAILED_OVER_PATH, 4)));
    }

    #[tokio::test]
    async fn cold_pin_reads_first_and_leaves_the_version_it_wrote_known() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let known = Known::default();
        pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        assert_eq!((route53.reads(), route53.writes()), (1, 1));
        assert_eq!(known.get(&id()), Some(check(FAILED_OVER_PATH, 2)));
    }

    #[tokio::test]
    async fn an_operator_change_between_two_invocations_is_read_before_it_is_overwritten() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let known = Known::default();
        pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        // The operator fails back (version 3) and someone points it elsewhere (version 4).
        route53.change_behind_our_back(ORIGINAL_PATH);
        route53.change_behind_our_back("/maintenance");
        let change = pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        // What is known is the failed-over path: the pin reads first (a repeated alarm must
        // write nothing), sees the change and writes against version 4, from the path it found.
        assert_eq!((route53.reads(), route53.writes()), (2, 2));
        assert_eq!(
            change,
            PathChange::Changed {
                from: Some("/maintenance".to_owned()),
                to: FAILED_OVER_PATH.to_owned(),
                version: 4,
                conflicts: 0,
            }
        );
        assert_eq!(known.get(&id()), Some(check(FAILED_OVER_PATH, 5)));
    }

    #[tokio::test]
    async fn a_change_since_the_known_version_is_refused_read_and_not_overwritten_blindly() {
        // Known: the original path at version 1 (the alarm's OK read it). Someone changes the
        // path since (version 2): the write with version 1 is refused, the read sees the
        // change, and the pin is written against version 2.
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let known = Known::default();
        known.set(check(ORIGINAL_PATH, 1));
        route53.change_behind_our_back("/maintenance");
        let change = pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        assert_eq!((route53.reads(), route53.writes()), (1, 2));
        assert_eq!(
            change,
            PathChange::Changed {
                from: Some("/maintenance".to_owned()),
                to: FAILED_OVER_PATH.to_owned(),
                version: 2,
                conflicts: 1,
            }
        );
        assert_eq!(known.get(&id()), Some(check(FAILED_OVER_PATH, 3)));
    }

    #[tokio::test]
    async fn a_stale_known_version_of_a_check_pinned_since_writes_nothing_more() {
        // Another invocation pinned it after this one last saw it: the refused write reads,
        // finds the path set and stops, without a second write.
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let known = Known::default();
        known.set(check(ORIGINAL_PATH, 1));
        route53.change_behind_our_back(FAILED_OVER_PATH);
        let change = pin_known(&route53, &known, &id(), FAILED_OVER_PATH)
            .await
            .unwrap();
        assert_eq!((route53.reads(), route53.writes()), (1, 1));
        assert_eq!(route53.version(), 2);
        assert!(matches!(change, PathChange::AlreadySet { version: 2, .. }));
    }

    #[tokio::test]
    async fn a_failed_pin_forgets_what_it_knew() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let known = Known::default();
        known.set(HealthCheck {
            id: "0000-gone".parse().unwrap(),
            ..check(ORIGINAL_PATH, 1)
        });
        let gone: HealthCheckId = "0000-gone".parse().unwrap();
        let result = pin_known(&route53, &known, &gone, FAILED_OVER_PATH).await;
        assert_eq!(result, Err(Route53Error::NotFound(gone.clone())));
        assert_eq!(known.get(&gone), None);
    }

    #[tokio::test]
    async fn pin_of_pinned_check_writes_nothing() {
        let route53 = FakeRoute53::new(check(FAILED_OVER_PATH, 4), vec![]);
        let change = pin(&route53, &id(), FAILED_OVER_PATH).await.unwrap();
        assert_eq!(route53.writes(), 0);
        assert_eq!(route53.version(), 4);
        assert!(matches!(change, PathChange::AlreadySet { version: 4, .. }));
    }

    #[tokio::test]
    async fn version_conflict_then_success_rereads_and_writes_once_more() {
        // Someone changes the health check's interval (same path, new version) between our read
        // and our first write.
        let route53 = FakeRoute53::new(
            check(ORIGINAL_PATH, 1),
            vec![Some(ORIGINAL_PATH.to_owned())],
        );
        let change = pin(&route53, &id(), FAILED_OVER_PATH).await.unwrap();
        assert_eq!(route53.path().as_deref(), Some(FAILED_OVER_PATH));
        assert_eq!(route53.writes(), 2);
        assert!(matches!(
            change,
            PathChange::Changed {
                version: 2,
                conflicts: 1,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn version_conflict_with_a_concurrent_pin_ends_as_already_set() {
        // Two alarms race: the other invocation pins first; the re-read sees the pin done.
        let route53 = FakeRoute53::new(
            check(ORIGINAL_PATH, 1),
            vec![Some(FAILED_OVER_PATH.to_owned())],
        );
        let change = pin(&route53, &id(), FAILED_OVER_PATH).await.unwrap();
        assert_eq!(route53.writes(), 1);
        assert_eq!(route53.version(), 2);
        assert!(matches!(change, PathChange::AlreadySet { .. }));
    }

    #[tokio::test]
    async fn failback_never_overwrites_a_concurrent_change_blindly() {
        // An operator edits the path while fail-back runs: every write loses, and after the bound
        // the caller gets a retryable conflict rather than a silent overwrite loop.
        let route53 = FakeRoute53::new(
            check(FAILED_OVER_PATH, 1),
            (0..MAX_WRITE_ATTEMPTS)
                .map(|n| Some(format!("/operator-{n}")))
                .collect(),
        );
        let result = failback(&route53, &id(), ORIGINAL_PATH).await;
        assert_eq!(
            result,
            Err(Route53Error::VersionConflict {
                id: id(),
                attempts: MAX_WRITE_ATTEMPTS
            })
        );
        assert!(result.unwrap_err().is_transient());
        assert_eq!(route53.writes(), MAX_WRITE_ATTEMPTS);
        assert_ne!(route53.path().as_deref(), Some(ORIGINAL_PATH));
    }

    #[tokio::test]
    async fn unknown_health_check_is_not_retryable() {
        let route53 = FakeRoute53::new(check(ORIGINAL_PATH, 1), vec![]);
        let other: HealthCheckId = "abcd-1234".parse().unwrap();
        let result = pin(&route53, &other, FAILED_OVER_PATH).await;
        assert_eq!(result, Err(Route53Error::NotFound(other)));
        assert!(!result.unwrap_err().is_transient());
    }

    #[test]
    fn health_check_id_rejects_what_route53_never_issues() {
        for bad in ["", "   ", "abc/def", "id with space", &"x".repeat(65)] {
            assert!(bad.parse::<HealthCheckId>().is_err(), "{bad:?}");
        }
        let parsed: HealthCheckId = " 233e180f-f023-45a3-954e-415303f21eab ".parse().unwrap();
        assert_eq!(parsed.as_str(), "233e180f-f023-45a3-954e-415303f21eab");
    }
}
