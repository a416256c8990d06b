//! [`Host`]: the composition root — opens the data directory, database, keyring and runtime,
//! builds every service with exactly the dependencies it needs, and starts the background
//! workers. The API and the binary take the services from here; nothing else builds them.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use patchbay_crypto::Keyring;
use patchbay_registry::{PackageLimits, TrustedKeys};
use patchbay_runtime::capability::http::NetworkPolicy;
use patchbay_runtime::{Runtime, RuntimeConfig, Services};
use patchbay_store::{GroupCommitConfig, GroupCommitter, Store};
use tokio::sync::Notify;

use crate::access::Access;
use crate::catalog::{Catalog, CatalogPolicy};
use crate::changes::ChangeLog;
use crate::config::Settings;
use crate::config_cache::ConfigWatch;
use crate::dispatch::Dispatcher;
use crate::event_sink::StoreEventSink;
use crate::events::Events;
use crate::health::{Health, HealthConfig, HealthDeps};
use crate::ingress::{Ingress, IngressDeps};
use crate::installations::{Installations, InstallationsDeps};
use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::oauth::{Connections, ConnectionsDeps, Tokens, TokensDeps};
use crate::oplog::StoreOperationLog;
use crate::quota::Quotas;
use crate::retention::Retention;
use crate::routes::Routes;
use crate::routing::Router;
use crate::state::DurableState;
use crate::status::Status;
use crate::sync::{SyncConfig, SyncEngine};
use crate::syncs::Syncs;

/// A running host's services. Cheap to clone: every service is shared.
#[derive(Clone)]
pub struct Host {
    /// Tenants, API keys and authentication.
    pub access: Arc<Access>,
    /// The connector catalog.
    pub catalog: Arc<Catalog>,
    /// Installations, their credentials and calls.
    pub installations: Arc<Installations>,
    /// OAuth connections of installations.
    pub connections: Arc<Connections>,
    /// Webhook ingress.
    pub ingress: Arc<Ingress>,
    /// Routing rules.
    pub routes: Arc<Routes>,
    /// The event log and its dead letters.
    pub events: Arc<Events>,
    /// Operation logs.
    pub logs: Arc<Logs>,
    /// Installation health checks.
    pub health: Arc<Health>,
    /// Data sync runs, schedules and records.
    pub syncs: Arc<Syncs>,
    /// Retention policies and the sweep.
    pub retention: Arc<Retention>,
    /// Liveness and metrics.
    pub status: Arc<Status>,
    workers: Arc<Workers>,
}

/// What the background workers are built from.
struct Workers {
    store: Store,
    runtime: Runtime,
    dispatcher: Arc<Dispatcher>,
    engine: Arc<SyncEngine>,
    quotas: Arc<Quotas>,
    changes: Arc<ChangeLog>,
    webhook_dedupe: Duration,
}

/// What [`Host::open`] did on the way up, for the startup banner.
pub struct Startup {
    /// A freshly generated operator token: shown once, stored only as a hash.
    pub new_operator_token: Option<String>,
    /// The database URL in use; it may hold a password (see [`crate::config::redact_url`]).
    pub database: String,
    /// The key file the master keys come from; `None` when they come from `PATCHBAY_MASTER_KEY`.
    pub key_file: Option<PathBuf>,
}

impl Host {
    /// Opens (and on first start creates) the data directory, database, key file and runtime,
    /// and publishes the reference connectors when the settings say so.
    pub async fn open(settings: &Settings) -> anyhow::Result<(Host, Startup)> {
        if !settings.data_dir.exists() {
            // Database, key file and cache are for the host's eyes only.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&settings.data_dir)
                .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
        }
        let database = settings.database();
        let store = Store::connect(&database)
            .await
            .with_context(|| format!("opening database {}", crate::config::redact_url(&database)))?;
        let key_file = settings.data_dir.join("master.key");
        let keyring = Arc::new(Keyring::load(settings.master_key.as_deref(), &key_file)?);
        let metrics = Arc::new(Metrics::default());
        let oplog = Arc::new(StoreOperationLog::new(store.clone()));
        let changes = Arc::new(ChangeLog::new(oplog.clone()));
        // Caches of rarely changing data, and the watcher that keeps every host's current.
        let watch = ConfigWatch::new();
        watch.spawn(store.clone(), &database);
        let router = Arc::new(Router::new(store.clone(), watch.clone()));
        let runtime = Runtime::new(
            RuntimeConfig {
                cache_dir: Some(settings.data_dir.join("cache")),
                network: NetworkPolicy::allowing(settings.allow_networks.clone()),
                fuel_metering: settings.fuel_metering,
                max_concurrent_calls: settings.call_slots,
                max_calls_per_tenant: (u64::from(settings.call_slots) * u64::from(settings.tenant_call_share))
                    .div_ceil(100)
                    .max(1) as u32,
                max_call_timeout: Duration::from_millis(settings.max_call_timeout_ms),
                ..RuntimeConfig::default()
            },
            Services {
                oplog: oplog.clone(),
                state: Arc::new(DurableState::new(store.clone())),
                events: Arc::new(StoreEventSink::new(store.clone(), router.clone())),
            },
        )?;
        let trusted_keys = TrustedKeys::parse(&settings.trusted_publisher_keys.join(","))
            .map_err(|e| anyhow::anyhow!("PATCHBAY_TRUSTED_KEYS: {e}"))?;
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen));
        let quotas = Arc::new(Quotas::default());
        let sync_wake = Arc::new(Notify::new());

        let access = Arc::new(Access::new(
            store.clone(),
            settings.admin_token.as_deref().map(patchbay_crypto::hash_token),
            watch.clone(),
        ));
        let catalog = Arc::new(Catalog::new(
            store.clone(),
            runtime.clone(),
            CatalogPolicy {
                package_limits: PackageLimits { max_bytes: settings.max_component_bytes },
                trusted_keys,
                require_signatures: settings.require_signatures,
                upload_wait: std::time::Duration::from_millis(settings.upload_wait_ms),
            },
            watch.clone(),
        ));
        let tokens = Arc::new(Tokens::new(TokensDeps {
            store: store.clone(),
            keyring: keyring.clone(),
            http: runtime.egress().clone(),
            router: router.clone(),
            changes: changes.clone(),
            metrics: metrics.clone(),
        }));
        let installations = Arc::new(Installations::new(InstallationsDeps {
            store: store.clone(),
            keyring: keyring.clone(),
            runtime: runtime.clone(),
            catalog: catalog.clone(),
            tokens: tokens.clone(),
            quotas: quotas.clone(),
            changes: changes.clone(),
            watch: watch.clone(),
            metrics: metrics.clone(),
            public_url: public_url.clone(),
        }));
        let connections = Arc::new(Connections::new(ConnectionsDeps {
            store: store.clone(),
            installations: installations.clone(),
            tokens: tokens.clone(),
            changes: changes.clone(),
            public_url,
        }));
        let handoff = Arc::new(crate::dispatch::Handoff::default());
        let ingress = Arc::new(Ingress::new(IngressDeps {
            store: store.clone(),
            installations: installations.clone(),
            runtime: runtime.clone(),
            router: router.clone(),
            // Many webhook requests per transaction; ingress wakes the dispatchers.
            writer: Arc::new(GroupCommitter::spawn(store.clone(), GroupCommitConfig::default()).0),
            metrics: metrics.clone(),
            hooks: crate::ingress::hook_cache(watch.clone()),
            max_body_bytes: settings.webhook_max_bytes,
            handoff: handoff.clone(),
        }));
        let routes = Arc::new(Routes::new(store.clone(), router.clone(), installations.clone(), catalog.clone()));
        let events = Arc::new(Events::new(store.clone(), installations.clone()));
        let logs = Arc::new(Logs::new(store.clone(), installations.clone(), changes.clone()));
        let health = Arc::new(Health::new(HealthDeps {
            store: store.clone(),
            installations: installations.clone(),
            tokens: tokens.clone(),
            runtime: runtime.clone(),
            router: router.clone(),
            metrics: metrics.clone(),
            changes: changes.clone(),
            config: HealthConfig {
                interval: Duration::from_secs(settings.health_interval_secs),
                timeout: Duration::from_millis(settings.health_timeout_ms),
            },
        }));
        let syncs = Arc::new(Syncs::new(store.clone(), installations.clone(), runtime.clone(), sync_wake.clone()));
        let status = Arc::new(Status::new(store.clone(), runtime.clone(), metrics.clone(), oplog, watch.clone()));
        let retention = Arc::new(Retention::new(store.clone(), metrics.clone(), settings.retention.clone()));
        let dispatcher =
            Arc::new(Dispatcher::new(store.clone(), installations.clone(), router.clone(), metrics.clone(), handoff));
        let engine = Arc::new(SyncEngine::new(crate::sync::EngineDeps {
            store: store.clone(),
            installations: installations.clone(),
            tokens,
            runtime: runtime.clone(),
            router,
            metrics,
            changes: changes.clone(),
            wake: sync_wake,
        }));
        let host = Host {
            access,
            catalog,
            installations,
            connections,
            ingress,
            routes,
            events,
            logs,
            health,
            syncs,
            retention,
            status,
            workers: Arc::new(Workers {
                store,
                runtime,
                dispatcher,
                engine,
                quotas,
                changes,
                webhook_dedupe: Duration::from_secs(settings.webhook_dedupe_hours * 3600),
            }),
        };
        let new_operator_token =
            if settings.admin_token.is_none() { host.access.ensure_operator_key().await? } else { None };
        if settings.reference_connectors {
            host.catalog.publish_reference_connectors().await;
        }
        let key_file = settings.master_key.is_none().then_some(key_file);
        Ok((host, Startup { new_operator_token, database, key_file }))
    }

    /// Starts the background work a serving host does, as `settings` say: the outbox dispatcher
    /// (woken over `LISTEN` on PostgreSQL at `database`), dedupe-key housekeeping, the sync
    /// worker and scheduler, the OAuth refresher, the health scheduler, the quota flusher and the
    /// retention sweeps.
    pub fn spawn_workers(&self, settings: &Settings, database: &str) {
        let w = &self.workers;
        let dispatch = crate::dispatch::worker::DispatchConfig {
            concurrency: settings.dispatch_concurrency,
            enabled: settings.dispatch_concurrency > 0,
            lease: Duration::from_secs(settings.dispatch_lease_secs),
            ..Default::default()
        };
        crate::dispatch::worker::spawn(w.dispatcher.clone(), dispatch, Some(database.to_string()));
        crate::dispatch::spawn_housekeeping(w.store.clone(), w.webhook_dedupe);
        self.spawn_sync(SyncConfig {
            concurrency: settings.sync_concurrency,
            lease: Duration::from_secs(settings.sync_lease_secs),
            batch_size: settings.sync_batch_size,
            all_change_events: settings.sync_all_change_events,
            ..Default::default()
        });
        let tick = Duration::from_millis(settings.scheduler_tick_ms);
        crate::oauth::spawn_refresher(self.connections.clone(), tick);
        crate::health::spawn_scheduler(self.health.clone(), tick);
        crate::quota::spawn_flusher(w.quotas.clone(), w.store.clone(), tick.min(Duration::from_secs(1)));
        crate::retention::spawn_sweeper(self.retention.clone());
        crate::catalog::spawn_compile_recovery(self.catalog.clone());
    }

    /// Starts only the sync worker and scheduler (benchmarks drive syncs this way).
    pub fn spawn_sync(&self, config: SyncConfig) -> Option<tokio::task::JoinHandle<()>> {
        crate::sync::worker::spawn(self.workers.engine.clone(), config)
    }

    /// Starts only the outbox dispatcher (listening for other hosts' deliveries on PostgreSQL
    /// at `database`, when given).
    pub fn spawn_dispatcher(
        &self,
        config: crate::dispatch::worker::DispatchConfig,
        database: Option<&str>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        crate::dispatch::worker::spawn(self.workers.dispatcher.clone(), config, database.map(str::to_string))
    }

    /// The database, for tools that measure or inspect the layer below the services (benchmarks,
    /// the store test suite). Services are the way in for everything else; the API never uses
    /// this (`tests/all/layers.rs` checks).
    pub fn store(&self) -> &Store {
        &self.workers.store
    }

    /// The runtime, for tools that call connectors without the services' bookkeeping
    /// (benchmarks).
    pub fn runtime(&self) -> &Runtime {
        &self.workers.runtime
    }

    /// What the operation log wrote and dropped so far (benchmarks, tests).
    pub fn oplog_stats(&self) -> crate::oplog::OplogStats {
        self.status.oplog_stats()
    }

    /// Flushes buffered operation logs (shutdown, tests).
    pub async fn flush(&self) {
        self.workers.changes.flush().await;
    }
}
