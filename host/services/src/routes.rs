//! [`Routes`]: a tenant's routing rules behind `/v1/routes` — validation of what a tenant asks
//! for (down to the destination connector having the operation). What a rule means is
//! documented in `crate::routing`.

use std::sync::Arc;

use patchbay_core::error::{Error, Field};
use patchbay_core::new_id;
use patchbay_runtime::dynamic::find_operation;
use patchbay_store::{Page, PageRequest, RouteRow, Store};
use serde::Deserialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::installations::Installations;
use crate::routing::{Filter, MAX_GLOBS, Router, RuleError, check_glob, check_retry_schedule, check_template};

/// `POST /v1/routes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    /// Display name, 1-100 characters, unique within the tenant.
    pub name: String,
    /// Event type globs (1 to 32), e.g. `expense.*`; an event matches when any does.
    pub event_types: Vec<String>,
    /// Only events from this installation match; `None` for any source.
    #[serde(default)]
    pub source_installation: Option<String>,
    /// Conditions on the event's payload (dotted paths to conditions), all of which must hold.
    #[serde(default)]
    pub filter: Option<Value>,
    /// The installation whose operation receives the matching events.
    pub destination_installation: String,
    /// The operation called, e.g. `notifications.send`; the destination's connector must export it.
    pub operation: String,
    /// The operation's arguments, with `{{path}}` placeholders; `None` passes the event's payload.
    #[serde(default)]
    pub payload_template: Option<Value>,
    /// Retry delays in seconds; `None` for the default schedule.
    #[serde(default)]
    pub retry_schedule: Option<Vec<u64>>,
    /// Whether the route makes deliveries (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `PATCH /v1/routes/{id}`: absent fields stay; `null` clears the optional ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoute {
    /// A new display name.
    pub name: Option<String>,
    /// New event type globs.
    pub event_types: Option<Vec<String>>,
    /// A new source installation; `null` for any source.
    #[serde(default, deserialize_with = "nullable")]
    pub source_installation: Option<Option<String>>,
    /// A new payload filter; `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    pub filter: Option<Option<Value>>,
    /// A new destination installation.
    pub destination_installation: Option<String>,
    /// A new operation.
    pub operation: Option<String>,
    /// A new payload template; `null` passes the event's payload.
    #[serde(default, deserialize_with = "nullable")]
    pub payload_template: Option<Option<Value>>,
    /// New retry delays in seconds; `null` for the default schedule.
    #[serde(default, deserialize_with = "nullable")]
    pub retry_schedule: Option<Option<Vec<u64>>>,
    /// Whether the route makes deliveries.
    pub enabled: Option<bool>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`).
fn nullable<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn invalid(e: RuleError) -> Error {
    Error::invalid(Field::Route, e.to_string()).with("path", e.path)
}

/// A tenant's routing rules.
pub struct Routes {
    store: Store,
    router: Arc<Router>,
    installations: Arc<Installations>,
    catalog: Arc<Catalog>,
}

impl Routes {
    pub(crate) fn new(
        store: Store,
        router: Arc<Router>,
        installations: Arc<Installations>,
        catalog: Arc<Catalog>,
    ) -> Self {
        Self { store, router, installations, catalog }
    }

    /// A page of the tenant's routes, oldest first.
    pub async fn list(&self, tenant: &str, page: &PageRequest<(i64, String)>) -> Result<Page<RouteRow>, Error> {
        Ok(self.store.routes_page(tenant, page).await?)
    }

    /// One route.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<RouteRow, Error> {
        self.store.route(tenant, id).await?.ok_or_else(|| Error::not_found(format!("no route {id:?}")))
    }

    /// Checks a whole rule: its parts, and that the destination's connector has the operation.
    async fn check_route(&self, r: &RouteRow) -> Result<(), Error> {
        let name = r.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(invalid(RuleError { path: "name".into(), message: "must be 1 to 100 characters".into() }));
        }
        if r.event_types.is_empty() || r.event_types.len() > MAX_GLOBS {
            return Err(invalid(RuleError {
                path: "event_types".into(),
                message: format!("must list 1 to {} event type globs, e.g. [\"expense.*\"]", MAX_GLOBS),
            }));
        }
        for (i, g) in r.event_types.iter().enumerate() {
            check_glob(g).map_err(|m| invalid(RuleError { path: format!("event_types[{i}]"), message: m }))?;
        }
        if let Some(f) = &r.filter {
            Filter::parse("filter", f).map_err(invalid)?;
        }
        if let Some(t) = &r.payload_template {
            check_template("payload_template", t).map_err(invalid)?;
        }
        if let Some(s) = &r.retry_schedule {
            check_retry_schedule("retry_schedule", s).map_err(invalid)?;
        }
        for (field, id) in [
            ("destination_installation", Some(&r.destination_installation)),
            ("source_installation", r.source_installation.as_ref()),
        ] {
            if let Some(id) = id
                && self.store.installation(&r.tenant, id).await?.is_none()
            {
                return Err(
                    Error::invalid(Field::Route, format!("{field}: no installation {id:?}")).with("path", field)
                );
            }
        }
        let dest = self.installations.get(&r.tenant, &r.destination_installation).await?;
        let version = self.catalog.installed_version(&dest).await?;
        crate::catalog::Catalog::runnable(&version)?;
        let component = self.catalog.component(&version.digest).await?;
        find_operation(component.operations(), &r.operation)
            .map_err(|e| Error::invalid(Field::Route, format!("operation: {e}")).with("path", "operation"))?;
        Ok(())
    }

    /// Creates a route after checking it; an invalid part is named by the error's `path` context.
    pub async fn create(&self, tenant: &str, req: CreateRoute) -> Result<RouteRow, Error> {
        let row = RouteRow {
            id: new_id("rte"),
            tenant: tenant.to_string(),
            name: req.name.trim().to_string(),
            event_types: req.event_types,
            source_installation: req.source_installation,
            filter: req.filter,
            destination_installation: req.destination_installation,
            operation: req.operation,
            payload_template: req.payload_template,
            retry_schedule: req.retry_schedule,
            enabled: req.enabled,
            revision: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        self.check_route(&row).await?;
        let stored = self.store.create_route(&row).await?;
        self.router.invalidate(tenant);
        Ok(stored)
    }

    /// Applies `req` to the route and checks the result; `NotFound` for another tenant's route.
    pub async fn update(&self, tenant: &str, id: &str, req: UpdateRoute) -> Result<RouteRow, Error> {
        let mut row = self.get(tenant, id).await?;
        if let Some(v) = req.name {
            row.name = v.trim().to_string();
        }
        if let Some(v) = req.event_types {
            row.event_types = v;
        }
        if let Some(v) = req.source_installation {
            row.source_installation = v;
        }
        if let Some(v) = req.filter {
            row.filter = v;
        }
        if let Some(v) = req.destination_installation {
            row.destination_installation = v;
        }
        if let Some(v) = req.operation {
            row.operation = v;
        }
        if let Some(v) = req.payload_template {
            row.payload_template = v;
        }
        if let Some(v) = req.retry_schedule {
            row.retry_schedule = v;
        }
        if let Some(v) = req.enabled {
            row.enabled = v;
        }
        self.check_route(&row).await?;
        let stored = self.store.update_route(&row).await?;
        self.router.invalidate(tenant);
        Ok(stored)
    }

    /// Deletes the route; `NotFound` when the tenant has no such route.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), Error> {
        if !self.store.delete_route(tenant, id).await? {
            return Err(Error::not_found(format!("no route {id:?}")));
        }
        self.router.invalidate(tenant);
        Ok(())
    }
}
