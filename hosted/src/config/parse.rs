//! The forms the variables' values take: sizes, durations, switches and counts.
//!
//! Each parser answers `None` for text it does not accept; the caller names the variable and
//! what it accepts.

use std::time::Duration;

/// A size in bytes: digits, then optionally `k`, `m` or `g` (any case, with an optional `b` or
/// `ib`) for KiB, MiB or GiB.
pub(super) fn size(text: &str) -> Option<u64> {
    let text = text.trim();
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(end);
    if digits.is_empty() {
        return None;
    }
    let unit: u64 = match suffix.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// A duration: a decimal number of seconds (`0.1`, gevent's form), or a number followed by
/// `s`, `ms` or `us`. Decimals are exact to the nanosecond: no float rounding.
pub(super) fn duration(text: &str) -> Option<Duration> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let text = text.trim();
    let (number, unit): (&str, u128) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, NANOS_PER_SEC)
    } else {
        (text, NANOS_PER_SEC)
    };
    let number = number.trim_end();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 9
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    let nanos = whole.checked_mul(unit)?.checked_add(fraction * unit / scale)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// A switch: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, in any case.
pub(super) fn switch(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A count in decimal.
pub(super) fn count(text: &str) -> Option<usize> {
    let text = text.trim();
    if text.starts_with('+') {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(size("65536"), Some(65_536));
        assert_eq!(size("64k"), Some(65_536));
        assert_eq!(size("64K"), Some(65_536));
        assert_eq!(size("64 KiB"), Some(65_536));
        assert_eq!(size("2m"), Some(2 << 20));
        assert_eq!(size("2MB"), Some(2 << 20));
        assert_eq!(size("3g"), Some(3 << 30));
        assert_eq!(size(" 7 "), Some(7));
        for bad in ["", "k", "-1", "1.5m", "12x", "0x10", "1 k b", "18446744073709551616"] {
            assert_eq!(size(bad), None, "{bad:?}");
        }
        assert_eq!(size("18014398509481984k"), None, "overflows u64 once multiplied");
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(duration("0.1"), Some(Duration::from_millis(100)));
        assert_eq!(duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(duration("1.5ms"), Some(Duration::from_micros(1500)));
        assert_eq!(duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(duration(".5"), Some(Duration::from_millis(500)));
        assert_eq!(duration("3."), Some(Duration::from_secs(3)));
        assert_eq!(duration(" 5 s "), Some(Duration::from_secs(5)));
        assert_eq!(duration("0.000000001"), Some(Duration::from_nanos(1)));
        assert_eq!(duration("0"), Some(Duration::ZERO), "zero parses; the caller refuses it");
        for bad in
            ["", ".", "s", "ms", "-1", "+1", "1e3", "inf", "NaN", "1.2.3", "1m", "0.0000000001"]
        {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
        assert_eq!(duration("18446744073709551616"), None, "more seconds than a Duration holds");
    }

    #[test]
    fn switches_take_the_usual_words() {
        for on in ["1", "true", "TRUE", "yes", "On"] {
            assert_eq!(switch(on), Some(true), "{on}");
        }
        for off in ["0", "false", "No", "OFF"] {
            assert_eq!(switch(off), Some(false), "{off}");
        }
        for bad in ["", "2", "enabled", "y"] {
            assert_eq!(switch(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_are_plain_decimals() {
        assert_eq!(count("8"), Some(8));
        assert_eq!(count(" 0 "), Some(0), "zero parses; the caller refuses it");
        for bad in ["", "+3", "-1", "3.0", "four"] {
            assert_eq!(count(bad), None, "{bad}");
        }
    }
}
