//! Provider budgets: token buckets per (tenant, provider), shared by every call path of this
//! host — API invokes, outbox deliveries, sync batches and health checks take a token from the
//! same [`Budget`] before the connector runs.
//!
//! A budget has one bucket per window the manifest's `[[rate_limits]]` (or the installation's
//! `limits.rate_limits`) declare: `requests` per `per_seconds`, refilled continuously, bursting
//! up to `burst`. A call takes one token from every bucket or none. When a provider answers 429
//! (the connector's HTTP response, seen by the host's `http` capability) its `Retry-After` pauses
//! the whole budget: every caller of that tenant and provider waits until then, not only the
//! one that was refused.
//!
//! Callers choose what happens over budget: [`QuotaMode::Wait`] queues (first come, first
//! served) up to a bound, [`QuotaMode::FailFast`] answers [`QuotaExceeded`] with the time until
//! a token frees up. Budgets are independent: a tenant draining its budget holds no lock, slot or
//! thread another tenant needs.
//!
//! Usage is counted per fixed window (`window_start` = now rounded down to `per_seconds`):
//! calls admitted, calls refused, provider 429s. Each host enforces its buckets in memory and
//! [`flush`]es what it counted about once a second into `quota_usage` (summed over hosts; the
//! `v_quota_status` view shows each bucket's latest window). A pause is flushed too, and every
//! host applies the pauses it reads, so a 429 seen by one host stops the budget on all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patchbay_registry::RateLimit;

use patchbay_store::Store;
use patchbay_store::quota::UsageDelta;

/// Longest a `Retry-After` may pause a budget.
const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// What a caller over budget wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaMode {
    /// Wait for a token up to this long, then fail.
    Wait(Duration),
    /// Fail at once.
    FailFast,
}

/// A call refused for want of budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {provider} budget of tenant {tenant} is exhausted ({limit}); a call can run in {} ms", retry_after.as_millis())]
pub struct QuotaExceeded {
    pub tenant: String,
    pub provider: String,
    /// The bucket (or pause) that refused, e.g. `5 requests per 60 s` or `paused by the provider (429)`.
    pub limit: String,
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    refilled: Instant,
    /// Start (unix ms) of the current counting window, and its counters.
    window_start: i64,
    used: u64,
    refused: u64,
    /// Counts not yet flushed, by window start: (used, refused).
    unflushed: BTreeMap<i64, (u64, u64)>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.capacity()),
            refilled: Instant::now(),
            window_start: 0,
            used: 0,
            refused: 0,
            unflushed: BTreeMap::new(),
        }
    }

    fn count(&mut self, used: bool) {
        let entry = self.unflushed.entry(self.window_start).or_default();
        if used {
            self.used += 1;
            entry.0 += 1;
        } else {
            self.refused += 1;
            entry.1 += 1;
        }
    }

    fn per_ms(&self) -> f64 {
        f64::from(self.limit.requests) / (f64::from(self.limit.per_seconds) * 1000.0)
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.refilled).as_secs_f64() * 1000.0;
        self.tokens = (self.tokens + ms * self.per_ms()).min(f64::from(self.limit.capacity()));
        self.refilled = now;
    }

    /// Time until one token is available (zero: now).
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((1.0 - self.tokens) / self.per_ms()).max(1.0) / 1000.0)
    }

    fn roll_window(&mut self, now_ms: i64) {
        let len = i64::from(self.limit.per_seconds) * 1000;
        let start = now_ms - now_ms.rem_euclid(len);
        if start != self.window_start {
            self.window_start = start;
            self.used = 0;
            self.refused = 0;
        }
    }

    fn describe(&self) -> String {
        format!("{} requests per {} s", self.limit.requests, self.limit.per_seconds)
    }
}

#[derive(Debug, Default)]
struct State {
    buckets: Vec<Bucket>,
    paused_until: Option<Instant>,
    /// A pause this host decided and has not flushed yet (unix ms).
    unshared_pause: Option<i64>,
    throttled: u64,
}

/// One (tenant, provider) budget.
#[derive(Debug)]
pub struct Budget {
    pub tenant: String,
    pub provider: String,
    /// [`provider_key`] of `provider`.
    pub key: String,
    state: Mutex<State>,
    /// Waiters take turns in arrival order.
    queue: tokio::sync::Mutex<()>,
}

/// A budget's state for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketStatus {
    pub requests: u32,
    pub per_seconds: u32,
    pub burst: u32,
    /// Tokens available now (whole calls).
    pub available: u32,
    /// The current counting window and its counters.
    pub window_start_ms: i64,
    pub used: u64,
    pub refused: u64,
}

impl Budget {
    fn new(tenant: &str, provider: &str, limits: &[RateLimit]) -> Self {
        Self {
            tenant: tenant.to_string(),
            provider: provider.to_string(),
            key: provider_key(provider),
            state: Mutex::new(State { buckets: limits.iter().copied().map(Bucket::new).collect(), ..State::default() }),
            queue: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies changed limits (a new version or installation override), keeping usage of
    /// windows that stay.
    fn configure(&self, limits: &[RateLimit]) {
        let mut s = self.lock();
        if s.buckets.iter().map(|b| b.limit).eq(limits.iter().copied()) {
            return;
        }
        s.buckets = limits.iter().copied().map(Bucket::new).collect();
    }

    /// Takes a token from every bucket, or says how long until that is possible.
    fn try_take(&self, now: Instant, now_ms: i64) -> Result<(), (Duration, String)> {
        let mut s = self.lock();
        if let Some(until) = s.paused_until {
            if until > now {
                for b in &mut s.buckets {
                    b.roll_window(now_ms);
                    b.count(false);
                }
                return Err((until - now, "paused by the provider (HTTP 429)".into()));
            }
            s.paused_until = None;
        }
        let mut longest: Option<(Duration, String)> = None;
        for b in &mut s.buckets {
            b.refill(now);
            b.roll_window(now_ms);
            let w = b.wait();
            if !w.is_zero() && longest.as_ref().is_none_or(|(l, _)| w > *l) {
                longest = Some((w, b.describe()));
            }
        }
        if let Some(refusal) = longest {
            for b in &mut s.buckets {
                b.count(false);
            }
            return Err(refusal);
        }
        for b in &mut s.buckets {
            b.tokens -= 1.0;
            b.count(true);
        }
        Ok(())
    }

    fn exceeded(&self, retry_after: Duration, limit: String) -> QuotaExceeded {
        QuotaExceeded { tenant: self.tenant.clone(), provider: self.provider.clone(), limit, retry_after }
    }

    /// Admits one call, waiting or failing as `mode` says.
    pub async fn acquire(&self, mode: QuotaMode) -> Result<(), QuotaExceeded> {
        let max_wait = match mode {
            QuotaMode::FailFast => {
                return self
                    .try_take(Instant::now(), patchbay_core::now_ms())
                    .map_err(|(wait, limit)| self.exceeded(wait, limit));
            }
            QuotaMode::Wait(max) => max,
        };
        let deadline = Instant::now() + max_wait;
        let _turn = match tokio::time::timeout(max_wait, self.queue.lock()).await {
            Ok(turn) => turn,
            Err(_) => return Err(self.exceeded(self.next_free(), "too many callers waiting".into())),
        };
        loop {
            let now = Instant::now();
            match self.try_take(now, patchbay_core::now_ms()) {
                Ok(()) => return Ok(()),
                Err((wait, limit)) => {
                    if now + wait > deadline {
                        return Err(self.exceeded(wait, limit));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Time until a call could run (zero: now), without taking anything.
    pub fn next_free(&self) -> Duration {
        let now = Instant::now();
        let mut s = self.lock();
        let pause = s.paused_until.map(|u| u.saturating_duration_since(now)).unwrap_or_default();
        let mut wait = Duration::ZERO;
        for b in &mut s.buckets {
            b.refill(now);
            wait = wait.max(b.wait());
        }
        wait.max(pause)
    }

    /// A provider's 429: nobody calls before `retry_after` has passed.
    pub fn pause(&self, retry_after: Duration) {
        let retry_after = retry_after.min(MAX_PAUSE);
        let until = Instant::now() + retry_after;
        let mut s = self.lock();
        s.throttled += 1;
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
            let ms = patchbay_core::now_ms().saturating_add(i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX));
            s.unshared_pause = Some(ms);
        }
        // What the provider counted is spent.
        for b in &mut s.buckets {
            b.tokens = b.tokens.min(0.0);
        }
    }

    /// A pause another host recorded (unix ms), applied here if it ends later than ours.
    fn apply_pause_until(&self, until_ms: i64) {
        let left = until_ms.saturating_sub(patchbay_core::now_ms());
        let Ok(left) = u64::try_from(left) else { return };
        let until = Instant::now() + Duration::from_millis(left).min(MAX_PAUSE);
        let mut s = self.lock();
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
        }
    }

    /// Takes the counts and the pause not flushed yet.
    fn drain(&self, deltas: &mut Vec<UsageDelta>, pauses: &mut Vec<(String, String, i64)>) {
        let mut s = self.lock();
        for b in &mut s.buckets {
            for (window_start, (used, refused)) in std::mem::take(&mut b.unflushed) {
                deltas.push(UsageDelta {
                    tenant: self.tenant.clone(),
                    provider: self.key.clone(),
                    per_seconds: i64::from(b.limit.per_seconds),
                    window_start,
                    requests: i64::from(b.limit.requests),
                    used: i64::try_from(used).unwrap_or(i64::MAX),
                    refused: i64::try_from(refused).unwrap_or(i64::MAX),
                });
            }
        }
        if let Some(until) = s.unshared_pause.take() {
            pauses.push((self.tenant.clone(), self.key.clone(), until));
        }
    }

    /// Buckets, pause and counters now.
    pub fn status(&self) -> (Vec<BucketStatus>, Option<Duration>, u64) {
        let now = Instant::now();
        let now_ms = patchbay_core::now_ms();
        let mut s = self.lock();
        let buckets = s
            .buckets
            .iter_mut()
            .map(|b| {
                b.refill(now);
                b.roll_window(now_ms);
                BucketStatus {
                    requests: b.limit.requests,
                    per_seconds: b.limit.per_seconds,
                    burst: b.limit.capacity(),
                    available: b.tokens.max(0.0).floor() as u32,
                    window_start_ms: b.window_start,
                    used: b.used,
                    refused: b.refused,
                }
            })
            .collect();
        let paused = s.paused_until.and_then(|u| (u > now).then(|| u - now));
        (buckets, paused, s.throttled)
    }
}

/// A provider's 429, seen by the `http` capability, pauses the whole budget.
impl patchbay_runtime::capability::http::EgressBudget for Budget {
    fn throttled(&self, retry_after: Duration) {
        self.pause(retry_after);
    }
}

/// This host's budgets by (tenant, provider key).
#[derive(Default)]
pub struct Quotas {
    budgets: Mutex<HashMap<(String, String), Arc<Budget>>>,
}

/// The budget key of a provider name: case and surrounding space do not make another provider.
pub fn provider_key(provider: &str) -> String {
    provider.trim().to_lowercase()
}

impl Quotas {
    /// The budget of `tenant` for `provider`, configured with `limits`; `None` without limits.
    pub fn budget(&self, tenant: &str, provider: &str, limits: &[RateLimit]) -> Option<Arc<Budget>> {
        if limits.is_empty() {
            return None;
        }
        let key = (tenant.to_string(), provider_key(provider));
        let mut m = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let budget = m.entry(key).or_insert_with(|| Arc::new(Budget::new(tenant, provider, limits))).clone();
        budget.configure(limits);
        Some(budget)
    }
}

/// Writes what this host counted and decided since the last flush, then applies the pauses
/// other hosts recorded. Counts that fail to be written are lost (they only feed the views).
pub async fn flush(quotas: &Quotas, store: &Store) -> Result<(), patchbay_store::StoreError> {
    let budgets: Vec<Arc<Budget>> =
        quotas.budgets.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let (mut deltas, mut pauses) = (Vec::new(), Vec::new());
    for b in &budgets {
        b.drain(&mut deltas, &mut pauses);
    }
    store.add_quota_usage(&deltas, &pauses).await?;
    if budgets.is_empty() {
        return Ok(());
    }
    for (tenant, provider, until) in store.quota_pauses().await? {
        if let Some(b) = budgets.iter().find(|b| b.tenant == tenant && b.key == provider) {
            b.apply_pause_until(until);
        }
    }
    Ok(())
}

/// Runs [`flush`] every `every` until the process ends; once an hour forgets usage older than
/// a day.
pub fn spawn_flusher(quotas: Arc<Quotas>, store: Store, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = Instant::now();
        loop {
            interval.tick().await;
            if let Err(e) = flush(&quotas, &store).await {
                tracing::warn!("flushing quota usage: {e}");
            }
            if last_purge.elapsed() > Duration::from_secs(3600) {
                last_purge = Instant::now();
                if let Err(e) = store.purge_quota_usage(patchbay_core::now_ms() - 24 * 3600 * 1000).await {
                    tracing::warn!("purging quota usage: {e}");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per_seconds: u32) -> RateLimit {
        RateLimit { requests, per_seconds, burst: None }
    }

    #[tokio::test]
    async fn a_bucket_admits_its_burst_then_refuses_with_the_wait() {
        let b = Budget::new("t", "P", &[limit(3, 60)]);
        for _ in 0..3 {
            b.acquire(QuotaMode::FailFast).await.unwrap();
        }
        let e = b.acquire(QuotaMode::FailFast).await.unwrap_err();
        assert!(e.retry_after > Duration::from_secs(19) && e.retry_after <= Duration::from_secs(20), "{e:?}");
        assert_eq!(e.limit, "3 requests per 60 s");
        let (buckets, paused, _) = b.status();
        assert_eq!((buckets[0].used, buckets[0].refused, buckets[0].available), (3, 1, 0));
        assert!(paused.is_none());
    }

    #[tokio::test]
    async fn waiting_callers_get_tokens_as_they_refill() {
        let b = Budget::new("t", "P", &[limit(20, 1)]);
        let started = Instant::now();
        for _ in 0..25 {
            b.acquire(QuotaMode::Wait(Duration::from_secs(5))).await.unwrap();
        }
        // 20 at once, 5 more at 50 ms each.
        assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
        let e = Budget::new("t", "P", &[limit(1, 60)]);
        e.acquire(QuotaMode::FailFast).await.unwrap();
        assert!(e.acquire(QuotaMode::Wait(Duration::from_millis(50))).await.is_err());
    }

    #[tokio::test]
    async fn a_pause_stops_everyone_until_it_ends() {
        let b = Budget::new("t", "P", &[limit(100, 1)]);
        b.pause(Duration::from_millis(150));
        let e = b.acquire(QuotaMode::FailFast).await.unwrap_err();
        assert!(e.limit.contains("429"), "{e:?}");
        let started = Instant::now();
        b.acquire(QuotaMode::Wait(Duration::from_secs(2))).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn budgets_are_per_tenant_and_provider() {
        let q = Quotas::default();
        let a = q.budget("acme", "Stripe", &[limit(1, 1)]).unwrap();
        assert!(Arc::ptr_eq(&a, &q.budget("acme", " stripe ", &[limit(1, 1)]).unwrap()));
        assert!(!Arc::ptr_eq(&a, &q.budget("globex", "Stripe", &[limit(1, 1)]).unwrap()));
        assert!(q.budget("acme", "Stripe", &[]).is_none());
    }
}
