//! The host's services behind the admin API: publishing connectors, installations, credentials and
//! calls — everything that combines the store, the registry, the keyring and the runtime.
//!
//! Handlers in [`crate::api`] parse and authorize; the rules live here so the CLI's local commands
//! and the startup path (publishing the reference connectors) share them.

pub mod catalog;
pub mod health;
pub mod ingress;
pub mod installations;
pub mod oauth;
pub mod routes;
pub mod sync;

pub use installations::new_id;

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use patchbay_registry::{PackageLimits, TrustedKeys};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::oplog::StoreOperationLog;
use patchbay_crypto::{Keyring, TokenKind};
use patchbay_runtime::capability::http::NetworkPolicy;
use patchbay_runtime::{LoadedComponent, Runtime, RuntimeConfig, Services};
use patchbay_store::{NewApiKey, Store};

/// Setting key under which the generated operator key's id is remembered.
const OPERATOR_KEY_SETTING: &str = "operator_key_id";

/// Shared state of a running host. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

pub struct AppInner {
    pub store: Store,
    pub keyring: Keyring,
    pub runtime: Runtime,
    pub oplog: Arc<StoreOperationLog>,
    pub metrics: Metrics,
    pub package_limits: PackageLimits,
    pub trusted_keys: TrustedKeys,
    pub require_signatures: bool,
    /// sha256 of `PATCHBAY_ADMIN_TOKEN`, when set.
    pub env_operator_hash: Option<String>,
    /// The tenants' routing rules.
    pub router: Arc<crate::routing::Router>,
    /// Where webhook requests are recorded.
    pub ingress_writer: Arc<dyn ingress::IngressWriter>,
    /// Base of webhook URLs (`{public_url}/hooks/{hook_id}`).
    pub public_url: String,
    /// Largest webhook body accepted.
    pub webhook_max_bytes: usize,
    /// How long webhook ids are remembered for deduplication.
    pub webhook_dedupe: std::time::Duration,
    /// Hook ids resolved recently (see [`ingress::HOOK_CACHE_TTL`]).
    hooks: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Arc<installations::Resolved>)>>,
    /// Wakes this host's sync worker (a run was queued here).
    pub sync_wake: Arc<tokio::sync::Notify>,
    /// This host's provider budgets.
    pub quotas: crate::quota::Quotas,
    /// Health check interval and timeout.
    pub health: health::HealthConfig,
    /// Current OAuth access tokens and refresh locks of this process.
    pub oauth: oauth::OAuthTokens,
    /// Prepared call contexts by (tenant, installation), checked against the row's revision.
    prepared: std::sync::Mutex<std::collections::HashMap<(String, String), Arc<installations::Prepared>>>,
}

impl std::ops::Deref for App {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

/// What [`App::open`] did on the way up, for the startup banner.
pub struct Startup {
    /// A freshly generated operator token: shown once, stored only as a hash.
    pub new_operator_token: Option<String>,
    pub database: String,
    pub key_file: Option<PathBuf>,
}

impl App {
    /// Opens (and on first start creates) the data directory, database, key file and runtime.
    pub async fn open(settings: &Settings) -> anyhow::Result<(App, Startup)> {
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
        let keyring = Keyring::load(settings.master_key.as_deref(), &key_file)?;
        let oplog = Arc::new(StoreOperationLog::new(store.clone()));
        let router = Arc::new(crate::routing::Router::new(store.clone()));
        let services = Services {
            oplog: oplog.clone(),
            state: Arc::new(crate::state::DurableState::new(store.clone())),
            events: Arc::new(crate::event_sink::StoreEventSink::new(store.clone(), router.clone())),
        };
        let config = RuntimeConfig {
            cache_dir: Some(settings.data_dir.join("cache")),
            network: NetworkPolicy::allowing(settings.allow_networks.clone()),
            fuel_metering: settings.fuel_metering,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(config, services)?;
        let trusted_keys = TrustedKeys::parse(&settings.trusted_publisher_keys.join(","))
            .map_err(|e| anyhow::anyhow!("PATCHBAY_TRUSTED_KEYS: {e}"))?;
        let env_operator_hash = settings.admin_token.as_deref().map(patchbay_crypto::hash_token);
        let app = App {
            inner: Arc::new(AppInner {
                store: store.clone(),
                keyring,
                runtime,
                oplog,
                metrics: Metrics::default(),
                package_limits: PackageLimits { max_bytes: settings.max_component_bytes },
                trusted_keys,
                require_signatures: settings.require_signatures,
                env_operator_hash,
                router,
                // Many webhook requests per transaction; `ingest_webhook` wakes the dispatchers.
                ingress_writer: Arc::new(
                    patchbay_store::GroupCommitter::spawn(store.clone(), patchbay_store::GroupCommitConfig::default())
                        .0,
                ),
                public_url: settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen)),
                webhook_max_bytes: settings.webhook_max_bytes,
                webhook_dedupe: std::time::Duration::from_secs(settings.webhook_dedupe_hours * 3600),
                hooks: Default::default(),
                sync_wake: Default::default(),
                health: health::HealthConfig {
                    interval: std::time::Duration::from_secs(settings.health_interval_secs),
                    timeout: std::time::Duration::from_millis(settings.health_timeout_ms),
                },
                oauth: Default::default(),
                quotas: Default::default(),
                prepared: Default::default(),
            }),
        };
        let new_operator_token = if settings.admin_token.is_none() { app.ensure_operator_key().await? } else { None };
        if settings.reference_connectors {
            app.publish_reference_connectors().await;
        }
        let key_file = settings.master_key.is_none().then_some(key_file);
        Ok((app, Startup { new_operator_token, database, key_file }))
    }

    /// Creates the operator key on first start; returns its token (the only time it exists in clear).
    async fn ensure_operator_key(&self) -> anyhow::Result<Option<String>> {
        if self.store.setting(OPERATOR_KEY_SETTING).await?.is_some() {
            return Ok(None);
        }
        let (id, token) = patchbay_crypto::new_token(TokenKind::Operator)?;
        // Two hosts starting together on one database: only the first one's key is kept.
        if !self.store.insert_setting_if_absent(OPERATOR_KEY_SETTING, &id).await? {
            return Ok(None);
        }
        self.store
            .create_api_key(&NewApiKey {
                id,
                tenant: None,
                name: "operator (generated on first start)".into(),
                secret_hash: patchbay_crypto::hash_token(&token),
                scopes: vec!["operator".into()],
            })
            .await?;
        Ok(Some(token))
    }

    /// The compiled component with this digest: from the runtime's caches, else from the store.
    pub async fn component(&self, digest: &str) -> Result<Arc<LoadedComponent>, patchbay_core::Error> {
        if let Some(c) = self.runtime.cached(digest) {
            return Ok(c);
        }
        let bytes = self.store.component_bytes(digest).await?.ok_or_else(|| {
            patchbay_core::Error::internal(format!("component sha256:{digest} is missing from the store"))
        })?;
        self.runtime
            .load_async(bytes)
            .await
            .map_err(|e| patchbay_core::Error::internal(format!("loading component sha256:{digest}: {e}")))
    }

    /// Flushes buffered operation logs (shutdown, tests).
    pub async fn flush(&self) {
        self.oplog.flush().await;
    }
}
