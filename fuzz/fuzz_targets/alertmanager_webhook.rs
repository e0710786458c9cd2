//! The Alertmanager webhook body, as the fence reads it: the notification, then each alert's
//! `SiteOffline` labels.
#![no_main]

use common::alertmanager::{FiringSiteOffline, Webhook};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(webhook) = Webhook::parse(body) {
        assert!(webhook.alerts.len() <= common::alertmanager::MAX_ALERTS);
        for alert in &webhook.alerts {
            let _ = alert.alertname();
            let _ = FiringSiteOffline::from_alert(alert);
        }
    }
});
