//! Helpers shared by the data-sync reference connectors (`csv-source`, `rest-source`,
//! `airtable`): the HTTP status → [`ConnectorError`](patchbay_sdk::ConnectorError) mapping with
//! `Retry-After` in seconds or as an HTTP-date ([`errors`]), dotted JSON paths and primary keys
//! read from borrowed raw JSON without re-serialising records ([`json`]), URL helpers ([`url`]),
//! watermarks for incremental reads ([`watermark`]) and the cursor encoding ([`cursor`]).
//!
//! This is a plain library crate (not a component); each connector links what it uses.

pub mod cursor;
pub mod errors;
pub mod json;
pub mod url;
pub mod watermark;
