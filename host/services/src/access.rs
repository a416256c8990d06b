//! [`Access`]: who is calling and what they may do — tenants, their API keys, and bearer-token
//! authentication. The caller's tenant comes from its key and nothing else.
//!
//! Tokens look like `pbk_<id>_<secret>` (tenant keys) or `pbo_<id>_<secret>` (operator keys); the
//! id finds the stored row and the whole token is checked against its sha256 hash in constant
//! time. `PATCHBAY_ADMIN_TOKEN`, when set, is an operator token of any shape.

use std::sync::Arc;

use patchbay_core::error::{Error, Field};
use patchbay_crypto::TokenKind;
use patchbay_store::{ApiKey, NewApiKey, Page, PageRequest, Store, Tenant};

use crate::config_cache::{ConfigWatch, TenantCache};

/// Setting key under which the generated operator key's id is remembered.
const OPERATOR_KEY_SETTING: &str = "operator_key_id";

/// What every invalid token is told (no hint whether the id exists).
const INVALID: &str = "invalid or revoked API token";

patchbay_core::string_enum! {
    /// What a tenant key may do.
    pub enum KeyScope {
        /// Read installations, connectors and logs.
        View = "view",
        /// Create, change, delete and invoke installations; upload private connectors.
        Manage = "manage",
        /// Set, read (masked) and delete credentials.
        Credentials = "credentials",
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Manages tenants and the public connector catalog.
    Operator,
    /// A tenant API key.
    Tenant {
        /// The key's tenant.
        tenant: String,
        /// The key's id.
        key_id: String,
        /// What the key may do.
        scopes: Vec<KeyScope>,
    },
}

impl Caller {
    /// The caller's tenant, if it holds `scope`. The operator has no tenant: tenant resources are
    /// reached with a tenant key.
    pub fn tenant(&self, scope: KeyScope) -> Result<&str, Error> {
        match self {
            Caller::Tenant { tenant, scopes, .. } => {
                if scopes.contains(&scope) {
                    Ok(tenant)
                } else {
                    Err(Error::forbidden(format!("this API key lacks the `{scope}` scope")))
                }
            }
            Caller::Operator => Err(Error::forbidden(
                "installations belong to tenants: use a tenant API key (POST /v1/tenants/{tenant}/keys)",
            )),
        }
    }

    /// Succeeds for the operator only.
    pub fn operator(&self) -> Result<(), Error> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Tenant { .. } => Err(Error::forbidden("this needs the operator token")),
        }
    }
}

/// A tenant id: 2-63 characters, lower-case letters, digits and `-`, starting with a letter.
pub(crate) fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Most authenticated tokens kept in memory.
const KEYS_CACHE_MAX: usize = 10_000;

/// Tenants, API keys and authentication.
pub struct Access {
    store: Store,
    /// sha256 of `PATCHBAY_ADMIN_TOKEN`, when set.
    env_operator_hash: Option<String>,
    /// Callers of tokens that authenticated, by the token's sha256: kept until the key's tenant
    /// (for operator keys: anyone's) data changes on any host, so a revoked or deleted key stops
    /// working within [`crate::config_cache::STALENESS_BOUND`] everywhere (at once on the host
    /// that revoked it). Refused tokens are not kept.
    keys: TenantCache<String, Caller>,
}

impl Access {
    pub(crate) fn new(store: Store, env_operator_hash: Option<String>, watch: Arc<ConfigWatch>) -> Self {
        Self { store, env_operator_hash, keys: TenantCache::new(watch, KEYS_CACHE_MAX) }
    }

    /// Who a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Error> {
        if let Some(hash) = &self.env_operator_hash
            && patchbay_crypto::verify_token(token, hash)
        {
            return Ok(Caller::Operator);
        }
        let Some((_, id)) = patchbay_crypto::split_token(token) else {
            return Err(Error::unauthorized(INVALID));
        };
        // A hit is a token whose whole hash matched a stored key before.
        let hash = patchbay_crypto::hash_token(token);
        if let Some(caller) = self.keys.get(&hash) {
            return Ok(caller);
        }
        let read_point = self.keys.read_point();
        let key = self.store.api_key(id).await?.ok_or_else(|| Error::unauthorized(INVALID))?;
        if key.revoked || !patchbay_crypto::verify_token(token, &key.secret_hash) {
            return Err(Error::unauthorized(INVALID));
        }
        let caller = match key.tenant {
            None if key.scopes.iter().any(|s| s == "operator") => Caller::Operator,
            None => return Err(Error::unauthorized(INVALID)),
            Some(tenant) => {
                let scopes = key.scopes.iter().filter_map(|s| KeyScope::parse(s)).collect();
                Caller::Tenant { tenant, key_id: key.id, scopes }
            }
        };
        let owner = match &caller {
            Caller::Tenant { tenant, .. } => tenant.as_str(),
            Caller::Operator => "",
        };
        self.keys.put(hash, owner, read_point, caller.clone());
        Ok(caller)
    }

    /// Creates the operator key on first start; returns its token (the only time it exists in
    /// clear). Two hosts starting together on one database: only the first one's key is kept.
    pub(crate) async fn ensure_operator_key(&self) -> Result<Option<String>, Error> {
        if self.store.setting(OPERATOR_KEY_SETTING).await?.is_some() {
            return Ok(None);
        }
        let (id, token) =
            patchbay_crypto::new_token(TokenKind::Operator).map_err(|e| Error::internal(e.to_string()))?;
        if !self.store.insert_setting_if_absent(OPERATOR_KEY_SETTING, &id).await? {
            return Ok(None);
        }
        self.store
            .create_api_key(&NewApiKey {
                id,
                tenant: None,
                name: "operator (generated on first start)".into(),
                secret_hash: patchbay_crypto::hash_token(&token),
                scopes: vec!["operator".into()],
            })
            .await?;
        Ok(Some(token))
    }

    /// Creates a tenant (`name` defaults to the id).
    pub async fn create_tenant(&self, id: &str, name: Option<String>) -> Result<Tenant, Error> {
        if !valid_slug(id) {
            return Err(Error::invalid(
                Field::Id,
                format!("tenant id {id:?} must be 2-63 characters of a-z, 0-9 and '-', starting with a letter"),
            ));
        }
        let name = name.unwrap_or_else(|| id.to_string());
        Ok(self.store.create_tenant(id, &name).await?)
    }

    /// A page of the tenants, by id.
    pub async fn tenants(&self, page: &PageRequest<String>) -> Result<Page<Tenant>, Error> {
        Ok(self.store.list_tenants(page).await?)
    }

    async fn existing_tenant(&self, tenant: &str) -> Result<(), Error> {
        match self.store.tenant(tenant).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("no tenant {tenant:?}"))),
        }
    }

    /// Gives a tenant a new API key with `scopes` (default: all); returns the key and its token,
    /// which exists in clear only in this answer.
    pub async fn create_key(
        &self,
        tenant: &str,
        name: Option<String>,
        scopes: Option<Vec<String>>,
    ) -> Result<(ApiKey, String), Error> {
        self.existing_tenant(tenant).await?;
        let scopes: Vec<String> = match scopes {
            None => KeyScope::ALL.iter().map(|s| s.as_str().to_string()).collect(),
            Some(list) => {
                if list.is_empty() {
                    return Err(Error::invalid(Field::Scopes, "scopes must not be empty"));
                }
                if let Some(s) = list.iter().find(|s| KeyScope::parse(s).is_none()) {
                    return Err(Error::invalid(
                        Field::Scopes,
                        format!("unknown scope {s:?}; scopes are view, manage, credentials"),
                    ));
                }
                list
            }
        };
        let (id, token) = patchbay_crypto::new_token(TokenKind::Tenant).map_err(|e| Error::internal(e.to_string()))?;
        let key = self
            .store
            .create_api_key(&NewApiKey {
                id,
                tenant: Some(tenant.to_string()),
                name: name.unwrap_or_else(|| "api key".into()),
                secret_hash: patchbay_crypto::hash_token(&token),
                scopes,
            })
            .await?;
        Ok((key, token))
    }

    /// A page of a tenant's keys (never their tokens), oldest first.
    pub async fn keys(&self, tenant: &str, page: &PageRequest<(i64, String)>) -> Result<Page<ApiKey>, Error> {
        self.existing_tenant(tenant).await?;
        Ok(self.store.list_api_keys(Some(tenant), page).await?)
    }

    /// Revokes a tenant's key: it stops working at once.
    pub async fn revoke_key(&self, tenant: &str, key: &str) -> Result<(), Error> {
        if self.store.revoke_api_key(Some(tenant), key).await? {
            self.keys.changed(tenant);
            Ok(())
        } else {
            Err(Error::not_found(format!("tenant {tenant:?} has no key {key:?}")))
        }
    }
}
