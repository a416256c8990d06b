//! The connector catalog: accepting uploads (manifest, signature and world checks), the reference
//! connectors built into the binary, and the JSON views of connectors and versions.

use std::collections::BTreeMap;

use patchbay_registry::{Manifest, PackageError};
use serde_json::{Value, json};

use super::App;
use patchbay_core::error::{Error, ErrorKind, Package};
use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::capability::http::EgressPolicy;
use patchbay_runtime::dynamic;
use patchbay_store::{ConnectorSummary, NewVersion, PublishOutcome, VersionRow};

/// The reference connectors compiled into this binary (`connectors-wasm/`): file name and bytes.
pub const REFERENCE_CONNECTORS: &[(&str, &[u8])] = &[
    ("notify_webhook.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/notify_webhook.wasm"))),
    ("github.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/github.wasm"))),
    ("standard_webhooks.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/standard_webhooks.wasm"))),
    ("csv_source.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/csv_source.wasm"))),
    ("rest_source.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/rest_source.wasm"))),
    ("airtable.wasm", include_bytes!(concat!(env!("OUT_DIR"), "/connectors/airtable.wasm"))),
];

/// A version that was just published (or was already there with the same bytes).
pub struct Published {
    pub outcome: PublishOutcome,
    pub version: VersionRow,
}

impl App {
    /// Validates and stores an uploaded component. `owner`: `None` publishes to the public catalog,
    /// `Some(tenant)` uploads a private connector only that tenant sees.
    ///
    /// Checks, in order: size, well-formed component, embedded manifest, signature, that the
    /// component links against the host's imports and exports its category's world, and that
    /// its allowed hosts are valid patterns. Then one transaction stores blob, connector and version.
    pub async fn publish(&self, owner: Option<&str>, bytes: Vec<u8>) -> Result<Published, Error> {
        let package = patchbay_registry::inspect(&bytes, &self.package_limits).map_err(package_error)?;
        let signed_by = match patchbay_registry::verify(&bytes, &self.trusted_keys) {
            Ok(key) => key,
            Err(e) => return Err(Error::new(ErrorKind::Package(Package::BadSignature), e.to_string())),
        };
        if self.require_signatures && signed_by.is_none() {
            return Err(Error::new(
                ErrorKind::Package(Package::SignatureRequired),
                "this host only accepts connectors signed by a trusted publisher key; sign the component with `patchbay connector sign`",
            ));
        }
        let manifest = package.manifest;
        EgressPolicy::build(&manifest.allowed_hosts, &BTreeMap::new())
            .map_err(|e| Error::new(ErrorKind::Package(Package::InvalidManifest), format!("allowed_hosts: {e}")))?;
        let component = self.runtime.load_async(bytes.clone()).await.map_err(|e| match e {
            patchbay_runtime::LoadError::Invalid(m) => Error::new(ErrorKind::Package(Package::MalformedWasm), m),
            patchbay_runtime::LoadError::Incompatible(m) => Error::new(ErrorKind::Package(Package::WorldMismatch), m),
        })?;
        let category = manifest.category.as_str();
        match component.hub {
            Some(h) if h == manifest.category => {}
            Some(h) => {
                return Err(Error::new(
                    ErrorKind::Package(Package::WorldMismatch),
                    format!(
                        "the manifest's category is {category}, but the component implements the {} world (it exports {})",
                        h.world(),
                        h.export_name()
                    ),
                ));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Package(Package::WorldMismatch),
                    format!(
                        "the manifest's category is {category}, but the component exports no hub interface; build it against the `{category}` world"
                    ),
                ));
            }
        }
        let manifest_json =
            serde_json::to_string(&manifest).map_err(|e| Error::internal(format!("encoding manifest: {e}")))?;
        let new = NewVersion {
            owner: owner.map(str::to_string),
            connector_id: manifest.id.clone(),
            version: manifest.version.clone(),
            digest: package.digest.clone(),
            manifest_json,
            category: category.to_string(),
            title: manifest.title.clone(),
            description: manifest.description.clone(),
            provider: manifest.provider.clone(),
            bundle_id: manifest.bundle.as_ref().map(|b| b.id.clone()),
            size: bytes.len() as i64,
            signed_by: signed_by.map(|k| k.to_string()),
        };
        let outcome = self.store.publish(&new, &bytes).await?;
        let version = self
            .store
            .version_exact(owner, &manifest.id, &manifest.version)
            .await?
            .ok_or_else(|| Error::internal("published version vanished"))?;
        Ok(Published { outcome, version })
    }

    /// Publishes the built-in reference connectors to the public catalog (idempotent).
    pub async fn publish_reference_connectors(&self) {
        for (name, bytes) in REFERENCE_CONNECTORS {
            // Already in the catalog with these bytes: nothing to check or compile at start-up.
            if let Ok(p) = patchbay_registry::inspect(bytes, &self.package_limits)
                && let Ok(Some(v)) = self.store.version_exact(None, &p.manifest.id, &p.manifest.version).await
                && v.digest == p.digest
            {
                continue;
            }
            match self.publish(None, bytes.to_vec()).await {
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

    /// The full view of one version: manifest, digest, deprecation, and the operations its world
    /// exports with their input and output as JSON Schema.
    pub async fn version_view(&self, v: &VersionRow) -> Result<Value, Error> {
        let component = self.component(&v.digest).await?;
        let ops = dynamic::operations(self.runtime.engine(), component.component());
        let operations: Vec<Value> = ops.iter().map(dynamic::operation_schema).collect();
        let mut view = version_summary(v);
        if let Some(obj) = view.as_object_mut() {
            obj.insert("manifest".into(), manifest_value(v));
            obj.insert("operations".into(), Value::Array(operations));
        }
        Ok(view)
    }
}

/// The manifest stored with a version, parsed.
pub fn manifest_of(v: &VersionRow) -> Result<Manifest, Error> {
    serde_json::from_str(&v.manifest_json)
        .map_err(|e| Error::internal(format!("stored manifest of {}@{} is unreadable: {e}", v.connector_id, v.version)))
}

fn manifest_value(v: &VersionRow) -> Value {
    serde_json::from_str(&v.manifest_json).unwrap_or(Value::Null)
}

/// A version without its operations.
pub fn version_summary(v: &VersionRow) -> Value {
    json!({
        "connector": v.connector_id,
        "owner": v.owner,
        "version": v.version,
        "digest": format!("sha256:{}", v.digest),
        "size": v.size,
        "signed_by": v.signed_by,
        "published_at": rfc3339(v.published_at_ms),
        "deprecation": deprecation(v),
    })
}

/// `null`, or when and why a version was deprecated and its sunset date.
pub fn deprecation(v: &VersionRow) -> Value {
    match v.deprecated_at_ms {
        None => Value::Null,
        Some(at) => json!({
            "deprecated_at": rfc3339(at),
            "sunset": v.sunset,
            "message": v.deprecation_message,
        }),
    }
}

pub fn connector_view(c: &ConnectorSummary) -> Value {
    json!({
        "id": c.id,
        "owner": c.owner,
        "visibility": if c.owner.is_some() { "private" } else { "public" },
        "title": c.title,
        "description": c.description,
        "category": c.category,
        "provider": c.provider,
        "bundle": c.bundle_id,
        "latest_version": c.latest_version,
        "versions": c.versions,
    })
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
