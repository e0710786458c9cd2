//! JSON logs on stdout, one object per line, and the one decision record per invocation.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

static FUNCTION: OnceLock<&'static str> = OnceLock::new();

/// Targets held at DEBUG whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` say, because their TRACE
/// events carry requests: Lambda's advanced logging sets `AWS_LAMBDA_LOG_LEVEL=TRACE` from the
/// console, and a `RUST_LOG` written to debug one thing must not put a credential in CloudWatch.
const NEVER_BELOW_DEBUG: &[&str] = &[
    // `lambda_runtime::layers::api_response` logs every invocation's raw event at TRACE ("raw
    // JSON event received from Lambda"); for a Function URL that is the whole HTTP request, its
    // `authorization` header (the webhook's Basic credentials) included. The prefix also covers
    // `lambda_runtime_api_client`.
    "lambda_runtime",
    // The AWS SDK's orchestrator logs each request and response at TRACE: headers (it redacts
    // `authorization` and `x-amz-security-token`) and bodies of operations not marked
    // sensitive. SigV4 logs the request it signs, headers not redacted.
    "aws_smithy_runtime",
    "aws_sigv4",
    // The HTTP wire: no header or body at TRACE in the versions locked today, but nothing of
    // ours needs them below DEBUG, and a release that adds one would leak it.
    "aws_smithy_http_client",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
];

/// Installs the JSON log subscriber. The filter is `RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info` (with the AWS SDK's own chatter at `warn`). `RUST_LOG`
/// takes `target=level` directives and a bare default level (no span or field filters: those
/// need `tracing-subscriber`'s regex-based filter, which the functions do not link). Whatever
/// the filter, the targets of [`NEVER_BELOW_DEBUG`] never log at TRACE. Calling it again is
/// harmless.
pub fn init(function: &'static str) {
    let _ = FUNCTION.set(function);
    let directives = directives(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let _ = subscriber(&directives, std::io::stdout).try_init();
}

/// The function's name as [`init`] was given it (`unknown` before).
pub fn function() -> &'static str {
    FUNCTION.get().copied().unwrap_or("unknown")
}

/// `RUST_LOG` when set and not blank, else Lambda's level, else `info`.
fn directives(rust_log: Option<&str>, lambda_log_level: Option<&str>) -> String {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| lambda_log_level.map(|level| lambda_level(level).to_owned()))
        .unwrap_or_else(|| "info".to_owned())
}

/// JSON lines to `writer`, filtered by `directives` and, on top of them, by the cap of
/// [`NEVER_BELOW_DEBUG`]: an event is written only when both filters let it through.
fn subscriber<W>(directives: &str, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_ansi(false)
                .with_target(true)
                .with_writer(writer),
        )
        .with(filter_of(directives))
        .with(never_below_debug())
}

/// The directives, after the SDK's own defaults so that they can override them; `info` when
/// they do not parse.
fn filter_of(directives: &str) -> Targets {
    format!("aws_config=warn,aws_smithy_runtime=warn,hyper_util=warn,rustls=warn,{directives}")
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Everything up to TRACE, except [`NEVER_BELOW_DEBUG`] up to DEBUG. A filter of its own rather
/// than directives appended to the configured ones: a more specific configured target
/// (`lambda_runtime::layers=trace`) would win over an appended `lambda_runtime=debug`.
fn never_below_debug() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            NEVER_BELOW_DEBUG
                .iter()
                .map(|target| (*target, LevelFilter::DEBUG)),
        )
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
        "function": function(),
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

/// Milliseconds since the epoch of an RFC 3339 timestamp (`2026-11-25T10:00:00Z`, with or
/// without fractional seconds, `Z` or a `±hh:mm` offset), as Alertmanager writes `startsAt`;
/// `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, time) = text.split_once(['T', 't'])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0i64)
    } else {
        let split = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        let minutes = hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?;
        (clock, sign * minutes)
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = whole.splitn(3, ':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = hms.next()?.parse().ok()?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// The inverse of [`civil_from_days`] (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 as a proleptic Gregorian (year, month, day): Howard Hinnant's
/// `civil_from_days`, for every UTC timestamp the project prints.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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
    fn alertmanager_timestamps_parse_to_epoch_milliseconds() {
        let table = [
            ("2026-11-18T11:06:40.123Z", Some(1_795_000_000_123)),
            ("2026-11-18T11:06:40Z", Some(1_795_000_000_000)),
            (
                "2026-11-18T12:06:40.123456789+01:00",
                Some(1_795_000_000_123),
            ),
            ("2026-11-18T10:06:40.1-01:00", Some(1_795_000_000_100)),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("0001-01-01T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-18 11:06:40", None),
            ("", None),
        ];
        for (text, millis) in table {
            assert_eq!(parse_rfc3339_ms(text), millis, "{text}");
        }
        for days in [-1, 0, 59, 60, 10_957, 20_775] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
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

    /// What a subscriber writes, for tests.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            self.0
                .lock()
                .map(|out| String::from_utf8_lossy(&out).into_owned())
                .unwrap_or_default()
        }
    }

    /// The events the capped crates emit at TRACE, as they emit them (same targets), with a
    /// credential in place of the request; then one DEBUG event of the runtime and one TRACE
    /// event of ours, which must pass when the directives ask for them.
    fn emit_everything(credential: &str) {
        tracing::trace!(
            target: "lambda_runtime::layers::api_response",
            body = credential,
            "raw JSON event received from Lambda"
        );
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = credential, "transmitting request");
        tracing::trace!(target: "aws_sigv4::http_request::sign", request = credential, "signing request");
        tracing::trace!(target: "h2::proto::connection", frame = credential, "recv HEADERS");
        tracing::trace!(target: "hyper::proto::h1::role", headers = credential);
        tracing::debug!(target: "lambda_runtime::runtime", "runtime_debug_event");
        tracing::trace!(target: "fence_lambda::handler", "our_trace_event");
    }

    /// One configuration, and which of the events that may pass do.
    struct Row {
        case: &'static str,
        rust_log: Option<&'static str>,
        lambda_log_level: Option<&'static str>,
        our_trace_written: bool,
        runtime_debug_written: bool,
    }

    #[test]
    fn trace_never_writes_the_runtime_event_nor_the_wire_whatever_the_level() {
        const CREDENTIAL: &str = "Basic a2V5Y2xvYWs6czNjcmV0";
        let table = [
            Row {
                case: "lambda_advanced_logging_at_trace",
                rust_log: None,
                lambda_log_level: Some("TRACE"),
                our_trace_written: true,
                runtime_debug_written: true,
            },
            Row {
                case: "rust_log_trace",
                rust_log: Some("trace"),
                lambda_log_level: None,
                our_trace_written: true,
                runtime_debug_written: true,
            },
            Row {
                case: "rust_log_names_the_runtime",
                rust_log: Some("lambda_runtime=trace"),
                lambda_log_level: None,
                our_trace_written: false,
                runtime_debug_written: true,
            },
            Row {
                case: "rust_log_names_the_module_that_logs_the_event",
                rust_log: Some("info,lambda_runtime::layers::api_response=trace"),
                lambda_log_level: None,
                our_trace_written: false,
                runtime_debug_written: false,
            },
            Row {
                case: "rust_log_names_the_sdk_and_the_wire",
                rust_log: Some(
                    "debug,aws_smithy_runtime=trace,aws_sigv4=trace,h2=trace,hyper=trace",
                ),
                lambda_log_level: None,
                our_trace_written: false,
                runtime_debug_written: true,
            },
            Row {
                case: "info_by_default",
                rust_log: None,
                lambda_log_level: None,
                our_trace_written: false,
                runtime_debug_written: false,
            },
        ];
        for row in table {
            let case = row.case;
            let capture = Capture::default();
            let subscriber = subscriber(
                &directives(row.rust_log, row.lambda_log_level),
                capture.clone(),
            );
            tracing::subscriber::with_default(subscriber, || emit_everything(CREDENTIAL));
            let written = capture.text();
            assert!(!written.contains(CREDENTIAL), "{case}: {written}");
            assert_eq!(
                written.contains("our_trace_event"),
                row.our_trace_written,
                "{case}: {written}"
            );
            assert_eq!(
                written.contains("runtime_debug_event"),
                row.runtime_debug_written,
                "{case}: {written}"
            );
        }
    }

    #[test]
    fn rust_log_wins_over_the_lambda_level_unless_blank() {
        assert_eq!(
            directives(Some("fence_lambda=debug"), Some("TRACE")),
            "fence_lambda=debug"
        );
        assert_eq!(directives(Some("  "), Some("TRACE")), "trace");
        assert_eq!(directives(None, None), "info");
    }

    #[test]
    fn lambda_levels_map_to_filters() {
        assert_eq!(lambda_level("FATAL"), "error");
        assert_eq!(lambda_level("debug"), "debug");
        assert_eq!(lambda_level("nonsense"), "info");
    }
}
