//! Webhook signature schemes: verifying an incoming request (and signing an outgoing one) with
//! HMAC-SHA256, as Standard Webhooks, GitHub, Stripe, Slack or a generic format describe it.
//!
//! A [`Verifier`] holds a [`Scheme`], one or more keys (several while a secret is rotated) and a
//! replay window. [`Verifier::verify`] takes the raw body exactly as received (it is never
//! parsed or re-serialized), the request headers (looked up case-insensitively; a header sent
//! several times contributes all its values) and the current time as a parameter, so tests set
//! the clock instead of disabling the window:
//!
//! ```
//! use patchbay_crypto::webhook::{Scheme, Verifier, sign_stripe};
//!
//! let verifier = Verifier::new(Scheme::Stripe, &["whsec_old", "whsec_new"])?;
//! let body = br#"{"id":"evt_1"}"#;
//! let header = sign_stripe("whsec_new", 1_700_000_000, body);
//! let headers = [("stripe-signature", header.as_str())];
//! assert!(verifier.verify(&headers[..], body, 1_700_000_100).is_ok());
//! assert!(verifier.verify(&headers[..], body, 1_700_000_301).is_err()); // outside ±300 s
//! # Ok::<(), patchbay_crypto::webhook::WebhookError>(())
//! ```
//!
//! Rules shared by every scheme:
//! - **Fail closed**: a verifier cannot be built without a non-empty secret
//!   ([`WebhookError::NoSecret`]).
//! - Tags are compared in constant time (`ring::hmac::verify`); any key matching any signature
//!   in the request passes, so senders and receivers can rotate secrets independently.
//! - Signatures of versions a scheme does not know (`v2,…`, Stripe's `v0=`) are ignored; a
//!   header with no well-formed signature at all is [`WebhookError::MalformedSignature`].
//! - Timestamps are Unix seconds and must lie within `±tolerance` of the clock (default
//!   [`DEFAULT_TOLERANCE_SECS`]); the window is checked before the HMAC, which is cheaper.
//! - Error messages name headers and say what is wrong; they never contain secrets, and never
//!   echo header values, so they can go into a 401 body as they are.
//!
//! [`Verifier::from_spec`] builds a verifier from a manifest's [`WebhookSpec`] and the
//! installation's secret values; the `sign_*` functions and `GenericHmac::sign` produce the
//! header values a sender would (tests, and signed outbound webhooks). [`hmac_key`] turns one
//! secret into a key the same way, for the `credentials` capability's `hmac-sha256-with`.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use patchbay_registry::{
    DEFAULT_TOLERANCE_SECS, KeyEncoding, SignatureEncoding, SignedContent, TemplatePart, WebhookScheme, WebhookSpec,
};
use ring::hmac;

/// Prefix of Standard Webhooks secrets; the rest is the base64 key.
pub(crate) const STANDARD_WEBHOOKS_SECRET_PREFIX: &str = "whsec_";
/// Standard Webhooks header names.
pub(crate) const WEBHOOK_ID: &str = "webhook-id";
pub(crate) const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// GitHub's signature header.
pub(crate) const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// Stripe's signature header.
pub(crate) const STRIPE_SIGNATURE: &str = "Stripe-Signature";
/// Slack's headers.
pub(crate) const SLACK_TIMESTAMP: &str = "X-Slack-Request-Timestamp";
pub(crate) const SLACK_SIGNATURE: &str = "X-Slack-Signature";

/// Longest accepted timestamp, in digits (Unix seconds need 10 until the year 2286).
const MAX_TIMESTAMP_DIGITS: usize = 15;

/// Standard alphabet, padding optional: senders differ on padding, never on the alphabet.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook request was not verified, or a verifier not built. Every message is safe to
/// return to the sender: it names headers, never secrets or header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No secret (or only empty ones) was given: the request is rejected rather than accepted
    /// unverified.
    #[error("no secret configured")]
    NoSecret,
    /// A configured secret cannot be decoded into a key (1-based position in the list).
    #[error("configured secret #{index} is not valid {expected}")]
    BadSecret {
        /// 1-based position of the secret in the configured list.
        index: usize,
        /// The form the secret should have: `whsec_<base64>`, `base64` or `hex`.
        expected: &'static str,
    },
    /// The verifier configuration is inconsistent (e.g. `{timestamp}` without a timestamp
    /// header, or a scheme this host does not implement).
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// The signature header holds no well-formed signature.
    #[error("malformed signature header {header}: {reason}")]
    MalformedSignature {
        /// The signature header's name.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another header the scheme reads (timestamp, id, a templated header) is unusable.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed timestamp is further from the clock than the tolerance allows.
    /// `skew_secs` is clock minus timestamp: positive for old requests, negative for future ones.
    #[error("timestamp outside the ±{tolerance_secs} s window ({})", describe_skew(.skew_secs))]
    OutsideWindow {
        /// The verifier's tolerance, in seconds.
        tolerance_secs: u64,
        /// Clock minus timestamp, in seconds.
        skew_secs: i64,
    },
    /// Signatures were present and well-formed, but none was made with a configured secret over
    /// this request.
    #[error("no signature matched")]
    NoMatch,
}

fn describe_skew(skew: &i64) -> String {
    let skew = *skew;
    if skew >= 0 { format!("signed {skew} s ago") } else { format!("signed {} s in the future", skew.unsigned_abs()) }
}

impl WebhookError {
    /// Whether the fault lies in the host's configuration (secrets, scheme) rather than in the
    /// request. The request is rejected either way; these also deserve an operator's attention.
    #[cfg(test)]
    pub(crate) fn is_configuration(&self) -> bool {
        matches!(self, WebhookError::NoSecret | WebhookError::BadSecret { .. } | WebhookError::Config(_))
    }
}

/// Request headers, looked up by name without regard to ASCII case.
pub trait Headers {
    /// Every value of header `name`, in the order received.
    fn values(&self, name: &str) -> Vec<&[u8]>;
}

impl Headers for http::HeaderMap {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        // `HeaderMap` stores names lowercased and lowercases `&str` lookups.
        self.get_all(name).iter().map(http::HeaderValue::as_bytes).collect()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> Headers for [(N, V)] {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.iter().filter(|(n, _)| n.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref()).collect()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> Headers for Vec<(N, V)> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.as_slice().values(name)
    }
}

/// A signature scheme and its fixed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// [Standard Webhooks](https://www.standardwebhooks.com/): HMAC over
    /// `{webhook-id}.{webhook-timestamp}.{body}`, key = base64 of the secret after `whsec_`,
    /// `webhook-signature` holds space-separated `v1,<base64>` entries.
    StandardWebhooks,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body, secret as UTF-8, no timestamp.
    Github,
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>…]` over `{t}.{body}`.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`.
    Slack,
    /// A format described by configuration.
    Hmac(GenericHmac),
}

/// The generic HMAC-SHA256 scheme: where the signature is, how it is written and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericHmac {
    /// Header carrying the signature(s).
    pub header: String,
    /// Text before each encoded signature (`sha256=`); empty for none. Signatures without it are
    /// ignored.
    pub prefix: String,
    /// How each signature is encoded after its prefix (hex or base64).
    pub encoding: SignatureEncoding,
    /// What is signed; see [`SignedContent`].
    pub signed_content: SignedContent,
    /// How a secret turns into the key.
    pub key_encoding: KeyEncoding,
    /// Header carrying the timestamp (Unix seconds); when set, the window applies.
    pub timestamp_header: Option<String>,
    /// Separator between several signatures in one header value; one per value when `None`.
    pub separator: Option<String>,
}

impl GenericHmac {
    /// A scheme signing the body alone into `header`, no prefix, UTF-8 key, no timestamp.
    #[cfg(test)]
    pub(crate) fn new(header: impl Into<String>, encoding: SignatureEncoding) -> GenericHmac {
        GenericHmac {
            header: header.into(),
            prefix: String::new(),
            encoding,
            signed_content: SignedContent::body_only(),
            key_encoding: KeyEncoding::Utf8,
            timestamp_header: None,
            separator: None,
        }
    }

    fn check(&self) -> Result<(), WebhookError> {
        if self.header.trim().is_empty() {
            return Err(WebhookError::Config("the signature header is not named".into()));
        }
        if self.separator.as_deref() == Some("") {
            return Err(WebhookError::Config("the signature separator is empty".into()));
        }
        if self.signed_content.uses_timestamp() && self.timestamp_header.is_none() {
            return Err(WebhookError::Config(
                "the signed content uses {timestamp} but no timestamp header is named".into(),
            ));
        }
        Ok(())
    }

    /// The header value a sender puts in [`GenericHmac::header`]: prefix and encoded HMAC of
    /// the signed content, reading `{timestamp}` and `{header:NAME}` from `headers` (so set
    /// those first).
    #[cfg(test)]
    pub(crate) fn sign<H: Headers + ?Sized>(
        &self,
        secret: &str,
        headers: &H,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        self.check()?;
        let key = secret_key(secret, SecretFormat::Encoded(self.key_encoding), 1)?;
        let timestamp = match &self.timestamp_header {
            Some(name) => Some(single(headers, name)?),
            None => None,
        };
        let content = self.render(headers, timestamp, body)?;
        let tag = hmac::sign(&key, &content);
        let encoded = match self.encoding {
            SignatureEncoding::Hex => hex::encode(tag.as_ref()),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
        };
        Ok(format!("{}{encoded}", self.prefix))
    }

    /// The signed bytes for this request.
    fn render<H: Headers + ?Sized>(
        &self,
        headers: &H,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, WebhookError> {
        let mut out = Vec::with_capacity(body.len() + 64);
        for part in self.signed_content.parts() {
            match part {
                TemplatePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
                TemplatePart::Body => out.extend_from_slice(body),
                TemplatePart::Timestamp => match timestamp {
                    Some(ts) => out.extend_from_slice(ts.as_bytes()),
                    None => {
                        return Err(WebhookError::Config(
                            "the signed content uses {timestamp} but no timestamp header is named".into(),
                        ));
                    }
                },
                TemplatePart::Header(name) => out.extend_from_slice(single(headers, name)?.as_bytes()),
            }
        }
        Ok(out)
    }

    /// The decodable signatures in the header values.
    fn candidates(&self, values: &[&str]) -> Result<Vec<Vec<u8>>, WebhookError> {
        let pieces: Vec<&str> = match &self.separator {
            Some(sep) => values.iter().flat_map(|v| v.split(sep.as_str())).collect(),
            None => values.to_vec(),
        };
        let found: Vec<Vec<u8>> = pieces
            .into_iter()
            .filter_map(|p| p.trim().strip_prefix(self.prefix.as_str()))
            .filter_map(|s| decode_tag(s, self.encoding))
            .collect();
        if found.is_empty() {
            return Err(malformed_signature(
                &self.header,
                match self.encoding {
                    SignatureEncoding::Hex => "no hex signature with the expected prefix",
                    SignatureEncoding::Base64 => "no base64 signature with the expected prefix",
                },
            ));
        }
        Ok(found)
    }
}

/// What a verified request established, beyond its authenticity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed message id (Standard Webhooks `webhook-id`), usable for deduplication.
    pub webhook_id: Option<String>,
    /// The signed timestamp, for schemes that have one.
    pub timestamp: Option<i64>,
}

/// Verifies requests of one scheme against one or more secrets.
#[derive(Clone)]
pub struct Verifier {
    scheme: Scheme,
    keys: Vec<hmac::Key>,
    tolerance_secs: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("keys", &self.keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `scheme` accepting signatures by any of `secrets` (as configured: the
    /// `whsec_…` string for Standard Webhooks, text or base64/hex per the generic scheme's key
    /// encoding). Empty secrets are skipped; none left is [`WebhookError::NoSecret`].
    /// The replay window is [`DEFAULT_TOLERANCE_SECS`]; see `Verifier::with_tolerance`.
    pub fn new<S: AsRef<str>>(scheme: Scheme, secrets: &[S]) -> Result<Verifier, WebhookError> {
        let format = match &scheme {
            Scheme::Hmac(g) => {
                g.check()?;
                SecretFormat::Encoded(g.key_encoding)
            }
            Scheme::StandardWebhooks => SecretFormat::StandardWebhooks,
            Scheme::Github | Scheme::Stripe | Scheme::Slack => SecretFormat::Encoded(KeyEncoding::Utf8),
        };
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            let secret = secret.as_ref();
            if secret.trim().is_empty() {
                continue;
            }
            keys.push(secret_key(secret, format, i + 1)?);
        }
        if keys.is_empty() {
            return Err(WebhookError::NoSecret);
        }
        Ok(Verifier { scheme, keys, tolerance_secs: DEFAULT_TOLERANCE_SECS })
    }

    /// The verifier a manifest's webhook spec describes, with the installation's secret values
    /// (the current one, and during a rotation the previous ones) and the spec's tolerance.
    pub fn from_spec<S: AsRef<str>>(spec: &WebhookSpec, secrets: &[S]) -> Result<Verifier, WebhookError> {
        let scheme = match spec.scheme {
            WebhookScheme::StandardWebhooks => Scheme::StandardWebhooks,
            WebhookScheme::Github => Scheme::Github,
            WebhookScheme::Stripe => Scheme::Stripe,
            WebhookScheme::Slack => Scheme::Slack,
            WebhookScheme::Hmac | WebhookScheme::HmacSha256 => {
                let header =
                    spec.header.clone().ok_or_else(|| WebhookError::Config("webhook.header is required".into()))?;
                let encoding =
                    spec.encoding.ok_or_else(|| WebhookError::Config("webhook.encoding is required".into()))?;
                let signed_content = match &spec.signed_content {
                    Some(t) => {
                        SignedContent::parse(t).map_err(|e| WebhookError::Config(format!("signed_content: {e}")))?
                    }
                    None => SignedContent::body_only(),
                };
                Scheme::Hmac(GenericHmac {
                    header,
                    prefix: spec.prefix.clone().unwrap_or_default(),
                    encoding,
                    signed_content,
                    key_encoding: spec.key_encoding.unwrap_or_default(),
                    timestamp_header: spec.timestamp_header.clone(),
                    separator: spec.separator.clone(),
                })
            }
            other => return Err(WebhookError::Config(format!("scheme {other} is not supported by this host"))),
        };
        Ok(Verifier::new(scheme, secrets)?.with_tolerance(spec.tolerance()))
    }

    /// The same verifier with a replay window of `±secs` seconds.
    pub(crate) fn with_tolerance(mut self, secs: u64) -> Verifier {
        self.tolerance_secs = secs;
        self
    }

    /// The replay window, in seconds either way.
    #[cfg(test)]
    pub(crate) fn tolerance_secs(&self) -> u64 {
        self.tolerance_secs
    }

    #[cfg(test)]
    pub(crate) fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Checks a request: `body` exactly as received, its `headers`, and the clock
    /// (`now_unix_secs`: the caller's clock, in Unix seconds).
    pub fn verify<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<Verified, WebhookError> {
        match &self.scheme {
            Scheme::StandardWebhooks => self.verify_standard_webhooks(headers, body, now_unix_secs),
            Scheme::Github => {
                let values = all(headers, GITHUB_SIGNATURE)?;
                let candidates = hex_candidates(&values, "sha256=");
                if candidates.is_empty() {
                    return Err(malformed_signature(GITHUB_SIGNATURE, "expected sha256=<hex>"));
                }
                self.check_tags(body, &candidates)?;
                Ok(Verified { webhook_id: None, timestamp: None })
            }
            Scheme::Stripe => self.verify_stripe(headers, body, now_unix_secs),
            Scheme::Slack => {
                let ts_text = single(headers, SLACK_TIMESTAMP)?;
                let values = all(headers, SLACK_SIGNATURE)?;
                let ts = parse_timestamp(SLACK_TIMESTAMP, ts_text)?;
                let candidates = hex_candidates(&values, "v0=");
                if candidates.is_empty() {
                    return Err(malformed_signature(SLACK_SIGNATURE, "expected v0=<hex>"));
                }
                self.check_window(ts, now_unix_secs)?;
                self.check_tags(&concat(&[b"v0:", ts_text.as_bytes(), b":", body]), &candidates)?;
                Ok(Verified { webhook_id: None, timestamp: Some(ts) })
            }
            Scheme::Hmac(g) => {
                let values = all(headers, &g.header)?;
                let timestamp = match &g.timestamp_header {
                    Some(name) => {
                        let text = single(headers, name)?;
                        Some((text, parse_timestamp(name, text)?))
                    }
                    None => None,
                };
                let candidates = g.candidates(&values)?;
                let content = g.render(headers, timestamp.map(|(text, _)| text), body)?;
                if let Some((_, ts)) = timestamp {
                    self.check_window(ts, now_unix_secs)?;
                }
                self.check_tags(&content, &candidates)?;
                Ok(Verified { webhook_id: None, timestamp: timestamp.map(|(_, ts)| ts) })
            }
        }
    }

    fn verify_standard_webhooks<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, WebhookError> {
        let id = single(headers, WEBHOOK_ID)?;
        let ts_text = single(headers, WEBHOOK_TIMESTAMP)?;
        let values = all(headers, WEBHOOK_SIGNATURE)?;
        let ts = parse_timestamp(WEBHOOK_TIMESTAMP, ts_text)?;
        let entries: Vec<(&str, &str)> =
            values.iter().flat_map(|v| v.split_ascii_whitespace()).filter_map(|e| e.split_once(',')).collect();
        if entries.is_empty() {
            return Err(malformed_signature(WEBHOOK_SIGNATURE, "expected space-separated v1,<base64> entries"));
        }
        let candidates: Vec<Vec<u8>> = entries
            .into_iter()
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, s)| decode_tag(s, SignatureEncoding::Base64))
            .collect();
        self.check_window(ts, now)?;
        self.check_tags(&concat(&[id.as_bytes(), b".", ts_text.as_bytes(), b".", body]), &candidates)?;
        Ok(Verified { webhook_id: Some(id.to_string()), timestamp: Some(ts) })
    }

    fn verify_stripe<H: Headers + ?Sized>(&self, headers: &H, body: &[u8], now: i64) -> Result<Verified, WebhookError> {
        let values = all(headers, STRIPE_SIGNATURE)?;
        let mut ts_text: Option<&str> = None;
        let mut candidates = Vec::new();
        for (key, value) in values.iter().flat_map(|v| v.split(',')).filter_map(|item| item.trim().split_once('=')) {
            match key {
                "t" if ts_text.is_some_and(|t| t != value) => {
                    return Err(malformed_signature(STRIPE_SIGNATURE, "several different t= timestamps"));
                }
                "t" => ts_text = Some(value),
                "v1" => candidates.extend(decode_tag(value, SignatureEncoding::Hex)),
                _ => {} // other schemes (v0 in test mode) are ignored
            }
        }
        let ts_text = ts_text.ok_or_else(|| malformed_signature(STRIPE_SIGNATURE, "no t= timestamp"))?;
        let ts = parse_timestamp(STRIPE_SIGNATURE, ts_text)
            .map_err(|_| malformed_signature(STRIPE_SIGNATURE, "t= is not a Unix timestamp"))?;
        self.check_window(ts, now)?;
        self.check_tags(&concat(&[ts_text.as_bytes(), b".", body]), &candidates)?;
        Ok(Verified { webhook_id: None, timestamp: Some(ts) })
    }

    fn check_window(&self, ts: i64, now: i64) -> Result<(), WebhookError> {
        let skew = i128::from(now) - i128::from(ts);
        if skew.unsigned_abs() > u128::from(self.tolerance_secs) {
            let skew_secs = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
            return Err(WebhookError::OutsideWindow { tolerance_secs: self.tolerance_secs, skew_secs });
        }
        Ok(())
    }

    /// Whether any key signed `content` into any candidate; each comparison is constant-time.
    fn check_tags(&self, content: &[u8], candidates: &[Vec<u8>]) -> Result<(), WebhookError> {
        let matched = self.keys.iter().any(|key| candidates.iter().any(|tag| hmac::verify(key, content, tag).is_ok()));
        if matched { Ok(()) } else { Err(WebhookError::NoMatch) }
    }
}

/// The `webhook-signature` value for a Standard Webhooks message: `v1,<base64>`.
pub fn sign_standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
    let key = secret_key(secret, SecretFormat::StandardWebhooks, 1)?;
    let tag = hmac::sign(&key, &concat(&[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body]));
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag.as_ref())))
}

/// A new Standard Webhooks secret: `whsec_` and 24 random bytes in base64.
pub fn new_standard_webhooks_secret() -> Result<String, super::CryptoError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| super::CryptoError::Internal("the system random generator failed"))?;
    Ok(format!("{STANDARD_WEBHOOKS_SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// The `X-Hub-Signature-256` value GitHub sends: `sha256=<hex>`.
pub fn sign_github(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(hmac::sign(&key, body)))
}

/// The `Stripe-Signature` value Stripe sends: `t=<timestamp>,v1=<hex>`.
pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &concat(&[timestamp.to_string().as_bytes(), b".", body]));
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// The `X-Slack-Signature` value Slack sends with `X-Slack-Request-Timestamp: <timestamp>`:
/// `v0=<hex>`.
pub fn sign_slack(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &concat(&[b"v0:", timestamp.to_string().as_bytes(), b":", body]));
    format!("v0={}", hex::encode(tag))
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn malformed_signature(header: &str, reason: &'static str) -> WebhookError {
    WebhookError::MalformedSignature { header: header.to_string(), reason }
}

fn malformed_header(header: &str, reason: &'static str) -> WebhookError {
    WebhookError::MalformedHeader { header: header.to_string(), reason }
}

/// Every value of a signature header, as text.
fn all<'h, H: Headers + ?Sized>(headers: &'h H, name: &str) -> Result<Vec<&'h str>, WebhookError> {
    let values = headers.values(name);
    if values.is_empty() {
        return Err(WebhookError::MissingHeader(name.to_string()));
    }
    values
        .into_iter()
        .map(|v| std::str::from_utf8(v).map(str::trim).map_err(|_| malformed_signature(name, "not valid UTF-8")))
        .collect()
}

/// The one value of a header; repeated with different values is ambiguous, so malformed.
fn single<'h, H: Headers + ?Sized>(headers: &'h H, name: &str) -> Result<&'h str, WebhookError> {
    let values = headers.values(name);
    let first = *values.first().ok_or_else(|| WebhookError::MissingHeader(name.to_string()))?;
    if values.iter().any(|v| *v != first) {
        return Err(malformed_header(name, "sent several times with different values"));
    }
    std::str::from_utf8(first).map(str::trim).map_err(|_| malformed_header(name, "not valid UTF-8"))
}

/// Unix seconds written as plain decimal digits.
fn parse_timestamp(header: &str, text: &str) -> Result<i64, WebhookError> {
    let digits_only =
        !text.is_empty() && text.len() <= MAX_TIMESTAMP_DIGITS && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<i64>() {
        Ok(ts) if digits_only => Ok(ts),
        _ => Err(malformed_header(header, "not a Unix timestamp in seconds")),
    }
}

/// The hex signatures after `prefix` in the values; others are ignored.
fn hex_candidates(values: &[&str], prefix: &str) -> Vec<Vec<u8>> {
    values.iter().filter_map(|v| v.strip_prefix(prefix)).filter_map(|h| decode_tag(h, SignatureEncoding::Hex)).collect()
}

/// A signature's bytes; `None` when it does not decode or is empty.
fn decode_tag(text: &str, encoding: SignatureEncoding) -> Option<Vec<u8>> {
    let bytes = match encoding {
        SignatureEncoding::Hex => hex::decode(text).ok()?,
        SignatureEncoding::Base64 => BASE64.decode(text).ok()?,
    };
    (!bytes.is_empty()).then_some(bytes)
}

/// How a configured secret's text turns into HMAC key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// As a manifest's `key_encoding` says: UTF-8 text, base64 or hex.
    Encoded(KeyEncoding),
    /// Standard Webhooks: base64 after the (optional) `whsec_` prefix.
    StandardWebhooks,
}

/// The HMAC-SHA256 key `secret` stands for in `format`, for code that signs or verifies with a
/// secret outside a [`Verifier`] (the `credentials` capability's `hmac-sha256-with`). A secret
/// that does not decode is [`WebhookError::BadSecret`] (`index` 1); one that decodes to no bytes
/// is [`WebhookError::NoSecret`] (or `BadSecret` for the Standard Webhooks form).
pub fn hmac_key(secret: &str, format: SecretFormat) -> Result<hmac::Key, WebhookError> {
    secret_key(secret, format, 1)
}

/// [`hmac_key`], naming the secret by its 1-based `index` in errors.
fn secret_key(secret: &str, format: SecretFormat, index: usize) -> Result<hmac::Key, WebhookError> {
    let bytes = match format {
        SecretFormat::StandardWebhooks => {
            let encoded = secret.trim().strip_prefix(STANDARD_WEBHOOKS_SECRET_PREFIX).unwrap_or(secret.trim());
            match BASE64.decode(encoded) {
                Ok(bytes) if !bytes.is_empty() => Ok(bytes),
                _ => Err("whsec_<base64>"),
            }
        }
        SecretFormat::Encoded(KeyEncoding::Utf8) => Ok(secret.as_bytes().to_vec()),
        SecretFormat::Encoded(KeyEncoding::Base64) => BASE64.decode(secret.trim()).map_err(|_| "base64"),
        SecretFormat::Encoded(KeyEncoding::Hex) => hex::decode(secret.trim()).map_err(|_| "hex"),
    };
    match bytes {
        Ok(bytes) if !bytes.is_empty() => Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes)),
        Ok(_) => Err(WebhookError::NoSecret),
        Err(expected) => Err(WebhookError::BadSecret { index, expected }),
    }
}

#[cfg(test)]
mod tests;
