//! patchbay-registry: connector manifests, package inspection and publisher signatures.
//!
//! A connector package is a WebAssembly component that carries its manifest in a custom section.
//! The host calls [`inspect`] on every upload; only components accepted here (and then linked
//! against the host's imports for their category's world) are stored and run.
//!
//! # Custom sections
//!
//! | section | where | contents |
//! |---|---|---|
//! | [`MANIFEST_SECTION`] `patchbay:manifest` | anywhere | the manifest as UTF-8 TOML text; exactly one |
//! | [`SIGNATURE_SECTION`] `patchbay:signature` | top level, last | optional publisher signature (below) |
//!
//! The manifest section may sit at the top level or inside a nested core module; the guest SDK's
//! `patchbay_sdk::manifest!("connector.toml")` puts it in the component's main core module.
//!
//! # Manifest format
//!
//! The reference for authors, every field with its limits and examples, is `docs/manifest.md`.
//!
//! `connector.toml`, next to the connector crate's `Cargo.toml`. Unknown fields are errors.
//!
//! ```toml
//! id = "acme-pay"                    # ^[a-z][a-z0-9-]{1,62}$, the catalog id
//! title = "Acme Pay"                 # 1-100 characters
//! description = "Card payments and refunds through Acme Pay."   # 1-2000 characters
//! category = "payment-gateway"       # the hub = the WIT world the component implements:
//!                                    # payment-gateway, shipping-carrier, communication-channel,
//!                                    # notification-provider, storage-provider, data-sync,
//!                                    # webhook-endpoint
//! provider = "Acme Inc."             # 1-100 characters
//! version = "1.4.0"                  # semver, no build metadata
//! # Egress destinations; `{{config.KEY}}` names a declared text or url config field.
//! allowed_hosts = ["https://api.acme-pay.example", "{{config.sandbox_url}}"]
//!
//! [[api_versions]]                   # optional; if any, exactly one has default = true
//! id = "2024-06-01"                  # letters, digits, '.', '_', '-'; unique
//! label = "June 2024"
//! status = "stable"                  # stable | deprecated
//! default = true                     # may not be deprecated
//!
//! [[api_versions]]
//! id = "2023-01-01"
//! label = "January 2023"
//! status = "deprecated"
//! sunset = 2025-12-31                # a TOML date or "YYYY-MM-DD"; deprecated versions only
//!
//! [[credentials]]                    # kept encrypted by the host
//! key = "api_key"                    # ^[a-z][a-z0-9_]{0,63}$, unique within credentials
//! label = "API key"                  # 1-100 characters
//! type = "secret"                    # secret | text | url | oauth2
//! required = true                    # default false
//! help = "Dashboard → Developers → API keys."   # optional, up to 500 characters
//!
//! [[credentials]]
//! key = "webhook_secret"
//! label = "Webhook signing secret"
//! type = "secret"
//!
//! [[credentials]]                    # the tenant's OAuth client (see [oauth2] below)
//! key = "client_id"
//! label = "OAuth client id"
//! type = "text"
//!
//! [[credentials]]
//! key = "client_secret"
//! label = "OAuth client secret"
//! type = "secret"
//!
//! [[credentials]]                    # set by the host: the connector reads the access token
//! key = "oauth"                      #   here; the refresh token never reaches it
//! label = "Acme account"
//! type = "oauth2"
//!
//! [[config]]                         # stored in clear
//! key = "sandbox_url"                # same rules as credential keys, unique within config
//! label = "Sandbox URL"
//! type = "url"                       # text | url | number | boolean
//! default = "https://sandbox.acme-pay.example"   # optional; must fit the type
//!
//! [[config]]
//! key = "capture_delay_hours"
//! label = "Capture delay (hours)"
//! type = "number"
//! default = 0                        # numbers and booleans may be written bare
//!
//! [webhook]                          # optional: how incoming webhooks are authenticated
//! scheme = "hmac"                    # standard-webhooks | github | stripe | slack: fixed formats,
//!                                    #   only secret and tolerance_secs; hmac: generic HMAC-SHA256
//!                                    #   described below (hmac-sha256: its original name)
//! secret = "webhook_secret"          # a credentials key of type secret
//! header = "Acme-Signature"          # header carrying the signature
//! prefix = "v1="                     # optional text before each encoded signature
//! encoding = "hex"                   # hex | base64
//! separator = " "                    # optional: several signatures in one header (rotation)
//! key_encoding = "utf8"              # optional: utf8 (default) | base64 | hex
//! timestamp_header = "Acme-Timestamp"   # optional
//! signed_content = "{timestamp}.{body}" # default "{body}"; also {header:NAME}
//! tolerance_secs = 300               # optional replay window (default 300), both ways
//!
//! [bundle]                           # optional: packages of one bundle share credentials
//! id = "acme"                        # same rules as the manifest id
//! title = "Acme"
//!
//! [oauth2]                           # optional; needs exactly one credential of type oauth2,
//!                                    #   where the connector reads the access token
//! grant = "authorization_code"       # authorization_code (default) | client_credentials
//! authorize_url = "https://auth.acme-pay.example/authorize"   # authorization_code only
//! token_url = "https://auth.acme-pay.example/token"           # may use {{config.KEY}}
//! revoke_url = "https://auth.acme-pay.example/revoke"         # optional (RFC 7009)
//! scopes = ["payments:read", "payments:write"]
//! scope_separator = " "              # default " "
//! pkce = true                        # default true (S256)
//! client_auth = "basic"              # basic (default) | post
//! client_id = "client_id"            # credential keys; these are the defaults
//! client_secret = "client_secret"    #   (a public client declares no secret)
//! authorize_params = { prompt = "consent" }   # optional extras
//!
//! [[rate_limits]]                    # optional token buckets per (tenant, provider)
//! requests = 100
//! per_seconds = 1
//! burst = 100                        # default: requests
//! ```
//!
//! [`Manifest::parse_toml`] reports syntax errors, unknown fields, missing fields and wrong types
//! with the enclosing table, line and column (`credentials[1]: unknown field `secret`, expected
//! one of ... (line 14, column 1)`); [`Manifest::validate`] reports every rule violation at once,
//! each with its path (`credentials[1].key: duplicate key "token" (also credentials[0].key)`).
//! The JSON the host serves uses the same field names.
//!
//! # Signature format
//!
//! A signed package ends with a top-level custom section `patchbay:signature` holding the JSON
//! `{"alg":"ed25519","key_id":"<16 hex>","signature":"<base64>"}`: the ed25519 signature of the
//! 32-byte SHA-256 digest of every byte before the section. The section must be the last one
//! and appear once. A key id is the first 16 hex characters of the SHA-256 of the 32-byte public
//! key; trusted keys are listed as `key_id:base64(public key)` ([`TrustedKeys::parse`]).
//! [`sign`] appends (or replaces) the section, [`verify`] checks it, [`generate_keypair`] makes
//! a publisher key. The package digest covers the signature section too, so signing a package
//! gives it a new digest.

mod manifest;
mod pack;
mod package;
mod sections;
pub use sections::{ComponentNames, component_names};
mod signature;
pub mod wit;

pub use manifest::{
    ApiStatus, ApiVersion, Bundle, Category, Date, Field, FieldType, Issue, MAX_DESCRIPTION_CHARS, MAX_HELP_CHARS,
    MAX_TITLE_CHARS, Manifest, ManifestError, SignatureEncoding, UnknownCategory, WIT_PACKAGE, WIT_VERSION,
    WebhookScheme, WebhookSpec,
};
pub use manifest::{
    ClientAuth, DEFAULT_CLIENT_ID_KEY, DEFAULT_CLIENT_SECRET_KEY, MAX_RATE_LIMITS, MAX_RATE_WINDOW_SECS, OAuth2Spec,
    OAuthGrant, RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS, RateLimit, rate_limit_issues,
};
pub use manifest::{DEFAULT_TOLERANCE_SECS, KeyEncoding, SignedContent, TemplatePart};
pub use pack::{PackError, pack};
pub use package::{DEFAULT_MAX_BYTES, Package, PackageError, PackageLimits, digest, inspect, wasm_features};
pub use signature::{
    ALG_ED25519, GeneratedKey, KeyId, SignatureError, SignatureInfo, TrustedKeys, generate_keypair, keypair_from_pkcs8,
    sign, verify, verify_required,
};

/// Re-exported so callers can name the key pair type [`sign`] takes without depending on ring.
pub use ring::signature::Ed25519KeyPair;

/// Name of the custom section holding the manifest (TOML text, UTF-8).
pub const MANIFEST_SECTION: &str = "patchbay:manifest";

/// Name of the top-level custom section holding the publisher signature.
pub const SIGNATURE_SECTION: &str = "patchbay:signature";

#[cfg(test)]
mod testutil;
