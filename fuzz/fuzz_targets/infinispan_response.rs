//! Every answer the Infinispan client reads: any body, through each reader.
#![no_main]

use ispn_client::response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Some((&first, rest)) = body.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let _ = response::health(&text);
    if let Ok(value) = response::json_body(first & 1 == 1, &text) {
        if let Ok(results) = response::cache_results(value.clone()) {
            let _ = results.all_ok();
            let _ = results.failures().count();
        }
        let _ = response::backup_statuses(value.clone());
        let _ = response::cache_backup_statuses(value);
    }
});
