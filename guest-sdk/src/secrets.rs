//! The installation's secrets, preferably used without reading them.
//!
//! In order of preference: put a [`placeholder`] in a request header (see
//! [`Request::bearer`](crate::http::Request::bearer)), let the host sign or verify with
//! [`hmac_sha256`] / [`verify_hmac_sha256`], and only then read the value with [`get`].

use crate::bindings::connector::patchbay::connector::credentials;
use crate::types::ConnectorError;

/// Whether secret `name` is set.
pub fn has(name: &str) -> bool {
    credentials::has_secret(name)
}

/// The plain value of secret `name`; a permanent `missing_credential` error when it is not set.
pub fn get(name: &str) -> Result<String, ConnectorError> {
    Ok(credentials::get_secret(name)?)
}

/// The `{{secret:NAME}}` header placeholder for secret `name`.
pub fn placeholder(name: &str) -> String {
    crate::http::secret(name)
}

/// HMAC-SHA256 of `message` keyed with secret `name`, computed by the host.
pub fn hmac_sha256(name: &str, message: &[u8]) -> Result<Vec<u8>, ConnectorError> {
    Ok(credentials::hmac_sha256(name, message)?)
}

/// Constant-time check, by the host, that `signature` is the HMAC-SHA256 of `message` under
/// secret `name`.
pub fn verify_hmac_sha256(name: &str, message: &[u8], signature: &[u8]) -> Result<bool, ConnectorError> {
    Ok(credentials::verify_hmac_sha256(name, message, signature)?)
}
