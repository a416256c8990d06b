//! The admin API's one error type: every failure becomes `{"error": {"code", "message"}}` with a
//! status that says whose fault it was.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use patchbay_core::error::{
    CallFailure, Conflict, ErrorKind, Field, Missing, Package, Provider, Unknown, Unsupported, Webhook,
};
use patchbay_core::outcome::ConnectorErrorKind;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`, `invalid_manifest`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Extra members of the `error` object (e.g. a connector's error kind and payload).
    pub details: Option<serde_json::Map<String, Value>>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None, retry_after: None }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 with a specific code (`invalid_manifest`, `invalid_config`, ...).
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, "request failed: {}", self.message);
        }
        let mut error = serde_json::Map::new();
        error.insert("code".into(), Value::String(self.code.into()));
        error.insert("message".into(), Value::String(self.message));
        if let Some(d) = self.details {
            error.extend(d);
        }
        let mut resp = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The one place a domain error becomes HTTP: its kind decides the status and the stable code,
/// its context the extra members of the `error` object.
impl From<patchbay_core::Error> for ApiError {
    fn from(e: patchbay_core::Error) -> Self {
        use StatusCode as S;
        let mut retry_after = None;
        let mut details: serde_json::Map<String, Value> = serde_json::Map::new();
        let (status, code) = match e.kind() {
            ErrorKind::BadRequest => (S::BAD_REQUEST, "bad_request"),
            ErrorKind::Invalid(field) => (S::UNPROCESSABLE_ENTITY, invalid_code(*field)),
            ErrorKind::Unknown(what) => (
                S::UNPROCESSABLE_ENTITY,
                match what {
                    Unknown::Connector => "unknown_connector",
                    Unknown::Version => "unknown_version",
                    Unknown::Entity => "unknown_entity",
                },
            ),
            ErrorKind::Unsupported(what) => (
                S::UNPROCESSABLE_ENTITY,
                match what {
                    Unsupported::NotASyncConnector => "not_a_sync_connector",
                    Unsupported::SyncMode => "unsupported_sync",
                },
            ),
            ErrorKind::Package(p) => (
                S::UNPROCESSABLE_ENTITY,
                match p {
                    Package::MalformedWasm => "malformed_wasm",
                    Package::NotAComponent => "not_a_component",
                    Package::MissingManifest => "missing_manifest",
                    Package::InvalidManifest => "invalid_manifest",
                    Package::BadSignature => "bad_signature",
                    Package::SignatureRequired => "signature_required",
                    Package::WorldMismatch => "world_mismatch",
                    Package::CompileTimeout => "compile_timeout",
                },
            ),
            ErrorKind::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            ErrorKind::Forbidden => (S::FORBIDDEN, "forbidden"),
            ErrorKind::NotFound(what) => (
                S::NOT_FOUND,
                match what {
                    Missing::Resource => "not_found",
                    Missing::Operation => "unknown_operation",
                    Missing::Hook => "unknown_hook",
                    Missing::WebhookEndpoint => "not_a_webhook_endpoint",
                    Missing::OAuthGrant => "oauth_not_connected",
                },
            ),
            ErrorKind::Conflict(with) => (
                S::CONFLICT,
                match with {
                    Conflict::State => "conflict",
                    Conflict::InstallationDisabled => "installation_disabled",
                    Conflict::NotDead => "not_dead",
                    Conflict::NotOAuth => "not_oauth",
                    Conflict::OAuthNotConfigured => "oauth_not_configured",
                    Conflict::OAuthNotConnected => "oauth_not_connected",
                    Conflict::OAuthNoAuthorization => "oauth_no_authorization",
                    Conflict::NotAWebhookEndpoint => "not_a_webhook_endpoint",
                    Conflict::VersionCompiling => "version_compiling",
                    Conflict::VersionFailed => "version_failed",
                },
            ),
            ErrorKind::TooLarge => (S::PAYLOAD_TOO_LARGE, "too_large"),
            ErrorKind::QuotaExceeded { retry_after: wait } => {
                if let Some(wait) = wait {
                    retry_after = Some(seconds_up(*wait).max(1));
                    details.insert("retry_after_ms".into(), Value::from(millis(*wait)));
                }
                (S::TOO_MANY_REQUESTS, "quota_exceeded")
            }
            ErrorKind::ReauthRequired => (S::CONFLICT, "reauth_required"),
            ErrorKind::Webhook(w) => match w {
                Webhook::Unverified => (S::UNAUTHORIZED, "webhook_unverified"),
                Webhook::Rejected => (S::BAD_REQUEST, "webhook_rejected"),
                Webhook::RateLimited { retry_after: wait } => {
                    retry_after = Some(seconds_up(*wait));
                    (S::TOO_MANY_REQUESTS, "rate_limited")
                }
                Webhook::Unavailable => (S::SERVICE_UNAVAILABLE, "webhook_unavailable"),
            },
            ErrorKind::Connector { kind, retry_after: wait } => {
                if let Some(kind) = kind {
                    details.insert("kind".into(), Value::from(kind.as_str()));
                }
                let status = match kind {
                    Some(ConnectorErrorKind::Permanent) => S::UNPROCESSABLE_ENTITY,
                    Some(ConnectorErrorKind::Unauthorized) => S::FAILED_DEPENDENCY,
                    Some(ConnectorErrorKind::RateLimited) => {
                        retry_after = wait.map(|w| seconds_up(w).max(1));
                        S::TOO_MANY_REQUESTS
                    }
                    Some(ConnectorErrorKind::Retryable) | None => S::BAD_GATEWAY,
                };
                (status, "connector_error")
            }
            ErrorKind::Call(failure) => (
                match failure {
                    CallFailure::DeadlineExceeded => S::GATEWAY_TIMEOUT,
                    CallFailure::HostUnavailable => S::SERVICE_UNAVAILABLE,
                    CallFailure::Failed => S::BAD_GATEWAY,
                },
                "call_failed",
            ),
            ErrorKind::Provider(p) => match p {
                Provider::OAuthUnavailable => (S::BAD_GATEWAY, "oauth_unavailable"),
                Provider::OAuthBusy => (S::SERVICE_UNAVAILABLE, "oauth_unavailable"),
                Provider::OAuthExchangeFailed => (S::BAD_GATEWAY, "oauth_exchange_failed"),
                Provider::OAuthBlocked => (S::UNPROCESSABLE_ENTITY, "oauth_destination_blocked"),
            },
            ErrorKind::Unavailable => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            ErrorKind::Internal => (S::INTERNAL_SERVER_ERROR, "internal"),
            // A kind added to the core without a mapping here yet.
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        for (k, v) in e.context() {
            details.insert((*k).to_string(), v.clone());
        }
        ApiError {
            status,
            code,
            message: e.message().to_string(),
            details: (!details.is_empty()).then_some(details),
            retry_after,
        }
    }
}

/// The code of an [`ErrorKind::Invalid`] error: `invalid_<field>`.
fn invalid_code(field: Field) -> &'static str {
    match field {
        Field::Body => "invalid_body",
        Field::Input => "invalid_input",
        Field::Name => "invalid_name",
        Field::Id => "invalid_id",
        Field::Config => "invalid_config",
        Field::Credentials => "invalid_credentials",
        Field::CredentialsFrom => "invalid_credentials_from",
        Field::Limits => "invalid_limits",
        Field::ApiVersion => "invalid_api_version",
        Field::Route => "invalid_route",
        Field::Schedule => "invalid_schedule",
        Field::Mapping => "invalid_mapping",
        Field::Sync => "invalid_sync",
        Field::Scopes => "invalid_scopes",
        Field::Sunset => "invalid_sunset",
        Field::Retention => "invalid_retention",
        Field::Value => "invalid",
    }
}

/// Whole seconds for a `Retry-After` header, rounded up.
fn seconds_up(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// JSON body rejections (malformed JSON, wrong content type, unknown fields) as 4xx errors.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match r {
            R::JsonDataError(e) => ApiError::invalid("invalid_body", body_message(&e.body_text())),
            R::JsonSyntaxError(e) => ApiError::bad_request(body_message(&e.body_text())),
            R::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `Content-Type: application/json`",
            ),
            R::BytesRejection(e) => ApiError::new(e.status(), "bad_body", e.body_text()),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

/// serde's messages, minus axum's generic prefix.
fn body_message(text: &str) -> String {
    let t = text
        .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .trim_start_matches("Failed to parse the request body as JSON: ");
    format!("invalid JSON body: {t}")
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", r.body_text()))
    }
}

/// A `?since=`-style query parameter: unix ms, an age like `15m`, or RFC 3339.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    patchbay_core::timefmt::parse_time_param(v, patchbay_core::now_ms()).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!("{name}={v:?} is not an RFC 3339 time, unix milliseconds or an age like 15m"))
    })
}

/// A free-text query parameter of at most `max` bytes of UTF-8, in the form the OpenAPI document
/// can state exactly (JSON Schema counts characters, not bytes): up to `max` ASCII characters,
/// `max / 2` up to U+07FF, `max / 3` in the Basic Multilingual Plane, or `max / 4` of any. Anything
/// else is the caller's mistake (400), never a query the store has to refuse.
pub fn text_param(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !fits_utf8_form(&v, max) => Err(ApiError::bad_request(format!(
            "{name} is too long: {} bytes, {} characters; at most {max} ASCII characters, {} up to U+07FF, {} in \
             the Basic Multilingual Plane or {} of any kind",
            v.len(),
            v.chars().count(),
            max / 2,
            max / 3,
            max / 4
        ))),
        v => Ok(v),
    }
}

/// Whether `v` takes one of the four forms of `utf8_at_most(max)` in the OpenAPI document.
fn fits_utf8_form(v: &str, max: usize) -> bool {
    let chars = v.chars().count();
    let widest = v.chars().map(|c| c as u32).max().unwrap_or(0);
    (widest <= 0x7F && chars <= max)
        || (widest <= 0x7FF && chars <= max / 2)
        || (widest <= 0xFFFF && chars <= max / 3)
        || chars <= max / 4
}

/// A filter of at most `max` characters (what JSON Schema's `maxLength` counts, so the OpenAPI
/// document states the bound exactly): a longer one is a 400 naming the parameter.
pub fn short_param(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::bad_request(format!("{name} is {} characters long; at most {max}", v.chars().count())))
        }
        v => Ok(v),
    }
}

/// A page size: 1..=1000, default 100.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1..=1000, got {limit}")));
    }
    Ok(limit)
}

/// `Result` for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The query-text bound is exactly the OpenAPI document's `utf8_at_most` (a Schemathesis
    /// finding: 40 characters mixing ASCII with a 4-byte one fit in 128 bytes, but in none of the
    /// document's forms).
    #[test]
    fn text_params_take_exactly_the_documented_forms() {
        let ok = |s: String| text_param("p", Some(s), 128).is_ok();
        assert!(ok("a".repeat(128)) && !ok("a".repeat(129)));
        assert!(ok("é".repeat(64)) && !ok("é".repeat(65)));
        assert!(ok("€".repeat(42)) && !ok("€".repeat(43)));
        assert!(ok("😀".repeat(32)) && !ok("😀".repeat(33)));
        let mixed = format!("😀{}", "a".repeat(39));
        assert!(mixed.len() <= 128 && !ok(mixed));
        let err = text_param("installation", Some("😀".repeat(33)), 128).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("installation is too long: 132 bytes, 33 characters"), "{err}");
        assert!(text_param("p", None, 128).unwrap().is_none());
    }
}
