//! The CLI's client side: commands that drive a running host over its admin API.
//!
//! The host is `--url` / `PATCHBAY_URL` (default `http://127.0.0.1:8080`) and the token is
//! `--token` / `PATCHBAY_TOKEN`. Responses are printed as JSON (tables for listings); an API
//! error prints `error: <code>: <message>` and exits 1 (2 when a connector returned its own error).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A logged-in API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A failed API call: the status and the API's error object.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
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
            status,
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
        }
        if entries.len() >= 1000 {
            continue;
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
