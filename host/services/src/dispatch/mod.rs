//! Outbox delivery: the policy side of at-least-once delivery (the rows themselves live in
//! `patchbay_store`'s `outbox` module; the retry schedule is `patchbay_core::retry`).

pub mod worker;

use std::time::Duration;

use crate::app::App;

/// How often housekeeping runs (forgetting aged-out webhook dedupe keys).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Starts the background housekeeping task: webhook dedupe keys older than the configured
/// window are forgotten (the requests themselves stay in the event log).
pub fn spawn_housekeeping(app: App) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let window = i64::try_from(app.webhook_dedupe.as_millis()).unwrap_or(i64::MAX);
            let before = patchbay_core::now_ms().saturating_sub(window);
            match app.store.purge_dedupe_keys_before(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("forgot {n} webhook dedupe keys older than the dedupe window"),
                Err(e) => tracing::warn!("purging webhook dedupe keys failed: {e}"),
            }
            tokio::time::sleep(HOUSEKEEPING_EVERY).await;
        }
    })
}
