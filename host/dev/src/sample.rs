//! A local, deterministic sample source for data sync: `patchbay sample-source` serves it so a
//! newcomer can sync something real in minutes, and the tests and benchmarks drive the reference
//! data-sync connectors against it.
//!
//! [`SourceServer::start`] serves a [`Dataset`] on `127.0.0.1:<random port>` (axum, on the
//! current Tokio runtime, or on a runtime thread of its own when called outside one) in every
//! shape the data-sync reference connectors read:
//!
//! | endpoint                              | answer                                                              |
//! |---------------------------------------|---------------------------------------------------------------------|
//! | `GET /rest/page?page=&per_page=`      | `{"data": [...], "meta": {"page", "per_page", "total"}}` (pages from 1) |
//! | `GET /rest/offset?offset=&limit=`     | `{"data": [...], "meta": {"offset", "limit", "total"}}`              |
//! | `GET /rest/cursor?cursor=&limit=`     | `{"data": [...], "meta": {"next_cursor": "…" \| null, "total"}}`     |
//! | `GET /rest/link?page=&per_page=`      | a bare JSON array; `Link: <…>; rel="next"` (absolute URL) while more, `X-Total-Count` |
//! | `GET /rest/all`                       | `{"data": [...]}`, everything at once                                |
//! | `GET /files/data.csv`                 | the dataset as CSV (CRLF), honouring `Range` (206 + `Content-Range`, 416 past the end) |
//! | `GET /files/norange.csv`              | the same file, ignoring `Range` (always 200 with the whole file)     |
//! | any path given to [`SourceServer::put_file`] | that file, with or without `Range` support                   |
//! | `/v0/{base}/{table}`                  | an Airtable emulation (see below)                                    |
//!
//! Page sizes (`per_page`, `limit`) default to 100 and are capped at 1000. Every REST style takes
//! `updated_since` (RFC 3339 or unix milliseconds): only records with `updated_at` strictly after
//! it are listed, deleted ones included as tombstones `{"id", "version", "updated_at",
//! "deleted": true}`; without it deleted records are absent. Listings are in index order.
//!
//! Records are generated on the fly from their index, so a 200 000-record dataset costs a few
//! megabytes: `{"id": "r0000042", "name": …, "version": 1, "updated_at": "2024-01-01T00:00:42.000Z",
//! "padding": "…"}`, padded to about `record_bytes` bytes of JSON. Every tenth record's name (index
//! ending in 3) holds a comma and quotes, in 7 a newline, in 9 non-ASCII text, so the CSV file has
//! quoted fields of every kind.
//!
//! Hooks: [`SourceServer::fail_next`] answers the next requests with an error status (and a
//! `Retry-After`), [`SourceServer::set_latency`] delays every request, [`SourceServer::hold`]
//! keeps every request waiting until [`SourceServer::release`], [`SourceServer::require_token`]
//! makes every endpoint demand `authorization: Bearer <token>`; [`SourceServer::requests`] lists
//! what was asked (method, path, query, `Range`, `authorization`, status).
//!
//! # The Airtable emulation
//!
//! Tables live in memory: [`SourceServer::airtable_seed`] fills one, [`SourceServer::airtable_records`]
//! reads it back. Fields are `Name` (text), `Status` (single select: `Todo`, `In progress`,
//! `Done`), `Notes` (text), `Count` (number) and `Last Modified` (computed: the record's last
//! change). As in the public API:
//!
//! * `GET` lists `{"records": [{"id", "createdTime", "fields"}], "offset"?}`; `pageSize` ≤ 100
//!   (default 100, larger is 422 `INVALID_REQUEST_UNKNOWN`); `offset` from the previous page
//!   (after [`SourceServer::airtable_expire_offsets`], an old one is 422
//!   `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`); `filterByFormula` understands `IS_AFTER({Field},
//!   'timestamp')` (others are 422 `INVALID_FILTER_BY_FORMULA`); `sort[0][field]` and
//!   `sort[0][direction]`. `GET /v0/{base}/{table}/{id}` reads one record.
//! * `POST` `{"records": [{"fields"}], "typecast"}` creates, `PATCH` (merge) and `PUT` (replace)
//!   `{"records": [{"id", "fields"}]}` update, `DELETE ?records[]=…` deletes, each answering
//!   `{"records": [...]}` in request order. More than 10 records is 422 `INVALID_RECORDS`; an
//!   unknown field 422 `UNKNOWN_FIELD_NAME`; a `Status` outside the choices, or a value for the
//!   computed field, 422 `INVALID_VALUE_FOR_COLUMN`; an unknown record id 404 `NOT_FOUND` naming
//!   it. A request is applied entirely or not at all.
//! * A missing or wrong token (when one is required) is 401 `AUTHENTICATION_REQUIRED`; an
//!   unknown base or table 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use patchbay_core::timefmt::{parse_rfc3339, rfc3339};
use serde_json::{Map, Value, json};

/// `updated_at` of record 0 before any change: 2024-01-01T00:00:00Z; record `i` is `i` seconds later.
pub(crate) const BASE_MS: i64 = 1_704_067_200_000;
/// Largest page the REST endpoints serve.
pub(crate) const MAX_PAGE: usize = 1000;
/// The header row of the CSV file.
pub(crate) const CSV_HEADER: &str = "id,name,version,updated_at,padding";
/// The `Status` choices of the Airtable emulation.
pub(crate) const AIRTABLE_STATUSES: [&str; 3] = ["Todo", "In progress", "Done"];
/// The Airtable emulation's computed field.
pub const AIRTABLE_MODIFIED: &str = "Last Modified";
/// Requests kept by the request log (older ones are dropped).
const LOG_CAP: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Dataset

/// A deterministic set of records, generated from their index, with mutations on top.
///
/// Cheap to clone (a handle): keep one in the test and give one to the server; changes made
/// through either are seen by both.
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<DatasetInner>,
}

struct DatasetInner {
    record_bytes: usize,
    seed: u64,
    state: RwLock<DataState>,
}

#[derive(Clone)]
struct DataState {
    /// Indices `0..count` exist (deleted ones included).
    count: usize,
    overrides: HashMap<usize, Change>,
    deleted: usize,
    clock_ms: i64,
    generation: u64,
}

/// The current version of a changed (or inserted) record.
#[derive(Clone, Copy, Debug)]
struct Change {
    version: u32,
    updated_ms: i64,
    deleted: bool,
}

impl Dataset {
    /// The `updated_at` of record `i`, in unix milliseconds.
    #[cfg(test)]
    pub(crate) fn updated_ms(&self, i: usize) -> i64 {
        self.state().meta(i).updated_ms
    }

    /// `count` records of about `record_bytes` bytes of JSON each; `seed` varies names and padding.
    pub fn new(count: usize, record_bytes: usize, seed: u64) -> Dataset {
        let state = DataState {
            count,
            overrides: HashMap::new(),
            deleted: 0,
            clock_ms: BASE_MS + count as i64 * 1000,
            generation: 0,
        };
        Dataset { inner: Arc::new(DatasetInner { record_bytes, seed, state: RwLock::new(state) }) }
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, DataState> {
        self.inner.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, DataState> {
        self.inner.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A counter that changes with every mutation.
    pub(crate) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The id of record `i`: `r` and at least seven digits (`r0000042`), so ids sort like indices.
    pub fn id(i: usize) -> String {
        format!("r{i:07}")
    }

    /// The index of an id made by [`Dataset::id`].
    pub fn index_of(id: &str) -> Option<usize> {
        id.strip_prefix('r')?.parse().ok()
    }

    /// The current state of record `i` (a tombstone when deleted).
    pub fn record(&self, i: usize) -> Value {
        let json = self.record_json(i);
        serde_json::from_str(&json).unwrap_or(Value::Null)
    }

    /// [`Dataset::record`] as JSON text, exactly as the REST endpoints send it.
    pub fn record_json(&self, i: usize) -> String {
        let meta = self.state().meta(i);
        let mut out = String::with_capacity(self.inner.record_bytes + 64);
        self.write_record(i, meta, &mut out);
        out
    }

    /// The largest `updated_at` of any record (deleted ones included), RFC 3339.
    pub fn max_updated_at(&self) -> String {
        let s = self.state();
        let base = if s.count == 0 { BASE_MS } else { BASE_MS + (s.count as i64 - 1) * 1000 };
        let max = s.overrides.values().map(|c| c.updated_ms).max().unwrap_or(BASE_MS).max(base);
        rfc3339(max)
    }

    /// A new version of record `i`: `version` + 1, a later `updated_at`, `name` with ` v<version>`.
    /// Updating a deleted record brings it back.
    pub fn update(&self, i: usize) {
        let mut s = self.state_mut();
        assert!(i < s.count, "record {i} does not exist");
        let meta = s.meta(i);
        s.clock_ms += 1000;
        if meta.deleted {
            s.deleted -= 1;
        }
        let change = Change { version: meta.version + 1, updated_ms: s.clock_ms, deleted: false };
        s.overrides.insert(i, change);
        s.generation += 1;
    }

    /// Deletes record `i` (its `updated_at` moves on; listings with `updated_since` show a tombstone).
    pub fn delete(&self, i: usize) {
        let mut s = self.state_mut();
        assert!(i < s.count, "record {i} does not exist");
        let meta = s.meta(i);
        if meta.deleted {
            return;
        }
        s.clock_ms += 1000;
        let change = Change { version: meta.version + 1, updated_ms: s.clock_ms, deleted: true };
        s.overrides.insert(i, change);
        s.deleted += 1;
        s.generation += 1;
    }

    /// Appends `n` new records (version 1, `updated_at` later than everything so far); returns
    /// their indices.
    pub fn insert_more(&self, n: usize) -> Range<usize> {
        let mut s = self.state_mut();
        let start = s.count;
        for i in start..start + n {
            s.clock_ms += 1000;
            let change = Change { version: 1, updated_ms: s.clock_ms, deleted: false };
            s.overrides.insert(i, change);
        }
        s.count += n;
        s.generation += 1;
        start..start + n
    }

    /// The current records, not deleted, in index order: `(id, record)`.
    pub fn expected(&self) -> impl Iterator<Item = (String, Value)> + '_ {
        let snapshot = self.state().clone();
        (0..snapshot.count).filter(move |&i| !snapshot.meta(i).deleted).map(move |i| (Dataset::id(i), self.record(i)))
    }

    /// The rows of `/files/data.csv` as csv-source reports them: `(id, {column: string})`.
    pub fn expected_csv(&self) -> impl Iterator<Item = (String, Value)> + '_ {
        self.expected().map(|(id, record)| {
            let mut row = Map::new();
            for column in CSV_HEADER.split(',') {
                let text = match &record[column] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                row.insert(column.to_owned(), Value::String(text));
            }
            (id, Value::Object(row))
        })
    }

    fn name(&self, i: usize, version: u32) -> String {
        const FIRST: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus"];
        const LAST: [&str; 8] =
            ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds"];
        let h = mix(self.inner.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (first, last) = (FIRST[(h % 8) as usize], LAST[((h >> 8) % 8) as usize]);
        let mut name = match i % 10 {
            3 => format!("{last}, \"{first}\" #{i}"),
            7 => format!("{first}\n{last} #{i}"),
            9 => format!("{first} Zoë–{last} ✓ #{i}"),
            _ => format!("{first} {last} #{i}"),
        };
        if version > 1 {
            let _ = write!(name, " v{version}");
        }
        name
    }

    /// Appends record `i`'s JSON to `out`.
    fn write_record(&self, i: usize, meta: Change, out: &mut String) {
        let id = Dataset::id(i);
        let updated = rfc3339(meta.updated_ms);
        if meta.deleted {
            let _ =
                write!(out, r#"{{"id":"{id}","version":{},"updated_at":"{updated}","deleted":true}}"#, meta.version);
            return;
        }
        let prefix = self.json_prefix(&id, &self.name(i, meta.version), meta.version, &updated);
        out.push_str(&prefix);
        out.push_str(&self.padding(i, self.padding_len(&prefix)));
        out.push_str("\"}");
    }

    /// A live record's JSON up to the padding's value.
    fn json_prefix(&self, id: &str, name: &str, version: u32, updated: &str) -> String {
        let name = serde_json::to_string(name).unwrap_or_default();
        format!(r#"{{"id":"{id}","name":{name},"version":{version},"updated_at":"{updated}","padding":""#)
    }

    /// Padding that brings a record with this JSON prefix to `record_bytes`.
    fn padding_len(&self, prefix: &str) -> usize {
        self.inner.record_bytes.saturating_sub(prefix.len() + 2)
    }

    fn padding(&self, i: usize, len: usize) -> String {
        let table = padding_table();
        let mut at = (mix(self.inner.seed.wrapping_add(i as u64)) % 2048) as usize;
        let mut out = String::with_capacity(len);
        while out.len() < len {
            let take = (len - out.len()).min(table.len() - at);
            out.push_str(&table[at..at + take]);
            at = 0;
        }
        out
    }

    /// Appends record `i`'s CSV row (CRLF-terminated) to `out`.
    fn write_csv_row(&self, i: usize, meta: Change, out: &mut String) {
        let id = Dataset::id(i);
        let name = self.name(i, meta.version);
        let updated = rfc3339(meta.updated_ms);
        let padding = self.padding(i, self.padding_len(&self.json_prefix(&id, &name, meta.version, &updated)));
        let version = meta.version.to_string();
        for (n, text) in
            [id.as_str(), name.as_str(), version.as_str(), updated.as_str(), padding.as_str()].into_iter().enumerate()
        {
            if n > 0 {
                out.push(',');
            }
            if text.contains([',', '"', '\r', '\n']) {
                out.push('"');
                out.push_str(&text.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(text);
            }
        }
        out.push_str("\r\n");
    }
}

impl DataState {
    fn meta(&self, i: usize) -> Change {
        self.overrides.get(&i).copied().unwrap_or(Change {
            version: 1,
            updated_ms: BASE_MS + i as i64 * 1000,
            deleted: false,
        })
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 4 KiB of letters and digits the padding is cut from.
fn padding_table() -> &'static str {
    static TABLE: OnceLock<String> = OnceLock::new();
    TABLE.get_or_init(|| {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..4096u64).map(|i| char::from(ALPHABET[(mix(i) % ALPHABET.len() as u64) as usize])).collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Server

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `authorization` header.
    pub authorization: Option<String>,
    /// The status the server answered with.
    pub status: u16,
}

impl SeenRequest {
    /// A query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(self.query.as_deref(), name)
    }
}

struct Failure {
    path_prefix: Option<String>,
    status: u16,
    retry_after: Option<String>,
}

/// Listing of record indices, cached per (generation, since).
type ListingCache = Option<(u64, Option<i64>, Arc<Vec<u32>>)>;

struct Shared {
    dataset: Dataset,
    count: AtomicU64,
    log: Mutex<VecDeque<SeenRequest>>,
    failures: Mutex<VecDeque<Failure>>,
    latency_us: AtomicU64,
    /// `true` while [`SourceServer::hold`] keeps requests waiting.
    gate: tokio::sync::watch::Sender<bool>,
    /// Requests waiting at the gate now.
    held: AtomicU64,
    /// Requests the gate still lets through while held ([`SourceServer::hold_after`]).
    allowance: AtomicU64,
    token: Mutex<Option<String>>,
    files: Mutex<HashMap<String, (Bytes, bool)>>,
    csv: Mutex<Option<Arc<CsvFile>>>,
    listing: Mutex<ListingCache>,
    airtable: Mutex<AirtableState>,
}

/// The running server; stops when dropped.
pub struct SourceServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SourceServer {
    /// Serves `dataset` on `127.0.0.1:0`: as a task of the current Tokio runtime, or — called
    /// outside a runtime — on a runtime thread of its own.
    pub fn start(dataset: Dataset) -> SourceServer {
        match Self::start_on("127.0.0.1:0", dataset) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`SourceServer::start`] on a given address.
    pub fn start_on(listen: &str, dataset: Dataset) -> Result<SourceServer, String> {
        let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("local address: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("set_nonblocking: {e}"))?;
        let shared = Arc::new(Shared {
            dataset,
            count: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            failures: Mutex::new(VecDeque::new()),
            latency_us: AtomicU64::new(0),
            gate: tokio::sync::watch::Sender::new(false),
            held: AtomicU64::new(0),
            allowance: AtomicU64::new(0),
            token: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
            csv: Mutex::new(None),
            listing: Mutex::new(None),
            airtable: Mutex::new(AirtableState::default()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let serve = async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => panic!("listener: {e}"),
            };
            tokio::select! {
                _ = axum::serve(listener, app) => {}
                _ = rx => {}
            }
        };
        let thread = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(serve);
                None
            }
            Err(_) => Some(std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("source server runtime: {e}"));
                runtime.block_on(serve);
            })),
        };
        Ok(SourceServer { addr, shared, shutdown: Some(tx), thread })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The dataset served (the same handle the server reads).
    pub fn dataset(&self) -> &Dataset {
        &self.shared.dataset
    }

    /// The last requests answered (at most 100 000), oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// [`SourceServer::requests`] whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<SeenRequest> {
        lock(&self.shared.log).iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    /// Forgets the request log (the count goes on).
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Answers the next `n` requests with `status` (and `Retry-After: <retry_after>` when given),
    /// whatever their path.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<&str>) {
        self.push_failures(None, n, status, retry_after);
    }

    /// Like [`SourceServer::fail_next`], for requests whose path starts with `path_prefix` only.
    pub fn fail_next_on(&self, path_prefix: &str, n: usize, status: u16, retry_after: Option<&str>) {
        self.push_failures(Some(path_prefix.to_owned()), n, status, retry_after);
    }

    fn push_failures(&self, path_prefix: Option<String>, n: usize, status: u16, retry_after: Option<&str>) {
        let mut failures = lock(&self.shared.failures);
        for _ in 0..n {
            failures.push_back(Failure {
                path_prefix: path_prefix.clone(),
                status,
                retry_after: retry_after.map(str::to_owned),
            });
        }
    }

    /// Delays every answer by `delay` (zero turns it off).
    pub fn set_latency(&self, delay: Duration) {
        self.shared.latency_us.store(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Holds every request, from now on and until [`SourceServer::release`], before it is
    /// answered (after it was counted in `SourceServer::request_count`, before any latency or
    /// injected failure). A test keeps whatever is reading from the server — a sync run — in
    /// progress for exactly as long as it needs (to cancel it, kill its host or start a
    /// conflicting run) instead of hoping a latency is long enough; [`SourceServer::held`] tells
    /// when a request is waiting. Release before a held request's client gives up.
    pub fn hold(&self) {
        self.hold_after(0);
    }

    /// [`SourceServer::hold`], letting the next `n` requests through first: a sync run reads
    /// exactly `n` pages, then waits at the gate (`held() == 1`) until released.
    pub fn hold_after(&self, n: u64) {
        self.shared.allowance.store(n, Ordering::SeqCst);
        self.shared.gate.send_replace(true);
    }

    /// Lets the held requests (and every later one) through.
    pub fn release(&self) {
        self.shared.gate.send_replace(false);
        self.shared.allowance.store(0, Ordering::SeqCst);
    }

    /// Requests waiting at the gate of [`SourceServer::hold`] now.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Every endpoint demands `authorization: Bearer <token>` (`None`: no check).
    pub fn require_token(&self, token: Option<&str>) {
        *lock(&self.shared.token) = token.map(str::to_owned);
    }

    /// Serves `bytes` at `path` (a GET), honouring `Range` or not.
    pub fn put_file(&self, path: &str, bytes: impl Into<Vec<u8>>, honour_range: bool) {
        lock(&self.shared.files).insert(path.to_owned(), (Bytes::from(bytes.into()), honour_range));
    }

    /// The bytes of `/files/data.csv` as it is now.
    pub fn csv_bytes(&self) -> Vec<u8> {
        let csv = self.shared.csv_file();
        csv.range(&self.shared.dataset, 0, csv.total)
    }

    /// Creates (or replaces) table `table` of base `base` with `n` records made from the dataset:
    /// record `i` has id `rec` + `i` in 14 digits, `Name` = the dataset's name, `Status` cycling
    /// through the choices, `Count` = `i`, `Notes`, and `Last Modified` = `createdTime` = the
    /// dataset's base `updated_at`.
    pub fn airtable_seed(&self, base: &str, table: &str, n: usize) {
        let dataset = &self.shared.dataset;
        let records = (0..n)
            .map(|i| {
                let mut fields = Map::new();
                fields.insert("Name".into(), Value::String(dataset.name(i, 1)));
                fields.insert("Status".into(), Value::String(AIRTABLE_STATUSES[i % 3].to_owned()));
                fields.insert("Count".into(), json!(i));
                fields.insert("Notes".into(), Value::String(dataset.padding(i, 40)));
                let at = BASE_MS + i as i64 * 1000;
                AtRecord { id: format!("rec{i:014}"), created_ms: at, modified_ms: at, fields }
            })
            .collect();
        let mut state = lock(&self.shared.airtable);
        state.clock_ms = state.clock_ms.max(BASE_MS + n as i64 * 1000);
        state.tables.insert((base.to_owned(), table.to_owned()), records);
    }

    /// The records of a table as the API returns them, in table order.
    pub fn airtable_records(&self, base: &str, table: &str) -> Vec<Value> {
        let state = lock(&self.shared.airtable);
        state
            .tables
            .get(&(base.to_owned(), table.to_owned()))
            .map(|t| t.iter().map(AtRecord::to_json).collect())
            .unwrap_or_default()
    }

    /// Changes fields of a record (as a user in the Airtable UI would), moving its `Last Modified`.
    pub fn airtable_update(&self, base: &str, table: &str, id: &str, fields: Value) {
        let mut state = lock(&self.shared.airtable);
        state.clock_ms += 1000;
        let now = state.clock_ms;
        let table =
            state.tables.get_mut(&(base.to_owned(), table.to_owned())).unwrap_or_else(|| panic!("no table {table}"));
        let record = table.iter_mut().find(|r| r.id == id).unwrap_or_else(|| panic!("no record {id}"));
        if let Value::Object(fields) = fields {
            record.fields.extend(fields);
        }
        record.modified_ms = now;
    }

    /// Makes every list offset handed out so far invalid (`LIST_RECORDS_ITERATOR_NOT_AVAILABLE`).
    pub fn airtable_expire_offsets(&self) {
        lock(&self.shared.airtable).epoch += 1;
    }
}

impl Drop for SourceServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn query_params(query: Option<&str>, name: &str) -> Vec<String> {
    match query {
        Some(q) => {
            url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == name).map(|(_, v)| v.into_owned()).collect()
        }
        None => Vec::new(),
    }
}

fn reply(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn json_reply(status: u16, body: &Value) -> Response {
    reply(status, "application/json", body.to_string())
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    shared.count.fetch_add(1, Ordering::Relaxed);
    wait_at_gate(&shared).await;
    let latency = shared.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let response = route(&shared, &parts, &body);
    let text = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let seen = SeenRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        range: text(header::RANGE),
        authorization: text(header::AUTHORIZATION),
        status: response.status().as_u16(),
    };
    let mut log = lock(&shared.log);
    if log.len() >= LOG_CAP {
        log.pop_front();
    }
    log.push_back(seen);
    response
}

/// Waits while the server is held ([`SourceServer::hold`]), counted in [`SourceServer::held`]
/// (also when the client goes away meanwhile).
async fn wait_at_gate(shared: &Shared) {
    struct Waiting<'a>(&'a AtomicU64);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let mut gate = shared.gate.subscribe();
    if !*gate.borrow_and_update() {
        return;
    }
    if shared.allowance.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return;
    }
    shared.held.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting(&shared.held);
    // The sender lives in `shared`, which outlives this request: an error cannot happen.
    let _ = gate.wait_for(|held| !*held).await;
}

fn route(shared: &Shared, parts: &Parts, body: &[u8]) -> Response {
    let path = parts.uri.path();
    let query = parts.uri.query();
    // Injected failures first.
    let failure = {
        let mut failures = lock(&shared.failures);
        let at = failures.iter().position(|f| f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p)));
        at.and_then(|i| failures.remove(i))
    };
    if let Some(f) = failure {
        let mut r = json_reply(
            f.status,
            &json!({"error": {"type": "INJECTED_FAILURE", "message": format!("injected failure (HTTP {})", f.status)}}),
        );
        if let Some(retry) = &f.retry_after {
            set_header(&mut r, "retry-after", retry);
        }
        return r;
    }
    let airtable = path.starts_with("/v0/");
    if let Some(token) = lock(&shared.token).clone() {
        let given = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {token}").as_str()) {
            return if airtable {
                json_reply(
                    401,
                    &json!({"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}),
                )
            } else {
                json_reply(401, &json!({"error": {"message": "missing or invalid bearer token"}}))
            };
        }
    }
    if airtable {
        return shared.airtable_api(parts, body);
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return json_reply(405, &json!({"error": {"message": "method not allowed"}}));
    }
    let range = parts.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match path {
        "/rest/page" | "/rest/offset" | "/rest/cursor" | "/rest/link" | "/rest/all" => shared.rest(parts, path, query),
        "/files/data.csv" => shared.csv(range),
        "/files/norange.csv" => shared.csv(None),
        _ => {
            let file = lock(&shared.files).get(path).cloned();
            match file {
                Some((bytes, honour)) => serve_bytes(&bytes, if honour { range } else { None }),
                None => json_reply(404, &json!({"error": {"message": format!("no such path {path}")}})),
            }
        }
    }
}

/// Parses `bytes=a-b` / `bytes=a-` / `bytes=-n` against a file of `total` bytes:
/// `Some(Ok(range))`, `Some(Err(()))` when unsatisfiable, `None` when absent or not understood.
fn byte_range(range: Option<&str>, total: u64) -> Option<Result<Range<u64>, ()>> {
    let spec = range?.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.saturating_sub(n), total)
        }
        (a, "") => (a.parse().ok()?, total),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, (b + 1).min(total))
        }
    };
    if start >= total {
        return Some(Err(()));
    }
    Some(Ok(start..end))
}

fn serve_bytes(bytes: &Bytes, range: Option<&str>) -> Response {
    let total = bytes.len() as u64;
    match byte_range(range, total) {
        None => reply(200, "text/csv", bytes.clone()),
        Some(Err(())) => {
            let mut r = reply(416, "text/plain", "range not satisfiable");
            set_header(&mut r, "content-range", &format!("bytes */{total}"));
            r
        }
        Some(Ok(r)) => {
            let slice = bytes.slice(r.start as usize..r.end as usize);
            partial(slice, r, total)
        }
    }
}

fn partial(body: impl Into<Body>, range: Range<u64>, total: u64) -> Response {
    let mut r = reply(206, "text/csv", body);
    set_header(&mut r, "content-range", &format!("bytes {}-{}/{total}", range.start, range.end.saturating_sub(1)));
    set_header(&mut r, "accept-ranges", "bytes");
    r
}

/// Record indices listed (see the module doc), and the total.
enum Listing {
    /// `0..n`.
    All(usize),
    Indices(Arc<Vec<u32>>),
}

impl Listing {
    fn len(&self) -> usize {
        match self {
            Listing::All(n) => *n,
            Listing::Indices(v) => v.len(),
        }
    }

    fn get(&self, position: usize) -> usize {
        match self {
            Listing::All(_) => position,
            Listing::Indices(v) => v[position] as usize,
        }
    }
}

fn parse_since(value: &str) -> Option<i64> {
    value.trim().parse::<i64>().ok().or_else(|| parse_rfc3339(value.trim()))
}

impl Shared {
    fn listing(&self, since: Option<i64>) -> Listing {
        let state = self.dataset.state();
        if since.is_none() && state.deleted == 0 {
            return Listing::All(state.count);
        }
        let mut cache = lock(&self.listing);
        if let Some((generation, cached_since, list)) = cache.as_ref()
            && *generation == state.generation
            && *cached_since == since
        {
            return Listing::Indices(list.clone());
        }
        let list: Vec<u32> = (0..state.count)
            .filter(|&i| {
                let meta = state.meta(i);
                match since {
                    Some(s) => meta.updated_ms > s,
                    None => !meta.deleted,
                }
            })
            .map(|i| i as u32)
            .collect();
        let list = Arc::new(list);
        *cache = Some((state.generation, since, list.clone()));
        Listing::Indices(list)
    }

    /// `[rec,rec,…]` of listing positions `range`.
    fn records_array(&self, listing: &Listing, range: Range<usize>) -> String {
        let state = self.dataset.state();
        let mut out = String::with_capacity(range.len() * (self.dataset.inner.record_bytes + 8) + 2);
        out.push('[');
        for (n, position) in range.enumerate() {
            if n > 0 {
                out.push(',');
            }
            let i = listing.get(position);
            self.dataset.write_record(i, state.meta(i), &mut out);
        }
        out.push(']');
        out
    }

    fn rest(&self, parts: &Parts, path: &str, query: Option<&str>) -> Response {
        let num = |name: &str| query_param(query, name).and_then(|v| v.trim().parse::<usize>().ok());
        let since_raw = query_param(query, "updated_since");
        let since = match since_raw.as_deref().map(parse_since) {
            Some(None) => return json_reply(400, &json!({"error": {"message": "updated_since is not a timestamp"}})),
            Some(Some(s)) => Some(s),
            None => None,
        };
        let listing = self.listing(since);
        let total = listing.len();
        let slice = |from: usize, n: usize| from.min(total)..(from.saturating_add(n)).min(total);
        match path {
            "/rest/page" => {
                let per_page = num("per_page").unwrap_or(100).clamp(1, MAX_PAGE);
                let page = num("page").unwrap_or(1).max(1);
                let data = self.records_array(&listing, slice((page - 1) * per_page, per_page));
                let meta = json!({"page": page, "per_page": per_page, "total": total});
                reply(200, "application/json", format!(r#"{{"data":{data},"meta":{meta}}}"#))
            }
            "/rest/offset" => {
                let limit = num("limit").unwrap_or(100).clamp(1, MAX_PAGE);
                let offset = num("offset").unwrap_or(0);
                let data = self.records_array(&listing, slice(offset, limit));
                let meta = json!({"offset": offset, "limit": limit, "total": total});
                reply(200, "application/json", format!(r#"{{"data":{data},"meta":{meta}}}"#))
            }
            "/rest/cursor" => {
                let limit = num("limit").unwrap_or(100).clamp(1, MAX_PAGE);
                let from = match query_param(query, "cursor").filter(|c| !c.is_empty()) {
                    None => 0,
                    Some(c) => match decode_cursor(&c) {
                        Some(from) => from,
                        None => return json_reply(400, &json!({"error": {"message": "invalid cursor"}})),
                    },
                };
                let range = slice(from, limit);
                let end = range.end;
                let data = self.records_array(&listing, range);
                let next = if end < total { Value::String(encode_cursor(end)) } else { Value::Null };
                let meta = json!({"next_cursor": next, "total": total});
                reply(200, "application/json", format!(r#"{{"data":{data},"meta":{meta}}}"#))
            }
            "/rest/link" => {
                let per_page = num("per_page").unwrap_or(100).clamp(1, MAX_PAGE);
                let page = num("page").unwrap_or(1).max(1);
                let data = self.records_array(&listing, slice((page - 1) * per_page, per_page));
                let mut r = reply(200, "application/json", data);
                let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
                let link = |p: usize| {
                    let mut params = vec![("page", p.to_string()), ("per_page", per_page.to_string())];
                    if let Some(s) = &since_raw {
                        params.push(("updated_since", s.clone()));
                    }
                    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
                    format!("http://{host}/rest/link?{q}")
                };
                let last = total.div_ceil(per_page).max(1);
                let mut links = Vec::new();
                if page * per_page < total {
                    links.push(format!("<{}>; rel=\"next\"", link(page + 1)));
                }
                links.push(format!("<{}>; rel=\"last\"", link(last)));
                set_header(&mut r, "link", &links.join(", "));
                set_header(&mut r, "x-total-count", &total.to_string());
                r
            }
            _ => {
                let data = self.records_array(&listing, 0..total);
                reply(200, "application/json", format!(r#"{{"data":{data}}}"#))
            }
        }
    }

    fn csv_file(&self) -> Arc<CsvFile> {
        let generation = self.dataset.generation();
        let mut cache = lock(&self.csv);
        if let Some(csv) = cache.as_ref()
            && csv.generation == generation
        {
            return csv.clone();
        }
        let csv = Arc::new(CsvFile::build(&self.dataset));
        *cache = Some(csv.clone());
        csv
    }

    fn csv(&self, range: Option<&str>) -> Response {
        let csv = self.csv_file();
        match byte_range(range, csv.total) {
            None => reply(200, "text/csv", csv.range(&self.dataset, 0, csv.total)),
            Some(Err(())) => {
                let mut r = reply(416, "text/plain", "range not satisfiable");
                set_header(&mut r, "content-range", &format!("bytes */{}", csv.total));
                r
            }
            Some(Ok(r)) => partial(csv.range(&self.dataset, r.start, r.end), r, csv.total),
        }
    }
}

fn encode_cursor(position: usize) -> String {
    format!("cur_{:x}", (position as u64) ^ 0x5A5A_5A5A)
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let hex = cursor.strip_prefix("cur_")?;
    usize::try_from(u64::from_str_radix(hex, 16).ok()? ^ 0x5A5A_5A5A).ok()
}

/// The CSV rendering of the dataset at one generation: where each row starts.
struct CsvFile {
    generation: u64,
    state: DataState,
    /// Record index of each row.
    rows: Vec<u32>,
    /// Byte offset of each row (the header is `0..starts[0]`).
    starts: Vec<u64>,
    total: u64,
}

impl CsvFile {
    fn build(dataset: &Dataset) -> CsvFile {
        let state = dataset.state().clone();
        let header_len = CSV_HEADER.len() as u64 + 2;
        let mut rows = Vec::with_capacity(state.count);
        let mut starts = Vec::with_capacity(state.count);
        let mut at = header_len;
        let mut buf = String::new();
        for i in 0..state.count {
            let meta = state.meta(i);
            if meta.deleted {
                continue;
            }
            buf.clear();
            dataset.write_csv_row(i, meta, &mut buf);
            rows.push(i as u32);
            starts.push(at);
            at += buf.len() as u64;
        }
        CsvFile { generation: state.generation, state, rows, starts, total: at }
    }

    /// Bytes `start..end` of the file, rendering only the rows that overlap.
    fn range(&self, dataset: &Dataset, start: u64, end: u64) -> Vec<u8> {
        let mut out = String::new();
        let mut base = 0u64;
        let first = if start < self.starts.first().copied().unwrap_or(self.total) {
            out.push_str(CSV_HEADER);
            out.push_str("\r\n");
            0
        } else {
            let k = self.starts.partition_point(|&s| s <= start) - 1;
            base = self.starts[k];
            k
        };
        for k in first..self.rows.len() {
            if base + out.len() as u64 >= end {
                break;
            }
            let i = self.rows[k] as usize;
            dataset.write_csv_row(i, self.state.meta(i), &mut out);
        }
        let bytes = out.into_bytes();
        let from = (start - base) as usize;
        let to = ((end - base) as usize).min(bytes.len());
        bytes[from.min(to)..to].to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Airtable emulation

#[derive(Default)]
struct AirtableState {
    tables: HashMap<(String, String), Vec<AtRecord>>,
    epoch: u64,
    clock_ms: i64,
    next_id: u64,
}

#[derive(Clone)]
struct AtRecord {
    id: String,
    created_ms: i64,
    modified_ms: i64,
    fields: Map<String, Value>,
}

impl AtRecord {
    fn to_json(&self) -> Value {
        let mut fields = self.fields.clone();
        fields.insert(AIRTABLE_MODIFIED.to_owned(), Value::String(rfc3339(self.modified_ms)));
        json!({"id": self.id, "createdTime": rfc3339(self.created_ms), "fields": fields})
    }

    /// A field's value for filtering and sorting (the computed field as RFC 3339).
    fn field(&self, name: &str) -> Value {
        if name == AIRTABLE_MODIFIED {
            return Value::String(rfc3339(self.modified_ms));
        }
        self.fields.get(name).cloned().unwrap_or(Value::Null)
    }
}

fn at_error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    json_reply(status, &json!({"error": {"type": kind, "message": message.into()}}))
}

/// An Airtable error answer not yet turned into a response.
struct AtError {
    status: u16,
    kind: &'static str,
    message: String,
}

impl AtError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> AtError {
        AtError { status, kind, message: message.into() }
    }

    fn response(self) -> Response {
        at_error(self.status, self.kind, self.message)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks fields a write sets: known names, `Status` among the choices, nothing computed.
fn check_fields(fields: &Map<String, Value>) -> Result<(), AtError> {
    for (name, value) in fields {
        match name.as_str() {
            "Name" | "Notes" | "Count" => {}
            "Status" => {
                let ok = value.is_null() || value.as_str().is_some_and(|s| AIRTABLE_STATUSES.contains(&s));
                if !ok {
                    return Err(AtError::new(
                        422,
                        "INVALID_VALUE_FOR_COLUMN",
                        format!("Field \"Status\" cannot accept the provided value: {value}"),
                    ));
                }
            }
            AIRTABLE_MODIFIED => {
                return Err(AtError::new(
                    422,
                    "INVALID_VALUE_FOR_COLUMN",
                    format!("Field \"{AIRTABLE_MODIFIED}\" cannot accept a value because the field is computed"),
                ));
            }
            other => return Err(AtError::new(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{other}\""))),
        }
    }
    Ok(())
}

/// `IS_AFTER({Field}, 'value')` → (field, value).
fn parse_is_after(formula: &str) -> Option<(String, String)> {
    let inner = formula.trim().strip_prefix("IS_AFTER(")?.strip_suffix(')')?;
    let (field, value) = inner.split_once(',')?;
    let field = field.trim().strip_prefix('{')?.strip_suffix('}')?;
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field.to_owned(), value.replace("\\'", "'")))
}

impl Shared {
    fn airtable_api(&self, parts: &Parts, body: &[u8]) -> Response {
        let segments: Vec<String> =
            parts.uri.path().trim_start_matches("/v0/").split('/').map(percent_decode).collect();
        let (base, table, record) = match segments.as_slice() {
            [base, table] => (base.clone(), table.clone(), None),
            [base, table, record] => (base.clone(), table.clone(), Some(record.clone())),
            _ => return at_error(404, "NOT_FOUND", "Could not find what you are looking for"),
        };
        let mut state = lock(&self.airtable);
        let key = (base.clone(), table.clone());
        if !state.tables.contains_key(&key) {
            return at_error(
                403,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.",
            );
        }
        let query = parts.uri.query();
        match (&parts.method, record) {
            (&Method::GET, None) => state.list(&key, query),
            (&Method::GET, Some(id)) => match state.tables[&key].iter().find(|r| r.id == id) {
                Some(r) => json_reply(200, &r.to_json()),
                None => at_error(404, "NOT_FOUND", format!("Could not find a record with ID {id}")),
            },
            (&Method::POST, None) => state.create(&key, body),
            (&Method::PATCH, None) => state.update(&key, body, false),
            (&Method::PUT, None) => state.update(&key, body, true),
            (&Method::DELETE, None) => state.delete(&key, query_params(query, "records[]")),
            (&Method::DELETE, Some(id)) => state.delete(&key, vec![id]),
            _ => at_error(404, "NOT_FOUND", "Could not find what you are looking for"),
        }
    }
}

impl AirtableState {
    fn list(&self, key: &(String, String), query: Option<&str>) -> Response {
        let page_size = match query_param(query, "pageSize").map(|p| p.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=100).contains(&n) => n,
            Some(_) => return at_error(422, "INVALID_REQUEST_UNKNOWN", "pageSize must be an integer from 1 to 100"),
        };
        let mut records: Vec<&AtRecord> = self.tables[key].iter().collect();
        if let Some(formula) = query_param(query, "filterByFormula") {
            let Some((field, value)) = parse_is_after(&formula) else {
                return at_error(
                    422,
                    "INVALID_FILTER_BY_FORMULA",
                    format!("The formula for filtering records is invalid: {formula}"),
                );
            };
            let Some(after) = parse_rfc3339(&value) else {
                return at_error(422, "INVALID_FILTER_BY_FORMULA", format!("Invalid date in formula: {value}"));
            };
            records.retain(|r| r.field(&field).as_str().and_then(parse_rfc3339).is_some_and(|t| t > after));
        }
        if let Some(field) = query_param(query, "sort[0][field]") {
            let descending = query_param(query, "sort[0][direction]").as_deref() == Some("desc");
            records.sort_by(|a, b| {
                let (x, y) = (a.field(&field), b.field(&field));
                let order = match (x.as_str().and_then(parse_rfc3339), y.as_str().and_then(parse_rfc3339)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => x.to_string().cmp(&y.to_string()),
                };
                if descending { order.reverse() } else { order }
            });
        }
        let from = match query_param(query, "offset") {
            None => 0,
            Some(offset) => {
                let parsed = offset
                    .strip_prefix("itr")
                    .and_then(|o| o.split_once('/'))
                    .and_then(|(epoch, pos)| Some((u64::from_str_radix(epoch, 16).ok()?, pos.parse::<usize>().ok()?)));
                match parsed {
                    Some((epoch, pos)) if epoch == self.epoch => pos,
                    Some(_) => {
                        return at_error(
                            422,
                            "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                            "The offset is no longer valid; restart the listing from the beginning",
                        );
                    }
                    None => {
                        return at_error(
                            422,
                            "INVALID_OFFSET_VALUE",
                            format!("The value of offset {offset} is invalid"),
                        );
                    }
                }
            }
        };
        let end = (from + page_size).min(records.len());
        let page: Vec<Value> = records[from.min(end)..end].iter().map(|r| r.to_json()).collect();
        let mut body = json!({"records": page});
        if end < records.len() {
            body["offset"] = Value::String(format!("itr{:x}/{end}", self.epoch));
        }
        json_reply(200, &body)
    }

    /// The request's `records` array (at most 10), or the error answer.
    fn records_of(body: &[u8], action: &str) -> Result<Vec<Value>, AtError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| AtError::new(422, "INVALID_REQUEST_BODY", "Could not parse request body"))?;
        let records = match value.get("records") {
            Some(Value::Array(records)) => records.clone(),
            _ if value.get("fields").is_some() => vec![value.clone()],
            _ => {
                return Err(AtError::new(
                    422,
                    "INVALID_REQUEST_MISSING_FIELDS",
                    "Could not find field \"records\" in the request body",
                ));
            }
        };
        if records.is_empty() || records.len() > 10 {
            return Err(AtError::new(
                422,
                "INVALID_RECORDS",
                format!("You must provide an array of up to 10 record objects to {action}, got {}", records.len()),
            ));
        }
        Ok(records)
    }

    fn create(&mut self, key: &(String, String), body: &[u8]) -> Response {
        let records = match Self::records_of(body, "create") {
            Ok(r) => r,
            Err(e) => return e.response(),
        };
        let mut new = Vec::new();
        for r in &records {
            let fields = r.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
            if let Err(e) = check_fields(&fields) {
                return e.response();
            }
            new.push(fields);
        }
        let mut out = Vec::new();
        for fields in new {
            self.clock_ms = self.clock_ms.max(BASE_MS) + 1000;
            self.next_id += 1;
            let record = AtRecord {
                id: format!("rec{:014}", 90_000_000_000_000 + self.next_id),
                created_ms: self.clock_ms,
                modified_ms: self.clock_ms,
                fields,
            };
            out.push(record.to_json());
            if let Some(table) = self.tables.get_mut(key) {
                table.push(record);
            }
        }
        json_reply(200, &json!({"records": out}))
    }

    fn update(&mut self, key: &(String, String), body: &[u8], replace: bool) -> Response {
        let records = match Self::records_of(body, "update") {
            Ok(r) => r,
            Err(e) => return e.response(),
        };
        let mut changes = Vec::new();
        for r in &records {
            let Some(id) = r.get("id").and_then(Value::as_str) else {
                return at_error(422, "INVALID_RECORDS", "Each record to update needs an id");
            };
            if !self.tables[key].iter().any(|x| x.id == id) {
                return at_error(404, "NOT_FOUND", format!("Could not find a record with ID {id}"));
            }
            let fields = r.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
            if let Err(e) = check_fields(&fields) {
                return e.response();
            }
            changes.push((id.to_owned(), fields));
        }
        let mut out = Vec::new();
        for (id, fields) in changes {
            self.clock_ms = self.clock_ms.max(BASE_MS) + 1000;
            let now = self.clock_ms;
            if let Some(record) = self.tables.get_mut(key).and_then(|t| t.iter_mut().find(|x| x.id == id)) {
                if replace {
                    record.fields = fields;
                } else {
                    record.fields.extend(fields);
                }
                record.modified_ms = now;
                out.push(record.to_json());
            }
        }
        json_reply(200, &json!({"records": out}))
    }

    fn delete(&mut self, key: &(String, String), ids: Vec<String>) -> Response {
        if ids.is_empty() || ids.len() > 10 {
            return at_error(
                422,
                "INVALID_RECORDS",
                format!("You must provide an array of up to 10 record ids to delete, got {}", ids.len()),
            );
        }
        for id in &ids {
            if !self.tables[key].iter().any(|x| &x.id == id) {
                return at_error(404, "NOT_FOUND", format!("Could not find a record with ID {id}"));
            }
        }
        if let Some(table) = self.tables.get_mut(key) {
            table.retain(|r| !ids.contains(&r.id));
        }
        let out: Vec<Value> = ids.iter().map(|id| json!({"id": id, "deleted": true})).collect();
        json_reply(200, &json!({"records": out}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_and_sized() {
        let a = Dataset::new(100, 1024, 7);
        let b = Dataset::new(100, 1024, 7);
        for i in [0, 3, 7, 9, 99] {
            assert_eq!(a.record_json(i), b.record_json(i));
            let len = a.record_json(i).len();
            assert!((1000..=1050).contains(&len), "{i}: {len}");
            assert_eq!(a.record(i)["id"], Dataset::id(i));
        }
        assert_ne!(a.record_json(1), Dataset::new(100, 1024, 8).record_json(1));
        assert!(a.record(3)["name"].as_str().unwrap_or_default().contains(", \""));
        assert!(a.record(7)["name"].as_str().unwrap_or_default().contains('\n'));
    }

    #[test]
    fn mutations_show_in_expected() {
        let d = Dataset::new(10, 200, 1);
        d.update(2);
        d.delete(5);
        let added = d.insert_more(2);
        assert_eq!(added, 10..12);
        let ids: Vec<String> = d.expected().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 11);
        assert!(!ids.contains(&Dataset::id(5)));
        assert_eq!(d.record(2)["version"], 2);
        assert!(d.record(5)["deleted"].as_bool().unwrap_or(false));
        assert!(d.updated_ms(11) > d.updated_ms(2));
    }

    #[test]
    fn csv_ranges_match_the_whole_file() {
        let d = Dataset::new(50, 120, 3);
        d.delete(4);
        let csv = CsvFile::build(&d);
        let whole = csv.range(&d, 0, csv.total);
        assert_eq!(whole.len() as u64, csv.total);
        assert!(whole.starts_with(b"id,name,version,updated_at,padding\r\n"));
        for (a, b) in [(0, 10), (5, 400), (37, 38), (csv.total - 5, csv.total), (100, 1000)] {
            assert_eq!(csv.range(&d, a, b), whole[a as usize..b as usize], "{a}..{b}");
        }
        assert_eq!(byte_range(Some("bytes=10-19"), 100), Some(Ok(10..20)));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Some(Ok(90..100)));
        assert_eq!(byte_range(Some("bytes=-5"), 100), Some(Ok(95..100)));
        assert_eq!(byte_range(Some("bytes=100-200"), 100), Some(Err(())));
        assert_eq!(byte_range(Some("items=1-2"), 100), None);
    }

    #[test]
    fn cursors_and_formulas() {
        assert_eq!(decode_cursor(&encode_cursor(1234)), Some(1234));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(
            parse_is_after("IS_AFTER({Last Modified}, '2024-01-01T00:00:00.000Z')"),
            Some(("Last Modified".to_owned(), "2024-01-01T00:00:00.000Z".to_owned()))
        );
        assert_eq!(percent_decode("My%20Table"), "My Table");
    }
}
