//! The real `patchbay` binary, driven as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn serve_answers_healthz_with_zero_configuration() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0: the server binds a free port itself and says which (no port picked here that
    // another process could take first); nothing from this process's environment configures it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchbay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .env_remove("PATCHBAY_CONFIG")
        .env_remove("PATCHBAY_LISTEN")
        .env_remove("PATCHBAY_MASTER_KEY")
        .env_remove("PATCHBAY_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first start compiles every reference connector (a debug build): allow for it.
    let mut addr = None;
    loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("serve did not say it was ready within 120 s");
        if let Some(url) = line.split("listening on http://").nth(1) {
            addr = Some(url.trim().to_string());
        }
        if line.starts_with("ready") {
            break;
        }
    }
    let addr = addr.expect("serve said where it listens before it was ready");
    let reply = get(&addr, "/healthz").expect("GET /healthz");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""status":"ok""#), "{reply}");
    assert!(dir.path().join("data/cache/cache.key").exists());
}

#[test]
fn run_reports_a_missing_component_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_patchbay"))
        .args(["run", "/nonexistent.wasm", "health-check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent.wasm"), "{err}");
}

#[test]
fn run_rejects_a_non_component() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.wasm");
    std::fs::write(&f, b"not wasm").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchbay")).arg("run").arg(&f).arg("health-check").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}
