//! The performance table: every figure the host is held to, each printed beside its reference
//! measured in the same run with the same load generator, and its target.
//!
//! Per backend (SQLite always, PostgreSQL when `DATABASE_URL` is set), one host in this process:
//!
//! | figure | reference |
//! |---|---|
//! | verified + durable webhook ingest, 64 connections | axum hello-world POST, same generator, just before; the durable write alone (group commit, 64 callers, fresh database) |
//! | webhook → connector → sink after the 200, paced at 1 000/s | — (the sink is local) |
//! | invoke of `health-check` over HTTP, 32 connections | axum hello-world POST, same client, just before |
//! | invoke in process, p50 | — |
//! | first data sync, 1 KiB records | the batch commits alone (the store's ceiling on the same schema) |
//!
//! With `PATCHBAY_BENCH_PREFILL=N` (e.g. 10000000) the store is then filled with N events (each
//! with a delivered delivery), N operation-log entries and N records of another tenant —
//! written by the database itself, so quickly — and every figure is measured again and shown
//! against the empty-store figure (target: within 20 %).
//!
//! `cargo bench -p patchbay-benches --bench table`. `PATCHBAY_BENCH_SECS` (default 5) sets each
//! throughput run's length, `PATCHBAY_BENCH_RECORDS` (default 100 000) the records per sync,
//! `PATCHBAY_BENCH_BACKENDS` (`sqlite,postgres`) which backends run, `PATCHBAY_BENCH_RATE`
//! (default 1 000) the webhooks per second of the delivery-latency run.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use patchbay_benches::webhooks::{
    Arrivals, Shot, env_num, host, load, paced, percentile, push_body, setup, sink, webhook_shot,
};
use patchbay_benches::{invoking, syncing};
use patchbay_dev::bench::ingress::{self, Mode, Plan};
use patchbay_services::Host;
use patchbay_services::sync::SyncConfig;
use patchbay_store::{Backend, Fill, GroupCommitConfig};
use patchbay_tests::sources::{Dataset, SourceServer};
use serde_json::json;

/// Everything one measurement pass found.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    hello_64: f64,
    /// The durable write alone (ingress row + event + delivery, group commit, 64 callers, a fresh
    /// database): the store's ceiling for ingest on this machine.
    store_limit: f64,
    ingest: f64,
    deliver_p50_ms: f64,
    deliver_p99_ms: f64,
    delivered: usize,
    sent: usize,
    /// Webhooks per second of the delivery run.
    rate: u64,
    hello_32: f64,
    invoke_32: f64,
    invoke_p50_us: f64,
    sync: f64,
    store_only: f64,
}

/// One host and what the passes need of it.
struct Bench {
    backend: Backend,
    app: Host,
    addr: SocketAddr,
    hello: SocketAddr,
    path: String,
    arrivals: Arrivals,
    invoke_url: String,
    token: String,
    src: std::sync::Arc<SourceServer>,
    ds: Dataset,
    records: usize,
    secs: u64,
    /// Webhooks per second of the delivery-latency run.
    rate: u64,
    pass: usize,
}

impl Bench {
    async fn measure(&mut self) -> anyhow::Result<Figures> {
        self.pass += 1;
        let mut f = Figures::default();
        let conns = 64;
        let hello_shot = Shot {
            path: "/".into(),
            headers: vec![("content-type", "application/json".into())],
            vary: None,
            body: Bytes::from(push_body("hello")),
        };
        // Ingest, the dispatcher off (only ingest is measured), right after its reference.
        self.phase("hello-world, 64 connections");
        f.hello_64 = load(self.hello, hello_shot, conns, self.secs).await.0;
        let _ = load(self.addr, webhook_shot(&self.path), 4, 1).await;
        self.phase("webhook ingest, 64 connections");
        f.ingest = load(self.addr, webhook_shot(&self.path), conns, self.secs).await.0;

        self.settle().await;

        // Delivery: the dispatcher on, the ingest backlog drained first, then 1 000 webhooks/s.
        let dispatcher = self.app.spawn_dispatcher(Default::default(), None);
        let drain = Instant::now() + Duration::from_secs(300);
        while self.app.store().outbox_depth().await?.pending > 0 && Instant::now() < drain {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Ok(mut m) = self.arrivals.lock() {
            m.clear();
        }
        self.phase("delivery after the 200");
        let (latencies, sent) =
            paced(self.addr, webhook_shot(&self.path), self.arrivals.clone(), self.rate, self.secs, 16).await?;
        f.deliver_p50_ms = percentile(&latencies, 0.5);
        f.deliver_p99_ms = percentile(&latencies, 0.99);
        (f.delivered, f.sent, f.rate) = (latencies.len(), sent, self.rate);
        if let Some(d) = dispatcher {
            d.abort();
        }
        if let Ok(mut m) = self.arrivals.lock() {
            m.clear();
        }
        self.settle().await;

        // Invoke, right after its reference over the same client.
        let calls = (self.secs as usize * 4_000).max(2_000);
        let hello_url = format!("http://{}/", self.hello);
        let (_, wall) = invoking::over_http(&hello_url, "x", 32, calls).await?;
        f.hello_32 = calls as f64 / wall.as_secs_f64();
        self.phase("invoke over HTTP, 32 connections");
        let (samples, wall) = invoking::over_http(&self.invoke_url, &self.token, 32, calls).await?;
        f.invoke_32 = samples.len() as f64 / wall.as_secs_f64();
        let id = self.invoke_url.split('/').nth(5).unwrap_or_default().to_string();
        self.phase("invoke in process");
        let (mut samples, _) = invoking::in_process(&self.app, &id, 5_000).await?;
        samples.sort();
        f.invoke_p50_us = percentile(&samples, 0.5) * 1e3;

        self.settle().await;

        // A first sync into a new installation (so a new stream), then the batch commits alone.
        let inst = syncing::setup(&self.app, &self.src, &format!("sync-{}", self.pass)).await?;
        let cfg = SyncConfig { batch_size: 2000, concurrency: 1, ..Default::default() };
        self.phase("first sync");
        let worker = self.app.spawn_sync(cfg);
        let (secs, _, created, _) = syncing::timed_sync(&self.app, &inst).await?;
        anyhow::ensure!(created == self.records as i64, "created {created} of {}", self.records);
        f.sync = self.records as f64 / secs;
        if let Some(w) = worker {
            w.abort();
        }
        let entity = format!("store-only-{}", self.pass);
        f.store_only = syncing::store_only(&self.app, &inst, &entity, &self.ds, self.records, 2000).await?;
        self.settle().await;

        // The durable write alone, on a fresh database of the same backend.
        let dir = tempfile::tempdir()?;
        let plan = Plan {
            sqlite_dir: Some(dir.path().to_path_buf()),
            postgres_url: Some(patchbay_tests::db::postgres_url()),
            requests: 10_000_000,
            budget: Duration::from_secs(self.secs),
            callers: vec![64],
            group: GroupCommitConfig::default(),
            only: None,
        };
        self.phase("durable write alone");
        let row = ingress::run_one(&plan, self.pass, self.backend, None, Mode::GroupCommit, 64).await?;
        f.store_limit = row.requests_per_sec();
        Ok(f)
    }

    /// Says on stderr which measurement starts (for a profiler to attach at the right moment).
    fn phase(&self, what: &str) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        eprintln!("[{:.3}] {} pass {}: {what}", t.as_secs_f64(), self.backend, self.pass);
    }

    /// Lets the host write what it queued (operation logs, settlements) before the next phase.
    async fn settle(&self) {
        self.app.flush().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Fills the store with `n` events, log entries and records of tenant `filler`.
    async fn prefill(&self, n: u64) -> anyhow::Result<()> {
        self.app.access.create_tenant("filler", None).await?;
        let req = serde_json::from_value(json!({ "connector": "github", "name": "filler" }))?;
        let inst = self.app.installations.create("filler", req).await?.row.id;
        for kind in [Fill::Events, Fill::Logs, Fill::Records] {
            let t = Instant::now();
            let rows = self.app.store().fill(kind, "filler", &inst, n).await?;
            let s = t.elapsed().as_secs_f64();
            println!("  prefilled {rows} {kind:?} on {} in {s:.1} s ({:.0} rows/s)", self.backend, rows as f64 / s);
        }
        // Planner statistics, as autovacuum keeps them on a database that grew this much.
        self.app.store().analyze_ingress_tables().await?;
        self.app.store().analyze_records().await?;
        Ok(())
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.1} %", 100.0 * a / b) } else { "—".into() }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The table of one pass; `empty` is the empty-store pass to compare a large-store pass with.
fn table(backend: Backend, f: &Figures, empty: Option<&Figures>) -> String {
    let mut out = String::new();
    let title = if empty.is_some() { "large store" } else { "empty store" };
    let _ = writeln!(out, "\n{backend}, {title}");
    let _ = writeln!(out, "| figure | measured | reference (same run) | target | |");
    let _ = writeln!(out, "|---|---:|---:|---|---|");
    let mut row = |figure: &str, measured: String, reference: String, target: &str, met: Option<bool>| {
        let _ =
            writeln!(out, "| {figure} | {measured} | {reference} | {target} | {} |", met.map(verdict).unwrap_or(""));
    };
    let ingest_target = match backend {
        Backend::Sqlite => ("≥ 1/3 of hello-world", f.ingest * 3.0 >= f.hello_64),
        Backend::Postgres => ("≥ 10 000/s", f.ingest >= 10_000.0),
    };
    row(
        "webhook ingest, verified + durable, 64 conns",
        format!("{:.0}/s ({})", f.ingest, ratio(f.ingest, f.hello_64)),
        format!("hello-world {:.0}/s; durable write alone {:.0}/s", f.hello_64, f.store_limit),
        ingest_target.0,
        Some(ingest_target.1),
    );
    row(
        &format!("webhook → connector → sink after the 200, {}/s", f.rate),
        format!("p50 {:.2} ms, p99 {:.2} ms", f.deliver_p50_ms, f.deliver_p99_ms),
        format!("{} of {} delivered", f.delivered, f.sent),
        "p50 ≤ 1 ms, p99 ≤ 5 ms",
        Some(f.deliver_p50_ms <= 1.0 && f.deliver_p99_ms <= 5.0 && f.delivered == f.sent),
    );
    row(
        "invoke over HTTP, 32 conns",
        format!("{:.0} calls/s ({})", f.invoke_32, ratio(f.invoke_32, f.hello_32)),
        format!("hello-world {:.0}/s", f.hello_32),
        "≥ 20 000/s",
        Some(f.invoke_32 >= 20_000.0),
    );
    row(
        "invoke in process, p50",
        format!("{:.1} µs", f.invoke_p50_us),
        "—".into(),
        "≤ 50 µs",
        Some(f.invoke_p50_us <= 50.0),
    );
    let sync_target = match backend {
        Backend::Postgres => ("≥ 100 000/s", Some(f.sync >= 100_000.0)),
        Backend::Sqlite => ("—", None),
    };
    row(
        "data sync, 1 KiB records",
        format!("{:.0} records/s ({})", f.sync, ratio(f.sync, f.store_only)),
        format!("store alone {:.0}/s", f.store_only),
        sync_target.0,
        sync_target.1,
    );
    if let Some(e) = empty {
        let _ = writeln!(out, "\nlarge store against empty store (target: within 20 %)");
        let _ = writeln!(out, "| figure | empty | large | change | |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        let mut cmp = |figure: &str, empty: f64, large: f64, higher_is_better: bool| {
            let change = (large - empty) / empty;
            let ok = if higher_is_better { change >= -0.2 } else { change <= 0.2 };
            let _ =
                writeln!(out, "| {figure} | {empty:.2} | {large:.2} | {:+.1} % | {} |", change * 100.0, verdict(ok));
        };
        cmp("ingest/s", e.ingest, f.ingest, true);
        cmp("delivery p50 ms", e.deliver_p50_ms, f.deliver_p50_ms, false);
        cmp("delivery p99 ms", e.deliver_p99_ms, f.deliver_p99_ms, false);
        cmp("invoke HTTP calls/s", e.invoke_32, f.invoke_32, true);
        cmp("invoke in-process p50 µs", e.invoke_p50_us, f.invoke_p50_us, false);
        cmp("sync records/s", e.sync, f.sync, true);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let secs = env_num("PATCHBAY_BENCH_SECS", 5);
    let rate = env_num("PATCHBAY_BENCH_RATE", 1_000);
    let records = env_num("PATCHBAY_BENCH_RECORDS", 100_000) as usize;
    let prefill = env_num("PATCHBAY_BENCH_PREFILL", 0);
    let wanted = std::env::var("PATCHBAY_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let mut backends = Vec::new();
    if wanted.contains("sqlite") {
        backends.push(Backend::Sqlite);
    }
    if wanted.contains("postgres") && std::env::var("DATABASE_URL").is_ok() {
        backends.push(Backend::Postgres);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let hello = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let hello_addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, hello).await });
        let ds = Dataset::new(records, 1024, 42);
        let src = std::sync::Arc::new(SourceServer::start(ds.clone()));
        println!("{secs} s per throughput run, {records} records of ~1 KiB per sync, prefill {prefill}");
        let mut report = String::new();
        for backend in backends {
            let (arrivals, sink_url) = sink().await?;
            let (app, addr, _dir) = host(backend, false).await?;
            let path = setup(&app, &sink_url).await?;
            let id = invoking::setup(&app).await?;
            let (_, token) = app.access.create_key("bench", Some("bench".into()), None).await?;
            let mut bench = Bench {
                backend,
                app: app.clone(),
                addr,
                hello: hello_addr,
                path,
                arrivals,
                invoke_url: format!("http://{addr}/v1/installations/{id}/invoke/health-check"),
                token,
                src: src.clone(),
                ds: ds.clone(),
                records,
                secs,
                rate,
                pass: 0,
            };
            let empty = bench.measure().await?;
            let t = table(backend, &empty, None);
            println!("{t}");
            report.push_str(&t);
            if prefill > 0 {
                bench.prefill(prefill).await?;
                let large = bench.measure().await?;
                let t = table(backend, &large, Some(&empty));
                println!("{t}");
                report.push_str(&t);
            }
            app.flush().await;
        }
        println!("\n==== summary{report}");
        anyhow::Ok(())
    })
}
