//! Data sync: moving records between connectors on a schedule.
//!
//! [`mapping`] reshapes each synced record's JSON (field selection, renaming, transforms);
//! [`cron`] computes when a sync runs (a fixed interval or a cron expression).

pub mod cron;
pub mod mapping;
