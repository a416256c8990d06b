//! patchbay-api: the admin HTTP API (axum) — tenants and keys, the connector catalog,
//! installations with their credentials, calls and operation logs, webhooks, events, routes,
//! syncs, OAuth and health, plus `/healthz`, `/metrics` and `/openapi.json`. The only crate that
//! knows HTTP: statuses, error codes and bodies are decided here ([`ApiError`]).
//!
//! Every handler takes the one service it uses (axum state, see [`router`]) and authenticates
//! with [`auth::TenantKey`], [`auth::Operator`] or [`auth::Principal`] before anything else of
//! the request is looked at (the tenant comes from the key, never from the body; another
//! tenant's resource is a 404). Bodies, paths and queries are read with the extractors of
//! [`extract`], which reject with [`ApiError`]; responses are the typed bodies of [`views`].

pub mod auth;
mod body;
mod connectors;
mod error;
mod events;
pub mod extract;
mod health;
mod hooks;
mod installations;
mod oauth;
pub mod openapi;
mod routes;
mod syncs;
mod tenants;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use patchbay_services::Host;
use patchbay_services::status::Status;

pub use error::{ApiError, ApiResult, optional_json, page_limit, time_param};

use crate::auth::Operator;
use crate::extract::Json;
use crate::views::Liveness;

/// The router's state: the host's services. Each handler takes the one service it uses.
#[derive(Clone)]
pub struct ApiState(pub Host);

macro_rules! services {
    ($($field:ident: $service:ty),* $(,)?) => {
        $(
            impl FromRef<ApiState> for Arc<$service> {
                fn from_ref(state: &ApiState) -> Self {
                    state.0.$field.clone()
                }
            }
        )*
    };
}

services!(
    access: patchbay_services::access::Access,
    catalog: patchbay_services::catalog::Catalog,
    installations: patchbay_services::installations::Installations,
    connections: patchbay_services::oauth::Connections,
    ingress: patchbay_services::ingress::Ingress,
    routes: patchbay_services::routes::Routes,
    events: patchbay_services::events::Events,
    logs: patchbay_services::logs::Logs,
    health: patchbay_services::health::Health,
    syncs: patchbay_services::syncs::Syncs,
    status: Status,
);

/// Request bodies other than component uploads are small JSON documents.
const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// The host's HTTP routes.
pub fn router(host: Host) -> Router {
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
        .with_state(ApiState(host))
}

async fn healthz(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let db = status.database_ok().await;
    (
        if db { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
        Json(Liveness {
            status: if db { "ok" } else { "degraded" },
            database: if db { "ok" } else { "unreachable" },
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}

async fn metrics(State(status): State<Arc<Status>>, _: Operator) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], status.metrics_text().await)
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}
