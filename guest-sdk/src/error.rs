//! Constructors for [`ConnectorError`] and conversions from every capability's error type.
//!
//! The kind of a `connector-error` tells the host what to do next, so the mappings here follow
//! one rule: an error is retryable only when the same call can succeed later unchanged.

use crate::bindings::connector::patchbay::connector::credentials::CredentialError;
use crate::bindings::connector::patchbay::connector::events::EventError;
use crate::bindings::connector::patchbay::connector::http::HttpError;
use crate::bindings::connector::patchbay::connector::state::StateError;
use crate::types::{ConnectorError, Failure, Fields, RateLimit};

/// The delay used for a 429 response without a usable `Retry-After` header.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 1_000;

/// Longest provider message copied into an error, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

impl ConnectorError {
    /// A transient failure: the same call may succeed later.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retryable(failure(code, message))
    }

    /// A failure that will repeat unchanged (validation errors, unsupported operations).
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent(failure(code, message))
    }

    /// The provider rejected the credentials; the host may refresh them and retry.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(failure("unauthorized", message))
    }

    /// The provider asked us to slow down for `retry_after_ms` milliseconds.
    pub fn rate_limited(retry_after_ms: u64, message: impl Into<String>) -> Self {
        Self::RateLimited(RateLimit { retry_after_ms, message: message.into() })
    }

    /// A permanent `invalid_input` error for a request the connector cannot act on.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::permanent("invalid_input", message)
    }

    /// A permanent `unsupported` error for an operation this connector does not implement.
    pub fn unsupported(operation: &str) -> Self {
        Self::permanent("unsupported", format!("{operation} is not supported by this connector"))
    }

    /// Maps an HTTP status to an error kind.
    ///
    /// | status        | kind                                                          |
    /// |---------------|---------------------------------------------------------------|
    /// | 429           | rate-limited, `Retry-After` seconds (default 1000 ms)         |
    /// | 401           | unauthorized                                                  |
    /// | 408, 5xx      | retryable                                                     |
    /// | anything else | permanent                                                     |
    ///
    /// The code is `http_<status>`; the message is the provider's own error message when the
    /// body is JSON with a recognisable field, else the start of the body.
    pub fn from_status(status: u16, headers: &Fields, body: &[u8]) -> Self {
        let detail = provider_message(body);
        let message = if detail.is_empty() {
            format!("provider answered HTTP {status}")
        } else {
            format!("provider answered HTTP {status}: {detail}")
        };
        let code = format!("http_{status}");
        match status {
            429 => Self::rate_limited(retry_after_ms(headers).unwrap_or(DEFAULT_RETRY_AFTER_MS), message),
            401 => Self::Unauthorized(failure(code, message)),
            408 | 500..=599 => Self::retryable(code, message),
            _ => Self::permanent(code, message),
        }
    }

    /// Whether the host may retry the call unchanged (retryable or rate-limited).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_) | Self::RateLimited(_))
    }

    /// The machine-readable code (`rate_limited` for a rate-limit rejection).
    pub fn code(&self) -> &str {
        match self {
            Self::Retryable(f) | Self::Permanent(f) | Self::Unauthorized(f) => &f.code,
            Self::RateLimited(_) => "rate_limited",
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(f) | Self::Permanent(f) | Self::Unauthorized(f) => &f.message,
            Self::RateLimited(r) => &r.message,
        }
    }
}

fn failure(code: impl Into<String>, message: impl Into<String>) -> Failure {
    Failure { code: code.into(), message: message.into() }
}

/// `Retry-After` in milliseconds, from delay-seconds (fractions allowed). An HTTP-date is not
/// understood (the guest has no reliable clock) and yields `None`.
pub(crate) fn retry_after_ms(headers: &Fields) -> Option<u64> {
    let value = crate::http::header(headers, "retry-after")?;
    let seconds: f64 = value.trim().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    // Saturating float-to-int conversion; anything beyond u64 is "very long" anyway.
    Some((seconds * 1000.0).ceil() as u64)
}

/// A short, single-line description of an error body: a JSON `message`/`error` field when
/// present (Stripe, GitHub, Slack, OAuth styles), else the start of the text.
fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| json_message(&v));
    let message = from_json.unwrap_or_else(|| text.trim().to_owned());
    truncate(&message.replace(['\r', '\n'], " "), MAX_MESSAGE_CHARS)
}

fn json_message(value: &serde_json::Value) -> Option<String> {
    let error = value.get("error");
    let candidates =
        [error.and_then(|e| e.get("message")), value.get("message"), value.get("error_description"), error];
    candidates.into_iter().flatten().find_map(|v| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl From<HttpError> for ConnectorError {
    /// Timeouts and connection failures are retryable; everything else (policy refusals,
    /// malformed requests, oversized responses, the spent request budget) is permanent.
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Timeout => Self::retryable("timeout", "the request timed out"),
            HttpError::ConnectionFailed(m) => Self::retryable("connection_failed", m),
            HttpError::DestinationNotAllowed(m) => Self::permanent("destination_not_allowed", m),
            HttpError::AddressBlocked(m) => Self::permanent("address_blocked", m),
            HttpError::InvalidRequest(m) => Self::permanent("invalid_request", m),
            HttpError::ResponseTooLarge(cap) => {
                Self::permanent("response_too_large", format!("the response exceeded the host's cap of {cap} bytes"))
            }
            HttpError::TooManyRequests(budget) => {
                Self::permanent("too_many_requests", format!("the per-call budget of {budget} HTTP requests is spent"))
            }
        }
    }
}

impl From<CredentialError> for ConnectorError {
    fn from(error: CredentialError) -> Self {
        match error {
            CredentialError::NotFound(name) => {
                Self::permanent("missing_credential", format!("`{name}` is not set for this installation"))
            }
            CredentialError::Invalid(m) => Self::permanent("invalid_credential_request", m),
        }
    }
}

impl From<StateError> for ConnectorError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::TooLarge(m) => Self::permanent("state_too_large", m),
            StateError::InvalidKey(m) => Self::permanent("state_invalid_key", m),
            StateError::Unavailable(m) => Self::retryable("state_unavailable", m),
        }
    }
}

impl From<EventError> for ConnectorError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Invalid(m) => Self::permanent("invalid_event", m),
            EventError::TooMany(budget) => {
                Self::permanent("too_many_events", format!("the per-call budget of {budget} events is spent"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rate_limit_honours_retry_after_seconds() {
        let e = ConnectorError::from_status(429, &headers(&[("Retry-After", "7")]), b"");
        assert_eq!(e, ConnectorError::rate_limited(7_000, e.message()));
    }

    #[test]
    fn rate_limit_defaults_without_usable_retry_after() {
        for h in [
            headers(&[]),
            headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            headers(&[("retry-after", "-3")]),
        ] {
            match ConnectorError::from_status(429, &h, b"slow down") {
                ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, 1_000),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn status_kinds() {
        let none = headers(&[]);
        assert!(matches!(ConnectorError::from_status(401, &none, b""), ConnectorError::Unauthorized(_)));
        for s in [408, 500, 502, 503, 599] {
            assert!(matches!(ConnectorError::from_status(s, &none, b""), ConnectorError::Retryable(_)));
        }
        for s in [400, 403, 404, 409, 422, 302] {
            assert!(matches!(ConnectorError::from_status(s, &none, b""), ConnectorError::Permanent(_)));
        }
    }

    #[test]
    fn message_prefers_provider_json_fields() {
        let stripe = br#"{"error":{"message":"No such customer","type":"invalid_request_error"}}"#;
        let e = ConnectorError::from_status(404, &headers(&[]), stripe);
        assert_eq!(e.code(), "http_404");
        assert_eq!(e.message(), "provider answered HTTP 404: No such customer");

        let slack = br#"{"ok":false,"error":"channel_not_found"}"#;
        let e = ConnectorError::from_status(400, &headers(&[]), slack);
        assert!(e.message().ends_with("channel_not_found"));

        let long = "x".repeat(1000);
        let e = ConnectorError::from_status(500, &headers(&[]), long.as_bytes());
        assert!(e.message().chars().count() < 400);
    }

    #[test]
    fn http_errors_map_to_kinds() {
        assert!(ConnectorError::from(HttpError::Timeout).is_retryable());
        assert!(ConnectorError::from(HttpError::ConnectionFailed("reset".into())).is_retryable());
        assert!(!ConnectorError::from(HttpError::AddressBlocked("10.0.0.1".into())).is_retryable());
        assert!(!ConnectorError::from(HttpError::TooManyRequests(20)).is_retryable());
        assert_eq!(ConnectorError::from(HttpError::ResponseTooLarge(10)).code(), "response_too_large");
    }
}
