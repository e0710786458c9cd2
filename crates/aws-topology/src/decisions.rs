//! The fence's decision record: one per split-brain, created before anything is changed.
//!
//! Global Accelerator has no conditional write, so two reports of one split-brain that read
//! different facts (a probe that times out for one and not the other, health that flips between
//! a report and its resend) would each fence the other site. The first report that decides
//! writes its decision with a conditional create (DynamoDB `PutItem` with
//! `attribute_not_exists`); every later report, resend or concurrent invocation of that
//! split-brain gets the recorded decision back in the same call
//! (`ReturnValuesOnConditionCheckFailure`) and carries it out. Nobody decides anew while the
//! record stands.
//!
//! A record stops standing in two ways, so that it never blocks a later, different incident:
//!
//! * **Closed**: `site bring-online` closes it after the loser is back in sync.
//! * **Stale**: the loser takes traffic again ([`Topology::site_takes_traffic`]) more than
//!   [`DEFAULT_STALE_AFTER`] after the decision. Within that time the loser taking traffic only
//!   means that the fence is still under way; after it, somebody brought the loser back without
//!   `site bring-online`, or the fence never got through, and today's facts decide again.
//!
//! A closed or stale record is replaced by a create conditioned on its `decision_id`, so that
//! two reports replacing it at once still make one decision.
//!
//! **Monitor mode.** A fence in [`Mode::Monitor`] records its decision too, marked as monitor,
//! and changes nothing. Such a record decides for monitor-mode reports only
//! ([`DecisionRecord::standing_for`]): both sites' monitor reports of one split-brain agree on
//! one decision, as they would in enforce mode, but an enforcing fence never adopts a decision
//! that changed nothing (it would skip the probe and carry out facts nobody acted on). To an
//! enforcing fence a standing monitor record reads as stale: it decides anew and replaces the
//! record with a create conditioned on its `decision_id`, so that two enforcing reports
//! replacing it at once still make one decision. A monitor-mode fence adopts a standing enforce
//! record (it reports the fence that is under way) and never replaces it.

use std::collections::BTreeSet;
use std::time::Duration;

use common::site::{AcceleratorDns, SiteName};
use serde::{Deserialize, Serialize};

use crate::globalaccelerator::Topology;

#[cfg(feature = "decisions")]
mod client;
#[cfg(feature = "decisions")]
pub use client::DecisionStore;

/// The table's partition key, a string: see [`split_brain_key`].
pub const KEY_ATTRIBUTE: &str = "split_brain";
/// How long after its decision a record whose loser takes traffic still stands.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The key of the split-brain between `a` and `b` behind `accelerator`: both reports of one
/// split-brain (a reports b, b reports a) have the same key.
pub fn split_brain_key(accelerator: &AcceleratorDns, a: &SiteName, b: &SiteName) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{accelerator}/{first}+{second}")
}

/// Whether the fence changes anything or only says what it would do: one type for the three
/// functions and the operator's tool, defined in `common`.
pub use common::mode::Mode;

/// Who closed a record, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub at_ms: u64,
    pub by: String,
}

/// One split-brain's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// [`split_brain_key`].
    pub split_brain: String,
    /// Unique per decision (the deciding invocation's request id): a replacement names it.
    pub decision_id: String,
    pub survivor: SiteName,
    pub loser: SiteName,
    /// The survivor rule, as the fence names it.
    pub rule: String,
    /// The site whose report decided.
    pub reporter: SiteName,
    pub decided_at_ms: u64,
    /// The Lambda request id of the deciding invocation.
    pub request_id: String,
    /// What the deciding report read: each site's health and traffic, the probe's answer.
    pub facts: serde_json::Value,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closure>,
}

/// What the reports that carried a decision out recorded once its fence was complete (the
/// loser out of the accelerator, the survivor's backup to it offline): written after the
/// fence's work by an update that may fail without harm, so a record may lack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// When the first report found the fence complete.
    pub completed_at_ms: u64,
    /// What that report did, in the fence's words (`removed …`, `… backup to … offline`).
    pub steps: Vec<String>,
    /// Every site whose report carried the decision out to completion.
    pub reporters: BTreeSet<SiteName>,
}

/// One decision as the store holds it, with its completion when recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub record: DecisionRecord,
    pub completion: Option<Completion>,
}

/// Whether a record still decides its split-brain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "standing", content = "why")]
pub enum Standing {
    Stands,
    Closed,
    Stale(String),
}

impl DecisionRecord {
    /// Whether the record stands at `now_ms` given the accelerator as it is.
    pub fn standing(&self, topology: &Topology, now_ms: u64, stale_after: Duration) -> Standing {
        if self.closed.is_some() {
            return Standing::Closed;
        }
        let age_ms = now_ms.saturating_sub(self.decided_at_ms);
        let stale_after_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
        if age_ms > stale_after_ms && topology.site_takes_traffic(&self.loser) {
            return Standing::Stale(format!(
                "{} takes traffic again {} s after the decision",
                self.loser,
                age_ms / 1000
            ));
        }
        Standing::Stands
    }
}

impl DecisionRecord {
    /// Whether the record decides for a fence running in `mode`: [`DecisionRecord::standing`],
    /// except that a standing monitor-mode record reads as stale to an enforcing fence (see
    /// the module's "Monitor mode").
    pub fn standing_for(
        &self,
        mode: Mode,
        topology: &Topology,
        now_ms: u64,
        stale_after: Duration,
    ) -> Standing {
        match self.standing(topology, now_ms, stale_after) {
            Standing::Stands if mode == Mode::Enforce && self.mode == Mode::Monitor => {
                Standing::Stale(format!(
                    "decision {} was made in monitor mode and changed nothing: an enforcing fence decides anew",
                    self.decision_id
                ))
            }
            other => other,
        }
    }
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This decision is now the record.
    Created,
    /// Another decision was there first: this one.
    Existing(Box<DecisionRecord>),
}

/// A record read back from the store could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decision record {key}: {reason}")]
pub struct MalformedRecord {
    pub key: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::globalaccelerator::{Endpoint, EndpointGroup, Health, Topology, TrafficDial};

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    fn topology(sites: &[&str]) -> Topology {
        Topology {
            accelerator_arn: "acc".into(),
            listeners: vec!["l".into()],
            groups: vec![EndpointGroup {
                arn: "l/endpoint-group/g".into(),
                listener_arn: "l".into(),
                region: "eu-west-1".into(),
                traffic_dial: TrafficDial::FULL,
                endpoints: sites
                    .iter()
                    .map(|s| Endpoint {
                        id: format!("lb-{s}"),
                        site: Some(site(s)),
                        weight: Some(128),
                        health: Health::Healthy,
                    })
                    .collect(),
            }],
        }
    }

    fn record() -> DecisionRecord {
        DecisionRecord {
            split_brain: "k".into(),
            decision_id: "r1".into(),
            survivor: site("site-a"),
            loser: site("site-b"),
            rule: "reporter_preferred".into(),
            reporter: site("site-a"),
            decided_at_ms: 1_000_000,
            request_id: "r1".into(),
            facts: serde_json::json!({}),
            mode: Mode::Enforce,
            closed: None,
        }
    }

    #[test]
    fn both_reports_of_a_split_brain_share_a_key() {
        let dns = AcceleratorDns::parse("a1234567890abcdef.awsglobalaccelerator.com").unwrap();
        assert_eq!(
            split_brain_key(&dns, &site("site-a"), &site("site-b")),
            split_brain_key(&dns, &site("site-b"), &site("site-a"))
        );
    }

    #[test]
    fn a_fence_under_way_stands_a_brought_back_loser_makes_it_stale() {
        let stale_after = Duration::from_secs(900);
        let r = record();
        let under_way = topology(&["site-a", "site-b"]);
        let fenced = topology(&["site-a"]);
        assert_eq!(
            r.standing(&under_way, 1_000_000 + 5_000, stale_after),
            Standing::Stands
        );
        assert_eq!(
            r.standing(&fenced, 1_000_000 + 86_400_000, stale_after),
            Standing::Stands
        );
        assert!(matches!(
            r.standing(&under_way, 1_000_000 + 901_000, stale_after),
            Standing::Stale(_)
        ));
        let closed = DecisionRecord {
            closed: Some(Closure {
                at_ms: 2,
                by: "operator".into(),
            }),
            ..record()
        };
        assert_eq!(
            closed.standing(&fenced, 1_000_001, stale_after),
            Standing::Closed
        );
    }

    #[test]
    fn a_monitor_record_decides_for_monitor_reports_only() {
        let stale_after = Duration::from_secs(900);
        let under_way = topology(&["site-a", "site-b"]);
        let now = 1_000_000 + 5_000;
        let monitor = DecisionRecord {
            mode: Mode::Monitor,
            ..record()
        };
        let enforce = record();
        let table = [
            // (record, the reading fence's mode, stands for it)
            (&monitor, Mode::Monitor, true),
            (&monitor, Mode::Enforce, false),
            (&enforce, Mode::Monitor, true),
            (&enforce, Mode::Enforce, true),
        ];
        for (record, mode, stands) in table {
            let standing = record.standing_for(mode, &under_way, now, stale_after);
            assert_eq!(
                standing == Standing::Stands,
                stands,
                "{:?} record read by {mode:?}: {standing:?}",
                record.mode
            );
            if !stands {
                // Not standing means replaced by a create conditioned on its id.
                assert!(matches!(&standing, Standing::Stale(why) if why.contains("monitor")));
            }
        }
        // A monitor record goes stale like any other for monitor reports: monitor mode never
        // takes the loser out, so after the stale-after it is decided again.
        assert!(matches!(
            monitor.standing_for(Mode::Monitor, &under_way, 1_000_000 + 901_000, stale_after),
            Standing::Stale(_)
        ));
    }
}
