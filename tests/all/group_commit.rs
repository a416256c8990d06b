//! Group commit of webhook ingress (`Store::record_ingress_batch`, `GroupCommitter`), on SQLite and
//! PostgreSQL (`group_commit::sqlite::<name>`, `group_commit::postgres::<name>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use patchbay_store::{
    Backend, GroupCommitConfig, GroupCommitter, GroupWriters, IngressOutcome, IngressWrite, Store, StoreError,
};

use crate::outbox::{count, counts, delivery, event, ingress, setup};

on_both_backends!(
    group_commit_records_2000_concurrent_writes_once,
    batch_duplicates_replay_the_first_answer,
    batch_item_that_fails_does_not_fail_the_others,
    committer_answers_each_write_with_its_own_outcome,
    dropped_caller_loses_no_write,
    acknowledged_writes_survive_a_fresh_store,
    large_batch_spans_several_statements,
);

/// Request `n`: 500-byte body, one event (`evt_<n>`, key `k_<n>`) delivered to `dst`.
fn write(n: usize, dedupe: Option<&str>) -> IngressWrite {
    let mut request = ingress(&format!("in_{n}"), "src", dedupe, 202, &format!("answer {n}"));
    request.body = vec![b'x'; 500];
    IngressWrite {
        ingress: request,
        events: vec![event(&format!("evt_{n}"), &format!("k_{n}"), "t.x", n as i64)],
        deliveries: vec![delivery(&format!("dl_{n}"), &format!("evt_{n}"), "dst", None, n as i64)],
    }
}

fn recorded(n: usize) -> IngressOutcome {
    IngressOutcome::Recorded { events: vec![patchbay_store::EmittedEvent { id: format!("evt_{n}"), duplicate: false }] }
}

/// A committer whose delivery hook counts its calls.
fn committer(store: &Store) -> (GroupCommitter, GroupWriters, Arc<AtomicUsize>) {
    let woken = Arc::new(AtomicUsize::new(0));
    let hook = woken.clone();
    let config = GroupCommitConfig {
        on_deliveries: Some(Arc::new(move || {
            hook.fetch_add(1, Ordering::SeqCst);
        })),
        ..GroupCommitConfig::default()
    };
    let (committer, writers) = GroupCommitter::spawn(store.clone(), config);
    (committer, writers, woken)
}

async fn join(writers: GroupWriters) {
    tokio::time::timeout(Duration::from_secs(30), writers.join())
        .await
        .expect("writers did not end after every committer was dropped")
        .expect("a writer panicked");
}

async fn group_commit_records_2000_concurrent_writes_once(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (committer, writers, woken) = committer(&store);
    // 40 tasks of 50 concurrent calls each: 2 000 writes in flight together.
    let mut tasks = Vec::new();
    for t in 0..40 {
        let committer = committer.clone();
        tasks.push(tokio::spawn(async move {
            let calls = (0..50).map(|i| {
                let n = t * 50 + i;
                let committer = committer.clone();
                async move { (n, committer.record(write(n, Some(&format!("key_{n}")))).await) }
            });
            futures::future::join_all(calls).await
        }));
    }
    for task in tasks {
        for (n, outcome) in task.await.unwrap() {
            assert_eq!(outcome.unwrap(), recorded(n));
        }
    }
    assert_eq!(counts(&db).await, [2_000, 2_000, 2_000, 0]);
    let wakes = woken.load(Ordering::SeqCst);
    assert!((1..2_000).contains(&wakes), "one wake-up per batch, and batches formed: {wakes}");
    // Every delivery is pending, due when its event says, and points at its own event.
    let pending = count(
        &db,
        "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id JOIN ingress_requests i \
         ON i.id = e.ingress_id WHERE d.status = 'pending' AND d.next_attempt_at = e.created_at \
         AND 'in_' || substr(e.id, 5) = i.id AND 'dl_' || substr(e.id, 5) = d.id",
    )
    .await;
    assert_eq!(pending, 2_000);
    drop(committer);
    join(writers).await;
}

async fn batch_duplicates_replay_the_first_answer(backend: Backend) {
    let (db, store) = setup(backend).await;
    // Within one batch: the second and fourth repeat the first's key; the third's event repeats
    // the first's event idempotency key under another request key.
    let mut same_event = write(3, Some("other"));
    same_event.events[0].idempotency_key = "k_1".into();
    let writes = [write(1, Some("k")), write(2, Some("k")), same_event, write(4, Some("k")), write(5, None)];
    let answers = store.record_ingress_batch(&writes).await;
    let first_answer =
        IngressOutcome::Duplicate { ingress_id: "in_1".into(), response_status: 202, response_body: "answer 1".into() };
    assert_eq!(answers[0].as_ref().unwrap(), &recorded(1));
    assert_eq!(answers[1].as_ref().unwrap(), &first_answer);
    assert_eq!(
        answers[2].as_ref().unwrap(),
        &IngressOutcome::Recorded {
            events: vec![patchbay_store::EmittedEvent { id: "evt_1".into(), duplicate: true }]
        }
    );
    assert_eq!(answers[3].as_ref().unwrap(), &first_answer);
    assert_eq!(answers[4].as_ref().unwrap(), &recorded(5));
    assert!(!writes[2].stored_deliveries(answers[2].as_ref().unwrap()));
    assert!(writes[0].stored_deliveries(answers[0].as_ref().unwrap()));
    // Requests 1, 3 and 5; events and deliveries of 1 and 5.
    assert_eq!(counts(&db).await, [3, 2, 2, 0]);

    // Across batches, through the committer: still the first answer, nothing written.
    let (committer, writers, woken) = committer(&store);
    assert_eq!(committer.record(write(6, Some("k"))).await.unwrap(), first_answer);
    let again = [write(7, Some("k")), write(8, Some("other"))];
    let answers = store.record_ingress_batch(&again).await;
    assert_eq!(answers[0].as_ref().unwrap(), &first_answer);
    assert_eq!(
        answers[1].as_ref().unwrap(),
        &IngressOutcome::Duplicate {
            ingress_id: "in_3".into(),
            response_status: 202,
            response_body: "answer 3".into()
        }
    );
    assert_eq!(counts(&db).await, [3, 2, 2, 0]);
    assert_eq!(woken.load(Ordering::SeqCst), 0, "a batch that stored no delivery wakes nobody");

    // Many concurrent callers with one key: one is recorded, all others replay its answer.
    let calls = (10..60).map(|n| {
        let committer = committer.clone();
        async move { committer.record(write(n, Some("burst"))).await.unwrap() }
    });
    let outcomes = futures::future::join_all(calls).await;
    let winners: Vec<usize> =
        (10..60).filter(|n| matches!(outcomes[n - 10], IngressOutcome::Recorded { .. })).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let winner = winners[0];
    for (n, outcome) in (10..60).zip(&outcomes) {
        if n != winner {
            assert_eq!(
                outcome,
                &IngressOutcome::Duplicate {
                    ingress_id: format!("in_{winner}"),
                    response_status: 202,
                    response_body: format!("answer {winner}")
                }
            );
        }
    }
    assert_eq!(counts(&db).await, [4, 3, 3, 0]);
    drop(committer);
    join(writers).await;
}

async fn batch_item_that_fails_does_not_fail_the_others(backend: Backend) {
    let (db, store) = setup(backend).await;
    let mut unknown = write(2, Some("k2"));
    unknown.ingress.installation = "nope".into();
    unknown.events[0].source_installation = "nope".into();
    let mut orphan = write(4, Some("k4"));
    orphan.deliveries[0].event_id = "evt_missing".into();
    // Reuses request 1's delivery id: a conflict only the database sees.
    let mut clash = write(5, Some("k5"));
    clash.deliveries[0].id = "dl_1".into();
    let mut bad_destination = write(6, Some("k6"));
    bad_destination.deliveries[0].destination_installation = "gone".into();
    let writes = [write(1, Some("k1")), unknown, write(3, Some("k3")), orphan, clash, bad_destination, write(7, None)];
    let answers = store.record_ingress_batch(&writes).await;
    assert_eq!(answers.len(), writes.len());
    assert_eq!(answers[0].as_ref().unwrap(), &recorded(1));
    assert!(matches!(&answers[1], Err(StoreError::NotFound(m)) if m.contains("nope")), "{:?}", answers[1]);
    assert_eq!(answers[2].as_ref().unwrap(), &recorded(3));
    assert!(matches!(&answers[3], Err(StoreError::Invalid(m)) if m.contains("evt_missing")), "{:?}", answers[3]);
    assert!(matches!(&answers[4], Err(StoreError::Conflict(m)) if m.contains("dl_1")), "{:?}", answers[4]);
    assert!(matches!(&answers[5], Err(StoreError::NotFound(m)) if m.contains("gone")), "{:?}", answers[5]);
    assert_eq!(answers[6].as_ref().unwrap(), &recorded(7));
    // A failed write left nothing behind: its key is free.
    assert_eq!(counts(&db).await, [3, 3, 3, 0]);
    let retry = store.record_ingress_batch(&[write(5, Some("k5")), write(6, Some("k6"))]).await;
    assert_eq!(retry.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [recorded(5), recorded(6)]);

    // Through the committer, among concurrent good writes.
    let (committer, writers, _) = committer(&store);
    let calls = (100..164).map(|n| {
        let committer = committer.clone();
        let mut w = write(n, Some(&format!("c{n}")));
        if n % 8 == 0 {
            w.ingress.installation = "nope".into();
            w.events[0].source_installation = "nope".into();
        }
        async move { (n, committer.record(w).await) }
    });
    for (n, outcome) in futures::future::join_all(calls).await {
        if n % 8 == 0 {
            assert!(matches!(outcome, Err(StoreError::NotFound(_))), "{n}: {outcome:?}");
        } else {
            assert_eq!(outcome.unwrap(), recorded(n));
        }
    }
    assert_eq!(counts(&db).await, [5 + 56, 5 + 56, 5 + 56, 0]);
    drop(committer);
    join(writers).await;
}

async fn committer_answers_each_write_with_its_own_outcome(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (committer, writers, woken) = committer(&store);
    // A lone write commits at once and wakes the dispatcher.
    assert_eq!(committer.record(write(1, Some("a"))).await.unwrap(), recorded(1));
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    // A write without deliveries wakes nobody.
    let mut quiet = write(2, Some("b"));
    quiet.deliveries.clear();
    assert_eq!(committer.record(quiet).await.unwrap(), recorded(2));
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    // Invalid writes are refused without touching the database.
    let mut cross = write(3, Some("c"));
    cross.events[0].tenant = "t2".into();
    assert!(matches!(committer.record(cross).await, Err(StoreError::Invalid(_))));
    // Clones feed the same writers; dropping one leaves the others working.
    let other = committer.clone();
    drop(committer);
    assert_eq!(other.record(write(4, None)).await.unwrap(), recorded(4));
    assert_eq!(counts(&db).await, [3, 3, 2, 0]);
    drop(other);
    join(writers).await;
}

async fn dropped_caller_loses_no_write(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (committer, writers, _) = committer(&store);
    let mut kept = Vec::new();
    for n in 0..400 {
        let w = write(n, Some(&format!("d{n}")));
        if n % 3 == 0 {
            // Polled once — queued — then dropped: the caller gave up.
            assert!(committer.record(w).now_or_never().is_none_or(|r| r.is_ok()));
        } else {
            let committer = committer.clone();
            kept.push(tokio::spawn(async move { (n, committer.record(w).await) }));
        }
        if n % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Callers cancelled while waiting for their answer.
    let mut cancelled = Vec::new();
    for n in 400..500 {
        let committer = committer.clone();
        cancelled.push(tokio::spawn(async move { committer.record(write(n, Some(&format!("d{n}")))).await }));
    }
    for task in &cancelled {
        task.abort();
    }
    for task in kept {
        let (n, outcome) = task.await.unwrap();
        assert_eq!(outcome.unwrap(), recorded(n));
    }
    drop(committer);
    join(writers).await;
    // Every write that reached the queue is recorded, whole: the 266 kept, the 134 dropped after
    // being queued, and those of the aborted 100 that were queued before the abort.
    let [requests, events, deliveries, _] = counts(&db).await;
    assert!((400..=500).contains(&requests), "{requests}");
    assert_eq!([events, deliveries], [requests, requests]);
    for n in 0..400 {
        assert!(store.ingress_request("t1", &format!("in_{n}")).await.unwrap().is_some(), "in_{n} lost");
    }
}

async fn acknowledged_writes_survive_a_fresh_store(backend: Backend) {
    let (db, store) = setup(backend).await;
    let (committer, writers, _) = committer(&store);
    let calls = (0..300).map(|n| {
        let committer = committer.clone();
        async move { (n, committer.record(write(n, Some(&format!("s{n}")))).await) }
    });
    let acknowledged: Vec<usize> =
        futures::future::join_all(calls).await.into_iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n).collect();
    assert_eq!(acknowledged.len(), 300);
    drop(committer);
    join(writers).await;
    store.close().await;

    let fresh = Store::connect(&db.url).await.unwrap();
    for n in acknowledged {
        let expected = write(n, Some(&format!("s{n}")));
        assert_eq!(fresh.ingress_request("t1", &format!("in_{n}")).await.unwrap().as_ref(), Some(&expected.ingress));
        let (event, deliveries) = fresh.event("t1", &format!("evt_{n}")).await.unwrap().unwrap();
        assert_eq!(event.ingress_id, Some(format!("in_{n}")));
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].0.id, format!("dl_{n}"));
    }
    fresh.close().await;
}

async fn large_batch_spans_several_statements(backend: Backend) {
    let (db, store) = setup(backend).await;
    // 5 000 requests: more rows than one statement may carry on either backend.
    let writes: Vec<IngressWrite> = (0..5_000).map(|n| write(n, Some(&format!("L{n}")))).collect();
    let answers = store.record_ingress_batch(&writes).await;
    for (n, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), recorded(n));
    }
    assert_eq!(counts(&db).await, [5_000, 5_000, 5_000, 0]);
    // The same again: all duplicates, each with its own first answer.
    let answers = store.record_ingress_batch(&writes[..300]).await;
    for (n, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            answer.unwrap(),
            IngressOutcome::Duplicate {
                ingress_id: format!("in_{n}"),
                response_status: 202,
                response_body: format!("answer {n}")
            }
        );
    }
    assert!(store.record_ingress_batch(&[]).await.is_empty());
}
