//! The `[oauth2]` table (how the host obtains and refreshes an installation's OAuth 2.0 tokens)
//! and `[[rate_limits]]` (the provider's request budget).
//!
//! The host owns the whole token lifecycle: the authorization-code flow with PKCE (RFC 6749 §4.1,
//! RFC 7636) or the client-credentials grant (§4.4), refresh ahead of expiry and on a 401, and
//! revocation (RFC 7009). The connector sees only the access token, under the key of its one
//! credential of type `oauth2`; client id and secret are ordinary credentials the tenant sets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Credential key holding the client id when `client_id` is not set.
pub const DEFAULT_CLIENT_ID_KEY: &str = "client_id";
/// Credential key holding the client secret when `client_secret` is not set.
pub const DEFAULT_CLIENT_SECRET_KEY: &str = "client_secret";

/// Parameters of the authorization request the host sets itself; `authorize_params` may not.
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"];

/// Parameters of the token request the host sets itself; `token_params` may not.
pub const RESERVED_TOKEN_PARAMS: &[&str] =
    &["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id", "client_secret", "scope"];

/// `[oauth2]`: the provider's endpoints and how the host talks to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    /// `authorization_code` (default: a user approves in the browser) or `client_credentials`.
    #[serde(default)]
    pub grant: OAuthGrant,
    /// The authorization endpoint (authorization-code grant only). May use `{{config.KEY}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The token endpoint. May use `{{config.KEY}}`.
    pub token_url: String,
    /// The revocation endpoint (RFC 7009), used when the tenant disconnects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How scopes are joined in requests; a space (RFC 6749) unless the provider differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_separator: Option<String>,
    /// Whether the authorization request carries a PKCE S256 challenge (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<bool>,
    /// How the client authenticates at the token endpoint: `basic` (default) or `post`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Credential key holding the client id (default `client_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Credential key holding the client secret (default `client_secret`, when declared; without
    /// one the client is public and relies on PKCE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Extra authorization-request parameters (`access_type = "offline"`, `prompt = "consent"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorize_params: BTreeMap<String, String>,
    /// Extra token-request parameters (`audience`, `resource`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_params: BTreeMap<String, String>,
}

impl OAuth2Spec {
    /// Whether PKCE is used (authorization-code grant, unless turned off).
    pub fn uses_pkce(&self) -> bool {
        self.grant == OAuthGrant::AuthorizationCode && self.pkce.unwrap_or(true)
    }

    /// The separator between scopes.
    pub fn separator(&self) -> &str {
        self.scope_separator.as_deref().unwrap_or(" ")
    }

    /// The scopes as one parameter value, `None` when none are requested.
    pub fn scope(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(self.separator()))
    }

    /// The credential key of the client id.
    pub fn client_id_key(&self) -> &str {
        self.client_id.as_deref().unwrap_or(DEFAULT_CLIENT_ID_KEY)
    }

    /// The credential key of the client secret.
    pub fn client_secret_key(&self) -> &str {
        self.client_secret.as_deref().unwrap_or(DEFAULT_CLIENT_SECRET_KEY)
    }
}

/// The OAuth 2.0 grant the host uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// RFC 6749 §4.1, with PKCE (RFC 7636): a user authorizes in the browser.
    #[default]
    AuthorizationCode,
    /// RFC 6749 §4.4: the client's own credentials, no user.
    ClientCredentials,
}

impl OAuthGrant {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthGrant::AuthorizationCode => "authorization_code",
            OAuthGrant::ClientCredentials => "client_credentials",
        }
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    Post,
}

/// One token bucket of a provider's request budget: `requests` per `per_seconds`, refilled
/// continuously, bursting up to `burst` (default `requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// Most requests the bucket lets through at once.
    pub fn capacity(&self) -> u32 {
        self.burst.unwrap_or(self.requests).max(1)
    }
}

/// Longest accepted `per_seconds` of a rate limit: 31 days.
pub const MAX_RATE_WINDOW_SECS: u32 = 31 * 24 * 3600;
/// Most rate limits one manifest declares.
pub const MAX_RATE_LIMITS: usize = 4;
