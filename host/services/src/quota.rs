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
//! Every time a budget reads — windows, refills, pauses — comes from one injected
//! [`patchbay_core::Clock`] (the system clock in a host, a manual one in tests), so a window's
//! boundary is a fact a test can place, not a race it may lose.
//!
//! Usage is counted per fixed window (`window_start` = now rounded down to `per_seconds`):
//! calls admitted, calls refused, provider 429s. Each host enforces its buckets in memory and
//! [`flush`]es what it counted about once a second into `quota_usage` (summed over hosts; the
//! `v_quota_status` view shows each bucket's latest window). A pause is flushed too, and every
//! host applies the pauses it reads, so a 429 seen by one host stops the budget on all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patchbay_core::clock::{self, SharedClock};
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
    /// The tenant whose budget it is.
    pub tenant: String,
    /// The provider, as the connector's manifest names it.
    pub provider: String,
    /// The bucket (or pause) that refused, e.g. `5 requests per 60 s` or `paused by the provider (429)`.
    pub limit: String,
    /// How long until a call could run.
    pub retry_after: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    /// When `tokens` was last brought up to date (unix ms).
    refilled_ms: i64,
    /// Start (unix ms) of the window `used` and `refused` count, and its counters.
    window_start: i64,
    used: u64,
    refused: u64,
    /// Counts not yet flushed, by window start: (used, refused).
    unflushed: BTreeMap<i64, (u64, u64)>,
}

impl Bucket {
    fn new(limit: RateLimit, now_ms: i64) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.capacity()),
            refilled_ms: now_ms,
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

    /// The tokens at `now_ms` (a clock stepping back refills nothing).
    fn tokens_at(&self, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.refilled_ms).max(0) as f64;
        (self.tokens + elapsed * self.per_ms()).min(f64::from(self.limit.capacity()))
    }

    fn refill(&mut self, now_ms: i64) {
        self.tokens = self.tokens_at(now_ms);
        self.refilled_ms = self.refilled_ms.max(now_ms);
    }

    /// Time until one token is available (zero: now).
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((1.0 - self.tokens) / self.per_ms()).max(1.0) / 1000.0)
    }

    /// The start of the counting window `now_ms` falls in.
    fn window_of(&self, now_ms: i64) -> i64 {
        let len = i64::from(self.limit.per_seconds) * 1000;
        now_ms - now_ms.rem_euclid(len)
    }

    fn roll_window(&mut self, now_ms: i64) {
        let start = self.window_of(now_ms);
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
    /// Nobody calls before this time (unix ms): a provider's 429.
    paused_until: Option<i64>,
    /// A pause this host decided and has not flushed yet (unix ms).
    unshared_pause: Option<i64>,
    throttled: u64,
}

/// One (tenant, provider) budget.
#[derive(Debug)]
pub struct Budget {
    /// The tenant whose budget it is.
    pub tenant: String,
    /// The provider, as the connector's manifest names it.
    pub provider: String,
    /// `provider_key` of `provider`.
    pub key: String,
    clock: SharedClock,
    state: Mutex<State>,
    /// Waiters take turns in arrival order.
    queue: tokio::sync::Mutex<()>,
}

/// A budget's state for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketStatus {
    /// Calls allowed per window.
    pub requests: u32,
    /// The window's length, in seconds.
    pub per_seconds: u32,
    /// Most calls the bucket lets through at once.
    pub burst: u32,
    /// Tokens available now (whole calls).
    pub available: u32,
    /// The current counting window and its counters.
    pub window_start_ms: i64,
    /// Calls admitted in the current window.
    pub used: u64,
    /// Calls refused in the current window.
    pub refused: u64,
}

impl Budget {
    fn new(tenant: &str, provider: &str, limits: &[RateLimit], clock: SharedClock) -> Self {
        let now = clock.now_ms();
        Self {
            tenant: tenant.to_string(),
            provider: provider.to_string(),
            key: provider_key(provider),
            state: Mutex::new(State {
                buckets: limits.iter().map(|l| Bucket::new(*l, now)).collect(),
                ..State::default()
            }),
            clock,
            queue: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies changed limits (a new version or installation override), keeping usage of
    /// windows that stay.
    fn configure(&self, limits: &[RateLimit]) {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        if s.buckets.iter().map(|b| b.limit).eq(limits.iter().copied()) {
            return;
        }
        s.buckets = limits.iter().map(|l| Bucket::new(*l, now)).collect();
    }

    /// Takes a token from every bucket at `now_ms`, or says how long until that is possible.
    fn try_take(&self, now_ms: i64) -> Result<(), (Duration, String)> {
        let mut s = self.lock();
        if let Some(until) = s.paused_until {
            if until > now_ms {
                for b in &mut s.buckets {
                    b.roll_window(now_ms);
                    b.count(false);
                }
                return Err((duration(until - now_ms), "paused by the provider (HTTP 429)".into()));
            }
            s.paused_until = None;
        }
        let mut longest: Option<(Duration, String)> = None;
        for b in &mut s.buckets {
            b.refill(now_ms);
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
    pub(crate) async fn acquire(&self, mode: QuotaMode) -> Result<(), QuotaExceeded> {
        let max_wait = match mode {
            QuotaMode::FailFast => {
                return self.try_take(self.clock.now_ms()).map_err(|(wait, limit)| self.exceeded(wait, limit));
            }
            QuotaMode::Wait(max) => max,
        };
        let deadline = Instant::now() + max_wait;
        let _turn = match tokio::time::timeout(max_wait, self.queue.lock()).await {
            Ok(turn) => turn,
            Err(_) => return Err(self.exceeded(self.next_free(), "too many callers waiting".into())),
        };
        loop {
            match self.try_take(self.clock.now_ms()) {
                Ok(()) => return Ok(()),
                Err((wait, limit)) => {
                    if Instant::now() + wait > deadline {
                        return Err(self.exceeded(wait, limit));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Time until a call could run (zero: now), without taking anything.
    pub(crate) fn next_free(&self) -> Duration {
        let now = self.clock.now_ms();
        let mut s = self.lock();
        let pause = s.paused_until.map(|u| duration(u - now)).unwrap_or_default();
        let mut wait = Duration::ZERO;
        for b in &mut s.buckets {
            b.refill(now);
            wait = wait.max(b.wait());
        }
        wait.max(pause)
    }

    /// A provider's 429: nobody calls before `retry_after` has passed.
    pub(crate) fn pause(&self, retry_after: Duration) {
        let now = self.clock.now_ms();
        let until = now.saturating_add(ms(retry_after.min(MAX_PAUSE)));
        let mut s = self.lock();
        s.throttled += 1;
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
            s.unshared_pause = Some(until);
        }
        // What the provider counted is spent.
        for b in &mut s.buckets {
            b.refill(now);
            b.tokens = b.tokens.min(0.0);
        }
    }

    /// A pause another host recorded (unix ms), applied here if it ends later than ours.
    fn apply_pause_until(&self, until_ms: i64) {
        let until = until_ms.min(self.clock.now_ms().saturating_add(ms(MAX_PAUSE)));
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

    /// Buckets, pause and counters now. Reading changes nothing: a bucket whose counting window
    /// ended reports the window now running, with nothing counted in it yet.
    pub(crate) fn status(&self) -> (Vec<BucketStatus>, Option<Duration>, u64) {
        let now = self.clock.now_ms();
        let s = self.lock();
        let buckets = s
            .buckets
            .iter()
            .map(|b| {
                let window_start = b.window_of(now);
                let (used, refused) = if b.window_start == window_start { (b.used, b.refused) } else { (0, 0) };
                BucketStatus {
                    requests: b.limit.requests,
                    per_seconds: b.limit.per_seconds,
                    burst: b.limit.capacity(),
                    available: b.tokens_at(now).max(0.0).floor() as u32,
                    window_start_ms: window_start,
                    used,
                    refused,
                }
            })
            .collect();
        let paused = s.paused_until.filter(|u| *u > now).map(|u| duration(u - now));
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
pub struct Quotas {
    budgets: Mutex<HashMap<(String, String), Arc<Budget>>>,
    clock: SharedClock,
}

impl Default for Quotas {
    /// Budgets on the system clock.
    fn default() -> Self {
        Self::new(clock::system())
    }
}

/// The budget key of a provider name: case and surrounding space do not make another provider.
pub(crate) fn provider_key(provider: &str) -> String {
    provider.trim().to_lowercase()
}

impl Quotas {
    /// Budgets whose windows, refills and pauses follow `clock`.
    pub(crate) fn new(clock: SharedClock) -> Self {
        Self { budgets: Mutex::default(), clock }
    }

    /// The budget of `tenant` for `provider`, configured with `limits`; `None` without limits.
    pub(crate) fn budget(&self, tenant: &str, provider: &str, limits: &[RateLimit]) -> Option<Arc<Budget>> {
        if limits.is_empty() {
            return None;
        }
        let key = (tenant.to_string(), provider_key(provider));
        let mut m = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let budget =
            m.entry(key).or_insert_with(|| Arc::new(Budget::new(tenant, provider, limits, self.clock.clone()))).clone();
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
    let now = quotas.clock.now_ms();
    store.add_quota_usage(&deltas, &pauses, now).await?;
    if budgets.is_empty() {
        return Ok(());
    }
    for (tenant, provider, until) in store.quota_pauses(now).await? {
        if let Some(b) = budgets.iter().find(|b| b.tenant == tenant && b.key == provider) {
            b.apply_pause_until(until);
        }
    }
    Ok(())
}

/// Runs [`flush`] every `every` until the process ends; once an hour forgets usage older than
/// a day.
pub(crate) fn spawn_flusher(quotas: Arc<Quotas>, store: Store, every: Duration) {
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
                if let Err(e) = store.purge_quota_usage(quotas.clock.now_ms() - 24 * 3600 * 1000).await {
                    tracing::warn!("purging quota usage: {e}");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::clock::ManualClock;

    fn limit(requests: u32, per_seconds: u32) -> RateLimit {
        RateLimit { requests, per_seconds, burst: None }
    }

    /// A budget on a clock that moves only when the test says.
    fn budget_at(now_ms: i64, limits: &[RateLimit]) -> (Arc<ManualClock>, Budget) {
        let clock = ManualClock::at(now_ms);
        let b = Budget::new("t", "P", limits, clock.clone());
        (clock, b)
    }

    #[tokio::test]
    async fn a_bucket_admits_its_burst_then_refuses_with_the_wait() {
        let (_, b) = budget_at(1_000_000, &[limit(3, 60)]);
        for _ in 0..3 {
            b.acquire(QuotaMode::FailFast).await.unwrap();
        }
        let e = b.acquire(QuotaMode::FailFast).await.unwrap_err();
        assert_eq!(e.retry_after, Duration::from_secs(20));
        assert_eq!(e.limit, "3 requests per 60 s");
        let (buckets, paused, _) = b.status();
        assert_eq!((buckets[0].used, buckets[0].refused, buckets[0].available), (3, 1, 0));
        assert!(paused.is_none());
    }

    #[tokio::test]
    async fn tokens_refill_with_time() {
        let (clock, b) = budget_at(1_000_000, &[limit(3, 60)]);
        for _ in 0..3 {
            b.acquire(QuotaMode::FailFast).await.unwrap();
        }
        clock.advance(19_999);
        assert_eq!(b.acquire(QuotaMode::FailFast).await.unwrap_err().retry_after, Duration::from_millis(1));
        clock.advance(1);
        b.acquire(QuotaMode::FailFast).await.unwrap();
        assert_eq!(b.next_free(), Duration::from_secs(20));
    }

    #[tokio::test]
    async fn usage_is_counted_per_window_and_reading_it_changes_nothing() {
        // Three calls at the end of one minute, one at the start of the next.
        let (clock, b) = budget_at(119_990, &[limit(5, 60)]);
        for _ in 0..3 {
            b.acquire(QuotaMode::FailFast).await.unwrap();
        }
        let (s, _, _) = b.status();
        assert_eq!((s[0].window_start_ms, s[0].used), (60_000, 3));
        clock.set(120_010);
        // The new window has counted nothing yet; reading it resets nothing.
        let (s, _, _) = b.status();
        assert_eq!((s[0].window_start_ms, s[0].used, s[0].refused), (120_000, 0, 0));
        b.acquire(QuotaMode::FailFast).await.unwrap();
        let (s, _, _) = b.status();
        assert_eq!((s[0].window_start_ms, s[0].used), (120_000, 1));
        let (mut deltas, mut pauses) = (Vec::new(), Vec::new());
        b.drain(&mut deltas, &mut pauses);
        let counted: Vec<(i64, i64, i64)> = deltas.iter().map(|d| (d.window_start, d.used, d.refused)).collect();
        assert_eq!(counted, vec![(60_000, 3, 0), (120_000, 1, 0)]);
        assert!(pauses.is_empty());
    }

    #[tokio::test]
    async fn waiting_callers_get_tokens_as_they_refill() {
        let b = Budget::new("t", "P", &[limit(20, 1)], clock::system());
        let started = Instant::now();
        for _ in 0..25 {
            b.acquire(QuotaMode::Wait(Duration::from_secs(5))).await.unwrap();
        }
        // 20 at once, 5 more at 50 ms each.
        assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
        let e = Budget::new("t", "P", &[limit(1, 60)], clock::system());
        e.acquire(QuotaMode::FailFast).await.unwrap();
        assert!(e.acquire(QuotaMode::Wait(Duration::from_millis(50))).await.is_err());
    }

    #[tokio::test]
    async fn a_pause_stops_everyone_until_it_ends() {
        let (clock, b) = budget_at(5_000_000, &[limit(100, 1)]);
        b.pause(Duration::from_millis(150));
        let e = b.acquire(QuotaMode::FailFast).await.unwrap_err();
        assert!(e.limit.contains("429"), "{e:?}");
        assert_eq!(e.retry_after, Duration::from_millis(150));
        assert_eq!(b.status().1, Some(Duration::from_millis(150)));
        clock.advance(149);
        assert!(b.acquire(QuotaMode::FailFast).await.is_err());
        clock.advance(1);
        b.acquire(QuotaMode::FailFast).await.unwrap();
        let (mut deltas, mut pauses) = (Vec::new(), Vec::new());
        b.drain(&mut deltas, &mut pauses);
        assert_eq!(pauses, vec![("t".to_string(), "p".to_string(), 5_000_150)]);
    }

    #[tokio::test]
    async fn another_hosts_pause_applies_when_it_ends_later() {
        let (clock, b) = budget_at(1_000, &[limit(100, 1)]);
        b.pause(Duration::from_secs(1));
        b.apply_pause_until(500);
        assert_eq!(b.status().1, Some(Duration::from_secs(1)));
        b.apply_pause_until(10_000);
        assert_eq!(b.status().1, Some(Duration::from_secs(9)));
        clock.set(10_000);
        b.acquire(QuotaMode::FailFast).await.unwrap();
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
