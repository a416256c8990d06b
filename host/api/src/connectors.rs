//! `/v1/connectors`: uploading components (public catalog for the operator, private for a tenant),
//! browsing the catalog, version details with their operations, and deprecation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use patchbay_services::access::{Caller, KeyScope};
use patchbay_services::catalog::Catalog;
use patchbay_store::{ConnectorFilter, PublishOutcome, VersionState, Viewer};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::cursor::{self, List};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::views::{ConnectorView, VersionSummary, VersionView};
use crate::{ApiError, ApiResult, short_param};

/// Whose catalog the caller sees: the operator everything, a tenant the public catalog and its
/// own private connectors.
fn viewer(p: &Principal) -> ApiResult<Viewer> {
    match &p.0 {
        Caller::Operator => Ok(Viewer::Operator),
        Caller::Tenant { .. } => Ok(Viewer::Tenant(p.tenant(KeyScope::View)?.to_string())),
    }
}

/// Who owns what the caller publishes or deprecates: `None` (the public catalog) for the
/// operator, the tenant (a private connector) for a `manage` key.
fn owner(p: &Principal) -> ApiResult<Option<String>> {
    match &p.0 {
        Caller::Operator => Ok(None),
        Caller::Tenant { .. } => Ok(Some(p.tenant(KeyScope::Manage)?.to_string())),
    }
}

pub(crate) async fn upload(
    State(catalog): State<Arc<Catalog>>,
    p: Principal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    let owner = owner(&p)?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "upload the component as the request body with `Content-Type: application/wasm`",
        ));
    }
    let max = catalog.max_component_bytes();
    let bytes = crate::body::read_capped(&headers, body, max, || {
        format!("the component is larger than this host's cap of {} MiB", max / (1024 * 1024))
    })
    .await?;
    let published = catalog.publish(owner.as_deref(), bytes).await?;
    let status = match (published.outcome, published.version.state) {
        // Stored; its compile goes on in the background (poll the version for its state).
        (_, VersionState::Compiling) => StatusCode::ACCEPTED,
        (PublishOutcome::Created, _) => StatusCode::CREATED,
        (PublishOutcome::Unchanged, _) => StatusCode::OK,
    };
    Ok((status, Json(VersionView::from(&catalog.details(published.version).await?))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    category: Option<String>,
    /// At most 200 characters.
    search: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ConnectorList {
    connectors: Vec<ConnectorView<String>>,
    next_cursor: Option<String>,
}

/// `GET /v1/connectors`: a page of the catalog the caller sees, by id (then owner: the public
/// connector before a tenant's private one of the same id, for the operator).
pub(crate) async fn list(
    State(catalog): State<Arc<Catalog>>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ConnectorList>> {
    let viewer = viewer(&p)?;
    let filter = ConnectorFilter { category: q.category, search: short_param("search", q.search, 200)? };
    let page = cursor::request(List::Connectors, q.cursor.as_deref(), q.limit)?;
    let list = catalog.list(viewer, &filter, &page).await?;
    let next_cursor = cursor::next(List::Connectors, &list, |c| (c.id.clone(), c.owner.clone().unwrap_or_default()));
    Ok(Json(ConnectorList { connectors: list.items.iter().map(ConnectorView::from).collect(), next_cursor }))
}

pub(crate) async fn get(
    State(catalog): State<Arc<Catalog>>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectorView<VersionSummary>>> {
    let viewer = viewer(&p)?;
    Ok(Json(ConnectorView::from(&catalog.connector(viewer, &id).await?)))
}

pub(crate) async fn version(
    State(catalog): State<Arc<Catalog>>,
    p: Principal,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<VersionView>> {
    let viewer = viewer(&p)?;
    Ok(Json(VersionView::from(&catalog.version(viewer, &id, &version).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Deprecate {
    /// `YYYY-MM-DD` after which the version may be removed.
    sunset: Option<String>,
    message: Option<String>,
}

pub(crate) async fn deprecate(
    State(catalog): State<Arc<Catalog>>,
    p: Principal,
    Path((id, version)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<Deprecate>,
) -> ApiResult<Json<VersionSummary>> {
    let owner = owner(&p)?;
    let v = catalog.deprecate(owner.as_deref(), &id, &version, req.sunset, req.message).await?;
    Ok(Json(VersionSummary::from(&v)))
}

/// The WIT package the host provides, file by file.
#[derive(Serialize)]
pub(crate) struct WitPackage {
    package: &'static str,
    version: &'static str,
    files: Vec<WitFileView>,
}

#[derive(Serialize)]
struct WitFileView {
    name: &'static str,
    text: &'static str,
}

/// `GET /v1/wit`: the WIT package every connector is built against (public: it holds no data).
pub(crate) async fn wit() -> axum::Json<WitPackage> {
    axum::Json(WitPackage {
        package: patchbay_registry::WIT_PACKAGE,
        version: patchbay_registry::WIT_VERSION,
        files: patchbay_registry::wit::FILES.iter().map(|f| WitFileView { name: f.name, text: f.text }).collect(),
    })
}
