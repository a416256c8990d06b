//! The installation's non-secret configuration (`base_url`, `region`, ...).

use std::str::FromStr;

use crate::bindings::connector::patchbay::connector::credentials;
use crate::types::ConnectorError;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    credentials::config(key)
}

/// The value of `key`, or `default` when it is not set.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

/// The value of `key`; a permanent `missing_config` error when it is not set or empty.
pub fn require(key: &str) -> Result<String, ConnectorError> {
    match get(key) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConnectorError::permanent("missing_config", format!("configuration value `{key}` is not set"))),
    }
}

/// The value of `key`, trimmed, checked to be an absolute `http://` or `https://` URL with a host
/// and no whitespace (a webhook or API base URL). Unset is a permanent `missing_config` error,
/// anything else a permanent `invalid_config` error.
pub fn require_http_url(key: &str) -> Result<String, ConnectorError> {
    let value = require(key)?;
    let url = value.trim();
    if is_http_url(url) {
        Ok(url.to_owned())
    } else {
        Err(ConnectorError::permanent("invalid_config", format!("`{key}` must be an absolute http(s) URL")))
    }
}

/// Whether `url` is `http://` or `https://` followed by a non-empty authority, without spaces.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !url.chars().any(char::is_whitespace)
}

/// The value of `key` parsed as `T`; `Ok(None)` when it is not set, a permanent
/// `invalid_config` error when it does not parse.
pub fn parse<T: FromStr>(key: &str) -> Result<Option<T>, ConnectorError>
where
    T::Err: std::fmt::Display,
{
    get(key)
        .map(|raw| {
            raw.trim().parse().map_err(|e| {
                ConnectorError::permanent("invalid_config", format!("configuration value `{key}` is invalid: {e}"))
            })
        })
        .transpose()
}

/// All configuration values.
pub fn all() -> Vec<(String, String)> {
    credentials::config_all()
}

#[cfg(test)]
mod tests {
    use super::is_http_url;

    #[test]
    fn http_url_check() {
        assert!(is_http_url("https://hooks.slack.com/services/T0/B0/XYZ"));
        assert!(is_http_url("http://127.0.0.1:8080/hook"));
        assert!(is_http_url("HTTPS://example.com?x=1"));
        assert!(!is_http_url("hooks.slack.com/services/x"));
        assert!(!is_http_url("https:///path"));
        assert!(!is_http_url("ftp://example.com"));
        assert!(!is_http_url("https://exa mple.com"));
    }
}
