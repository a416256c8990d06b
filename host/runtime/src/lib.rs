//! patchbay-runtime: the sandboxed runtime — one [`Engine`], a compiled-component cache, and a
//! fresh [`Store`] per call — with the [`capability`] modules it lends connectors.
//!
//! This is the only place that lists all capabilities: [`CallState`] holds each capability's
//! per-call context and [`Runtime::new`] links their WIT imports, each through the capability's
//! own `add_to_linker` (plus a locked-down WASI p2: no preopens, sockets, environment or stdin;
//! stdout/stderr go to the operation log). Backends that outlive a call are traits the
//! capabilities declare; [`Services`] carries the ones a host injects.
//!
//! Every call runs under [`Limits`]: a wall-clock deadline enforced by epoch interruption (the
//! guest is preempted, yielding to the executor at every tick so other calls keep being served), a
//! memory cap, instance/table caps, and optional fuel whose consumption is reported. A trap is a
//! failed call with a [`CallError`] saying why, never a host crash.

#![warn(missing_docs)]

mod backstop;
pub mod bindings;
pub mod cache;
pub mod calls;
pub mod capability;
pub mod dynamic;
pub mod egress;
pub mod engine;
pub mod hub;
mod slots;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tracing::Instrument;
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use patchbay_core::Scope;
use patchbay_core::log::{Level, Source};

use crate::bindings::connector::{Connector, ConnectorIndices};
use crate::capability::credentials::{CredentialSource, CredentialsView, Secret, Secrets};
use crate::capability::events::{EventLimits, EventSink, EventsView, MemoryEventSink};
use crate::capability::http::{EgressBudget, EgressPolicy, HttpLimits, HttpView, NetworkPolicy, PatternError};
use crate::capability::log::{LogBuffer, LogLimits, LogView, MemoryOperationLog, OperationLog, Scrubber};
use crate::capability::state::{MemoryStateStore, StateLimits, StateStore, StateView};
use crate::capability::stdio::CappedPipe;
use crate::capability::{credentials, events, http as http_cap, log as log_cap, state};
use crate::egress::Egress;
pub use cache::{CacheHit, Digest};
pub use hub::Hub;

/// Host-wide runtime settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled artifacts are kept; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator when the platform allows it.
    pub pooling: bool,
    /// Calls running at once (pool slots); further calls wait for a slot.
    pub max_concurrent_calls: u32,
    /// Calls of one tenant running at once (its share of the slots); its further calls wait
    /// while other tenants' calls start. Also bounds one tenant's compiles.
    pub max_calls_per_tenant: u32,
    /// The longest deadline any call gets, whatever its installation asks for.
    pub max_call_timeout: Duration,
    /// Components compiled at once (one tenant compiles one at a time).
    pub max_concurrent_compiles: u32,
    /// Longest a compilation may take before the load is refused.
    pub compile_timeout: Duration,
    /// Compiled code held in memory, in bytes; the least recently used components go first.
    pub memory_cache_bytes: usize,
    /// Precompiled artifacts kept on disk, in bytes; the oldest go first.
    pub disk_cache_bytes: u64,
    /// Upper bound for any installation's memory cap (also the pool's slot size).
    pub max_memory_bytes: usize,
    /// Epoch tick: deadline precision and how often a running guest yields to the executor.
    pub epoch_tick: Duration,
    /// Count fuel on every call (reported per call; installations may also cap it).
    pub fuel_metering: bool,
    /// Blocked networks and the operator's exceptions.
    pub network: NetworkPolicy,
}

impl RuntimeConfig {
    /// The default upper bound for any installation's memory cap: 256 MiB.
    pub const DEFAULT_MAX_MEMORY_BYTES: usize = 256 * 1024 * 1024;
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: true,
            max_concurrent_calls: 128,
            max_calls_per_tenant: 32,
            max_call_timeout: Duration::from_secs(60),
            max_concurrent_compiles: 2,
            compile_timeout: Duration::from_secs(60),
            memory_cache_bytes: 1 << 30,
            disk_cache_bytes: 4 << 30,
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
            epoch_tick: Duration::from_millis(5),
            fuel_metering: true,
            network: NetworkPolicy::strict(),
        }
    }
}

/// Per-installation limits for one call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline for the whole call, host calls included.
    pub timeout: Duration,
    /// Linear-memory cap across the component's memories.
    pub memory_bytes: usize,
    /// Most instances a call may create.
    pub max_instances: usize,
    /// Most tables a call may create.
    pub max_tables: usize,
    /// Most linear memories a call may create.
    pub max_memories: usize,
    /// Most elements any one table may grow to.
    pub max_table_elements: usize,
    /// Fuel budget; `None` = unlimited (still counted when metering is on).
    pub fuel: Option<u64>,
    /// Bounds on the call's outbound HTTP.
    pub http: HttpLimits,
    /// Bounds on the call's operation-log entries.
    pub log: LogLimits,
    /// Bounds on the installation's state.
    pub state: StateLimits,
    /// Bounds on the events a call emits.
    pub events: EventLimits,
    /// Bytes of stdout and of stderr kept per call.
    pub stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 64 * 1024 * 1024,
            max_instances: 32,
            max_tables: 32,
            max_memories: 4,
            max_table_elements: 100_000,
            fuel: None,
            http: HttpLimits::default(),
            log: LogLimits::default(),
            state: StateLimits::default(),
            events: EventLimits::default(),
            stdio_bytes: 64 * 1024,
        }
    }
}

/// Long-lived backends the capabilities write to.
#[derive(Clone)]
pub struct Services {
    /// Where every call's operation-log entries go.
    pub oplog: Arc<dyn OperationLog>,
    /// Backs the `state` capability.
    pub state: Arc<dyn StateStore>,
    /// Where emitted events go.
    pub events: Arc<dyn EventSink>,
}

impl Services {
    /// In-memory backends (until the durable store is configured).
    pub fn in_memory() -> Self {
        Self {
            oplog: Arc::new(MemoryOperationLog::new(10_000)),
            state: Arc::new(MemoryStateStore::default()),
            events: Arc::new(MemoryEventSink::default()),
        }
    }
}

/// Everything the runtime needs to know about the installation a call runs for.
pub struct InstallationData {
    /// The tenant and installation the call runs for.
    pub scope: Scope,
    /// `id@version` of the connector, for logs and spans.
    pub connector: String,
    /// Configuration values by key, as text: what the `credentials` capability's `config` returns
    /// and `{{config.KEY}}` templates read.
    pub config: BTreeMap<String, String>,
    /// The opened secrets, by credential name.
    pub secrets: Secrets,
    /// The destinations the connector may reach, from its manifest's allowed hosts.
    pub egress: EgressPolicy,
    /// Finds the installation's secret values, to remove them from what the call logs.
    pub scrubber: Scrubber,
    /// Limits for each call.
    pub limits: Limits,
    /// The provider budget its calls draw from (paused by a provider's 429).
    pub budget: Option<Arc<dyn EgressBudget>>,
    /// The secrets `get-secret` may hand to the guest: those its manifest declares
    /// `guest_readable`. Every other secret is only used by the host (placeholders, HMAC).
    pub guest_readable: std::collections::BTreeSet<String>,
    /// Test mode: the call's requests are answered from these fixtures, never from the network.
    pub fixtures: Option<Arc<capability::http::fixtures::Fixtures>>,
}

/// An installation's credentials are its configuration and its opened secrets.
impl CredentialSource for InstallationData {
    fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    fn guest_readable(&self, name: &str) -> bool {
        self.guest_readable.contains(name)
    }
}

/// A cheap, cloneable handle to an installation's call context.
#[derive(Clone)]
pub struct Installation(Arc<InstallationData>);

impl std::ops::Deref for Installation {
    type Target = InstallationData;

    fn deref(&self) -> &InstallationData {
        &self.0
    }
}

impl Installation {
    /// Builds the installation context; `allowed_hosts` are the manifest's egress patterns, with
    /// `{{config.KEY}}` templates filled from `config`.
    pub fn new(
        scope: Scope,
        connector: impl Into<String>,
        config: BTreeMap<String, String>,
        secrets: Secrets,
        allowed_hosts: &[String],
        limits: Limits,
    ) -> Result<Self, PatternError> {
        let built = EgressPolicy::build(allowed_hosts, &config)?;
        for u in &built.unresolved {
            tracing::debug!(installation = ?scope, "allowed host pattern allows nothing: {u}");
        }
        let scrubber = Scrubber::new(secrets.values());
        Ok(Self(Arc::new(InstallationData {
            scope,
            connector: connector.into(),
            config,
            secrets,
            egress: built.policy,
            scrubber,
            limits,
            budget: None,
            guest_readable: Default::default(),
            fixtures: None,
        })))
    }

    /// The same context letting the guest read these secrets' values (only while it is built).
    pub fn with_guest_readable(mut self, names: impl IntoIterator<Item = String>) -> Self {
        if let Some(data) = Arc::get_mut(&mut self.0) {
            data.guest_readable = names.into_iter().collect();
        }
        self
    }

    /// The same context in test mode: every request answered from `fixtures`, none from the
    /// network (only while it is being built).
    pub fn with_fixtures(mut self, fixtures: Option<Arc<capability::http::fixtures::Fixtures>>) -> Self {
        if let Some(data) = Arc::get_mut(&mut self.0) {
            data.fixtures = fixtures;
        }
        self
    }

    /// The same context drawing from `budget` (only while it is being built).
    pub fn with_budget(mut self, budget: Option<Arc<dyn EgressBudget>>) -> Self {
        if let Some(data) = Arc::get_mut(&mut self.0) {
            data.budget = budget;
        }
        self
    }
}

/// Resource caps for one store; records which cap was hit so the error can say so.
pub(crate) struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    memory_used: usize,
    memory_exceeded: Option<usize>,
    table_exceeded: Option<usize>,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_bytes {
            self.memory_exceeded = Some(total);
            wasmtime::bail!("memory limit exceeded: {} bytes requested, limit {} bytes", total, self.memory_bytes);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_exceeded = Some(desired);
            wasmtime::bail!("table limit exceeded: {} elements requested, limit {}", desired, self.table_elements);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// WASI state, built on first use: calls that never touch WASI do not pay for it.
struct LazyWasi {
    ctx: WasiCtx,
    stdout: CappedPipe,
    stderr: CappedPipe,
}

/// Runtime-wide pieces every call's capabilities use, behind one `Arc` so creating a call's state
/// touches one shared reference count rather than one per capability.
struct CallShared {
    egress: Egress,
    services: Services,
}

/// The data of a per-call [`Store`]. Capabilities see it through the views the linker getters
/// build (`capability::*View`); this is the only place that knows them all.
pub struct CallState {
    inst: Installation,
    shared: Arc<CallShared>,
    limiter: CallLimiter,
    deadline: Instant,
    http_requests: u32,
    events_emitted: u32,
    log: LogBuffer,
    wasi: Option<LazyWasi>,
    table: ResourceTable,
}

impl CallState {
    fn http_view(&mut self) -> HttpView<'_> {
        HttpView {
            egress: &self.shared.egress,
            allowed: &self.inst.egress,
            credentials: &*self.inst,
            scrubber: &self.inst.scrubber,
            limits: &self.inst.limits.http,
            deadline: self.deadline,
            requests: &mut self.http_requests,
            log: &mut self.log,
            budget: self.inst.budget.as_deref(),
            fixtures: self.inst.fixtures.as_deref(),
        }
    }

    fn credentials_view(&mut self) -> CredentialsView<'_> {
        CredentialsView { source: &*self.inst }
    }

    fn log_view(&mut self) -> LogView<'_> {
        LogView { buf: &mut self.log, scrubber: &self.inst.scrubber }
    }

    fn state_view(&mut self) -> StateView<'_> {
        StateView {
            scope: &self.inst.scope,
            store: &*self.shared.services.state,
            limits: &self.inst.limits.state,
            scrubber: &self.inst.scrubber,
        }
    }

    fn events_view(&mut self) -> EventsView<'_> {
        EventsView {
            scope: &self.inst.scope,
            sink: &*self.shared.services.events,
            limits: &self.inst.limits.events,
            emitted: &mut self.events_emitted,
            scrubber: &self.inst.scrubber,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stdio_bytes = self.inst.limits.stdio_bytes;
        let wasi = self.wasi.get_or_insert_with(|| {
            let stdout = CappedPipe::new(stdio_bytes);
            let stderr = CappedPipe::new(stdio_bytes);
            let ctx = WasiCtx::builder()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .allow_blocking_current_thread(false)
                .build();
            LazyWasi { ctx, stdout, stderr }
        });
        WasiCtxView { ctx: &mut wasi.ctx, table: &mut self.table }
    }
}

impl crate::bindings::connector::patchbay::connector::types::Host for CallState {}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was stopped.
    #[error("deadline exceeded: the call ran longer than {limit_ms} ms and was stopped")]
    DeadlineExceeded {
        /// The deadline, in milliseconds.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past the cap.
    #[error("memory limit exceeded: the guest asked for {requested} bytes, the limit is {limit} bytes")]
    MemoryLimitExceeded {
        /// The memory cap, in bytes.
        limit: usize,
        /// The total linear memory the guest asked for, in bytes.
        requested: usize,
    },
    /// The guest tried to grow a table past the cap.
    #[error("table limit exceeded: the guest asked for {requested} elements, the limit is {limit}")]
    TableLimitExceeded {
        /// The cap on one table's elements.
        limit: usize,
        /// The elements the guest asked for.
        requested: usize,
    },
    /// The call used up its fuel budget.
    #[error("fuel exhausted: the call used its budget of {limit} units")]
    OutOfFuel {
        /// The fuel budget.
        limit: u64,
    },
    /// The guest overflowed the wasm stack.
    #[error("stack overflow: the guest recursed deeper than the {limit} byte wasm stack")]
    StackOverflow {
        /// The wasm stack size, in bytes.
        limit: usize,
    },
    /// The guest trapped (a panic, an unreachable, a failed host call).
    #[error("guest trapped: {message}")]
    Trap {
        /// The trap's description.
        message: String,
    },
    /// The component could not be instantiated.
    #[error("instantiation failed: {message}")]
    Instantiation {
        /// Why instantiation failed.
        message: String,
    },
    /// The host could not run the call (e.g. it is shutting down).
    #[error("host error: {message}")]
    Host {
        /// What failed.
        message: String,
    },
}

impl CallError {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::DeadlineExceeded { .. } => "deadline_exceeded",
            CallError::MemoryLimitExceeded { .. } => "memory_limit_exceeded",
            CallError::TableLimitExceeded { .. } => "table_limit_exceeded",
            CallError::OutOfFuel { .. } => "out_of_fuel",
            CallError::StackOverflow { .. } => "stack_overflow",
            CallError::Trap { .. } => "trap",
            CallError::Instantiation { .. } => "instantiation_failed",
            CallError::Host { .. } => "host_error",
        }
    }
}

/// The outcome of one call plus what it consumed.
#[derive(Debug)]
pub struct CallReport<R> {
    /// The call's result, or why it failed.
    pub outcome: Result<R, CallError>,
    /// Time from sandbox creation to teardown (excludes waiting for a slot).
    pub duration: Duration,
    /// Time spent waiting for a free slot.
    pub queued: Duration,
    /// Fuel consumed, when metering is on.
    pub fuel_consumed: Option<u64>,
    /// Outbound HTTP requests made.
    pub http_requests: u32,
    /// Events emitted.
    pub events_emitted: u32,
    /// Entries written to the operation log (host records included).
    pub log_entries: usize,
    /// Entries dropped because the call exceeded its log limits.
    pub logs_dropped: u64,
}

impl<R> CallReport<R> {
    /// The same report with the successful value transformed.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> CallReport<S> {
        CallReport {
            outcome: self.outcome.map(f),
            duration: self.duration,
            queued: self.queued,
            fuel_consumed: self.fuel_consumed,
            http_requests: self.http_requests,
            events_emitted: self.events_emitted,
            log_entries: self.log_entries,
            logs_dropped: self.logs_dropped,
        }
    }
}

/// A component ready to run: compiled, type-checked against the host's imports, pre-instantiated.
pub struct LoadedComponent {
    /// sha256 of the component bytes.
    pub digest: Digest,
    /// The hub world it implements; `None` for a component exporting only `lifecycle`.
    pub hub: Option<Hub>,
    /// Size of the component, in bytes.
    pub size: usize,
    /// Where this load found it.
    pub loaded_from: CacheHit,
    component: Component,
    pre: InstancePre<CallState>,
    lifecycle: ConnectorIndices,
    /// Typed access to the `webhooks` export, for components of the webhook-endpoint hub.
    webhooks: Option<crate::bindings::webhook_endpoint::WebhookEndpointIndices>,
    /// Typed access to the `sync` export, for components of the data-sync hub.
    data_sync: Option<crate::bindings::data_sync::DataSyncIndices>,
    operations: Vec<dynamic::OperationInfo>,
    exported: Vec<dynamic::OperationInfo>,
}

impl LoadedComponent {
    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The connector's operations — the functions of `lifecycle` and of its hub interface —
    /// callable with JSON through [`dynamic::invoke`].
    pub fn operations(&self) -> &[dynamic::OperationInfo] {
        &self.operations
    }

    /// Every function the component exports, operations or not (see
    /// [`dynamic::exported_functions`]).
    pub fn exported_functions(&self) -> &[dynamic::OperationInfo] {
        &self.exported
    }

    /// Typed access to the `lifecycle` export of an instance of this component.
    pub(crate) fn lifecycle(&self, store: &mut Store<CallState>, instance: &Instance) -> wasmtime::Result<Connector> {
        self.lifecycle.load(store, instance)
    }

    /// Typed access to the `webhooks` export of an instance; `None` unless the component
    /// implements the webhook-endpoint hub.
    pub fn webhooks(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> Option<wasmtime::Result<crate::bindings::webhook_endpoint::WebhookEndpoint>> {
        self.webhooks.as_ref().map(|w| w.load(store, instance))
    }

    /// Typed access to the `sync` export of an instance; `None` unless the component implements
    /// the data-sync hub.
    pub fn data_sync(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> Option<wasmtime::Result<crate::bindings::data_sync::DataSync>> {
        self.data_sync.as_ref().map(|w| w.load(store, instance))
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component does not link against the host's imports, or its exports do not fit its hub.
    #[error("component does not fit the host: {0}")]
    Incompatible(String),
    /// Compiling took longer than the host allows.
    #[error("compiling the component took longer than {} s; make it smaller or simpler", .0.as_secs())]
    CompileTimeout(Duration),
}

/// `c` when it implements `expected` (any hub when `None`).
fn check_hub(c: Arc<LoadedComponent>, expected: Option<Hub>) -> Result<Arc<LoadedComponent>, LoadError> {
    match expected {
        Some(h) if c.hub != Some(h) => Err(LoadError::Incompatible(format!(
            "the manifest's category is {h}, but the component does not implement the {} world",
            h.world()
        ))),
        _ => Ok(c),
    }
}

struct Inner {
    engine: Engine,
    pooling: bool,
    linker: Linker<CallState>,
    memory: cache::MemoryCache<LoadedComponent>,
    disk: Option<cache::DiskCache>,
    slots: slots::Slots,
    compiles: slots::Slots,
    shared: Arc<CallShared>,
    config: RuntimeConfig,
}

/// The connector runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// Slack added to the outer timeout: the epoch deadline normally fires first.
const OUTER_GRACE: Duration = Duration::from_secs(1);

impl Runtime {
    /// Builds the engine and links every capability; fails when the engine, the linker, the disk
    /// cache or the HTTP client cannot be set up.
    pub fn new(config: RuntimeConfig, services: Services) -> anyhow::Result<Self> {
        let (engine, pooling) = engine::build(&config).map_err(|e| anyhow::anyhow!("engine: {e}"))?;
        engine::start_ticker(&engine, config.epoch_tick);
        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
        Self::link_capabilities(&mut linker).map_err(|e| anyhow::anyhow!("linking capabilities: {e}"))?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(cache::DiskCache::open(dir, &engine, config.disk_cache_bytes)?),
            None => None,
        };
        let egress = Egress::new(config.network.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                pooling,
                linker,
                memory: cache::MemoryCache::new(config.memory_cache_bytes),
                disk,
                slots: slots::Slots::new(
                    config.max_concurrent_calls.max(1) as usize,
                    config.max_calls_per_tenant as usize,
                ),
                compiles: slots::Slots::new(config.max_concurrent_compiles.max(1) as usize, 1),
                shared: Arc::new(CallShared { egress, services }),
                config,
            }),
        })
    }

    /// Links every capability's WIT imports. The list of capabilities lives here only: adding
    /// one is a line here and a view in [`CallState`].
    fn link_capabilities(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        use crate::bindings::connector::patchbay::connector as wit;
        wit::types::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
        http_cap::add_to_linker(linker, CallState::http_view)?;
        credentials::add_to_linker(linker, CallState::credentials_view)?;
        log_cap::add_to_linker(linker, CallState::log_view)?;
        state::add_to_linker(linker, CallState::state_view)?;
        events::add_to_linker(linker, CallState::events_view)?;
        Ok(())
    }

    /// The wasmtime engine every component is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The longest deadline any call gets.
    pub fn max_call_timeout(&self) -> Duration {
        self.inner.config.max_call_timeout
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The host's one way out: connectors' requests and the host's own requests to providers
    /// (OAuth token endpoints) go through it.
    pub fn egress(&self) -> &Egress {
        &self.inner.shared.egress
    }

    /// Components held in memory.
    pub fn cached_components(&self) -> usize {
        self.inner.memory.len()
    }

    /// The loaded component with this sha256 (lower-case hex), if it is held in memory.
    pub fn cached(&self, digest_hex: &str) -> Option<Arc<LoadedComponent>> {
        self.inner.memory.get(&Digest(digest_hex.to_string()))
    }

    /// Loads a component: from memory, from a precompiled artifact on disk, or by compiling it.
    /// Compilation is CPU-heavy; call this from a blocking context (see [`Runtime::load_async`]).
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        self.load_checked(wasm, None, &AtomicBool::new(false))
    }

    /// Loads a component that must implement `expected` (any hub when `None`). What cannot be
    /// accepted is refused before compiling when its names show it, and a refused or abandoned
    /// (`cancelled`) load leaves nothing in the memory or disk cache.
    fn load_checked(
        &self,
        wasm: &[u8],
        expected: Option<Hub>,
        cancelled: &AtomicBool,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        let digest = Digest::of(wasm);
        if let Some(c) = self.inner.memory.get(&digest) {
            return check_hub(c, expected);
        }
        hub::precheck(wasm, expected).map_err(LoadError::Incompatible)?;
        let lock = self.inner.memory.compile_lock(&digest);
        let _guard = match lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(c) = self.inner.memory.get(&digest) {
            return check_hub(c, expected);
        }
        let result = self.compile_and_link(wasm, &digest, expected, cancelled);
        if result.is_err() {
            self.inner.memory.forget_compile(&digest);
        }
        result
    }

    fn compile_and_link(
        &self,
        wasm: &[u8],
        digest: &Digest,
        expected: Option<Hub>,
        cancelled: &AtomicBool,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        let engine = &self.inner.engine;
        let (component, from) = match self.inner.disk.as_ref().and_then(|d| d.load(engine, digest)) {
            Some(c) => (c, CacheHit::Disk),
            None => {
                (Component::new(engine, wasm).map_err(|e| LoadError::Invalid(format!("{e:#}")))?, CacheHit::Compiled)
            }
        };
        let hub = hub::detect(engine, &component).map_err(LoadError::Incompatible)?;
        if let Some(h) = expected
            && hub != Some(h)
        {
            return Err(LoadError::Incompatible(format!(
                "the manifest's category is {h}, but the component does not implement the {} world",
                h.world()
            )));
        }
        let pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let lifecycle = ConnectorIndices::new(&pre).map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let webhooks = match hub {
            Some(Hub::WebhookEndpoint) => Some(
                crate::bindings::webhook_endpoint::WebhookEndpointIndices::new(&pre)
                    .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?,
            ),
            _ => None,
        };
        let data_sync = match hub {
            Some(Hub::DataSync) => Some(
                crate::bindings::data_sync::DataSyncIndices::new(&pre)
                    .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?,
            ),
            _ => None,
        };
        let exported = dynamic::exported_functions(engine, &component);
        let operations = exported.iter().filter(|op| dynamic::is_operation(op)).cloned().collect();
        if cancelled.load(Ordering::SeqCst) {
            return Err(LoadError::Invalid("the load was abandoned".into()));
        }
        // Only a component that is accepted is kept.
        if from == CacheHit::Compiled
            && let Some(d) = &self.inner.disk
        {
            d.store(digest, &component);
        }
        let code = component.image_range();
        let code_bytes = (code.end as usize).saturating_sub(code.start as usize).max(wasm.len());
        let loaded = Arc::new(LoadedComponent {
            digest: digest.clone(),
            hub,
            size: wasm.len(),
            loaded_from: from,
            component,
            pre,
            lifecycle,
            webhooks,
            data_sync,
            operations,
            exported,
        });
        // Later loads of the same bytes come from memory (until evicted: a call holding this
        // `Arc` keeps it alive, and the next load compiles or reads it from disk again).
        self.inner.memory.insert(digest.clone(), loaded.clone(), code_bytes);
        Ok(loaded)
    }

    /// [`Runtime::load`] on the blocking thread pool, as the host's own work.
    pub async fn load_async(&self, wasm: Vec<u8>) -> Result<Arc<LoadedComponent>, LoadError> {
        self.load_for("", wasm, None).await
    }

    /// Loads a component for `tenant` (an upload: it must implement `expected`), compiling on
    /// the blocking thread pool within the host's compile slots — one at a time per tenant, a
    /// few at a time overall — and refusing a compilation that takes longer than the compile
    /// timeout. A compile cut off by the timeout finishes in the background (it cannot be
    /// interrupted) but keeps its slot until then and leaves nothing cached.
    pub async fn load_for(
        &self,
        tenant: &str,
        wasm: Vec<u8>,
        expected: Option<Hub>,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        if let Some(c) = self.inner.memory.get(&Digest::of(&wasm)) {
            return check_hub(c, expected);
        }
        let timeout = self.inner.config.compile_timeout;
        let started = Instant::now();
        let slot = self
            .inner
            .compiles
            .acquire(tenant)
            .await
            .map_err(|_| LoadError::Invalid("the runtime is shutting down".into()))?;
        let remaining = timeout.saturating_sub(started.elapsed());
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let rt = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            rt.load_checked(&wasm, expected, &flag)
        });
        match tokio::time::timeout(remaining, task).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(LoadError::Invalid(format!("compilation task failed: {e}")))),
            Err(_) => {
                cancelled.store(true, Ordering::SeqCst);
                Err(LoadError::CompileTimeout(timeout))
            }
        }
    }

    fn new_state(&self, inst: &Installation, memory_bytes: usize, deadline: Instant) -> CallState {
        let limits = &inst.limits;
        CallState {
            limiter: CallLimiter {
                memory_bytes,
                table_elements: limits.max_table_elements,
                instances: limits.max_instances,
                tables: limits.max_tables,
                memories: limits.max_memories,
                memory_used: 0,
                memory_exceeded: None,
                table_exceeded: None,
            },
            inst: inst.clone(),
            shared: self.inner.shared.clone(),
            deadline,
            http_requests: 0,
            events_emitted: 0,
            log: LogBuffer::new(limits.log),
            wasi: None,
            table: ResourceTable::new(),
        }
    }

    /// Runs `f` against a fresh instance of `component` for `installation`, under its limits.
    ///
    /// `f` receives the store, the instance and the component, and typically calls one export through typed
    /// bindings (see [`LoadedComponent::lifecycle`] and the hub helpers in `runtime::calls`).
    pub(crate) async fn call<R, F>(
        &self,
        component: &LoadedComponent,
        installation: &Installation,
        operation: &str,
        f: F,
    ) -> CallReport<R>
    where
        R: Send,
        F: for<'a> FnOnce(
                &'a mut Store<CallState>,
                Instance,
                &'a LoadedComponent,
            ) -> BoxFuture<'a, wasmtime::Result<R>>
            + Send,
    {
        let span = tracing::debug_span!(
            "call",
            tenant = %installation.scope.tenant,
            installation = %installation.scope.installation,
            connector = %installation.connector,
            operation,
        );
        let inst = installation;
        async move {
            let queued_at = Instant::now();
            let permit = self.inner.slots.acquire(&inst.scope.tenant).await;
            let started = Instant::now();
            let queued = started - queued_at;
            let limits = &inst.limits;
            let memory_bytes = limits.memory_bytes.min(self.inner.config.max_memory_bytes);
            let timeout = limits.timeout.min(self.inner.config.max_call_timeout);
            let deadline = started + timeout;
            let mut store = Store::new(&self.inner.engine, self.new_state(inst, memory_bytes, deadline));
            store.limiter(|s| &mut s.limiter);
            let metering = self.inner.config.fuel_metering;
            let fuel_budget = limits.fuel.unwrap_or(u64::MAX);
            if metering {
                // Cannot fail with metering on.
                let _ = store.set_fuel(fuel_budget);
            }
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= deadline { Ok(UpdateDeadline::Interrupt) } else { Ok(UpdateDeadline::Yield(1)) }
            });

            let outcome: Result<R, CallError> = if permit.is_err() {
                Err(CallError::Host { message: "runtime is shutting down".into() })
            } else {
                let pre = &component.pre;
                let run = async {
                    let instance = match pre.instantiate_async(&mut store).await {
                        Ok(i) => i,
                        Err(e) => return Err((e, true)),
                    };
                    f(&mut store, instance, component).await.map_err(|e| (e, false))
                };
                let backstop = tokio::time::Instant::from_std(deadline + OUTER_GRACE);
                match backstop::Backstop::new(run, backstop).await {
                    Some(Ok(r)) => Ok(r),
                    Some(Err((e, instantiating))) => {
                        Err(classify(&e, store.data(), limits, timeout, memory_bytes, instantiating))
                    }
                    None => Err(CallError::DeadlineExceeded { limit_ms: timeout.as_millis() as u64 }),
                }
            };
            let fuel_consumed =
                if metering { store.get_fuel().ok().map(|left| fuel_budget.saturating_sub(left)) } else { None };
            let duration = started.elapsed();
            let state = store.into_data();
            // The slot goes back only now that the store (and its pooled instance) is gone: a
            // call started on a freed slot always finds a free instance in the pool.
            drop(permit);
            let http_requests = state.http_requests;
            let events_emitted = state.events_emitted;
            let scrubber = &inst.scrubber;
            let mut log = state.log;
            let mut outcome = outcome;
            if let Some(wasi) = state.wasi {
                let (out, out_dropped) = wasi.stdout.take_lines();
                let (err, err_dropped) = wasi.stderr.take_lines();
                if let Err(CallError::Trap { message }) = &mut outcome {
                    // A Rust guest's panic message is the last thing it wrote to stderr.
                    if let Some(last) = err.iter().rev().find(|l| !l.starts_with("note:")) {
                        message.push_str(&format!("; guest stderr: {}", scrubber.scrub(last)));
                    }
                }
                for l in out {
                    log.push(scrubber, Level::Info, Source::Stdout, &l, vec![]);
                }
                for l in err {
                    log.push(scrubber, Level::Warn, Source::Stderr, &l, vec![]);
                }
                if out_dropped + err_dropped > 0 {
                    log.push_host(
                        scrubber,
                        Level::Warn,
                        &format!(
                            "{} bytes of stdout/stderr discarded (limit {} each)",
                            out_dropped + err_dropped,
                            limits.stdio_bytes
                        ),
                        vec![],
                    );
                }
            }
            let mut fields =
                vec![("operation".to_string(), operation.to_string()), ("us".into(), duration.as_micros().to_string())];
            if let Some(f) = fuel_consumed {
                fields.push(("fuel".into(), f.to_string()));
            }
            match &outcome {
                Ok(_) => log.push_host(scrubber, Level::Debug, &format!("call {operation} completed"), fields),
                Err(e) => {
                    fields.push(("error".into(), e.kind().to_string()));
                    log.push_host(scrubber, Level::Error, &format!("call {operation} failed: {e}"), fields);
                }
            }
            let logs_dropped = log.dropped();
            let entries = log.finish(scrubber);
            let log_entries = entries.len();
            self.inner.shared.services.oplog.append(&inst.scope, entries);
            CallReport {
                outcome,
                duration,
                queued,
                fuel_consumed,
                http_requests,
                events_emitted,
                log_entries,
                logs_dropped,
            }
        }
        .instrument(span)
        .await
    }
}

fn classify(
    err: &wasmtime::Error,
    state: &CallState,
    limits: &Limits,
    timeout: Duration,
    memory_bytes: usize,
    instantiating: bool,
) -> CallError {
    if let Some(requested) = state.limiter.memory_exceeded {
        return CallError::MemoryLimitExceeded { limit: memory_bytes, requested };
    }
    if let Some(requested) = state.limiter.table_exceeded {
        return CallError::TableLimitExceeded { limit: limits.max_table_elements, requested };
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => CallError::DeadlineExceeded { limit_ms: timeout.as_millis() as u64 },
            Trap::OutOfFuel => CallError::OutOfFuel { limit: limits.fuel.unwrap_or(u64::MAX) },
            Trap::StackOverflow => CallError::StackOverflow { limit: engine::MAX_WASM_STACK },
            other => CallError::Trap { message: other.to_string() },
        };
    }
    let message = format!("{err:#}");
    if instantiating { CallError::Instantiation { message } } else { CallError::Trap { message } }
}
