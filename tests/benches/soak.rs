//! Sustained webhook ingest, as an operator runs it: signed GitHub webhooks over 64 keep-alive
//! connections at full speed into a host in this process with its dispatcher on (every event is
//! delivered through the notify-webhook connector to a local sink), for minutes. Every sample
//! prints the window's ingest and delivery rates, the database and WAL file sizes (SQLite), the
//! outbox backlog and what the operation log wrote, queued and dropped. After the load stops it
//! waits for the backlog to drain and shows the WAL folding back.
//!
//! `cargo bench -p patchbay-benches --bench soak`. `PATCHBAY_BENCH_SECS` (default 120) sets the
//! load's length, `PATCHBAY_BENCH_SAMPLE_SECS` (default 10) the sampling period,
//! `PATCHBAY_BENCH_CONNECTIONS` (default 64) the connections; `PATCHBAY_BENCH_BACKEND=postgres`
//! runs on the `DATABASE_URL` server instead of SQLite.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use patchbay_benches::webhooks::{Tally, drive, env_num, host, load, setup, sink_with, webhook_shot};
use patchbay_services::Host;
use patchbay_store::Backend;

const MIB: f64 = 1024.0 * 1024.0;

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len() as f64 / MIB).unwrap_or(0.0)
}

/// One line of the table.
struct Sample {
    at: f64,
    ingested: u64,
    delivered: u64,
    wal_mib: f64,
    db_mib: f64,
    backlog: u64,
    logs_written: u64,
    logs_dropped: u64,
    logs_queued: u64,
}

async fn sample(app: &Host, dir: &Path, started: Instant, ingested: u64, delivered: u64) -> Sample {
    let depth = app.store().outbox_depth().await.unwrap_or_default();
    let logs = app.oplog_stats();
    Sample {
        at: started.elapsed().as_secs_f64(),
        ingested,
        delivered,
        wal_mib: file_mib(&dir.join("patchbay.db-wal")),
        db_mib: file_mib(&dir.join("patchbay.db")),
        backlog: depth.pending + depth.leased,
        logs_written: logs.written,
        logs_dropped: logs.dropped,
        logs_queued: logs.queued,
    }
}

fn print_row(label: &str, s: &Sample, prev: &Sample) {
    let secs = (s.at - prev.at).max(1e-9);
    println!(
        "{label:>7} {:>10.0} {:>11.0} {:>9.1} {:>9.1} {:>9} {:>12} {:>10} {:>9}",
        (s.ingested - prev.ingested) as f64 / secs,
        (s.delivered - prev.delivered) as f64 / secs,
        s.wal_mib,
        s.db_mib,
        s.backlog,
        s.logs_written,
        s.logs_dropped,
        s.logs_queued,
    );
}

fn main() -> anyhow::Result<()> {
    let secs = env_num("PATCHBAY_BENCH_SECS", 120);
    let every = env_num("PATCHBAY_BENCH_SAMPLE_SECS", 10).max(1);
    let connections = env_num("PATCHBAY_BENCH_CONNECTIONS", 64) as usize;
    let backend = match std::env::var("PATCHBAY_BENCH_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let (_, received, sink_url) = sink_with(false).await?;
        let (app, addr, dir) = host(backend, true).await?;
        let path = setup(&app, &sink_url).await?;
        let _ = load(addr, webhook_shot(&path), 4, 1).await;
        println!(
            "soak: {secs} s of signed webhooks over {connections} connections, {backend}, dispatcher on \
             (sampled every {every} s)"
        );
        println!(
            "{:>7} {:>10} {:>11} {:>9} {:>9} {:>9} {:>12} {:>10} {:>9}",
            "t (s)", "ingest/s", "delivered/s", "WAL MiB", "DB MiB", "backlog", "logs written", "dropped", "queued"
        );
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let base = tally.ok.load(Ordering::Relaxed);
        let delivered0 = received.load(Ordering::Relaxed);
        let counts = |t: &Tally| (t.ok.load(Ordering::Relaxed) - base, received.load(Ordering::Relaxed) - delivered0);
        let load = tokio::spawn(drive(addr, webhook_shot(&path), connections, tally.clone()));
        let mut first = sample(&app, dir.path(), started, 0, 0).await;
        first.at = 0.0;
        let mut prev = first;
        let (mut max_wal, mut rates) = (0.0f64, Vec::new());
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(every).min(Duration::from_secs(secs).saturating_sub(started.elapsed())))
                .await;
            let (ingested, delivered) = counts(&tally);
            let s = sample(&app, dir.path(), started, ingested, delivered).await;
            print_row(&format!("{:.0}", s.at), &s, &prev);
            max_wal = max_wal.max(s.wal_mib);
            rates.push((s.ingested - prev.ingested) as f64 / (s.at - prev.at).max(1e-9));
            prev = s;
        }
        tally.stop();
        let _ = load.await;
        let load_secs = started.elapsed().as_secs_f64();
        let (ingested, _) = counts(&tally);
        let failed = tally.failed.load(Ordering::Relaxed);

        // Drain: every event delivered, every log entry written.
        let drain_started = Instant::now();
        loop {
            let depth = app.store().outbox_depth().await?;
            if depth.pending + depth.leased == 0 || drain_started.elapsed() > Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        app.flush().await;
        let drain_secs = drain_started.elapsed().as_secs_f64();
        let (_, delivered) = counts(&tally);
        let s = sample(&app, dir.path(), started, ingested, delivered).await;
        print_row("drained", &s, &prev);
        max_wal = max_wal.max(s.wal_mib);
        prev = s;
        // Idle: the WAL should fold back.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s = sample(&app, dir.path(), started, ingested, delivered).await;
        print_row("idle+5s", &s, &prev);

        let logs = app.oplog_stats();
        let dead = app.store().outbox_depth().await?.dead;
        let first_rate = rates.first().copied().unwrap_or(0.0);
        let last_rate = rates.last().copied().unwrap_or(0.0);
        println!(
            "ingested {ingested} webhooks in {load_secs:.0} s ({:.0}/s; first window {first_rate:.0}/s, last {last_rate:.0}/s; \
             {failed} failed); delivered {delivered}, {dead} dead (drained {:.1} s after the load); WAL peak {max_wal:.1} MiB, \
             {:.1} MiB idle; operation log: {} entries appended, {} written, {} dropped",
            ingested as f64 / load_secs,
            drain_secs,
            s.wal_mib,
            logs.appended,
            logs.written,
            logs.dropped,
        );
        anyhow::Ok(())
    })
}
