//! OAuth 2.0 endpoints: `/v1/installations/{id}/oauth` (status, start, refresh, disconnect) and
//! the public `/oauth/callback` the provider redirects the user's browser to.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchbay_services::oauth::{CallbackFailure, Connections};
use serde::Deserialize;

use crate::auth::{Credentials, TenantKey, View};
use crate::extract::{Json, OptionalJson, Path};
use crate::views::{AuthorizationView, DisconnectView, GrantView};
use crate::{ApiError, ApiResult};

pub(crate) async fn status(
    State(connections): State<Arc<Connections>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(connections.status(&key.tenant, &id).await?.into()))
}

pub(crate) async fn start(
    State(connections): State<Arc<Connections>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
) -> ApiResult<Json<AuthorizationView>> {
    Ok(Json(connections.start(&key.tenant, &id).await?.into()))
}

/// Body of `POST …/oauth/refresh`: the version to replace (default: the stored one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    pub version: Option<i64>,
}

pub(crate) async fn refresh(
    State(connections): State<Arc<Connections>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(connections.refresh_now(&key.tenant, &id, req.version).await?.into()))
}

pub(crate) async fn disconnect(
    State(connections): State<Arc<Connections>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
) -> ApiResult<Json<DisconnectView>> {
    let revoked = connections.disconnect(&key.tenant, &id).await?;
    Ok(Json(DisconnectView::new(id, revoked)))
}

/// The provider's redirect (no API key: the state parameter identifies the request). Answers a
/// small HTML page saying what happened; never cached.
pub(crate) async fn callback(
    State(connections): State<Arc<Connections>>,
    query: Result<axum::extract::Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let outcome = match query {
        Ok(axum::extract::Query(params)) => connections.callback(&params).await,
        Err(e) => Err(CallbackFailure {
            refused: false,
            error: patchbay_core::Error::bad_request(format!("The request is malformed: {e}")),
        }),
    };
    let (status, title, text) = match outcome {
        Ok(text) => (StatusCode::OK, "Connected", text),
        Err(f) => {
            let title = if f.refused { "Authorization refused" } else { "Authorization failed" };
            let e = ApiError::from(f.error);
            (e.status, title, e.message)
        }
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = escape(title),
        m = escape(&text)
    );
    let mut resp = (status, page).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    resp
}

/// HTML-escapes text for the callback page.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn callback_text_is_escaped() {
        assert_eq!(super::escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
