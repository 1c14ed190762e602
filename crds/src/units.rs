//! Durations and quantities as they appear in the CRD, and their parsed forms.
//!
//! The schema checks the *shape* of these strings with the patterns below, so that the API
//! server refuses `"5 minutes"` or `"1GB"` before the operator ever sees them. The operator
//! then parses them once with the functions here (parse, don't validate). Patterns and
//! parsers live side by side so that a test can prove they agree.

use std::time::Duration;

use crate::Error;

/// A Go-style duration (`time.ParseDuration`): one or more `<number><unit>` groups, units
/// `ns`, `us`, `ms`, `s`, `m`, `h`. Examples: `30s`, `1m30s`, `1.5h`, `0s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

/// A memory quantity in bytes, as Kubernetes writes it: an optional binary (`Ki`, `Mi`, `Gi`,
/// `Ti`) or decimal (`k`, `M`, `G`, `T`) suffix. Examples: `128Mi`, `1.5Gi`, `500M`, `1048576`.
pub const MEMORY_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$";

/// A memory quantity or the word `auto`.
pub const MEMORY_OR_AUTO_PATTERN: &str = r"^(auto|[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?)$";

/// A CPU quantity: millicores (`500m`) or cores (`2`, `0.5`).
pub const CPU_PATTERN: &str = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$";

/// Longest duration or quantity string the schema accepts. It also bounds the cost the API
/// server estimates for the CEL rules that read these strings.
pub const MAX_UNIT_LEN: u32 = 32;

const MI: u64 = 1024 * 1024;

/// Parses a Go-style duration such as `1m30s` (see [`DURATION_PATTERN`]).
///
/// # Errors
/// [`Error::InvalidDuration`] when the text is not a non-negative Go duration.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let invalid = || Error::InvalidDuration(text.to_owned());
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let digits = &rest[..number_len];
        // Go also takes "1.s" and ".5s"; the schema pattern does not, and neither do we.
        if digits.is_empty() || digits.starts_with('.') || digits.ends_with('.') {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// Formats a duration the way Go prints it for whole seconds (`1h2m3s`, `30s`, `0s`);
/// sub-second durations are written in milliseconds (`250ms`).
#[must_use]
pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() != 0 && duration.as_secs() == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses a memory quantity (see [`MEMORY_PATTERN`]) into bytes, rounding fractions up.
///
/// # Errors
/// [`Error::InvalidQuantity`] when the text is not a memory quantity or overflows.
pub fn parse_memory(text: &str) -> Result<u64, Error> {
    let invalid = || Error::InvalidQuantity(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(invalid()),
    };
    // Integer arithmetic for the whole part keeps "1Ti" exact; the fraction is rounded up
    // so that "1.5" never becomes less memory than asked for.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().map_err(|_| invalid())?;
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(invalid)?;
    if !fraction.is_empty() {
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits: u64 = fraction.parse().map_err(|_| invalid())?;
        let scale = 10u64.pow(u32::try_from(fraction.len()).map_err(|_| invalid())?);
        let extra = u128::from(digits) * u128::from(multiplier);
        let extra = extra.div_ceil(u128::from(scale));
        let extra = u64::try_from(extra).map_err(|_| invalid())?;
        bytes = bytes.checked_add(extra).ok_or_else(invalid)?;
    }
    Ok(bytes)
}

/// Formats bytes as a quantity in whole mebibytes, rounded up (`134217728` → `128Mi`).
/// Whole gibibytes are written as `Gi`.
#[must_use]
pub fn format_memory(bytes: u64) -> String {
    let mib = bytes.div_ceil(MI);
    if mib > 0 && mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// Bytes rounded up to whole mebibytes, the unit of RoadRunner's `max_worker_memory`.
#[must_use]
pub fn bytes_to_mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MI)
}

/// Parses a CPU quantity (see [`CPU_PATTERN`]) into millicores, rounding up.
///
/// # Errors
/// [`Error::InvalidQuantity`] when the text is not a CPU quantity.
pub fn parse_cpu_millis(text: &str) -> Result<u64, Error> {
    let invalid = || Error::InvalidQuantity(text.to_owned());
    if let Some(millis) = text.strip_suffix('m') {
        if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        return millis.parse().map_err(|_| invalid());
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let whole: u64 = whole.parse().map_err(|_| invalid())?;
    let mut millis = whole.checked_mul(1000).ok_or_else(invalid)?;
    if !fraction.is_empty() {
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits: u64 = fraction.parse().map_err(|_| invalid())?;
        let scale = 10u64.pow(u32::try_from(fraction.len()).map_err(|_| invalid())?);
        millis += (digits * 1000).div_ceil(scale);
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_like_go() {
        let cases = [
            ("0s", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in [
            "",
            "30",
            "s",
            "5 minutes",
            "-1s",
            "1d",
            "1.s",
            ".5s",
            "1m 30s",
            "1x",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn memory_quantities_parse() {
        let cases = [
            ("128Mi", 128 * MI),
            ("1Gi", 1024 * MI),
            ("1.5Gi", 1536 * MI),
            ("500M", 500_000_000),
            ("1k", 1000),
            ("2Ti", 2 << 40),
            ("1048576", MI),
            ("0.5Ki", 512),
        ];
        for (text, want) in cases {
            assert_eq!(parse_memory(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn bad_memory_quantities_are_refused() {
        for text in [
            "", "Mi", "1GB", "1.5.5Gi", "-1Mi", "1m", "auto", "1e9", ".5Gi", "1.Gi",
        ] {
            assert!(parse_memory(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn memory_formats_in_whole_mebibytes() {
        assert_eq!(format_memory(128 * MI), "128Mi");
        assert_eq!(format_memory(128 * MI + 1), "129Mi");
        assert_eq!(format_memory(2048 * MI), "2Gi");
        assert_eq!(format_memory(0), "0Mi");
    }

    #[test]
    fn cpu_quantities_parse() {
        assert_eq!(parse_cpu_millis("500m").unwrap(), 500);
        assert_eq!(parse_cpu_millis("2").unwrap(), 2000);
        assert_eq!(parse_cpu_millis("0.25").unwrap(), 250);
        for text in ["", "m", "1.5m", "a", "-1"] {
            assert!(
                parse_cpu_millis(text).is_err(),
                "{text:?} should be refused"
            );
        }
    }

    proptest! {
        #[test]
        fn formatted_durations_parse_back(secs in 0u64..400_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn formatted_memory_parses_back_no_smaller(bytes in 0u64..(1u64 << 44)) {
            let back = parse_memory(&format_memory(bytes)).unwrap();
            prop_assert!(back >= bytes);
            prop_assert!(back - bytes < MI);
        }

        /// The schema pattern and the parser agree: whatever the parser accepts from a
        /// pattern-shaped generator parses, and the parser refuses what the pattern refuses.
        #[test]
        fn pattern_shaped_memory_always_parses(
            whole in 0u64..100_000,
            frac in proptest::option::of(0u32..1000),
            suffix in prop::sample::select(vec!["", "Ki", "Mi", "Gi", "k", "M", "G"]),
        ) {
            let text = match frac {
                Some(f) => format!("{whole}.{f}{suffix}"),
                None => format!("{whole}{suffix}"),
            };
            prop_assert!(parse_memory(&text).is_ok(), "{}", text);
        }
    }
}
