//! Bearer-token authentication. The caller's tenant comes from its key and nothing else.
//!
//! Tokens look like `pbk_<id>_<secret>` (tenant keys) or `pbo_<id>_<secret>` (operator keys); the
//! id finds the stored row and the whole token is checked against its sha256 hash in constant
//! time. `PATCHBAY_ADMIN_TOKEN`, when set, is an operator token of any shape.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::ApiError;
use patchbay_services::app::App;

/// What a tenant key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Read installations, connectors and logs.
    View,
    /// Create, change, delete and invoke installations; upload private connectors.
    Manage,
    /// Set, read (masked) and delete credentials.
    Credentials,
}

impl KeyScope {
    pub const ALL: [KeyScope; 3] = [KeyScope::View, KeyScope::Manage, KeyScope::Credentials];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::View => "view",
            KeyScope::Manage => "manage",
            KeyScope::Credentials => "credentials",
        }
    }

    pub fn parse(s: &str) -> Option<KeyScope> {
        KeyScope::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Manages tenants and the public connector catalog.
    Operator,
    /// A tenant API key.
    Tenant { tenant: String, key_id: String, scopes: Vec<KeyScope> },
}

impl Principal {
    /// The caller's tenant, if it holds `scope`. The operator has no tenant: tenant resources are
    /// reached with a tenant key.
    pub fn tenant(&self, scope: KeyScope) -> Result<&str, ApiError> {
        match self {
            Principal::Tenant { tenant, scopes, .. } => {
                if scopes.contains(&scope) {
                    Ok(tenant)
                } else {
                    Err(ApiError::forbidden(format!("this API key lacks the `{scope}` scope")))
                }
            }
            Principal::Operator => Err(ApiError::forbidden(
                "installations belong to tenants: use a tenant API key (POST /v1/tenants/{tenant}/keys)",
            )),
        }
    }

    pub fn operator(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant { .. } => Err(ApiError::forbidden("this needs the operator token")),
        }
    }
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        authenticate(app, token).await
    }
}

const INVALID: &str = "invalid or revoked API token";

pub async fn authenticate(app: &App, token: &str) -> Result<Principal, ApiError> {
    if let Some(hash) = &app.env_operator_hash
        && patchbay_crypto::verify_token(token, hash)
    {
        return Ok(Principal::Operator);
    }
    let Some((_, id)) = patchbay_crypto::split_token(token) else {
        return Err(ApiError::unauthorized(INVALID));
    };
    let key = app.store.api_key(id).await?.ok_or_else(|| ApiError::unauthorized(INVALID))?;
    if key.revoked || !patchbay_crypto::verify_token(token, &key.secret_hash) {
        return Err(ApiError::unauthorized(INVALID));
    }
    match key.tenant {
        None if key.scopes.iter().any(|s| s == "operator") => Ok(Principal::Operator),
        None => Err(ApiError::unauthorized(INVALID)),
        Some(tenant) => {
            let scopes = key.scopes.iter().filter_map(|s| KeyScope::parse(s)).collect();
            Ok(Principal::Tenant { tenant, key_id: key.id, scopes })
        }
    }
}
