//! The readers of Infinispan's answers, apart from the HTTP calls, so that tests and the fuzz
//! targets feed them any body: none panics, each says what it could not read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{BackupStatus, CacheResults, Health, MAX_ERROR_BODY, truncate};

/// A response body as JSON; an empty body (or 204) is an empty object.
pub fn json_body(no_content: bool, text: &str) -> Result<Value, String> {
    if no_content || text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|_| format!("not JSON: {}", truncate(text, MAX_ERROR_BODY)))
}

/// A container-level action's answer: cache → `ok` or that cache's error text.
pub fn cache_results(value: Value) -> Result<CacheResults, String> {
    let Value::Object(map) = value else {
        return Err("not a JSON object of cache results".to_owned());
    };
    Ok(CacheResults(
        map.into_iter()
            .map(|(cache, outcome)| {
                let outcome = match outcome {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (cache, outcome)
            })
            .collect(),
    ))
}

/// `GET /rest/v2/container/x-site/backups`: remote site → status over all caches.
pub fn backup_statuses(value: Value) -> Result<BTreeMap<String, BackupStatus>, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// `GET /rest/v2/caches/{cache}/x-site/backups/`: remote site → status.
pub fn cache_backup_statuses(value: Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = value else {
        return Err("not a JSON object".to_owned());
    };
    Ok(map
        .into_iter()
        .map(|(site, value)| {
            let status = match &value {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("status")
                    .and_then(|s| s.as_str())
                    .unwrap_or("unknown")
                    .to_owned(),
                other => other.to_string(),
            };
            (site, status)
        })
        .collect())
}

/// The health status body.
pub fn health(text: &str) -> Health {
    Health::parse(text)
}
