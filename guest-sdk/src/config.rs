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
