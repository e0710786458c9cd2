//! JSON logs on stdout, one object per line, and the one decision record per invocation.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

static FUNCTION: OnceLock<&'static str> = OnceLock::new();

/// Installs the JSON log subscriber. The filter is `RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info` (with the AWS SDK's own chatter at `warn`). `RUST_LOG`
/// takes `target=level` directives and a bare default level (no span or field filters: those
/// need `tracing-subscriber`'s regex-based filter, which the functions do not link). Calling it
/// again is harmless.
pub fn init(function: &'static str) {
    let _ = FUNCTION.set(function);
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|level| lambda_level(&level).to_owned())
        })
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_ansi(false)
                .with_target(true)
                .with_writer(std::io::stdout),
        )
        .with(filter_of(&filter))
        .try_init();
}

/// The directives, after the SDK's own defaults so that they can override them; `info` when
/// they do not parse.
fn filter_of(directives: &str) -> Targets {
    format!("aws_config=warn,aws_smithy_runtime=warn,hyper_util=warn,rustls=warn,{directives}")
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

fn lambda_level(level: &str) -> &'static str {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    }
}

/// Writes the decision record of an invocation: one JSON line
/// `{"timestamp", "level": "INFO", "target": "decision", "function", "decision": RECORD}`,
/// with the record as a nested object (not a string), whatever the log filter says. The record
/// must hold no secret; the types that go into it have no secret to give.
pub fn decision_record(record: &serde_json::Value) {
    let line = decision_line(record, SystemTime::now());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn decision_line(record: &serde_json::Value, now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "timestamp": rfc3339(now),
        "level": "INFO",
        "target": "decision",
        "function": FUNCTION.get().copied().unwrap_or("unknown"),
        "decision": record,
    })
}

/// UTC, millisecond precision, like the rest of the log lines.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

// Howard Hinnant's days → civil date algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn decision_record_is_nested_json() {
        let line = decision_line(&serde_json::json!({"alerts": []}), UNIX_EPOCH);
        assert_eq!(line["target"], "decision");
        assert_eq!(line["decision"]["alerts"], serde_json::json!([]));
    }

    #[test]
    fn filters_take_targets_and_a_default_and_fall_back_to_info() {
        use tracing::Level;
        use tracing_subscriber::filter::LevelFilter;

        let filter = filter_of("debug,fence_lambda=trace,aws_config=info");
        assert_eq!(filter.default_level(), Some(LevelFilter::DEBUG));
        assert!(filter.would_enable("fence_lambda::live", &Level::TRACE));
        assert!(filter.would_enable("aws_config::loader", &Level::INFO));
        assert!(!filter.would_enable("rustls::client", &Level::INFO));
        let fallback = filter_of("fence_lambda[span{x=1}]=debug");
        assert_eq!(fallback.default_level(), Some(LevelFilter::INFO));
    }

    #[test]
    fn lambda_levels_map_to_filters() {
        assert_eq!(lambda_level("FATAL"), "error");
        assert_eq!(lambda_level("debug"), "debug");
        assert_eq!(lambda_level("nonsense"), "info");
    }
}
