//! Time: RFC 3339 UTC timestamps (written with a fixed width so they sort as text), the three
//! timestamp forms upstream writes, and friendly durations (`24h`, `7d`, `90m`, `1h30m`).

use std::time::Duration;

use jiff::Timestamp;

/// Why a time or duration could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "`{0}` is not a timestamp; use RFC 3339 such as `2026-11-24T08:00:00Z` (a naive time is read as UTC)"
    )]
    Timestamp(String),
    #[error(
        "`{0}` is not a duration; use a number and a unit: `90s`, `90m`, `24h`, `7d`, `2w`, or combine them: `1h30m`"
    )]
    Duration(String),
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `2026-11-24T08:14:20.123456Z`: UTC, microseconds, fixed width, so text order is time order.
pub fn format(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The current time, formatted.
pub fn now_rfc3339() -> String {
    format(now())
}

/// Reads any of upstream's forms: `...+00:00` with microseconds, `...Z`, and naive (no zone,
/// read as UTC). A space instead of `T` is accepted.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, TimeError> {
    let t = text.trim();
    if t.len() > 64 || t.is_empty() {
        return Err(TimeError::Timestamp(text.chars().take(64).collect()));
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    // Naive: no offset. Upstream's Python wrote `datetime.now().isoformat()` in UTC containers.
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(dt)
            .map_err(|_| TimeError::Timestamp(text.to_string()));
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|_| TimeError::Timestamp(text.to_string()));
    }
    Err(TimeError::Timestamp(text.to_string()))
}

/// Reads `90s`, `90m`, `24h`, `7d`, `2w`, `1h30m`, `1d 12h`, and ISO 8601 `PT24H`.
pub fn parse_duration(text: &str) -> Result<Duration, TimeError> {
    let err = || TimeError::Duration(text.chars().take(64).collect());
    let t = text.trim();
    if t.is_empty() || t.len() > 64 {
        return Err(err());
    }
    if t.starts_with(['P', 'p']) {
        let d: jiff::SignedDuration = t.parse().map_err(|_| err())?;
        return Duration::try_from(d).map_err(|_| err());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(c as u8 - b'0')))
                    .ok_or_else(err)?,
            );
        } else if c.is_whitespace() {
            continue;
        } else {
            let mut unit = String::from(c);
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphabetic() {
                    unit.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let secs = match unit.as_str() {
                "s" | "sec" | "secs" | "second" | "seconds" => 1,
                "m" | "min" | "mins" | "minute" | "minutes" => 60,
                "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
                "d" | "day" | "days" => 86_400,
                "w" | "week" | "weeks" => 604_800,
                _ => return Err(err()),
            };
            let n = number.take().ok_or_else(err)?;
            total = n
                .checked_mul(secs)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
    }
    if number.is_some() {
        // A trailing bare number has no unit: ambiguous, refuse.
        return Err(err());
    }
    // Keep far inside what timestamp arithmetic can represent (about 100 years).
    if total > 100 * 366 * 86_400 {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// `now - duration`, saturating at the earliest representable time.
pub fn ago(now: Timestamp, d: Duration) -> Timestamp {
    let sd = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    now.checked_sub(sd).unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_upstream_forms_parse_to_utc() {
        let a = parse_timestamp("2025-10-23T00:19:27.123456+00:00").unwrap();
        let b = parse_timestamp("2025-10-23T00:19:27.123456Z").unwrap();
        let c = parse_timestamp("2025-10-23T00:19:27.123456").unwrap();
        let d = parse_timestamp("2025-10-22T19:19:27.123456-05:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(format(a), "2025-10-23T00:19:27.123456Z");
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2025-13-40T00:00:00Z").is_err());
    }

    #[test]
    fn formatted_time_sorts_as_text() {
        let a = format(parse_timestamp("2025-01-01T00:00:00Z").unwrap());
        let b = format(parse_timestamp("2025-01-01T00:00:00.5Z").unwrap());
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }

    #[test]
    fn durations() {
        let h = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(h("24h"), Ok(86_400));
        assert_eq!(h("7d"), Ok(604_800));
        assert_eq!(h("90m"), Ok(5_400));
        assert_eq!(h("1h30m"), Ok(5_400));
        assert_eq!(h("1d 12h"), Ok(129_600));
        assert_eq!(h("PT24H"), Ok(86_400));
        assert_eq!(h("2w"), Ok(1_209_600));
        for bad in [
            "",
            "24",
            "h",
            "24x",
            "-1h",
            "99999999999999999999h",
            "100000d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
