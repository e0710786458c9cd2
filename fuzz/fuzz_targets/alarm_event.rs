//! The Route 53 function's trigger: a CloudWatch alarm through SNS, or directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use route53_failover_lambda::event::parse_event;

fuzz_target!(|event: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(event) {
        let _ = parse_event(&value);
    }
});
