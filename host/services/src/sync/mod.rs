//! Data sync: connectors stream batches from external systems into the records store (imports)
//! or write the store's changes to them (exports), resumably, with progress, field mappings and
//! schedules.
//!
//! - [`engine`] runs one claimed run batch by batch; each batch commits atomically with its cursor.
//! - [`worker`] claims due runs on this host and fires due schedules.
//! - [`mapping`] is the per installation + entity field mapping the host applies to records.
//! - [`cron`] parses schedules (an interval or a 5-field cron expression) and finds the next firing.
//!
//! What is stored, and how one batch becomes one transaction, is in [`patchbay_store::sync`].

pub mod cron;
pub mod engine;
pub mod mapping;
pub mod worker;

pub use engine::SyncConfig;
