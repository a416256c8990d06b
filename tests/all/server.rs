//! The real `patchbay` binary as a child process, on SQLite or on a fresh PostgreSQL schema, and a
//! small API client for the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use patchbay_store::Backend;
use patchbay_tests::db::{TestDb, fresh_database};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A running `patchbay serve`.
pub struct Server {
    child: Child,
    pub url: String,
    /// The operator token printed on first start.
    pub operator: String,
    data_dir: Option<tempfile::TempDir>,
    pub backend: Backend,
    db: Option<TestDb>,
    /// The database URL (also for servers sharing another one's database).
    db_url: String,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status, headers and JSON body (`Null` when empty).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Resp { status, headers, body }
    }

    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl Server {
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.as_ref().unwrap().path()
    }

    pub fn database_url(&self) -> &str {
        &self.db_url
    }

    /// Starts the binary with an empty data directory on `backend`.
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Server {
        let db = fresh_database(backend).await;
        let data_dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        Self::spawn(backend, Some(db), url, data_dir, &owned(env))
    }

    /// `n` hosts on one database (each with its own data dir), sharing the master key and the
    /// operator token as a real deployment would. The first owns the database.
    pub async fn cluster(backend: Backend, n: usize, env: &[(&str, &str)]) -> Vec<Server> {
        let mut env = owned(env);
        env.push(("PATCHBAY_MASTER_KEY".into(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()));
        env.push(("PATCHBAY_ADMIN_TOKEN".into(), "cluster-operator-token-7f3a9c".into()));
        let db = fresh_database(backend).await;
        let url = db.url.clone();
        let mut db = Some(db);
        let mut out = Vec::new();
        for _ in 0..n {
            let mut s = Self::spawn(backend, db.take(), url.clone(), tempfile::tempdir().unwrap(), &env);
            s.operator = "cluster-operator-token-7f3a9c".into();
            out.push(s);
        }
        out
    }

    /// The process id (lease owners carry it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL): no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(
        backend: Backend,
        db: Option<TestDb>,
        db_url: String,
        data_dir: tempfile::TempDir,
        env: &[(String, String)],
    ) -> Server {
        let mut cmd = Command::new(patchbay_tests::patchbay_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir.path())
            .env_remove("PATCHBAY_MASTER_KEY")
            .env_remove("PATCHBAY_ADMIN_TOKEN")
            .env_remove("PATCHBAY_CONFIG")
            .env_remove("PATCHBAY_LISTEN")
            .env("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32")
            // Uploads answer once compiled, however loaded the machine is (a test that exercises
            // background compiles sets a short wait itself).
            .env("PATCHBAY_UPLOAD_WAIT_MS", "120000")
            .env("RUST_LOG", "warn")
            .current_dir(data_dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match backend {
            Backend::Sqlite => cmd.env_remove("DATABASE_URL"),
            Backend::Postgres => cmd.env("DATABASE_URL", &db_url),
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start patchbay serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut url = None;
        let mut operator = String::new();
        loop {
            let line = match rx.recv_timeout(patchbay_tests::scaled(Duration::from_secs(120))) {
                Ok(l) => l,
                Err(_) => panic!("patchbay serve did not start (url {url:?})"),
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.split("operator token (shown once, stored hashed): ").nth(1) {
                operator = rest.trim().to_string();
            }
            // A restarted host prints no token; the caller keeps the one it has.
            if line.starts_with("ready") {
                break;
            }
        }
        std::thread::spawn(move || for _ in rx {});
        Server {
            child,
            url: url.unwrap(),
            operator,
            data_dir: Some(data_dir),
            backend,
            db,
            db_url,
            env: env.to_vec(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        }
    }

    /// Stops the process and starts it again on the same data directory and database.
    pub async fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let operator = std::mem::take(&mut self.operator);
        // Move the directory and database out; `self` is dropped without them.
        let dir = self.data_dir.take().unwrap();
        let db = self.db.take();
        let mut s = Self::spawn(self.backend, db, self.db_url.clone(), dir, &self.env);
        s.operator = operator;
        s
    }

    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        Resp::read(resp).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// POSTs `body` as it is, labelled JSON.
    pub async fn post_raw(&self, path: &str, token: &str, body: &'static [u8]) -> Resp {
        self.post_body(path, token, "application/json", body).await
    }

    pub async fn upload(&self, token: &str, wasm: Vec<u8>) -> Resp {
        self.post_body("/v1/connectors", token, "application/wasm", wasm).await
    }

    /// A raw body, on a connection of its own: the server may answer (413, 403, 415) before it
    /// has read the body and then closes the connection, and a pooled connection closed that way
    /// fails the next request that picks it up (`IncompleteMessage`).
    async fn post_body(&self, path: &str, token: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Resp {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", content_type)
            .header("connection", "close")
            .body(body)
            .send()
            .await
            .expect("request");
        Resp::read(resp).await
    }

    /// Creates a tenant and returns a key with every scope.
    pub async fn tenant(&self, id: &str) -> String {
        let r = self.post("/v1/tenants", &self.operator, json!({ "id": id })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        self.key(id, &["view", "manage", "credentials"]).await
    }

    pub async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let r = self.post(&format!("/v1/tenants/{tenant}/keys"), &self.operator, json!({ "scopes": scopes })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.body["token"].as_str().unwrap().to_string()
    }
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A minimal notification for `notifications.send`.
pub fn notification(text: &str, key: &str) -> Value {
    json!({ "notification": {
        "to": [], "cc": [], "bcc": [], "text": text, "attachments": [], "categories": [], "metadata": [],
        "idempotency-key": key
    }})
}

/// Appends a top-level custom section to a wasm binary.
pub fn with_custom_section(mut wasm: Vec<u8>, name: &str, payload: &[u8]) -> Vec<u8> {
    let mut content = Vec::new();
    leb(&mut content, name.len() as u64);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    wasm.push(0);
    leb(&mut wasm, content.len() as u64);
    wasm.extend_from_slice(&content);
    wasm
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
