//! The sync store on SQLite and PostgreSQL (`sync_store::sqlite::<name>`, `…::postgres::<name>`):
//! runs and leases, one batch = one transaction, the records store's change sequence, deletion
//! sweeps, export links, mappings and schedules firing once across concurrent hosts.

use std::sync::Arc;

use patchbay_core::now_ms;
use patchbay_services::sync::engine::content_hash;
use patchbay_store::sync::{
    Counts, Direction, ExportOutcome, ImportBatch, IncomingRecord, ItemError, Lease, NewRun, NewSchedule, RunRow,
    RunStatus, SyncMode, is_lease_lost,
};
use patchbay_store::{Backend, PageRequest, Store, StoreError};

use crate::outbox::{count, setup};

on_both_backends!(
    runs_queue_once_per_stream_and_move_through_their_states,
    batches_commit_records_cursor_and_counters_together,
    unchanged_records_keep_their_sequence_and_deletions_are_tracked,
    a_lost_lease_refuses_the_batch_and_writes_nothing,
    full_run_marks_unseen_records_deleted_unless_items_failed,
    item_errors_are_stored_and_capped,
    incremental_runs_start_from_the_last_successful_cursor,
    export_links_follow_write_outcomes,
    schedules_fire_once_across_concurrent_hosts_and_do_not_pile_up,
    mappings_are_versioned_per_entity,
);

fn run(id: &str, entity: &str, mode: SyncMode) -> NewRun {
    NewRun {
        id: id.into(),
        tenant: "t1".into(),
        installation: "src".into(),
        entity: entity.into(),
        direction: Direction::Import,
        mode,
        source: None,
        trigger: "api",
        schedule_id: None,
    }
}

fn rec(id: &str, payload: &str) -> IncomingRecord {
    IncomingRecord { external_id: id.into(), payload: payload.into(), hash: content_hash(payload), deleted: false }
}

fn gone(id: &str) -> IncomingRecord {
    IncomingRecord { external_id: id.into(), payload: "{}".into(), hash: 0, deleted: true }
}

fn lease<'a>(run: &'a str, owner: &'a str) -> Lease<'a> {
    Lease { run_id: run, owner, lease_ms: 60_000, active_ms: 5 }
}

/// Claims the one due run for `owner`.
async fn claim(store: &Store, owner: &str) -> RunRow {
    let mut claimed = store.claim_sync_runs(owner, now_ms(), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    claimed.remove(0)
}

async fn commit(
    store: &Store,
    run: &str,
    owner: &str,
    records: &[IncomingRecord],
    errors: &[ItemError],
    cursor: &str,
) -> Result<Counts, StoreError> {
    let batch = ImportBatch {
        lease: lease(run, owner),
        tenant: "t1",
        installation: "src",
        entity: "items",
        records,
        errors,
        fetched: (records.len() + errors.len()) as i64,
        next_cursor: Some(cursor),
        total: Some(100),
        events: None,
    };
    store.commit_import_batch(&batch).await.map(|o| o.counts)
}

async fn runs_queue_once_per_stream_and_move_through_their_states(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let r = store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    assert_eq!(r.status, RunStatus::Queued);
    // One active run per stream: the second names the first.
    let err = store.create_sync_run(&run("run_2", "items", SyncMode::Full)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("run_1")), "{err:?}");
    // Another entity is another stream.
    store.create_sync_run(&run("run_3", "other", SyncMode::Full)).await.unwrap();
    // Cancelling a queued run ends it at once; cancelling again is a conflict.
    let c = store.cancel_sync_run("t1", "run_3").await.unwrap();
    assert_eq!(c.status, RunStatus::Cancelled);
    assert!(matches!(store.cancel_sync_run("t1", "run_3").await, Err(StoreError::Conflict(_))));
    // Other tenants see nothing.
    assert!(store.sync_run("t2", "run_1").await.unwrap().is_none());
    assert!(matches!(store.cancel_sync_run("t2", "run_1").await, Err(StoreError::NotFound(_))));

    let claimed = claim(&store, "host-a").await;
    assert_eq!((claimed.id.as_str(), claimed.status), ("run_1", RunStatus::Running));
    assert!(claimed.started_at.is_some());
    // Nothing else is due; a held lease is not claimable.
    assert!(store.claim_sync_runs("host-b", now_ms(), 60_000, 10).await.unwrap().is_empty());
    // Cancelling a running run asks it to stop; the holder sees it on its next write.
    let c = store.cancel_sync_run("t1", "run_1").await.unwrap();
    assert_eq!(c.status, RunStatus::Running);
    assert!(c.cancel_requested);
    assert!(store.renew_sync_lease(&lease("run_1", "host-a"), None).await.unwrap());
    store.end_sync_run(&lease("run_1", "host-a"), RunStatus::Cancelled, None).await.unwrap();
    // Resuming queues it again with its cursor; a second resume is a conflict.
    let r = store.resume_sync_run("t1", "run_1").await.unwrap();
    assert_eq!(r.status, RunStatus::Queued);
    assert!(!r.cancel_requested);
    assert!(matches!(store.resume_sync_run("t1", "run_1").await, Err(StoreError::Conflict(_))));
    let listed = store.sync_runs("t1", &patchbay_store::sync::RunFilter::default()).await.unwrap().items;
    assert_eq!(listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run_3", "run_1"]);
}

async fn batches_commit_records_cursor_and_counters_together(backend: Backend) {
    let (db, store) = setup(backend).await;
    store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    claim(&store, "w").await;
    let records: Vec<IncomingRecord> = (0..300).map(|i| rec(&format!("r{i}"), &format!(r#"{{"n":{i}}}"#))).collect();
    let c = commit(&store, "run_1", "w", &records, &[], "c1").await.unwrap();
    assert_eq!((c.fetched, c.created, c.updated, c.unchanged), (300, 300, 0, 0));
    let r = store.sync_run("t1", "run_1").await.unwrap().unwrap();
    assert_eq!((r.cursor.as_deref(), r.batches, r.counts.created, r.total), (Some("c1"), 1, 300, Some(100)));
    // The change feed pages in order, each record once, numbered 1..=300.
    let page = store.record_changes("src", "items", 0, 200).await.unwrap();
    assert_eq!(page.len(), 200);
    assert_eq!(page[0].seq, 1);
    assert_eq!(page[0].external_id, "r0");
    assert_eq!(page[0].op, "created");
    let rest = store.record_changes("src", "items", page[199].seq, 200).await.unwrap();
    assert_eq!(rest.len(), 100);
    assert_eq!(rest[99].seq, 300);
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT local_id) FROM records").await, 300);
    // A record that changed moves to the end of the feed with a new number; its local id stays.
    let before = store.record("src", "items", "r5").await.unwrap().unwrap();
    let c = commit(&store, "run_1", "w", &[rec("r5", r#"{"n":"five"}"#)], &[], "c2").await.unwrap();
    assert_eq!((c.updated, c.created), (1, 0));
    let after = store.record("src", "items", "r5").await.unwrap().unwrap();
    assert_eq!((after.seq, after.op.as_str(), after.local_id.as_str()), (301, "updated", before.local_id.as_str()));
    assert_eq!(after.payload, r#"{"n":"five"}"#);
    assert_eq!(after.first_seen_at, before.first_seen_at);
    assert_eq!(store.record_changes("src", "items", 300, 10).await.unwrap().len(), 1);
    let r = store.sync_run("t1", "run_1").await.unwrap().unwrap();
    assert_eq!((r.batches, r.counts.fetched, r.cursor.as_deref()), (2, 301, Some("c2")));
}

async fn unchanged_records_keep_their_sequence_and_deletions_are_tracked(backend: Backend) {
    let (db, store) = setup(backend).await;
    store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    claim(&store, "w").await;
    commit(&store, "run_1", "w", &[rec("a", r#"{"v":1}"#), rec("b", r#"{"v":2}"#)], &[], "1").await.unwrap();
    let c = commit(&store, "run_1", "w", &[rec("a", r#"{"v":1}"#), rec("b", r#"{"v":2}"#)], &[], "2").await.unwrap();
    assert_eq!((c.unchanged, c.created, c.updated), (2, 0, 0));
    assert_eq!(count(&db, "SELECT MAX(seq) FROM records").await, 2);
    // A deletion keeps the last payload and gets its own change.
    let c = commit(&store, "run_1", "w", &[gone("a"), gone("never-seen")], &[], "3").await.unwrap();
    assert_eq!((c.deleted, c.unchanged), (1, 1));
    let a = store.record("src", "items", "a").await.unwrap().unwrap();
    assert_eq!((a.op.as_str(), a.seq, a.payload.as_str()), ("deleted", 3, r#"{"v":1}"#));
    assert!(a.deleted_at.is_some());
    assert!(store.record("src", "items", "never-seen").await.unwrap().is_none());
    // Deleting again changes nothing; coming back is a creation with the same local id.
    let c = commit(&store, "run_1", "w", &[gone("a")], &[], "4").await.unwrap();
    assert_eq!(c.unchanged, 1);
    let c = commit(&store, "run_1", "w", &[rec("a", r#"{"v":1}"#)], &[], "5").await.unwrap();
    assert_eq!(c.created, 1);
    let back = store.record("src", "items", "a").await.unwrap().unwrap();
    assert_eq!((back.op.as_str(), back.seq, back.local_id.as_str()), ("created", 4, a.local_id.as_str()));
    assert_eq!(store.record_stats("src", "items").await.unwrap(), (2, 0, 4));
}

async fn a_lost_lease_refuses_the_batch_and_writes_nothing(backend: Backend) {
    let (db, store) = setup(backend).await;
    store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    // Claimed with a 1 ms lease; a second later (explicit times, no sleeping) it is over and
    // another host takes the run over.
    let now = now_ms();
    let first = store.claim_sync_runs("dead-host", now, 1, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let mut taken = store.claim_sync_runs("live-host", now + 1_000, 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let taken = taken.remove(0);
    assert_eq!(taken.lease_owner.as_deref(), Some("live-host"));
    let err = commit(&store, "run_1", "dead-host", &[rec("x", "{}")], &[], "c").await.unwrap_err();
    assert!(is_lease_lost(&err), "{err:?}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM records").await, 0);
    assert!(is_lease_lost(&store.renew_sync_lease(&lease("run_1", "dead-host"), None).await.unwrap_err()));
    assert!(store.end_sync_run(&lease("run_1", "dead-host"), RunStatus::Failed, Some("x")).await.is_err());
    let r = store.sync_run("t1", "run_1").await.unwrap().unwrap();
    assert_eq!((r.status, r.cursor), (RunStatus::Running, None));
    commit(&store, "run_1", "live-host", &[rec("x", "{}")], &[], "c").await.unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM records").await, 1);
}

async fn full_run_marks_unseen_records_deleted_unless_items_failed(backend: Backend) {
    let (db, store) = setup(backend).await;
    // First full run: a, b, c.
    store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    let r1 = claim(&store, "w").await;
    commit(&store, "run_1", "w", &[rec("a", "{}"), rec("b", "{}"), rec("c", "{}")], &[], "end").await.unwrap();
    store.finish_import_run(&r1, &lease("run_1", "w"), None).await.unwrap();
    // Second full run sees only a: b and c are gone.
    store.create_sync_run(&run("run_2", "items", SyncMode::Full)).await.unwrap();
    let r2 = claim(&store, "w").await;
    commit(&store, "run_2", "w", &[rec("a", "{}")], &[], "end").await.unwrap();
    let swept = store.finish_import_run(&r2, &lease("run_2", "w"), None).await.unwrap();
    assert_eq!(swept.counts.deleted, 2);
    assert_eq!(store.record_stats("src", "items").await.unwrap(), (1, 2, 5));
    let r = store.sync_run("t1", "run_2").await.unwrap().unwrap();
    assert_eq!((r.status, r.counts.deleted), (RunStatus::Succeeded, 2));
    // A third full run where a record failed to read: nothing is swept.
    commit_and_finish_with_error(&store, "run_3").await;
    assert_eq!(store.record_stats("src", "items").await.unwrap(), (1, 2, 5));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sync_runs WHERE status = 'succeeded'").await, 3);
}

async fn commit_and_finish_with_error(store: &Store, id: &str) {
    store.create_sync_run(&run(id, "items", SyncMode::Full)).await.unwrap();
    let r = claim(store, "w").await;
    let errors = [ItemError { external_id: None, message: "unreadable row".into() }];
    commit(store, id, "w", &[], &errors, "end").await.unwrap();
    let swept = store.finish_import_run(&r, &lease(id, "w"), None).await.unwrap();
    assert_eq!(swept.counts.deleted, 0);
}

async fn item_errors_are_stored_and_capped(backend: Backend) {
    let (_db, store) = setup(backend).await;
    store.create_sync_run(&run("run_1", "items", SyncMode::Full)).await.unwrap();
    claim(&store, "w").await;
    let errors: Vec<ItemError> =
        (0..700).map(|i| ItemError { external_id: Some(format!("e{i}")), message: format!("bad row {i}") }).collect();
    let c = commit(&store, "run_1", "w", &[rec("ok", "{}")], &errors, "1").await.unwrap();
    assert_eq!((c.created, c.failed), (1, 700));
    commit(&store, "run_1", "w", &[], &errors, "2").await.unwrap();
    let r = store.sync_run("t1", "run_1").await.unwrap().unwrap();
    assert_eq!(r.counts.failed, 1400);
    // Stored up to the cap, numbered in order.
    let first = store.sync_errors("run_1", &PageRequest::first(1000)).await.unwrap().items;
    assert_eq!(first.len(), 1000);
    assert_eq!((first[0].n, first[0].external_id.as_deref(), first[0].message.as_str()), (1, Some("e0"), "bad row 0"));
    assert!(store.sync_errors("run_1", &PageRequest::after(Some(1000), 10)).await.unwrap().items.is_empty());
}

async fn incremental_runs_start_from_the_last_successful_cursor(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let first = store.create_sync_run(&run("run_1", "items", SyncMode::Incremental)).await.unwrap();
    assert_eq!(first.start_cursor, None);
    let r = claim(&store, "w").await;
    commit(&store, "run_1", "w", &[rec("a", "{}")], &[], "watermark-1").await.unwrap();
    store.finish_import_run(&r, &lease("run_1", "w"), None).await.unwrap();
    let second = store.create_sync_run(&run("run_2", "items", SyncMode::Incremental)).await.unwrap();
    assert_eq!((second.start_cursor.as_deref(), second.cursor.as_deref()), (Some("watermark-1"), Some("watermark-1")));
    // A full run starts from the beginning whatever was saved.
    store.cancel_sync_run("t1", "run_2").await.unwrap();
    let full = store.create_sync_run(&run("run_3", "items", SyncMode::Full)).await.unwrap();
    assert_eq!(full.cursor, None);
}

async fn export_links_follow_write_outcomes(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let export = NewRun {
        installation: "dst".into(),
        direction: Direction::Export,
        source: Some(("src".into(), "items".into())),
        ..run("run_x", "rows", SyncMode::Full)
    };
    store.create_sync_run(&export).await.unwrap();
    claim(&store, "w").await;
    let outcomes = [
        ExportOutcome::Written { local_id: "rec_1".into(), external_id: "ext-1".into(), created: true },
        ExportOutcome::Written { local_id: "rec_2".into(), external_id: "ext-2".into(), created: true },
        ExportOutcome::Failed { local_id: "rec_3".into(), message: "rejected".into() },
        ExportOutcome::Skipped,
    ];
    let c = store.commit_export_batch(&lease("run_x", "w"), "t1", "dst", "rows", &outcomes, 4, "17").await.unwrap();
    assert_eq!((c.counts.created, c.counts.failed, c.counts.unchanged), (2, 1, 1));
    let links = store.record_links("dst", "rows", &["rec_1", "rec_2", "rec_3"]).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links["rec_1"], "ext-1");
    let outcomes = [ExportOutcome::Deleted { local_id: "rec_1".into() }];
    store.commit_export_batch(&lease("run_x", "w"), "t1", "dst", "rows", &outcomes, 1, "18").await.unwrap();
    assert_eq!(store.record_links("dst", "rows", &["rec_1", "rec_2"]).await.unwrap().len(), 1);
    let r = store.sync_run("t1", "run_x").await.unwrap().unwrap();
    assert_eq!((r.cursor.as_deref(), r.counts.deleted), (Some("18"), 1));
    assert_eq!(
        store.sync_errors("run_x", &PageRequest::first(10)).await.unwrap().items[0].external_id.as_deref(),
        Some("rec_3")
    );
}

async fn schedules_fire_once_across_concurrent_hosts_and_do_not_pile_up(backend: Backend) {
    let (db, store) = setup(backend).await;
    let now = now_ms();
    for (id, entity) in [("sch_1", "items"), ("sch_2", "users")] {
        store
            .create_sync_schedule(&NewSchedule {
                id: id.into(),
                tenant: "t1".into(),
                installation: "src".into(),
                entity: entity.into(),
                direction: Direction::Import,
                mode: SyncMode::Incremental,
                source: None,
                interval_secs: Some(60),
                cron: None,
                enabled: true,
                next_run_at: now - 1,
            })
            .await
            .unwrap();
    }
    // Eight "hosts" fire at once: each schedule queues exactly one run.
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.fire_sync_schedules(now, 10, |_, t| t + 60_000).await.unwrap().len() }));
    }
    let mut fired = 0;
    for t in tasks {
        fired += t.await.unwrap();
    }
    assert_eq!(fired, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sync_runs WHERE trigger = 'schedule'").await, 2);
    // Due again while its run is still queued: it moves on without queueing a second run.
    let later = now + 61_000;
    let queued = store.fire_sync_schedules(later, 10, |_, t| t + 60_000).await.unwrap();
    assert!(queued.is_empty());
    let s = store.sync_schedule("t1", "sch_1").await.unwrap().unwrap();
    assert_eq!(s.next_run_at, later + 60_000);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sync_runs").await, 2);
    // A disabled schedule does not fire, however late it is: `users` has no active run left
    // (its run is cancelled), so only being disabled keeps it from queueing one.
    store.update_sync_schedule("t1", "sch_2", SyncMode::Full, Some(60), None, false, now).await.unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let users: String =
        sqlx::query_scalar("SELECT id FROM sync_runs WHERE entity = 'users'").fetch_one(&pool).await.unwrap();
    pool.close().await;
    store.cancel_sync_run("t1", &users).await.unwrap();
    let fired = store.fire_sync_schedules(now + 3_600_000, 10, |_, t| t + 60_000).await.unwrap();
    assert!(fired.iter().all(|r| r.entity != "users"), "{fired:?}");
    let s2 = store.sync_schedule("t1", "sch_2").await.unwrap().unwrap();
    assert_eq!(s2.next_run_at, now, "a disabled schedule is not even moved on");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sync_runs WHERE entity = 'users'").await, 1);
    let dup = NewSchedule {
        id: "sch_3".into(),
        tenant: "t1".into(),
        installation: "src".into(),
        entity: "items".into(),
        direction: Direction::Import,
        mode: SyncMode::Full,
        source: None,
        interval_secs: None,
        cron: Some("* * * * *".into()),
        enabled: true,
        next_run_at: now,
    };
    assert!(matches!(store.create_sync_schedule(&dup).await, Err(StoreError::Conflict(_))));
    assert!(store.delete_sync_schedule("t1", "sch_1").await.unwrap());
    assert!(!store.delete_sync_schedule("t2", "sch_2").await.unwrap());
}

async fn mappings_are_versioned_per_entity(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let m = store.put_sync_mapping("t1", "src", "items", r#"{"fields":[]}"#).await.unwrap();
    assert_eq!(m.revision, 1);
    let m = store.put_sync_mapping("t1", "src", "items", r#"{"fields":[],"keep_unmapped":true}"#).await.unwrap();
    assert_eq!(m.revision, 2);
    assert_eq!(
        store.sync_mapping("src", "items").await.unwrap().unwrap().mapping,
        r#"{"fields":[],"keep_unmapped":true}"#
    );
    assert!(store.sync_mapping("src", "users").await.unwrap().is_none());
    assert_eq!(store.sync_mappings("src").await.unwrap().len(), 1);
    assert!(matches!(store.put_sync_mapping("t1", "nope", "items", "{}").await, Err(StoreError::NotFound(_))));
    assert!(store.delete_sync_mapping("src", "items").await.unwrap());
    assert!(!store.delete_sync_mapping("src", "items").await.unwrap());
}

/// Change events that never take a change: a batch committed with them goes through the pool's
/// transaction (the path for batches whose changes routes may take).
struct NoEvents;

impl patchbay_store::sync::ChangeEvents for NoEvents {
    fn events_for(
        &self,
        _: &patchbay_store::sync::Change<'_>,
    ) -> Option<(patchbay_store::NewEvent, Vec<patchbay_store::NewDelivery>)> {
        None
    }
}

/// The records, counters and cursor one sequence of batches leaves behind, written through the
/// SQLite batch writer (`pooled` false) or the pool's transaction.
async fn batch_sequence(pooled: bool) -> (Vec<Counts>, Vec<(String, String, i64, String, bool)>, Vec<RunRow>) {
    let (_db, store) = setup(Backend::Sqlite).await;
    let events: Option<&dyn patchbay_store::sync::ChangeEvents> = if pooled { Some(&NoEvents) } else { None };
    let mut counts = Vec::new();
    let mut runs = Vec::new();
    let batches: [(&str, Vec<IncomingRecord>, Vec<ItemError>); 4] = [
        ("run_1", (0..10).map(|i| rec(&format!("r{i}"), &format!(r#"{{"n":{i}}}"#))).collect(), vec![]),
        (
            "run_1",
            vec![rec("r0", r#"{"n":"changed"}"#), rec("r1", r#"{"n":1}"#), gone("r2"), gone("never-stored")],
            vec![ItemError { external_id: Some("r3".into()), message: "unreadable".into() }],
        ),
        // Back after its deletion, changed, deleted (then already deleted in the next batch).
        ("run_2", vec![rec("r2", r#"{"n":"back"}"#), rec("r5", r#"{"n":55}"#), gone("r6")], vec![]),
        ("run_2", vec![rec("r7", r#"{"n":7}"#), gone("r6"), rec("new", r#"{"n":"new"}"#)], vec![]),
    ];
    for (i, (run_id, records, errors)) in batches.iter().enumerate() {
        if i == 0 || i == 2 {
            store.create_sync_run(&run(run_id, "items", SyncMode::Full)).await.unwrap();
            claim(&store, "w").await;
        }
        let batch = ImportBatch {
            lease: lease(run_id, "w"),
            tenant: "t1",
            installation: "src",
            entity: "items",
            records,
            errors,
            fetched: records.len() as i64,
            next_cursor: Some("c"),
            total: None,
            events,
        };
        counts.push(store.commit_import_batch(&batch).await.unwrap().counts);
        if i == 1 || i == 3 {
            let r = store.sync_run("t1", run_id).await.unwrap().unwrap();
            counts.push(store.finish_import_run(&r, &lease(run_id, "w"), events).await.unwrap().counts);
            let mut r = store.sync_run("t1", run_id).await.unwrap().unwrap();
            (r.created_at, r.updated_at, r.started_at, r.finished_at, r.next_attempt_at) = (0, 0, None, None, 0);
            runs.push(r);
        }
    }
    let records = store
        .record_changes("src", "items", 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.external_id, r.payload, r.seq, r.op, r.deleted_at.is_some()))
        .collect();
    (counts, records, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_batch_writer_stores_what_the_pool_stores() {
    let direct = batch_sequence(false).await;
    let pooled = batch_sequence(true).await;
    assert_eq!(format!("{:?}", direct.0), format!("{:?}", pooled.0));
    assert_eq!(direct.1, pooled.1);
    assert_eq!(format!("{:?}", direct.2), format!("{:?}", pooled.2));
    // The sequence did what it says: r2 came back, r6 and the unseen ones of run_2 are deleted.
    let ops: Vec<(&str, &str)> = direct.1.iter().map(|r| (r.0.as_str(), r.3.as_str())).collect();
    assert!(ops.contains(&("r2", "created")) && ops.contains(&("r6", "deleted")), "{ops:?}");
    assert!(ops.contains(&("r9", "deleted")) && ops.contains(&("new", "created")), "{ops:?}");
    assert!(direct.0.iter().map(|c| c.deleted).sum::<i64>() >= 8, "{:?}", direct.0);
}
