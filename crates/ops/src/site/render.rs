//! `site status` as text: the accelerator's listeners and endpoint groups, each site's
//! replication towards the other, the fence's decision records and the verdict line. Pure, so
//! that it is tested without a sandbox.

use std::fmt::Write as _;

use aws_topology::decisions::{Mode, Standing};
use aws_topology::globalaccelerator::Health;

use super::model::{Decisions, Observed, SiteState};
use super::verdict::verdict;

fn health(health: Health) -> &'static str {
    match health {
        Health::Healthy => "HEALTHY",
        Health::Unhealthy => "UNHEALTHY",
        Health::Initial => "INITIAL",
        Health::Unknown => "UNKNOWN",
    }
}

/// Shortens an ARN to its last path parts, the part an operator tells apart.
fn short(arn: &str, parts: usize) -> String {
    let pieces: Vec<&str> = arn.rsplit('/').take(parts).collect();
    if pieces.len() < parts {
        return arn.to_owned();
    }
    let mut kept: Vec<&str> = pieces.into_iter().rev().collect();
    kept.insert(0, "…");
    kept.join("/")
}

/// The deployment's mode, first line of `site status`: in monitor mode nothing the functions
/// report was done, and the status below is what they left as it was.
pub fn mode(mode: Mode) -> String {
    match mode {
        Mode::Enforce => "mode enforce (sitefence.toml): the functions fence and fail over\n".to_owned(),
        Mode::Monitor => "mode MONITOR (sitefence.toml): the functions decide, record, notify and log what they would do, and change nothing\n".to_owned(),
    }
}

pub fn status(observed: &Observed) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "accelerator {} ({})",
        observed.accelerator_dns, observed.topology.accelerator_arn
    );
    accelerator(&mut out, observed);
    let [a, b] = &observed.sites;
    let direction = |s: &SiteState, r: &SiteState| format!("{} → {}", s.name, r.name);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<24} {:<25} {:<25}",
        "cross-site replication",
        direction(a, b),
        direction(b, a)
    );
    let _ = writeln!(
        out,
        "  {:<24} {:<10} {:<14} {:<10} {:<14}",
        "cache", "backup", "push-state", "backup", "push-state"
    );
    let cell = |site: &SiteState, cache: &str| -> (String, String) {
        match &site.replication {
            Err(_) => ("?".to_owned(), "?".to_owned()),
            Ok(r) => (
                r.backups
                    .get(cache)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".to_owned()),
                r.push
                    .get(cache)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "-".to_owned()),
            ),
        }
    };
    for cache in &observed.caches {
        let (ab, ap) = cell(a, cache);
        let (bb, bp) = cell(b, cache);
        let _ = writeln!(out, "  {cache:<24} {ab:<10} {ap:<14} {bb:<10} {bp:<14}");
    }
    let view = |site: &SiteState, remote: &SiteState| match &site.replication {
        Err(message) => format!("unreadable: {message}"),
        Ok(r) => match r.sees_remote {
            Some(true) => format!("{} in view", remote.name),
            Some(false) => format!("{} NOT in view", remote.name),
            None => "view unknown (no metrics)".to_owned(),
        },
    };
    let (va, vb) = (view(a, b), view(b, a));
    if va.len() > 25 || vb.len() > 25 {
        let _ = writeln!(out, "  {:<24} {}: {va}", "cross-site view", a.name);
        let _ = writeln!(out, "  {:<24} {}: {vb}", "", b.name);
    } else {
        let _ = writeln!(out, "  {:<24} {va:<25} {vb:<25}", "cross-site view");
    }
    let _ = writeln!(out);
    decisions(&mut out, observed);
    let _ = writeln!(out);
    let _ = writeln!(out, "verdict: {}", verdict(observed));
    out
}

/// Per listener, each endpoint group with its region and traffic dial, and each endpoint with
/// its site, weight, health and whether it takes traffic (the fence's rule:
/// `EndpointGroup::takes_traffic`); a site with no endpoint in a listener is named there.
fn accelerator(out: &mut String, observed: &Observed) {
    let topology = &observed.topology;
    let mut listeners: Vec<&str> = topology.listeners.iter().map(String::as_str).collect();
    for group in &topology.groups {
        if !listeners.contains(&group.listener_arn.as_str()) {
            listeners.push(&group.listener_arn);
        }
    }
    if listeners.is_empty() {
        let _ = writeln!(out, "  (no listener)");
    }
    for listener in listeners {
        let groups: Vec<_> = topology.groups_of(listener).collect();
        if groups.is_empty() {
            let _ = writeln!(out, "  listener {}: no endpoint group", short(listener, 2));
            continue;
        }
        let _ = writeln!(out, "  listener {}", short(listener, 2));
        let _ = writeln!(
            out,
            "    {:<30} {:<14} {:>5}  {:<8} {:<44} {:>6}  {:<9}  traffic",
            "endpoint group", "region", "dial", "site", "endpoint", "weight", "health"
        );
        for group in &groups {
            let name = short(&group.arn, 2);
            let dial = group.traffic_dial.to_string();
            let mut first = true;
            for endpoint in &group.endpoints {
                let (g, r, d) = if first {
                    (name.as_str(), group.region.as_str(), dial.as_str())
                } else {
                    ("", "", "")
                };
                first = false;
                let site = endpoint
                    .site
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "?".to_owned());
                let weight = endpoint
                    .weight
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "-".to_owned());
                let traffic = if group.takes_traffic(endpoint) {
                    "yes"
                } else {
                    "no"
                };
                let _ = writeln!(
                    out,
                    "    {g:<30} {r:<14} {d:>5}  {site:<8} {:<44} {weight:>6}  {:<9}  {traffic}",
                    short(&endpoint.id, 3),
                    health(endpoint.health),
                );
            }
            if first {
                let _ = writeln!(
                    out,
                    "    {name:<30} {:<14} {dial:>5}  (no endpoint)",
                    group.region
                );
            }
        }
        for site in &observed.sites {
            let present = groups
                .iter()
                .flat_map(|g| g.endpoints.iter())
                .any(|e| e.site.as_ref() == Some(&site.name));
            if !present {
                let _ = writeln!(
                    out,
                    "    {:<30} {:<14} {:>5}  {:<8} (not in the listener)",
                    "",
                    "",
                    "",
                    site.name.as_str()
                );
            }
        }
    }
}

/// The fence's decision records: per split-brain, who survived and why, when, and whether the
/// decision still stands (against the accelerator as observed, with the fence's default
/// stale-after).
fn decisions(out: &mut String, observed: &Observed) {
    let (table, records) = match &observed.decisions {
        Decisions::Unavailable(why) => {
            let _ = writeln!(out, "  decision records: not read ({why})");
            return;
        }
        Decisions::Read { table, records } => (table, records),
    };
    if records.is_empty() {
        let _ = writeln!(out, "  decision records (table {table}): none");
        return;
    }
    let _ = writeln!(out, "  decision records (table {table}):");
    let mut records: Vec<_> = records.iter().collect();
    records.sort_by(|x, y| x.split_brain.cmp(&y.split_brain));
    for record in records {
        let standing = match observed.standing(record) {
            Standing::Stands => "stands".to_owned(),
            Standing::Closed => match &record.closed {
                Some(closure) => format!("closed {} by {}", utc(closure.at_ms), closure.by),
                None => "closed".to_owned(),
            },
            Standing::Stale(why) => format!("stale: {why}"),
        };
        // A monitor record changed nothing and binds no enforcing fence: say so where it is
        // read, so that nobody takes it for a fence that happened.
        let mode = match record.mode {
            Mode::Enforce => "enforce",
            Mode::Monitor => {
                "monitor (a rehearsal: nothing was changed; an enforcing fence decides anew)"
            }
        };
        let _ = writeln!(out, "    {}", record.split_brain);
        let _ = writeln!(
            out,
            "      survivor {}, loser {}, rule {}, reported by {}",
            record.survivor, record.loser, record.rule, record.reporter
        );
        let _ = writeln!(
            out,
            "      decided {} ({}), decision {}, mode {mode}",
            utc(record.decided_at_ms),
            ago(observed.at_ms, record.decided_at_ms),
            record.decision_id
        );
        let _ = writeln!(out, "      standing: {standing}");
    }
}

/// `ms` since the epoch as UTC, to the second: `2025-12-05T21:27:03Z`.
pub(crate) fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let rest = seconds % 86_400;
    let (year, month, day) = common::logging::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// How long before `now_ms` `then_ms` was, roughly.
fn ago(now_ms: u64, then_ms: u64) -> String {
    let Some(seconds) = now_ms.checked_sub(then_ms).map(|ms| ms / 1000) else {
        return "in the future".to_owned();
    };
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7_200 => format!("{} min ago", seconds / 60),
        7_200..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use aws_topology::decisions::{Closure, DecisionRecord};
    use aws_topology::globalaccelerator::TrafficDial;

    use super::super::verdict::tests::{
        NOW_MS, SPLIT_BRAIN, World, offline, online, only_a, per_region, site,
    };
    use super::*;

    #[test]
    fn fenced_status_shows_the_missing_endpoint_the_offline_backup_and_the_verdict() {
        let fenced = World {
            groups: only_a(),
            a: Some(offline()),
            b: None,
        };
        let text = status(&fenced.observed());
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("site-a") && l.contains("128") && l.contains("HEALTHY")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("site-b") && l.contains("(not in the listener)")),
            "{text}"
        );
        let work = lines
            .iter()
            .find(|l| l.trim_start().starts_with("work"))
            .copied()
            .unwrap_or_default();
        assert_eq!(
            work.split_whitespace().collect::<Vec<_>>(),
            vec!["work", "offline", "IDLE", "?", "?"],
            "{text}"
        );
        assert!(
            text.contains("site-b: unreadable: connection refused"),
            "{text}"
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("verdict: fenced: site-b out")),
            "{text}"
        );
    }

    #[test]
    fn healthy_status_ends_with_the_healthy_verdict() {
        let healthy = World {
            groups: super::super::verdict::tests::both(),
            a: Some(online()),
            b: Some(online()),
        };
        let text = status(&healthy.observed());
        assert!(text.contains("site-b in view"), "{text}");
        assert!(text.trim_end().ends_with("are in sync"), "{text}");
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.starts_with("verdict: healthy"))
        );
    }

    #[test]
    fn each_group_shows_its_listener_and_dial_and_what_takes_traffic() {
        let fenced = per_region(
            &World {
                groups: Vec::new(),
                a: Some(offline()),
                b: Some(online()),
            },
            2,
            TrafficDial::CLOSED,
        );
        let text = status(&fenced);
        let lines: Vec<&str> = text.lines().collect();
        let listeners: Vec<&&str> = lines
            .iter()
            .filter(|l| l.trim_start().starts_with("listener …/listener/l"))
            .collect();
        assert_eq!(listeners.len(), 2, "{text}");
        let b_rows: Vec<Vec<&str>> = lines
            .iter()
            .filter(|l| l.contains("/endpoint-group/b"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(b_rows.len(), 2, "{text}");
        for row in &b_rows {
            assert_eq!(
                row[1..4],
                ["eu-west-1", "0%", "site-b"],
                "site-b's group, its dial closed: {text}"
            );
            assert_eq!(row[5..], ["128", "HEALTHY", "no"], "{text}");
        }
        assert!(
            lines.iter().any(|l| l.contains("/endpoint-group/a0")
                && l.contains("100%")
                && l.ends_with("yes")),
            "{text}"
        );
        assert!(text.contains("verdict: fenced: site-b out"), "{text}");
    }

    fn record(closed: Option<Closure>, decided_at_ms: u64) -> DecisionRecord {
        DecisionRecord {
            split_brain: SPLIT_BRAIN.to_owned(),
            decision_id: "2f1c-request".to_owned(),
            survivor: site("site-a"),
            loser: site("site-b"),
            rule: "preferred_site_alive".to_owned(),
            reporter: site("site-b"),
            decided_at_ms,
            request_id: "2f1c-request".to_owned(),
            facts: serde_json::json!({}),
            mode: aws_topology::decisions::Mode::Monitor,
            closed,
        }
    }

    #[test]
    fn decision_records_show_who_survived_why_when_and_whether_it_stands() {
        let world = World {
            groups: super::super::verdict::tests::both(),
            a: Some(online()),
            b: Some(online()),
        };
        let with = |records: Vec<DecisionRecord>| {
            let mut observed = world.observed();
            observed.decisions = Decisions::Read {
                table: "sitefence-decisions".to_owned(),
                records,
            };
            status(&observed)
        };
        let five_minutes_ago = NOW_MS - 300_000;
        let stands = with(vec![record(None, five_minutes_ago)]);
        for part in [
            "decision records (table sitefence-decisions):",
            SPLIT_BRAIN,
            "survivor site-a, loser site-b, rule preferred_site_alive, reported by site-b",
            "decided 2027-01-15T07:55:00Z (5 min ago), decision 2f1c-request, mode monitor (a rehearsal: nothing was changed; an enforcing fence decides anew)",
            // Within the stale-after, a loser that takes traffic means a fence under way.
            "standing: stands",
        ] {
            assert!(
                stands.contains(part),
                "`{part}` in:
{stands}"
            );
        }
        let an_hour_ago = NOW_MS - 3_600_000;
        let stale = with(vec![record(None, an_hour_ago)]);
        assert!(
            stale.contains("standing: stale: site-b takes traffic again 3600 s after the decision"),
            "{stale}"
        );
        let closed = with(vec![record(
            Some(Closure {
                at_ms: NOW_MS - 60_000,
                by: "site bring-online (arn:aws:iam::123456789012:user/operator)".to_owned(),
            }),
            an_hour_ago,
        )]);
        assert!(
            closed.contains(
                "standing: closed 2027-01-15T07:59:00Z by site bring-online (arn:aws:iam::123456789012:user/operator)"
            ),
            "{closed}"
        );
        assert!(
            with(Vec::new()).contains("decision records (table sitefence-decisions): none"),
            "{}",
            with(Vec::new())
        );
        let mut unreadable = world.observed();
        unreadable.decisions =
            Decisions::Unavailable("table sitefence-decisions does not exist".to_owned());
        let text = status(&unreadable);
        assert!(
            text.contains("decision records: not read (table sitefence-decisions does not exist)")
                && text.contains("verdict: healthy"),
            "{text}"
        );
    }

    #[test]
    fn the_mode_heads_the_status() {
        assert!(mode(Mode::Monitor).starts_with("mode MONITOR"));
        assert!(mode(Mode::Monitor).contains("change nothing"));
        assert!(mode(Mode::Enforce).starts_with("mode enforce"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_000_000_123), "2026-11-18T11:06:40Z");
        assert_eq!(ago(10_000, 20_000), "in the future");
        assert_eq!(ago(3 * 86_400_000, 0), "3 days ago");
    }
}
