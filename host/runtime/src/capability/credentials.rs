//! `credentials` capability: the calling installation's configuration and secrets, and host-side
//! use of secrets (HMAC, header placeholders) so values need not enter guest memory.
//!
//! The context is built per call from the installation's own values; there is no name a guest can
//! pass that reaches another installation's data.
//!
//! `hmac-sha256-with` and `verify-hmac-sha256-with` decode the secret into key bytes first (UTF-8,
//! hex, base64 or a Standard Webhooks `whsec_` secret), with the same decoding the webhook
//! verifiers use ([`patchbay_crypto::webhook::hmac_key`]), so a connector can sign Standard Webhooks
//! without ever holding the key. A secret that does not decode is `invalid`, with a message that
//! names the secret and the expected form but never shows the value.

use std::collections::BTreeMap;
use std::fmt;

use patchbay_registry::KeyEncoding as RegistryKeyEncoding;
use ring::hmac;

use patchbay_crypto::webhook::{SecretFormat, WebhookError, hmac_key};
use wasmtime::component::Linker;

use crate::bindings::connector::patchbay::connector::credentials as wit;
use wit::{CredentialError, KeyEncoding};

/// A secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
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
    /// An empty set of secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the secret `name`, replacing any previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), Secret::new(value));
    }

    /// The secret `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// Takes the secret `name` out, if set.
    pub fn remove(&mut self, name: &str) -> Option<Secret> {
        self.0.remove(name)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(Secret::expose)
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

/// The backend the `credentials` capability reads: the calling installation's configuration and
/// opened secrets. The services open them from the sealed store once per installation revision
/// (so a call costs no decryption); `patchbay run` and tests fill them by hand.
pub(crate) trait CredentialSource: Send + Sync {
    /// The configuration, by key.
    fn config(&self) -> &BTreeMap<String, String>;
    /// A secret by name.
    fn secret(&self, name: &str) -> Option<&Secret>;
    /// Whether the guest may read the secret's value with `get-secret` (its manifest says so).
    fn guest_readable(&self, name: &str) -> bool;
}

/// A source of secrets and no configuration.
impl CredentialSource for Secrets {
    fn config(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        &EMPTY
    }

    fn secret(&self, name: &str) -> Option<&Secret> {
        self.get(name)
    }

    /// Hand-filled secrets (`patchbay run`, tests) are readable: there is no manifest to ask.
    fn guest_readable(&self, _name: &str) -> bool {
        true
    }
}

/// Largest message the host HMACs for a guest in one call.
pub(crate) const MAX_HMAC_INPUT: usize = 16 * 1024 * 1024;

/// What the `credentials` host functions see: the calling installation's own values.
pub(crate) struct CredentialsView<'a> {
    pub source: &'a dyn CredentialSource,
}

crate::capability::view_data!(CredentialsData => CredentialsView);

/// Links the `credentials` import; `view` gives the host functions the calling installation's
/// [`CredentialsView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> CredentialsView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, CredentialsData>(linker, view)
}

impl CredentialsView<'_> {
    fn secret(&self, name: &str) -> Result<&Secret, CredentialError> {
        self.source.secret(name).ok_or_else(|| CredentialError::NotFound(name.to_string()))
    }

    /// HMAC-SHA256 of `message` keyed with the named secret's UTF-8 bytes.
    pub(crate) fn hmac(&self, name: &str, message: &[u8]) -> Result<Vec<u8>, CredentialError> {
        self.hmac_with(name, KeyEncoding::Utf8, message)
    }

    /// Constant-time verification of an HMAC-SHA256 tag keyed with the secret's UTF-8 bytes.
    pub(crate) fn verify_hmac(&self, name: &str, message: &[u8], tag: &[u8]) -> Result<bool, CredentialError> {
        self.verify_hmac_with(name, KeyEncoding::Utf8, message, tag)
    }

    /// HMAC-SHA256 of `message` keyed with the named secret decoded as `encoding`.
    pub(crate) fn hmac_with(
        &self,
        name: &str,
        encoding: KeyEncoding,
        message: &[u8],
    ) -> Result<Vec<u8>, CredentialError> {
        let key = self.key(name, encoding, message)?;
        Ok(hmac::sign(&key, message).as_ref().to_vec())
    }

    /// Constant-time verification of an HMAC-SHA256 tag keyed with the named secret decoded as
    /// `encoding`.
    pub(crate) fn verify_hmac_with(
        &self,
        name: &str,
        encoding: KeyEncoding,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, CredentialError> {
        let key = self.key(name, encoding, message)?;
        Ok(hmac::verify(&key, message, tag).is_ok())
    }

    /// The HMAC key for secret `name`, after checking the message size.
    fn key(&self, name: &str, encoding: KeyEncoding, message: &[u8]) -> Result<hmac::Key, CredentialError> {
        if message.len() > MAX_HMAC_INPUT {
            return Err(CredentialError::Invalid(format!("message larger than {MAX_HMAC_INPUT} bytes")));
        }
        let format = match encoding {
            KeyEncoding::Utf8 => SecretFormat::Encoded(RegistryKeyEncoding::Utf8),
            KeyEncoding::Hex => SecretFormat::Encoded(RegistryKeyEncoding::Hex),
            KeyEncoding::Base64 => SecretFormat::Encoded(RegistryKeyEncoding::Base64),
            KeyEncoding::StandardWebhooks => SecretFormat::StandardWebhooks,
        };
        hmac_key(self.secret(name)?.expose(), format).map_err(|e| match e {
            WebhookError::BadSecret { expected, .. } => CredentialError::Invalid(format!(
                "secret `{name}` is not valid {expected} (key encoding {})",
                encoding_name(encoding)
            )),
            // `NoSecret` (decodes to no bytes); the decoding has no other errors.
            _ => CredentialError::Invalid(format!(
                "secret `{name}` is empty as {} and cannot key an HMAC",
                encoding_name(encoding)
            )),
        })
    }
}

/// The WIT name of a key encoding, for messages.
fn encoding_name(encoding: KeyEncoding) -> &'static str {
    match encoding {
        KeyEncoding::Utf8 => "utf8",
        KeyEncoding::Hex => "hex",
        KeyEncoding::Base64 => "base64",
        KeyEncoding::StandardWebhooks => "standard-webhooks",
    }
}

impl wit::Host for CredentialsView<'_> {
    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.source.config().get(&key).cloned())
    }

    fn config_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.source.config().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn has_secret(&mut self, name: String) -> wasmtime::Result<bool> {
        Ok(self.source.secret(&name).is_some())
    }

    fn get_secret(&mut self, name: String) -> wasmtime::Result<Result<String, CredentialError>> {
        let secret = match self.secret(&name) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if !self.source.guest_readable(&name) {
            return Ok(Err(CredentialError::Invalid(format!(
                "secret `{name}` is not readable by the connector: its manifest does not declare it \
                 `guest_readable`; use the `{{{{secret:{name}}}}}` header placeholder or the host's HMAC"
            ))));
        }
        Ok(Ok(secret.expose().to_string()))
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

    fn hmac_sha256_with(
        &mut self,
        secret_name: String,
        encoding: KeyEncoding,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, CredentialError>> {
        Ok(self.hmac_with(&secret_name, encoding, &message))
    }

    fn verify_hmac_sha256_with(
        &mut self,
        secret_name: String,
        encoding: KeyEncoding,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, CredentialError>> {
        Ok(self.verify_hmac_with(&secret_name, encoding, &message, &signature))
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
            CredentialsView { source: self }
        }
    }

    impl CredentialSource for Owned {
        fn config(&self) -> &BTreeMap<String, String> {
            &self.config
        }

        fn secret(&self, name: &str) -> Option<&Secret> {
            self.secrets.get(name)
        }

        fn guest_readable(&self, name: &str) -> bool {
            name == "readable"
        }
    }

    #[test]
    fn only_secrets_the_manifest_declares_readable_reach_the_guest() {
        let mut o = Owned::new();
        o.secrets.insert("readable", "value-one");
        let mut c = o.view();
        assert_eq!(wit::Host::get_secret(&mut c, "readable".into()).unwrap().unwrap(), "value-one");
        let e = wit::Host::get_secret(&mut c, "webhook_secret".into()).unwrap().unwrap_err();
        assert!(matches!(&e, CredentialError::Invalid(m) if m.contains("guest_readable")), "{e:?}");
        // The host still uses it.
        assert!(c.hmac("webhook_secret", b"x").is_ok());
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
        let with = Owned::new().view().hmac_with("other", KeyEncoding::StandardWebhooks, b"x");
        assert!(matches!(with, Err(CredentialError::NotFound(name)) if name == "other"));
    }

    /// The Standard Webhooks vector from `tests/vectors/webhooks.json`
    /// (standard-webhooks/standard-webhooks, libraries/rust `test_sign`).
    const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SW_CONTENT: &[u8] =
        br#"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk.1649367553.{"email":"test@example.com","username":"test_user"}"#;
    const SW_SIGNATURE: &str = "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn with_secret(value: &str) -> Owned {
        Owned { config: BTreeMap::new(), secrets: [("key", value)].into_iter().collect() }
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn standard_webhooks_encoding_matches_the_published_vector() {
        let o = with_secret(SW_SECRET);
        let c = o.view();
        let tag = c.hmac_with("key", KeyEncoding::StandardWebhooks, SW_CONTENT).unwrap();
        assert_eq!(b64(&tag), SW_SIGNATURE);
        assert!(c.verify_hmac_with("key", KeyEncoding::StandardWebhooks, SW_CONTENT, &tag).unwrap());
        assert!(!c.verify_hmac_with("key", KeyEncoding::StandardWebhooks, b"msg_x.1.{}", &tag).unwrap());
        // The same key as plain base64 (the prefix removed) signs the same.
        let bare = with_secret(SW_SECRET.trim_start_matches("whsec_"));
        assert_eq!(bare.view().hmac_with("key", KeyEncoding::StandardWebhooks, SW_CONTENT).unwrap(), tag);
        assert_eq!(bare.view().hmac_with("key", KeyEncoding::Base64, SW_CONTENT).unwrap(), tag);
        // As UTF-8 text the secret is a different key.
        assert_ne!(c.hmac_with("key", KeyEncoding::Utf8, SW_CONTENT).unwrap(), tag);
    }

    #[test]
    fn hex_and_utf8_encodings() {
        let text = Owned::new();
        let utf8 = text.view().hmac_with("webhook_secret", KeyEncoding::Utf8, b"Hello, World!").unwrap();
        assert_eq!(utf8, text.view().hmac("webhook_secret", b"Hello, World!").unwrap());
        let hex_secret = hex::encode("It's a Secret to Everybody");
        let o = with_secret(&hex_secret.to_uppercase());
        assert_eq!(o.view().hmac_with("key", KeyEncoding::Hex, b"Hello, World!").unwrap(), utf8);
        assert!(o.view().verify_hmac_with("key", KeyEncoding::Hex, b"Hello, World!", &utf8).unwrap());
    }

    #[test]
    fn secrets_that_do_not_decode_are_invalid_without_showing_the_value() {
        let cases = [
            ("whsec_not*base64!", KeyEncoding::StandardWebhooks, "whsec_<base64>"),
            ("whsec_", KeyEncoding::StandardWebhooks, "whsec_<base64>"),
            ("zz-not-hex", KeyEncoding::Hex, "hex"),
            ("abc", KeyEncoding::Hex, "hex"),
            ("%%%not-base64", KeyEncoding::Base64, "base64"),
        ];
        for (value, encoding, expected) in cases {
            let o = with_secret(value);
            for result in [
                o.view().hmac_with("key", encoding, b"m").map(|_| ()),
                o.view().verify_hmac_with("key", encoding, b"m", &[0; 32]).map(|_| ()),
            ] {
                match result {
                    Err(CredentialError::Invalid(m)) => {
                        assert!(m.contains("`key`") && m.contains(expected), "{value}: {m}");
                        assert!(m.contains(encoding_name(encoding)), "{value}: {m}");
                        assert!(expected.contains(value) || !m.contains(value), "the value leaked: {m}");
                    }
                    other => panic!("{value} as {encoding:?}: {other:?}"),
                }
            }
        }
        // Decoding to no key bytes at all is refused too.
        let empty = with_secret("");
        let r = empty.view().hmac_with("key", KeyEncoding::Base64, b"m");
        assert!(matches!(&r, Err(CredentialError::Invalid(m)) if m.contains("empty")), "{r:?}");
    }

    #[test]
    fn oversized_messages_are_refused_before_the_secret_is_read() {
        let big = vec![0u8; MAX_HMAC_INPUT + 1];
        let r = Owned::new().view().hmac_with("missing", KeyEncoding::Utf8, &big);
        assert!(matches!(&r, Err(CredentialError::Invalid(m)) if m.contains("larger")), "{r:?}");
    }

    #[test]
    fn secret_debug_is_masked() {
        let s = Secret::new("sk_live_123");
        assert!(!format!("{s:?}").contains("sk_live"));
    }
}
