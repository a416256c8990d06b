//! Data-sync source and destination for Airtable tables, on the Airtable Web API
//! (<https://airtable.com/developers/web/api>).
//!
//! # Configuration
//!
//! | key              | kind   | default                     | meaning                                              |
//! |------------------|--------|-----------------------------|------------------------------------------------------|
//! | `base_id`        | config | — (required)                | the base, `app…`                                     |
//! | `tables`         | config | — (required)                | table names or ids, comma-separated; each is an entity |
//! | `api_url`        | config | `https://api.airtable.com`  | the API origin (tests point it elsewhere)             |
//! | `modified_field` | config | —                           | a "last modified time" field: enables incremental reads |
//! | `token`          | secret | — (required)                | personal access token, `authorization: Bearer …`      |
//!
//! Allowed hosts: `https://api.airtable.com` and `{{config.api_url}}`.
//!
//! # Reading
//!
//! `GET {api_url}/v0/{base_id}/{table}?pageSize=N[&offset=…]`, N = min(100, records still
//! allowed by `limit`); a batch follows `offset` through several pages while there is room (at
//! most 40 requests). Each record's id is the Airtable record id, its `data` the record object
//! exactly as Airtable returned it (`{"id", "createdTime", "fields"}`). Incremental reads (with
//! `modified_field`) add `filterByFormula=IS_AFTER({<modified_field>}, '<watermark>')` and
//! `sort[0][field]=<modified_field>`; the watermark is the largest `modified_field` value the
//! previous run committed.
//!
//! # Cursor
//!
//! `{"p": "<Airtable offset>", "w": <watermark>, "m": <largest modified time seen>}` inside a run,
//! `{"w": <watermark>}` (or `{}`) after the last batch — see `sync_support::cursor::RunCursor`.
//! Airtable offsets expire: an expired one (`422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE`) is a
//! permanent error saying the read must restart from the beginning — retrying the same cursor
//! could never succeed.
//!
//! # Writing
//!
//! `write-batch` upserts and deletes in chunks of at most 10 records (Airtable's limit), with
//! `typecast: true`: an upsert without `external-id` is a `POST` (created), one with it a `PATCH`
//! of that record (updated), a delete a `DELETE ?records[]=…` (deleted; a delete without
//! `external-id` has nothing to remove and is reported deleted). A record's `data` is the JSON
//! object of fields, or an object with a `fields` member. Results come back in input order.
//! A chunk Airtable rejects with 422 (`INVALID_VALUE_FOR_COLUMN`, `UNKNOWN_FIELD_NAME`, …) fails
//! only its records, with Airtable's message; a 404 or 422 naming one record of the chunk fails
//! that record ("not found") and the rest of the chunk is sent again.
//!
//! A call-level failure (429, 401, 5xx, timeout) before anything was written fails the call
//! (429 → rate-limited, `Retry-After` or Airtable's 30 s). After some chunks were written, the
//! call returns their results and fails the records not yet attempted with the reason, instead
//! of failing the call: a retried call would create the already-created records a second time.
//!
//! # Errors
//!
//! 401 → unauthorized; 403 (`INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`) and 404 → permanent;
//! 429 → rate-limited; 5xx and transport failures → retryable. An unknown entity is a permanent
//! error naming it; a listed record without an id is an item error.

mod write;

use patchbay_sdk::data_sync::{
    Batch, DataSync, Entity, ItemError, ReadRequest, SourceRecord, SyncMode, WriteRequest, WriteResult,
};
use patchbay_sdk::http::{Request, Response};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config};
use serde_json::Value;
use serde_json::value::RawValue;
use sync_support::cursor::RunCursor;
use sync_support::{errors, json, watermark};

/// Records per page Airtable allows.
const MAX_PAGE_SIZE: u64 = 100;
/// Requests one call may make (the host allows 50).
const MAX_REQUESTS: u32 = 40;
/// The personal access token secret.
const TOKEN: &str = "token";
/// Per-request timeout.
const TIMEOUT_MS: u32 = 30_000;

struct Airtable;

/// The installation's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub api_url: String,
    pub base_id: String,
    pub tables: Vec<String>,
    pub modified_field: Option<String>,
}

impl Settings {
    fn load() -> Result<Settings, ConnectorError> {
        Settings::from_lookup(config::get)
    }

    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConnectorError> {
        let value = |key: &str| get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let missing =
            |key: &str| ConnectorError::permanent("missing_config", format!("configuration value `{key}` is not set"));
        let base_id = value("base_id").ok_or_else(|| missing("base_id"))?;
        if base_id.contains(['/', '?', '#', ' ']) {
            return Err(ConnectorError::permanent(
                "invalid_config",
                "`base_id` must be a base id such as appXXXXXXXXXXXXXX",
            ));
        }
        let tables: Vec<String> = value("tables")
            .ok_or_else(|| missing("tables"))?
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if tables.is_empty() {
            return Err(missing("tables"));
        }
        let api_url = value("api_url").unwrap_or_else(|| "https://api.airtable.com".to_owned());
        let api_url = api_url.trim_end_matches('/').to_owned();
        if sync_support::url::origin(&api_url).is_none() {
            return Err(ConnectorError::permanent("invalid_config", "`api_url` must be an absolute http(s) URL"));
        }
        Ok(Settings { api_url, base_id, tables, modified_field: value("modified_field") })
    }

    /// `{api_url}/v0/{base}/{table}`.
    pub(crate) fn table_url(&self, table: &str) -> String {
        format!("{}/v0/{}/{}", self.api_url, self.base_id, sync_support::url::encode_path_segment(table))
    }

    fn check_entity(&self, entity: &str) -> Result<(), ConnectorError> {
        if self.tables.iter().any(|t| t == entity) {
            Ok(())
        } else {
            Err(ConnectorError::permanent(
                "unknown_entity",
                format!("unknown entity `{entity}`; this installation syncs the tables {}", self.tables.join(", ")),
            ))
        }
    }
}

/// Adds the token and timeout to a request.
pub(crate) fn authorized(request: Request) -> Request {
    request.bearer(TOKEN).header("accept", "application/json").timeout_ms(TIMEOUT_MS)
}

/// Airtable's error body: `{"error": {"type", "message"}}`, `{"error": "TYPE"}` or
/// `{"errors": [{"error", "message"}]}` → (type, message).
pub(crate) fn airtable_error(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let first = value.get("errors").and_then(|e| e.get(0));
    match (value.get("error"), first) {
        (Some(e @ Value::Object(_)), _) => (text(e, "type"), text(e, "message")),
        (Some(Value::String(t)), _) => (t.clone(), text(&value, "message")),
        (_, Some(e)) => (text(e, "error"), text(e, "message")),
        _ => (String::new(), String::new()),
    }
}

impl Lifecycle for Airtable {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        let settings = match Settings::load() {
            Ok(s) => s,
            Err(e) => return Ok(HealthReport::unhealthy(e.message())),
        };
        let response = probe(&settings)?;
        Ok(if response.is_success() {
            HealthReport::healthy()
        } else {
            let (kind, _) = airtable_error(&response.body);
            HealthReport::unhealthy(format!("Airtable answered HTTP {} {kind}", response.status).trim_end().to_owned())
        })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        let settings = match Settings::load() {
            Ok(s) => s,
            Err(e) => return Ok(CredentialCheck::invalid(e.message())),
        };
        let response = probe(&settings)?;
        match response.status {
            401 => Ok(CredentialCheck::invalid("Airtable rejected the token")),
            403 => Ok(CredentialCheck::invalid(
                "the token has no access to this base or table (INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND)",
            )),
            _ if response.is_success() => Ok(CredentialCheck::valid()),
            _ => Err(errors::status_error(&response)),
        }
    }
}

/// Lists one record of the first table.
fn probe(settings: &Settings) -> Result<Response, ConnectorError> {
    let url = format!("{}?pageSize=1", settings.table_url(&settings.tables[0]));
    errors::send(&authorized(Request::get(url)))
}

impl DataSync for Airtable {
    fn list_entities() -> Result<Vec<Entity>, ConnectorError> {
        let settings = Settings::load()?;
        Ok(settings
            .tables
            .iter()
            .map(|table| Entity {
                name: table.clone(),
                label: Some(table.clone()),
                primary_key: vec!["id".to_owned()],
                cursor_field: settings.modified_field.clone(),
                supports_incremental: settings.modified_field.is_some(),
                supports_write: true,
                json_schema: None,
            })
            .collect())
    }

    fn read_batch(req: ReadRequest) -> Result<Batch, ConnectorError> {
        let settings = Settings::load()?;
        settings.check_entity(&req.entity)?;
        let cursor = RunCursor::<String>::from_request(req.cursor.as_deref())?;
        let incremental = matches!(req.mode, SyncMode::Incremental);
        let send = |request: &Request| errors::send(request);
        read(&settings, &req.entity, incremental, &cursor, req.limit, &send)
    }

    fn write_batch(req: WriteRequest) -> Result<Vec<WriteResult>, ConnectorError> {
        let settings = Settings::load()?;
        settings.check_entity(&req.entity)?;
        let send = |request: &Request| errors::send(request);
        write::write(&settings, &req.entity, req.records, &send)
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_data_sync!(Airtable);

/// Sends a request (injected, for tests).
pub(crate) type Send<'a> = &'a dyn Fn(&Request) -> Result<Response, ConnectorError>;

/// One batch of a table's records (see the crate doc).
fn read(
    settings: &Settings,
    table: &str,
    incremental: bool,
    cursor: &RunCursor<String>,
    limit: u32,
    send: Send<'_>,
) -> Result<Batch, ConnectorError> {
    let limit = u64::from(limit.max(1));
    let modified = settings.modified_field.as_deref();
    let mut filter: Vec<(&str, String)> = Vec::new();
    if let (true, Some(field)) = (incremental, modified) {
        if let Some(w) = &cursor.since {
            let since = watermark::to_param(w).replace('\\', "\\\\").replace('\'', "\\'");
            filter.push(("filterByFormula", format!("IS_AFTER({{{field}}}, '{since}')")));
        }
        filter.push(("sort[0][field]", field.to_owned()));
        filter.push(("sort[0][direction]", "asc".to_owned()));
    }
    let mut offset = cursor.position.clone();
    let (mut records, mut item_errors, mut seen) = (Vec::new(), Vec::new(), None);
    let mut done = false;
    let mut requests = 0;
    while !done && ((records.len() + item_errors.len()) as u64) < limit && requests < MAX_REQUESTS {
        let remaining = limit - (records.len() + item_errors.len()) as u64;
        let mut params = vec![("pageSize", remaining.min(MAX_PAGE_SIZE).to_string())];
        if let Some(o) = &offset {
            params.push(("offset", o.clone()));
        }
        params.extend(filter.iter().cloned());
        let url = format!("{}?{}", settings.table_url(table), patchbay_sdk::http::form_urlencode(&params));
        let response = send(&authorized(Request::get(url)))?;
        requests += 1;
        if !response.is_success() {
            return Err(read_error(&response));
        }
        let page = parse_page(&response)?;
        for raw in page.records {
            match record(raw, modified) {
                Ok((id, stamp)) => {
                    if let Some(stamp) = stamp {
                        watermark::raise(&mut seen, stamp);
                    }
                    records.push(SourceRecord { id, data: raw.get().to_owned(), deleted: false });
                }
                Err(message) => item_errors.push(ItemError { id: None, message }),
            }
        }
        match page.offset {
            Some(next) => offset = Some(next),
            None => done = true,
        }
    }
    let next = cursor.advance(if done { None } else { offset }, seen);
    Ok(Batch {
        records,
        errors: item_errors,
        next_cursor: Some(sync_support::cursor::encode(&next)?),
        done,
        total: None,
    })
}

fn read_error(response: &Response) -> ConnectorError {
    let (kind, message) = airtable_error(&response.body);
    if kind == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" {
        return ConnectorError::permanent(
            "offset_expired",
            "the Airtable pagination offset expired (LIST_RECORDS_ITERATOR_NOT_AVAILABLE); \
             the read cannot resume and must restart from the beginning",
        );
    }
    if response.status == 404 && !message.is_empty() {
        return ConnectorError::permanent("not_found", format!("Airtable: {kind}: {message}"));
    }
    errors::status_error(response)
}

/// One list page, borrowed from the body.
struct Page<'a> {
    records: Vec<&'a RawValue>,
    offset: Option<String>,
}

fn parse_page(response: &Response) -> Result<Page<'_>, ConnectorError> {
    let bad =
        |what: String| ConnectorError::permanent("invalid_response", format!("unexpected Airtable response: {what}"));
    let text = std::str::from_utf8(&response.body).map_err(|_| bad("not UTF-8".to_owned()))?;
    let (records_path, offset_path) = (json::Path::parse("records"), json::Path::parse("offset"));
    let mut found = json::capture(text, &[&offset_path], &[&records_path]).map_err(|e| bad(e.to_string()))?;
    let records = found.lists[0].take().ok_or_else(|| bad("no `records`".to_owned()))?;
    let offset = found.values[0].and_then(json::scalar_text).filter(|o| !o.is_empty());
    Ok(Page { records, offset })
}

/// A listed record's id and its modified-time value.
fn record(raw: &RawValue, modified: Option<&str>) -> Result<(String, Option<Value>), String> {
    let top = json::pick(raw, &["id", "fields"]).map_err(|_| "a listed record is not a JSON object".to_owned())?;
    let id = top[0].and_then(json::scalar_text).filter(|id| !id.is_empty()).ok_or("a listed record has no id")?;
    let stamp = match (modified, top[1]) {
        (Some(field), Some(fields)) if json::is_object(fields) => {
            json::pick(fields, &[field]).ok().and_then(|v| v[0]).and_then(json::to_value)
        }
        _ => None,
    };
    Ok((id, stamp))
}

#[cfg(test)]
mod tests;
