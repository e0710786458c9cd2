//! Identifiers and timestamps in the shapes Lambda uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A request id: a random (version 4) UUID, as Lambda's are.
pub(super) fn request_id() -> String {
    let bits = fastrand::u128(..);
    let bits = (bits & !(0xf << 76)) | (0x4 << 76);
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray trace header (`Root=1-<epoch hex>-<96 random bits>;Parent=…;Sampled=0`).
pub(super) fn trace_id(now: SystemTime) -> String {
    let seconds = unix_millis(now) / 1000;
    let root = fastrand::u128(..) >> 32;
    let parent = fastrand::u64(..);
    format!("Root=1-{seconds:08x}-{root:024x};Parent={parent:016x};Sampled=0")
}

/// The `<url-id>` of a Function URL: 32 lower-case letters and digits, stable per function
/// name so that the same sandbox function always gets the same domain.
pub(super) fn url_id(function_name: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = fnv1a(function_name.as_bytes());
    (0..32)
        .map(|_| {
            // xorshift64*: spreads one hash over 32 characters.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let value = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            char::from(ALPHABET[(value >> 58) as usize % ALPHABET.len()])
        })
        .collect()
}

/// A CloudWatch log stream name as Lambda names them: `YYYY/MM/DD/[$LATEST]<32 hex>`.
pub(super) fn log_stream_name(now: SystemTime) -> String {
    let (year, month, day, ..) = civil(now);
    format!(
        "{year:04}/{month:02}/{day:02}/[$LATEST]{:032x}",
        fastrand::u128(..)
    )
}

pub(super) fn unix_millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// `requestContext.time` of payload 2.0: `12/Mar/2020:19:03:58 +0000`.
pub(super) fn request_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, hour, minute, second) = civil(now);
    let month = MONTHS[(month as usize - 1) % 12];
    format!("{day:02}/{month}/{year:04}:{hour:02}:{minute:02}:{second:02} +0000")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// UTC calendar fields of a time (Howard Hinnant's days-to-civil algorithm).
fn civil(time: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let seconds = i64::try_from(unix_millis(time) / 1000).unwrap_or(0);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (of_day / 3600) as u32,
        (of_day % 3600 / 60) as u32,
        (of_day % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn request_id_is_a_version_4_uuid() {
        let id = request_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(
            groups[3].chars().next(),
            Some('8' | '9' | 'a' | 'b')
        ));
    }

    #[test]
    fn request_time_matches_the_documented_example() {
        // The payload 2.0 example: timeEpoch 1583348638390 is 04/Mar/2020:19:03:58 +0000.
        assert_eq!(
            request_time(at(1_583_348_638)),
            "04/Mar/2020:19:03:58 +0000"
        );
        assert_eq!(request_time(at(0)), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(request_time(at(951_782_400)), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn trace_id_has_the_xray_shape() {
        let trace = trace_id(at(1_583_348_638));
        assert!(trace.starts_with("Root=1-5e5ffb9e-"), "{trace}");
        assert!(trace.ends_with(";Sampled=0"));
    }

    #[test]
    fn url_id_is_stable_and_per_function() {
        assert_eq!(url_id("fence-lambda"), url_id("fence-lambda"));
        assert_ne!(url_id("fence-lambda"), url_id("other"));
        assert_eq!(url_id("fence-lambda").len(), 32);
        assert!(
            url_id("x")
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
