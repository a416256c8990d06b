//! The event log and outbox store, on SQLite and PostgreSQL (`outbox::sqlite::<name>`,
//! `outbox::postgres::<name>`), plus the retry schedule (`outbox::retry_*`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patchbay_core::retry::{Jitter, NoJitter, RetrySchedule, SystemJitter};
use patchbay_store::{
    AttemptOutcome, AttemptRecord, Backend, DeliveryLease, DeliveryRow, DeliveryStatus, EventFilter, GroupCommitConfig,
    GroupCommitter, IngressOutcome, IngressWrite, NewDelivery, NewEvent, NewIngress, NewInstallation, NewVersion,
    OutboxDepth, PageRequest, PublishOutcome, Retry, Settlement, Settler, Store, StoreError,
};
use patchbay_tests::db::{TestDb, fresh_database};

on_both_backends!(
    ingress_duplicate_gets_the_first_answer_and_writes_nothing,
    ingress_is_one_transaction,
    concurrent_duplicate_webhooks_record_once,
    emitted_events_are_idempotent_per_source,
    claim_ack_fail_dead_and_redrive,
    settlements_commit_together_and_each_is_fenced,
    expired_lease_is_recovered_by_another_owner,
    concurrent_claimers_never_share_a_lease,
    events_list_filters_and_pages,
    depth_and_next_due,
    deleting_an_installation_removes_its_events,
    deliveries_leased_as_written_run_without_a_claim_and_expire_like_claimed_ones,
);

pub(crate) async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

pub(crate) async fn counts(db: &TestDb) -> [i64; 4] {
    [
        count(db, "SELECT COUNT(*) FROM ingress_requests").await,
        count(db, "SELECT COUNT(*) FROM events").await,
        count(db, "SELECT COUNT(*) FROM deliveries").await,
        count(db, "SELECT COUNT(*) FROM delivery_attempts").await,
    ]
}

fn installation(tenant: &str, id: &str) -> NewInstallation {
    NewInstallation {
        id: id.into(),
        tenant: tenant.into(),
        name: id.into(),
        connector_owner: None,
        connector_id: "hook".into(),
        version: "1.0.0".into(),
        api_version: None,
        config_json: "{}".into(),
        limits_json: "{}".into(),
        credentials_from: None,
        enabled: true,
    }
}

/// Tenants `t1` (installations `src`, `dst`, `dst2`) and `t2` (installation `other`).
pub(crate) async fn setup(backend: Backend) -> (TestDb, Store) {
    let db = fresh_database(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.create_tenant("t1", "One").await.unwrap();
    store.create_tenant("t2", "Two").await.unwrap();
    let bytes = b"component".to_vec();
    let version = NewVersion {
        owner: None,
        connector_id: "hook".into(),
        version: "1.0.0".into(),
        digest: hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)),
        manifest_json: "{}".into(),
        category: "webhook-endpoint".into(),
        title: "Hook".into(),
        description: "d".into(),
        provider: "Example".into(),
        bundle_id: None,
        size: bytes.len() as i64,
        signed_by: None,
        state: patchbay_store::VersionState::Ready,
    };
    assert_eq!(store.publish(&version, &bytes).await.unwrap(), PublishOutcome::Created);
    for (tenant, id) in [("t1", "src"), ("t1", "dst"), ("t1", "dst2"), ("t2", "other")] {
        store.create_installation(&installation(tenant, id)).await.unwrap();
    }
    (db, store)
}

pub(crate) fn event(id: &str, key: &str, event_type: &str, at: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        tenant: "t1".into(),
        source_installation: "src".into(),
        event_type: event_type.into(),
        subject: Some(format!("subject of {id}")),
        payload: format!(r#"{{"event":"{id}"}}"#),
        idempotency_key: key.into(),
        created_at_ms: at,
    }
}

pub(crate) fn delivery(id: &str, event_id: &str, destination: &str, route: Option<&str>, due: i64) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        event_id: event_id.into(),
        tenant: "t1".into(),
        route_id: route.map(str::to_string),
        destination_installation: destination.into(),
        operation: "send".into(),
        payload: format!(r#"{{"delivery":"{id}"}}"#),
        idempotency_key: format!("idem:{id}"),
        next_attempt_at_ms: due,
        lease: None,
    }
}

pub(crate) fn ingress(id: &str, installation: &str, key: Option<&str>, status: u16, answer: &str) -> NewIngress {
    NewIngress {
        id: id.into(),
        tenant: "t1".into(),
        installation: installation.into(),
        received_at_ms: 1_000,
        method: "POST".into(),
        path: format!("/hooks/h_{installation}?x=1"),
        headers_json: r#"[["webhook-id","msg_1"],["Content-Type","application/json"]]"#.into(),
        body: vec![b'{', 0xff, 0x00, b'}', b'\r', b'\n'],
        dedupe_key: key.map(str::to_string),
        response_status: status,
        response_body: answer.into(),
    }
}

fn attempt(n: i64, outcome: AttemptOutcome, error: Option<&str>) -> AttemptRecord {
    AttemptRecord { attempt: n, started_at_ms: 10 * n, duration_ms: 3, outcome, error: error.map(str::to_string) }
}

async fn ingress_duplicate_gets_the_first_answer_and_writes_nothing(backend: Backend) {
    let (db, store) = setup(backend).await;
    let events = [event("evt_a", "k_a", "expense.created", 1_000), event("evt_b", "k_b", "expense.updated", 1_000)];
    let deliveries = [
        delivery("dl_1", "evt_a", "dst", Some("r1"), 1_000),
        delivery("dl_2", "evt_a", "dst2", Some("r2"), 1_000),
        delivery("dl_3", "evt_b", "dst", Some("r1"), 1_000),
    ];
    let first = ingress("in_1", "src", Some("msg_1"), 202, r#"{"accepted":2}"#);
    let outcome = store.record_ingress(&first, &events, &deliveries).await.unwrap();
    let IngressOutcome::Recorded { events: emitted } = outcome else { panic!("not recorded: {outcome:?}") };
    assert_eq!(
        emitted.iter().map(|e| (e.id.as_str(), e.duplicate)).collect::<Vec<_>>(),
        [("evt_a", false), ("evt_b", false)]
    );
    assert_eq!(counts(&db).await, [1, 2, 3, 0]);

    // The same webhook again, transformed differently and answered differently: nothing stored,
    // the first answer replayed.
    let again = ingress("in_2", "src", Some("msg_1"), 200, "other");
    let more = [event("evt_c", "k_c", "expense.created", 2_000)];
    let more_deliveries = [delivery("dl_4", "evt_c", "dst", None, 2_000)];
    let outcome = store.record_ingress(&again, &more, &more_deliveries).await.unwrap();
    assert_eq!(
        outcome,
        IngressOutcome::Duplicate {
            ingress_id: "in_1".into(),
            response_status: 202,
            response_body: r#"{"accepted":2}"#.into()
        }
    );
    assert_eq!(counts(&db).await, [1, 2, 3, 0]);

    // The raw request is kept byte-exact and the events point at it.
    let stored = store.ingress_request("t1", "in_1").await.unwrap().unwrap();
    assert_eq!(stored, first);
    assert!(store.ingress_request("t2", "in_1").await.unwrap().is_none());
    let (evt, _) = store.event("t1", "evt_a").await.unwrap().unwrap();
    assert_eq!(evt.ingress_id.as_deref(), Some("in_1"));

    // Keys are per installation; requests without a key are never deduplicated.
    let elsewhere = ingress("in_3", "dst", Some("msg_1"), 202, "x");
    assert!(matches!(store.record_ingress(&elsewhere, &[], &[]).await.unwrap(), IngressOutcome::Recorded { .. }));
    for id in ["in_4", "in_5"] {
        let keyless = ingress(id, "src", None, 204, "");
        assert!(matches!(store.record_ingress(&keyless, &[], &[]).await.unwrap(), IngressOutcome::Recorded { .. }));
    }
    assert_eq!(counts(&db).await, [4, 2, 3, 0]);

    // Another tenant's installation is not found.
    let mut foreign = ingress("in_6", "other", Some("m"), 202, "x");
    foreign.tenant = "t1".into();
    assert!(matches!(store.record_ingress(&foreign, &[], &[]).await, Err(StoreError::NotFound(_))));

    // Purging old keys keeps the requests but lets the key be used again.
    assert_eq!(store.purge_dedupe_keys_before(1_000).await.unwrap(), 0);
    assert_eq!(store.purge_dedupe_keys_before(1_001).await.unwrap(), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ingress_requests").await, 4);
    let resent = ingress("in_7", "src", Some("msg_1"), 202, "new");
    assert!(matches!(store.record_ingress(&resent, &[], &[]).await.unwrap(), IngressOutcome::Recorded { .. }));
}

async fn concurrent_duplicate_webhooks_record_once(backend: Backend) {
    let (db, store) = setup(backend).await;
    let second = Store::connect(&db.url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { store.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let events = [event(&format!("evt_{i}"), &format!("k_{i}"), "t.x", 0)];
            let deliveries = [delivery(&format!("dl_{i}"), &format!("evt_{i}"), "dst", None, 0)];
            let request = ingress(&format!("in_{i}"), "src", Some("same"), 202, &format!("answer {i}"));
            store.record_ingress(&request, &events, &deliveries).await.unwrap()
        }));
    }
    let mut recorded = 0;
    let mut answers = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap() {
            IngressOutcome::Recorded { .. } => recorded += 1,
            IngressOutcome::Duplicate { response_body, .. } => {
                answers.insert(response_body);
            }
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(answers.len(), 1, "duplicates got different answers: {answers:?}");
    assert_eq!(counts(&db).await, [1, 1, 1, 0]);
    second.close().await;
}

async fn ingress_is_one_transaction(backend: Backend) {
    let (db, store) = setup(backend).await;
    let events = [event("evt_a", "k_a", "expense.created", 1_000), event("evt_b", "k_b", "expense.created", 1_000)];
    // The second delivery reuses the first one's idempotency key: the last insert fails.
    let mut clash = delivery("dl_2", "evt_b", "dst", None, 1_000);
    clash.idempotency_key = "idem:dl_1".into();
    let deliveries = [delivery("dl_1", "evt_a", "dst", None, 1_000), clash];
    let err = store.record_ingress(&ingress("in_1", "src", Some("m1"), 202, "ok"), &events, &deliveries).await;
    assert!(matches!(&err, Err(StoreError::Conflict(m)) if m.contains("idem:dl_1")), "{err:?}");
    assert_eq!(counts(&db).await, [0, 0, 0, 0]);

    // A delivery to a missing installation rolls everything back too.
    let deliveries = [delivery("dl_1", "evt_a", "dst", None, 1_000), delivery("dl_2", "evt_b", "nope", None, 1_000)];
    let err = store.record_ingress(&ingress("in_1", "src", Some("m1"), 202, "ok"), &events, &deliveries).await;
    assert!(matches!(&err, Err(StoreError::NotFound(m)) if m.contains("nope")), "{err:?}");
    let err = store.emit_events(&events, &deliveries).await;
    assert!(matches!(&err, Err(StoreError::NotFound(_))), "{err:?}");
    assert_eq!(counts(&db).await, [0, 0, 0, 0]);

    // Malformed batches are refused before anything is written.
    let orphan = [delivery("dl_9", "evt_zzz", "dst", None, 1_000)];
    assert!(matches!(store.emit_events(&events, &orphan).await, Err(StoreError::Invalid(_))));
    let twice = [event("evt_a", "k_a", "t.x", 1), event("evt_a", "k_b", "t.x", 1)];
    assert!(matches!(store.emit_events(&twice, &[]).await, Err(StoreError::Invalid(_))));
    let mut cross = delivery("dl_1", "evt_a", "other", None, 1_000);
    cross.tenant = "t2".into();
    assert!(matches!(store.emit_events(&events, &[cross]).await, Err(StoreError::Invalid(_))));

    // And the key is free: the same request now records.
    let deliveries = [delivery("dl_1", "evt_a", "dst", None, 1_000)];
    let ok = store.record_ingress(&ingress("in_1", "src", Some("m1"), 202, "ok"), &events, &deliveries).await;
    assert!(matches!(ok, Ok(IngressOutcome::Recorded { .. })), "{ok:?}");
    assert_eq!(counts(&db).await, [1, 2, 1, 0]);
}

async fn emitted_events_are_idempotent_per_source(backend: Backend) {
    let (db, store) = setup(backend).await;
    let first = store
        .emit_events(&[event("evt_1", "key", "order.paid", 5)], &[delivery("dl_1", "evt_1", "dst", None, 5)])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].duplicate);
    // A repeat (new id, same key) names the first event and adds no delivery; a new key in the
    // same batch is stored.
    let repeat = store
        .emit_events(
            &[event("evt_2", "key", "order.paid", 6), event("evt_3", "key3", "order.paid", 6)],
            &[delivery("dl_2", "evt_2", "dst", None, 6), delivery("dl_3", "evt_3", "dst", None, 6)],
        )
        .await
        .unwrap();
    assert_eq!(
        repeat.iter().map(|e| (e.id.as_str(), e.duplicate)).collect::<Vec<_>>(),
        [("evt_1", true), ("evt_3", false)]
    );
    assert_eq!(counts(&db).await, [0, 2, 2, 0]);
    assert!(store.delivery("t1", "dl_2").await.unwrap().is_none());
    // The same key from another source installation is another event.
    let mut other = event("evt_4", "key", "order.paid", 7);
    other.source_installation = "dst".into();
    assert!(!store.emit_events(&[other], &[]).await.unwrap()[0].duplicate);
    assert!(store.emit_events(&[], &[]).await.unwrap().is_empty());
}

/// Settlements batched in one transaction (the dispatcher's `Settler`) keep the fencing of
/// single ones: a stale settlement in a batch is refused alone and the others apply.
async fn settlements_commit_together_and_each_is_fenced(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let deliveries: Vec<_> =
        (0..40).map(|i| delivery(&format!("dl_{i:02}"), "evt_1", "dst", Some("r1"), 1_000)).collect();
    store.emit_events(&[event("evt_1", "k1", "order.paid", 100)], &deliveries).await.unwrap();
    let claimed = store.claim_deliveries("w1", 1_500, 30_000, 100).await.unwrap();
    assert_eq!(claimed.len(), 40);

    let ok = attempt(1, AttemptOutcome::Ok, None);
    let batch = vec![
        Settlement::ack("dl_00", "w1", ok.clone()).unwrap(),
        Settlement::ack("dl_01", "w2", ok.clone()).unwrap(), // not the owner
        Settlement::ack("dl_02", "w1", attempt(2, AttemptOutcome::Ok, None)).unwrap(), // not its attempt
        Settlement::fail("dl_03", "w1", attempt(1, AttemptOutcome::Retryable, Some("503")), Retry::At(9_000)).unwrap(),
        Settlement::fail("dl_04", "w1", attempt(1, AttemptOutcome::Permanent, Some("gone")), Retry::Dead).unwrap(),
        Settlement::ack("dl_00", "w1", ok.clone()).unwrap(), // already settled in this batch
    ];
    assert_eq!(store.settle_deliveries(&batch).await.unwrap(), [true, false, false, true, true, false]);
    let status = |id: &'static str| {
        let store = store.clone();
        async move { store.delivery("t1", id).await.unwrap().unwrap().status }
    };
    assert_eq!(status("dl_00").await, DeliveryStatus::Delivered);
    assert_eq!(status("dl_01").await, DeliveryStatus::Leased);
    assert_eq!(status("dl_02").await, DeliveryStatus::Leased);
    assert_eq!(status("dl_03").await, DeliveryStatus::Pending);
    assert_eq!(status("dl_04").await, DeliveryStatus::Dead);
    // Settlements that cannot be written are refused before reaching a batch.
    assert!(matches!(
        Settlement::ack("dl_05", "w1", attempt(1, AttemptOutcome::Retryable, None)),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(Settlement::fail("dl_05", "w1", ok.clone(), Retry::Dead), Err(StoreError::Invalid(_))));

    // Through the settler, concurrent callers each get their own answer.
    let settler = Settler::spawn(store.clone());
    let answers = (1..40).map(|i| {
        let settler = settler.clone();
        let ok = ok.clone();
        tokio::spawn(async move {
            let owner = if i % 5 == 0 { "intruder" } else { "w1" };
            settler.settle(Settlement::ack(&format!("dl_{i:02}"), owner, ok).unwrap()).await.unwrap()
        })
    });
    let mut applied = Vec::new();
    for a in answers {
        applied.push(a.await.unwrap());
    }
    // dl_03 and dl_04 were settled above, every fifth is acked by a worker that never held it.
    let expected: Vec<bool> = (1..40).map(|i| i % 5 != 0 && !(3..=4).contains(&i)).collect();
    assert_eq!(applied, expected);
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 1, leased: 7, dead: 1 });
}

async fn claim_ack_fail_dead_and_redrive(backend: Backend) {
    let (db, store) = setup(backend).await;
    store
        .emit_events(
            &[event("evt_1", "k1", "order.paid", 100)],
            &[
                delivery("dl_a", "evt_1", "dst", Some("r1"), 1_000),
                delivery("dl_b", "evt_1", "dst2", Some("r2"), 1_000),
                delivery("dl_c", "evt_1", "dst", Some("r1"), 2_000),
            ],
        )
        .await
        .unwrap();
    assert!(store.claim_deliveries("w1", 999, 30_000, 10).await.unwrap().is_empty());
    assert!(matches!(store.claim_deliveries("", 999, 30_000, 10).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.claim_deliveries("w1", 999, 0, 10).await, Err(StoreError::Invalid(_))));

    let claimed = store.claim_deliveries("w1", 1_500, 30_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dl_a", "dl_b"]);
    for d in &claimed {
        assert_eq!(d.status, DeliveryStatus::Leased);
        assert_eq!((d.attempts, d.schedule_attempt()), (1, 1));
        assert_eq!(d.lease_owner.as_deref(), Some("w1"));
        assert_eq!((d.lease_until_ms, d.next_attempt_at_ms), (Some(31_500), 31_500));
        assert!(d.idempotency_key.starts_with("idem:"));
    }
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 1, leased: 2, dead: 0 });
    assert_eq!(store.next_due_at().await.unwrap(), Some(2_000));

    // Ack: only the owner, only for its attempt, only once.
    let ok = attempt(1, AttemptOutcome::Ok, None);
    assert!(!store.ack_delivery("dl_a", "w2", &ok).await.unwrap());
    assert!(!store.ack_delivery("dl_a", "w1", &attempt(2, AttemptOutcome::Ok, None)).await.unwrap());
    assert!(matches!(
        store.ack_delivery("dl_a", "w1", &attempt(1, AttemptOutcome::Retryable, None)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.ack_delivery("dl_a", "w1", &ok).await.unwrap());
    assert!(!store.ack_delivery("dl_a", "w1", &ok).await.unwrap());
    assert_eq!(store.delivery("t1", "dl_a").await.unwrap().unwrap().status, DeliveryStatus::Delivered);

    // Fail: back to pending at the given time, with the error.
    let failed = attempt(1, AttemptOutcome::Retryable, Some("503 from upstream"));
    assert!(matches!(store.fail_delivery("dl_b", "w1", &ok, Retry::At(1)).await, Err(StoreError::Invalid(_))));
    assert!(store.fail_delivery("dl_b", "w1", &failed, Retry::At(6_500)).await.unwrap());
    let b = store.delivery("t1", "dl_b").await.unwrap().unwrap();
    assert_eq!((b.status, b.next_attempt_at_ms, b.lease_owner.as_deref()), (DeliveryStatus::Pending, 6_500, None));
    assert_eq!(b.last_error.as_deref(), Some("503 from upstream"));
    assert_eq!(store.next_due_at().await.unwrap(), Some(2_000));

    // Second round: dl_c then dl_b, both fail for good.
    let claimed = store.claim_deliveries("w2", 7_000, 1_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| (d.id.as_str(), d.attempts)).collect::<Vec<_>>(), [("dl_b", 2), ("dl_c", 1)]);
    let gone = attempt(2, AttemptOutcome::Permanent, Some("404 no such channel"));
    assert!(store.fail_delivery("dl_b", "w2", &gone, Retry::Dead).await.unwrap());
    let gone = attempt(1, AttemptOutcome::Permanent, Some("gone"));
    assert!(store.fail_delivery("dl_c", "w2", &gone, Retry::Dead).await.unwrap());
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 0, leased: 0, dead: 2 });
    assert_eq!(store.next_due_at().await.unwrap(), None);
    assert!(store.claim_deliveries("w2", i64::MAX / 2, 1_000, 10).await.unwrap().is_empty());

    // The event shows every delivery with its attempts.
    let (evt, deliveries) = store.event("t1", "evt_1").await.unwrap().unwrap();
    assert_eq!(evt.event_type, "order.paid");
    let summary: Vec<_> = deliveries
        .iter()
        .map(|(d, attempts)| (d.id.as_str(), d.status, attempts.iter().map(|a| a.outcome).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        summary,
        [
            ("dl_a", DeliveryStatus::Delivered, vec![AttemptOutcome::Ok]),
            ("dl_b", DeliveryStatus::Dead, vec![AttemptOutcome::Retryable, AttemptOutcome::Permanent]),
            ("dl_c", DeliveryStatus::Dead, vec![AttemptOutcome::Permanent]),
        ]
    );
    let b_attempts = &deliveries[1].1;
    assert_eq!((b_attempts[0].attempt, b_attempts[0].started_at_ms, b_attempts[0].duration_ms), (1, 10, 3));
    assert_eq!(b_attempts[1].error.as_deref(), Some("404 no such channel"));
    assert_eq!(store.delivery_attempts("t1", "dl_b").await.unwrap(), *b_attempts);
    assert!(store.delivery_attempts("t2", "dl_b").await.unwrap().is_empty());

    // Redrive: tenant-scoped, dead only; attempts kept, the schedule restarts.
    assert!(!store.redrive("t2", "dl_b", 8_000).await.unwrap());
    assert!(!store.redrive("t1", "dl_a", 8_000).await.unwrap());
    assert!(store.redrive("t1", "dl_b", 8_000).await.unwrap());
    let b = store.delivery("t1", "dl_b").await.unwrap().unwrap();
    assert_eq!((b.status, b.attempts, b.next_attempt_at_ms), (DeliveryStatus::Pending, 2, 8_000));
    let again = store.claim_deliveries("w3", 8_000, 1_000, 10).await.unwrap();
    assert_eq!((again[0].attempts, again[0].schedule_attempt()), (3, 1));
    assert!(store.ack_delivery("dl_b", "w3", &attempt(3, AttemptOutcome::Ok, None)).await.unwrap());

    // Redrive all dead letters of a route / an installation.
    assert_eq!(store.redrive_dead("t1", None, Some("r2"), 9_000).await.unwrap(), 0);
    assert_eq!(store.redrive_dead("t2", None, None, 9_000).await.unwrap(), 0);
    assert_eq!(store.redrive_dead("t1", Some("dst2"), None, 9_000).await.unwrap(), 0);
    assert_eq!(store.redrive_dead("t1", Some("dst"), Some("r1"), 9_000).await.unwrap(), 1);
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 1, leased: 0, dead: 0 });
    assert_eq!(count(&db, "SELECT COUNT(*) FROM delivery_attempts").await, 5);
}

async fn expired_lease_is_recovered_by_another_owner(backend: Backend) {
    let (_db, store) = setup(backend).await;
    store.emit_events(&[event("evt_1", "k1", "t.x", 0)], &[delivery("dl_1", "evt_1", "dst", None, 0)]).await.unwrap();
    let a = store.claim_deliveries("host-a", 0, 100, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(store.next_due_at().await.unwrap(), Some(100));
    assert!(store.claim_deliveries("host-b", 99, 100, 10).await.unwrap().is_empty());
    let b = store.claim_deliveries("host-b", 100, 100, 10).await.unwrap();
    assert_eq!(b.iter().map(|d| (d.id.as_str(), d.attempts)).collect::<Vec<_>>(), [("dl_1", 2)]);
    // The first owner's late answers are refused; the same owner re-claiming is fenced too.
    assert!(!store.ack_delivery("dl_1", "host-a", &attempt(1, AttemptOutcome::Ok, None)).await.unwrap());
    assert!(
        !store.fail_delivery("dl_1", "host-a", &attempt(1, AttemptOutcome::Error, None), Retry::Dead).await.unwrap()
    );
    let c = store.claim_deliveries("host-b", 200, 100, 10).await.unwrap();
    assert_eq!(c[0].attempts, 3);
    assert!(!store.ack_delivery("dl_1", "host-b", &attempt(2, AttemptOutcome::Ok, None)).await.unwrap());
    assert!(store.ack_delivery("dl_1", "host-b", &attempt(3, AttemptOutcome::Ok, None)).await.unwrap());
    let attempts = store.delivery_attempts("t1", "dl_1").await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [3]);
}

async fn concurrent_claimers_never_share_a_lease(backend: Backend) {
    const N: usize = 500;
    let (db, store) = setup(backend).await;
    let events: Vec<_> = (0..N).map(|i| event(&format!("evt_{i:04}"), &format!("k{i}"), "bulk.item", 0)).collect();
    let deliveries: Vec<_> = (0..N)
        .map(|i| delivery(&format!("dl_{i:04}"), &format!("evt_{i:04}"), "dst", None, i64::try_from(i).unwrap()))
        .collect();
    store.emit_events(&events, &deliveries).await.unwrap();
    // Two "hosts" (separate pools) with two workers each.
    let second = Store::connect(&db.url).await.unwrap();
    let claims: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = if w % 2 == 0 { store.clone() } else { second.clone() };
        let claims = claims.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut delivered = 0;
            loop {
                // Leases far longer than the test: any repeat claim would be a double claim.
                let batch = store.claim_deliveries(&owner, 1_000, 3_600_000, 7).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                for d in &batch {
                    claims.lock().unwrap().entry(d.id.clone()).or_default().push(owner.clone());
                }
                for d in batch {
                    tokio::task::yield_now().await;
                    let ok = AttemptRecord {
                        attempt: d.attempts,
                        started_at_ms: 1_000,
                        duration_ms: 1,
                        outcome: AttemptOutcome::Ok,
                        error: None,
                    };
                    assert!(store.ack_delivery(&d.id, &owner, &ok).await.unwrap(), "{owner} lost {}", d.id);
                    delivered += 1;
                }
            }
            delivered
        }));
    }
    let mut total = 0;
    let mut per_worker = Vec::new();
    for w in workers {
        let n = w.await.unwrap();
        per_worker.push(n);
        total += n;
    }
    let claims = claims.lock().unwrap().clone();
    let doubled: Vec<_> = claims.iter().filter(|(_, owners)| owners.len() > 1).collect();
    assert!(doubled.is_empty(), "claimed more than once: {doubled:?}");
    assert_eq!((claims.len(), total), (N, N), "per worker: {per_worker:?}");
    eprintln!("{backend}: deliveries per worker {per_worker:?}");
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth::default());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM deliveries WHERE status = 'delivered' AND attempts = 1").await, 500);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM delivery_attempts").await, 500);
    second.close().await;
}

async fn events_list_filters_and_pages(backend: Backend) {
    let (_db, store) = setup(backend).await;
    // 25 events, two per millisecond so ties are broken by id; even ones are `a.*` to dst, odd
    // ones `b.*` to dst2; every fifth delivery is dead.
    let events: Vec<_> = (0..25)
        .map(|i| {
            let kind = if i % 2 == 0 { "a.created" } else { "b.created" };
            event(&format!("evt_{i:02}"), &format!("k{i}"), kind, 1_000 + i / 2)
        })
        .collect();
    let deliveries: Vec<_> = (0..25)
        .map(|i| {
            let dest = if i % 2 == 0 { "dst" } else { "dst2" };
            delivery(&format!("dl_{i:02}"), &format!("evt_{i:02}"), dest, None, 0)
        })
        .collect();
    store.emit_events(&events, &deliveries).await.unwrap();
    for d in store.claim_deliveries("w", 0, 1_000, 100).await.unwrap() {
        let i: usize = d.id[3..].parse().unwrap();
        let dead = i.is_multiple_of(5);
        let record = attempt(1, if dead { AttemptOutcome::Permanent } else { AttemptOutcome::Ok }, None);
        if dead {
            assert!(store.fail_delivery(&d.id, "w", &record, Retry::Dead).await.unwrap());
        } else {
            assert!(store.ack_delivery(&d.id, "w", &record).await.unwrap());
        }
    }
    let ids = |rows: &[patchbay_store::EventRow]| rows.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    // Pages of 10, newest first, no overlap, no gap.
    let mut seen = Vec::new();
    let mut filter = EventFilter { page: PageRequest::first(10), ..EventFilter::default() };
    loop {
        let page = store.list_events("t1", &filter).await.unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(ids(&page.items));
        let Some(last) = page.last_if_more() else { break };
        filter.page.after = Some((last.created_at_ms, last.id.clone()));
    }
    let expected: Vec<_> = (0..25).rev().map(|i| format!("evt_{i:02}")).collect();
    assert_eq!(seen, expected);

    let list = |f: EventFilter| {
        let store = store.clone();
        async move { ids(&store.list_events("t1", &f).await.unwrap().items) }
    };
    let by_type = list(EventFilter { event_type: Some("b.created".into()), ..Default::default() }).await;
    assert_eq!(by_type.len(), 12);
    assert!(by_type.iter().all(|id| id[4..].parse::<u32>().unwrap() % 2 == 1));
    let dead = list(EventFilter { status: Some(DeliveryStatus::Dead), ..Default::default() }).await;
    assert_eq!(dead, ["evt_20", "evt_15", "evt_10", "evt_05", "evt_00"]);
    let to_dst2 = list(EventFilter { installation: Some("dst2".into()), ..Default::default() }).await;
    assert_eq!(to_dst2.len(), 12);
    let from_src = list(EventFilter { installation: Some("src".into()), ..Default::default() }).await;
    assert_eq!(from_src.len(), 25);
    // since is inclusive, until exclusive: ms 1_002..1_004 holds evt_04..evt_07.
    let window = list(EventFilter { since_ms: Some(1_002), until_ms: Some(1_004), ..Default::default() }).await;
    assert_eq!(window, ["evt_07", "evt_06", "evt_05", "evt_04"]);
    let combined = list(EventFilter {
        event_type: Some("a.created".into()),
        status: Some(DeliveryStatus::Delivered),
        installation: Some("dst".into()),
        since_ms: Some(1_002),
        until_ms: Some(1_006),
        page: PageRequest::first(2),
    })
    .await;
    assert_eq!(combined, ["evt_08", "evt_06"]);

    // Other tenants see nothing, from any position.
    assert!(store.list_events("t2", &EventFilter::default()).await.unwrap().items.is_empty());
    let t1_position =
        EventFilter { page: PageRequest::after(Some((1_012, "evt_25".into())), 10), ..Default::default() };
    assert!(store.list_events("t2", &t1_position).await.unwrap().items.is_empty());
    assert!(store.event("t2", "evt_00").await.unwrap().is_none());
    assert!(store.delivery("t2", "dl_00").await.unwrap().is_none());
    // A position is not an event: one naming no event (pruned since) still starts the page there.
    let pruned = EventFilter { page: PageRequest::after(Some((1_001, "evt_025".into())), 100), ..Default::default() };
    assert_eq!(list(pruned).await, ["evt_02", "evt_01", "evt_00"]);
}

async fn depth_and_next_due(backend: Backend) {
    let (_db, store) = setup(backend).await;
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth::default());
    assert_eq!(store.next_due_at().await.unwrap(), None);
    store
        .emit_events(
            &[event("evt_1", "k1", "t.x", 0)],
            &[delivery("dl_1", "evt_1", "dst", None, 5_000), delivery("dl_2", "evt_1", "dst", None, 3_000)],
        )
        .await
        .unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), Some(3_000));
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 2, leased: 0, dead: 0 });
    // A lease that ends before the next due delivery is the next wake-up.
    let leased = store.claim_deliveries("w", 3_000, 500, 1).await.unwrap();
    assert_eq!(leased[0].id, "dl_2");
    assert_eq!(store.next_due_at().await.unwrap(), Some(3_500));
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 1, leased: 1, dead: 0 });
    assert!(
        store.fail_delivery("dl_2", "w", &attempt(1, AttemptOutcome::Error, Some("trap")), Retry::Dead).await.unwrap()
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(5_000));
    assert_eq!(store.outbox_depth().await.unwrap(), OutboxDepth { pending: 1, leased: 0, dead: 1 });
}

async fn deleting_an_installation_removes_its_events(backend: Backend) {
    let (db, store) = setup(backend).await;
    let events = [event("evt_1", "k1", "t.x", 0)];
    let deliveries = [delivery("dl_1", "evt_1", "dst", None, 0), delivery("dl_2", "evt_1", "dst2", None, 0)];
    store.record_ingress(&ingress("in_1", "src", Some("m"), 202, "ok"), &events, &deliveries).await.unwrap();
    let claimed = store.claim_deliveries("w", 0, 1_000, 10).await.unwrap();
    assert_eq!(claimed[0].id, "dl_1");
    assert!(store.ack_delivery("dl_1", "w", &attempt(1, AttemptOutcome::Ok, None)).await.unwrap());
    assert_eq!(counts(&db).await, [1, 1, 2, 1]);
    // Deleting a destination removes its deliveries (and their attempts) only.
    assert!(store.delete_installation("t1", "dst").await.unwrap());
    assert_eq!(counts(&db).await, [1, 1, 1, 0]);
    // Deleting the source removes its requests, events and their remaining deliveries.
    assert!(store.delete_installation("t1", "src").await.unwrap());
    assert_eq!(counts(&db).await, [0, 0, 0, 0]);
}

// ---- the retry schedule ----

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn retry_default_schedule_is_standard_webhooks() {
    let s = RetrySchedule::default();
    let expected: Vec<u64> = vec![0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];
    assert_eq!(s.delays.iter().map(Duration::as_secs).collect::<Vec<_>>(), expected);
    assert_eq!(s.max_attempts(), 10);
    // After failed attempt n (1-based) comes delays[n]; the tenth failure is the last.
    for (n, secs) in expected.iter().enumerate().skip(1) {
        let n = u32::try_from(n).unwrap();
        assert_eq!(
            s.next(n, AttemptOutcome::Retryable, None, 1_000, &mut NoJitter),
            Retry::At(1_000 + i64::try_from(*secs).unwrap() * 1_000)
        );
    }
    assert_eq!(s.next(10, AttemptOutcome::Retryable, None, 1_000, &mut NoJitter), Retry::Dead);
    assert_eq!(s.next(11, AttemptOutcome::Error, None, 1_000, &mut NoJitter), Retry::Dead);
}

#[test]
fn retry_outcomes() {
    let s = RetrySchedule::default();
    assert_eq!(s.next(1, AttemptOutcome::Permanent, None, 0, &mut NoJitter), Retry::Dead);
    assert_eq!(s.next(1, AttemptOutcome::Ok, None, 0, &mut NoJitter), Retry::Dead);
    for outcome in [AttemptOutcome::Retryable, AttemptOutcome::Unauthorized, AttemptOutcome::Error] {
        assert_eq!(s.next(2, outcome, None, 0, &mut NoJitter), Retry::At(300_000), "{outcome}");
    }
    // retry-after replaces the schedule, unjittered, capped; without it the schedule applies.
    let mut wild = || 1.0;
    assert_eq!(s.next(1, AttemptOutcome::RateLimited, Some(SECOND * 42), 0, &mut wild), Retry::At(42_000));
    assert_eq!(s.next(4, AttemptOutcome::RateLimited, Some(SECOND), 0, &mut wild), Retry::At(1_000));
    assert_eq!(
        s.next(1, AttemptOutcome::RateLimited, Some(SECOND * 3 * 86_400), 0, &mut NoJitter),
        Retry::At(86_400_000)
    );
    assert_eq!(s.next(1, AttemptOutcome::RateLimited, None, 0, &mut NoJitter), Retry::At(5_000));
    assert_eq!(s.next(10, AttemptOutcome::RateLimited, Some(SECOND), 0, &mut NoJitter), Retry::Dead);
    // A custom per-route schedule.
    let short = RetrySchedule { delays: vec![Duration::ZERO, SECOND], jitter: 0.0, ..RetrySchedule::default() };
    assert_eq!(short.next(1, AttemptOutcome::Retryable, None, 0, &mut || 1.0), Retry::At(1_000));
    assert_eq!(short.next(2, AttemptOutcome::Retryable, None, 0, &mut NoJitter), Retry::Dead);
}

#[test]
fn retry_jitter_stays_within_bounds() {
    let s = RetrySchedule::default();
    let base = 300_000; // 5 min after the second failure
    assert_eq!(s.next(2, AttemptOutcome::Retryable, None, 0, &mut || -1.0), Retry::At(270_000));
    assert_eq!(s.next(2, AttemptOutcome::Retryable, None, 0, &mut || 1.0), Retry::At(330_000));
    // Out-of-range or broken samples are clamped / ignored.
    assert_eq!(s.next(2, AttemptOutcome::Retryable, None, 0, &mut || 7.0), Retry::At(330_000));
    assert_eq!(s.next(2, AttemptOutcome::Retryable, None, 0, &mut || f64::NAN), Retry::At(base));
    // The immediate slot stays immediate.
    assert_eq!(s.jittered(Duration::ZERO, &mut || 1.0), Duration::ZERO);
    // Real randomness: always within ±10 %, and not constant.
    let mut rng = SystemJitter::default();
    let mut values = std::collections::BTreeSet::new();
    for _ in 0..1_000 {
        let sample = rng.sample();
        assert!((-1.0..=1.0).contains(&sample), "{sample}");
        let Retry::At(at) = s.next(2, AttemptOutcome::Retryable, None, 0, &mut rng) else { panic!("dead") };
        assert!((270_000..=330_000).contains(&at), "{at}");
        values.insert(at);
    }
    assert!(values.len() > 100, "jitter looks constant: {} distinct values", values.len());
}

/// A delivery written with a lease (the webhook ingest handing it to its own dispatcher) is
/// stored exactly as a claim leaves it: no other dispatcher claims it until the lease ends, its
/// owner settles it, and when the owner never does, the next claim runs it again — through both
/// writers (one request per transaction, and the group committer's batches).
async fn deliveries_leased_as_written_run_without_a_claim_and_expire_like_claimed_ones(backend: Backend) {
    let (_db, store) = setup(backend).await;
    let leased = |id: &str, event: &str, until: i64| {
        let mut d = delivery(id, event, "dst", None, 1_000);
        d.lease = Some(DeliveryLease { owner: "host-a".into(), until_ms: until });
        d
    };
    let (a, b) = (leased("dl_a", "evt_1", 5_000), delivery("dl_b", "evt_1", "dst2", None, 1_000));
    let outcome = store
        .record_ingress(
            &ingress("in_1", "src", Some("m1"), 200, "ok"),
            &[event("evt_1", "k1", "t.x", 1_000)],
            &[a.clone(), b],
        )
        .await
        .unwrap();
    assert!(matches!(outcome, IngressOutcome::Recorded { .. }), "{outcome:?}");
    let stored = store.delivery("t1", "dl_a").await.unwrap().unwrap();
    let handed = a.leased_row(stored.created_at_ms).unwrap();
    assert_eq!(
        stored,
        DeliveryRow { updated_at_ms: stored.created_at_ms, ..handed },
        "what the dispatcher runs is what is stored"
    );
    assert_eq!(
        (stored.status, stored.attempts, stored.lease_owner.as_deref()),
        (DeliveryStatus::Leased, 1, Some("host-a"))
    );
    // Another dispatcher's claim takes only the pending one.
    let claimed = store.claim_deliveries("host-b", 1_000, 10_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dl_b"]);
    assert!(store.ack_delivery("dl_a", "host-a", &attempt(1, AttemptOutcome::Ok, None)).await.unwrap());
    assert_eq!(store.delivery("t1", "dl_a").await.unwrap().unwrap().status, DeliveryStatus::Delivered);

    // Through the group committer: the owner dies; the lease ends and another host runs it.
    let (committer, _writers) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let write = IngressWrite {
        ingress: ingress("in_2", "src", Some("m2"), 200, "ok"),
        events: vec![event("evt_2", "k2", "t.x", 1_000)],
        deliveries: vec![leased("dl_c", "evt_2", 2_000)],
    };
    assert!(matches!(committer.record(write).await.unwrap(), IngressOutcome::Recorded { .. }));
    assert!(store.claim_deliveries("host-b", 1_999, 10_000, 10).await.unwrap().is_empty());
    let again = store.claim_deliveries("host-b", 2_000, 10_000, 10).await.unwrap();
    assert_eq!(again.iter().map(|d| (d.id.as_str(), d.attempts)).collect::<Vec<_>>(), [("dl_c", 2)]);
    assert!(!store.ack_delivery("dl_c", "host-a", &attempt(1, AttemptOutcome::Ok, None)).await.unwrap());
    assert!(store.ack_delivery("dl_c", "host-b", &attempt(2, AttemptOutcome::Ok, None)).await.unwrap());
}
