//! patchbay-crypto: cryptography for data at rest, admin access and webhooks — credential
//! sealing with master-key rotation, API tokens, and webhook signature schemes. It stands alone:
//! no database, no runtime (moving stored ciphertexts to a new key is the services' job).
//!
//! - [`Keyring`] seals credential values with AES-256-GCM under a per-tenant key derived by
//!   HKDF-SHA256 from the active master key. Every ciphertext names its master key, and its
//!   associated data binds tenant, installation and field, so a value copied to another row fails
//!   to open. See [`keyring`] for the format and the key file.
//! - [`new_token`] / [`hash_token`] / [`verify_token`]: bearer tokens for the admin API, stored
//!   only as hashes.
//! - [`webhook`]: verifying (and signing) webhook requests as Standard Webhooks, GitHub, Stripe,
//!   Slack or a generic HMAC format describe them, with secret rotation and a replay window.
//!
//! Nothing here prints key material, plaintext or token secrets: the types that hold them
//! implement `Debug` by hand.

#![warn(missing_docs)]

pub mod keyring;
mod token;
pub mod webhook;

use std::path::PathBuf;

pub use keyring::{KeyId, Keyring, Sealed};
pub use token::{TokenKind, hash_token, new_token, split_token, verify_token};

/// Why a cryptographic operation failed. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file cannot be used (missing permissions, unsafe mode, bad content, I/O).
    #[error("master key file {path}: {message}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A master key given in `PATCHBAY_MASTER_KEY` is malformed.
    #[error("PATCHBAY_MASTER_KEY: {0}")]
    BadEnvKey(String),
    /// A ciphertext names a master key this keyring does not hold.
    #[error("the credential is sealed under master key {0}, which is not in the keyring")]
    UnknownKey(String),
    /// A ciphertext is not in the sealed format.
    #[error("malformed sealed credential: {0}")]
    Malformed(String),
    /// Decryption failed: the value was altered, or it belongs to another tenant, installation or
    /// field.
    #[error("the credential does not open: it was altered or belongs to another tenant, installation or field")]
    Open,
    /// The operation cannot be done with this keyring (e.g. rotating an environment-supplied key).
    #[error("{0}")]
    Unsupported(String),
    /// The system random generator or AEAD failed.
    #[error("cryptographic failure: {0}")]
    Internal(&'static str),
}
