//! The `Authorization` header of the fence's webhook: any bytes, against fixed credentials.
#![no_main]

use common::auth::{AuthOutcome, BasicCredentials, check_basic};
use common::secret::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &[u8]| {
    let expected = BasicCredentials {
        user: "sitefence".to_owned(),
        password: Secret::new("correct horse battery staple"),
    };
    let outcome = check_basic(Some(header), &expected);
    // Only the one right header may pass.
    if matches!(outcome, AuthOutcome::Authorized) {
        let text = std::str::from_utf8(header).unwrap_or_default();
        assert!(text.trim_start().to_ascii_lowercase().starts_with("basic"), "{text:?}");
    }
});
