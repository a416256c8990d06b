//! Guest SDK for writing patchbay connectors as WebAssembly components.
//!
//! A connector is a type implementing [`Lifecycle`] and the trait of one hub world, plus one
//! export macro line. Build it as a `cdylib` with `cargo build --release --target wasm32-wasip2`;
//! the `.wasm` that comes out is the component the host runs.
//!
//! | world                   | trait                                                     | export macro                       |
//! |-------------------------|-----------------------------------------------------------|------------------------------------|
//! | `connector` (base)      | [`Lifecycle`] only                                        | [`export_connector!`]              |
//! | `payment-gateway`       | [`payment_gateway::PaymentGateway`]                       | [`export_payment_gateway!`]        |
//! | `shipping-carrier`      | [`shipping_carrier::ShippingCarrier`]                     | [`export_shipping_carrier!`]       |
//! | `communication-channel` | [`communication_channel::CommunicationChannel`]           | [`export_communication_channel!`]  |
//! | `notification-provider` | [`notification_provider::NotificationProvider`]           | [`export_notification_provider!`]  |
//! | `storage-provider`      | [`storage_provider::StorageProvider`]                     | [`export_storage_provider!`]       |
//! | `data-sync`             | [`data_sync::DataSync`]                                   | [`export_data_sync!`]              |
//! | `webhook-endpoint`      | [`webhook_endpoint::WebhookEndpoint`]                     | [`export_webhook_endpoint!`]       |
//!
//! The host's capabilities are wrapped in small modules that work in every world:
//! [`http`] (request builder, JSON, status → error mapping, `{{secret:NAME}}` header
//! placeholders), [`config`], [`secrets`], [`state`], [`events`], [`time`] (clock and RFC 3339)
//! and the logging macros [`trace!`], [`debug!`], [`info!`], [`warn!`], [`error!`]. Every
//! operation fails with a [`ConnectorError`]; its constructors ([`ConnectorError::retryable`],
//! [`ConnectorError::permanent`], [`ConnectorError::from_status`], ...) and the `From` impls for
//! each capability's error make `?` do the right thing.
//!
//! The export macros expand to paths under `patchbay_sdk::`, so depend on this crate under its
//! own name.
//!
//! # Manifest
//!
//! Every connector carries its manifest — id, title, category, version, credential and config
//! fields, allowed hosts, ... — as a `connector.toml` next to its `Cargo.toml`. One line at the
//! crate root embeds it into the component as the `patchbay:manifest` custom section
//! ([`MANIFEST_SECTION`]), where the host reads and validates it on upload:
//!
//! ```ignore
//! patchbay_sdk::manifest!("connector.toml");
//! ```
//!
//! A minimal `connector.toml` (the `patchbay-registry` crate documents every field):
//!
//! ```toml
//! id = "pager"
//! title = "Pager"
//! description = "Sends pages through the Pager API."
//! category = "notification-provider"
//! provider = "Example Inc."
//! version = "0.1.0"
//! allowed_hosts = ["https://api.pager.example"]
//!
//! [[credentials]]
//! key = "api_key"
//! label = "API key"
//! type = "secret"
//! required = true
//! ```
//!
//! # Example
//!
//! A data-sync source that pages through a shop's products:
//!
//! ```no_run
//! use patchbay_sdk::data_sync::{
//!     Batch, DataSync, Entity, ReadRequest, SourceRecord, WriteRequest, WriteResult,
//! };
//! use patchbay_sdk::http::Request;
//! use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, info};
//! use serde::Deserialize;
//!
//! struct Shop;
//!
//! /// One page of `GET /v1/products`.
//! #[derive(Deserialize)]
//! struct Page {
//!     data: Vec<serde_json::Value>,
//!     next_cursor: Option<String>,
//!     total: Option<u64>,
//! }
//!
//! fn api(path: &str) -> Result<String, ConnectorError> {
//!     let base = config::require("base_url")?;
//!     Ok(format!("{}{path}", base.trim_end_matches('/')))
//! }
//!
//! impl Lifecycle for Shop {
//!     fn health_check() -> Result<HealthReport, ConnectorError> {
//!         let resp = Request::get(api("/v1/ping")?).timeout_ms(5_000).send()?;
//!         Ok(if resp.is_success() {
//!             HealthReport::healthy()
//!         } else {
//!             HealthReport::unhealthy(format!("ping answered HTTP {}", resp.status))
//!         })
//!     }
//!
//!     fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
//!         // The host puts the `api_key` secret into the header; the guest never sees it.
//!         let resp = Request::get(api("/v1/me")?).bearer("api_key").send()?;
//!         match resp.status {
//!             200 => {
//!                 let me: serde_json::Value = resp.json()?;
//!                 let shop = me["shop"].as_str().unwrap_or("unknown");
//!                 Ok(CredentialCheck::valid().with_account(shop))
//!             }
//!             401 | 403 => Ok(CredentialCheck::invalid("the API key was rejected")),
//!             _ => Err(resp.to_error()),
//!         }
//!     }
//! }
//!
//! impl DataSync for Shop {
//!     fn list_entities() -> Result<Vec<Entity>, ConnectorError> {
//!         Ok(vec![Entity {
//!             name: "products".into(),
//!             label: Some("Products".into()),
//!             primary_key: vec!["id".into()],
//!             cursor_field: None,
//!             supports_incremental: false,
//!             supports_write: false,
//!             json_schema: None,
//!         }])
//!     }
//!
//!     fn read_batch(req: ReadRequest) -> Result<Batch, ConnectorError> {
//!         if req.entity != "products" {
//!             return Err(ConnectorError::invalid_input(format!(
//!                 "unknown entity `{}`",
//!                 req.entity
//!             )));
//!         }
//!         let mut query = vec![("limit", req.limit.clamp(1, 100).to_string())];
//!         if let Some(cursor) = req.cursor {
//!             query.push(("starting_after", cursor));
//!         }
//!         // 429 → rate-limited (Retry-After), 401 → unauthorized, 5xx → retryable.
//!         let page: Page = Request::get(api("/v1/products")?)
//!             .query(&query)
//!             .bearer("api_key")
//!             .send_json()?;
//!         info!("read {} products", page.data.len(); entity = req.entity, more = page.next_cursor.is_some());
//!
//!         let mut records = Vec::with_capacity(page.data.len());
//!         for product in page.data {
//!             let Some(id) = product["id"].as_str().map(str::to_owned) else {
//!                 continue;
//!             };
//!             let deleted = product["archived"].as_bool().unwrap_or(false);
//!             records.push(SourceRecord { id, data: product.to_string(), deleted });
//!         }
//!         Ok(Batch {
//!             records,
//!             errors: vec![],
//!             done: page.next_cursor.is_none(),
//!             next_cursor: page.next_cursor,
//!             total: page.total,
//!         })
//!     }
//!
//!     fn write_batch(_req: WriteRequest) -> Result<Vec<WriteResult>, ConnectorError> {
//!         Err(ConnectorError::unsupported("write-batch"))
//!     }
//! }
//!
//! patchbay_sdk::export_data_sync!(Shop);
//! ```

// The generated bindings and the export macros name this crate by its absolute path so that
// they also resolve when expanded inside a connector crate.
extern crate self as patchbay_sdk;

pub mod bindings;
pub mod config;
mod error;
pub mod events;
pub mod http;
pub mod lifecycle;
pub mod log;
mod manifest;
pub mod secrets;
pub mod state;
pub mod time;
mod worlds;

pub use bindings::connector::patchbay::connector::types;
pub use error::DEFAULT_RETRY_AFTER_MS;
pub use events::{Event, emit};
pub use lifecycle::{CredentialCheck, HealthReport, HealthStatus, Lifecycle};
pub use manifest::SECTION as MANIFEST_SECTION;
pub use types::{Address, ConnectorError, Failure, Fields, Json, Money, RateLimit, TimestampMs};
pub use worlds::{
    communication_channel, data_sync, notification_provider, payment_gateway, shipping_carrier, storage_provider,
    webhook_endpoint,
};

/// The generated capability imports, unwrapped: their own error variants instead of
/// [`ConnectorError`]. Prefer the helper modules; these are for the rare case that needs the
/// exact host answer.
pub mod raw {
    pub use crate::bindings::connector::patchbay::connector::{credentials, events, http, log, state, types};
}

/// Re-exported so connectors can build JSON payloads without naming the dependency.
pub use serde_json;

/// Serializes `value` as a JSON document; failure is a permanent `invalid_json` error.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Json, ConnectorError> {
    serde_json::to_string(value)
        .map_err(|e| ConnectorError::permanent("invalid_json", format!("cannot encode JSON: {e}")))
}

/// Parses a JSON document (an incoming payload, `template-data`, ...); failure is a permanent
/// `invalid_json` error.
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ConnectorError> {
    serde_json::from_str(json).map_err(|e| ConnectorError::permanent("invalid_json", format!("invalid JSON: {e}")))
}

#[doc(hidden)]
pub mod __private {
    pub use crate::manifest::manifest_bytes;
    pub use wit_bindgen;
}
