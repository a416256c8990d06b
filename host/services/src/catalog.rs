//! [`Catalog`]: the connector catalog — accepting uploads (manifest, signature and world checks),
//! the reference connectors built into the binary, browsing what a caller may see, deprecation,
//! and loading a version's compiled component.

use std::collections::BTreeMap;
use std::sync::Arc;

use patchbay_core::error::{Conflict, Error, ErrorKind, Package};
use patchbay_registry::{Manifest, PackageError, PackageLimits, TrustedKeys};
use patchbay_runtime::capability::http::EgressPolicy;
use patchbay_runtime::dynamic::{self, OperationInfo};
use patchbay_runtime::{LoadedComponent, Runtime};
use patchbay_store::{
    ConnectorFilter, ConnectorSummary, InstallationRow, NewVersion, Page, PageRequest, PublishOutcome, Store,
    VersionRow, VersionState, Viewer,
};

use crate::config_cache::{ConfigWatch, TenantCache};

/// The reference connectors compiled into this binary (`connectors-wasm/`): file name and bytes.
pub(crate) const REFERENCE_CONNECTORS: &[(&str, &[u8])] = &[
    ("notify_webhook.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/notify_webhook.wasm"))),
    ("github.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/github.wasm"))),
    ("standard_webhooks.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/standard_webhooks.wasm"))),
    ("csv_source.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/csv_source.wasm"))),
    ("rest_source.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/rest_source.wasm"))),
    ("airtable.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/airtable.wasm"))),
];

/// A version that was just published (or was already there with the same bytes).
pub struct Published {
    /// Whether the version is new or was already published with the same bytes.
    pub outcome: PublishOutcome,
    /// The stored version.
    pub version: VersionRow,
}

/// A connector and its versions, as a caller may see them.
pub struct ConnectorDetails {
    /// The connector as a catalog listing shows it.
    pub summary: ConnectorSummary,
    /// Every published version, highest first.
    pub versions: Vec<VersionRow>,
}

/// One version with what its component exports.
pub struct VersionDetails {
    /// The stored version.
    pub version: VersionRow,
    /// Every exported function, with its parameters and results.
    pub operations: Vec<OperationInfo>,
}

/// Who may publish, and how large and how signed a component must be.
#[derive(Clone)]
pub(crate) struct CatalogPolicy {
    pub package_limits: PackageLimits,
    pub trusted_keys: TrustedKeys,
    pub require_signatures: bool,
    /// How long an upload waits for its compile before answering with the version `compiling`.
    pub upload_wait: std::time::Duration,
}

/// The connector catalog.
pub struct Catalog {
    store: Store,
    runtime: Runtime,
    policy: CatalogPolicy,
    /// Versions installations run, by (owner, connector, version), under their owner (`''`, the
    /// public catalog, for every tenant).
    versions: TenantCache<(String, String, String), VersionRow>,
}

/// Most connector versions kept in memory.
const VERSIONS_CACHE_MAX: usize = 10_000;

impl Catalog {
    pub(crate) fn new(store: Store, runtime: Runtime, policy: CatalogPolicy, watch: Arc<ConfigWatch>) -> Self {
        Self { store, runtime, policy, versions: TenantCache::new(watch, VERSIONS_CACHE_MAX) }
    }

    /// The largest component this host accepts.
    pub fn max_component_bytes(&self) -> usize {
        self.policy.package_limits.max_bytes
    }

    /// A page of the connectors `viewer` may see, filtered, by id then owner.
    pub async fn list(
        &self,
        viewer: Viewer,
        filter: &ConnectorFilter,
        page: &PageRequest<(String, String)>,
    ) -> Result<Page<ConnectorSummary>, Error> {
        if let Some(c) = &filter.category {
            c.parse::<patchbay_registry::Category>().map_err(|e| Error::bad_request(e.to_string()))?;
        }
        Ok(self.store.list_connectors(viewer, filter, page).await?)
    }

    /// One connector with its versions.
    pub async fn connector(&self, viewer: Viewer, id: &str) -> Result<ConnectorDetails, Error> {
        let summary = self
            .store
            .connector(viewer.clone(), id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no connector {id:?}")))?;
        let versions = self.store.versions(viewer, id).await?;
        Ok(ConnectorDetails { summary, versions })
    }

    /// One version with the operations its component exports.
    pub async fn version(&self, viewer: Viewer, id: &str, version: &str) -> Result<VersionDetails, Error> {
        let v = self
            .store
            .version(viewer, id, version)
            .await?
            .ok_or_else(|| Error::not_found(format!("no version {version:?} of connector {id:?}")))?;
        self.details(v).await
    }

    /// A version with the operations its component exports (none while it is not ready).
    pub async fn details(&self, version: VersionRow) -> Result<VersionDetails, Error> {
        if version.state != VersionState::Ready {
            return Ok(VersionDetails { version, operations: Vec::new() });
        }
        let component = self.component(&version.digest).await?;
        let operations = dynamic::operations(self.runtime.engine(), component.component());
        Ok(VersionDetails { version, operations })
    }

    /// Marks a version deprecated (`owner`: `None` for the public catalog), with an optional
    /// `YYYY-MM-DD` sunset.
    pub async fn deprecate(
        &self,
        owner: Option<&str>,
        id: &str,
        version: &str,
        sunset: Option<String>,
        message: Option<String>,
    ) -> Result<VersionRow, Error> {
        if let Some(s) = &sunset
            && !patchbay_core::timefmt::valid_date(s)
        {
            return Err(Error::invalid(
                patchbay_core::error::Field::Sunset,
                format!("sunset {s:?} is not a date like 2027-06-30"),
            ));
        }
        let row = self.store.deprecate_version(owner, id, version, sunset, message).await?;
        self.versions.changed(owner.unwrap_or(""));
        Ok(row)
    }

    /// The compiled component with this digest: from the runtime's caches, else from the store.
    pub async fn component(&self, digest: &str) -> Result<Arc<LoadedComponent>, Error> {
        if let Some(c) = self.runtime.cached(digest) {
            return Ok(c);
        }
        let bytes = self
            .store
            .component_bytes(digest)
            .await?
            .ok_or_else(|| Error::internal(format!("component sha256:{digest} is missing from the store")))?;
        self.runtime
            .load_async(bytes)
            .await
            .map_err(|e| Error::internal(format!("loading component sha256:{digest}: {e}")))
    }

    /// The version an installation runs.
    pub(crate) async fn installed_version(&self, row: &InstallationRow) -> Result<VersionRow, Error> {
        let owner = row.connector_owner.as_deref().unwrap_or("");
        let key = (owner.to_string(), row.connector_id.clone(), row.version.clone());
        if let Some(v) = self.versions.get(&key) {
            return Ok(v);
        }
        let read_point = self.versions.read_point();
        let v = self
            .store
            .version_exact(row.connector_owner.as_deref(), &row.connector_id, &row.version)
            .await?
            .ok_or_else(|| {
                Error::internal(format!("{}@{} is missing from the catalog", row.connector_id, row.version))
            })?;
        self.versions.put(key, owner, read_point, v.clone());
        Ok(v)
    }

    /// The version a tenant means: a given one (it must exist and be visible) or the latest.
    pub(crate) async fn pick_version(
        &self,
        tenant: &str,
        connector: &str,
        version: Option<&str>,
    ) -> Result<VersionRow, Error> {
        let viewer = Viewer::Tenant(tenant.to_string());
        let summary = self.store.connector(viewer.clone(), connector).await?.ok_or_else(|| {
            Error::unknown(
                patchbay_core::error::Unknown::Connector,
                format!("no connector {connector:?} in the catalog"),
            )
        })?;
        let wanted = match version {
            Some(v) => v.to_string(),
            None => summary.latest_version.clone(),
        };
        self.store.version_exact(summary.owner.as_deref(), connector, &wanted).await?.ok_or_else(|| {
            Error::unknown(
                patchbay_core::error::Unknown::Version,
                format!(
                    "connector {connector:?} has no version {wanted:?} (versions: {})",
                    summary.versions.join(", ")
                ),
            )
        })
    }

    /// Validates and stores an uploaded component. `owner`: `None` publishes to the public catalog,
    /// `Some(tenant)` uploads a private connector only that tenant sees.
    ///
    /// Checks, in order: size, well-formed component, embedded manifest, signature, that its
    /// allowed hosts are valid patterns, and that the component links against the host's imports
    /// and exports its category's world. The compile runs within the uploader's compile slot and
    /// the compile timeout; when it outlasts the upload wait, the version is stored `compiling`
    /// and the compile goes on in the background, ending in `ready` or `failed` (with the
    /// reason). One transaction stores blob, connector and version.
    pub async fn publish(self: &Arc<Self>, owner: Option<&str>, bytes: Vec<u8>) -> Result<Published, Error> {
        self.publish_waiting(owner, bytes, self.policy.upload_wait).await
    }

    /// [`Catalog::publish`], waiting up to `wait` for the compile before storing the version
    /// `compiling`.
    async fn publish_waiting(
        self: &Arc<Self>,
        owner: Option<&str>,
        bytes: Vec<u8>,
        wait: std::time::Duration,
    ) -> Result<Published, Error> {
        if bytes.is_empty() {
            return Err(Error::new(
                ErrorKind::Package(Package::MalformedWasm),
                "the request body is empty; send the .wasm component",
            ));
        }
        let package = patchbay_registry::inspect(&bytes, &self.policy.package_limits).map_err(package_error)?;
        let signed_by = match patchbay_registry::verify(&bytes, &self.policy.trusted_keys) {
            Ok(key) => key,
            Err(e) => return Err(Error::new(ErrorKind::Package(Package::BadSignature), e.to_string())),
        };
        if self.policy.require_signatures && signed_by.is_none() {
            return Err(Error::new(
                ErrorKind::Package(Package::SignatureRequired),
                "this host only accepts connectors signed by a trusted publisher key; sign the component with `patchbay connector sign`",
            ));
        }
        let manifest = package.manifest;
        EgressPolicy::build(&manifest.allowed_hosts, &BTreeMap::new())
            .map_err(|e| Error::new(ErrorKind::Package(Package::InvalidManifest), format!("allowed_hosts: {e}")))?;
        // A component that is refused (here or in the background) leaves nothing cached.
        let mut compile = self.spawn_compile(owner, bytes.clone(), manifest.category);
        // A zero wait always compiles in the background (never a race with a fast compile).
        let finished = if wait.is_zero() { None } else { tokio::time::timeout(wait, &mut compile).await.ok() };
        let state = match finished {
            Some(joined) => {
                check_world(&*compiled(joined)?, &manifest)?;
                VersionState::Ready
            }
            None => VersionState::Compiling,
        };
        let manifest_json =
            serde_json::to_string(&manifest).map_err(|e| Error::internal(format!("encoding manifest: {e}")))?;
        let new = NewVersion {
            owner: owner.map(str::to_string),
            connector_id: manifest.id.clone(),
            version: manifest.version.clone(),
            digest: package.digest.clone(),
            manifest_json,
            category: manifest.category.as_str().to_string(),
            title: manifest.title.clone(),
            description: manifest.description.clone(),
            provider: manifest.provider.clone(),
            bundle_id: manifest.bundle.as_ref().map(|b| b.id.clone()),
            size: bytes.len() as i64,
            signed_by: signed_by.map(|k| k.to_string()),
            state,
        };
        let outcome = self.store.publish(&new, &bytes).await?;
        let uploader = owner.unwrap_or("");
        self.versions.changed(uploader);
        if state == VersionState::Compiling {
            // Settles the version, whether this upload stored it or an earlier one of the same
            // bytes did (the runtime compiles each digest once).
            let this = Arc::clone(self);
            let (owner, digest) = (owner.map(str::to_string), package.digest.clone());
            tokio::spawn(async move { this.settle(owner, manifest, digest, compile).await });
        }
        let version = self
            .store
            .version_exact(owner, &new.connector_id, &new.version)
            .await?
            .ok_or_else(|| Error::internal("published version vanished"))?;
        Ok(Published { outcome, version })
    }

    /// Compiles `bytes` for `owner` on the runtime's compile slots, as a task of its own (it
    /// outlives the request that started it).
    fn spawn_compile(
        &self,
        owner: Option<&str>,
        bytes: Vec<u8>,
        category: patchbay_registry::Category,
    ) -> tokio::task::JoinHandle<Result<Arc<LoadedComponent>, patchbay_runtime::LoadError>> {
        let runtime = self.runtime.clone();
        let uploader = owner.unwrap_or("").to_string();
        tokio::spawn(async move { runtime.load_for(&uploader, bytes, Some(category)).await })
    }

    /// Waits for a background compile and records how it ended.
    async fn settle(
        self: Arc<Self>,
        owner: Option<String>,
        manifest: Manifest,
        digest: String,
        compile: tokio::task::JoinHandle<Result<Arc<LoadedComponent>, patchbay_runtime::LoadError>>,
    ) {
        let (id, version) = (manifest.id.as_str(), manifest.version.as_str());
        let result = compiled(compile.await).and_then(|c| check_world(&c, &manifest));
        let (state, message) = match &result {
            Ok(()) => (VersionState::Ready, None),
            Err(e) => (VersionState::Failed, Some(e.message().to_string())),
        };
        match self.store.finish_compile(owner.as_deref(), id, version, &digest, state, message.as_deref()).await {
            Ok(true) => {
                self.versions.changed(owner.as_deref().unwrap_or(""));
                match &message {
                    None => tracing::info!(connector = id, version, "compiled in the background: ready"),
                    Some(m) => tracing::warn!(connector = id, version, "compile failed: {m}"),
                }
            }
            Ok(false) => tracing::info!(connector = id, version, "compile finished, but the version was replaced"),
            Err(e) => tracing::warn!(connector = id, version, "recording the end of a compile failed: {e}"),
        }
    }

    /// Takes over compiles left `compiling` by a host that stopped: every version whose state
    /// is older than `stale_after` is claimed (by one host only) and compiled again.
    pub(crate) async fn resume_stale_compiles(self: &Arc<Self>, stale_after: std::time::Duration) {
        let before = patchbay_core::clock::now_ms() - stale_after.as_millis() as i64;
        let stale = match self.store.stale_compiles(before, 16).await {
            Ok(v) => v,
            Err(e) => return tracing::warn!("listing stale compiles failed: {e}"),
        };
        for v in stale {
            if !matches!(self.store.claim_compile(&v).await, Ok(true)) {
                continue;
            }
            let (manifest, bytes) = match (manifest_of(&v), self.store.component_bytes(&v.digest).await) {
                (Ok(m), Ok(Some(b))) => (m, b),
                _ => continue,
            };
            tracing::info!(connector = %v.connector_id, version = %v.version, "resuming a stale compile");
            let compile = self.spawn_compile(v.owner.as_deref(), bytes, manifest.category);
            Arc::clone(self).settle(v.owner.clone(), manifest, v.digest.clone(), compile).await;
        }
    }

    /// Refuses a call of a version that cannot run yet (or ever), saying why.
    pub(crate) fn runnable(version: &VersionRow) -> Result<(), Error> {
        let name = format!("{}@{}", version.connector_id, version.version);
        match version.state {
            VersionState::Ready => Ok(()),
            VersionState::Compiling => {
                let secs = version.state_at_ms.map(|t| (patchbay_core::clock::now_ms() - t).max(0) / 1000).unwrap_or(0);
                Err(Error::conflict(
                    Conflict::VersionCompiling,
                    format!(
                        "{name} is still compiling ({secs} s so far); it runs once its state is `ready`, retry shortly"
                    ),
                ))
            }
            VersionState::Failed => Err(Error::conflict(
                Conflict::VersionFailed,
                format!(
                    "{name} failed to compile and cannot run: {}; upload a fixed build of this version",
                    version.state_message.as_deref().unwrap_or("no reason recorded")
                ),
            )),
        }
    }

    /// Publishes the built-in reference connectors to the public catalog (idempotent).
    pub(crate) async fn publish_reference_connectors(self: &Arc<Self>) {
        for (name, bytes) in REFERENCE_CONNECTORS {
            // Already in the catalog with these bytes: nothing to check or compile at start-up.
            if let Ok(p) = patchbay_registry::inspect(bytes, &self.policy.package_limits)
                && let Ok(Some(v)) = self.store.version_exact(None, &p.manifest.id, &p.manifest.version).await
                && v.digest == p.digest
            {
                continue;
            }
            // At start-up, not on a request: the reference connectors are ready before the host
            // serves (the compile timeout still bounds each).
            match self.publish_waiting(None, bytes.to_vec(), std::time::Duration::from_secs(3600)).await {
                Ok(p) => tracing::info!(
                    connector = %p.version.connector_id,
                    version = %p.version.version,
                    new = matches!(p.outcome, PublishOutcome::Created),
                    "reference connector in catalog"
                ),
                Err(e) => tracing::warn!("reference connector {name} not published: {e}"),
            }
        }
    }
}

/// A compile older than this is taken to have lost its host (compiles time out after a minute
/// by default).
const STALE_COMPILE: std::time::Duration = std::time::Duration::from_secs(300);

/// Resumes compiles left behind by a stopped host: at start, then every minute.
pub(crate) fn spawn_compile_recovery(catalog: Arc<Catalog>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            catalog.resume_stale_compiles(STALE_COMPILE).await;
        }
    });
}

/// The manifest stored with a version, parsed.
pub(crate) fn manifest_of(v: &VersionRow) -> Result<Manifest, Error> {
    serde_json::from_str(&v.manifest_json)
        .map_err(|e| Error::internal(format!("stored manifest of {}@{} is unreadable: {e}", v.connector_id, v.version)))
}

/// The component of a finished compile task, or the upload error its failure means.
fn compiled(
    joined: Result<Result<Arc<LoadedComponent>, patchbay_runtime::LoadError>, tokio::task::JoinError>,
) -> Result<Arc<LoadedComponent>, Error> {
    match joined {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(patchbay_runtime::LoadError::Invalid(m))) => {
            Err(Error::new(ErrorKind::Package(Package::MalformedWasm), m))
        }
        Ok(Err(patchbay_runtime::LoadError::Incompatible(m))) => {
            Err(Error::new(ErrorKind::Package(Package::WorldMismatch), m))
        }
        Ok(Err(e @ patchbay_runtime::LoadError::CompileTimeout(_))) => {
            Err(Error::new(ErrorKind::Package(Package::CompileTimeout), e.to_string()))
        }
        Err(e) => Err(Error::internal(format!("the compile task ended abnormally: {e}"))),
    }
}

/// The component implements the world its manifest's category names.
fn check_world(component: &LoadedComponent, manifest: &Manifest) -> Result<(), Error> {
    let category = manifest.category.as_str();
    match component.hub {
        Some(h) if h == manifest.category => Ok(()),
        Some(h) => Err(Error::new(
            ErrorKind::Package(Package::WorldMismatch),
            format!(
                "the manifest's category is {category}, but the component implements the {} world (it exports {})",
                h.world(),
                h.export_name()
            ),
        )),
        None => Err(Error::new(
            ErrorKind::Package(Package::WorldMismatch),
            format!(
                "the manifest's category is {category}, but the component exports no hub interface; build it against the `{category}` world"
            ),
        )),
    }
}

fn package_error(e: PackageError) -> Error {
    let kind = match e {
        PackageError::TooLarge { .. } => ErrorKind::TooLarge,
        PackageError::MalformedWasm { .. } => ErrorKind::Package(Package::MalformedWasm),
        PackageError::NotAComponent => ErrorKind::Package(Package::NotAComponent),
        PackageError::MissingManifest => ErrorKind::Package(Package::MissingManifest),
        PackageError::DuplicateManifest { .. }
        | PackageError::ManifestNotUtf8 { .. }
        | PackageError::InvalidManifest(_) => ErrorKind::Package(Package::InvalidManifest),
        PackageError::BadSignature(_) => ErrorKind::Package(Package::BadSignature),
    };
    Error::new(kind, e.to_string())
}
