//! The installation's secrets, preferably used without reading them.
//!
//! In order of preference: put a [`placeholder`] in a request header (see
//! [`Request::bearer`](crate::http::Request::bearer)), let the host sign or verify with
//! [`hmac_sha256`] / [`verify_hmac_sha256`] (or, for secrets that are hex, base64 or Standard
//! Webhooks `whsec_…` keys rather than text, [`hmac_sha256_with`] / [`verify_hmac_sha256_with`]),
//! and only then read the value with [`get`].

use crate::bindings::connector::patchbay::connector::credentials;
use crate::types::ConnectorError;

/// How the host turns a secret's text into HMAC key bytes: `Utf8`, `Hex`, `Base64`, or
/// `StandardWebhooks` (base64 after the `whsec_` prefix).
pub use crate::bindings::connector::patchbay::connector::credentials::KeyEncoding;

/// Whether secret `name` is set.
pub fn has(name: &str) -> bool {
    credentials::has_secret(name)
}

/// The plain value of secret `name`; a permanent `missing_credential` error when it is not set.
/// Only a credential the manifest declares `guest_readable = true` can be read (installers see
/// that in the catalog); for any other the host answers `invalid` — use [`placeholder`] or the
/// host's HMAC, which never hand the value to the connector.
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

/// HMAC-SHA256 of `message` keyed with secret `name` decoded as `encoding`, computed by the host.
/// A secret that does not decode is a permanent `invalid_credential_request` error.
///
/// ```ignore
/// use patchbay_sdk::secrets::{self, KeyEncoding};
///
/// // Standard Webhooks: sign `{id}.{timestamp}.{body}` with the `whsec_…` secret.
/// let tag = secrets::hmac_sha256_with("signing_secret", KeyEncoding::StandardWebhooks, &content)?;
/// ```
pub fn hmac_sha256_with(name: &str, encoding: KeyEncoding, message: &[u8]) -> Result<Vec<u8>, ConnectorError> {
    Ok(credentials::hmac_sha256_with(name, encoding, message)?)
}

/// Constant-time check, by the host, that `signature` is the HMAC-SHA256 of `message` under
/// secret `name` decoded as `encoding`.
pub fn verify_hmac_sha256_with(
    name: &str,
    encoding: KeyEncoding,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, ConnectorError> {
    Ok(credentials::verify_hmac_sha256_with(name, encoding, message, signature)?)
}
