//! patchbay-api: the admin HTTP API (axum) — tenants and keys, the connector catalog,
//! installations with their credentials, calls and operation logs, webhooks, events, routes,
//! syncs, OAuth, health and retention policies, plus `/healthz`, `/metrics` and `/openapi.json`. The only crate that
//! knows HTTP: statuses, error codes and bodies are decided here ([`ApiError`]).
//!
//! Every handler takes the one service it uses (axum state, see [`router`]) and authenticates
//! with `auth::TenantKey`, `auth::Operator` or `auth::Principal` before anything else of
//! the request is looked at (the tenant comes from the key, never from the body; another
//! tenant's resource is a 404). Bodies, paths and queries are read with the extractors of
//! `extract`, which reject with [`ApiError`]; responses are the typed bodies of `views`.

#![warn(missing_docs)]

pub(crate) mod auth;
mod body;
mod connectors;
mod cursor;
mod error;
mod events;
pub(crate) mod extract;
mod health;
mod hooks;
mod installations;
mod oauth;
pub(crate) mod openapi;
mod retention;
mod routes;
mod syncs;
mod tenants;
pub(crate) mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use patchbay_services::Host;
use patchbay_services::status::Status;

pub use error::{ApiError, ApiResult, page_limit, short_param, text_param, time_param};

use crate::auth::Operator;
use crate::extract::Json;
use crate::views::Liveness;

/// The router's state: the host's services. Each handler takes the one service it uses.
#[derive(Clone)]
pub(crate) struct ApiState(pub Host);

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
    retention: patchbay_services::retention::Retention,
    status: Status,
);

/// Request bodies other than component uploads are small JSON documents.
const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Every endpoint the API serves: method, path and handler. [`router`] is built from this list
/// and the OpenAPI document's test compares the document with it, so they cannot drift apart.
pub(crate) fn endpoints() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    use axum::routing::{delete, patch, put};
    let upload = || DefaultBodyLimit::disable();
    vec![
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/metrics", get(metrics)),
        (Method::GET, "/openapi.json", get(openapi_json)),
        (Method::GET, "/v1/wit", get(connectors::wit)),
        (Method::POST, "/hooks/{hook_id}", post(hooks::receive).layer(upload())),
        (Method::GET, "/oauth/callback", get(oauth::callback)),
        (Method::POST, "/v1/tenants", post(tenants::create)),
        (Method::GET, "/v1/tenants", get(tenants::list)),
        (Method::POST, "/v1/tenants/{tenant}/keys", post(tenants::create_key)),
        (Method::GET, "/v1/tenants/{tenant}/keys", get(tenants::list_keys)),
        (Method::DELETE, "/v1/tenants/{tenant}/keys/{key}", delete(tenants::revoke_key)),
        (Method::GET, "/v1/tenants/{tenant}/retention", get(retention::get_tenant)),
        (Method::PUT, "/v1/tenants/{tenant}/retention", put(retention::put_tenant)),
        (Method::GET, "/v1/retention", get(retention::get_own)),
        (Method::PUT, "/v1/retention", put(retention::put_own)),
        (Method::POST, "/v1/connectors", post(connectors::upload).layer(upload())),
        (Method::GET, "/v1/connectors", get(connectors::list)),
        (Method::GET, "/v1/connectors/{id}", get(connectors::get)),
        (Method::GET, "/v1/connectors/{id}/versions/{version}", get(connectors::version)),
        (Method::POST, "/v1/connectors/{id}/versions/{version}/deprecate", post(connectors::deprecate)),
        (Method::POST, "/v1/installations", post(installations::create)),
        (Method::GET, "/v1/installations", get(installations::list)),
        (Method::GET, "/v1/installations/{id}", get(installations::get)),
        (Method::PATCH, "/v1/installations/{id}", patch(installations::update)),
        (Method::DELETE, "/v1/installations/{id}", delete(installations::delete)),
        (Method::PUT, "/v1/installations/{id}/credentials", put(installations::put_credentials)),
        (Method::GET, "/v1/installations/{id}/credentials", get(installations::get_credentials)),
        (Method::DELETE, "/v1/installations/{id}/credentials", delete(installations::delete_credentials)),
        (Method::POST, "/v1/installations/{id}/invoke/{operation}", post(installations::invoke)),
        (Method::GET, "/v1/installations/{id}/logs", get(installations::logs)),
        (Method::POST, "/v1/installations/{id}/webhook/rotate", post(hooks::rotate)),
        (Method::GET, "/v1/installations/{id}/oauth", get(oauth::status)),
        (Method::DELETE, "/v1/installations/{id}/oauth", delete(oauth::disconnect)),
        (Method::POST, "/v1/installations/{id}/oauth/start", post(oauth::start)),
        (Method::POST, "/v1/installations/{id}/oauth/refresh", post(oauth::refresh)),
        (Method::GET, "/v1/installations/{id}/quota", get(installations::quota)),
        (Method::GET, "/v1/installations/{id}/health", get(health::last)),
        (Method::POST, "/v1/installations/{id}/health", post(health::check)),
        (Method::GET, "/v1/health", get(health::summary)),
        (Method::GET, "/v1/events", get(events::list)),
        (Method::GET, "/v1/events/{id}", get(events::get)),
        (Method::POST, "/v1/deliveries/redrive", post(events::redrive_all)),
        (Method::POST, "/v1/deliveries/{id}/redrive", post(events::redrive_one)),
        (Method::POST, "/v1/routes", post(routes::create)),
        (Method::GET, "/v1/routes", get(routes::list)),
        (Method::GET, "/v1/routes/{id}", get(routes::get)),
        (Method::PATCH, "/v1/routes/{id}", patch(routes::update)),
        (Method::DELETE, "/v1/routes/{id}", delete(routes::delete)),
        (Method::POST, "/v1/syncs", post(syncs::start)),
        (Method::GET, "/v1/syncs", get(syncs::list)),
        (Method::GET, "/v1/syncs/{id}", get(syncs::get)),
        (Method::POST, "/v1/syncs/{id}/cancel", post(syncs::cancel)),
        (Method::POST, "/v1/syncs/{id}/resume", post(syncs::resume)),
        (Method::GET, "/v1/syncs/{id}/errors", get(syncs::errors)),
        (Method::POST, "/v1/schedules", post(syncs::create_schedule)),
        (Method::GET, "/v1/schedules", get(syncs::list_schedules)),
        (Method::GET, "/v1/schedules/{id}", get(syncs::get_schedule)),
        (Method::PATCH, "/v1/schedules/{id}", patch(syncs::update_schedule)),
        (Method::DELETE, "/v1/schedules/{id}", delete(syncs::delete_schedule)),
        (Method::GET, "/v1/installations/{id}/entities", get(syncs::entities)),
        (Method::GET, "/v1/installations/{id}/records/{entity}", get(syncs::records)),
        (Method::GET, "/v1/installations/{id}/records/{entity}/{external_id}", get(syncs::record)),
        (Method::GET, "/v1/installations/{id}/mappings/{entity}", get(syncs::get_mapping)),
        (Method::PUT, "/v1/installations/{id}/mappings/{entity}", put(syncs::put_mapping)),
        (Method::DELETE, "/v1/installations/{id}/mappings/{entity}", delete(syncs::delete_mapping)),
    ]
}

/// The host's HTTP routes: `endpoints`, a JSON 404 for anything else, and a 1 MiB body limit
/// except where an endpoint reads its body with its own cap (uploads, webhooks).
pub fn router(host: Host) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in endpoints() {
        router = router.route(path, handler);
    }
    router.fallback(not_found).layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)).with_state(ApiState(host))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_merge_into_one_router_without_overlaps() {
        let mut router = Router::<ApiState>::new();
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, handler) in endpoints() {
            assert!(seen.insert((method.to_string(), path)), "{method} {path} is listed twice");
            router = router.route(path, handler);
        }
        assert_eq!(seen.len(), 65);
    }
}
