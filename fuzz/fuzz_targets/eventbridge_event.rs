//! The VPC function's trigger: the EventBridge EC2 instance state-change notification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpc_route_failover_lambda::event::parse_event;

fuzz_target!(|event: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(event) {
        let _ = parse_event(&value);
    }
});
