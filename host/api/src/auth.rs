//! Bearer-token authentication: every handler that takes a [`Principal`] runs only for a caller
//! whose `Authorization: Bearer <token>` the access service recognises. The caller's tenant comes
//! from its key and nothing else (see `patchbay_services::access`).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use patchbay_services::access::{Access, Caller, KeyScope};

use crate::ApiError;

/// The authenticated caller (derefs to the services' [`Caller`]: `tenant(scope)`, `operator()`).
#[derive(Debug, Clone)]
pub(crate) struct Principal(pub Caller);

impl Deref for Principal {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
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
        let access = Arc::<Access>::from_ref(state);
        Ok(Principal(access.authenticate(token).await?))
    }
}

/// The operator, or a 401/403 before anything else of the request is looked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

impl<S> FromRequestParts<S> for Operator
where
    Arc<Access>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Principal::from_request_parts(parts, state).await?.operator()?;
        Ok(Operator)
    }
}

/// A scope a tenant key must hold for an endpoint: [`View`], [`Manage`] or [`Credentials`].
pub(crate) trait Scope: Send + Sync {
    const SCOPE: KeyScope;
}

/// Reading installations, connectors, logs, events and records.
#[derive(Debug)]
pub(crate) struct View;
/// Creating, changing, deleting and invoking.
#[derive(Debug)]
pub(crate) struct Manage;
/// Setting, reading (masked) and deleting credentials.
#[derive(Debug)]
pub(crate) struct Credentials;

impl Scope for View {
    const SCOPE: KeyScope = KeyScope::View;
}
impl Scope for Manage {
    const SCOPE: KeyScope = KeyScope::Manage;
}
impl Scope for Credentials {
    const SCOPE: KeyScope = KeyScope::Credentials;
}

/// A tenant key holding scope `S`: the caller's tenant, or a 401/403 before anything else of the
/// request is looked at.
#[derive(Debug)]
pub(crate) struct TenantKey<S> {
    pub tenant: String,
    /// Whether the key also holds the `credentials` scope (using credentials it did not set,
    /// such as another installation's through `credentials_from`, needs it).
    pub credentials: bool,
    scope: PhantomData<S>,
}

impl<S: Scope, St> FromRequestParts<St> for TenantKey<S>
where
    Arc<Access>: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let p = Principal::from_request_parts(parts, state).await?;
        let tenant = p.tenant(S::SCOPE)?.to_string();
        let credentials = p.tenant(KeyScope::Credentials).is_ok();
        Ok(TenantKey { tenant, credentials, scope: PhantomData })
    }
}
