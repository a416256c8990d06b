//! What a tenant may ask of an installation, and the checks against its connector's manifest:
//! the create and update requests, per-installation limits, API versions and the config schema.

use std::collections::BTreeMap;
use std::time::Duration;

use patchbay_core::error::{Error, Field};
use patchbay_registry::{FieldType, Manifest, RateLimit, rate_limit_issues};
use patchbay_runtime::Limits;
use patchbay_runtime::capability::http::EgressPolicy;
use serde::Deserialize;
use serde_json::{Map, Value};

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
    pub(crate) fn validate(&self) -> Result<(), Error> {
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

    pub(crate) fn to_limits(&self) -> Limits {
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
    /// The connector's catalog id.
    pub connector: String,
    /// The version to install; `None` for the latest.
    pub version: Option<String>,
    /// The provider API version; `None` for the connector's default.
    pub api_version: Option<String>,
    /// Display name, 1-100 printable characters, unique within the tenant.
    pub name: String,
    /// Configuration values, checked against the connector's config schema.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Per-installation limits; unset members take the host's defaults.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Whether calls are accepted (default `true`).
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
    /// Another version of the same connector to run.
    pub version: Option<String>,
    /// `null` returns to the connector's default API version.
    #[serde(default, deserialize_with = "double_option")]
    pub api_version: Option<Option<String>>,
    /// Whether calls are accepted.
    pub enabled: Option<bool>,
    /// A new configuration, replacing the old one.
    pub config: Option<Map<String, Value>>,
    /// New per-installation limits.
    pub limits: Option<LimitsSpec>,
    /// A new display name.
    pub name: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(Field::Name, "name must be 1-100 printable characters"));
    }
    Ok(())
}

pub(crate) fn api_version_ids(m: &Manifest) -> String {
    m.api_versions.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
}

pub(crate) fn pick_api_version(m: &Manifest, requested: Option<&str>) -> Result<Option<String>, Error> {
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

pub(crate) fn field_keys(fields: &[patchbay_registry::Field]) -> String {
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

pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let u = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(format!("{text:?} must be an http or https URL"));
    }
    if u.host_str().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    Ok(())
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub(crate) fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}
