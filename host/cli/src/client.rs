//! The CLI's client side: commands that drive a running host over its admin API.
//!
//! The host is `--url` / `PATCHBAY_URL` (default `http://127.0.0.1:8080`) and the token is
//! `--token` / `PATCHBAY_TOKEN`. Responses are printed as JSON (tables for listings); an API
//! error prints `error: <code>: <message>` and exits 1 (2 when a connector returned its own error).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

/// A logged-in API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A failed API call: the API's error object.
#[derive(Debug)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
    pub kind: Option<String>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Some(k) => write!(f, "{} ({k}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(330)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), token })
    }

    async fn send(&self, method: Method, path: &str, body: Option<Body>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Wasm(b)) => req.header("content-type", "application/wasm").body(b),
            None => req,
        };
        let resp =
            req.send().await.with_context(|| format!("cannot reach {} (is `patchbay serve` running?)", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let e = &value["error"];
        Err(ApiFailure {
            code: e["code"].as_str().unwrap_or("error").to_string(),
            message: e["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {status}")),
            kind: e["kind"].as_str().map(str::to_string),
        }
        .into())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(Body::Json(body))).await
    }

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, path, Some(Body::Json(body))).await
    }

    pub async fn upload(&self, path: &str, wasm: Vec<u8>) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(Body::Wasm(wasm))).await
    }
}

/// Which pages of a list a command reads: all of them (following `next_cursor`), or the one
/// page `--limit` / `--cursor` ask for.
#[derive(clap::Args, Clone, Debug)]
pub struct Paging {
    /// Read one page of at most this many (1..=1000) instead of every page.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Read the one page this cursor starts (the `next_cursor` a previous page printed).
    #[arg(long)]
    pub cursor: Option<String>,
    /// When reading every page: pages of this many (1..=1000).
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
}

impl Client {
    /// `GET path` of a list whose items are under `key`: every page, following `next_cursor`, as
    /// one body (the first page's other members, all the items, `next_cursor: null`), unless
    /// `paging` asks for one page, which is returned as the API answered it.
    pub async fn list(&self, path: &str, key: &str, paging: &Paging) -> anyhow::Result<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = |cursor: Option<&str>, limit: Option<u32>| {
            let mut q = Vec::new();
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            if let Some(c) = cursor {
                q.push(format!("cursor={}", enc(c)));
            }
            if q.is_empty() { path.to_string() } else { format!("{path}{sep}{}", q.join("&")) }
        };
        if paging.limit.is_some() || paging.cursor.is_some() {
            return self.get(&url(paging.cursor.as_deref(), paging.limit)).await;
        }
        let size = Some(paging.page_size);
        let mut body = self.get(&url(None, size)).await?;
        let mut next = body["next_cursor"].as_str().map(str::to_string);
        while let Some(cursor) = next {
            let page = self.get(&url(Some(&cursor), size)).await?;
            let items = page[key].as_array().cloned().unwrap_or_default();
            if let Some(all) = body[key].as_array_mut() {
                all.extend(items);
            }
            next = page["next_cursor"].as_str().map(str::to_string);
        }
        body["next_cursor"] = Value::Null;
        Ok(body)
    }
}

/// Tells where the next page starts when a one-page listing printed as a table has more.
pub fn note_next_page(v: &Value) {
    if let Some(c) = v["next_cursor"].as_str() {
        eprintln!("more: --cursor {c}");
    }
}

enum Body {
    Json(Value),
    Wasm(Vec<u8>),
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `connector ls` as a table.
pub fn print_connectors(v: &Value) {
    let empty = Vec::new();
    let list = v["connectors"].as_array().unwrap_or(&empty);
    println!("{:<24} {:<10} {:<22} {:<8} TITLE", "ID", "VERSION", "CATEGORY", "SCOPE");
    for c in list {
        println!(
            "{:<24} {:<10} {:<22} {:<8} {}",
            c["id"].as_str().unwrap_or(""),
            c["latest_version"].as_str().unwrap_or(""),
            c["category"].as_str().unwrap_or(""),
            c["visibility"].as_str().unwrap_or(""),
            c["title"].as_str().unwrap_or("")
        );
    }
}

/// One log entry as a line: `time level source message key=value...`.
pub fn format_log(e: &Value) -> String {
    let mut line = format!(
        "{} {:<5} {:<6} {}",
        e["at"].as_str().unwrap_or(""),
        e["level"].as_str().unwrap_or(""),
        e["source"].as_str().unwrap_or(""),
        e["message"].as_str().unwrap_or("")
    );
    if let Some(fields) = e["fields"].as_object() {
        for (k, v) in fields {
            line.push_str(&format!(" {k}={}", v.as_str().unwrap_or("")));
        }
    }
    line
}

/// Prints an installation's logs; with `follow`, keeps polling for new entries until interrupted.
pub async fn logs(
    client: &Client,
    installation: &str,
    level: Option<&str>,
    since: Option<&str>,
    follow: bool,
) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec!["limit=1000".to_string()];
        if let Some(l) = level {
            q.push(format!("level={}", enc(l)));
        }
        match &cursor {
            Some(c) => q.push(format!("cursor={}", enc(c))),
            None => {
                if let Some(s) = since {
                    q.push(format!("since={}", enc(s)));
                }
            }
        }
        let page = client.get(&format!("/v1/installations/{}/logs?{}", enc(installation), q.join("&"))).await?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            println!("{}", format_log(e));
        }
        if let Some(next) = page["next_cursor"].as_str() {
            cursor = Some(next.to_string());
            continue;
        }
        // The last page for now: following resumes after its last entry.
        if let Some(tail) = page["tail_cursor"].as_str() {
            cursor = Some(tail.to_string());
        }
        if !follow {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Parses `--input`: JSON text, `@file` or `-` (stdin).
pub fn read_input(input: &str) -> anyhow::Result<Value> {
    let text = if let Some(path) = input.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    } else if input == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        input.to_string()
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&text).context("--input is not valid JSON")
}

/// `KEY=VALUE` pairs as a JSON object of strings.
pub fn pairs_object(pairs: &[(String, String)]) -> anyhow::Result<Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in pairs {
        if m.insert(k.clone(), Value::String(v.clone())).is_some() {
            bail!("{k} is given twice");
        }
    }
    Ok(Value::Object(m))
}

/// Prints runs as a table.
pub fn print_sync_runs(v: &Value) {
    let Some(runs) = v["runs"].as_array() else { return print_json(v) };
    println!(
        "{:<22} {:<22} {:<14} {:<7} {:<11} {:<10} {:>10} {:>8}",
        "RUN", "INSTALLATION", "ENTITY", "DIR", "MODE", "STATUS", "FETCHED", "FAILED"
    );
    for r in runs {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<22} {:<22} {:<14} {:<7} {:<11} {:<10} {:>10} {:>8}",
            s("id"),
            s("installation"),
            s("entity"),
            s("direction"),
            s("mode"),
            s("status"),
            r["progress"]["fetched"].as_i64().unwrap_or(0),
            r["progress"]["failed"].as_i64().unwrap_or(0)
        );
    }
}

/// `12345678` as `12 345 678`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `95` seconds as `1m35s`.
fn duration_text(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One line of progress for a run's view: a bar (when the total is known), counts, rate, ETA.
pub fn progress_line(run: &Value, width: usize) -> String {
    let p = &run["progress"];
    let n = |k: &str| p[k].as_i64().unwrap_or(0);
    let status = run["status"].as_str().unwrap_or("?");
    let fetched = n("fetched");
    let head = match (p["total"].as_i64(), p["percent"].as_f64()) {
        (Some(total), Some(pct)) => {
            let filled = ((pct / 100.0) * width as f64).round() as usize;
            let filled = filled.min(width);
            format!(
                "[{}{}] {pct:5.1}%  {}/{} records",
                "#".repeat(filled),
                "-".repeat(width - filled),
                grouped(fetched),
                grouped(total)
            )
        }
        _ => format!("[{status}] {} records", grouped(fetched)),
    };
    let mut line = format!("{head}  {}/s", grouped(p["rate_per_sec"].as_f64().unwrap_or(0.0).round() as i64));
    if let Some(eta) = p["eta_secs"].as_i64() {
        line.push_str(&format!("  ETA {}", duration_text(eta)));
    }
    line.push_str(&format!(
        "  created {} · updated {} · unchanged {} · deleted {} · failed {}",
        grouped(n("created")),
        grouped(n("updated")),
        grouped(n("unchanged")),
        grouped(n("deleted")),
        grouped(n("failed"))
    ));
    line
}

/// Follows a run until it ends, drawing a progress bar on a terminal (one line per second
/// otherwise); prints the outcome. Exit code 0 when it succeeded, 1 otherwise.
pub async fn follow_sync(c: &Client, run_id: &str) -> anyhow::Result<i32> {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let path = format!("/v1/syncs/{}", enc(run_id));
    let mut last_print = std::time::Instant::now() - Duration::from_secs(10);
    let mut last_line = String::new();
    eprintln!("sync run {run_id}");
    loop {
        let run = c.get(&path).await?;
        let status = run["status"].as_str().unwrap_or("?").to_string();
        let line = progress_line(&run, 30);
        let finished = matches!(status.as_str(), "succeeded" | "failed" | "cancelled");
        if tty {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else if finished || (line != last_line && last_print.elapsed() >= Duration::from_secs(1)) {
            eprintln!("{line}");
            last_print = std::time::Instant::now();
        }
        last_line = line;
        if finished {
            if tty {
                eprintln!();
            }
            let secs = run["progress"]["running_ms"].as_i64().unwrap_or(0) as f64 / 1000.0;
            match run["error"].as_str() {
                Some(e) => eprintln!("{status} after {secs:.1}s: {e}"),
                None => eprintln!("{status} in {secs:.1}s"),
            }
            if run["progress"]["failed"].as_i64().unwrap_or(0) > 0 {
                eprintln!("item errors: GET /v1/syncs/{run_id}/errors");
            }
            return Ok(if status == "succeeded" { 0 } else { 1 });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls an uploaded version until its compile ends, showing how long it has run on stderr;
/// returns the version as the host reports it then (`ready` or `failed`).
pub async fn wait_compiled(c: &Client, uploaded: &Value) -> anyhow::Result<Value> {
    let path = format!(
        "/v1/connectors/{}/versions/{}",
        enc(uploaded["connector"].as_str().unwrap_or_default()),
        enc(uploaded["version"].as_str().unwrap_or_default())
    );
    let mut v = uploaded.clone();
    while v["state"] == "compiling" {
        let secs = v["compiling"]["elapsed_ms"].as_i64().unwrap_or(0) / 1000;
        eprint!(
            "\rcompiling {}@{} … {secs} s ",
            v["connector"].as_str().unwrap_or("?"),
            v["version"].as_str().unwrap_or("?")
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        v = c.get(&path).await?;
    }
    eprintln!("\r{}{}", v["state"].as_str().unwrap_or("?"), " ".repeat(40));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_draws_a_bar_when_the_total_is_known() {
        let run = json!({ "status": "running", "progress": {
            "fetched": 58_000, "created": 58_000, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 2,
            "total": 100_000, "percent": 58.0, "rate_per_sec": 41_250.4, "eta_secs": 2 } });
        let line = progress_line(&run, 10);
        assert!(line.starts_with("[######----]  58.0%  58 000/100 000 records  41 250/s  ETA 2s"), "{line}");
        assert!(line.ends_with("created 58 000 · updated 0 · unchanged 0 · deleted 0 · failed 2"), "{line}");
        let run = json!({ "status": "running", "progress": { "fetched": 1234, "rate_per_sec": 99.0 } });
        assert!(
            progress_line(&run, 10).starts_with("[running] 1 234 records  99/s  created 0"),
            "{}",
            progress_line(&run, 10)
        );
        assert_eq!(duration_text(95), "1m35s");
        assert_eq!(duration_text(7260), "2h01m");
        assert_eq!(grouped(-1234567), "-1 234 567");
    }
}
