//! HTTP surface of the host. For now: `/healthz`; the admin API grows here, one module per resource.

use axum::Router;
use axum::routing::get;

/// The host's HTTP routes.
pub fn router() -> Router {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
