//! `/v1/tenants`: the operator creates tenants and hands out their API keys.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult, optional_json};
use patchbay_core::timefmt::rfc3339;
use patchbay_crypto::{self, TokenKind};
use patchbay_services::app::App;
use patchbay_store::{ApiKey, NewApiKey, Tenant};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
    name: Option<String>,
}

fn tenant_view(t: &Tenant) -> Value {
    json!({ "id": t.id, "name": t.name, "created_at": rfc3339(t.created_at_ms) })
}

/// A tenant id: 2-63 characters, lower-case letters, digits and `-`, starting with a letter.
pub fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub async fn create(
    State(app): State<App>,
    p: Principal,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    p.operator()?;
    let Json(req) = body?;
    if !valid_slug(&req.id) {
        return Err(ApiError::invalid(
            "invalid_id",
            format!("tenant id {:?} must be 2-63 characters of a-z, 0-9 and '-', starting with a letter", req.id),
        ));
    }
    let name = req.name.unwrap_or_else(|| req.id.clone());
    let t = app.store.create_tenant(&req.id, &name).await?;
    Ok((StatusCode::CREATED, Json(tenant_view(&t))))
}

pub async fn list(State(app): State<App>, p: Principal) -> ApiResult<Json<Value>> {
    p.operator()?;
    let tenants = app.store.list_tenants().await?;
    Ok(Json(json!({ "tenants": tenants.iter().map(tenant_view).collect::<Vec<_>>() })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: Option<String>,
    /// Default: all of `view`, `manage`, `credentials`.
    scopes: Option<Vec<String>>,
}

fn key_view(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "tenant": k.tenant,
        "name": k.name,
        "scopes": k.scopes,
        "created_at": rfc3339(k.created_at_ms),
        "revoked": k.revoked,
    })
}

async fn existing_tenant(app: &App, tenant: &str) -> ApiResult<()> {
    match app.store.tenant(tenant).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("no tenant {tenant:?}"))),
    }
}

pub async fn create_key(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    p.operator()?;
    let Path(tenant) = path?;
    let req: CreateKey = optional_json(&body)?;
    existing_tenant(&app, &tenant).await?;
    let scopes: Vec<String> = match req.scopes {
        None => KeyScope::ALL.iter().map(|s| s.as_str().to_string()).collect(),
        Some(list) => {
            if list.is_empty() {
                return Err(ApiError::invalid("invalid_scopes", "scopes must not be empty"));
            }
            for s in &list {
                if KeyScope::parse(s).is_none() {
                    return Err(ApiError::invalid(
                        "invalid_scopes",
                        format!("unknown scope {s:?}; scopes are view, manage, credentials"),
                    ));
                }
            }
            list
        }
    };
    let (id, token) = patchbay_crypto::new_token(TokenKind::Tenant).map_err(|e| ApiError::internal(e.to_string()))?;
    let key = app
        .store
        .create_api_key(&NewApiKey {
            id,
            tenant: Some(tenant),
            name: req.name.unwrap_or_else(|| "api key".into()),
            secret_hash: patchbay_crypto::hash_token(&token),
            scopes,
        })
        .await?;
    let mut view = key_view(&key);
    if let Some(o) = view.as_object_mut() {
        o.insert("token".into(), Value::String(token));
    }
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list_keys(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    p.operator()?;
    let Path(tenant) = path?;
    existing_tenant(&app, &tenant).await?;
    let keys = app.store.list_api_keys(Some(&tenant)).await?;
    Ok(Json(json!({ "keys": keys.iter().map(key_view).collect::<Vec<_>>() })))
}

pub async fn revoke_key(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    p.operator()?;
    let Path((tenant, key)) = path?;
    if app.store.revoke_api_key(Some(&tenant), &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("tenant {tenant:?} has no key {key:?}")))
    }
}
