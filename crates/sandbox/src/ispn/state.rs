//! What the two emulated Infinispan clusters know: per-cache backup status, push-state status and
//! entries, the cross-site link, injected faults and call counts.
//!
//! Pure data and rules, no I/O: the HTTP layer locks one [`PairState`] for both sites (a push
//! from one site writes into the other) and turns the results into responses. The messages are
//! the ones Infinispan 14–16 produces (`XSiteAdminOperations`, `GlobalXSiteAdminOperations`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Entries seeded into every cache, so that a clear and a push have something to show.
pub(crate) const SEED_ENTRIES: usize = 100;

/// One of the two sites of the pair; the other one is its only backup site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

impl Side {
    pub(crate) fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    pub(crate) fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The x-site actions, at cache or container level (`?action=` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XSiteAction {
    TakeOffline,
    BringOnline,
    StartPushState,
    CancelPushState,
}

impl XSiteAction {
    pub(crate) const ALL: [XSiteAction; 4] = [
        XSiteAction::TakeOffline,
        XSiteAction::BringOnline,
        XSiteAction::StartPushState,
        XSiteAction::CancelPushState,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            XSiteAction::TakeOffline => "take-offline",
            XSiteAction::BringOnline => "bring-online",
            XSiteAction::StartPushState => "start-push-state",
            XSiteAction::CancelPushState => "cancel-push-state",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackupStatus {
    Online,
    Offline,
}

impl BackupStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Online => "online",
            BackupStatus::Offline => "offline",
        }
    }
}

/// `StateTransferStatus.toText`: what `?action=push-state-status` reports per site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushStatus {
    Idle,
    Sending,
    Ok,
    Error,
    Canceled,
}

impl PushStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PushStatus::Idle => "IDLE",
            PushStatus::Sending => "SENDING",
            PushStatus::Ok => "OK",
            PushStatus::Error => "ERROR",
            PushStatus::Canceled => "CANCELED",
        }
    }
}

/// Every REST operation the emulator serves, by the name used in `/calls` and `/fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Container level (`/rest/v2/container/x-site/...` or the 14.x cache-managers path).
    Container(XSiteAction),
    ContainerStatus,
    ContainerSiteStatus,
    /// Cache level (`/rest/v2/caches/{cache}/x-site/...`).
    Cache(XSiteAction),
    CacheStatus,
    CacheSiteStatus,
    CachePushStateStatus,
    CacheClearPushStateStatus,
    CacheClear,
    CacheSize,
    CachePut,
    Health,
}

impl Operation {
    pub(crate) const ALL: [Operation; 18] = [
        Operation::Container(XSiteAction::TakeOffline),
        Operation::Container(XSiteAction::BringOnline),
        Operation::Container(XSiteAction::StartPushState),
        Operation::Container(XSiteAction::CancelPushState),
        Operation::ContainerStatus,
        Operation::ContainerSiteStatus,
        Operation::Cache(XSiteAction::TakeOffline),
        Operation::Cache(XSiteAction::BringOnline),
        Operation::Cache(XSiteAction::StartPushState),
        Operation::Cache(XSiteAction::CancelPushState),
        Operation::CacheStatus,
        Operation::CacheSiteStatus,
        Operation::CachePushStateStatus,
        Operation::CacheClearPushStateStatus,
        Operation::CacheClear,
        Operation::CacheSize,
        Operation::CachePut,
        Operation::Health,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Container(action) => action.as_str(),
            Operation::ContainerStatus => "status",
            Operation::ContainerSiteStatus => "site-status",
            Operation::Cache(XSiteAction::TakeOffline) => "cache-take-offline",
            Operation::Cache(XSiteAction::BringOnline) => "cache-bring-online",
            Operation::Cache(XSiteAction::StartPushState) => "cache-start-push-state",
            Operation::Cache(XSiteAction::CancelPushState) => "cache-cancel-push-state",
            Operation::CacheStatus => "cache-status",
            Operation::CacheSiteStatus => "cache-site-status",
            Operation::CachePushStateStatus => "cache-push-state-status",
            Operation::CacheClearPushStateStatus => "cache-clear-push-state-status",
            Operation::CacheClear => "cache-clear",
            Operation::CacheSize => "cache-size",
            Operation::CachePut => "cache-put",
            Operation::Health => "health",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// What an injected fault does to the call it hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FaultEffect {
    /// The call answers this HTTP status with a plain-text body.
    Status { status: u16, message: String },
    /// A container-level call answers 200 with these caches failed (cache → error text); the
    /// caches named are left unchanged.
    CacheFailures(BTreeMap<String, String>),
    /// A container-level call answers without these caches and leaves them unchanged, as a
    /// server answers that does not have them (yet).
    OmitCaches(BTreeSet<String>),
    /// A container-level call answers 200 `{}` and changes nothing, as a server answers where
    /// no cache backs up to the site.
    EmptyObject,
    /// A container-level call answers 204 without a body and changes nothing.
    NoContent,
    /// The call waits this long, then is served normally.
    Delay(Duration),
}

/// How injected faults bend one container-level action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ContainerBend {
    /// Cache → the error text it reports instead of acting.
    pub(crate) failures: BTreeMap<String, String>,
    /// Caches left out of the answer and unchanged.
    pub(crate) omitted: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) operation: Operation,
    pub(crate) remaining: u32,
    pub(crate) effect: FaultEffect,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) total: u64,
    pub(crate) by_operation: BTreeMap<String, u64>,
    pub(crate) timeline: Vec<crate::timeline::Span>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheState {
    pub(crate) backup: BackupStatus,
    pub(crate) push: PushStatus,
    /// Identifies the push in flight, so that a timer of a cancelled or failed push does not
    /// complete a later one.
    push_id: u64,
    pub(crate) entries: BTreeSet<String>,
}

impl CacheState {
    fn seeded(cache: &str) -> CacheState {
        CacheState {
            backup: BackupStatus::Online,
            push: PushStatus::Idle,
            push_id: 0,
            entries: (0..SEED_ENTRIES).map(|i| format!("{cache}-{i}")).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SiteState {
    pub(crate) name: String,
    cache_names: Vec<String>,
    pub(crate) down: bool,
    pub(crate) latency: Duration,
    pub(crate) faults: Vec<Fault>,
    pub(crate) calls: Calls,
    pub(crate) caches: BTreeMap<String, CacheState>,
}

impl SiteState {
    fn new(name: &str, cache_names: &[String]) -> SiteState {
        SiteState {
            name: name.to_string(),
            cache_names: cache_names.to_vec(),
            down: false,
            latency: Duration::ZERO,
            faults: Vec::new(),
            calls: Calls::default(),
            caches: cache_names
                .iter()
                .map(|cache| (cache.clone(), CacheState::seeded(cache)))
                .collect(),
        }
    }

    fn reset(&mut self) {
        *self = SiteState::new(&self.name, &self.cache_names);
    }
}

/// A push whose end the caller schedules after the site's push delay ([`PairState::finish_push`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushTicket {
    pub(crate) side: Side,
    pub(crate) cache: String,
    id: u64,
}

/// Why a cache-level call fails, in the order Infinispan checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CacheError {
    /// 404, `ISPN012010`.
    NoSuchCache(String),
    /// 404: the cache has no backup to that site.
    NoSuchSite { cache: String, site: String },
    /// 500, `ISPN012047` wrapping the operation's own message.
    OperationFailed { site: String, reason: String },
    /// 500: a write that the FAIL backup policy refused because the backup site is unreachable.
    BackupFailed { cache: String, site: String },
}

impl CacheError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            CacheError::NoSuchCache(_) | CacheError::NoSuchSite { .. } => 404,
            CacheError::OperationFailed { .. } | CacheError::BackupFailed { .. } => 500,
        }
    }

    /// The plain-text body Infinispan sends.
    pub(crate) fn message(&self) -> String {
        match self {
            CacheError::NoSuchCache(cache) => format!(
                "ISPN012010: Cache with name '{cache}' not found amongst the configured caches"
            ),
            CacheError::NoSuchSite { cache, site } => {
                format!("Cache '{cache}' does not backup to site '{site}'")
            }
            CacheError::OperationFailed { site, reason } => {
                format!("ISPN012047: Site operation on '{site}' failed: '{reason}'")
            }
            CacheError::BackupFailed { cache, site } => format!(
                "The local cache {cache} failed to backup data to the remote sites:\n\
                 {site}: org.jgroups.UnreachableException: site {site} is unreachable"
            ),
        }
    }
}

/// One cache's backup status as `GET /rest/v2/container/x-site/backups` sums it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContainerStatus {
    Online,
    Offline,
    Mixed {
        online: Vec<String>,
        offline: Vec<String>,
    },
}

/// Both sites and the link between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairState {
    pub(crate) partitioned: bool,
    sites: [SiteState; 2],
    next_push_id: u64,
}

impl PairState {
    /// `caches` are each site's configured caches; every one backs up to the other site.
    pub(crate) fn new(names: [&str; 2], caches: [&[String]; 2]) -> PairState {
        PairState {
            partitioned: false,
            sites: [
                SiteState::new(names[0], caches[0]),
                SiteState::new(names[1], caches[1]),
            ],
            next_push_id: 0,
        }
    }

    pub(crate) fn site(&self, side: Side) -> &SiteState {
        &self.sites[side.index()]
    }

    pub(crate) fn site_mut(&mut self, side: Side) -> &mut SiteState {
        &mut self.sites[side.index()]
    }

    /// Whether the two sites see each other: the JGroups cross-site view has both only while
    /// the link is whole and both sites are up.
    pub(crate) fn link_up(&self) -> bool {
        !self.partitioned && !self.sites[0].down && !self.sites[1].down
    }

    fn remote_name(&self, side: Side) -> &str {
        &self.site(side.other()).name
    }

    fn cache_mut(&mut self, side: Side, cache: &str) -> Result<&mut CacheState, CacheError> {
        self.site_mut(side)
            .caches
            .get_mut(cache)
            .ok_or_else(|| CacheError::NoSuchCache(cache.to_string()))
    }

    pub(crate) fn cache(&self, side: Side, cache: &str) -> Result<&CacheState, CacheError> {
        self.site(side)
            .caches
            .get(cache)
            .ok_or_else(|| CacheError::NoSuchCache(cache.to_string()))
    }

    /// Checks what Infinispan checks before a per-cache x-site call: the cache, then the site.
    pub(crate) fn check_backup(
        &self,
        side: Side,
        cache: &str,
        site: &str,
    ) -> Result<(), CacheError> {
        self.cache(side, cache)?;
        if site != self.remote_name(side) {
            return Err(CacheError::NoSuchSite {
                cache: cache.to_string(),
                site: site.to_string(),
            });
        }
        Ok(())
    }

    /// `POST /rest/v2/caches/{cache}/x-site/backups/{site}?action=...`.
    pub(crate) fn cache_action(
        &mut self,
        side: Side,
        cache: &str,
        site: &str,
        action: XSiteAction,
    ) -> Result<Option<PushTicket>, CacheError> {
        self.check_backup(side, cache, site)?;
        let link_up = self.link_up();
        let push_id = self.next_push_id + 1;
        let state = self.cache_mut(side, cache)?;
        match action {
            XSiteAction::TakeOffline => state.backup = BackupStatus::Offline,
            XSiteAction::BringOnline => state.backup = BackupStatus::Online,
            XSiteAction::StartPushState => {
                // Infinispan brings the backup online before it pushes, whatever follows.
                state.backup = BackupStatus::Online;
                if state.push == PushStatus::Sending {
                    // Infinispan lets the running push go on.
                    return Ok(None);
                }
                if !link_up {
                    state.push = PushStatus::Error;
                    return Err(CacheError::OperationFailed {
                        site: site.to_string(),
                        reason: format!(
                            "Unable to pushState to '{site}'. org.jgroups.UnreachableException: \
                             site {site} is unreachable"
                        ),
                    });
                }
                state.push = PushStatus::Sending;
                state.push_id = push_id;
                self.next_push_id = push_id;
                return Ok(Some(PushTicket {
                    side,
                    cache: cache.to_string(),
                    id: push_id,
                }));
            }
            XSiteAction::CancelPushState => {
                if state.push == PushStatus::Sending {
                    state.push = PushStatus::Canceled;
                }
            }
        }
        Ok(None)
    }

    /// `POST /rest/v2/container/x-site/backups/{site}?action=...`: the action on every cache,
    /// answered as cache → `ok` or the cache's error text (Infinispan answers 200 either way).
    /// Caches in `bend.failures` report that text, caches in `bend.omitted` are not in the
    /// answer; both are left unchanged.
    pub(crate) fn container_action(
        &mut self,
        side: Side,
        site: &str,
        action: XSiteAction,
        bend: &ContainerBend,
    ) -> (BTreeMap<String, String>, Vec<PushTicket>) {
        let caches: Vec<String> = self
            .site(side)
            .caches
            .keys()
            .filter(|cache| !bend.omitted.contains(*cache))
            .cloned()
            .collect();
        let mut results = BTreeMap::new();
        let mut tickets = Vec::new();
        for cache in caches {
            let outcome = if let Some(failure) = bend.failures.get(&cache) {
                failure.clone()
            } else if site != self.remote_name(side) {
                unknown_site_text(site, action)
            } else {
                match self.cache_action(side, &cache, site, action) {
                    Ok(ticket) => {
                        tickets.extend(ticket);
                        "ok".to_string()
                    }
                    // The container level reports the operation's own message, not the REST
                    // wrapper of the cache level.
                    Err(CacheError::OperationFailed { reason, .. }) => reason,
                    Err(other) => other.message(),
                }
            };
            results.insert(cache, outcome);
        }
        (results, tickets)
    }

    /// `GET /rest/v2/container/x-site/backups`: remote site → summary over all caches.
    pub(crate) fn container_status(&self, side: Side) -> BTreeMap<String, ContainerStatus> {
        let caches = &self.site(side).caches;
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for (name, cache) in caches {
            match cache.backup {
                BackupStatus::Online => online.push(name.clone()),
                BackupStatus::Offline => offline.push(name.clone()),
            }
        }
        let status = if offline.is_empty() {
            ContainerStatus::Online
        } else if online.is_empty() {
            ContainerStatus::Offline
        } else {
            ContainerStatus::Mixed { online, offline }
        };
        BTreeMap::from([(self.remote_name(side).to_string(), status)])
    }

    /// `GET /rest/v2/caches/{cache}/x-site/backups?action=push-state-status`: site → status.
    pub(crate) fn push_status(
        &self,
        side: Side,
        cache: &str,
    ) -> Result<(String, PushStatus), CacheError> {
        let state = self.cache(side, cache)?;
        Ok((self.remote_name(side).to_string(), state.push))
    }

    /// `POST /rest/v2/caches/{cache}/x-site/local?action=clear-push-state-status`: a push in
    /// flight keeps its status, as in Infinispan.
    pub(crate) fn clear_push_status(&mut self, side: Side, cache: &str) -> Result<(), CacheError> {
        let state = self.cache_mut(side, cache)?;
        if state.push != PushStatus::Sending {
            state.push = PushStatus::Idle;
        }
        Ok(())
    }

    /// Ends a push after its delay: `OK` and the entries copied to the other site when the link
    /// held, `ERROR` otherwise. A ticket of a push that was cancelled, failed or superseded
    /// changes nothing.
    pub(crate) fn finish_push(&mut self, ticket: &PushTicket) {
        let link_up = self.link_up();
        let remote = ticket.side.other();
        let remote_has_cache = self.site(remote).caches.contains_key(&ticket.cache);
        let Ok(state) = self.cache_mut(ticket.side, &ticket.cache) else {
            return;
        };
        if state.push != PushStatus::Sending || state.push_id != ticket.id {
            return;
        }
        if !link_up || !remote_has_cache {
            state.push = PushStatus::Error;
            return;
        }
        state.push = PushStatus::Ok;
        let entries = state.entries.clone();
        if let Ok(target) = self.cache_mut(remote, &ticket.cache) {
            target.entries = entries;
        }
    }

    /// `POST /rest/v2/caches/{cache}?action=clear`. A clear is a write: with the backup online it
    /// reaches the other site too (which is why Keycloak's procedure takes the backup offline
    /// first), and while the other site is unreachable the FAIL backup policy refuses it.
    pub(crate) fn clear(&mut self, side: Side, cache: &str) -> Result<(), CacheError> {
        let targets = self.write_targets(side, cache)?;
        for target in targets {
            if let Ok(state) = self.cache_mut(target, cache) {
                state.entries.clear();
            }
        }
        Ok(())
    }

    /// `PUT /rest/v2/caches/{cache}/{key}`: same replication rules as [`Self::clear`].
    pub(crate) fn put(&mut self, side: Side, cache: &str, key: &str) -> Result<(), CacheError> {
        let targets = self.write_targets(side, cache)?;
        for target in targets {
            if let Ok(state) = self.cache_mut(target, cache) {
                state.entries.insert(key.to_string());
            }
        }
        Ok(())
    }

    fn write_targets(&self, side: Side, cache: &str) -> Result<Vec<Side>, CacheError> {
        let state = self.cache(side, cache)?;
        if state.backup == BackupStatus::Offline {
            return Ok(vec![side]);
        }
        if !self.link_up() {
            return Err(CacheError::BackupFailed {
                cache: cache.to_string(),
                site: self.remote_name(side).to_string(),
            });
        }
        Ok(vec![side, side.other()])
    }

    /// Cuts or heals the link; a cut fails every push in flight, in both directions.
    pub(crate) fn set_partitioned(&mut self, partitioned: bool) {
        self.partitioned = partitioned;
        if partitioned {
            self.fail_pushes();
        }
    }

    /// Takes a site's server down (or back up); down fails every push in flight.
    pub(crate) fn set_down(&mut self, side: Side, down: bool) {
        self.site_mut(side).down = down;
        if down {
            self.fail_pushes();
        }
    }

    fn fail_pushes(&mut self) {
        for site in &mut self.sites {
            for cache in site.caches.values_mut() {
                if cache.push == PushStatus::Sending {
                    cache.push = PushStatus::Error;
                }
            }
        }
    }

    /// Back to the seeded state for this site (backups online, pushes idle, entries reseeded,
    /// up, no faults, no latency, calls zeroed) and the link healed.
    pub(crate) fn reset(&mut self, side: Side) {
        self.site_mut(side).reset();
        self.partitioned = false;
    }

    pub(crate) fn record_call(&mut self, side: Side, operation: &str) {
        crate::timeline::label(operation);
        let calls = &mut self.site_mut(side).calls;
        calls.total += 1;
        *calls.by_operation.entry(operation.to_string()).or_default() += 1;
    }

    /// Consumes one use of the first fault armed for `operation`, if any.
    pub(crate) fn take_fault(&mut self, side: Side, operation: Operation) -> Option<FaultEffect> {
        let faults = &mut self.site_mut(side).faults;
        let index = faults.iter().position(|f| f.operation == operation)?;
        let fault = &mut faults[index];
        let effect = fault.effect.clone();
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            faults.remove(index);
        }
        Some(effect)
    }
}

/// What each container-level action reports for a site that no cache backs up to.
fn unknown_site_text(site: &str, action: XSiteAction) -> String {
    match action {
        XSiteAction::TakeOffline | XSiteAction::BringOnline => {
            format!("Incorrect site name: {site}")
        }
        XSiteAction::StartPushState => {
            format!("Unable to pushState to '{site}'. Incorrect site name: {site}")
        }
        XSiteAction::CancelPushState => {
            format!("Unable to perform operation. Error=ISPN000617: Site '{site}' not found.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE_A: &str = "site-a";
    const SITE_B: &str = "site-b";

    fn caches() -> Vec<String> {
        [
            "actionTokens",
            "authenticationSessions",
            "loginFailures",
            "work",
        ]
        .map(String::from)
        .to_vec()
    }

    fn pair() -> PairState {
        let caches = caches();
        PairState::new([SITE_A, SITE_B], [&caches, &caches])
    }

    fn entries(pair: &PairState, side: Side, cache: &str) -> usize {
        pair.cache(side, cache).unwrap().entries.len()
    }

    #[test]
    fn operation_names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
    }

    #[test]
    fn container_take_offline_reports_ok_for_every_cache() {
        let mut pair = pair();
        let (results, tickets) = pair.container_action(
            Side::A,
            SITE_B,
            XSiteAction::TakeOffline,
            &ContainerBend::default(),
        );
        assert!(tickets.is_empty());
        assert_eq!(results.len(), 4);
        assert!(results.values().all(|r| r == "ok"), "{results:?}");
        assert_eq!(
            pair.container_status(Side::A)[SITE_B],
            ContainerStatus::Offline
        );
        assert_eq!(
            pair.container_status(Side::B)[SITE_A],
            ContainerStatus::Online
        );
    }

    #[test]
    fn container_action_on_unknown_site_fails_every_cache_in_the_map() {
        let mut pair = pair();
        let (results, _) = pair.container_action(
            Side::A,
            "site-x",
            XSiteAction::TakeOffline,
            &ContainerBend::default(),
        );
        assert!(results.values().all(|r| r == "Incorrect site name: site-x"));
        assert_eq!(
            pair.container_status(Side::A)[SITE_B],
            ContainerStatus::Online
        );
    }

    #[test]
    fn injected_cache_failure_leaves_that_cache_unchanged_and_status_mixed() {
        let mut pair = pair();
        let bend = ContainerBend {
            failures: BTreeMap::from([("work".to_string(), "ISPN000000: boom".to_string())]),
            ..ContainerBend::default()
        };
        let (results, _) = pair.container_action(Side::A, SITE_B, XSiteAction::TakeOffline, &bend);
        assert_eq!(results["work"], "ISPN000000: boom");
        assert_eq!(results["actionTokens"], "ok");
        assert_eq!(
            pair.container_status(Side::A)[SITE_B],
            ContainerStatus::Mixed {
                online: vec!["work".to_string()],
                offline: caches().into_iter().filter(|c| c != "work").collect(),
            }
        );
    }

    #[test]
    fn omitted_cache_is_missing_from_the_answer_and_stays_online() {
        let mut pair = pair();
        let bend = ContainerBend {
            omitted: BTreeSet::from(["work".to_string()]),
            ..ContainerBend::default()
        };
        let (results, _) = pair.container_action(Side::A, SITE_B, XSiteAction::TakeOffline, &bend);
        assert_eq!(results.len(), 3);
        assert!(!results.contains_key("work"), "{results:?}");
        assert!(results.values().all(|r| r == "ok"), "{results:?}");
        assert_eq!(
            pair.cache(Side::A, "work").unwrap().backup,
            BackupStatus::Online
        );
    }

    #[test]
    fn cache_action_checks_cache_before_site() {
        let mut pair = pair();
        assert_eq!(
            pair.cache_action(Side::A, "nope", "site-x", XSiteAction::TakeOffline),
            Err(CacheError::NoSuchCache("nope".to_string()))
        );
        let error = pair
            .cache_action(Side::A, "work", "site-x", XSiteAction::TakeOffline)
            .unwrap_err();
        assert_eq!(error.status(), 404);
        assert_eq!(
            error.message(),
            "Cache 'work' does not backup to site 'site-x'"
        );
    }

    #[test]
    fn push_copies_entries_to_the_other_site_when_the_link_holds() {
        let mut pair = pair();
        pair.put(Side::A, "work", "extra").unwrap();
        pair.cache_action(Side::B, "work", SITE_A, XSiteAction::TakeOffline)
            .unwrap();
        pair.clear(Side::B, "work").unwrap();
        assert_eq!(entries(&pair, Side::B, "work"), 0);
        assert_eq!(entries(&pair, Side::A, "work"), SEED_ENTRIES + 1);

        let ticket = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap()
            .unwrap();
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Sending
        );
        pair.finish_push(&ticket);
        assert_eq!(pair.push_status(Side::A, "work").unwrap().1, PushStatus::Ok);
        assert_eq!(entries(&pair, Side::B, "work"), SEED_ENTRIES + 1);
    }

    #[test]
    fn partition_during_push_ends_in_error_and_copies_nothing() {
        let mut pair = pair();
        pair.cache_action(Side::B, "work", SITE_A, XSiteAction::TakeOffline)
            .unwrap();
        pair.clear(Side::B, "work").unwrap();
        let ticket = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap()
            .unwrap();
        pair.set_partitioned(true);
        pair.set_partitioned(false);
        pair.finish_push(&ticket);
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Error
        );
        assert_eq!(entries(&pair, Side::B, "work"), 0);
    }

    #[test]
    fn remote_down_during_push_ends_in_error() {
        let mut pair = pair();
        let ticket = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap()
            .unwrap();
        pair.set_down(Side::B, true);
        pair.finish_push(&ticket);
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Error
        );
    }

    #[test]
    fn push_started_while_partitioned_fails_at_once_but_brings_backup_online() {
        let mut pair = pair();
        pair.cache_action(Side::A, "work", SITE_B, XSiteAction::TakeOffline)
            .unwrap();
        pair.set_partitioned(true);
        let error = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap_err();
        assert_eq!(error.status(), 500);
        assert!(
            error
                .message()
                .starts_with("ISPN012047: Site operation on 'site-b' failed")
        );
        let state = pair.cache(Side::A, "work").unwrap();
        assert_eq!(state.push, PushStatus::Error);
        assert_eq!(state.backup, BackupStatus::Online);
    }

    #[test]
    fn cancelled_push_is_not_completed_by_its_timer() {
        let mut pair = pair();
        let ticket = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap()
            .unwrap();
        pair.cache_action(Side::A, "work", SITE_B, XSiteAction::CancelPushState)
            .unwrap();
        pair.finish_push(&ticket);
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Canceled
        );
    }

    #[test]
    fn clear_push_status_keeps_a_push_in_flight() {
        let mut pair = pair();
        let ticket = pair
            .cache_action(Side::A, "work", SITE_B, XSiteAction::StartPushState)
            .unwrap()
            .unwrap();
        pair.clear_push_status(Side::A, "work").unwrap();
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Sending
        );
        pair.finish_push(&ticket);
        pair.clear_push_status(Side::A, "work").unwrap();
        assert_eq!(
            pair.push_status(Side::A, "work").unwrap().1,
            PushStatus::Idle
        );
    }

    #[test]
    fn clear_with_backup_online_empties_both_sites() {
        let mut pair = pair();
        pair.clear(Side::B, "work").unwrap();
        assert_eq!(entries(&pair, Side::A, "work"), 0);
        assert_eq!(entries(&pair, Side::B, "work"), 0);
    }

    #[test]
    fn write_with_backup_online_fails_while_partitioned_until_taken_offline() {
        let mut pair = pair();
        pair.set_partitioned(true);
        let error = pair.put(Side::A, "work", "k").unwrap_err();
        assert_eq!(error.status(), 500);
        assert!(
            error.message().contains("failed to backup data"),
            "{}",
            error.message()
        );
        pair.container_action(
            Side::A,
            SITE_B,
            XSiteAction::TakeOffline,
            &ContainerBend::default(),
        );
        pair.put(Side::A, "work", "k").unwrap();
        assert_eq!(entries(&pair, Side::A, "work"), SEED_ENTRIES + 1);
    }

    #[test]
    fn faults_are_consumed_in_order_then_gone() {
        let mut pair = pair();
        let op = Operation::Container(XSiteAction::TakeOffline);
        let effect = FaultEffect::Status {
            status: 500,
            message: "boom".to_string(),
        };
        pair.site_mut(Side::A).faults.push(Fault {
            operation: op,
            remaining: 2,
            effect: effect.clone(),
        });
        assert_eq!(pair.take_fault(Side::A, Operation::ContainerStatus), None);
        assert_eq!(pair.take_fault(Side::A, op), Some(effect.clone()));
        assert_eq!(pair.take_fault(Side::A, op), Some(effect));
        assert_eq!(pair.take_fault(Side::A, op), None);
    }

    #[test]
    fn reset_restores_seeded_site_and_heals_link() {
        let mut pair = pair();
        pair.container_action(
            Side::A,
            SITE_B,
            XSiteAction::TakeOffline,
            &ContainerBend::default(),
        );
        pair.clear(Side::A, "work").unwrap();
        pair.set_partitioned(true);
        pair.set_down(Side::A, true);
        pair.record_call(Side::A, "status");
        pair.reset(Side::A);
        let fresh = self::pair();
        assert_eq!(pair.site(Side::A), fresh.site(Side::A));
        assert!(pair.link_up());
    }
}
