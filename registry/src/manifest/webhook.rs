//! The `[webhook]` table of a manifest: which signature scheme authenticates incoming webhook
//! requests, and, for the generic HMAC scheme, where the signature is and what it covers.
//!
//! The host turns a [`WebhookSpec`] plus the installation's secret values into a verifier
//! (`patchbay_crypto::webhook`). The built-in schemes fix their headers and formats, so their
//! tables only name the secret (and optionally the replay window):
//!
//! ```toml
//! [webhook]
//! scheme = "stripe"              # standard-webhooks | github | stripe | slack | hmac
//! secret = "webhook_secret"      # a credentials key of type secret
//! tolerance_secs = 300           # optional replay window, timestamped schemes only
//! ```
//!
//! The generic `hmac` scheme describes the provider's format:
//!
//! ```toml
//! [webhook]
//! scheme = "hmac"
//! secret = "webhook_secret"
//! header = "X-Acme-Signature"    # header carrying the signature(s)
//! prefix = "v1="                 # optional, before each encoded signature
//! encoding = "hex"               # hex | base64
//! separator = " "                # optional: several signatures in one header
//! key_encoding = "utf8"          # utf8 (default) | base64 | hex: how the secret turns into the key
//! timestamp_header = "X-Acme-Timestamp"
//! signed_content = "{timestamp}.{body}"   # default "{body}"; also {header:NAME}
//! ```
//!
//! `hmac-sha256` is the original name of the generic scheme and is kept for existing manifests;
//! it behaves like `hmac`, except that it does not require `{timestamp}` in `signed_content`
//! when a `timestamp_header` is given (manifests written before templates existed sign the body
//! only).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The replay window of timestamped schemes when the manifest sets no `tolerance_secs`.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// How the host authenticates an incoming webhook request before the connector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub scheme: WebhookScheme,
    /// Request header carrying the signature, e.g. `X-Hub-Signature-256`; generic scheme only
    /// (and required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Key of the `credentials` field (type `secret`) holding the shared secret.
    pub secret: String,
    /// Text before each encoded signature in the header value, e.g. `sha256=`; generic scheme
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// How the signature bytes are written; generic scheme only (and required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SignatureEncoding>,
    /// Request header carrying the signing timestamp (Unix seconds); generic scheme only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Largest accepted distance between the signing timestamp and the host clock, in seconds,
    /// both ways; [`DEFAULT_TOLERANCE_SECS`] when absent. Only for schemes with a timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_secs: Option<u64>,
    /// What the generic scheme signs: a [`SignedContent`] template, `{body}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_content: Option<String>,
    /// How the generic scheme turns the secret into the HMAC key; `utf8` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<KeyEncoding>,
    /// Separator between several signatures in the header (generic scheme); one signature per
    /// header value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

impl WebhookSpec {
    /// The replay window in seconds: `tolerance_secs` or [`DEFAULT_TOLERANCE_SECS`].
    pub fn tolerance(&self) -> u64 {
        self.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS)
    }
}

/// Signature scheme of a [`WebhookSpec`]. More schemes can be added without breaking existing
/// manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WebhookScheme {
    /// The generic HMAC-SHA256 under its original name; same as [`WebhookScheme::Hmac`].
    HmacSha256,
    /// Generic HMAC-SHA256: header, prefix, encoding, signed content and key encoding come from
    /// the manifest.
    Hmac,
    /// [Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature: v1,<base64>`, `whsec_` secrets.
    StandardWebhooks,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp.
    Github,
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`.
    Stripe,
    /// Slack: `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=<hex>` over
    /// `v0:{ts}:{body}`.
    Slack,
}

impl WebhookScheme {
    /// The name used in TOML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookScheme::HmacSha256 => "hmac-sha256",
            WebhookScheme::Hmac => "hmac",
            WebhookScheme::StandardWebhooks => "standard-webhooks",
            WebhookScheme::Github => "github",
            WebhookScheme::Stripe => "stripe",
            WebhookScheme::Slack => "slack",
        }
    }

    /// Whether headers and formats come from the manifest (`hmac`, `hmac-sha256`).
    pub fn is_generic(self) -> bool {
        matches!(self, WebhookScheme::Hmac | WebhookScheme::HmacSha256)
    }

    /// Whether the built-in scheme signs a timestamp (and so has a replay window). The generic
    /// scheme has one when it names a `timestamp_header`.
    pub fn has_builtin_timestamp(self) -> bool {
        matches!(self, WebhookScheme::StandardWebhooks | WebhookScheme::Stripe | WebhookScheme::Slack)
    }
}

impl fmt::Display for WebhookScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the signature bytes are written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    /// Standard alphabet; padding optional.
    Base64,
}

/// How a secret value turns into HMAC key bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    /// The secret's UTF-8 bytes, as most providers do.
    #[default]
    Utf8,
    /// Standard base64 (padding optional).
    Base64,
    Hex,
}

/// One piece of a [`SignedContent`] template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Bytes copied as written.
    Literal(String),
    /// `{body}`: the raw request body, byte for byte.
    Body,
    /// `{timestamp}`: the value of the timestamp header, as sent.
    Timestamp,
    /// `{header:NAME}`: the value of request header `NAME` (matched case-insensitively).
    Header(String),
}

/// The bytes the generic scheme signs, e.g. `{timestamp}.{body}` or `{header:X-Id}:{body}`.
///
/// Placeholders are `{body}`, `{timestamp}` and `{header:NAME}`; every other character is
/// literal. There is no escape for a literal `{`: no provider format needs one, and rejecting
/// stray braces catches typos such as `{bdy}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedContent {
    parts: Vec<TemplatePart>,
}

impl SignedContent {
    /// The template used when a manifest gives none: the body alone.
    pub fn body_only() -> SignedContent {
        SignedContent { parts: vec![TemplatePart::Body] }
    }

    /// Parses a template; the error says what is wrong with it. A template must contain
    /// `{body}`, or the body would not be authenticated.
    pub fn parse(template: &str) -> Result<SignedContent, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(TemplatePart::Literal(rest.to_string()));
                    break;
                }
                Some(i) if rest[i..].starts_with('}') => {
                    return Err(format!("{template:?} has a \"}}\" without a matching \"{{\""));
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(TemplatePart::Literal(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after.find('}').ok_or_else(|| format!("{template:?} has an unterminated \"{{\""))?;
                    let name = &after[..end];
                    let part = match name {
                        "body" => TemplatePart::Body,
                        "timestamp" => TemplatePart::Timestamp,
                        _ => match name.strip_prefix("header:") {
                            Some(h) if is_header_name(h) => TemplatePart::Header(h.to_string()),
                            Some(h) => return Err(format!("{{header:{h}}} does not name a valid HTTP header")),
                            None => {
                                return Err(format!(
                                    "unknown placeholder {{{name}}} in {template:?}; use {{body}}, {{timestamp}} or {{header:NAME}}"
                                ));
                            }
                        },
                    };
                    parts.push(part);
                    rest = &after[end + 1..];
                }
            }
        }
        if !parts.contains(&TemplatePart::Body) {
            return Err(format!("{template:?} does not contain {{body}}, so the body would not be signed"));
        }
        Ok(SignedContent { parts })
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// Whether the template uses `{timestamp}`.
    pub fn uses_timestamp(&self) -> bool {
        self.parts.contains(&TemplatePart::Timestamp)
    }
}

/// An HTTP header name (RFC 9110 token).
pub(crate) fn is_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}
