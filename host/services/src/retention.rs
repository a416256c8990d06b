//! [`Retention`]: how long the host keeps what grows without end — raw webhook requests, events
//! (with their deliveries and attempts), operation logs, sync item errors and the change feed's
//! tombstones — and the sweep that deletes the rest (docs/retention.md).
//!
//! **Policies.** The operator's settings ([`RetentionConfig`]) give every class a default age
//! and/or count and a limit of each; a tenant may override the defaults within the limits
//! (`PUT /v1/retention`). Counts are per tenant, except for logs, whose count is per
//! installation. A class with neither an age nor a count keeps everything.
//!
//! **The sweep** ([`Retention::sweep`]) goes tenant by tenant and class by class, deleting rows
//! older than the policy's cut-off in batches of at most `batch_size` rows, one short
//! transaction each, with a pause between batches so writers get the database in between. What
//! must be kept is kept whatever the policy says: raw requests inside the webhook dedupe window,
//! events with a pending or leased delivery, tombstones an export has not consumed, errors of
//! running syncs (the store's `retention` module enforces the rest). On SQLite the sweep then
//! returns freed pages to the file system a few at a time (`PRAGMA incremental_vacuum`).
//!
//! **One host at a time.** In a cluster, [`spawn_sweeper`]'s task ticks on every host, but a
//! sweep runs only on the host that takes the `retention` job lease in the database, and only
//! when the last sweep finished at least `interval` ago; the lease is renewed while the sweep
//! runs, and a host that loses it stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patchbay_core::error::{Error, Field};
use patchbay_core::now_ms;
use patchbay_store::{InstallationFilter, MAX_PAGE, PageRequest};
use patchbay_store::{RetentionClass, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::Metrics;

/// What a policy covers (`webhook_requests`, `events`, `logs`, `sync_errors`, `sync_changes`).
pub type Class = RetentionClass;

/// The longest age any policy may give: ten years.
pub const MAX_AGE_SECS: u64 = 3650 * 86_400;
/// The largest count any policy may give.
pub const MAX_COUNT: u64 = 1_000_000_000;
/// Name of the sweep's job lease.
const JOB: &str = "retention";
/// How long a sweeping host holds the job before another may take it over (renewed meanwhile).
const LEASE: Duration = Duration::from_secs(600);
/// How often a sweeping host renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(60);
/// Pause between two batches: writers waiting for the database go first.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
/// Free SQLite pages returned to the file system per step.
const RECLAIM_PAGES: u32 = 512;
/// Most reclaim steps per sweep.
const MAX_RECLAIM_STEPS: u32 = 100_000;
/// How often a host looks whether a sweep is due.
const TICK: Duration = Duration::from_secs(60);

/// An age and/or a count: rows older than the age, and rows beyond the count newest, go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassPolicy {
    /// Keep rows for this many seconds; `None`: no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Keep this many newest rows (per tenant; per installation for logs); `None`: no count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

impl ClassPolicy {
    /// A policy of an age only.
    pub const fn age(secs: u64) -> Self {
        ClassPolicy { max_age_secs: Some(secs), max_count: None }
    }

    /// `self` bounded by `limit` (a stored override above a limit the operator lowered since).
    fn within(self, limit: ClassPolicy) -> ClassPolicy {
        let cap = |v: Option<u64>, l: Option<u64>| match (v, l) {
            (Some(v), Some(l)) => Some(v.min(l)),
            (None, l) => l,
            (v, None) => v,
        };
        ClassPolicy {
            max_age_secs: cap(self.max_age_secs, limit.max_age_secs),
            max_count: cap(self.max_count, limit.max_count),
        }
    }
}

/// The operator's retention settings (`[retention]` in patchbay.toml, `PATCHBAY_RETENTION_*`).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// What applies to a tenant that did not override it, per class.
    pub defaults: BTreeMap<Class, ClassPolicy>,
    /// The most a tenant may set, per class (`None` fields: up to [`MAX_AGE_SECS`], [`MAX_COUNT`]).
    pub limits: BTreeMap<Class, ClassPolicy>,
    /// Time between sweeps; zero: no background sweeps.
    pub interval: Duration,
    /// Rows per batch (one transaction).
    pub batch_size: u32,
    /// The webhook dedupe window: raw requests younger than this are never pruned.
    pub webhook_dedupe: Duration,
}

/// The built-in defaults and limits: `(class, default, limit)`. They keep a host's disk bounded
/// without counts: a week of raw requests (more than the 72 h dedupe window), a month of events,
/// two weeks of logs, a month of item errors and tombstones.
pub const BUILT_IN: [(Class, ClassPolicy, ClassPolicy); 5] = [
    (Class::WebhookRequests, ClassPolicy::age(7 * 86_400), ClassPolicy::age(90 * 86_400)),
    (Class::Events, ClassPolicy::age(30 * 86_400), ClassPolicy::age(365 * 86_400)),
    (Class::Logs, ClassPolicy::age(14 * 86_400), ClassPolicy::age(90 * 86_400)),
    (Class::SyncErrors, ClassPolicy::age(30 * 86_400), ClassPolicy::age(365 * 86_400)),
    (Class::SyncChanges, ClassPolicy::age(30 * 86_400), ClassPolicy::age(365 * 86_400)),
];

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            defaults: BUILT_IN.iter().map(|(c, d, _)| (*c, *d)).collect(),
            limits: BUILT_IN.iter().map(|(c, _, l)| (*c, *l)).collect(),
            interval: Duration::from_secs(3600),
            batch_size: 1000,
            webhook_dedupe: Duration::from_secs(72 * 3600),
        }
    }
}

impl RetentionConfig {
    fn default_of(&self, class: Class) -> ClassPolicy {
        self.defaults.get(&class).copied().unwrap_or_default()
    }

    fn limit_of(&self, class: Class) -> ClassPolicy {
        self.limits.get(&class).copied().unwrap_or_default()
    }

    /// Checks that every default is within its limit; the message names the class and setting.
    pub fn check(&self) -> Result<(), String> {
        for class in Class::ALL {
            let (d, l) = (self.default_of(*class), self.limit_of(*class));
            if let Some(max) = l.max_age_secs {
                match d.max_age_secs {
                    Some(a) if a > max => {
                        return Err(format!(
                            "retention of {class}: the default age {} is above the limit {}",
                            format_age(a),
                            format_age(max)
                        ));
                    }
                    None => return Err(format!("retention of {class}: an age limit needs a default age")),
                    _ => {}
                }
            }
            if let Some(max) = l.max_count {
                match d.max_count {
                    Some(n) if n > max => {
                        return Err(format!("retention of {class}: the default count {n} is above the limit {max}"));
                    }
                    None => return Err(format!("retention of {class}: a count limit needs a default count")),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Reads an age: digits and one unit, `s`, `m`, `h` or `d` (`90m`, `7d`), from one second to
/// [`MAX_AGE_SECS`]; the number of seconds.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let expected = "an age is digits and one unit of s, m, h or d, such as 7d or 90m";
    let Some(unit) = text.chars().last() else { return Err(format!("empty; {expected}")) };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("{} is not an age; {expected}", shown(text))),
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not an age; {expected}", shown(text)));
    }
    let secs = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)).filter(|s| *s <= MAX_AGE_SECS);
    match secs {
        Some(0) => Err(format!("{} is no age: the shortest is 1s", shown(text))),
        Some(s) => Ok(s),
        None => Err(format!("{} is longer than {}", shown(text), format_age(MAX_AGE_SECS))),
    }
}

/// Writes an age in the largest unit that divides it: `604800` → `7d`.
pub fn format_age(secs: u64) -> String {
    for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= scale && secs.is_multiple_of(scale) {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

/// `text` quoted for a message, cut to 40 characters.
fn shown(text: &str) -> String {
    let mut cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// A tenant's overrides, as stored (`retention_policies.policy_json`).
type Overrides = BTreeMap<Class, ClassPolicy>;

/// One class of a tenant's policy, with where its values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassView {
    /// The class.
    pub class: Class,
    /// What the tenant set (`None` fields: the default).
    pub set: ClassPolicy,
    /// What the sweep applies.
    pub effective: ClassPolicy,
    /// The operator's default.
    pub default: ClassPolicy,
    /// The most the tenant may set.
    pub limit: ClassPolicy,
}

/// A tenant's retention policy, every class.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// The tenant.
    pub tenant: String,
    /// One entry per class, in [`Class::ALL`] order.
    pub classes: Vec<ClassView>,
}

/// What one sweep deleted.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Rows deleted per class (events count alone, not their deliveries).
    pub pruned: BTreeMap<Class, u64>,
    /// Tenants whose sweep of some class failed (logged; the next sweep tries again).
    pub failures: u64,
    /// SQLite: free pages left in the file after reclaiming (0 on PostgreSQL).
    pub free_pages: i64,
    /// `false` when the host lost the job lease and stopped early.
    pub complete: bool,
}

impl SweepReport {
    /// Rows deleted of one class.
    pub fn of(&self, class: Class) -> u64 {
        self.pruned.get(&class).copied().unwrap_or(0)
    }
}

/// Retention policies and the sweep.
pub struct Retention {
    store: Store,
    metrics: Arc<Metrics>,
    config: RetentionConfig,
}

/// The job lease a background sweep holds, renewed as it goes.
struct Lease<'a> {
    owner: &'a str,
    renewed: Instant,
}

impl Retention {
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>, config: RetentionConfig) -> Self {
        Self { store, metrics, config }
    }

    /// The operator's settings in force.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// The tenant's policy (a tenant key's own tenant).
    pub async fn policy(&self, tenant: &str) -> Result<PolicyView, Error> {
        let overrides = self.overrides(tenant).await?;
        Ok(self.view(tenant, &overrides))
    }

    /// The policy of any tenant, for the operator: `NotFound` for an unknown tenant.
    pub async fn tenant_policy(&self, tenant: &str) -> Result<PolicyView, Error> {
        self.existing(tenant).await?;
        self.policy(tenant).await
    }

    /// Replaces the tenant's overrides with `body`, an object of classes, each `null` or an
    /// object with `max_age` (an age such as `7d`) and/or `max_count` (a whole number), each
    /// `null` or left out for the default. Values above the operator's limits, unknown classes
    /// or keys and malformed values are refused naming the field.
    pub async fn set_policy(&self, tenant: &str, body: &Value) -> Result<PolicyView, Error> {
        let overrides = self.parse(body)?;
        let json = if overrides.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&overrides).map_err(|e| Error::internal(e.to_string()))?)
        };
        self.store.set_retention_policy(tenant, json.as_deref()).await?;
        Ok(self.view(tenant, &overrides))
    }

    /// [`Retention::set_policy`] for the operator: `NotFound` for an unknown tenant.
    pub async fn set_tenant_policy(&self, tenant: &str, body: &Value) -> Result<PolicyView, Error> {
        self.existing(tenant).await?;
        self.set_policy(tenant, body).await
    }

    async fn existing(&self, tenant: &str) -> Result<(), Error> {
        match self.store.tenant(tenant).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("no tenant {}", shown(tenant)))),
        }
    }

    async fn overrides(&self, tenant: &str) -> Result<Overrides, Error> {
        let Some(json) = self.store.retention_policy(tenant).await? else { return Ok(Overrides::new()) };
        serde_json::from_str(&json)
            .map_err(|e| Error::internal(format!("the stored retention policy of tenant {tenant} does not parse: {e}")))
    }

    fn view(&self, tenant: &str, overrides: &Overrides) -> PolicyView {
        let classes = Class::ALL
            .iter()
            .map(|class| {
                let set = overrides.get(class).copied().unwrap_or_default();
                let default = self.config.default_of(*class);
                let limit = self.config.limit_of(*class);
                let effective = ClassPolicy {
                    max_age_secs: set.max_age_secs.or(default.max_age_secs),
                    max_count: set.max_count.or(default.max_count),
                }
                .within(limit);
                ClassView { class: *class, set, effective, default, limit }
            })
            .collect();
        PolicyView { tenant: tenant.to_string(), classes }
    }

    /// Reads and checks a `PUT` body (see [`Retention::set_policy`]).
    fn parse(&self, body: &Value) -> Result<Overrides, Error> {
        let bad = |m: String| Error::invalid(Field::Retention, m);
        let names = || Class::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
        let Some(map) = body.as_object() else {
            return Err(bad("the retention policy must be a JSON object of classes".into()));
        };
        let mut out = Overrides::new();
        for (key, value) in map {
            let class = Class::parse(key)
                .ok_or_else(|| bad(format!("unknown retention class {}; the classes are {}", shown(key), names())))?;
            let fields = match value {
                Value::Null => continue,
                Value::Object(fields) => fields,
                _ => return Err(bad(format!("{class} must be an object with max_age and/or max_count, or null"))),
            };
            let limit = self.config.limit_of(class);
            let mut policy = ClassPolicy::default();
            for (name, v) in fields {
                match (name.as_str(), v) {
                    (_, Value::Null) if name == "max_age" || name == "max_count" => {}
                    ("max_age", Value::String(text)) => {
                        let secs = parse_age(text).map_err(|e| bad(format!("{class}.max_age: {e}")))?;
                        let max = limit.max_age_secs.unwrap_or(MAX_AGE_SECS);
                        if secs > max {
                            return Err(bad(format!(
                                "{class}.max_age {} is above the operator's limit of {}",
                                shown(text),
                                format_age(max)
                            )));
                        }
                        policy.max_age_secs = Some(secs);
                    }
                    ("max_age", _) => {
                        return Err(bad(format!("{class}.max_age must be an age such as \"7d\" (s, m, h or d)")));
                    }
                    ("max_count", v) => {
                        let max = limit.max_count.unwrap_or(MAX_COUNT);
                        let n = v.as_u64().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                            bad(format!("{class}.max_count must be a whole number from 1 to {max}, got {v}"))
                        })?;
                        policy.max_count = Some(n);
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown field {} in {class}; the fields are max_age and max_count",
                            shown(name)
                        )));
                    }
                }
            }
            if policy != ClassPolicy::default() {
                out.insert(class, policy);
            }
        }
        Ok(out)
    }

    /// Sweeps every tenant now, on this host, without the job lease (tests, tools; the
    /// background task uses the lease).
    pub async fn sweep(&self) -> Result<SweepReport, Error> {
        self.sweep_at(now_ms()).await
    }

    /// [`Retention::sweep`] as if the time were `now` (unix milliseconds): ages and the dedupe
    /// window count back from it.
    pub async fn sweep_at(&self, now: i64) -> Result<SweepReport, Error> {
        self.sweep_with(now, None).await
    }

    /// One pass of the background task: sweeps when this host takes the job lease (the last
    /// sweep, on any host, finished at least `interval` ago); `None` when it did not.
    pub(crate) async fn run_due(&self, owner: &str) -> Result<Option<SweepReport>, Error> {
        if self.config.interval.is_zero() {
            return Ok(None);
        }
        let lease_ms = millis(LEASE);
        let every_ms = millis(self.config.interval);
        if !self.store.claim_job(JOB, owner, lease_ms, every_ms, now_ms()).await? {
            return Ok(None);
        }
        let mut lease = Lease { owner, renewed: Instant::now() };
        let report = self.sweep_with(now_ms(), Some(&mut lease)).await;
        if let Err(e) = self.store.finish_job(JOB, owner).await {
            tracing::warn!("releasing the retention job lease failed: {e}");
        }
        report.map(Some)
    }

    /// Every tenant, read page by page.
    async fn all_tenants(&self) -> Result<Vec<patchbay_store::Tenant>, Error> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.list_tenants(&PageRequest::after(after, MAX_PAGE)).await?;
            after = page.items.last().map(|t| t.id.clone());
            all.extend(page.items);
            if !page.more {
                return Ok(all);
            }
        }
    }

    /// Every installation of the tenant, read page by page.
    async fn all_installations(&self, tenant: &str) -> Result<Vec<patchbay_store::InstallationRow>, Error> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_installations(tenant, &InstallationFilter::default(), &PageRequest::after(after, MAX_PAGE))
                .await?;
            after = page.items.last().map(|i| (i.created_at_ms, i.id.clone()));
            all.extend(page.items);
            if !page.more {
                return Ok(all);
            }
        }
    }

    async fn sweep_with(&self, now: i64, mut lease: Option<&mut Lease<'_>>) -> Result<SweepReport, Error> {
        let started = Instant::now();
        let mut report = SweepReport { complete: true, ..SweepReport::default() };
        'tenants: for tenant in self.all_tenants().await? {
            let policy = self.view(
                &tenant.id,
                &self.overrides(&tenant.id).await.unwrap_or_else(|e| {
                    tracing::warn!("{}; sweeping tenant {} with the defaults", e.message(), tenant.id);
                    Overrides::new()
                }),
            );
            for c in &policy.classes {
                match self.sweep_class(&tenant.id, c.class, c.effective, now, &mut lease).await {
                    Ok((n, kept_lease)) => {
                        *report.pruned.entry(c.class).or_default() += n;
                        self.metrics.retention_pruned(c.class.as_str(), n);
                        if !kept_lease {
                            report.complete = false;
                            break 'tenants;
                        }
                    }
                    Err(e) => {
                        report.failures += 1;
                        tracing::warn!(tenant = %tenant.id, class = %c.class, "retention sweep failed: {}", e.message());
                    }
                }
            }
        }
        report.free_pages = self.reclaim().await;
        // The sweep changed table sizes (and ingest did since the last sweep): refresh the
        // planner's statistics where they went stale.
        if let Err(e) = self.store.refresh_statistics(false).await {
            tracing::warn!("refreshing the query planner's statistics failed: {e}");
        }
        self.metrics.retention_swept();
        let pruned: Vec<String> = Class::ALL.iter().map(|c| format!("{c}={}", report.of(*c))).collect();
        tracing::info!(
            failures = report.failures,
            free_pages = report.free_pages,
            complete = report.complete,
            "retention sweep pruned {} in {} ms",
            pruned.join(" "),
            started.elapsed().as_millis()
        );
        Ok(report)
    }

    /// Deletes one tenant's rows of one class past `policy`; the number deleted, and whether the
    /// job lease (if any) is still held.
    async fn sweep_class(
        &self,
        tenant: &str,
        class: Class,
        policy: ClassPolicy,
        now: i64,
        lease: &mut Option<&mut Lease<'_>>,
    ) -> Result<(u64, bool), Error> {
        let mut before: Option<i64> =
            policy.max_age_secs.map(|s| now.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000)));
        if class != Class::Logs
            && let Some(n) = policy.max_count
            && let Some(boundary) = self.store.retention_boundary(class, tenant, n).await?
        {
            before = Some(before.map_or(boundary, |b| b.max(boundary)));
        }
        if class == Class::WebhookRequests {
            // Raw requests inside the dedupe window answer repeats of themselves.
            let window_start = now.saturating_sub(millis(self.config.webhook_dedupe));
            before = before.map(|b| b.min(window_start));
        }
        let batch = self.config.batch_size;
        let mut total = 0;
        if let Some(before) = before {
            loop {
                let n = self.store.prune_batch(class, tenant, before, batch).await?;
                total += n;
                if n == 0 {
                    break;
                }
                if !self.between_batches(lease).await {
                    return Ok((total, false));
                }
            }
        }
        if class == Class::Logs
            && let Some(n) = policy.max_count
        {
            for installation in self.all_installations(tenant).await? {
                let Some(below) = self.store.log_count_boundary(tenant, &installation.id, n).await? else { continue };
                loop {
                    let deleted = self.store.prune_logs_below(tenant, &installation.id, below, batch).await?;
                    total += deleted;
                    if deleted == 0 {
                        break;
                    }
                    if !self.between_batches(lease).await {
                        return Ok((total, false));
                    }
                }
            }
        }
        Ok((total, true))
    }

    /// The pause between batches, renewing the job lease when due; `false` when the lease was
    /// lost (the sweep stops: another host took the job over).
    async fn between_batches(&self, lease: &mut Option<&mut Lease<'_>>) -> bool {
        tokio::time::sleep(BATCH_PAUSE).await;
        let Some(lease) = lease else { return true };
        if lease.renewed.elapsed() < RENEW_EVERY {
            return true;
        }
        match self.store.renew_job(JOB, lease.owner, millis(LEASE)).await {
            Ok(held) => {
                lease.renewed = Instant::now();
                if !held {
                    tracing::warn!("the retention job lease was taken over; stopping this sweep");
                }
                held
            }
            Err(e) => {
                tracing::warn!("renewing the retention job lease failed: {e}; stopping this sweep");
                false
            }
        }
    }

    /// SQLite: returns the pages the sweep freed to the file system, a few at a time; the free
    /// pages left.
    async fn reclaim(&self) -> i64 {
        let mut left = 0;
        for _ in 0..MAX_RECLAIM_STEPS {
            match self.store.reclaim_space(RECLAIM_PAGES).await {
                Ok(free) => left = free,
                Err(e) => {
                    tracing::warn!("returning free pages to the file system failed: {e}");
                    break;
                }
            }
            if left == 0 {
                break;
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        left
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Starts the background sweeps: every host looks every minute (or every `interval`, when
/// shorter) whether a sweep is due and runs it when it takes the job lease.
pub(crate) fn spawn_sweeper(retention: Arc<Retention>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = retention.config.interval;
    if interval.is_zero() {
        return None;
    }
    let owner = format!("{}/retention", crate::dispatch::worker::owner_name());
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK.min(interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = retention.run_due(&owner).await {
                tracing::warn!("retention sweep: {}", e.message());
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_print() {
        assert_eq!(parse_age("7d"), Ok(7 * 86_400));
        assert_eq!(parse_age("90m"), Ok(5400));
        assert_eq!(parse_age("007h"), Ok(7 * 3600));
        assert_eq!(parse_age("1s"), Ok(1));
        for bad in ["", "d", "7", "7w", "-7d", "+7d", "7 d", " 7d", "0d", "3651d", "7D", "７d", "7ｄ", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert!(parse_age("99999999999999999999999d").unwrap_err().contains("longer than 3650d"));
        assert_eq!(format_age(604_800), "7d");
        assert_eq!(format_age(5400), "90m");
        assert_eq!(format_age(61), "61s");
    }

    #[test]
    fn built_in_defaults_are_within_their_limits() {
        assert_eq!(RetentionConfig::default().check(), Ok(()));
        let mut c = RetentionConfig::default();
        c.defaults.insert(Class::Events, ClassPolicy::age(400 * 86_400));
        assert!(c.check().unwrap_err().contains("events"));
    }
}
