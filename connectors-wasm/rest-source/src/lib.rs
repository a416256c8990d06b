//! Data-sync source reading any paginated JSON REST API.
//!
//! # Configuration
//!
//! | key                | default                         | meaning                                                       |
//! |--------------------|---------------------------------|---------------------------------------------------------------|
//! | `base_url`         | — (required)                    | API origin and base path; allowed hosts: `{{config.base_url}}` |
//! | `path`             | — (required)                    | the list endpoint, e.g. `/v1/items`                            |
//! | `entity`           | the last segment of `path`      | the one entity's name                                         |
//! | `record_path`      | empty (the body is the array)   | dotted path to the records array, e.g. `data.items`           |
//! | `primary_key`      | `id`                            | dotted field(s), comma-separated; compound ids joined with `/` |
//! | `pagination`       | `link`                          | `page`, `offset`, `cursor`, `link` or `none`                   |
//! | `page_size`        | `100`                           | records per request (1–10000)                                 |
//! | `page_size_param`  | `per_page` (page, link, none), `limit` (offset, cursor) | the page-size query parameter       |
//! | `page_param`       | `page`                          | page number parameter (first page is 1)                       |
//! | `offset_param`     | `offset`                        | offset parameter                                              |
//! | `cursor_param`     | `cursor`                        | cursor parameter                                              |
//! | `next_cursor_path` | — (required for `cursor`)       | dotted path of the next cursor in the body; null, absent or `""` ends |
//! | `total_path`       | —                               | dotted path of the total record count (reported as `total`)    |
//! | `deleted_field`    | —                               | a record whose field is `true`/`"true"` is reported deleted   |
//! | `cursor_field`     | —                               | field ordering changes, e.g. `updated_at` (incremental reads) |
//! | `since_param`      | —                               | query parameter taking the watermark, e.g. `updated_since`    |
//! | `auth_header`      | `authorization`                 | header carrying the `api_key` secret                           |
//! | `query`            | —                               | static query parameters, `a=1&b=2`, sent verbatim              |
//! | `api_key` (secret) | —                               | `authorization: Bearer <key>`, or the bare key in another header |
//!
//! # Pagination
//!
//! `page`: `?page=N&per_page=S`; `offset`: `?offset=O&limit=S`; `cursor`: `?limit=S[&cursor=C]`
//! with the next cursor read from `next_cursor_path`; `link`: the first request asks
//! `?per_page=S`, then follows the `Link: <…>; rel="next"` header (RFC 8288; the URL must stay on
//! `base_url`'s origin); `none`: one request returns everything. For `page` and `offset` the end
//! is a page shorter than requested (or `total_path`'s count reached, when configured — set it
//! when the API caps page sizes below `page_size`).
//!
//! A batch may make several requests: each asks for min(`page_size`, records still allowed by
//! `limit`), and the batch goes on while there is room and fewer than 40 requests were made, so
//! `limit` 1000 with `page_size` 100 is up to 10 requests. The batch never returns more than
//! `limit` records; when a page holds more than fits (a `link` page sized by the server), the
//! rest of that page is skipped on resume.
//!
//! # Cursor
//!
//! `{"p": {"o": <record offset>} | {"c": <API cursor or next URL>, "k": <records of that page
//! already returned>}, "w": <watermark>, "m": <largest cursor_field value seen in this run>}`; see
//! `sync_support::cursor::RunCursor`. The last batch (`done: true`) returns `{"w": <watermark>}`
//! without a position: passed back, it starts again from the first page. In incremental mode the
//! host passes the previous run's final cursor, and every request of the run carries
//! `since_param=<w>` — the largest `cursor_field` value the previous run committed. Watermarks
//! compare as numbers, RFC 3339 instants or text. Whether the API's `since` filter is inclusive
//! decides whether records stamped exactly at the watermark are read again (harmless: upserts).
//!
//! # Errors
//!
//! 429 → rate-limited (`Retry-After` seconds or HTTP-date, else 30 s); 401 → unauthorized;
//! 408/5xx, timeouts, connection failures → retryable; other statuses, a body that is not JSON,
//! a missing records array → permanent. A record that is not an object or has no primary key is
//! an item error (the batch goes on). An unknown entity is a permanent error naming it.
//!
//! # Speed
//!
//! Records are passed on as the exact JSON text the API sent: the page is parsed into borrowed
//! raw values and only the key, cursor and deleted fields are read from each record, so nothing
//! is re-serialised.

mod settings;

use patchbay_sdk::data_sync::{
    Batch, DataSync, Entity, ItemError, ReadRequest, SourceRecord, SyncMode, WriteRequest, WriteResult,
};
use patchbay_sdk::http::{Request, Response};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, secrets};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use settings::{Pagination, Settings};
use sync_support::cursor::RunCursor;
use sync_support::json::{self, FieldSet};
use sync_support::{errors, watermark};

/// Requests one batch may make (the host allows 50 per call).
const MAX_REQUESTS: u32 = 40;
/// The API key secret.
const API_KEY: &str = "api_key";
/// Per-request timeout.
const TIMEOUT_MS: u32 = 30_000;

struct RestSource;

/// Where a run continues (see the crate doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Pos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    k: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

type Cursor = RunCursor<Pos>;

impl Lifecycle for RestSource {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        let settings = match load() {
            Ok(s) => s,
            Err(e) => return Ok(HealthReport::unhealthy(e.message())),
        };
        let response = errors::send(&request(&settings, probe_url(&settings)))?;
        Ok(if response.is_success() {
            HealthReport::healthy()
        } else {
            HealthReport::unhealthy(format!("the list endpoint answered HTTP {}", response.status))
        })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        let settings = match load() {
            Ok(s) => s,
            Err(e) => return Ok(CredentialCheck::invalid(e.message())),
        };
        let response = errors::send(&request(&settings, probe_url(&settings)))?;
        match response.status {
            401 | 403 => Ok(CredentialCheck::invalid(format!("the API refused the key (HTTP {})", response.status))),
            _ if response.is_success() => Ok(CredentialCheck::valid()),
            _ => Err(errors::status_error(&response)),
        }
    }
}

impl DataSync for RestSource {
    fn list_entities() -> Result<Vec<Entity>, ConnectorError> {
        let settings = load()?;
        Ok(vec![Entity {
            name: settings.entity.clone(),
            label: None,
            primary_key: settings.primary_key.names(),
            cursor_field: settings.cursor_field.as_ref().map(ToString::to_string),
            supports_incremental: settings.supports_incremental(),
            supports_write: false,
            json_schema: None,
        }])
    }

    fn read_batch(req: ReadRequest) -> Result<Batch, ConnectorError> {
        let settings = load()?;
        if req.entity != settings.entity {
            return Err(ConnectorError::permanent(
                "unknown_entity",
                format!("unknown entity `{}`; this installation reads `{}`", req.entity, settings.entity),
            ));
        }
        let cursor = Cursor::from_request(req.cursor.as_deref())?;
        let incremental = matches!(req.mode, SyncMode::Incremental);
        let send = |url: &str| errors::send(&request(&settings, url.to_owned()));
        read(&settings, incremental, &cursor, req.limit, &send)
    }

    fn write_batch(_req: WriteRequest) -> Result<Vec<WriteResult>, ConnectorError> {
        Err(ConnectorError::permanent("read_only", "rest-source is read-only: write-batch is not supported"))
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_data_sync!(RestSource);

fn load() -> Result<Settings, ConnectorError> {
    Settings::from_lookup(config::get)
}

/// A GET with the API key header (when the secret is set).
fn request(settings: &Settings, url: String) -> Request {
    let mut request = Request::get(url).header("accept", "application/json").timeout_ms(TIMEOUT_MS);
    if secrets::has(API_KEY) {
        let value = if settings.auth_header == "authorization" {
            format!("Bearer {}", secrets::placeholder(API_KEY))
        } else {
            secrets::placeholder(API_KEY)
        };
        request = request.header(settings.auth_header.clone(), value);
    }
    request
}

/// The first page with a page size of 1.
fn probe_url(settings: &Settings) -> String {
    match settings.pagination {
        Pagination::None => settings.url(&[]),
        _ => settings.url(&[(settings.page_size_param.as_str(), "1".to_owned())]),
    }
}

/// One page, borrowed from the response body.
struct Page<'a> {
    items: Vec<&'a RawValue>,
    next_cursor: Option<String>,
    total: Option<u64>,
}

fn invalid_response(message: String) -> ConnectorError {
    ConnectorError::permanent("invalid_response", message)
}

fn parse_page<'a>(settings: &Settings, response: &'a Response) -> Result<Page<'a>, ConnectorError> {
    if !response.is_success() {
        return Err(errors::status_error(response));
    }
    let text = std::str::from_utf8(&response.body)
        .map_err(|_| invalid_response(format!("the response (HTTP {}) is not UTF-8 text", response.status)))?;
    // One pass over the body: the records array and the cursor and total fields.
    let mut values: Vec<&json::Path> = Vec::with_capacity(2);
    let cursor_at = settings.next_cursor_path.as_ref().map(|p| {
        values.push(p);
        values.len() - 1
    });
    let total_at = settings.total_path.as_ref().map(|p| {
        values.push(p);
        values.len() - 1
    });
    let mut found = json::capture(text, &values, &[&settings.record_path]).map_err(|e| {
        invalid_response(format!(
            "the response (HTTP {}) is not JSON with an array of records at `{}`: {e}",
            response.status,
            path_name(settings)
        ))
    })?;
    let items = found.lists[0]
        .take()
        .ok_or_else(|| invalid_response(format!("the response has no `{}`", path_name(settings))))?;
    let next_cursor = cursor_at.and_then(|i| found.values[i]).and_then(json::scalar_text).filter(|c| !c.is_empty());
    let total = total_at
        .and_then(|i| found.values[i])
        .and_then(json::scalar_text)
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| t as u64);
    Ok(Page { items, next_cursor, total })
}

fn path_name(settings: &Settings) -> String {
    if settings.record_path.is_root() { "records array".to_owned() } else { settings.record_path.to_string() }
}

/// Records and item errors collected by one batch.
struct Collector {
    fields: FieldSet,
    key_len: usize,
    cursor_at: Option<usize>,
    deleted_at: Option<usize>,
    records: Vec<SourceRecord>,
    errors: Vec<ItemError>,
    seen: Option<Value>,
}

impl Collector {
    fn new(settings: &Settings) -> Collector {
        let mut paths = settings.primary_key.paths.clone();
        let key_len = paths.len();
        let cursor_at = settings.cursor_field.clone().map(|p| {
            paths.push(p);
            paths.len() - 1
        });
        let deleted_at = settings.deleted_field.clone().map(|p| {
            paths.push(p);
            paths.len() - 1
        });
        Collector {
            fields: FieldSet::new(paths),
            key_len,
            cursor_at,
            deleted_at,
            records: Vec::new(),
            errors: Vec::new(),
            seen: None,
        }
    }

    fn items(&self) -> u64 {
        (self.records.len() + self.errors.len()) as u64
    }

    fn add(&mut self, settings: &Settings, item: &RawValue) {
        let values = match self.fields.read(item) {
            Ok(values) => values,
            Err(message) => {
                self.errors.push(ItemError { id: None, message });
                return;
            }
        };
        let id = match settings.primary_key.join(&values[..self.key_len]) {
            Ok(id) => id,
            Err(message) => {
                self.errors.push(ItemError { id: None, message: format!("record skipped: {message}") });
                return;
            }
        };
        if let Some(value) = self.cursor_at.and_then(|i| values[i]).and_then(json::to_value) {
            watermark::raise(&mut self.seen, value);
        }
        let deleted = self.deleted_at.and_then(|i| values[i]).is_some_and(json::is_truthy);
        self.records.push(SourceRecord { id, data: item.get().to_owned(), deleted });
    }
}

/// The page size for page pagination at record offset `o`: `page_size` when `o` is a multiple
/// of it and it fits; otherwise, at the start of a batch, the largest size ≤ `want` dividing `o`
/// (so the page number is exact); otherwise `None` (end the batch here).
fn page_size_for(o: u64, want: u64, page_size: u64, items_so_far: u64) -> Option<u64> {
    if page_size <= want && o.is_multiple_of(page_size) {
        return Some(page_size);
    }
    if items_so_far > 0 {
        return None;
    }
    let want = want.clamp(1, page_size);
    (1..=want).rev().find(|s| o.is_multiple_of(*s))
}

/// One batch (see the crate doc). `send` performs a GET.
fn read(
    settings: &Settings,
    incremental: bool,
    cursor: &Cursor,
    limit: u32,
    send: &dyn Fn(&str) -> Result<Response, ConnectorError>,
) -> Result<Batch, ConnectorError> {
    let limit = u64::from(limit.max(1));
    let page_size = u64::from(settings.page_size);
    let since: Option<(String, String)> = match (&settings.since_param, &cursor.since) {
        (Some(param), Some(w)) if incremental && settings.supports_incremental() => {
            Some((param.clone(), watermark::to_param(w)))
        }
        _ => None,
    };
    let mut pos = cursor.position.clone().unwrap_or_default();
    let mut out = Collector::new(settings);
    let mut total = None;
    let mut done = false;
    let mut requests = 0;
    let mut last_page_len = 0u64;
    let since = since.as_ref();
    fn with<'a>(mut params: Vec<(&'a str, String)>, since: Option<&'a (String, String)>) -> Vec<(&'a str, String)> {
        if let Some((name, value)) = since {
            params.push((name.as_str(), value.clone()));
        }
        params
    }
    let with_since = |params| with(params, since);

    while out.items() < limit && requests < MAX_REQUESTS && !done {
        let remaining = limit - out.items();
        match settings.pagination {
            Pagination::Page | Pagination::Offset => {
                let o = pos.o.unwrap_or(0);
                let (size, params) = if settings.pagination == Pagination::Page {
                    let Some(size) = page_size_for(o, remaining.min(page_size), page_size, out.items()) else {
                        break;
                    };
                    let page = o / size + 1;
                    (size, vec![(settings.page_param.as_str(), page.to_string())])
                } else {
                    let size = remaining.min(page_size);
                    (size, vec![(settings.offset_param.as_str(), o.to_string())])
                };
                let mut params = params;
                params.push((settings.page_size_param.as_str(), size.to_string()));
                let response = send(&settings.url(&with_since(params)))?;
                requests += 1;
                let page = parse_page(settings, &response)?;
                let got = page.items.len() as u64;
                let take = got.min(remaining);
                for item in &page.items[..take as usize] {
                    out.add(settings, item);
                }
                pos = Pos { o: Some(o + take), c: None, k: 0 };
                total = page.total.or(total);
                let exhausted = match page.total {
                    Some(t) => got == 0 || o + got >= t,
                    None => got < size,
                };
                done = exhausted && take == got;
            }
            Pagination::Cursor | Pagination::Link | Pagination::None => {
                if settings.pagination == Pagination::Link && out.items() > 0 && out.items() + last_page_len > limit {
                    break;
                }
                let skip = pos.k;
                let url = match (&settings.pagination, &pos.c) {
                    (Pagination::Link, Some(next)) => {
                        check_origin(settings, next)?;
                        next.clone()
                    }
                    (Pagination::Link, None) => {
                        let size = (skip + remaining).min(page_size).max(skip + 1);
                        settings.url(&with_since(vec![(settings.page_size_param.as_str(), size.to_string())]))
                    }
                    (Pagination::Cursor, c) => {
                        let size = (skip + remaining).min(page_size).max(skip + 1);
                        let mut params = vec![(settings.page_size_param.as_str(), size.to_string())];
                        if let Some(c) = c {
                            params.push((settings.cursor_param.as_str(), c.clone()));
                        }
                        settings.url(&with_since(params))
                    }
                    _ => settings.url(&with_since(Vec::new())),
                };
                let response = send(&url)?;
                requests += 1;
                let page = parse_page(settings, &response)?;
                let got = page.items.len() as u64;
                let start = skip.min(got);
                let take = (got - start).min(remaining);
                for item in &page.items[start as usize..(start + take) as usize] {
                    out.add(settings, item);
                }
                total = page.total.or(total);
                last_page_len = got;
                if start + take < got {
                    // Part of this page is left: resume on it, skipping what was returned.
                    pos.k = start + take;
                    break;
                }
                let next = match settings.pagination {
                    Pagination::Cursor => page.next_cursor,
                    Pagination::Link => next_link(&response, &url, settings)?,
                    _ => None,
                };
                match next {
                    Some(next) => pos = Pos { o: None, c: Some(next), k: 0 },
                    None => done = true,
                }
            }
        }
    }

    let position = if done { None } else { Some(pos) };
    let next = cursor.advance(position, out.seen.take());
    Ok(Batch {
        records: out.records,
        errors: out.errors,
        next_cursor: Some(sync_support::cursor::encode(&next)?),
        done,
        total,
    })
}

/// The `rel="next"` target of the response's `Link` headers, resolved against the request URL
/// and checked to stay on `base_url`'s origin.
fn next_link(response: &Response, url: &str, settings: &Settings) -> Result<Option<String>, ConnectorError> {
    let values = response.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("link")).map(|(_, v)| v.as_str());
    let Some(target) = sync_support::url::link_target(values, "next") else {
        return Ok(None);
    };
    let next = sync_support::url::resolve(url, &target)
        .ok_or_else(|| invalid_response("the next-page link cannot be resolved".to_owned()))?;
    check_origin(settings, &next)?;
    Ok(Some(next))
}

fn check_origin(settings: &Settings, url: &str) -> Result<(), ConnectorError> {
    if sync_support::url::origin(url).as_deref() == Some(settings.origin.as_str()) {
        Ok(())
    } else {
        Err(ConnectorError::permanent(
            "invalid_response",
            format!("the next-page link leaves {} (base_url's origin)", settings.origin),
        ))
    }
}

#[cfg(test)]
mod tests;
