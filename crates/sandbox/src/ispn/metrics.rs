//! `/metrics` in the Prometheus text format 0.0.4.
//!
//! The alert sitefence is built for reads `vendor_jgroups_site_view_status{site="..."}`: 1 while
//! the site is in this site's cross-site view, 0 when it is not. A few cache gauges come along
//! so that the page looks like a real scrape, not like a one-line fixture.

use std::fmt::Write as _;

use super::state::{BackupStatus, PairState, Side};

const SITE_VIEW_HELP: &str =
    "Returns the site status in JGroups view (0 -> offline, 1 -> online, 2 -> n/a)";

pub(crate) fn render(state: &PairState, side: Side) -> String {
    let local = state.site(side);
    let remote = state.site(side.other());
    let remote_in_view = u8::from(state.link_up());
    let mut out = String::new();

    gauge_header(&mut out, "vendor_jgroups_site_view_status", SITE_VIEW_HELP);
    let mut views = [
        (local.name.as_str(), 1),
        (remote.name.as_str(), remote_in_view),
    ];
    views.sort_unstable();
    for (site, value) in views {
        let _ = writeln!(
            out,
            "vendor_jgroups_site_view_status{{site=\"{site}\"}} {value}"
        );
    }

    let name = "vendor_cache_manager_default_cluster_size";
    gauge_header(&mut out, name, "Cluster size");
    let _ = writeln!(out, "{name} 1");

    for (cache, state) in &local.caches {
        let prefix = format!("vendor_cache_manager_default_cache_{}", sanitize(cache));
        let entries = format!("{prefix}_statistics_approximate_entries");
        gauge_header(&mut out, &entries, "Approximate number of entries");
        let _ = writeln!(out, "{entries} {}", state.entries.len());

        let status = format!("{prefix}_x_site_admin_{}_status", sanitize(&remote.name));
        gauge_header(
            &mut out,
            &status,
            "Backup site status (1 -> online, 0 -> offline)",
        );
        let online = u8::from(state.backup == BackupStatus::Online);
        let _ = writeln!(out, "{status} {online}");
    }
    out
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Metric names allow `[a-zA-Z0-9_]` only: `site-b` becomes `site_b`.
fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> PairState {
        let caches = vec!["work".to_string()];
        PairState::new(["site-a", "site-b"], [&caches, &caches])
    }

    fn sample<'a>(page: &'a str, series: &str) -> Option<&'a str> {
        page.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn both_sites_in_view_while_link_is_up() {
        let page = render(&pair(), Side::A);
        assert_eq!(
            sample(&page, "vendor_jgroups_site_view_status{site=\"site-a\"}"),
            Some("1")
        );
        assert_eq!(
            sample(&page, "vendor_jgroups_site_view_status{site=\"site-b\"}"),
            Some("1")
        );
        assert!(page.contains("# TYPE vendor_jgroups_site_view_status gauge"));
    }

    #[test]
    fn partition_drops_the_remote_site_from_both_views() {
        let mut state = pair();
        state.set_partitioned(true);
        let from_a = render(&state, Side::A);
        let from_b = render(&state, Side::B);
        assert_eq!(
            sample(&from_a, "vendor_jgroups_site_view_status{site=\"site-b\"}"),
            Some("0")
        );
        assert_eq!(
            sample(&from_a, "vendor_jgroups_site_view_status{site=\"site-a\"}"),
            Some("1")
        );
        assert_eq!(
            sample(&from_b, "vendor_jgroups_site_view_status{site=\"site-a\"}"),
            Some("0")
        );
    }

    #[test]
    fn cache_gauges_follow_entries_and_backup_status() {
        let mut state = pair();
        state
            .site_mut(Side::A)
            .caches
            .get_mut("work")
            .unwrap()
            .backup = BackupStatus::Offline;
        let page = render(&state, Side::A);
        assert_eq!(
            sample(
                &page,
                "vendor_cache_manager_default_cache_work_statistics_approximate_entries"
            ),
            Some("100")
        );
        assert_eq!(
            sample(
                &page,
                "vendor_cache_manager_default_cache_work_x_site_admin_site_b_status"
            ),
            Some("0")
        );
    }
}
