//! `config_changes`: the log of changes to what hosts cache (tenants, API keys, installations,
//! webhook hooks, routes, connector versions). Database triggers (migration 0010) append one row
//! per changed row, in the changing transaction, naming its tenant (`''`: every tenant); on
//! PostgreSQL they also `NOTIFY` [`CONFIG_CHANNEL`] at commit. Hosts read the rows after the
//! highest id they have seen and drop what they cached for those tenants.

use std::time::Duration;

use sqlx::Row;

use super::{Store, StoreError};

/// The PostgreSQL `LISTEN`/`NOTIFY` channel on which commits that changed cached data are
/// announced (the payload is the tenant, `''` for every tenant).
pub const CONFIG_CHANNEL: &str = "patchbay_config";

/// The `application_name` of the connection a [`Store::spawn_config_listener`] task listens on,
/// before `-<process id>`.
pub const CONFIG_LISTENER_NAME: &str = "patchbay_config_listener";

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// Increasing (on PostgreSQL in the order ids were taken, which is not always the order in
    /// which transactions commit: readers allow for gaps that fill later).
    pub id: i64,
    /// The tenant whose data changed; `''` for data every tenant sees.
    pub tenant: String,
}

/// What a [`Store::spawn_config_listener`] task reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSignal {
    /// The listener (re)connected: notifications sent while it was away are lost.
    Connected,
    /// A transaction that changed cached data committed.
    Changed,
}

impl Store {
    /// Up to `limit` changes with an id above `after`, by id.
    pub async fn config_changes_after(&self, after: i64, limit: i64) -> Result<Vec<ConfigChange>, StoreError> {
        let rows = sqlx::query("SELECT id, tenant FROM config_changes WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(ConfigChange { id: r.try_get("id")?, tenant: r.try_get("tenant")? })).collect()
    }

    /// The highest id in the log (0 when it is empty).
    pub async fn config_changes_high_water(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM config_changes").fetch_one(self.pool()).await?;
        Ok(id.unwrap_or(0))
    }

    /// Deletes the changes logged before `before_ms`; returns how many.
    pub async fn prune_config_changes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM config_changes WHERE at < $1").bind(before_ms).execute(self.writer()).await?;
        Ok(done.rows_affected())
    }

    /// PostgreSQL: starts a task that `LISTEN`s on [`CONFIG_CHANNEL`] over its own connection to
    /// `url` and reports to `on_signal` (reconnecting a second after the connection drops; each
    /// connect is reported). Ends when `on_signal` returns `false`.
    pub fn spawn_config_listener(
        &self,
        url: String,
        on_signal: impl Fn(ConfigSignal) -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // Named, so that operators (and tests) can find the connection in pg_stat_activity.
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{sep}application_name={CONFIG_LISTENER_NAME}-{}", std::process::id());
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut l) => match l.listen(CONFIG_CHANNEL).await {
                        Err(e) => tracing::warn!("LISTEN {CONFIG_CHANNEL} failed: {e}"),
                        Ok(()) => {
                            if !on_signal(ConfigSignal::Connected) {
                                return;
                            }
                            loop {
                                match l.try_recv().await {
                                    Ok(Some(_)) => {
                                        if !on_signal(ConfigSignal::Changed) {
                                            return;
                                        }
                                    }
                                    Ok(None) => {
                                        tracing::warn!("config listener lost its connection");
                                        break;
                                    }
                                    Err(e) => {
                                        tracing::warn!("config listener failed: {e}");
                                        break;
                                    }
                                }
                            }
                        }
                    },
                    Err(e) => tracing::warn!("config listener cannot connect: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}
