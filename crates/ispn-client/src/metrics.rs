//! The one Prometheus metric the client reads: a node's view of the sites
//! (`jgroups_site_view_status`).

use std::collections::BTreeMap;

use serde::Serialize;

/// One site as a node's `jgroups_site_view_status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SiteView {
    /// 1: the site is in the cross-site view.
    InView,
    /// 0: it is not (the link is down or the site is gone).
    NotInView,
    /// 2 (a node that is not site master) or any other value.
    Unknown,
}

/// `jgroups_site_view_status` per `site` label, with or without the `vendor_` prefix (16.0.4
/// dropped it by default). Over several nodes a site is out of view when any node says 0 (as
/// the alert's `min by` reads it), in view when a node says 1 and none says 0.
pub fn parse_site_view(page: &str) -> BTreeMap<String, SiteView> {
    let mut views: BTreeMap<String, SiteView> = BTreeMap::new();
    for line in page.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        if !(name == "jgroups_site_view_status" || name == "vendor_jgroups_site_view_status") {
            continue;
        }
        let Some(site) = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| key.trim() == "site")
            .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        else {
            continue;
        };
        let view = match value.trim().parse::<f64>() {
            Ok(1.0) => SiteView::InView,
            Ok(0.0) => SiteView::NotInView,
            _ => SiteView::Unknown,
        };
        let merged = match (views.get(&site), view) {
            (Some(SiteView::NotInView), _) | (_, SiteView::NotInView) => SiteView::NotInView,
            (Some(SiteView::InView), _) | (_, SiteView::InView) => SiteView::InView,
            _ => SiteView::Unknown,
        };
        views.insert(site, merged);
    }
    views
}
