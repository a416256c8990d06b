//! Caches of data that rarely changes — API keys, installations and their prepared call
//! contexts, webhook hooks, routing rules, connector versions — kept correct across hosts by one
//! invalidation mechanism: [`ConfigWatch`].
//!
//! **The log.** Database triggers (migration 0010) append a row naming the tenant to
//! `config_changes` in every transaction that inserts, updates or deletes such data (`''` for
//! data every tenant sees: operator keys, public connector versions). Nothing in the services has
//! to remember to record a change, and a change that rolls back is never seen.
//!
//! **The watcher.** Each host reads the log after the highest id it has seen every
//! [`POLL_INTERVAL`], and at once when woken: on PostgreSQL by `NOTIFY patchbay_config`, which
//! the same triggers send at commit, and in-process by [`ConfigWatch::changed`], which the
//! services call after their own writes (so a change applies immediately on the host that made
//! it). Every logged tenant has its cached entries dropped. On PostgreSQL ids are taken in one
//! order and committed in another: a missing id is waited for (rows above it are read again on
//! every poll) for up to [`GAP_GIVE_UP`], long past any configuration transaction. When the
//! `LISTEN` connection (re)connects, or a poll succeeds after one failed, everything is dropped:
//! what happened meanwhile is not known for sure. Rows older than [`RETAIN_CHANGES`] are pruned.
//!
//! **The bound.** A cached entry is served only while the watcher's last successful poll
//! *started* less than [`STALENESS_BOUND`] (1 s) ago; it then reflects every change committed
//! before that start. When the watcher falls behind (database unreachable, host overloaded),
//! caches are bypassed and every read goes to the database — fail closed: a revoked API key
//! stops working within the bound on every host, whatever happens to notifications.
//!
//! **Races.** A reader takes a read point ([`TenantCache::read_point`]) before it reads the
//! database; an entry is stored, and later served, only if no invalidation of its tenant
//! happened after that point. So a value read just before a change cannot outlive the change's
//! invalidation.
//!
//! Entries are keyed per tenant (an invalidation of one tenant never touches another's), and
//! each cache is bounded ([`TenantCache::new`]'s `max`).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use patchbay_store::{Backend, ConfigSignal, Store};
use tokio::sync::Notify;

/// How stale a cached entry may be at most, on every host: entries are served only while the
/// watcher's last successful poll started less than this long ago.
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);

/// How often the watcher reads the change log when nothing wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long a missing id in the change log is waited for (a transaction that took the id and
/// has not committed yet) before the watcher moves past it (it rolled back).
pub const GAP_GIVE_UP: Duration = Duration::from_secs(30);

/// How long logged changes are kept.
pub const RETAIN_CHANGES: Duration = Duration::from_secs(3600);

/// How often a host prunes the change log.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Most changes read per poll; more than this at once drops everything.
const POLL_LIMIT: i64 = 1_000;

/// Most tenants whose last invalidation is remembered one by one; past it, everything is dropped.
const MAX_TRACKED_TENANTS: usize = 100_000;

/// When each tenant's cached data was last invalidated, counted in invalidations.
#[derive(Default)]
struct Generations {
    /// Invalidations so far.
    seq: u64,
    /// The invalidation that dropped everything last.
    all: u64,
    /// Each tenant's last invalidation.
    tenants: HashMap<String, u64>,
}

/// Learns of changes to cached data and tells the caches (see the module docs).
pub struct ConfigWatch {
    generations: Mutex<Generations>,
    /// Wakes the watcher for a poll now.
    kick: Notify,
    /// Origin of `synced_at`.
    origin: Instant,
    /// Milliseconds after `origin` at which the last successful poll started, plus one (0: no
    /// poll succeeded yet).
    synced_at: AtomicU64,
    /// The last poll failed: the next successful one drops everything.
    failing: AtomicBool,
}

impl ConfigWatch {
    /// A watch that has not synced yet (caches are bypassed until its watcher runs).
    pub(crate) fn new() -> Arc<ConfigWatch> {
        Arc::new(ConfigWatch {
            generations: Mutex::default(),
            kick: Notify::new(),
            origin: Instant::now(),
            synced_at: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        })
    }

    /// Whether cached entries may be served: the last successful poll started within
    /// [`STALENESS_BOUND`].
    pub fn fresh(&self) -> bool {
        let synced = self.synced_at.load(Ordering::Acquire);
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        synced != 0 && now.saturating_sub(synced) <= STALENESS_BOUND.as_millis() as u64
    }

    /// How many invalidations happened so far.
    pub fn invalidations(&self) -> u64 {
        self.generations.lock().map(|g| g.seq).unwrap_or(0)
    }

    fn mark_synced(&self, started: Instant) {
        let at = started.saturating_duration_since(self.origin).as_millis() as u64 + 1;
        self.synced_at.fetch_max(at, Ordering::AcqRel);
    }

    /// A data change made through this host committed: drops the tenant's entries at once
    /// (`''`: everyone's) and wakes the watcher for the rest of the log.
    pub(crate) fn changed(&self, tenant: &str) {
        self.invalidate(tenant);
        self.kick.notify_one();
    }

    /// Drops the tenant's cached entries (`''`: every tenant's).
    fn invalidate(&self, tenant: &str) {
        if let Ok(mut g) = self.generations.lock() {
            g.seq += 1;
            let seq = g.seq;
            if tenant.is_empty() || g.tenants.len() >= MAX_TRACKED_TENANTS {
                g.all = seq;
                g.tenants.clear();
            } else {
                g.tenants.insert(tenant.to_string(), seq);
            }
        }
    }

    /// Drops every cached entry.
    fn invalidate_all(&self) {
        self.invalidate("");
    }

    /// The read point of a reader about to read the database; `None` when caches are bypassed.
    fn read_point(&self) -> Option<u64> {
        if !self.fresh() {
            return None;
        }
        self.generations.lock().ok().map(|g| g.seq)
    }

    /// Whether data of `tenant` read at `read_point` is still current.
    fn current(&self, tenant: &str, read_point: u64) -> bool {
        let Ok(g) = self.generations.lock() else { return false };
        g.all <= read_point && g.tenants.get(tenant).is_none_or(|&at| at <= read_point)
    }

    /// Starts the watcher (see the module docs): polls `store`'s change log, and on PostgreSQL
    /// listens at `database` too. Ends when the watch is dropped.
    pub(crate) fn spawn(self: &Arc<Self>, store: Store, database: &str) {
        let weak = Arc::downgrade(self);
        if store.backend() == Backend::Postgres {
            let listening = weak.clone();
            store.spawn_config_listener(database.to_string(), move |signal| {
                let Some(w) = listening.upgrade() else { return false };
                if signal == ConfigSignal::Connected {
                    w.invalidate_all();
                }
                w.kick.notify_one();
                true
            });
        }
        tokio::spawn(watch(weak, store));
    }
}

/// The watcher's loop.
async fn watch(weak: Weak<ConfigWatch>, store: Store) {
    // Changes before now concern nothing cached yet.
    let mut cursor = loop {
        match store.config_changes_high_water().await {
            Ok(c) => break c,
            Err(e) => tracing::warn!("reading the configuration change log failed: {e}"),
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    // Ids above `cursor` already applied, and since when the lowest missing one is awaited.
    let mut seen = BTreeSet::new();
    let mut gap_since: Option<Instant> = None;
    let mut pruned = Instant::now();
    let mut first = true;
    loop {
        let Some(w) = weak.upgrade() else { return };
        let started = Instant::now();
        match store.config_changes_after(cursor, POLL_LIMIT).await {
            Ok(rows) => {
                if first {
                    first = false;
                } else if w.failing.swap(false, Ordering::AcqRel) {
                    w.invalidate_all();
                }
                if rows.len() as i64 >= POLL_LIMIT {
                    w.invalidate_all();
                    seen.clear();
                    cursor = rows.last().map_or(cursor, |r| r.id);
                } else {
                    for r in rows {
                        if seen.insert(r.id) {
                            w.invalidate(&r.tenant);
                        }
                    }
                }
                while seen.remove(&(cursor + 1)) {
                    cursor += 1;
                }
                match seen.first() {
                    None => gap_since = None,
                    Some(_) => {
                        let since = *gap_since.get_or_insert(started);
                        if since.elapsed() > GAP_GIVE_UP {
                            cursor = seen.last().copied().unwrap_or(cursor);
                            seen.clear();
                            gap_since = None;
                        }
                    }
                }
                w.mark_synced(started);
            }
            Err(e) => {
                if !w.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!("reading the configuration change log failed (caches are bypassed): {e}");
                }
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            let before = patchbay_core::now_ms() - RETAIN_CHANGES.as_millis() as i64;
            if let Err(e) = store.prune_config_changes(before).await {
                tracing::warn!("pruning the configuration change log failed: {e}");
            }
        }
        // Holding the watch only while polling: a dropped watch is noticed at the next tick.
        let kicked = async move { w.kick.notified().await };
        let _ = tokio::time::timeout(POLL_INTERVAL, kicked).await;
    }
}

/// A cached value and the tenant and read point it belongs to.
struct Entry<V> {
    tenant: String,
    read_point: u64,
    value: V,
}

/// A bounded map whose entries belong to tenants and are dropped when their tenant's data
/// changes (see the module docs).
pub(crate) struct TenantCache<K, V> {
    watch: Arc<ConfigWatch>,
    entries: Mutex<HashMap<K, Entry<V>>>,
    max: usize,
}

impl<K: Hash + Eq, V: Clone> TenantCache<K, V> {
    /// An empty cache of at most `max` entries.
    pub(crate) fn new(watch: Arc<ConfigWatch>, max: usize) -> Self {
        TenantCache { watch, entries: Mutex::default(), max }
    }

    /// The cached value, if it is current and the watcher is fresh.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        if !self.watch.fresh() {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        if self.watch.current(&e.tenant, e.read_point) {
            return Some(e.value.clone());
        }
        entries.remove(key);
        None
    }

    /// A change through this host to `tenant`'s data committed (see [`ConfigWatch::changed`]).
    pub(crate) fn changed(&self, tenant: &str) {
        self.watch.changed(tenant);
    }

    /// Where a reader stands before it reads the database; `None` when caches are bypassed.
    pub(crate) fn read_point(&self) -> Option<u64> {
        self.watch.read_point()
    }

    /// Keeps `value` of `tenant`, read from the database after `read_point`, unless the tenant's
    /// data changed since.
    pub(crate) fn put(&self, key: K, tenant: &str, read_point: Option<u64>, value: V) {
        let Some(read_point) = read_point else { return };
        if !self.watch.current(tenant, read_point) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= self.max {
            entries.retain(|_, e| self.watch.current(&e.tenant, e.read_point));
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, Entry { tenant: tenant.to_string(), read_point, value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced() -> Arc<ConfigWatch> {
        let w = ConfigWatch::new();
        w.mark_synced(Instant::now());
        w
    }

    #[test]
    fn a_tenants_change_drops_its_entries_only() {
        let w = synced();
        let c = TenantCache::new(w.clone(), 10);
        let p = c.read_point();
        c.put("a1", "a", p, 1);
        c.put("b1", "b", p, 2);
        w.changed("a");
        assert_eq!(c.get(&"a1"), None);
        assert_eq!(c.get(&"b1"), Some(2));
        w.changed("");
        assert_eq!(c.get(&"b1"), None);
    }

    #[test]
    fn a_value_read_before_a_change_is_not_kept() {
        let w = synced();
        let c = TenantCache::new(w.clone(), 10);
        let p = c.read_point();
        w.changed("a");
        c.put("a1", "a", p, 1);
        assert_eq!(c.get(&"a1"), None);
        // Another tenant's change does not refuse it.
        let p = c.read_point();
        w.changed("b");
        c.put("a1", "a", p, 1);
        assert_eq!(c.get(&"a1"), Some(1));
    }

    #[test]
    fn a_stale_watch_bypasses_the_cache() {
        let origin = Instant::now().checked_sub(STALENESS_BOUND * 5).unwrap();
        let w = Arc::new(ConfigWatch {
            generations: Mutex::default(),
            kick: Notify::new(),
            origin,
            synced_at: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        });
        let c: TenantCache<&str, i32> = TenantCache::new(w.clone(), 10);
        assert_eq!(c.read_point(), None, "never synced");
        w.mark_synced(Instant::now());
        let p = c.read_point();
        c.put("a1", "a", p, 1);
        assert_eq!(c.get(&"a1"), Some(1));
        // The last successful poll started before the bound: nothing is served.
        w.synced_at.store(1, Ordering::Release);
        assert_eq!(c.get(&"a1"), None);
        assert_eq!(c.read_point(), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let w = synced();
        let c = TenantCache::new(w, 3);
        for i in 0..10 {
            let p = c.read_point();
            c.put(i, "a", p, i);
            assert!(c.entries.lock().unwrap().len() <= 3);
        }
        assert_eq!(c.get(&9), Some(9));
    }
}
