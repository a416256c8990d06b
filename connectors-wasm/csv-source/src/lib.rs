//! Data-sync source reading one CSV file over HTTP(S), streamed in byte ranges.
//!
//! # Configuration
//!
//! | key           | kind   | default | meaning                                                             |
//! |---------------|--------|---------|---------------------------------------------------------------------|
//! | `url`         | config | —       | the file's URL (required); allowed hosts: `{{config.url}}`          |
//! | `entity`      | config | `rows`  | the one entity's name                                               |
//! | `primary_key` | config | `id`    | key column(s), comma-separated; compound keys are joined with `/`   |
//! | `delimiter`   | config | `,`     | one ASCII character; `tab` or `\t` for tab-separated files          |
//! | `token`       | secret | —       | optional, sent as `authorization: Bearer {{secret:token}}`          |
//!
//! # Reading
//!
//! The file is never downloaded whole per batch. Each `read-batch` asks for
//! `Range: bytes=<o>-<o+chunk-1>`, where `o` is the offset of the next unread row and `chunk` is
//! about `limit` × the average row size seen so far (at least 64 KiB, at most 8 MiB; when not even
//! one complete row fits, the chunk grows and the request is repeated). Only complete rows are
//! parsed (RFC 4180: quoted fields, `""` escapes, delimiters and newlines inside quotes, CRLF or
//! LF, an optional UTF-8 BOM), at most `limit` of them, and the next offset is set just past the
//! last row consumed. A `206` answer's `Content-Range` gives the file size, hence the end; `416`
//! means the offset is past the end (done). A server that ignores `Range` and answers `200` with
//! the whole file works too — the rows are sliced from the offset — but then every batch
//! downloads the whole file (and the file must fit the host's 16 MiB response cap).
//!
//! The first row is the header. Each record's `data` is a JSON object column → string (with
//! duplicate column names, the last column wins); its id is the key column(s)' value. Blank lines
//! are skipped. `total` is not reported (a CSV file has no row count short of reading it all).
//! The connector is read-only (`write-batch` is a permanent `read_only` error) and has no
//! incremental mode (an incremental read reads everything).
//!
//! # Cursor
//!
//! `{"o": <byte offset of the next unread row>, "h": [header columns], "n": <number of the next
//! record, counting from 1 after the header>, "l": <its line number>, "r": <average row bytes>}`.
//! The header is read once, on the first batch, and travels in the cursor; `n` and `l` only serve
//! error messages and `r` the chunk size, so a cursor with just `o` and `h` works too. The same
//! cursor and limit read the same rows again, as long as the file does not change.
//!
//! # Errors
//!
//! 429 → rate-limited (`Retry-After` seconds or HTTP-date, else 30 s); 401 → unauthorized;
//! 408/5xx, timeouts and connection failures → retryable; other statuses → permanent. Item
//! errors (the batch goes on): a row with a different number of fields than the header (named by
//! record number, line and byte offset), a row that is not UTF-8, an empty key. An unknown entity,
//! a key column missing from the header, an unterminated quoted field running into the end of
//! the file (item error) or a single row longer than 8 MiB (permanent) are reported as such.

mod parse;

use std::io::Write as _;

use parse::Next;
use patchbay_sdk::data_sync::{
    Batch, DataSync, Entity, ItemError, ReadRequest, SourceRecord, WriteRequest, WriteResult,
};
use patchbay_sdk::http::{Request, Response};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, debug, secrets};
use serde::{Deserialize, Serialize};
use sync_support::errors;

/// Smallest range requested per batch.
const MIN_CHUNK: u64 = 64 * 1024;
/// Largest range requested per batch (well inside the host's 16 MiB response cap).
const MAX_CHUNK: u64 = 8 * 1024 * 1024;
/// Row size assumed before any row was seen.
const DEFAULT_ROW_BYTES: u64 = 256;
/// The optional bearer-token secret.
const TOKEN: &str = "token";
/// Per-request timeout.
const TIMEOUT_MS: u32 = 60_000;

struct CsvSource;

/// The installation's configuration.
struct Settings {
    url: String,
    entity: String,
    primary_key: Vec<String>,
    delimiter: u8,
}

impl Settings {
    fn load() -> Result<Settings, ConnectorError> {
        Settings::from_lookup(config::get)
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConnectorError> {
        let non_empty = |key: &str| get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let url = non_empty("url")
            .ok_or_else(|| ConnectorError::permanent("missing_config", "configuration value `url` is not set"))?;
        if sync_support::url::origin(&url).is_none() {
            return Err(ConnectorError::permanent("invalid_config", "`url` must be an absolute http(s) URL"));
        }
        let entity = non_empty("entity").unwrap_or_else(|| "rows".to_owned());
        let primary_key: Vec<String> = non_empty("primary_key")
            .unwrap_or_else(|| "id".to_owned())
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        let primary_key = if primary_key.is_empty() { vec!["id".to_owned()] } else { primary_key };
        // Not trimmed: a space or tab may be the delimiter.
        let delimiter = match get("delimiter").as_deref() {
            None | Some("") => b',',
            Some("tab" | "\\t" | "\t") => b'\t',
            Some(d) if d.len() == 1 && d.is_ascii() && !matches!(d, "\"" | "\r" | "\n") => d.as_bytes()[0],
            Some(_) => {
                return Err(ConnectorError::permanent(
                    "invalid_config",
                    "`delimiter` must be one ASCII character other than a quote or newline (or `tab`)",
                ));
            }
        };
        Ok(Settings { url, entity, primary_key, delimiter })
    }
}

/// The cursor (see the crate doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    o: u64,
    h: Vec<String>,
    #[serde(default = "one")]
    n: u64,
    #[serde(default = "one")]
    l: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<u64>,
}

fn one() -> u64 {
    1
}

impl Lifecycle for CsvSource {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        let settings = match Settings::load() {
            Ok(s) => s,
            Err(e) => return Ok(HealthReport::unhealthy(e.message())),
        };
        let response = probe(&settings)?;
        Ok(match response.status {
            200 | 206 | 416 => HealthReport::healthy(),
            status => HealthReport::unhealthy(format!("the file answered HTTP {status}")),
        })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        let settings = match Settings::load() {
            Ok(s) => s,
            Err(e) => return Ok(CredentialCheck::invalid(e.message())),
        };
        let response = probe(&settings)?;
        Ok(match response.status {
            401 | 403 => CredentialCheck::invalid(format!("the server refused access (HTTP {})", response.status)),
            200 | 206 | 416 => CredentialCheck::valid(),
            _ => return Err(errors::status_error(&response)),
        })
    }
}

impl DataSync for CsvSource {
    fn list_entities() -> Result<Vec<Entity>, ConnectorError> {
        let settings = Settings::load()?;
        Ok(vec![Entity {
            name: settings.entity.clone(),
            label: None,
            primary_key: settings.primary_key.clone(),
            cursor_field: None,
            supports_incremental: false,
            supports_write: false,
            json_schema: None,
        }])
    }

    fn read_batch(req: ReadRequest) -> Result<Batch, ConnectorError> {
        let settings = Settings::load()?;
        if req.entity != settings.entity {
            return Err(ConnectorError::permanent(
                "unknown_entity",
                format!("unknown entity `{}`; this installation reads `{}`", req.entity, settings.entity),
            ));
        }
        let cursor = match req.cursor.as_deref() {
            None => None,
            Some(c) if c.trim().is_empty() => None,
            Some(c) => Some(sync_support::cursor::decode::<Cursor>(c)?),
        };
        read(&settings, cursor, req.limit.max(1), &fetch)
    }

    fn write_batch(_req: WriteRequest) -> Result<Vec<WriteResult>, ConnectorError> {
        Err(ConnectorError::permanent("read_only", "csv-source is read-only: write-batch is not supported"))
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_data_sync!(CsvSource);

/// A `bytes=0-0` request: cheap, and answers like a real read would.
fn probe(settings: &Settings) -> Result<Response, ConnectorError> {
    errors::send(&request(&settings.url, 0, 1))
}

fn request(url: &str, offset: u64, len: u64) -> Request {
    let mut request = Request::get(url)
        .header("range", format!("bytes={offset}-{}", offset + len - 1))
        .header("accept", "text/csv, */*")
        .timeout_ms(TIMEOUT_MS);
    if secrets::has(TOKEN) {
        request = request.bearer(TOKEN);
    }
    request
}

/// Bytes of the file from the requested offset on.
#[derive(Debug, Default)]
struct Chunk {
    body: Vec<u8>,
    /// The body runs to the end of the file.
    eof: bool,
}

/// Fetches `len` bytes at `offset`.
fn fetch(url: &str, offset: u64, len: u64) -> Result<Chunk, ConnectorError> {
    let response = errors::send(&request(url, offset, len))?;
    chunk_from(response, offset, len)
}

/// Interprets the answer to a range request (see the crate doc).
fn chunk_from(response: Response, offset: u64, len: u64) -> Result<Chunk, ConnectorError> {
    match response.status {
        206 => {
            let range = response.header("content-range").and_then(parse_content_range);
            let body_len = response.body.len() as u64;
            let eof = match range {
                Some((start, _, _)) if start != offset => {
                    return Err(ConnectorError::permanent(
                        "invalid_response",
                        format!("asked for bytes from {offset}, the server answered a range from {start}"),
                    ));
                }
                Some((_, end, Some(total))) => end + 1 >= total,
                // No usable size: a short answer means the file ended.
                _ => body_len < len,
            };
            Ok(Chunk { body: response.body, eof })
        }
        416 => Ok(Chunk { body: Vec::new(), eof: true }),
        200 => {
            debug!("the server ignores Range requests; the whole file was downloaded"; bytes = response.body.len());
            let mut body = response.body;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(body.len());
            body.drain(..start);
            Ok(Chunk { body, eof: true })
        }
        _ if response.is_success() => Err(ConnectorError::permanent(
            "invalid_response",
            format!("unexpected HTTP {} for a range request", response.status),
        )),
        _ => Err(errors::status_error(&response)),
    }
}

/// `bytes <start>-<end>/<total|*>` → (start, end, total).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

/// The size of the range to ask for.
fn chunk_size(limit: u32, avg_row: Option<u64>) -> u64 {
    let row = avg_row.unwrap_or(DEFAULT_ROW_BYTES).max(1);
    // A quarter more than the average, so rows a little longer than usual still fit.
    (u64::from(limit).saturating_mul(row).saturating_mul(5) / 4).clamp(MIN_CHUNK, MAX_CHUNK)
}

/// One batch: at most `limit` rows from the cursor's offset.
fn read(
    settings: &Settings,
    cursor: Option<Cursor>,
    limit: u32,
    fetch: &dyn Fn(&str, u64, u64) -> Result<Chunk, ConnectorError>,
) -> Result<Batch, ConnectorError> {
    let cursor = cursor.unwrap_or(Cursor { n: 1, l: 1, ..Cursor::default() });
    let need_header = cursor.h.is_empty();
    let mut size = chunk_size(limit, cursor.r);
    loop {
        let chunk = fetch(&settings.url, cursor.o, size)?;
        match parse_chunk(settings, &cursor, need_header, &chunk, limit)? {
            Some(batch) => return Ok(batch),
            None if size >= MAX_CHUNK => {
                return Err(ConnectorError::permanent(
                    "row_too_large",
                    format!("the row at byte offset {} does not fit in {MAX_CHUNK} bytes", cursor.o),
                ));
            }
            None => size = (size * 4).min(MAX_CHUNK),
        }
    }
}

/// Parses the rows of one chunk into a batch; `None` when not even one complete row (or the
/// header) fits and a larger chunk is needed.
fn parse_chunk(
    settings: &Settings,
    cursor: &Cursor,
    need_header: bool,
    chunk: &Chunk,
    limit: u32,
) -> Result<Option<Batch>, ConnectorError> {
    let buf = &chunk.body;
    let delimiter = settings.delimiter;
    let mut at = 0;
    let mut header = cursor.h.clone();
    let mut line = cursor.l;
    if need_header {
        if cursor.o == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
            at = 3;
        }
        loop {
            match parse::next_record(buf, at, delimiter, chunk.eof) {
                Next::Incomplete => return Ok(None),
                Next::End => {
                    // An empty file (or only blank lines): nothing to read.
                    let next = Cursor { o: cursor.o + at as u64, ..cursor.clone() };
                    return Ok(Some(batch(Vec::new(), Vec::new(), &next, true)?));
                }
                Next::Broken { message, .. } => {
                    return Err(ConnectorError::permanent("invalid_csv", format!("the header row: {message}")));
                }
                Next::Record { fields, end } => {
                    line += count_lines(&buf[at..end]);
                    at = end;
                    if parse::is_blank(&fields) {
                        continue;
                    }
                    header = fields
                        .into_iter()
                        .map(|f| String::from_utf8(f).map(|s| s.trim().to_owned()))
                        .collect::<Result<_, _>>()
                        .map_err(|_| ConnectorError::permanent("invalid_csv", "the header row is not UTF-8"))?;
                    break;
                }
            }
        }
    }
    let key_columns: Vec<usize> = settings
        .primary_key
        .iter()
        .map(|k| {
            header.iter().position(|h| h == k).ok_or_else(|| {
                ConnectorError::permanent(
                    "invalid_config",
                    format!("primary key column `{k}` is not in the file's header ({})", header.join(", ")),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let columns = Columns::new(&header);

    let rows_start = at;
    let mut records = Vec::new();
    let mut item_errors = Vec::new();
    let mut number = cursor.n;
    let mut consumed = 0u32;
    let mut reached_end = false;
    while consumed < limit {
        match parse::next_record(buf, at, delimiter, chunk.eof) {
            Next::Incomplete => break,
            Next::End => {
                reached_end = true;
                break;
            }
            Next::Broken { message, end } => {
                item_errors.push(ItemError { id: None, message: where_(number, line, cursor.o + at as u64, &message) });
                number += 1;
                consumed += 1;
                line += count_lines(&buf[at..end]);
                at = end;
            }
            Next::Record { fields, end } => {
                let row_offset = cursor.o + at as u64;
                let row_line = line;
                line += count_lines(&buf[at..end]);
                at = end;
                if parse::is_blank(&fields) {
                    continue;
                }
                consumed += 1;
                match row(&columns, &key_columns, fields) {
                    Ok(record) => records.push(record),
                    Err(message) => item_errors
                        .push(ItemError { id: None, message: where_(number, row_line, row_offset, &message) }),
                }
                number += 1;
            }
        }
    }
    if consumed == 0 && !reached_end && !chunk.eof {
        return Ok(None);
    }
    let done = reached_end || (chunk.eof && parse::next_record(buf, at, delimiter, true) == Next::End);
    let rows_bytes = (at - rows_start) as u64;
    let avg = if consumed > 0 { Some((rows_bytes / u64::from(consumed)).max(1)) } else { cursor.r };
    let next = Cursor { o: cursor.o + at as u64, h: header, n: number, l: line, r: avg };
    Ok(Some(batch(records, item_errors, &next, done)?))
}

fn batch(
    records: Vec<SourceRecord>,
    errors: Vec<ItemError>,
    next: &Cursor,
    done: bool,
) -> Result<Batch, ConnectorError> {
    Ok(Batch { records, errors, next_cursor: Some(sync_support::cursor::encode(next)?), done, total: None })
}

fn where_(number: u64, line: u64, offset: u64, message: &str) -> String {
    format!("record {number} (line {line}, byte offset {offset}): {message}")
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The header, pre-encoded as JSON object keys; a column whose name repeats later is skipped so
/// the last one wins.
struct Columns {
    keys: Vec<Option<Vec<u8>>>,
}

impl Columns {
    fn new(header: &[String]) -> Columns {
        let keys = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if header[i + 1..].contains(name) {
                    return None;
                }
                let mut key = Vec::with_capacity(name.len() + 3);
                // Writing a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut key, name);
                key.push(b':');
                Some(key)
            })
            .collect();
        Columns { keys }
    }
}

/// One data row as a record, or why not.
fn row(columns: &Columns, key_columns: &[usize], fields: Vec<Vec<u8>>) -> Result<SourceRecord, String> {
    if fields.len() != columns.keys.len() {
        return Err(format!("expected {} fields, found {}", columns.keys.len(), fields.len()));
    }
    let values: Vec<String> = fields
        .into_iter()
        .enumerate()
        .map(|(i, f)| String::from_utf8(f).map_err(|_| format!("field {} is not valid UTF-8", i + 1)))
        .collect::<Result<_, _>>()?;
    let mut id = String::new();
    for (n, &k) in key_columns.iter().enumerate() {
        if values[k].is_empty() {
            return Err("the primary key is empty".to_owned());
        }
        if n > 0 {
            id.push('/');
        }
        id.push_str(&values[k]);
    }
    let size: usize = values.iter().map(|v| v.len() + 8).sum::<usize>() + columns.keys.len() * 16;
    let mut data = Vec::with_capacity(size);
    data.push(b'{');
    let mut first = true;
    for (key, value) in columns.keys.iter().zip(&values) {
        let Some(key) = key else { continue };
        if !first {
            data.push(b',');
        }
        first = false;
        data.extend_from_slice(key);
        let _ = serde_json::to_writer(&mut data, value);
    }
    let _ = data.write_all(b"}");
    // serde_json writes valid UTF-8.
    let data = String::from_utf8(data).map_err(|_| "internal: JSON is not UTF-8".to_owned())?;
    Ok(SourceRecord { id, data, deleted: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn settings(key: &str) -> Settings {
        Settings::from_lookup(|k| match k {
            "url" => Some("http://127.0.0.1:1/data.csv".to_owned()),
            "primary_key" => Some(key.to_owned()),
            _ => None,
        })
        .expect("valid")
    }

    /// Serves `file` like a Range-honouring server and records the requested ranges.
    fn server<'a>(
        file: &'a [u8],
        seen: &'a RefCell<Vec<(u64, u64)>>,
    ) -> impl Fn(&str, u64, u64) -> Result<Chunk, ConnectorError> + 'a {
        move |_, offset, len| {
            seen.borrow_mut().push((offset, len));
            let total = file.len() as u64;
            if offset >= total {
                return Ok(Chunk { body: vec![], eof: true });
            }
            let end = (offset + len).min(total);
            Ok(Chunk { body: file[offset as usize..end as usize].to_vec(), eof: end == total })
        }
    }

    fn read_all(file: &[u8], key: &str, limit: u32) -> (Vec<SourceRecord>, Vec<ItemError>, usize) {
        let seen = RefCell::new(Vec::new());
        let fetch = server(file, &seen);
        let s = settings(key);
        let (mut records, mut errors, mut cursor) = (Vec::new(), Vec::new(), None);
        for _ in 0..10_000 {
            let b = read(&s, cursor, limit, &fetch).expect("batch");
            assert!(b.records.len() + b.errors.len() <= limit as usize);
            records.extend(b.records);
            errors.extend(b.errors);
            if b.done {
                return (records, errors, seen.borrow().len());
            }
            cursor = Some(sync_support::cursor::decode(b.next_cursor.as_deref().expect("cursor")).expect("valid"));
        }
        panic!("never done");
    }

    #[test]
    fn reads_all_rows_in_batches_with_bom_quotes_and_errors() {
        let file = "\u{feff}id,name,n\r\n1,\"a, \"\"b\"\"\",x\r\n2,\"multi\nline\",y\r\n3,short\r\n\r\n4,d,z\r\n5,e,w";
        let (records, errors, _) = read_all(file.as_bytes(), "id", 2);
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "4", "5"]);
        assert_eq!(records[0].data, r#"{"id":"1","name":"a, \"b\"","n":"x"}"#);
        assert_eq!(records[1].data, r#"{"id":"2","name":"multi\nline","n":"y"}"#);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.starts_with("record 3 (line 5, byte offset "), "{}", errors[0].message);
        assert!(errors[0].message.ends_with("expected 3 fields, found 2"));
    }

    #[test]
    fn compound_keys_and_missing_key_columns() {
        let file = b"org,id,v\na,1,x\nb,,y\n";
        let (records, errors, _) = read_all(file, "org, id", 10);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "a/1");
        assert_eq!(errors.len(), 1);
        let seen = RefCell::new(Vec::new());
        let err = read(&settings("nope"), None, 10, &server(file, &seen)).expect_err("no such column");
        assert!(err.message().contains("`nope`"));
    }

    #[test]
    fn big_rows_grow_the_chunk_and_ranges_stay_bounded() {
        let mut file = b"id,pad\n".to_vec();
        let long = "x".repeat(200_000);
        file.extend_from_slice(format!("1,{long}\n").as_bytes());
        for i in 2..2000 {
            file.extend_from_slice(format!("{i},{}\n", "y".repeat(100)).as_bytes());
        }
        let (records, errors, requests) = read_all(&file, "id", 100);
        assert_eq!(records.len(), 1999);
        assert!(errors.is_empty());
        assert!(requests < 40, "{requests} requests");
    }

    #[test]
    fn empty_and_header_only_files() {
        for file in [&b""[..], b"id,name\n", b"id,name", b"\n\n"] {
            let (records, errors, _) = read_all(file, "id", 5);
            assert!(records.is_empty() && errors.is_empty());
        }
    }

    #[test]
    fn content_range_and_chunk_sizes() {
        assert_eq!(parse_content_range("bytes 0-99/1234"), Some((0, 99, Some(1234))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(chunk_size(10, None), MIN_CHUNK);
        assert_eq!(chunk_size(1000, Some(1000)), 1_250_000);
        assert_eq!(chunk_size(u32::MAX, Some(u64::MAX)), MAX_CHUNK);
    }

    #[test]
    fn delimiters() {
        let get = |d: &'static str| {
            move |k: &str| {
                if k == "url" {
                    Some("https://x.test/f.csv".to_owned())
                } else if k == "delimiter" {
                    Some(d.to_owned())
                } else {
                    None
                }
            }
        };
        assert_eq!(Settings::from_lookup(get("tab")).expect("ok").delimiter, b'\t');
        assert_eq!(Settings::from_lookup(get(";")).expect("ok").delimiter, b';');
        assert!(Settings::from_lookup(get("\"")).is_err());
        assert!(Settings::from_lookup(get(";;")).is_err());
    }
}
