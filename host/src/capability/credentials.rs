//! `credentials` capability: the calling installation's configuration and secrets, and host-side
//! use of secrets (HMAC, header placeholders) so values need not enter guest memory.
//!
//! The context is built per call from the installation's own values; there is no name a guest can
//! pass that reaches another installation's data.

use std::collections::BTreeMap;
use std::fmt;

use ring::hmac;

use crate::bindings::connector::patchbay::connector::credentials as wit;
use wit::CredentialError;

/// A secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value. Call sites are the few places a secret legitimately leaves the host.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(••••••••)")
    }
}

/// An installation's secrets by name.
#[derive(Clone, Default, Debug)]
pub struct Secrets(BTreeMap<String, Secret>);

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), Secret::new(value));
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(Secret::expose)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Secrets {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut s = Secrets::new();
        for (k, v) in iter {
            s.insert(k, v);
        }
        s
    }
}

/// Largest message the host HMACs for a guest in one call.
pub const MAX_HMAC_INPUT: usize = 16 * 1024 * 1024;

/// What the `credentials` host functions see: the calling installation's own values.
pub struct CredentialsView<'a> {
    pub config: &'a BTreeMap<String, String>,
    pub secrets: &'a Secrets,
}

impl CredentialsView<'_> {
    fn secret(&self, name: &str) -> Result<&Secret, CredentialError> {
        self.secrets.get(name).ok_or_else(|| CredentialError::NotFound(name.to_string()))
    }

    /// HMAC-SHA256 of `message` keyed with the named secret's UTF-8 bytes.
    pub fn hmac(&self, name: &str, message: &[u8]) -> Result<Vec<u8>, CredentialError> {
        if message.len() > MAX_HMAC_INPUT {
            return Err(CredentialError::Invalid(format!("message larger than {MAX_HMAC_INPUT} bytes")));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret(name)?.expose().as_bytes());
        Ok(hmac::sign(&key, message).as_ref().to_vec())
    }

    /// Constant-time verification of an HMAC-SHA256 tag.
    pub fn verify_hmac(&self, name: &str, message: &[u8], tag: &[u8]) -> Result<bool, CredentialError> {
        if message.len() > MAX_HMAC_INPUT {
            return Err(CredentialError::Invalid(format!("message larger than {MAX_HMAC_INPUT} bytes")));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret(name)?.expose().as_bytes());
        Ok(hmac::verify(&key, message, tag).is_ok())
    }
}

impl wit::Host for CredentialsView<'_> {
    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    fn config_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn has_secret(&mut self, name: String) -> wasmtime::Result<bool> {
        Ok(self.secrets.get(&name).is_some())
    }

    fn get_secret(&mut self, name: String) -> wasmtime::Result<Result<String, CredentialError>> {
        Ok(self.secret(&name).map(|s| s.expose().to_string()))
    }

    fn hmac_sha256(
        &mut self,
        secret_name: String,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, CredentialError>> {
        Ok(self.hmac(&secret_name, &message))
    }

    fn verify_hmac_sha256(
        &mut self,
        secret_name: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, CredentialError>> {
        Ok(self.verify_hmac(&secret_name, &message, &signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        config: BTreeMap<String, String>,
        secrets: Secrets,
    }

    impl Owned {
        fn new() -> Self {
            Self {
                config: BTreeMap::from([("region".to_string(), "eu".to_string())]),
                secrets: [("webhook_secret", "It's a Secret to Everybody")].into_iter().collect(),
            }
        }

        fn view(&self) -> CredentialsView<'_> {
            CredentialsView { config: &self.config, secrets: &self.secrets }
        }
    }

    #[test]
    fn hmac_matches_github_published_vector() {
        let tag = Owned::new().view().hmac("webhook_secret", b"Hello, World!").unwrap();
        assert_eq!(hex::encode(tag), "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    }

    #[test]
    fn verify_is_exact() {
        let o = Owned::new();
        let c = o.view();
        let tag = c.hmac("webhook_secret", b"Hello, World!").unwrap();
        assert!(c.verify_hmac("webhook_secret", b"Hello, World!", &tag).unwrap());
        assert!(!c.verify_hmac("webhook_secret", b"Hello, World?", &tag).unwrap());
        assert!(!c.verify_hmac("webhook_secret", b"Hello, World!", &tag[..31]).unwrap());
    }

    #[test]
    fn unknown_secret_is_not_found() {
        assert!(matches!(Owned::new().view().hmac("other", b"x"), Err(CredentialError::NotFound(_))));
    }

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("sk_live_123");
        assert!(!format!("{s:?}").contains("sk_live"));
    }
}
