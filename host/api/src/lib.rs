//! The admin HTTP API (axum): tenants and keys, the connector catalog, installations with their
//! credentials, calls and operation logs, plus `/healthz`, `/metrics` and `/openapi.json`.
//!
//! Every handler authenticates with [`auth::Principal`] (the tenant comes from the key, never from
//! the body; another tenant's resource is a 404) and fails with [`ApiError`], which renders as
//! `{"error": {"code", "message"}}`.

pub mod auth;
mod body;
mod connectors;
mod error;
mod events;
mod health;
mod hooks;
mod installations;
mod oauth;
pub mod openapi;
mod routes;
mod syncs;
mod tenants;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};

pub use error::{ApiError, ApiResult, optional_json, page_limit, time_param};

use patchbay_services::app::App;

/// Request bodies other than component uploads are small JSON documents.
const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// The host's HTTP routes.
pub fn router(app: App) -> Router {
    let v1 = Router::new()
        .route("/tenants", post(tenants::create).get(tenants::list))
        .route("/tenants/{tenant}/keys", post(tenants::create_key).get(tenants::list_keys))
        .route("/tenants/{tenant}/keys/{key}", axum::routing::delete(tenants::revoke_key))
        .route("/connectors", post(connectors::upload).get(connectors::list).layer(DefaultBodyLimit::disable()))
        .route("/connectors/{id}", get(connectors::get))
        .route("/connectors/{id}/versions/{version}", get(connectors::version))
        .route("/connectors/{id}/versions/{version}/deprecate", post(connectors::deprecate))
        .route("/installations", post(installations::create).get(installations::list))
        .route(
            "/installations/{id}",
            get(installations::get).patch(installations::update).delete(installations::delete),
        )
        .route(
            "/installations/{id}/credentials",
            get(installations::get_credentials)
                .put(installations::put_credentials)
                .delete(installations::delete_credentials),
        )
        .route("/installations/{id}/invoke/{operation}", post(installations::invoke))
        .route("/installations/{id}/logs", get(installations::logs))
        .route("/installations/{id}/webhook/rotate", post(hooks::rotate))
        .route("/installations/{id}/oauth", get(oauth::status).delete(oauth::disconnect))
        .route("/installations/{id}/oauth/start", post(oauth::start))
        .route("/installations/{id}/oauth/refresh", post(oauth::refresh))
        .route("/installations/{id}/quota", get(installations::quota))
        .route("/installations/{id}/health", get(health::last).post(health::check))
        .route("/health", get(health::summary))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/deliveries/redrive", post(events::redrive_all))
        .route("/deliveries/{id}/redrive", post(events::redrive_one))
        .route("/routes", post(routes::create).get(routes::list))
        .route("/routes/{id}", get(routes::get).patch(routes::update).delete(routes::delete))
        .route("/syncs", post(syncs::start).get(syncs::list))
        .route("/syncs/{id}", get(syncs::get))
        .route("/syncs/{id}/cancel", post(syncs::cancel))
        .route("/syncs/{id}/resume", post(syncs::resume))
        .route("/syncs/{id}/errors", get(syncs::errors))
        .route("/schedules", post(syncs::create_schedule).get(syncs::list_schedules))
        .route("/schedules/{id}", get(syncs::get_schedule).patch(syncs::update_schedule).delete(syncs::delete_schedule))
        .route("/installations/{id}/entities", get(syncs::entities))
        .route("/installations/{id}/records/{entity}", get(syncs::records))
        .route("/installations/{id}/records/{entity}/{external_id}", get(syncs::record))
        .route(
            "/installations/{id}/mappings/{entity}",
            get(syncs::get_mapping).put(syncs::put_mapping).delete(syncs::delete_mapping),
        );
    Router::new()
        .route("/hooks/{hook_id}", post(hooks::receive).layer(DefaultBodyLimit::disable()))
        .route("/oauth/callback", get(oauth::callback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .nest("/v1", v1)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(app)
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let db = app.store.ping().await.is_ok();
    let status = if db { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        axum::Json(serde_json::json!({
            "status": if db { "ok" } else { "degraded" },
            "database": if db { "ok" } else { "unreachable" },
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

async fn metrics(State(app): State<App>, p: auth::Principal) -> ApiResult<impl IntoResponse> {
    p.operator()?;
    let outbox = match app.store.outbox_depth().await {
        Ok(d) => Some(patchbay_services::metrics::OutboxGauge { pending: d.pending, leased: d.leased, dead: d.dead }),
        Err(e) => {
            tracing::warn!("reading the outbox depth for /metrics failed: {e}");
            None
        }
    };
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render(app.runtime.cached_components(), outbox)))
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}
