//! `site status` as text: the accelerator's endpoint groups, each site's replication towards
//! the other, and the verdict line. Pure, so that it is tested without a sandbox.

use std::fmt::Write as _;

use aws_topology::globalaccelerator::Health;

use super::model::{Observed, SiteState};
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

pub fn status(observed: &Observed) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "accelerator {} ({})",
        observed.accelerator_dns, observed.topology.accelerator_arn
    );
    let _ = writeln!(
        out,
        "  {:<34} {:<10} {:<8} {:<44} {:>6}  health",
        "endpoint group", "region", "site", "endpoint", "weight"
    );
    if observed.topology.groups.is_empty() {
        let _ = writeln!(out, "  (no endpoint group)");
    }
    for group in &observed.topology.groups {
        let name = short(&group.arn, 2);
        let mut first = true;
        let mut line = |out: &mut String, site: &str, endpoint: &str, weight: &str, h: &str| {
            let (g, r) = if first {
                (name.as_str(), group.region.as_str())
            } else {
                ("", "")
            };
            first = false;
            let _ = writeln!(
                out,
                "  {g:<34} {r:<10} {site:<8} {endpoint:<44} {weight:>6}  {h}"
            );
        };
        for endpoint in &group.endpoints {
            let site = endpoint
                .site
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "?".to_owned());
            let weight = endpoint
                .weight
                .map(|w| w.to_string())
                .unwrap_or_else(|| "-".to_owned());
            line(
                &mut out,
                &site,
                &short(&endpoint.id, 3),
                &weight,
                health(endpoint.health),
            );
        }
        for site in &observed.sites {
            let present = group
                .endpoints
                .iter()
                .any(|e| e.site.as_ref() == Some(&site.name));
            if !present {
                line(&mut out, site.name.as_str(), "(not in the group)", "", "");
            }
        }
    }

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
    let _ = writeln!(out, "verdict: {}", verdict(observed));
    out
}

#[cfg(test)]
mod tests {
    use super::super::verdict::tests::{World, offline, online, only_a};
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
                .any(|l| l.contains("site-b") && l.contains("(not in the group)")),
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
}
