//! [`Installations`]: a tenant's installed connectors — creating and changing them against their
//! connector's manifest (config schema, API versions, limits), their sealed credentials, their
//! webhook addresses, and (in `calls`) resolving and running calls for them.
//!
//! Every call resolves the installation through the configuration cache, so a changed version,
//! API version, config or credentials takes effect on the next call through this host and within
//! [`crate::config_cache::STALENESS_BOUND`] on every other, while calls already running keep the
//! component they started with.

mod calls;
mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use patchbay_core::error::{Error, Field};
use patchbay_core::new_id;
use patchbay_crypto::Keyring;
use patchbay_registry::{ApiStatus, FieldType, Manifest};
use patchbay_runtime::Runtime;
use patchbay_store::{
    InstallationFilter, InstallationPatch, InstallationRow, NewInstallation, Page, PageRequest, SealedField, Store,
    VersionRow,
};
use serde_json::{Map, Value};

pub use calls::{Prepared, QuotaStatus, Resolved, call_error, connector_error, quota_error};
pub use rules::{CreateInstallation, LimitsSpec, UniqueKeys, UpdateInstallation, validate_config};

use crate::catalog::{Catalog, manifest_of};
use crate::changes::ChangeLog;
use crate::config_cache::{ConfigWatch, TenantCache};
use crate::metrics::Metrics;
use crate::oauth::Tokens;
use crate::quota::Quotas;
use rules::{api_version_ids, check_url, field_keys, json_string, normalize_name, parse_object, pick_api_version};

/// Most installation rows kept in memory.
const ROWS_CACHE_MAX: usize = 10_000;

/// Shown instead of a secret value.
pub(crate) const MASK: &str = "••••••••";

/// An installation with what its views show besides the row: its version (for deprecation
/// notices), the deprecation of the API version it uses, and its webhook address.
pub struct InstallationDetails {
    /// The stored installation.
    pub row: InstallationRow,
    /// The connector version it runs; `None` when it could not be read.
    pub version: Option<VersionRow>,
    /// The API version the installation uses, when its connector deprecated it: id and sunset.
    pub api_version_deprecation: Option<(String, Option<patchbay_registry::Date>)>,
    /// For installations of webhook-endpoint connectors: where senders post.
    pub webhook_url: Option<String>,
}

/// An installation's credentials as the API shows them: secrets masked, plain text shown.
pub struct CredentialsStatus {
    /// `ins_<hex>`: the installation's id.
    pub installation: String,
    /// Field name → shown value (`MASK` for secrets).
    pub credentials: Map<String, Value>,
    /// Required fields that are not set.
    pub missing: Vec<String>,
    /// The bundle member whose credentials this one uses; `None` when it has its own.
    pub credentials_from: Option<String>,
}

/// What installations need from the rest of the host.
pub(crate) struct InstallationsDeps {
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub runtime: Runtime,
    pub catalog: Arc<Catalog>,
    pub tokens: Arc<Tokens>,
    pub quotas: Arc<Quotas>,
    pub changes: Arc<ChangeLog>,
    pub watch: Arc<ConfigWatch>,
    pub metrics: Arc<Metrics>,
    /// Base of webhook URLs (`{public_url}/hooks/{hook_id}`).
    pub public_url: String,
}

/// A tenant's installations and the calls made for them.
pub struct Installations {
    store: Store,
    keyring: Arc<Keyring>,
    runtime: Runtime,
    catalog: Arc<Catalog>,
    tokens: Arc<Tokens>,
    quotas: Arc<Quotas>,
    changes: Arc<ChangeLog>,
    watch: Arc<ConfigWatch>,
    metrics: Arc<Metrics>,
    public_url: String,
    /// Rows by (tenant, installation), with their credentials source's revision.
    rows: TenantCache<(String, String), (InstallationRow, Option<i64>)>,
    /// Prepared call contexts by (tenant, installation), checked against the row's revision.
    prepared: Mutex<HashMap<(String, String), Arc<Prepared>>>,
}

impl Installations {
    pub(crate) fn new(d: InstallationsDeps) -> Self {
        Self {
            store: d.store,
            keyring: d.keyring,
            runtime: d.runtime,
            catalog: d.catalog,
            tokens: d.tokens,
            quotas: d.quotas,
            changes: d.changes,
            rows: TenantCache::new(d.watch.clone(), ROWS_CACHE_MAX),
            watch: d.watch,
            metrics: d.metrics,
            public_url: d.public_url,
            prepared: Mutex::default(),
        }
    }

    /// Installs a connector for `tenant`, with the authority to use credentials (the host's own
    /// callers, benchmarks); the API uses [`Installations::create_as`].
    pub async fn create(&self, tenant: &str, req: CreateInstallation) -> Result<InstallationDetails, Error> {
        self.create_as(tenant, req, true).await
    }

    /// Installs a connector for `tenant` on behalf of a key that may (`may_use_credentials`: it
    /// holds the `credentials` scope) or may not use credentials it did not set: borrowing
    /// another installation's with `credentials_from` needs that scope.
    pub async fn create_as(
        &self,
        tenant: &str,
        req: CreateInstallation,
        may_use_credentials: bool,
    ) -> Result<InstallationDetails, Error> {
        let mut req = req;
        req.name = normalize_name(&req.name)?;
        req.limits.validate(self.runtime.max_call_timeout())?;
        let version = self.catalog.pick_version(tenant, &req.connector, req.version.as_deref()).await?;
        let manifest = manifest_of(&version)?;
        let api_version = pick_api_version(&manifest, req.api_version.as_deref())?;
        let config = validate_config(&manifest, &req.config)?;
        if let Some(from) = &req.credentials_from {
            if !may_use_credentials {
                return Err(Error::forbidden(
                    "sharing another installation's credentials (credentials_from) needs a key with the `credentials` scope",
                ));
            }
            self.check_credentials_source(tenant, &version, &manifest, from).await?;
        }
        let row = self
            .store
            .create_installation(&NewInstallation {
                id: new_id("ins"),
                tenant: tenant.to_string(),
                name: req.name,
                connector_owner: version.owner.clone(),
                connector_id: version.connector_id.clone(),
                version: version.version.clone(),
                api_version,
                config_json: Value::Object(config).to_string(),
                limits_json: json_string(&req.limits),
                credentials_from: req.credentials_from,
                enabled: req.enabled,
            })
            .await?;
        self.changes.record(
            tenant,
            &row.id,
            format!("installed {}@{}", row.connector_id, row.version),
            vec![("enabled".into(), row.enabled.to_string())],
        );
        Ok(self.details_with(row, Some(version), Some(&manifest)).await)
    }

    /// A credentials source must be an installation of the same tenant, of a connector in the
    /// same bundle by the same publisher: the same owner (the operator's catalog, or the tenant's
    /// own uploads) or the same trusted signing key. A bundle id is only a claim; anyone can
    /// write one into a manifest.
    async fn check_credentials_source(
        &self,
        tenant: &str,
        version: &VersionRow,
        manifest: &Manifest,
        from: &str,
    ) -> Result<(), Error> {
        let Some(bundle) = &manifest.bundle else {
            return Err(Error::invalid(
                Field::CredentialsFrom,
                format!("connector {:?} is not part of a bundle, so it cannot share credentials", manifest.id),
            ));
        };
        let source = self.store.installation(tenant, from).await?.ok_or_else(|| {
            Error::invalid(Field::CredentialsFrom, format!("credentials_from: no installation {from:?}"))
        })?;
        let v = self
            .store
            .version_exact(source.connector_owner.as_deref(), &source.connector_id, &source.version)
            .await?
            .ok_or_else(|| Error::internal("installation's version is missing"))?;
        let m = manifest_of(&v)?;
        if m.bundle.as_ref().map(|b| &b.id) != Some(&bundle.id) {
            return Err(Error::invalid(
                Field::CredentialsFrom,
                format!("credentials_from: installation {from:?} is not in bundle {:?}", bundle.id),
            ));
        }
        let same_owner = v.owner == version.owner;
        let same_signer = v.signed_by.is_some() && v.signed_by == version.signed_by;
        if !same_owner && !same_signer {
            return Err(Error::invalid(
                Field::CredentialsFrom,
                format!(
                    "credentials_from: installation {from:?} runs a connector of another publisher; bundle members \
                     share credentials only when the same owner published them or the same key signed them"
                ),
            ));
        }
        Ok(())
    }

    /// Changes an installation; absent members stay as they are. With the authority to use
    /// credentials; the API uses [`Installations::update_as`].
    pub async fn update(&self, tenant: &str, id: &str, req: UpdateInstallation) -> Result<InstallationDetails, Error> {
        self.update_as(tenant, id, req, true).await
    }

    /// Changes an installation on behalf of a key that may or may not use credentials: moving to
    /// a version whose connector reads secret values it could not read before needs the
    /// `credentials` scope (the new version would hand it the values the key cannot see).
    pub async fn update_as(
        &self,
        tenant: &str,
        id: &str,
        req: UpdateInstallation,
        may_use_credentials: bool,
    ) -> Result<InstallationDetails, Error> {
        let row = self.get(tenant, id).await?;
        let mut req = req;
        if let Some(n) = &req.name {
            req.name = Some(normalize_name(n)?);
        }
        if let Some(l) = &req.limits {
            l.validate(self.runtime.max_call_timeout())?;
        }
        // Validate the result against the (possibly new) version's manifest.
        let version = match &req.version {
            Some(v) => {
                self.store.version_exact(row.connector_owner.as_deref(), &row.connector_id, v).await?.ok_or_else(
                    || {
                        Error::unknown(
                            patchbay_core::error::Unknown::Version,
                            format!("connector {:?} has no version {v:?}", row.connector_id),
                        )
                    },
                )?
            }
            None => self.catalog.installed_version(&row).await?,
        };
        let manifest = manifest_of(&version)?;
        if req.version.is_some() && !may_use_credentials {
            let current = manifest_of(&self.catalog.installed_version(&row).await?)?;
            let newly: Vec<&str> = manifest
                .credentials
                .iter()
                .filter(|f| f.guest_readable && !current.credential(&f.key).is_some_and(|c| c.guest_readable))
                .map(|f| f.key.as_str())
                .collect();
            if !newly.is_empty() {
                return Err(Error::forbidden(format!(
                    "version {} lets the connector read the secret values {} itself; upgrading to it needs a key with the `credentials` scope",
                    version.version,
                    newly.join(", ")
                )));
            }
        }
        let api_version = match &req.api_version {
            Some(requested) => pick_api_version(&manifest, requested.as_deref())?,
            None => match &row.api_version {
                // A version without API versions (e.g. a rollback) clears the choice.
                Some(_) if manifest.api_versions.is_empty() => None,
                Some(current) if !manifest.api_versions.iter().any(|a| &a.id == current) => {
                    return Err(Error::invalid(
                        Field::ApiVersion,
                        format!(
                            "version {} does not offer API version {current:?}; choose one of {} with api_version",
                            version.version,
                            api_version_ids(&manifest)
                        ),
                    ));
                }
                Some(current) => Some(current.clone()),
                None => pick_api_version(&manifest, None)?,
            },
        };
        let config = match &req.config {
            Some(c) => validate_config(&manifest, c)?,
            None => validate_config(&manifest, &parse_object(&row.config_json))
                .map_err(|e| e.prefixed("the current config does not fit"))?,
        };
        let patch = InstallationPatch {
            version: req.version.clone(),
            api_version: Some(api_version),
            enabled: req.enabled,
            status: None,
            config_json: Some(Value::Object(config).to_string()),
            limits_json: req.limits.as_ref().map(json_string),
            name: req.name.clone(),
        };
        let before = row;
        let row = self.store.update_installation(tenant, id, &patch).await?;
        let mut changes = Vec::new();
        if before.version != row.version {
            changes.push(("version".to_string(), format!("{} -> {}", before.version, row.version)));
        }
        if before.api_version != row.api_version {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
            changes
                .push(("api_version".into(), format!("{} -> {}", show(&before.api_version), show(&row.api_version))));
        }
        if before.enabled != row.enabled {
            changes.push(("enabled".into(), row.enabled.to_string()));
        }
        if before.config_json != row.config_json {
            changes.push(("config".into(), "changed".into()));
        }
        if before.limits_json != row.limits_json {
            changes.push(("limits".into(), row.limits_json.clone()));
        }
        if before.name != row.name {
            changes.push(("name".into(), row.name.clone()));
        }
        if !changes.is_empty() {
            self.changes.record(tenant, id, format!("installation updated (revision {})", row.revision), changes);
        }
        self.watch.changed(tenant);
        Ok(self.details_with(row, Some(version), Some(&manifest)).await)
    }

    /// Uninstalls: the installation, its credentials, state and logs go.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), Error> {
        if !self.store.delete_installation(tenant, id).await? {
            return Err(not_found(id));
        }
        self.forget(tenant, id);
        Ok(())
    }

    /// One installation's row.
    pub(crate) async fn get(&self, tenant: &str, id: &str) -> Result<InstallationRow, Error> {
        self.store.installation(tenant, id).await?.ok_or_else(|| not_found(id))
    }

    /// One installation with what its view shows.
    pub async fn details(&self, tenant: &str, id: &str) -> Result<InstallationDetails, Error> {
        let row = self.get(tenant, id).await?;
        Ok(self.details_with(row, None, None).await)
    }

    /// A page of the tenant's installations matching `filter`, oldest first, with what their
    /// views show.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &InstallationFilter,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<InstallationDetails>, Error> {
        // Names are stored NFC-normalized (`normalize_name`); so is the prefix they are matched by.
        let filter = InstallationFilter {
            name_prefix: filter.name_prefix.as_deref().map(|p| {
                use unicode_normalization::UnicodeNormalization;
                p.nfc().collect()
            }),
            ..filter.clone()
        };
        let rows = self.store.list_installations(tenant, &filter, page).await?;
        let mut out = Vec::with_capacity(rows.items.len());
        for row in rows.items {
            out.push(self.details_with(row, None, None).await);
        }
        Ok(Page { items: out, more: rows.more })
    }

    /// A page of the tenant's installation rows matching `filter`, oldest first.
    pub(crate) async fn rows(
        &self,
        tenant: &str,
        filter: &InstallationFilter,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<InstallationRow>, Error> {
        Ok(self.store.list_installations(tenant, filter, page).await?)
    }

    /// `row` with its version, API-version deprecation and webhook address (looked up unless
    /// given; a part that cannot be read is left out rather than failing the view).
    async fn details_with(
        &self,
        row: InstallationRow,
        version: Option<VersionRow>,
        manifest: Option<&Manifest>,
    ) -> InstallationDetails {
        let version = match version {
            Some(v) => Some(v),
            None => self.catalog.installed_version(&row).await.ok(),
        };
        let parsed;
        let manifest = match manifest {
            Some(m) => Some(m),
            None => {
                parsed = version.as_ref().and_then(|v| manifest_of(v).ok());
                parsed.as_ref()
            }
        };
        let api_version_deprecation = manifest
            .and_then(|m| m.api_versions.iter().find(|a| Some(&a.id) == row.api_version.as_ref()))
            .filter(|a| a.status == ApiStatus::Deprecated)
            .map(|a| (a.id.clone(), a.sunset));
        // Webhook-endpoint installations receive webhooks at a per-installation address.
        let webhook_url = match manifest.map(|m| m.category) {
            Some(patchbay_registry::Category::WebhookEndpoint) => match self.webhook_url(&row.tenant, &row.id).await {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!(installation = %row.id, "cannot give the installation a webhook address: {e}");
                    None
                }
            },
            _ => None,
        };
        InstallationDetails { row, version, api_version_deprecation, webhook_url }
    }

    /// Replaces an installation's credentials (validated against the manifest, sealed per field).
    pub async fn put_credentials(
        &self,
        tenant: &str,
        id: &str,
        body: &Map<String, Value>,
    ) -> Result<CredentialsStatus, Error> {
        let row = self.get(tenant, id).await?;
        let manifest = manifest_of(&self.catalog.installed_version(&row).await?)?;
        let mut sealed = Vec::new();
        for (key, value) in body {
            let Some(field) = manifest.credentials.iter().find(|f| &f.key == key) else {
                return Err(Error::invalid(
                    Field::Credentials,
                    format!("unknown credential {key:?}; {} takes: {}", manifest.id, field_keys(&manifest.credentials)),
                ));
            };
            if field.kind == FieldType::Oauth2 {
                return Err(Error::invalid(
                    Field::Credentials,
                    format!(
                        "credential {key:?} holds the OAuth token, which the host obtains itself: \
                         POST /v1/installations/{id}/oauth/start"
                    ),
                ));
            }
            let text = match value {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::String(_) => {
                    return Err(Error::invalid(Field::Credentials, format!("credential {key:?} is empty")));
                }
                _ => {
                    return Err(Error::invalid(Field::Credentials, format!("credential {key:?} must be a string")));
                }
            };
            if field.kind == FieldType::Url {
                check_url(&text).map_err(|m| Error::invalid(Field::Credentials, format!("credential {key:?}: {m}")))?;
            }
            let s = self
                .keyring
                .seal(tenant, id, key, text.as_bytes())
                .map_err(|e| Error::internal(format!("sealing credentials: {e}")))?;
            sealed.push(SealedField { field: key.clone(), key_id: s.key_id, ciphertext: s.ciphertext });
        }
        if row.credentials_from.is_none() {
            let missing: Vec<&str> = manifest
                .credentials
                .iter()
                .filter(|f| f.required && f.kind != FieldType::Oauth2 && !body.contains_key(&f.key))
                .map(|f| f.key.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::invalid(
                    Field::Credentials,
                    format!("missing required credential(s): {}", missing.join(", ")),
                ));
            }
        }
        self.store.put_credentials(tenant, id, &sealed).await?;
        self.watch.changed(tenant);
        let names: Vec<&str> = sealed.iter().map(|f| f.field.as_str()).collect();
        self.changes.record(tenant, id, "credentials replaced".into(), vec![("fields".into(), names.join(","))]);
        self.credentials(tenant, id).await
    }

    /// Deletes an installation's credentials (its next call runs without them).
    pub async fn delete_credentials(&self, tenant: &str, id: &str) -> Result<(), Error> {
        self.get(tenant, id).await?;
        let removed = self.store.delete_credentials(tenant, id).await?;
        self.watch.changed(tenant);
        self.changes.record(tenant, id, "credentials deleted".into(), vec![("fields".into(), removed.to_string())]);
        Ok(())
    }

    /// Credentials as stored: secrets masked, plain text fields shown.
    pub async fn credentials(&self, tenant: &str, id: &str) -> Result<CredentialsStatus, Error> {
        let row = self.get(tenant, id).await?;
        let manifest = manifest_of(&self.catalog.installed_version(&row).await?)?;
        let stored = self.store.credentials(tenant, id).await?;
        let mut fields = Map::new();
        for f in &stored {
            let kind = manifest.credentials.iter().find(|d| d.key == f.field).map(|d| d.kind);
            let shown = match kind {
                Some(FieldType::Text | FieldType::Url) => {
                    match self.keyring.open(tenant, id, &f.field, &f.ciphertext) {
                        Ok(p) => Value::String(String::from_utf8_lossy(&p).into_owned()),
                        Err(_) => Value::String(MASK.into()),
                    }
                }
                _ => Value::String(MASK.into()),
            };
            fields.insert(f.field.clone(), shown);
        }
        let missing = manifest
            .credentials
            .iter()
            .filter(|d| d.required && d.kind != FieldType::Oauth2 && !stored.iter().any(|s| s.field == d.key))
            .map(|d| d.key.clone())
            .collect();
        Ok(CredentialsStatus {
            installation: id.to_string(),
            credentials: fields,
            missing,
            credentials_from: row.credentials_from,
        })
    }

    /// The public webhook URL of an installation (creating its hook id on first use).
    pub async fn webhook_url(&self, tenant: &str, installation: &str) -> Result<String, Error> {
        let hook = self.store.ensure_hook(tenant, installation, &new_hook_id()?).await?;
        Ok(format!("{}/hooks/{hook}", self.public_url.trim_end_matches('/')))
    }

    /// Gives a webhook-endpoint installation a new hook id; the old address stops working at once.
    pub async fn rotate_webhook(&self, tenant: &str, id: &str) -> Result<String, Error> {
        let details = self.details(tenant, id).await?;
        if details.webhook_url.is_none() {
            return Err(Error::conflict(
                patchbay_core::error::Conflict::NotAWebhookEndpoint,
                format!(
                    "installation {id} runs connector {}, which does not receive webhooks",
                    details.row.connector_id
                ),
            ));
        }
        let hook = self.store.rotate_hook(tenant, id, &new_hook_id()?).await?;
        self.watch.changed(tenant);
        self.changes.record(tenant, id, "webhook address rotated".into(), vec![]);
        Ok(format!("{}/hooks/{hook}", self.public_url.trim_end_matches('/')))
    }

    /// Forgets the cached call context of an installation (after changing or deleting it).
    pub(crate) fn forget(&self, tenant: &str, id: &str) {
        if let Ok(mut m) = self.prepared.lock() {
            m.remove(&(tenant.to_string(), id.to_string()));
        }
        self.watch.changed(tenant);
    }
}

/// A fresh hook id: `hk_` and 32 random bytes in hex (256 bits).
fn new_hook_id() -> Result<String, Error> {
    Ok(format!("hk_{}", patchbay_core::ids::random_hex(32)?))
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no installation {id:?}"))
}
