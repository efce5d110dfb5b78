//! The few JSON text primitives a log line needs, written straight into a `String`:
//! escaped strings (also through `fmt::Write`, so `Debug` output is escaped as it
//! is produced), unsigned integers, and an RFC 3339 UTC timestamp with microseconds.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `text` as a JSON string, quotes included.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    push_escaped(out, text);
    out.push('"');
}

/// Appends `text` escaped for the inside of a JSON string (RFC 8259 §7: quote,
/// backslash and control characters; everything else is valid UTF-8 as it is).
fn push_escaped(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    // Nearly every string a log line holds needs no escape: find out in one
    // tight pass and copy it whole.
    let Some(first) = bytes.iter().position(|&b| needs_escape(b)) else {
        out.push_str(text);
        return;
    };
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate().skip(first) {
        if !needs_escape(byte) {
            continue;
        }
        // Escaped bytes are ASCII, so these are character boundaries.
        out.push_str(&text[start..index]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// A `fmt::Write` that escapes what is written to it for the inside of a JSON string.
pub(crate) struct JsonEscaper<'a>(pub(crate) &'a mut String);

impl fmt::Write for JsonEscaper<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        push_escaped(self.0, text);
        Ok(())
    }
}

/// Appends `value` in decimal.
pub(crate) fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `value % 10` is below 10, so the cast cannot truncate.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// Appends `value` zero-padded to two digits (it is below 100).
fn push_2(out: &mut String, value: u64) {
    out.push(char::from(b'0' + (value / 10 % 10) as u8));
    out.push(char::from(b'0' + (value % 10) as u8));
}

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the format `tracing-subscriber`
/// writes. Times before 1970 (a clock set wrong) are written as 1970.
pub(crate) fn push_timestamp(out: &mut String, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    if year < 1000 {
        out.push('0');
    }
    push_u64(out, year);
    out.push('-');
    push_2(out, month);
    out.push('-');
    push_2(out, day);
    out.push('T');
    push_2(out, second_of_day / 3600);
    out.push(':');
    push_2(out, second_of_day / 60 % 60);
    out.push(':');
    push_2(out, second_of_day % 60);
    out.push('.');
    let micros = u64::from(since_epoch.subsec_micros());
    push_2(out, micros / 10_000);
    push_2(out, micros / 100 % 100);
    push_2(out, micros % 100);
    out.push('Z');
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strings_escape_as_serde_json_does() {
        for (text, json) in [
            ("plain", r#""plain""#),
            ("", r#""""#),
            (
                "quote \" backslash \\ slash /",
                r#""quote \" backslash \\ slash /""#,
            ),
            ("é ✓ 😀 and \u{2028}", "\"é ✓ 😀 and \u{2028}\""),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\0\u{1}\u{1f}\u{7f}", "\"\\u0000\\u0001\\u001f\u{7f}\""),
        ] {
            let mut out = String::new();
            push_json_str(&mut out, text);
            assert_eq!(out, json);
        }
        let mut out = String::new();
        let _ =
            std::fmt::Write::write_fmt(&mut JsonEscaper(&mut out), format_args!("{:?}", "a\"b"));
        assert_eq!(out, r#"\"a\\\"b\""#);
    }

    #[test]
    fn integers_print_in_decimal() {
        for value in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string());
        }
    }

    /// Against a day-by-day count over leap years, century rules and month ends.
    #[test]
    fn timestamps_match_a_naive_calendar() {
        let mut instants = vec![0u64, 59, 86_399, 86_400, 951_782_400, 951_868_800];
        // Every 3 days, 7 hours and 13 s from 1970 to about 2200.
        instants.extend((0..25_000).map(|n| n * (3 * 86_400 + 7 * 3600 + 13)));
        for seconds in instants {
            let time = UNIX_EPOCH + Duration::new(seconds, 123_456_789);
            let mut ours = String::new();
            push_timestamp(&mut ours, time);
            assert_eq!(ours, naive(seconds), "{seconds}");
        }
        let mut out = String::new();
        push_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(out, "2000-02-29T00:00:00.000000Z");
        out.clear();
        push_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(4_107_542_400));
        assert_eq!(
            out, "2100-03-01T00:00:00.000000Z",
            "2100 is not a leap year"
        );

        fn naive(seconds: u64) -> String {
            let leap =
                |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
            let (mut year, mut days) = (1970, seconds / 86_400);
            while days >= if leap(year) { 366 } else { 365 } {
                days -= if leap(year) { 366 } else { 365 };
                year += 1;
            }
            let mut lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            if leap(year) {
                lengths[1] = 29;
            }
            let mut month = 0;
            while days >= lengths[month] {
                days -= lengths[month];
                month += 1;
            }
            let s = seconds % 86_400;
            format!(
                "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.123456Z",
                month + 1,
                days + 1,
                s / 3600,
                s / 60 % 60,
                s % 60
            )
        }
    }

    /// The same text as `tracing-subscriber`'s timer for the current time (retried
    /// if a second boundary falls between the two readings).
    #[test]
    fn timestamps_match_tracing_subscribers_timer() {
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime as Timer};
        for _ in 0..10 {
            let mut theirs = String::new();
            let _ = Timer.format_time(&mut Writer::new(&mut theirs));
            let mut ours = String::new();
            push_timestamp(&mut ours, SystemTime::now());
            assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
            if ours[..19] == theirs[..19] {
                return;
            }
        }
        panic!("timestamps never agreed to the second");
    }
}
