//! What a tenant may ask of an installation, and the checks against its connector's manifest:
//! the create and update requests, per-installation limits, API versions and the config schema.

use std::collections::BTreeMap;
use std::time::Duration;

/// The largest memory an installation may ask for: the runtime's cap for every call
/// (`RuntimeConfig::max_memory_bytes`), so a larger value is refused rather than silently cut.
pub(crate) const MAX_MEMORY_MIB: u64 =
    (patchbay_runtime::RuntimeConfig::DEFAULT_MAX_MEMORY_BYTES / (1024 * 1024)) as u64;

use patchbay_core::error::{Error, Field};
use patchbay_registry::{FieldType, Manifest, RateLimit, rate_limit_issues};
use patchbay_runtime::Limits;
use patchbay_runtime::capability::http::EgressPolicy;
use patchbay_runtime::capability::http::policy::fill_template;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Per-installation limits a tenant may set (within the host's maxima).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Call deadline, 1 ms up to the operator's longest call timeout (default 30000).
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
    /// Checks the limits; `max_timeout` is the operator's longest call timeout.
    pub(crate) fn validate(&self, max_timeout: Duration) -> Result<(), Error> {
        let max_ms = u64::try_from(max_timeout.as_millis()).unwrap_or(u64::MAX);
        if let Some(t) = self.timeout_ms
            && !(1..=max_ms).contains(&t)
        {
            return Err(Error::invalid(
                Field::Limits,
                format!("limits.timeout_ms must be 1..={max_ms} (the host's longest call timeout), got {t}"),
            ));
        }
        if let Some(m) = self.memory_mib
            && !(1..=MAX_MEMORY_MIB).contains(&m)
        {
            return Err(Error::invalid(
                Field::Limits,
                format!("limits.memory_mib must be 1..={MAX_MEMORY_MIB} (the host's per-call memory cap), got {m}"),
            ));
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
    #[serde(default, deserialize_with = "unique_keys")]
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

/// A JSON object whose keys are all different: a repeated key is refused rather than the last
/// value silently winning.
#[derive(Debug, Default)]
pub struct UniqueKeys(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<UniqueKeys, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    map.insert(k, v);
                }
                Ok(UniqueKeys(map))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn unique_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(UniqueKeys::deserialize(d)?.0)
}

fn some_unique_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    Ok(Option::<UniqueKeys>::deserialize(d)?.map(|u| u.0))
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
    #[serde(default, deserialize_with = "some_unique_keys")]
    pub config: Option<Map<String, Value>>,
    /// New per-installation limits.
    pub limits: Option<LimitsSpec>,
    /// A new display name.
    pub name: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// An installation name, normalized: 1–100 characters (not bytes) after Unicode NFC
/// normalization, so two spellings of the same text are the same name; no control, format
/// (bidi overrides, zero-width) or unassigned-looking invisible characters.
pub(crate) fn normalize_name(name: &str) -> Result<String, Error> {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = name.nfc().collect();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{061C}' | '\u{180E}' | '\u{00AD}')
    };
    let count = nfc.chars().count();
    if nfc.trim().is_empty() || count > 100 {
        return Err(Error::invalid(Field::Name, format!("name must be 1-100 characters, got {count}")));
    }
    if let Some(c) = nfc.chars().find(|c| invisible(*c)) {
        return Err(Error::invalid(
            Field::Name,
            format!("name may not contain control or invisible formatting characters (found U+{:04X})", c as u32),
        ));
    }
    Ok(nfc)
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
    // So must the OAuth endpoints (a key not set yet is reported when the endpoint is used).
    if let Some(spec) = &m.oauth2 {
        for endpoint in
            [Some(&spec.token_url), spec.authorize_url.as_ref(), spec.revoke_url.as_ref()].into_iter().flatten()
        {
            fill_template(endpoint, &filled).map_err(|e| Error::invalid(Field::Config, e.to_string()))?;
        }
    }
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
