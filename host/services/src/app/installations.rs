//! Installations: creating and changing them against their connector's manifest (config schema,
//! API versions, limits), their encrypted credentials, and running calls for them.
//!
//! Every call resolves the installation afresh, so a changed version, API version, config or
//! credentials takes effect on the next call, while calls already running keep the component they
//! started with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use patchbay_registry::{ApiStatus, FieldType, Manifest, RateLimit, rate_limit_issues};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::App;
use super::catalog::{deprecation, manifest_of};
use super::oauth::{CurrentToken, OAuthContext};
use crate::metrics::CallSample;
use crate::quota::{Budget, QuotaExceeded, QuotaMode};
use patchbay_core::Scope;
use patchbay_core::error::{CallFailure, Conflict, Error, ErrorKind, Field, Missing, Unknown};
use patchbay_core::outcome::ConnectorErrorKind;
use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::capability::http::{EgressBudget, EgressPolicy};
use patchbay_runtime::dynamic::{self, DynamicOutcome, InvokeError};
use patchbay_runtime::{CallError, CallReport, Installation, Limits, LoadedComponent};
use patchbay_store::{InstallationPatch, InstallationRow, NewInstallation, SealedField, VersionRow, Viewer};

/// Shown instead of a secret value.
pub const MASK: &str = "••••••••";

/// Per-installation limits a tenant may set (within the host's maxima).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Call deadline, 1..=300000 ms (default 30000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory cap, 1..=1024 MiB (default 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Fuel budget per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// The provider budget (token buckets) instead of the manifest's `rate_limits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimit>>,
}

impl LimitsSpec {
    fn validate(&self) -> Result<(), Error> {
        if let Some(t) = self.timeout_ms
            && !(1..=300_000).contains(&t)
        {
            return Err(Error::invalid(Field::Limits, format!("limits.timeout_ms must be 1..=300000, got {t}")));
        }
        if let Some(m) = self.memory_mib
            && !(1..=1024).contains(&m)
        {
            return Err(Error::invalid(Field::Limits, format!("limits.memory_mib must be 1..=1024, got {m}")));
        }
        if self.fuel == Some(0) {
            return Err(Error::invalid(Field::Limits, "limits.fuel must be positive"));
        }
        if let Some(issue) =
            rate_limit_issues("limits.rate_limits", self.rate_limits.as_deref().unwrap_or_default()).first()
        {
            return Err(Error::invalid(Field::Limits, issue.to_string()));
        }
        Ok(())
    }

    fn to_limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            timeout: self.timeout_ms.map(Duration::from_millis).unwrap_or(d.timeout),
            memory_bytes: self.memory_mib.map(|m| (m as usize) * 1024 * 1024).unwrap_or(d.memory_bytes),
            fuel: self.fuel.or(d.fuel),
            ..d
        }
    }
}

/// `POST /v1/installations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInstallation {
    pub connector: String,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub name: String,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Another installation of the same bundle whose credentials this one falls back to.
    pub credentials_from: Option<String>,
}

fn yes() -> bool {
    true
}

/// `PATCH /v1/installations/{id}`: absent members are left unchanged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstallation {
    pub version: Option<String>,
    /// `null` returns to the connector's default API version.
    #[serde(default, deserialize_with = "double_option")]
    pub api_version: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub config: Option<Map<String, Value>>,
    pub limits: Option<LimitsSpec>,
    pub name: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Everything a call needs, resolved from the store for one call.
pub struct Resolved {
    pub row: InstallationRow,
    pub prepared: Arc<Prepared>,
}

/// The part of a resolution that only changes with the installation's revision (and that of its
/// credentials source): cached between calls so a call costs one row lookup, not a decryption.
pub struct Prepared {
    revision: i64,
    source_revision: Option<i64>,
    pub version: VersionRow,
    pub manifest: Manifest,
    pub component: Arc<LoadedComponent>,
    pub installation: Installation,
    /// The secrets the connector sees, before an OAuth access token is added.
    secrets: Secrets,
    /// For connectors declaring `[oauth2]`: how the host obtains the token.
    pub oauth: Option<Arc<OAuthContext>>,
    /// The version of the access token in `installation`'s secrets...
    pub oauth_version: Option<i64>,
    /// ...and when its grant was authorized (versions start again after a reconnect).
    oauth_obtained_at: Option<i64>,
    /// The (tenant, provider) budget calls draw from, when rate limits apply.
    pub budget: Option<Arc<Budget>>,
}

impl Prepared {
    /// The same context with this access token under the connector's `oauth2` credential key.
    fn with_token(&self, token: &CurrentToken) -> Result<Prepared, Error> {
        let ctx = self.oauth.as_ref().ok_or_else(|| Error::internal("no OAuth context"))?;
        let mut secrets = self.secrets.clone();
        secrets.insert(ctx.token_key.clone(), token.access.expose());
        let i = &self.installation;
        let installation = Installation::new(
            i.scope.clone(),
            i.connector.clone(),
            i.config.clone(),
            secrets,
            &self.manifest.allowed_hosts,
            i.limits.clone(),
        )
        .map_err(|e| Error::invalid(Field::Config, e.to_string()))?
        .with_budget(self.budget.clone().map(|b| b as Arc<dyn EgressBudget>));
        Ok(Prepared {
            revision: self.revision,
            source_revision: self.source_revision,
            version: self.version.clone(),
            manifest: self.manifest.clone(),
            component: self.component.clone(),
            installation,
            secrets: self.secrets.clone(),
            oauth: self.oauth.clone(),
            oauth_version: Some(token.version),
            oauth_obtained_at: Some(token.obtained_at),
            budget: self.budget.clone(),
        })
    }
}

/// Most installations whose prepared call context is kept in memory.
const PREPARED_CACHE_MAX: usize = 10_000;

impl App {
    /// The version a tenant means: a given one (must exist and be visible) or the latest.
    async fn pick_version(&self, tenant: &str, connector: &str, version: Option<&str>) -> Result<VersionRow, Error> {
        let viewer = Viewer::Tenant(tenant.to_string());
        let summary =
            self.store.connector(viewer.clone(), connector).await?.ok_or_else(|| {
                Error::unknown(Unknown::Connector, format!("no connector {connector:?} in the catalog"))
            })?;
        let wanted = match version {
            Some(v) => v.to_string(),
            None => summary.latest_version.clone(),
        };
        self.store.version_exact(summary.owner.as_deref(), connector, &wanted).await?.ok_or_else(|| {
            Error::unknown(
                Unknown::Version,
                format!(
                    "connector {connector:?} has no version {wanted:?} (versions: {})",
                    summary.versions.join(", ")
                ),
            )
        })
    }

    pub async fn create_installation(&self, tenant: &str, req: CreateInstallation) -> Result<Value, Error> {
        check_name(&req.name)?;
        req.limits.validate()?;
        let version = self.pick_version(tenant, &req.connector, req.version.as_deref()).await?;
        let manifest = manifest_of(&version)?;
        let api_version = pick_api_version(&manifest, req.api_version.as_deref())?;
        let config = validate_config(&manifest, &req.config)?;
        if let Some(from) = &req.credentials_from {
            self.check_credentials_source(tenant, &manifest, from).await?;
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
        self.record_change(
            tenant,
            &row.id,
            format!("installed {}@{}", row.connector_id, row.version),
            vec![("enabled".into(), row.enabled.to_string())],
        );
        Ok(self.installation_view(&row, Some(&version), Some(&manifest)).await)
    }

    async fn check_credentials_source(&self, tenant: &str, manifest: &Manifest, from: &str) -> Result<(), Error> {
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
        Ok(())
    }

    pub async fn update_installation(&self, tenant: &str, id: &str, req: UpdateInstallation) -> Result<Value, Error> {
        let row = self.store.installation(tenant, id).await?.ok_or_else(|| not_found(id))?;
        if let Some(n) = &req.name {
            check_name(n)?;
        }
        if let Some(l) = &req.limits {
            l.validate()?;
        }
        // Validate the result against the (possibly new) version's manifest.
        let version = match &req.version {
            Some(v) => self
                .store
                .version_exact(row.connector_owner.as_deref(), &row.connector_id, v)
                .await?
                .ok_or_else(|| {
                    Error::unknown(Unknown::Version, format!("connector {:?} has no version {v:?}", row.connector_id))
                })?,
            None => self.installed_version(&row).await?,
        };
        let manifest = manifest_of(&version)?;
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
            self.record_change(tenant, id, format!("installation updated (revision {})", row.revision), changes);
        }
        self.forget_hooks(tenant, id);
        Ok(self.installation_view(&row, Some(&version), Some(&manifest)).await)
    }

    pub(crate) async fn installed_version(&self, row: &InstallationRow) -> Result<VersionRow, Error> {
        self.store
            .version_exact(row.connector_owner.as_deref(), &row.connector_id, &row.version)
            .await?
            .ok_or_else(|| Error::internal(format!("{}@{} is missing from the catalog", row.connector_id, row.version)))
    }

    /// JSON view of an installation, with deprecation notices for its version and API version.
    pub async fn installation_view(
        &self,
        row: &InstallationRow,
        version: Option<&VersionRow>,
        manifest: Option<&Manifest>,
    ) -> Value {
        let fetched;
        let version = match version {
            Some(v) => Some(v),
            None => {
                fetched = self.installed_version(row).await.ok();
                fetched.as_ref()
            }
        };
        let parsed;
        let manifest = match manifest {
            Some(m) => Some(m),
            None => {
                parsed = version.and_then(|v| manifest_of(v).ok());
                parsed.as_ref()
            }
        };
        let api_deprecation = manifest
            .and_then(|m| m.api_versions.iter().find(|a| Some(&a.id) == row.api_version.as_ref()))
            .filter(|a| a.status == ApiStatus::Deprecated)
            .map(|a| json!({ "api_version": a.id, "sunset": a.sunset }));
        // Webhook-endpoint installations receive webhooks at a per-installation address.
        let webhook_url = match manifest.map(|m| m.category) {
            Some(patchbay_registry::Category::WebhookEndpoint) => match self.webhook_url(&row.tenant, &row.id).await {
                Ok(u) => Value::String(u),
                Err(e) => {
                    tracing::warn!(installation = %row.id, "cannot give the installation a webhook address: {}", e.message());
                    Value::Null
                }
            },
            _ => Value::Null,
        };
        json!({
            "id": row.id,
            "name": row.name,
            "connector": row.connector_id,
            "connector_owner": row.connector_owner,
            "version": row.version,
            "api_version": row.api_version,
            "enabled": row.enabled,
            "status": row.status,
            "config": parse_object(&row.config_json),
            "limits": serde_json::from_str::<Value>(&row.limits_json).unwrap_or_else(|_| json!({})),
            "credentials_from": row.credentials_from,
            "revision": row.revision,
            "created_at": rfc3339(row.created_at_ms),
            "updated_at": rfc3339(row.updated_at_ms),
            "deprecation": version.map(deprecation).unwrap_or(Value::Null),
            "api_version_deprecation": api_deprecation,
            "webhook_url": webhook_url,
        })
    }

    pub async fn get_installation(&self, tenant: &str, id: &str) -> Result<InstallationRow, Error> {
        self.store.installation(tenant, id).await?.ok_or_else(|| not_found(id))
    }

    /// Replaces an installation's credentials (validated against the manifest, sealed per field).
    pub async fn put_credentials(&self, tenant: &str, id: &str, body: &Map<String, Value>) -> Result<Value, Error> {
        let row = self.get_installation(tenant, id).await?;
        let manifest = manifest_of(&self.installed_version(&row).await?)?;
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
        self.forget_hooks(tenant, id);
        let names: Vec<&str> = sealed.iter().map(|f| f.field.as_str()).collect();
        self.record_change(tenant, id, "credentials replaced".into(), vec![("fields".into(), names.join(","))]);
        self.credentials_view(tenant, id).await
    }

    /// Deletes an installation's credentials (its next call runs without them).
    pub async fn delete_credentials(&self, tenant: &str, id: &str) -> Result<(), Error> {
        self.get_installation(tenant, id).await?;
        let removed = self.store.delete_credentials(tenant, id).await?;
        self.forget_hooks(tenant, id);
        self.record_change(tenant, id, "credentials deleted".into(), vec![("fields".into(), removed.to_string())]);
        Ok(())
    }

    /// Credentials as stored: secrets masked, plain text fields shown.
    pub async fn credentials_view(&self, tenant: &str, id: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, id).await?;
        let manifest = manifest_of(&self.installed_version(&row).await?)?;
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
        let missing: Vec<&str> = manifest
            .credentials
            .iter()
            .filter(|d| d.required && d.kind != FieldType::Oauth2 && !stored.iter().any(|s| s.field == d.key))
            .map(|d| d.key.as_str())
            .collect();
        Ok(
            json!({ "installation": id, "credentials": fields, "missing": missing, "credentials_from": row.credentials_from }),
        )
    }

    /// Opens an installation's credentials (falling back to its bundle source for unset fields).
    async fn secrets(&self, row: &InstallationRow) -> Result<Secrets, Error> {
        let mut secrets = Secrets::new();
        let mut sources = vec![row.id.clone()];
        if let Some(from) = &row.credentials_from {
            sources.push(from.clone());
        }
        for source in sources {
            for f in self.store.credentials(&row.tenant, &source).await? {
                if secrets.get(&f.field).is_some() {
                    continue;
                }
                let plain = self.keyring.open(&row.tenant, &source, &f.field, &f.ciphertext).map_err(|e| {
                    Error::internal(format!("credential {:?} of installation {source} cannot be opened: {e}", f.field))
                })?;
                secrets.insert(f.field.clone(), String::from_utf8_lossy(&plain).into_owned());
            }
        }
        Ok(secrets)
    }

    /// Resolves an installation for one call. Disabled installations refuse calls.
    ///
    /// Reads the installation's row (and its credentials source's revision) every time; the rest
    /// is rebuilt only when a revision changed, so a PATCH or new credentials apply to the next call.
    /// An OAuth installation gets its current access token (refreshed first when it is about to
    /// expire).
    pub async fn resolve(&self, tenant: &str, id: &str) -> Result<Resolved, Error> {
        let row = self.get_installation(tenant, id).await?;
        if !row.enabled {
            return Err(Error::conflict(
                Conflict::InstallationDisabled,
                format!("installation {id} is disabled; enable it with PATCH {{\"enabled\": true}}"),
            ));
        }
        let mut prepared = self.prepared_for(&row).await?;
        if let Some(ctx) = &prepared.oauth {
            let token = self.access_token(tenant, id, ctx).await?;
            if (prepared.oauth_obtained_at, prepared.oauth_version) != (Some(token.obtained_at), Some(token.version)) {
                prepared = Arc::new(prepared.with_token(&token)?);
                self.cache_prepared(&row, prepared.clone());
            }
        }
        Ok(Resolved { row, prepared })
    }

    /// The installation's call context without an access token check: cached by revision.
    pub(crate) async fn prepared_for(&self, row: &InstallationRow) -> Result<Arc<Prepared>, Error> {
        let source_revision = match &row.credentials_from {
            Some(from) => self.store.installation(&row.tenant, from).await?.map(|r| r.revision),
            None => None,
        };
        let key = (row.tenant.clone(), row.id.clone());
        let cached = self.prepared.lock().map(|m| m.get(&key).cloned()).unwrap_or_default();
        if let Some(p) = cached
            && p.revision == row.revision
            && p.source_revision == source_revision
        {
            return Ok(p);
        }
        let prepared = Arc::new(self.prepare(row, source_revision).await?);
        self.cache_prepared(row, prepared.clone());
        Ok(prepared)
    }

    fn cache_prepared(&self, row: &InstallationRow, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.prepared.lock() {
            if m.len() >= PREPARED_CACHE_MAX {
                m.clear();
            }
            m.insert((row.tenant.clone(), row.id.clone()), prepared);
        }
    }

    /// Forgets the cached call context of an installation (after changing or deleting it).
    pub fn forget(&self, tenant: &str, id: &str) {
        if let Ok(mut m) = self.prepared.lock() {
            m.remove(&(tenant.to_string(), id.to_string()));
        }
        self.forget_hooks(tenant, id);
    }

    async fn prepare(&self, row: &InstallationRow, source_revision: Option<i64>) -> Result<Prepared, Error> {
        let version = self.installed_version(row).await?;
        let manifest = manifest_of(&version)?;
        let component = self.component(&version.digest).await?;
        let mut config: BTreeMap<String, String> = BTreeMap::new();
        for f in &manifest.config {
            if let Some(d) = &f.default {
                config.insert(f.key.clone(), d.clone());
            }
        }
        for (k, v) in parse_object(&row.config_json) {
            config.insert(k, value_text(&v));
        }
        if let Some(api) = &row.api_version {
            config.entry("api_version".into()).or_insert_with(|| api.clone());
        }
        let mut secrets = self.secrets(row).await?;
        // The OAuth client's id and secret stay in the host; the token key is filled per call.
        let oauth = match (&manifest.oauth2, manifest.oauth2_field()) {
            (Some(spec), Some(field)) => {
                let ctx = OAuthContext {
                    spec: spec.clone(),
                    token_key: field.key.clone(),
                    config: config.clone(),
                    client_id: secrets.remove(spec.client_id_key()),
                    client_secret: secrets.remove(spec.client_secret_key()),
                };
                secrets.remove(&field.key);
                Some(Arc::new(ctx))
            }
            _ => None,
        };
        let limits: LimitsSpec = serde_json::from_str(&row.limits_json).unwrap_or_default();
        let rate_limits = limits.rate_limits.as_deref().unwrap_or(&manifest.rate_limits);
        let budget = self.quotas.budget(&row.tenant, &manifest.provider, rate_limits);
        let installation = Installation::new(
            Scope::new(row.tenant.as_str(), row.id.as_str()),
            format!("{}@{}", version.connector_id, version.version),
            config,
            secrets.clone(),
            &manifest.allowed_hosts,
            limits.to_limits(),
        )
        .map_err(|e| Error::invalid(Field::Config, e.to_string()))?
        .with_budget(budget.clone().map(|b| b as Arc<dyn EgressBudget>));
        Ok(Prepared {
            revision: row.revision,
            source_revision,
            version,
            manifest,
            component,
            installation,
            secrets,
            oauth,
            oauth_version: None,
            oauth_obtained_at: None,
            budget,
        })
    }

    /// Runs one operation with JSON in and out, and records it in the metrics.
    pub async fn invoke(
        &self,
        tenant: &str,
        id: &str,
        operation: &str,
        input: Value,
        quota: QuotaMode,
    ) -> Result<(Resolved, CallReport<DynamicOutcome>), Error> {
        let r = self.resolve(tenant, id).await?;
        let report = self.invoke_resolved(&r, operation, input, quota).await?;
        Ok((r, report))
    }

    /// [`App::invoke`] on an installation already resolved. When an OAuth connector reports
    /// `unauthorized`, the access token it used is refreshed (unless another call already did)
    /// and the call runs once more.
    pub async fn invoke_resolved(
        &self,
        r: &Resolved,
        operation: &str,
        input: Value,
        quota: QuotaMode,
    ) -> Result<CallReport<DynamicOutcome>, Error> {
        self.admit(r, quota).await?;
        let Some(ctx) = &r.prepared.oauth else {
            return self.invoke_once(r, operation, input).await;
        };
        let report = self.invoke_once(r, operation, input.clone()).await?;
        if !matches!(&report.outcome, Ok(DynamicOutcome::ConnectorError { kind, .. }) if kind == "unauthorized") {
            return Ok(report);
        }
        let (tenant, id) = (r.row.tenant.as_str(), r.row.id.as_str());
        self.record_change(tenant, id, "the connector reported 401; refreshing the access token".into(), vec![]);
        self.refresh_token(tenant, id, ctx, r.prepared.oauth_version).await?;
        let again = self.resolve(tenant, id).await?;
        self.invoke_once(&again, operation, input).await
    }

    async fn invoke_once(
        &self,
        r: &Resolved,
        operation: &str,
        input: Value,
    ) -> Result<CallReport<DynamicOutcome>, Error> {
        let p = &r.prepared;
        let report = dynamic::invoke(&self.runtime, &p.component, &p.installation, operation, input)
            .await
            .map_err(invoke_error)?;
        let outcome = match &report.outcome {
            Ok(DynamicOutcome::Ok(_)) => "ok",
            Ok(DynamicOutcome::ConnectorError { kind, .. }) => kind.as_str(),
            Err(e) => e.kind(),
        };
        self.metrics.record(&CallSample {
            connector: &p.version.connector_id,
            operation,
            outcome,
            duration: report.duration,
            fuel: report.fuel_consumed,
            http_requests: report.http_requests,
        });
        Ok(report)
    }
}

impl App {
    /// Adds a host entry to the installation's operation-log timeline (changes made through the
    /// API: versions, config, enablement, credentials — names only, never values).
    pub fn record_change(&self, tenant: &str, id: &str, message: String, fields: Vec<(String, String)>) {
        use patchbay_core::log::{Level, LogEntry, Source};
        use patchbay_runtime::capability::log::OperationLog;
        let entry =
            LogEntry { at_ms: patchbay_core::now_ms(), level: Level::Info, source: Source::Host, message, fields };
        self.oplog.append(&Scope::new(tenant, id), vec![entry]);
    }
}

fn invoke_error(e: InvokeError) -> Error {
    match e {
        InvokeError::UnknownOperation { .. } => Error::missing(Missing::Operation, e.to_string()),
        InvokeError::BadInput(m) => Error::invalid(Field::Input, m.to_string()).with("path", m.path.clone()),
        other => Error::internal(other.to_string()),
    }
}

impl App {
    /// The provider budget an installation draws from, as the API shows it.
    pub async fn quota_view(&self, tenant: &str, id: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, id).await?;
        let p = self.prepared_for(&row).await?;
        let limits: LimitsSpec = serde_json::from_str(&row.limits_json).unwrap_or_default();
        let source = if limits.rate_limits.is_some() { "installation" } else { "manifest" };
        let Some(b) = &p.budget else {
            return Ok(json!({ "installation": id, "provider": p.manifest.provider, "limited": false, "buckets": [] }));
        };
        let (buckets, paused, throttled) = b.status();
        // Every host's counts of the same windows, as of their last flush.
        let cluster = self.store.quota_status(&b.tenant, &b.key).await?;
        let buckets: Vec<Value> = buckets
            .iter()
            .map(|s| {
                let all = cluster
                    .iter()
                    .find(|c| c.per_seconds == i64::from(s.per_seconds) && c.window_start == s.window_start_ms);
                json!({
                    "requests": s.requests, "per_seconds": s.per_seconds, "burst": s.burst, "available": s.available,
                    "window_start": rfc3339(s.window_start_ms), "used": s.used, "refused": s.refused,
                    "all_hosts": all.map(|c| json!({ "used": c.used, "refused": c.refused, "remaining": c.remaining })),
                })
            })
            .collect();
        Ok(json!({
            "installation": id,
            "provider": b.provider,
            "limited": true,
            "source": source,
            "buckets": buckets,
            "paused_for_ms": paused.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "provider_429s": throttled,
            "next_call_in_ms": u64::try_from(b.next_free().as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// Takes one call from the installation's provider budget (if it has one).
    pub async fn admit(&self, r: &Resolved, mode: QuotaMode) -> Result<(), Error> {
        match &r.prepared.budget {
            Some(b) => b.acquire(mode).await.map_err(|e| quota_error(&e)),
            None => Ok(()),
        }
    }
}

/// A call refused for want of budget, with the time until it could run.
pub fn quota_error(e: &QuotaExceeded) -> Error {
    Error::new(ErrorKind::QuotaExceeded { retry_after: Some(e.retry_after) }, e.to_string())
}

/// A host-side call failure (deadline, limits, trap), with the runtime's kind of it.
pub fn call_error(e: &CallError) -> Error {
    let failure = match e {
        CallError::DeadlineExceeded { .. } => CallFailure::DeadlineExceeded,
        CallError::Host { .. } => CallFailure::HostUnavailable,
        _ => CallFailure::Failed,
    };
    Error::new(ErrorKind::Call(failure), e.to_string()).with("kind", e.kind())
}

/// A connector's own error (`kind` as the dynamic call reports it, `error` its payload).
pub fn connector_error(kind: &str, error: &Value) -> Error {
    let kind = ConnectorErrorKind::parse(kind);
    let retry_after = (kind == Some(ConnectorErrorKind::RateLimited))
        .then(|| Duration::from_millis(error.get("retry-after-ms").and_then(Value::as_u64).unwrap_or(1000)));
    let message = error.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
        format!("the connector failed ({})", kind.map_or("unknown error", ConnectorErrorKind::as_str))
    });
    Error::new(ErrorKind::Connector { kind, retry_after }, message).with("details", error.clone())
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no installation {id:?}"))
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(Field::Name, "name must be 1-100 printable characters"));
    }
    Ok(())
}

fn api_version_ids(m: &Manifest) -> String {
    m.api_versions.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
}

fn pick_api_version(m: &Manifest, requested: Option<&str>) -> Result<Option<String>, Error> {
    match requested {
        Some(r) => {
            if m.api_versions.iter().any(|a| a.id == r) {
                Ok(Some(r.to_string()))
            } else if m.api_versions.is_empty() {
                Err(Error::invalid(
                    Field::ApiVersion,
                    format!("unknown api_version {r:?}: {} {} declares no API versions", m.id, m.version),
                ))
            } else {
                Err(Error::invalid(
                    Field::ApiVersion,
                    format!("unknown api_version {r:?}; {} {} offers: {}", m.id, m.version, api_version_ids(m)),
                ))
            }
        }
        None => Ok(m.api_versions.iter().find(|a| a.default).or(m.api_versions.first()).map(|a| a.id.clone())),
    }
}

fn field_keys(fields: &[patchbay_registry::Field]) -> String {
    if fields.is_empty() {
        "nothing".into()
    } else {
        fields.iter().map(|f| f.key.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Checks a config object against the manifest's config schema; returns it normalised to strings.
pub fn validate_config(m: &Manifest, input: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for (key, value) in input {
        let Some(field) = m.config.iter().find(|f| &f.key == key) else {
            return Err(Error::invalid(
                Field::Config,
                format!("unknown config key {key:?}; {} takes: {}", m.id, field_keys(&m.config)),
            ));
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(Error::invalid(
                    Field::Config,
                    format!("config {key:?} must be a string, number or boolean"),
                ));
            }
        };
        let problem = match field.kind {
            FieldType::Url => check_url(&text).err(),
            FieldType::Number if text.parse::<f64>().is_err() => Some(format!("{text:?} is not a number")),
            FieldType::Boolean if text != "true" && text != "false" => Some(format!("{text:?} is not true or false")),
            _ => None,
        };
        if let Some(p) = problem {
            return Err(Error::invalid(Field::Config, format!("config {key:?}: {p}")));
        }
        out.insert(key.clone(), Value::String(text));
    }
    let missing: Vec<String> = m
        .config
        .iter()
        .filter(|f| f.required && f.default.is_none() && !out.contains_key(&f.key))
        .map(|f| format!("{} ({})", f.key, f.label))
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(Field::Config, format!("missing required config: {}", missing.join(", "))));
    }
    // Templates in allowed hosts must produce valid destinations with this config.
    let filled: BTreeMap<String, String> = out.iter().map(|(k, v)| (k.clone(), value_text(v))).collect();
    EgressPolicy::build(&m.allowed_hosts, &filled).map_err(|e| Error::invalid(Field::Config, e.to_string()))?;
    Ok(out)
}

fn check_url(text: &str) -> Result<(), String> {
    let u = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(format!("{text:?} must be an http or https URL"));
    }
    if u.host_str().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    Ok(())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

pub use patchbay_core::new_id;
