//! `POST /hooks/{hook_id}`: the public webhook ingress (no API key: the hook id addresses the
//! installation and the request's signature authenticates it; see [`patchbay_services::app::ingress`]), and
//! `POST /v1/installations/{id}/webhook/rotate`, which gives an installation a new address.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult};
use patchbay_services::app::App;
use patchbay_services::app::ingress::InboundWebhook;

pub async fn receive(
    State(app): State<App>,
    path: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        let Path(hook_id) = path?;
        let max = app.webhook_max_bytes;
        let body = super::body::read_capped(&headers, body, max, || {
            format!("the webhook body is larger than this endpoint's cap of {max} bytes")
        })
        .await?;
        let request = InboundWebhook {
            hook_id,
            method: method.to_string(),
            path: uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body,
            received_at_ms: patchbay_core::now_ms(),
        };
        app.ingest_webhook(request).await.map_err(ApiError::from)
    }
    .await;
    match answer {
        Ok(a) => {
            let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
            let mut r = (status, a.body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if a.duplicate {
                r.headers_mut().insert("x-patchbay-duplicate", HeaderValue::from_static("true"));
            }
            r
        }
        Err(e) => {
            app.metrics.webhook_received(&format!("rejected_{}", e.status.as_u16()));
            e.into_response()
        }
    }
}

pub async fn rotate(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let row = app.get_installation(tenant, &id).await?;
    let view = app.installation_view(&row, None, None).await;
    if view.get("webhook_url").is_none_or(Value::is_null) {
        return Err(ApiError::conflict(format!(
            "installation {id} runs connector {}, which does not receive webhooks",
            row.connector_id
        ))
        .with_code("not_a_webhook_endpoint"));
    }
    let url = app.rotate_hook(tenant, &id).await?;
    Ok(Json(json!({ "installation": id, "webhook_url": url })))
}
