//! The installation's small key-value store, for cursors, tokens and other connector data that
//! must outlive a call.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::connector::patchbay::connector::state;
use crate::types::ConnectorError;

/// The value under `key`, if any.
pub fn get(key: &str) -> Result<Option<String>, ConnectorError> {
    Ok(state::get(key)?)
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<(), ConnectorError> {
    Ok(state::set(key, value)?)
}

/// Removes `key`; whether it existed.
pub fn delete(key: &str) -> Result<bool, ConnectorError> {
    Ok(state::delete(key)?)
}

/// Keys starting with `prefix`, sorted.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, ConnectorError> {
    Ok(state::list_keys(prefix)?)
}

/// The JSON value under `key` decoded as `T`; a stored value that does not decode is a
/// permanent `invalid_state` error.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, ConnectorError> {
    get(key)?
        .map(|raw| {
            serde_json::from_str(&raw).map_err(|e| {
                ConnectorError::permanent("invalid_state", format!("state value `{key}` is not the expected JSON: {e}"))
            })
        })
        .transpose()
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), ConnectorError> {
    set(key, &crate::to_json(value)?)
}
