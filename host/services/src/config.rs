//! Host settings: built-in defaults, then `patchbay.toml`, then environment variables, then
//! command-line flags — each later source overrides the earlier ones.
//!
//! | setting                    | file key                  | environment                         | default            |
//! |----------------------------|---------------------------|-------------------------------------|--------------------|
//! | listen address             | `listen`                  | `PATCHBAY_LISTEN`                   | `127.0.0.1:8080`   |
//! | data directory             | `data_dir`                | `PATCHBAY_DATA_DIR`                 | `./patchbay-data`  |
//! | database                   | `database_url`            | `DATABASE_URL`                      | SQLite in data dir |
//! | private networks allowed   | `egress_allow_networks`   | `PATCHBAY_EGRESS_ALLOW_NETWORKS`    | none               |
//! | component size cap (MiB)   | `max_component_mib`       | `PATCHBAY_MAX_COMPONENT_MIB`        | 32                 |
//! | require signed connectors  | `require_signatures`      | `PATCHBAY_REQUIRE_SIGNATURES`       | false              |
//! | trusted publisher keys     | `trusted_publisher_keys`  | `PATCHBAY_TRUSTED_KEYS`             | none               |
//! | publish reference connectors | `reference_connectors`  | `PATCHBAY_REFERENCE_CONNECTORS`     | true               |
//! | fuel metering              | `fuel_metering`           | `PATCHBAY_FUEL_METERING`            | true               |
//! | public base URL (webhooks) | `public_url`              | `PATCHBAY_PUBLIC_URL`               | `http://` + listen |
//! | webhook body cap (KiB)     | `webhook_max_kib`         | `PATCHBAY_WEBHOOK_MAX_KIB`          | 1024               |
//! | webhook dedupe window (h)  | `webhook_dedupe_hours`    | `PATCHBAY_WEBHOOK_DEDUPE_HOURS`     | 72                 |
//! | deliveries in flight       | `dispatch_concurrency`    | `PATCHBAY_DISPATCH_CONCURRENCY`     | 64 (0 = no dispatcher) |
//! | delivery lease (s)         | `dispatch_lease_secs`     | `PATCHBAY_DISPATCH_LEASE_SECS`      | 120                |
//! | sync runs at once          | `sync_concurrency`        | `PATCHBAY_SYNC_CONCURRENCY`         | 4 (0 = no syncs)   |
//! | sync run lease (s)         | `sync_lease_secs`         | `PATCHBAY_SYNC_LEASE_SECS`          | 60                 |
//! | records per sync batch     | `sync_batch_size`         | `PATCHBAY_SYNC_BATCH_SIZE`          | 1000               |
//! | sync changes as events     | `sync_change_events`      | `PATCHBAY_SYNC_CHANGE_EVENTS`       | `routed` (or `all`) |
//! | scheduler tick (ms)        | `scheduler_tick_ms`       | `PATCHBAY_SCHEDULER_TICK_MS`        | 5000               |
//! | health check interval (s)  | `health_interval_secs`    | `PATCHBAY_HEALTH_INTERVAL_SECS`     | 300 (0 = never)    |
//! | health check timeout (ms)  | `health_timeout_ms`       | `PATCHBAY_HEALTH_TIMEOUT_MS`        | 10000              |
//! | upload answers after (ms)  | `upload_wait_ms`          | `PATCHBAY_UPLOAD_WAIT_MS`           | 3000 (a longer compile goes on in the background; 0: always) |
//! | connector calls at once    | `call_slots`              | `PATCHBAY_CALL_SLOTS`               | 128                |
//! | one tenant's share (%)     | `tenant_call_share`       | `PATCHBAY_TENANT_CALL_SHARE`        | 25                 |
//! | longest call timeout (ms)  | `max_call_timeout_ms`     | `PATCHBAY_MAX_CALL_TIMEOUT_MS`      | 60000              |
//! | retention sweep interval (s) | `[retention] interval_secs` | `PATCHBAY_RETENTION_INTERVAL_SECS` | 3600 (0 = never) |
//! | rows per retention batch   | `[retention] batch_size`  | `PATCHBAY_RETENTION_BATCH_SIZE`     | 1000               |
//! | retention of a class       | `[retention.<class>] age, max_age, count, max_count` | `PATCHBAY_RETENTION_<CLASS>_AGE`, `…_MAX_AGE`, `…_COUNT`, `…_MAX_COUNT` | see docs/retention.md |
//!
//! A class is `webhook_requests`, `events`, `logs`, `sync_errors` or `sync_changes` (upper-case in
//! variable names: `PATCHBAY_RETENTION_EVENTS_AGE=30d`); an age is digits and one of `s m h d`,
//! a count a whole number, and either may be `none` (no limit of that kind).
//!
//! Secrets are read from the environment only, never from the file: `PATCHBAY_MASTER_KEY`
//! (credential master keys) and `PATCHBAY_ADMIN_TOKEN` (operator token).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use patchbay_runtime::capability::http::Cidr;

use crate::retention::{self, Class, RetentionConfig};

/// `patchbay.toml`. Unknown keys are an error so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub egress_allow_networks: Option<Vec<String>>,
    pub max_component_mib: Option<usize>,
    pub require_signatures: Option<bool>,
    pub trusted_publisher_keys: Option<Vec<String>>,
    pub reference_connectors: Option<bool>,
    pub fuel_metering: Option<bool>,
    pub public_url: Option<String>,
    pub webhook_max_kib: Option<usize>,
    pub webhook_dedupe_hours: Option<u64>,
    pub dispatch_concurrency: Option<usize>,
    pub dispatch_lease_secs: Option<u64>,
    pub sync_concurrency: Option<usize>,
    pub sync_lease_secs: Option<u64>,
    pub sync_batch_size: Option<u32>,
    pub sync_change_events: Option<String>,
    pub call_slots: Option<u32>,
    pub tenant_call_share: Option<u32>,
    pub max_call_timeout_ms: Option<u64>,
    pub scheduler_tick_ms: Option<u64>,
    pub health_interval_secs: Option<u64>,
    pub health_timeout_ms: Option<u64>,
    pub upload_wait_ms: Option<u64>,
    pub retention: Option<RetentionFile>,
}

/// `[retention]` of `patchbay.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionFile {
    pub interval_secs: Option<u64>,
    pub batch_size: Option<u32>,
    pub webhook_requests: Option<ClassFile>,
    pub events: Option<ClassFile>,
    pub logs: Option<ClassFile>,
    pub sync_errors: Option<ClassFile>,
    pub sync_changes: Option<ClassFile>,
}

impl RetentionFile {
    fn class(&self, class: Class) -> Option<&ClassFile> {
        match class {
            Class::WebhookRequests => self.webhook_requests.as_ref(),
            Class::Events => self.events.as_ref(),
            Class::Logs => self.logs.as_ref(),
            Class::SyncErrors => self.sync_errors.as_ref(),
            Class::SyncChanges => self.sync_changes.as_ref(),
        }
    }
}

/// `[retention.<class>]`: ages as text (`"30d"`, `"none"`), counts as numbers or `"none"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClassFile {
    pub age: Option<String>,
    pub max_age: Option<String>,
    pub count: Option<CountFile>,
    pub max_count: Option<CountFile>,
}

/// A count in the file: a number, or `"none"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CountFile {
    Number(u64),
    Text(String),
}

impl CountFile {
    fn text(&self) -> String {
        match self {
            CountFile::Number(n) => n.to_string(),
            CountFile::Text(t) => t.clone(),
        }
    }
}

/// Effective settings of a `serve` process.
#[derive(Clone)]
pub struct Settings {
    /// Address the API server binds to (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Holds the SQLite database, the key file and the component cache (default `./patchbay-data`).
    pub data_dir: PathBuf,
    /// `None`: SQLite file `patchbay.db` in the data directory.
    pub database_url: Option<String>,
    /// Networks connectors may reach although they are blocked by default (private, loopback, …).
    pub allow_networks: Vec<Cidr>,
    /// Largest component accepted for publishing, in bytes (default 32 MiB).
    pub max_component_bytes: usize,
    /// Refuse components not signed by a trusted publisher key.
    pub require_signatures: bool,
    /// Trusted publisher keys, each `key_id:base64(ed25519 public key)`; `key_id:` is optional.
    pub trusted_publisher_keys: Vec<String>,
    /// Publish the bundled reference connectors to the public catalog at start.
    pub reference_connectors: bool,
    /// Count fuel on every call.
    pub fuel_metering: bool,
    /// Base of the webhook URLs handed out (`{public_url}/hooks/{hook_id}`); `None`: the
    /// address the server is bound to.
    pub public_url: Option<String>,
    /// Largest webhook body accepted, in bytes (default 1 MiB).
    pub webhook_max_bytes: usize,
    /// How long webhook dedupe keys are remembered, in hours (at least 72).
    pub webhook_dedupe_hours: u64,
    /// Deliveries in flight on this host; 0 runs no dispatcher.
    pub dispatch_concurrency: usize,
    /// How long a claimed delivery stays reserved; a host that dies holding it delays the
    /// delivery by at most this much.
    pub dispatch_lease_secs: u64,
    /// Sync runs executing at once on this host; 0 runs no sync worker or scheduler.
    pub sync_concurrency: usize,
    /// How long a sync run is reserved without progress before another host may resume it.
    pub sync_lease_secs: u64,
    /// Records per `read-batch` / `write-batch`.
    pub sync_batch_size: u32,
    /// How often the OAuth refresher and the health scheduler look for due work.
    pub scheduler_tick_ms: u64,
    /// Time between scheduled health checks of an installation (0: only on demand).
    pub health_interval_secs: u64,
    /// Time a health check may take.
    pub health_timeout_ms: u64,
    /// How long an upload waits for its compile before answering `compiling` (the compile goes
    /// on in the background).
    pub upload_wait_ms: u64,
    /// Every change of the records store becomes an event (`true`), or only changes a route takes.
    pub sync_all_change_events: bool,
    /// Connector calls running at once (the runtime's pool).
    pub call_slots: u32,
    /// The percentage of `call_slots` one tenant's calls may hold at once (compiles too): a
    /// tenant that floods the host waits behind its own share.
    pub tenant_call_share: u32,
    /// The longest timeout an installation may set (`limits.timeout_ms`).
    pub max_call_timeout_ms: u64,
    /// Retention defaults and limits, and the sweep's interval (docs/retention.md).
    pub retention: RetentionConfig,
    /// `PATCHBAY_MASTER_KEY`: comma-separated base64 master keys; `None`: the data directory's key
    /// file.
    pub master_key: Option<String>,
    /// `PATCHBAY_ADMIN_TOKEN`: an operator token accepted besides the stored operator keys.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.as_deref().map(redact_url))
            .field("allow_networks", &self.allow_networks)
            .field("max_component_bytes", &self.max_component_bytes)
            .field("require_signatures", &self.require_signatures)
            .field("master_key", &self.master_key.as_ref().map(|_| "[from environment]"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "[from environment]"))
            .finish()
    }
}

pub use patchbay_store::redact_url;

/// Flags given on the command line (they win over everything).
#[derive(Debug, Default)]
pub struct Overrides {
    /// The settings file to read, instead of `PATCHBAY_CONFIG` or `./patchbay.toml`.
    pub config: Option<PathBuf>,
    /// The address to bind to.
    pub listen: Option<String>,
    /// The data directory.
    pub data_dir: Option<PathBuf>,
}

/// Where to read settings from; injectable so tests need not touch the process environment.
pub trait Env {
    /// The value of variable `name`; `None` when it is unset or empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Settings {
    /// Defaults ← file ← environment ← flags. The file is `--config`, else `PATCHBAY_CONFIG`, else
    /// `./patchbay.toml` when it exists.
    pub fn load(flags: Overrides, env: &dyn Env) -> anyhow::Result<Settings> {
        let path = flags.config.clone().or_else(|| env.var("PATCHBAY_CONFIG").map(PathBuf::from));
        let file = match path {
            Some(p) => read_file(&p)?,
            None if Path::new("patchbay.toml").exists() => read_file(Path::new("patchbay.toml"))?,
            None => FileConfig::default(),
        };
        Self::resolve(file, flags, env)
    }

    fn resolve(file: FileConfig, flags: Overrides, env: &dyn Env) -> anyhow::Result<Settings> {
        let listen = flags
            .listen
            .or_else(|| env.var("PATCHBAY_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen
            .parse()
            .with_context(|| format!("listen address {listen:?} is not HOST:PORT, e.g. 127.0.0.1:8080"))?;
        let data_dir = flags
            .data_dir
            .or_else(|| env.var("PATCHBAY_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./patchbay-data"));
        let database_url = env.var("DATABASE_URL").or(file.database_url);
        let networks: Vec<String> = match env.var("PATCHBAY_EGRESS_ALLOW_NETWORKS") {
            Some(v) => v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => file.egress_allow_networks.unwrap_or_default(),
        };
        let allow_networks = networks
            .iter()
            .map(|n| n.parse::<Cidr>().map_err(|e| anyhow::anyhow!("PATCHBAY_EGRESS_ALLOW_NETWORKS: {n:?}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let max_mib = match env.var("PATCHBAY_MAX_COMPONENT_MIB") {
            Some(v) => {
                v.parse::<usize>().with_context(|| format!("PATCHBAY_MAX_COMPONENT_MIB={v:?} is not a number"))?
            }
            None => file.max_component_mib.unwrap_or(32),
        };
        if max_mib == 0 || max_mib > 1024 {
            bail!("the component size cap must be between 1 and 1024 MiB, got {max_mib}");
        }
        let require_signatures =
            bool_setting(env, "PATCHBAY_REQUIRE_SIGNATURES")?.or(file.require_signatures).unwrap_or(false);
        let trusted_publisher_keys = match env.var("PATCHBAY_TRUSTED_KEYS") {
            Some(v) => v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => file.trusted_publisher_keys.unwrap_or_default(),
        };
        if require_signatures && trusted_publisher_keys.is_empty() {
            bail!("signatures are required but no trusted publisher keys are configured (PATCHBAY_TRUSTED_KEYS)");
        }
        let reference_connectors =
            bool_setting(env, "PATCHBAY_REFERENCE_CONNECTORS")?.or(file.reference_connectors).unwrap_or(true);
        let fuel_metering = bool_setting(env, "PATCHBAY_FUEL_METERING")?.or(file.fuel_metering).unwrap_or(true);
        let public_url =
            env.var("PATCHBAY_PUBLIC_URL").or(file.public_url).map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            bail!("the public URL {u:?} must start with http:// or https://");
        }
        let webhook_max_kib = number_setting(env, "PATCHBAY_WEBHOOK_MAX_KIB")?.or(file.webhook_max_kib).unwrap_or(1024);
        if webhook_max_kib == 0 || webhook_max_kib > 64 * 1024 {
            bail!("the webhook body cap must be between 1 and 65536 KiB, got {webhook_max_kib}");
        }
        let webhook_dedupe_hours =
            number_setting(env, "PATCHBAY_WEBHOOK_DEDUPE_HOURS")?.or(file.webhook_dedupe_hours).unwrap_or(72);
        if webhook_dedupe_hours < 72 {
            bail!(
                "the webhook dedupe window must be at least 72 hours (senders retry for up to three days), got {webhook_dedupe_hours}"
            );
        }
        let dispatch_concurrency =
            number_setting(env, "PATCHBAY_DISPATCH_CONCURRENCY")?.or(file.dispatch_concurrency).unwrap_or(64);
        if dispatch_concurrency > 10_000 {
            bail!("dispatch concurrency must be at most 10000, got {dispatch_concurrency}");
        }
        let dispatch_lease_secs =
            number_setting(env, "PATCHBAY_DISPATCH_LEASE_SECS")?.or(file.dispatch_lease_secs).unwrap_or(120);
        if !(2..=86_400).contains(&dispatch_lease_secs) {
            bail!(
                "the delivery lease must be 2 to 86400 seconds (longer than the call timeout), got {dispatch_lease_secs}"
            );
        }
        let sync_concurrency = number_setting(env, "PATCHBAY_SYNC_CONCURRENCY")?.or(file.sync_concurrency).unwrap_or(4);
        if sync_concurrency > 1_000 {
            bail!("sync concurrency must be at most 1000, got {sync_concurrency}");
        }
        let sync_lease_secs = number_setting(env, "PATCHBAY_SYNC_LEASE_SECS")?.or(file.sync_lease_secs).unwrap_or(60);
        if !(2..=86_400).contains(&sync_lease_secs) {
            bail!("the sync lease must be 2 to 86400 seconds, got {sync_lease_secs}");
        }
        let sync_batch_size = number_setting(env, "PATCHBAY_SYNC_BATCH_SIZE")?.or(file.sync_batch_size).unwrap_or(1000);
        if !(1..=10_000).contains(&sync_batch_size) {
            bail!("the sync batch size must be 1 to 10000 records, got {sync_batch_size}");
        }
        let sync_all_change_events =
            match env.var("PATCHBAY_SYNC_CHANGE_EVENTS").or(file.sync_change_events).as_deref().map(str::trim) {
                Some("all") => true,
                None | Some("routed") => false,
                Some(other) => bail!("PATCHBAY_SYNC_CHANGE_EVENTS={other:?} is not one of all, routed"),
            };
        let scheduler_tick_ms =
            number_setting(env, "PATCHBAY_SCHEDULER_TICK_MS")?.or(file.scheduler_tick_ms).unwrap_or(5000);
        if !(10..=600_000).contains(&scheduler_tick_ms) {
            bail!("the scheduler tick must be 10 to 600000 ms, got {scheduler_tick_ms}");
        }
        let health_interval_secs =
            number_setting(env, "PATCHBAY_HEALTH_INTERVAL_SECS")?.or(file.health_interval_secs).unwrap_or(300);
        let upload_wait_ms = number_setting(env, "PATCHBAY_UPLOAD_WAIT_MS")?.or(file.upload_wait_ms).unwrap_or(3_000);
        if upload_wait_ms > 600_000 {
            bail!("the upload wait must be 0 to 600000 ms, got {upload_wait_ms}");
        }
        let health_timeout_ms =
            number_setting(env, "PATCHBAY_HEALTH_TIMEOUT_MS")?.or(file.health_timeout_ms).unwrap_or(10_000);
        if !(100..=300_000).contains(&health_timeout_ms) {
            bail!("the health check timeout must be 100 to 300000 ms, got {health_timeout_ms}");
        }
        let call_slots = number_setting(env, "PATCHBAY_CALL_SLOTS")?.or(file.call_slots).unwrap_or(128);
        if !(1..=100_000).contains(&call_slots) {
            bail!("the call slots must be 1 to 100000, got {call_slots}");
        }
        let tenant_call_share =
            number_setting(env, "PATCHBAY_TENANT_CALL_SHARE")?.or(file.tenant_call_share).unwrap_or(25);
        if !(1..=100).contains(&tenant_call_share) {
            bail!("one tenant's share of the call slots must be 1 to 100 percent, got {tenant_call_share}");
        }
        let max_call_timeout_ms =
            number_setting(env, "PATCHBAY_MAX_CALL_TIMEOUT_MS")?.or(file.max_call_timeout_ms).unwrap_or(60_000);
        if !(100..=3_600_000).contains(&max_call_timeout_ms) {
            bail!("the longest call timeout must be 100 to 3600000 ms, got {max_call_timeout_ms}");
        }
        let retention = retention_settings(file.retention.as_ref(), env, webhook_dedupe_hours)?;
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            allow_networks,
            max_component_bytes: max_mib * 1024 * 1024,
            require_signatures,
            trusted_publisher_keys,
            reference_connectors,
            fuel_metering,
            public_url,
            webhook_max_bytes: webhook_max_kib * 1024,
            webhook_dedupe_hours,
            dispatch_concurrency,
            dispatch_lease_secs,
            sync_concurrency,
            sync_lease_secs,
            sync_batch_size,
            sync_all_change_events,
            scheduler_tick_ms,
            health_interval_secs,
            health_timeout_ms,
            upload_wait_ms,
            call_slots,
            tenant_call_share,
            max_call_timeout_ms,
            retention,
            master_key: env.var("PATCHBAY_MASTER_KEY"),
            admin_token: env.var("PATCHBAY_ADMIN_TOKEN"),
        })
    }

    /// The database URL actually used: the configured one or the SQLite file in the data dir.
    pub(crate) fn database(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("patchbay.db").display()),
        }
    }
}

/// The retention settings: built-in defaults ← file ← environment, checked (every default within
/// its limit).
fn retention_settings(
    file: Option<&RetentionFile>,
    env: &dyn Env,
    webhook_dedupe_hours: u64,
) -> anyhow::Result<RetentionConfig> {
    let mut config = RetentionConfig {
        webhook_dedupe: std::time::Duration::from_secs(webhook_dedupe_hours.saturating_mul(3600)),
        ..RetentionConfig::default()
    };
    let interval_secs =
        number_setting(env, "PATCHBAY_RETENTION_INTERVAL_SECS")?.or(file.and_then(|f| f.interval_secs)).unwrap_or(3600);
    if interval_secs != 0 && !(10..=7 * 86_400).contains(&interval_secs) {
        bail!("the retention interval must be 0 (no sweeps) or 10 to 604800 seconds, got {interval_secs}");
    }
    config.interval = std::time::Duration::from_secs(interval_secs);
    let batch_size =
        number_setting(env, "PATCHBAY_RETENTION_BATCH_SIZE")?.or(file.and_then(|f| f.batch_size)).unwrap_or(1000);
    if !(1..=10_000).contains(&batch_size) {
        bail!("the retention batch size must be 1 to 10000 rows, got {batch_size}");
    }
    config.batch_size = batch_size;
    for class in Class::ALL {
        let section = file.and_then(|f| f.class(*class));
        let var = |suffix: &str| format!("PATCHBAY_RETENTION_{}_{suffix}", class.as_str().to_ascii_uppercase());
        let age = |suffix: &str, from_file: Option<&String>| -> anyhow::Result<Option<Option<u64>>> {
            let name = var(suffix);
            let Some(text) = env.var(&name).or_else(|| from_file.cloned()) else { return Ok(None) };
            match text.trim() {
                "none" => Ok(Some(None)),
                t => retention::parse_age(t).map(|s| Some(Some(s))).map_err(|e| anyhow::anyhow!("{name}: {e}")),
            }
        };
        let count = |suffix: &str, from_file: Option<&CountFile>| -> anyhow::Result<Option<Option<u64>>> {
            let name = var(suffix);
            let Some(text) = env.var(&name).or_else(|| from_file.map(CountFile::text)) else { return Ok(None) };
            match text.trim() {
                "none" => Ok(Some(None)),
                t => match t.parse::<u64>() {
                    Ok(n) if (1..=retention::MAX_COUNT).contains(&n) => Ok(Some(Some(n))),
                    _ => bail!("{name}={t:?}: a count is a whole number from 1 to {} or none", retention::MAX_COUNT),
                },
            }
        };
        let d = config.defaults.entry(*class).or_default();
        if let Some(v) = age("AGE", section.and_then(|s| s.age.as_ref()))? {
            d.max_age_secs = v;
        }
        if let Some(v) = count("COUNT", section.and_then(|s| s.count.as_ref()))? {
            d.max_count = v;
        }
        let l = config.limits.entry(*class).or_default();
        if let Some(v) = age("MAX_AGE", section.and_then(|s| s.max_age.as_ref()))? {
            l.max_age_secs = v;
        }
        if let Some(v) = count("MAX_COUNT", section.and_then(|s| s.max_count.as_ref()))? {
            l.max_count = v;
        }
    }
    config.check().map_err(|e| anyhow::anyhow!("{e} (PATCHBAY_RETENTION_* or [retention] in the settings file)"))?;
    Ok(config)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

fn number_setting<T: std::str::FromStr>(env: &dyn Env, name: &str) -> anyhow::Result<Option<T>> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| anyhow::anyhow!("{name}={v:?} is not a whole number")),
    }
}

fn bool_setting(env: &dyn Env, name: &str) -> anyhow::Result<Option<bool>> {
    match env.var(name).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => bail!("{name}={other:?}: expected true or false"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::retention::ClassPolicy;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(FileConfig::default(), Overrides::default(), &env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./patchbay-data"));
        assert!(s.database().starts_with("sqlite://./patchbay-data/patchbay.db"));
        assert!(s.allow_networks.is_empty());
        assert!(s.reference_connectors);
        assert_eq!(s.public_url, None);
        assert_eq!(s.webhook_max_bytes, 1024 * 1024);
        assert_eq!(s.webhook_dedupe_hours, 72);
        assert_eq!(s.dispatch_concurrency, 64);
        let e = env(&[("PATCHBAY_WEBHOOK_DEDUPE_HOURS", "24")]);
        let err = Settings::resolve(FileConfig::default(), Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("at least 72 hours"), "{err}");
        let e = env(&[("PATCHBAY_DISPATCH_CONCURRENCY", "many")]);
        let err = Settings::resolve(FileConfig::default(), Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("PATCHBAY_DISPATCH_CONCURRENCY"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/file\"\negress_allow_networks = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let e = env(&[("PATCHBAY_LISTEN", "127.0.0.1:9100"), ("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32")]);
        let s = Settings::resolve(file, Overrides::default(), &e).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/file"));
        assert_eq!(s.allow_networks.len(), 1);
        let flags = Overrides { listen: Some("127.0.0.1:9200".into()), ..Default::default() };
        let s = Settings::resolve(FileConfig::default(), flags, &e).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9200");
    }

    #[test]
    fn bad_values_are_named() {
        let err = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err();
        assert!(err.message().contains("unknown field `lisen`"), "{err}");
        let e = env(&[("PATCHBAY_EGRESS_ALLOW_NETWORKS", "10.0.0.0/99")]);
        let err = Settings::resolve(FileConfig::default(), Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
        let e = env(&[("PATCHBAY_REQUIRE_SIGNATURES", "maybe")]);
        assert!(Settings::resolve(FileConfig::default(), Overrides::default(), &e).is_err());
        let e = env(&[("PATCHBAY_REQUIRE_SIGNATURES", "true")]);
        let err = Settings::resolve(FileConfig::default(), Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("trusted publisher keys"), "{err}");
    }

    #[test]
    fn retention_from_file_and_env() {
        let file: FileConfig = toml::from_str(
            "[retention]\ninterval_secs = 600\n[retention.events]\nage = \"10d\"\ncount = 5000\nmax_count = 10000\n\
             [retention.logs]\nage = \"none\"\nmax_age = \"none\"\n",
        )
        .unwrap();
        let e = env(&[("PATCHBAY_RETENTION_EVENTS_AGE", "20d"), ("PATCHBAY_RETENTION_SYNC_ERRORS_COUNT", "7")]);
        let s = Settings::resolve(file, Overrides::default(), &e).unwrap();
        let r = &s.retention;
        assert_eq!(r.interval, std::time::Duration::from_secs(600));
        assert_eq!(r.defaults[&Class::Events], ClassPolicy { max_age_secs: Some(20 * 86_400), max_count: Some(5000) });
        assert_eq!(r.limits[&Class::Events].max_count, Some(10_000));
        assert_eq!(r.defaults[&Class::Logs], ClassPolicy::default());
        assert_eq!(r.defaults[&Class::SyncErrors].max_count, Some(7));
        assert_eq!(r.webhook_dedupe, std::time::Duration::from_secs(72 * 3600));
        for (name, value, said) in [
            ("PATCHBAY_RETENTION_EVENTS_AGE", "400d", "above the limit"),
            ("PATCHBAY_RETENTION_EVENTS_AGE", "30 days", "PATCHBAY_RETENTION_EVENTS_AGE"),
            ("PATCHBAY_RETENTION_LOGS_COUNT", "-1", "PATCHBAY_RETENTION_LOGS_COUNT"),
            ("PATCHBAY_RETENTION_LOGS_MAX_COUNT", "10", "needs a default count"),
            ("PATCHBAY_RETENTION_INTERVAL_SECS", "5", "retention interval"),
        ] {
            let err =
                Settings::resolve(FileConfig::default(), Overrides::default(), &env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(said), "{name}={value}: {err}");
        }
        assert!(toml::from_str::<FileConfig>("[retention.evnts]\nage = \"1d\"").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let e = env(&[
            ("PATCHBAY_MASTER_KEY", "c2VjcmV0"),
            ("PATCHBAY_ADMIN_TOKEN", "tok-123"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
        ]);
        let s = Settings::resolve(FileConfig::default(), Overrides::default(), &e).unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("c2VjcmV0") && !d.contains("tok-123") && !d.contains("pw@"), "{d}");
    }
}
