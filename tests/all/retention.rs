//! Retention on SQLite and PostgreSQL (`retention::sqlite::<name>`, `retention::postgres::<name>`):
//! every class pruned by age and by count, one tenant's policy never touching another's rows,
//! what must be kept surviving (pending deliveries, the dedupe window, tombstones an export has
//! not consumed, errors of running syncs), sweeps racing full-speed ingest, the job lease, disk
//! returned on SQLite, and the API's validation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use patchbay_core::now_ms;
use patchbay_services::Host;
use patchbay_services::config::{Overrides, Settings};
use patchbay_store::sync::{Direction, ExportOutcome, ImportBatch, IncomingRecord, ItemError, Lease, NewRun, SyncMode};
use patchbay_store::{AttemptOutcome, AttemptRecord, Backend, IngressWrite, NewLogRecord, Retry, Store};
use patchbay_tests::MapEnv;
use patchbay_tests::db::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::outbox::{count, delivery, event, ingress, setup};
use crate::server::Server;

on_both_backends!(
    events_requests_and_logs_are_pruned_by_age_and_count,
    sync_errors_and_tombstones_are_pruned_unless_still_needed,
    sweeps_during_full_speed_ingest_lose_nothing,
    one_host_at_a_time_holds_the_job,
    policies_over_the_api_are_validated_and_tenant_scoped,
);

const DAY: i64 = 86_400_000;

/// A host on `db` (no workers), for its retention service.
async fn host(db: &TestDb) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("PATCHBAY_REFERENCE_CONNECTORS", "false".to_string()),
        ("PATCHBAY_MASTER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
        ("PATCHBAY_RETENTION_BATCH_SIZE", "7".to_string()),
    ]);
    let settings =
        Settings::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }, &MapEnv(env))
            .unwrap();
    let (host, _) = Host::open(&settings).await.unwrap();
    (host, dir)
}

async fn exec(db: &TestDb, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

fn log(tenant: &str, installation: &str, at_ms: i64, message: &str) -> NewLogRecord {
    NewLogRecord {
        tenant: tenant.into(),
        installation: installation.into(),
        at_ms,
        level: patchbay_core::log::Level::Info,
        source: "host".into(),
        message: message.into(),
        fields_json: "[]".into(),
    }
}

fn attempt(n: i64, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord { attempt: n, started_at_ms: now_ms(), duration_ms: 1, outcome, error: None }
}

/// Emits `id` (t1, from `src`, created at `at`) with one delivery to `dst` due at `due`.
async fn emit(store: &Store, id: &str, at: i64, due: i64) {
    let e = event(id, &format!("k_{id}"), "thing.happened", at);
    let d = delivery(&format!("dl_{id}"), id, "dst", None, due);
    store.emit_events(&[e], &[d]).await.unwrap();
}

async fn exists(store: &Store, tenant: &str, id: &str) -> bool {
    store.event(tenant, id).await.unwrap().is_some()
}

async fn events_requests_and_logs_are_pruned_by_age_and_count(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (host, _dir) = host(&db).await;
    let r = &host.retention;
    let now = now_ms();

    // Events: old and delivered, old and dead, old and still pending, new; t2's old one.
    emit(&store, "e_old", now - 40 * DAY, 0).await;
    emit(&store, "e_dead", now - 40 * DAY, 0).await;
    emit(&store, "e_pending", now - 40 * DAY, now + 365 * DAY).await;
    emit(&store, "e_hour", now - 3_600_000, 0).await;
    emit(&store, "e_new", now, 0).await;
    let mut other = event("o_old", "k_o_old", "thing.happened", now - 40 * DAY);
    other.tenant = "t2".into();
    other.source_installation = "other".into();
    store.emit_events(&[other], &[]).await.unwrap();
    let claimed = store.claim_deliveries("w", now, 60_000, 100).await.unwrap();
    assert_eq!(claimed.len(), 4, "{claimed:?}");
    for d in &claimed {
        let ok = if d.id == "dl_e_dead" {
            store.fail_delivery(&d.id, "w", &attempt(d.attempts, AttemptOutcome::Permanent), Retry::Dead).await
        } else {
            store.ack_delivery(&d.id, "w", &attempt(d.attempts, AttemptOutcome::Ok)).await
        };
        assert!(ok.unwrap());
    }

    // Raw requests: 8 days old, 2 days old (inside the 72 h dedupe window), new.
    for (id, age) in [("r_old", 8 * DAY), ("r_window", 2 * DAY), ("r_new", 0)] {
        let mut i = ingress(id, "src", Some(id), 200, "{}");
        i.received_at_ms = now - age;
        store.record_ingress(&i, &[], &[]).await.unwrap();
    }
    let mut i = ingress("o_req", "other", None, 200, "{}");
    i.tenant = "t2".into();
    i.received_at_ms = now - 8 * DAY;
    store.record_ingress(&i, &[], &[]).await.unwrap();

    // Logs: three 15 days old and two new for src, two new for dst; t2's old ones.
    let mut logs: Vec<NewLogRecord> = (0..3).map(|n| log("t1", "src", now - 15 * DAY + n, "old")).collect();
    logs.extend((0..2).map(|n| log("t1", "src", now + n, "new")));
    logs.extend((0..2).map(|n| log("t1", "dst", now + n, "new")));
    logs.extend((0..3).map(|n| log("t2", "other", now - 15 * DAY + n, "old")));
    store.append_logs(&logs).await.unwrap();

    // t2 keeps a year of events and logs, and its raw requests as long as the limit allows.
    r.set_policy(
        "t2",
        &json!({ "events": { "max_age": "365d" }, "logs": { "max_age": "90d" }, "webhook_requests": { "max_age": "90d" } }),
    )
    .await
    .unwrap();

    let report = r.sweep_at(now).await.unwrap();
    assert!(report.complete && report.failures == 0, "{report:?}");
    assert!(!exists(&store, "t1", "e_old").await);
    // A dead delivery goes with its event once the event is past retention.
    assert!(!exists(&store, "t1", "e_dead").await);
    assert!(store.delivery("t1", "dl_e_dead").await.unwrap().is_none());
    // A pending delivery keeps its event whatever its age.
    assert!(exists(&store, "t1", "e_pending").await);
    assert!(exists(&store, "t1", "e_hour").await && exists(&store, "t1", "e_new").await);
    assert!(exists(&store, "t2", "o_old").await, "t2's policy keeps its events a year");
    assert_eq!(report.of(patchbay_store::RetentionClass::Events), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM delivery_attempts").await, 2);

    assert!(store.ingress_request("t1", "r_old").await.unwrap().is_none());
    assert!(store.ingress_request("t1", "r_window").await.unwrap().is_some());
    assert!(store.ingress_request("t1", "r_new").await.unwrap().is_some());
    assert!(store.ingress_request("t2", "o_req").await.unwrap().is_some());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs WHERE tenant = 't1'").await, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs WHERE tenant = 't2'").await, 3);

    // By count: one event per tenant, one log entry per installation, one raw request; the
    // dedupe window still keeps every request younger than 72 h.
    r.set_policy(
        "t1",
        &json!({ "events": { "max_count": 1 }, "logs": { "max_count": 1 }, "webhook_requests": { "max_count": 1, "max_age": "1h" } }),
    )
    .await
    .unwrap();
    r.sweep_at(now).await.unwrap();
    assert!(!exists(&store, "t1", "e_hour").await);
    assert!(exists(&store, "t1", "e_new").await && exists(&store, "t1", "e_pending").await);
    assert!(store.ingress_request("t1", "r_window").await.unwrap().is_some(), "inside the dedupe window");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs WHERE installation = 'src'").await, 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs WHERE installation = 'dst'").await, 1);
    let newest: String =
        store.logs("t1", "src", &patchbay_store::LogQuery::default()).await.unwrap().items.remove(0).message;
    assert_eq!(newest, "new");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM operation_logs WHERE tenant = 't2'").await, 3);
    assert!(exists(&store, "t2", "o_old").await);

    // Two days later the 2-day-old request has left the window; the newest stays inside it.
    r.sweep_at(now + 2 * DAY).await.unwrap();
    assert!(store.ingress_request("t1", "r_window").await.unwrap().is_none());
    assert!(store.ingress_request("t1", "r_new").await.unwrap().is_some());
    // A repeat of a request inside the window still gets the first answer.
    let again = ingress("r_again", "src", Some("r_new"), 200, "{}");
    assert!(matches!(
        store.record_ingress(&again, &[], &[]).await.unwrap(),
        patchbay_store::IngressOutcome::Duplicate { .. }
    ));

    // The pending delivery still runs; afterwards its event may go.
    let claimed = store.claim_deliveries("w", now + 366 * DAY, 60_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dl_e_pending"]);
    assert!(store.ack_delivery("dl_e_pending", "w", &attempt(claimed[0].attempts, AttemptOutcome::Ok)).await.unwrap());
    r.sweep_at(now).await.unwrap();
    assert!(!exists(&store, "t1", "e_pending").await);
    assert!(exists(&store, "t1", "e_new").await);
}

fn rec(id: &str) -> IncomingRecord {
    IncomingRecord {
        external_id: id.into(),
        payload: format!(r#"{{"id":"{id}"}}"#),
        hash: id.len() as i64,
        deleted: false,
    }
}

fn gone(id: &str) -> IncomingRecord {
    IncomingRecord { external_id: id.into(), payload: "{}".into(), hash: 0, deleted: true }
}

/// One import run of t1's `src`/`items`: the records, the item errors; finished when `finish`.
async fn import(store: &Store, id: &str, records: &[IncomingRecord], errors: &[ItemError], finish: bool) {
    let run = NewRun {
        id: id.into(),
        tenant: "t1".into(),
        installation: "src".into(),
        entity: "items".into(),
        direction: Direction::Import,
        mode: SyncMode::Incremental,
        source: None,
        trigger: "api",
        schedule_id: None,
    };
    store.create_sync_run(&run).await.unwrap();
    let claimed = store.claim_sync_runs("w", now_ms(), 60_000, 10).await.unwrap().remove(0);
    let lease = Lease { run_id: id, owner: "w", lease_ms: 60_000, active_ms: 1 };
    let batch = ImportBatch {
        lease: Lease { run_id: id, owner: "w", lease_ms: 60_000, active_ms: 1 },
        tenant: "t1",
        installation: "src",
        entity: "items",
        records,
        errors,
        fetched: (records.len() + errors.len()) as i64,
        next_cursor: Some("c"),
        total: None,
        events: None,
    };
    store.commit_import_batch(&batch).await.unwrap();
    if finish {
        store.finish_import_run(&claimed, &lease, None).await.unwrap();
    }
}

/// An export run of `src`/`items` to `dst` writing `outcomes`, finished.
async fn export(store: &Store, id: &str, outcomes: &[ExportOutcome]) {
    let run = NewRun {
        id: id.into(),
        tenant: "t1".into(),
        installation: "dst".into(),
        entity: "items".into(),
        direction: Direction::Export,
        mode: SyncMode::Incremental,
        source: Some(("src".into(), "items".into())),
        trigger: "api",
        schedule_id: None,
    };
    store.create_sync_run(&run).await.unwrap();
    let claimed = store.claim_sync_runs("w", now_ms(), 60_000, 10).await.unwrap().remove(0);
    let lease = Lease { run_id: id, owner: "w", lease_ms: 60_000, active_ms: 1 };
    store.commit_export_batch(&lease, "t1", "dst", "items", outcomes, outcomes.len() as i64, "9").await.unwrap();
    store.finish_export_run(&claimed, &lease).await.unwrap();
}

fn item_error(n: &str) -> ItemError {
    ItemError { external_id: Some(n.into()), message: format!("{n} is broken") }
}

async fn local_id(store: &Store, external_id: &str) -> String {
    store.record("src", "items", external_id).await.unwrap().unwrap().local_id
}

async fn tombstones(db: &TestDb) -> i64 {
    count(db, "SELECT COUNT(*) FROM records WHERE op = 'deleted'").await
}

async fn sync_errors_and_tombstones_are_pruned_unless_still_needed(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (host, _dir) = host(&db).await;
    let r = &host.retention;
    let now = now_ms();

    import(&store, "run_1", &[rec("a"), rec("b"), rec("c"), rec("d")], &[item_error("x1")], true).await;
    // b was exported to dst: its link stays until the export sends its deletion.
    let b = local_id(&store, "b").await;
    export(
        &store,
        "run_x1",
        &[ExportOutcome::Written { local_id: b.clone(), external_id: "dst-b".into(), created: true }],
    )
    .await;
    import(&store, "run_2", &[gone("a"), gone("b"), gone("d")], &[item_error("x2")], true).await;
    // A run still going, with an error of its own.
    import(&store, "run_3", &[rec("e")], &[item_error("x3")], false).await;
    assert_eq!(tombstones(&db).await, 3);
    // Everything is 40 days old; d and x2 a day younger than the rest.
    exec(&db, &format!("UPDATE records SET deleted_at = {} WHERE op = 'deleted'", now - 40 * DAY)).await;
    exec(&db, &format!("UPDATE records SET deleted_at = {} WHERE external_id = 'd'", now - 39 * DAY)).await;
    exec(&db, &format!("UPDATE sync_errors SET created_at = {}", now - 40 * DAY)).await;
    exec(&db, &format!("UPDATE sync_errors SET created_at = {} WHERE run_id = 'run_2'", now - 39 * DAY)).await;

    // Count first (ages far above everything): one error and one tombstone per tenant stay.
    r.set_policy(
        "t1",
        &json!({ "sync_errors": { "max_age": "365d", "max_count": 1 }, "sync_changes": { "max_age": "365d", "max_count": 1 } }),
    )
    .await
    .unwrap();
    // While run_3 is active on the stream, no tombstone of it goes; its own error stays.
    r.sweep_at(now).await.unwrap();
    assert_eq!(tombstones(&db).await, 3);
    let errors = |run: &'static str| {
        let db = &db;
        async move { count(db, &format!("SELECT COUNT(*) FROM sync_errors WHERE run_id = '{run}'")).await }
    };
    // Count 1: the newest error is x2 (39 days); x1 goes, x3 stays with its running run.
    assert_eq!((errors("run_1").await, errors("run_2").await, errors("run_3").await), (0, 1, 1));
    exec(&db, "UPDATE sync_runs SET status = 'cancelled', lease_owner = NULL, lease_until = NULL WHERE id = 'run_3'")
        .await;
    exec(&db, &format!("UPDATE sync_errors SET created_at = {} WHERE run_id = 'run_3'", now - 41 * DAY)).await;
    r.sweep_at(now).await.unwrap();
    // Its run over, x3 goes too.
    assert_eq!((errors("run_1").await, errors("run_2").await, errors("run_3").await), (0, 1, 0));
    // Tombstones: d is the newest and stays by count; a goes; b is linked to dst and stays.
    assert!(store.record("src", "items", "a").await.unwrap().is_none());
    assert!(store.record("src", "items", "b").await.unwrap().is_some());
    assert!(store.record("src", "items", "d").await.unwrap().is_some());
    // Live records are never pruned.
    assert!(store.record("src", "items", "c").await.unwrap().is_some());
    assert!(store.record("src", "items", "e").await.unwrap().is_some());

    // By age: once the export sent b's deletion (the link is gone), b and d go too.
    export(&store, "run_x2", &[ExportOutcome::Deleted { local_id: b }]).await;
    r.set_policy("t1", &json!({ "sync_errors": { "max_age": "30d" }, "sync_changes": { "max_age": "30d" } }))
        .await
        .unwrap();
    r.sweep_at(now).await.unwrap();
    assert_eq!(tombstones(&db).await, 0);
    assert_eq!(errors("run_2").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM records WHERE op <> 'deleted'").await, 2);
}

/// Writers ingest webhooks with events and deliveries as fast as they can, claimers deliver,
/// and sweeps run the whole time with a policy keeping one event and one request per tenant:
/// every delivery is delivered exactly once (an event pruned under a pending delivery would take
/// the delivery with it), every request stays (all are inside the dedupe window), no call
/// fails, and the other tenant keeps everything.
async fn sweeps_during_full_speed_ingest_lose_nothing(backend: Backend) {
    let _turn = crate::HEAVY.lock().await;
    let (db, store) = setup(backend).await;
    let (host, _dir) = host(&db).await;
    let retention = host.retention.clone();
    retention
        .set_policy(
            "t1",
            &json!({ "events": { "max_count": 1, "max_age": "1s" }, "webhook_requests": { "max_count": 1, "max_age": "1s" } }),
        )
        .await
        .unwrap();
    const WRITERS: usize = 3;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 8;
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let writes: Vec<IngressWrite> = (0..PER_BATCH)
                    .map(|i| {
                        let id = format!("{w}_{b}_{i}");
                        let tenant = if i.is_multiple_of(4) { "t2" } else { "t1" };
                        let (source, dest) = if tenant == "t1" { ("src", "dst") } else { ("other", "other") };
                        let mut req = ingress(&format!("whr_{id}"), source, Some(&id), 200, "{}");
                        req.tenant = tenant.into();
                        req.received_at_ms = now_ms();
                        let mut e = event(&format!("evt_{id}"), &format!("k_{id}"), "thing.happened", now_ms());
                        e.tenant = tenant.into();
                        e.source_installation = source.into();
                        let mut d = delivery(&format!("dl_{id}"), &e.id, dest, None, 0);
                        d.tenant = tenant.into();
                        IngressWrite { ingress: req, events: vec![e], deliveries: vec![d] }
                    })
                    .collect();
                for answer in store.record_ingress_batch(&writes).await {
                    assert!(matches!(answer, Ok(patchbay_store::IngressOutcome::Recorded { .. })), "{answer:?}");
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let total = WRITERS * BATCHES * PER_BATCH;
    let mut claimers = Vec::new();
    for c in 0..2 {
        let (store, done) = (store.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let owner = format!("claimer-{c}");
            let mut acked = Vec::new();
            loop {
                let claimed = store.claim_deliveries(&owner, now_ms(), 60_000, 16).await.unwrap();
                if claimed.is_empty() {
                    if done.load(Ordering::Acquire) {
                        return acked;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                }
                for d in claimed {
                    // The event of a leased delivery is there.
                    assert!(store.event(&d.tenant, &d.event_id).await.unwrap().is_some(), "event of {} pruned", d.id);
                    let ok = store.ack_delivery(&d.id, &owner, &attempt(d.attempts, AttemptOutcome::Ok)).await.unwrap();
                    assert!(ok, "ack of {} refused", d.id);
                    acked.push(d.id);
                }
            }
        }));
    }
    let sweeper = {
        let (retention, done) = (retention.clone(), done.clone());
        tokio::spawn(async move {
            let mut sweeps = 0;
            let mut pruned = 0;
            while !done.load(Ordering::Acquire) || sweeps < 2 {
                let report = retention.sweep_at(now_ms() + 5_000).await.unwrap();
                assert_eq!(report.failures, 0, "{report:?}");
                pruned += report.of(patchbay_store::RetentionClass::Events);
                sweeps += 1;
            }
            (sweeps, pruned)
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    // Writers are done; wait until every delivery was delivered, then stop the claimers.
    patchbay_tests::eventually("every delivery delivered", std::time::Duration::from_secs(120), || async {
        let left = count(&db, "SELECT COUNT(*) FROM deliveries WHERE status <> 'delivered'").await;
        if left == 0 { Ok(()) } else { Err(format!("{left} not delivered")) }
    })
    .await;
    done.store(true, Ordering::Release);
    let mut acked: Vec<String> = Vec::new();
    for c in claimers {
        acked.extend(c.await.unwrap());
    }
    let (sweeps, pruned) = sweeper.await.unwrap();
    acked.sort();
    let before = acked.len();
    acked.dedup();
    assert_eq!(before, acked.len(), "a delivery was delivered twice");
    assert_eq!(acked.len(), total, "every delivery was delivered ({sweeps} sweeps)");
    // Raw requests are all inside the dedupe window: none went.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ingress_requests").await, total as i64);
    // t2 (defaults) keeps all of its events; t1's sweeps did prune.
    let t2 = (0..WRITERS * BATCHES * PER_BATCH).filter(|n| (n % PER_BATCH).is_multiple_of(4)).count() as i64;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE tenant = 't2'").await, t2);
    assert!(pruned > 0, "the sweeps pruned nothing");
    // A last sweep (everything is older than the 1 s age) leaves t1 none.
    retention.sweep_at(now_ms() + 5_000).await.unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events WHERE tenant = 't1'").await, 0);
}

async fn one_host_at_a_time_holds_the_job(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let now = now_ms();
    assert!(store.claim_job("retention", "a", 60_000, 3_600_000, now).await.unwrap());
    // Held: nobody else, not even after the interval.
    assert!(!store.claim_job("retention", "b", 60_000, 3_600_000, now).await.unwrap());
    assert!(store.renew_job("retention", "a", 60_000).await.unwrap());
    assert!(!store.renew_job("retention", "b", 60_000).await.unwrap());
    store.finish_job("retention", "a").await.unwrap();
    // Finished just now: not due again before the interval passes, on any host.
    assert!(!store.claim_job("retention", "b", 60_000, 3_600_000, now_ms()).await.unwrap());
    let later = now_ms() + 3_600_001;
    assert!(store.claim_job("retention", "b", 60_000, 3_600_000, later).await.unwrap());
    assert!(!store.claim_job("retention", "c", 60_000, 0, later + 59_999).await.unwrap());
    // An expired lease (its host died) is taken over.
    assert!(store.claim_job("retention", "c", 60_000, 0, later + 60_001).await.unwrap());
    assert!(!store.renew_job("retention", "b", 60_000).await.unwrap());
}

/// SQLite: the file returns the pages a sweep freed (auto_vacuum = INCREMENTAL from the start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_shrinks_after_a_sweep() {
    let (db, store) = setup(Backend::Sqlite).await;
    let (host, _dir) = host(&db).await;
    let old = now_ms() - 20 * DAY;
    let text = "x".repeat(4_000);
    for chunk in 0..20 {
        let logs: Vec<NewLogRecord> = (0..200).map(|n| log("t1", "src", old + chunk * 200 + n, &text)).collect();
        store.append_logs(&logs).await.unwrap();
    }
    let pages = || async { (count(&db, "PRAGMA page_count").await, count(&db, "PRAGMA freelist_count").await) };
    assert_eq!(count(&db, "PRAGMA auto_vacuum").await, 2, "new files use incremental auto-vacuum");
    let (before, _) = pages().await;
    let report = host.retention.sweep().await.unwrap();
    assert_eq!(report.of(patchbay_store::RetentionClass::Logs), 4_000);
    assert_eq!(report.free_pages, 0, "{report:?}");
    let (after, free) = pages().await;
    assert_eq!(free, 0);
    assert!(after * 4 < before, "the file kept its pages: {before} → {after}");
}

/// SQLite: a file made before retention (auto_vacuum = NONE) is switched at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_sqlite_file_is_switched_to_incremental_vacuum() {
    use sqlx::{ConnectOptions, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let mut conn = options.connect().await.unwrap();
    conn.execute("CREATE TABLE leftover (x TEXT); INSERT INTO leftover VALUES ('kept');").await.unwrap();
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, 0);
    drop(conn);
    let store = Store::open_sqlite(&path).await.unwrap();
    drop(store);
    let mut conn = options.connect().await.unwrap();
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, 2);
    let kept: String = sqlx::query_scalar("SELECT x FROM leftover").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, "kept");
}

fn expect_invalid(r: &crate::server::Resp, mentions: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.code(), "invalid_retention", "{r:?}");
    assert!(r.message().contains(mentions), "{mentions:?} not in {r:?}");
}

async fn policies_over_the_api_are_validated_and_tenant_scoped(backend: Backend) {
    let s = Server::start(backend).await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;

    let r = s.get("/v1/retention", &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["tenant"], "acme");
    assert_eq!(r.body["effective"]["events"], json!({ "max_age": "30d", "max_count": null }));
    assert_eq!(r.body["effective"]["webhook_requests"]["max_age"], "7d");
    assert_eq!(r.body["limits"]["events"]["max_age"], "365d");
    assert_eq!(r.body["policy"]["logs"], json!({ "max_age": null, "max_count": null }));

    let r = s
        .call(
            Method::PUT,
            "/v1/retention",
            &acme,
            Some(json!({ "events": { "max_age": "2160h", "max_count": 5000 }, "logs": null, "sync_errors": { "max_age": null } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["effective"]["events"], json!({ "max_age": "90d", "max_count": 5000 }));
    assert_eq!(r.body["policy"]["events"], json!({ "max_age": "90d", "max_count": 5000 }));
    assert_eq!(r.body["effective"]["logs"]["max_age"], "14d");
    // The GET's policy can be sent back as it is.
    let r = s.get("/v1/retention", &acme).await;
    let again = s.call(Method::PUT, "/v1/retention", &acme, Some(r.body["policy"].clone())).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["policy"], r.body["policy"]);

    // Another tenant sees its own (defaults); a tenant key cannot reach the operator's paths.
    let r = s.get("/v1/retention", &globex).await;
    assert_eq!(r.body["effective"]["events"]["max_age"], "30d");
    for method in [Method::GET, Method::PUT] {
        let body = (method == Method::PUT).then(|| json!({}));
        let r = s.call(method.clone(), "/v1/tenants/acme/retention", &globex, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}: {r:?}");
    }
    // A body naming another tenant is not a field.
    let r = s.call(Method::PUT, "/v1/retention", &globex, Some(json!({ "tenant": "acme" }))).await;
    expect_invalid(&r, "unknown retention class \"tenant\"");
    assert_eq!(s.get("/v1/retention", &acme).await.body["effective"]["events"]["max_count"], 5000);

    // The operator reads and sets any tenant's, within the same limits.
    let r = s.get("/v1/tenants/acme/retention", &s.operator).await;
    assert_eq!(r.body["policy"]["events"]["max_count"], 5000, "{r:?}");
    let r = s
        .call(Method::PUT, "/v1/tenants/globex/retention", &s.operator, Some(json!({ "logs": { "max_count": 10 } })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(s.get("/v1/retention", &globex).await.body["effective"]["logs"]["max_count"], 10);
    let r = s
        .call(
            Method::PUT,
            "/v1/tenants/globex/retention",
            &s.operator,
            Some(json!({ "events": { "max_age": "366d" } })),
        )
        .await;
    expect_invalid(&r, "events.max_age");
    let r = s.get("/v1/tenants/nobody/retention", &s.operator).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.call(Method::PUT, "/v1/tenants/nobody/retention", &s.operator, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // The operator has no tenant of its own.
    assert_eq!(s.get("/v1/retention", &s.operator).await.status, StatusCode::FORBIDDEN);

    // A view-only key reads but does not set.
    let r = s.post("/v1/tenants/acme/keys", &s.operator, json!({ "scopes": ["view"] })).await;
    let viewer = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/v1/retention", &viewer).await.status, StatusCode::OK);
    let r = s.call(Method::PUT, "/v1/retention", &viewer, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    let bad: Vec<(Value, &str)> = vec![
        (json!({ "events": { "max_age": "30 days" } }), "events.max_age"),
        (json!({ "events": { "max_age": "0d" } }), "shortest is 1s"),
        (json!({ "events": { "max_age": "-1d" } }), "events.max_age"),
        (json!({ "events": { "max_age": "366d" } }), "above the operator's limit of 365d"),
        (json!({ "webhook_requests": { "max_age": "91d" } }), "webhook_requests.max_age"),
        (json!({ "events": { "max_age": "９９d" } }), "events.max_age"),
        (json!({ "events": { "max_age": "7ｄ" } }), "events.max_age"),
        (json!({ "events": { "max_age": "99999999999999999999999999d" } }), "longer than 3650d"),
        (json!({ "events": { "max_age": 30 } }), "events.max_age"),
        (json!({ "logs": { "max_count": -1 } }), "logs.max_count"),
        (json!({ "logs": { "max_count": 0 } }), "logs.max_count"),
        (json!({ "logs": { "max_count": 1.5 } }), "logs.max_count"),
        (json!({ "logs": { "max_count": "10" } }), "logs.max_count"),
        (json!({ "logs": { "max_count": 1_000_000_001u64 } }), "from 1 to 1000000000"),
        (json!({ "logs": { "max_count": u64::MAX } }), "logs.max_count"),
        (json!({ "logs": { "max_count": 1e30 } }), "logs.max_count"),
        (json!({ "evénements": {} }), "unknown retention class \"evénements\""),
        (json!({ "events": { "max_ages": "1d" } }), "unknown field \"max_ages\" in events"),
        (json!({ "events": "30d" }), "events must be an object"),
    ];
    let mut long = serde_json::Map::new();
    long.insert("𝓮𝓿𝓮𝓷𝓽𝓼".repeat(100), json!({}));
    let mut bad = bad;
    bad.push((Value::Object(long), "…"));
    for (body, mentions) in bad {
        let r = s.call(Method::PUT, "/v1/retention", &acme, Some(body.clone())).await;
        expect_invalid(&r, mentions);
        assert!(r.message().len() < 400, "{body}: the message repeats the input: {r:?}");
    }
    // Nothing of that changed acme's policy.
    assert_eq!(s.get("/v1/retention", &acme).await.body["effective"]["events"]["max_count"], 5000);
    // Not JSON objects.
    let r = s.call(Method::PUT, "/v1/retention", &acme, Some(json!([1]))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");

    let r = s.get("/metrics", &s.operator).await;
    let text = r.body.as_str().unwrap_or_default();
    assert!(text.contains("patchbay_retention_pruned_total{class=\"events\"}"), "{text}");
    assert!(text.contains("patchbay_retention_sweeps_total"), "{text}");
}
