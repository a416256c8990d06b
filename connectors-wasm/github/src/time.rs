//! RFC 3339 timestamps (as GitHub sends them) to milliseconds since the Unix epoch.

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`; `None` for anything else.
pub fn rfc3339_to_ms(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        let mut scaled = fraction[..len].iter().take(3).map(|&c| u64::from(c - b'0')).collect::<Vec<_>>();
        scaled.resize(3, 0);
        millis = scaled[0] * 100 + scaled[1] * 10 + scaled[2];
        rest = &fraction[len..];
    }
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = i64::try_from(digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60).ok()?;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };

    let days = days_from_civil(i64::try_from(year).ok()?, month, day);
    let local = days * 86_400 + i64::try_from(hour * 3600 + minute * 60 + second).ok()?;
    let utc = u64::try_from(local - offset_secs).ok()?;
    utc.checked_mul(1000)?.checked_add(millis)
}

fn digits(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let (month, day) = (month as i64, day as i64);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_github_timestamps() {
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_to_ms("2024-02-29T12:34:56Z"), Some(1_709_210_096_000));
        assert_eq!(rfc3339_to_ms("2024-02-29T12:34:56.789Z"), Some(1_709_210_096_789));
        assert_eq!(rfc3339_to_ms("2024-02-29T04:34:56-08:00"), Some(1_709_210_096_000));
        assert_eq!(rfc3339_to_ms("2024-02-29T14:34:56+02:00"), Some(1_709_210_096_000));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in
            ["", "2024-02-29", "2024-02-29T12:34:56", "2024-13-01T00:00:00Z", "1969-12-31T23:59:59Z", "yesterday"]
        {
            assert_eq!(rfc3339_to_ms(bad), None, "{bad}");
        }
    }
}
