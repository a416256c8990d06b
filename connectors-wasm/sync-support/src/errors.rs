//! HTTP answers → [`ConnectorError`], the same for every data-sync connector:
//!
//! | answer                                   | error                                                   |
//! |------------------------------------------|---------------------------------------------------------|
//! | 429                                      | rate-limited, `Retry-After` (seconds or HTTP-date), else 30 s |
//! | 401                                      | unauthorized                                            |
//! | 408, 5xx, timeout, connection failure    | retryable                                               |
//! | any other status (other 4xx, 3xx)        | permanent `http_<status>`                               |
//!
//! The message carries the provider's own error text when the body has one (never request
//! headers, so no secret can leak into it).

use patchbay_sdk::http::{Request, Response};
use patchbay_sdk::{ConnectorError, Fields};

/// The wait used for a 429 without a usable `Retry-After` header (Airtable asks for 30 s).
pub const DEFAULT_RETRY_AFTER_MS: u64 = 30_000;

/// Longest wait taken from a `Retry-After` header: a day. Anything longer is a misconfigured
/// server, and the host would rather retry than park the job for months.
const MAX_RETRY_AFTER_MS: u64 = 86_400_000;

/// Sends `request`; transport failures map as in the SDK (timeout and connection failures are
/// retryable, policy refusals permanent).
pub fn send(request: &Request) -> Result<Response, ConnectorError> {
    request.send()
}

/// Sends `request` and maps a non-2xx answer with [`status_error`].
pub fn send_ok(request: &Request) -> Result<Response, ConnectorError> {
    let response = request.send()?;
    if response.is_success() { Ok(response) } else { Err(status_error(&response)) }
}

/// The error for a non-2xx `response` (see the module table).
pub fn status_error(response: &Response) -> ConnectorError {
    status_error_at(response.status, &response.headers, &response.body, patchbay_sdk::time::now_ms())
}

/// [`status_error`] with an explicit clock (for HTTP-date `Retry-After` values).
pub fn status_error_at(status: u16, headers: &Fields, body: &[u8], now_ms: u64) -> ConnectorError {
    let mapped = ConnectorError::from_status(status, headers, body);
    if status == 429 {
        let wait = retry_after_ms(headers, now_ms).unwrap_or(DEFAULT_RETRY_AFTER_MS);
        return ConnectorError::rate_limited(wait, mapped.message());
    }
    mapped
}

/// `Retry-After` in milliseconds: delay-seconds (fractions allowed) or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime form), relative to `now_ms`. A date in the past is 0.
pub fn retry_after_ms(headers: &Fields, now_ms: u64) -> Option<u64> {
    let value = patchbay_sdk::http::header(headers, "retry-after")?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        // Saturating float-to-int conversion.
        return Some(((seconds * 1000.0).ceil() as u64).min(MAX_RETRY_AFTER_MS));
    }
    let at = http_date_ms(value)?;
    Some(at.saturating_sub(now_ms).min(MAX_RETRY_AFTER_MS))
}

/// Parses the three HTTP-date forms of RFC 9110 §5.6.7 into milliseconds since the epoch:
/// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`, `Sun Nov  6 08:49:37 1994`.
pub fn http_date_ms(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for token in value.split([' ', ',', '-']).filter(|t| !t.is_empty()) {
        if token.contains(':') {
            time = Some(token);
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = token.parse().ok()?;
            if day.is_none() && token.len() <= 2 {
                day = Some(n);
            } else if token.len() == 2 {
                // RFC 850 two-digit years: RFC 9110 says to pick the most recent past century.
                year = Some(if n < 70 { 2000 + n } else { 1900 + n });
            } else {
                year = Some(n);
            }
        } else if let Some(m) = MONTHS.iter().position(|m| token.len() >= 3 && token[..3].eq_ignore_ascii_case(m)) {
            // Weekday names never start with a month's three letters, "GMT" neither.
            month = Some(m + 1);
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    let text = format!("{year:04}-{month:02}-{day:02}T{time}Z");
    patchbay_sdk::time::rfc3339_to_ms(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let expected = 784_111_777_000;
        assert_eq!(http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"), Some(expected));
        assert_eq!(http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT"), Some(expected));
        assert_eq!(http_date_ms("Sun Nov  6 08:49:37 1994"), Some(expected));
        assert_eq!(http_date_ms("yesterday"), None);
        assert_eq!(http_date_ms("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn retry_after_seconds_date_and_default() {
        let now = 784_111_777_000;
        assert_eq!(retry_after_ms(&headers(&[("Retry-After", "7")]), now), Some(7_000));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "0.5")]), now), Some(500));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]), now), Some(30_000));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]), now), Some(0));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after_ms(&headers(&[]), now), None);

        match status_error_at(429, &headers(&[]), b"{\"error\":\"slow\"}", now) {
            ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, DEFAULT_RETRY_AFTER_MS),
            other => panic!("unexpected {other:?}"),
        }
        match status_error_at(429, &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]), b"", now) {
            ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, 10_000),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_kinds() {
        let none = headers(&[]);
        assert!(matches!(status_error_at(401, &none, b"", 0), ConnectorError::Unauthorized(_)));
        for s in [408, 500, 502, 503] {
            assert!(matches!(status_error_at(s, &none, b"", 0), ConnectorError::Retryable(_)), "{s}");
        }
        for s in [400, 403, 404, 422, 301] {
            assert!(matches!(status_error_at(s, &none, b"", 0), ConnectorError::Permanent(_)), "{s}");
        }
    }
}
