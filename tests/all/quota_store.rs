//! The quota tables on both backends, with explicit times: usage from several hosts is summed per
//! window, `v_quota_status` shows each bucket's latest window, the later pause wins, and a pause
//! is reported only while it runs.

use patchbay_store::quota::UsageDelta;
use patchbay_store::{Backend, Store};
use patchbay_tests::db::fresh_database;

on_both_backends!(usage_is_summed_per_window_and_the_later_pause_wins);

fn delta(window_start: i64, used: i64, refused: i64) -> UsageDelta {
    UsageDelta {
        tenant: "acme".into(),
        provider: "stripe".into(),
        per_seconds: 60,
        window_start,
        requests: 5,
        used,
        refused,
    }
}

async fn usage_is_summed_per_window_and_the_later_pause_wins(backend: Backend) {
    let db = fresh_database(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    // Two hosts count the window starting at 60 000; one of them already the next window.
    store.add_quota_usage(&[delta(60_000, 3, 1)], &[], 100_000).await.unwrap();
    store.add_quota_usage(&[delta(60_000, 2, 4)], &[], 100_500).await.unwrap();
    let rows = store.quota_status("acme", "stripe").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].window_start, rows[0].used, rows[0].refused, rows[0].remaining), (60_000, 5, 5, 0));
    store.add_quota_usage(&[delta(120_000, 1, 0)], &[], 121_000).await.unwrap();
    let rows = store.quota_status("acme", "stripe").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].window_start, rows[0].used, rows[0].refused, rows[0].remaining), (120_000, 1, 0, 4));

    // Pauses: the later end wins whatever the order they arrive in.
    let pause = |until: i64| vec![("acme".to_string(), "stripe".to_string(), until)];
    store.add_quota_usage(&[], &pause(200_000), 121_000).await.unwrap();
    store.add_quota_usage(&[], &pause(150_000), 121_500).await.unwrap();
    assert_eq!(store.quota_pauses(121_600).await.unwrap(), pause(200_000));
    assert_eq!(store.quota_pauses(199_999).await.unwrap(), pause(200_000));
    assert!(store.quota_pauses(200_000).await.unwrap().is_empty());
    // Other tenants and providers are apart.
    assert!(store.quota_status("globex", "stripe").await.unwrap().is_empty());
    assert!(store.quota_status("acme", "github").await.unwrap().is_empty());
    store.close().await;
}
