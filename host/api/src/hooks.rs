//! `POST /hooks/{hook_id}`: the public webhook ingress (no API key: the hook id addresses the
//! installation and the request's signature authenticates it; see `patchbay_services::ingress`),
//! and `POST /v1/installations/{id}/webhook/rotate`, which gives an installation a new address.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use patchbay_services::ingress::{InboundWebhook, Ingress};
use patchbay_services::installations::Installations;
use serde::Serialize;

use crate::auth::{Manage, TenantKey};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiResult};

pub(crate) async fn receive(
    State(ingress): State<Arc<Ingress>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: Result<Path<String>, ApiError>,
    body: Body,
) -> Response {
    let answer = async {
        let Path(hook_id) = path?;
        let max = ingress.max_body_bytes();
        let body = crate::body::read_capped(&headers, body, max, || {
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
        ingress.ingest(request).await.map_err(ApiError::from)
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
            ingress.count_refused(&e.status.as_u16().to_string());
            e.into_response()
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Rotated {
    installation: String,
    webhook_url: String,
}

pub(crate) async fn rotate(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<Rotated>> {
    let webhook_url = installations.rotate_webhook(&key.tenant, &id).await?;
    Ok(Json(Rotated { installation: id, webhook_url }))
}
