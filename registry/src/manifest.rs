//! The connector manifest: its schema (serde types), TOML parsing and semantic validation.
//!
//! Parsing rejects unknown fields and wrongly typed values with the enclosing table, line and
//! column of the problem; [`Manifest::validate`] (rules in `validate.rs`) then checks the rules
//! that span fields and reports every violation with its path
//! (`credentials[1].key: duplicate key "token"`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Longest accepted `title`, `provider` and field `label`, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest accepted `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest accepted field `help` text, in characters.
pub const MAX_HELP_CHARS: usize = 500;

/// A connector's manifest, as written in its `connector.toml` and embedded in its component.
///
/// Field names are the same in TOML and in the JSON the host serves (`snake_case`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Catalog id: `^[a-z][a-z0-9-]{1,62}$`.
    pub id: String,
    /// Display name.
    pub title: String,
    /// One or a few sentences for the catalog.
    pub description: String,
    /// The hub, which is also the WIT world the component must implement.
    pub category: Category,
    /// Who offers the connected service (e.g. `Stripe`).
    pub provider: String,
    /// Semantic version of this package, without build metadata.
    pub version: String,
    /// Versions of the provider's API an installation can choose between.
    #[serde(default)]
    pub api_versions: Vec<ApiVersion>,
    /// Credential fields (kept encrypted by the host); types `secret`, `text`, `url`, `oauth2`.
    #[serde(default)]
    pub credentials: Vec<Field>,
    /// Configuration fields (stored in clear); types `text`, `url`, `number`, `boolean`.
    #[serde(default)]
    pub config: Vec<Field>,
    /// Egress destinations the connector may reach; may use `{{config.KEY}}` templates.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How incoming webhooks for this connector are authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// The bundle this package belongs to; packages of one bundle share one set of credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Bundle>,
    /// How the host obtains and refreshes the OAuth 2.0 token of the `oauth2` credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Spec>,
    /// The provider's request budget, shared by every installation of the tenant for this
    /// provider; each entry is one token bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
}

/// The seven hubs; each is a world of the `patchbay:connector` WIT package of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    PaymentGateway,
    ShippingCarrier,
    CommunicationChannel,
    NotificationProvider,
    StorageProvider,
    DataSync,
    WebhookEndpoint,
}

impl Category {
    /// Every category, in catalog order.
    pub const ALL: [Category; 7] = [
        Category::PaymentGateway,
        Category::ShippingCarrier,
        Category::CommunicationChannel,
        Category::NotificationProvider,
        Category::StorageProvider,
        Category::DataSync,
        Category::WebhookEndpoint,
    ];

    /// The kebab-case name, which is also the name of the category's WIT world.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::PaymentGateway => "payment-gateway",
            Category::ShippingCarrier => "shipping-carrier",
            Category::CommunicationChannel => "communication-channel",
            Category::NotificationProvider => "notification-provider",
            Category::StorageProvider => "storage-provider",
            Category::DataSync => "data-sync",
            Category::WebhookEndpoint => "webhook-endpoint",
        }
    }

    /// The WIT world of this category (its kebab-case name).
    pub fn world(self) -> &'static str {
        self.as_str()
    }

    /// The hub interface the world exports.
    pub fn interface(self) -> &'static str {
        match self {
            Category::PaymentGateway => "payments",
            Category::ShippingCarrier => "shipping",
            Category::CommunicationChannel => "messaging",
            Category::NotificationProvider => "notifications",
            Category::StorageProvider => "storage",
            Category::DataSync => "sync",
            Category::WebhookEndpoint => "webhooks",
        }
    }

    /// Fully qualified export name of the hub interface, e.g. `patchbay:connector/payments@0.1.0`.
    pub fn export_name(self) -> String {
        format!("{WIT_PACKAGE}/{}@{WIT_VERSION}", self.interface())
    }
}

/// The WIT package every connector is built against.
pub const WIT_PACKAGE: &str = "patchbay:connector";
/// The version of that package this registry validates against.
pub const WIT_VERSION: &str = "0.1.0";

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Category`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown category {0:?}; expected one of payment-gateway, shipping-carrier, communication-channel, notification-provider, storage-provider, data-sync, webhook-endpoint"
)]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

/// One version of the provider's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersion {
    /// As the provider names it (`2024-06-20`, `v2`): letters, digits, `.`, `_`, `-`.
    pub id: String,
    /// Display name.
    pub label: String,
    pub status: ApiStatus,
    /// The version new installations get; exactly one version is the default.
    #[serde(default)]
    pub default: bool,
    /// When the provider turns the version off; only on deprecated versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<Date>,
}

/// Lifecycle status of an [`ApiVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiStatus {
    Stable,
    Deprecated,
}

/// A calendar date (`YYYY-MM-DD`), written in TOML either as a string or as a bare TOML date,
/// and serialized as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A valid Gregorian calendar date, or why not.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, String> {
        if !(1..=12).contains(&month) {
            return Err(format!("month {month} is not between 1 and 12"));
        }
        let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(format!("day {day} does not exist in {year:04}-{month:02}"));
        }
        Ok(Date { year, month, day })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape_ok = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let year = s.get(0..4).and_then(|p| p.parse::<u16>().ok());
        let month = s.get(5..7).and_then(|p| p.parse::<u8>().ok());
        let day = s.get(8..10).and_then(|p| p.parse::<u8>().ok());
        match (shape_ok, year, month, day) {
            (true, Some(year), Some(month), Some(day)) => {
                Date::new(year, month, day).map_err(|e| format!("invalid date {s:?}: {e}"))
            }
            _ => Err(format!("invalid date {s:?}: expected YYYY-MM-DD")),
        }
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;

        impl<'de> Visitor<'de> for DateVisitor {
            type Value = Date;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date (YYYY-MM-DD)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                v.parse().map_err(E::custom)
            }

            // A bare TOML date arrives as toml's datetime map; let its own impl decode it.
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Date, A::Error> {
                let dt = toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (dt.date, dt.time, dt.offset) {
                    (Some(d), None, None) => Date::new(d.year, d.month, d.day).map_err(de::Error::custom),
                    _ => Err(de::Error::custom(format!("expected a date without time (YYYY-MM-DD), found {dt}"))),
                }
            }
        }

        deserializer.deserialize_any(DateVisitor)
    }
}

/// One input field of a dynamic form (credentials or configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The name the connector reads it under: `^[a-z][a-z0-9_]{0,63}$`.
    pub key: String,
    /// Form label.
    pub label: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// Default value (configuration only), as a string; TOML numbers and booleans are accepted
    /// and converted.
    #[serde(default, deserialize_with = "scalar_as_string", skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Help text shown under the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Credentials only: the connector may read the value itself (`get-secret`). By default a
    /// secret stays in the host, which uses it for the connector (`{{secret:NAME}}` header
    /// placeholders, HMAC); the catalog shows this so an installer sees which values a
    /// connector reads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest_readable: bool,
}

/// The type of a [`Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Masked input; credentials only.
    Secret,
    Text,
    /// An absolute `http(s)` URL.
    Url,
    /// An OAuth 2.0 token set; credentials only.
    Oauth2,
    /// A decimal number; configuration only.
    Number,
    /// `true` or `false`; configuration only.
    Boolean,
}

impl FieldType {
    /// The name used in TOML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Secret => "secret",
            FieldType::Text => "text",
            FieldType::Url => "url",
            FieldType::Oauth2 => "oauth2",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn scalar_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct ScalarVisitor;

    impl Visitor<'_> for ScalarVisitor {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(ScalarVisitor)
}

/// The bundle a package belongs to: several integrations installed with one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Bundle id, same rules as the manifest `id`.
    pub id: String,
    /// Display name.
    pub title: String,
}

/// One validation problem: where (`credentials[1].key`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not valid TOML, an unknown field, a missing field or a value of the wrong type.
    /// `path` is the enclosing table (`credentials[1]`, `webhook`), absent at the top level;
    /// `line` and `column` are 1-based, absent when the parser gives no position.
    #[error("invalid manifest: {}{message}{}", prefix(path.as_deref()), location(*line, *column))]
    Parse { path: Option<String>, line: Option<usize>, column: Option<usize>, message: String },
    /// Well-formed, but breaks one or more rules; every violation is listed.
    #[error("invalid manifest: {}", join(.0))]
    Invalid(Vec<Issue>),
}

fn prefix(path: Option<&str>) -> String {
    path.map(|p| format!("{p}: ")).unwrap_or_default()
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// The table enclosing byte `offset` of `text`, from the `[table]` and `[[array]]` headers
/// before it: `webhook`, `credentials[1]`. Only for error messages; values spanning lines that
/// start with `[` could mislead it, which costs context, not correctness.
fn table_path(text: &str, offset: usize) -> Option<String> {
    let end = text.get(offset..).and_then(|rest| rest.find('\n')).map_or(text.len(), |i| offset + i);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut current = None;
    for line in text.get(..end).unwrap_or(text).lines().map(str::trim_start) {
        if let Some(rest) = line.strip_prefix("[[") {
            let name = rest.split("]]").next().unwrap_or(rest).trim();
            let index = counts.entry(name).or_insert(0);
            current = Some(format!("{name}[{index}]"));
            *index += 1;
        } else if let Some(rest) = line.strip_prefix('[') {
            current = Some(rest.split(']').next().unwrap_or(rest).trim().to_string());
        }
    }
    current
}

fn join(issues: &[Issue]) -> String {
    issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ManifestError {
    fn from_toml(text: &str, err: &toml::de::Error) -> ManifestError {
        let (path, line, column) = match err.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (table_path(text, span.start), Some(line), Some(column))
            }
            None => (None, None, None),
        };
        ManifestError::Parse { path, line, column, message: err.message().trim().to_string() }
    }

    /// The validation problems (empty for a parse error).
    pub fn issues(&self) -> &[Issue] {
        match self {
            ManifestError::Invalid(issues) => issues,
            ManifestError::Parse { .. } => &[],
        }
    }
}

impl Manifest {
    /// Parses `connector.toml` text and validates it; a returned manifest satisfies
    /// [`Manifest::validate`].
    pub fn parse_toml(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::from_toml(text, &e))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every rule and reports all violations at once (see the crate docs for the list).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let issues = validate::issues(self);
        if issues.is_empty() { Ok(()) } else { Err(ManifestError::Invalid(issues)) }
    }

    /// The parsed `version`.
    pub fn semver(&self) -> Result<semver::Version, semver::Error> {
        semver::Version::parse(&self.version)
    }

    /// The API version new installations get, if the manifest declares API versions.
    pub fn default_api_version(&self) -> Option<&ApiVersion> {
        self.api_versions.iter().find(|v| v.default)
    }

    /// The API version with this id.
    pub fn api_version(&self, id: &str) -> Option<&ApiVersion> {
        self.api_versions.iter().find(|v| v.id == id)
    }

    /// The credentials field with this key.
    pub fn credential(&self, key: &str) -> Option<&Field> {
        self.credentials.iter().find(|f| f.key == key)
    }

    /// The configuration field with this key.
    pub fn config_field(&self, key: &str) -> Option<&Field> {
        self.config.iter().find(|f| f.key == key)
    }

    /// The credential of type `oauth2` (where the connector finds the access token).
    pub fn oauth2_field(&self) -> Option<&Field> {
        self.credentials.iter().find(|f| f.kind == FieldType::Oauth2)
    }
}

mod oauth;
mod validate;
mod webhook;

pub use validate::rate_limit_issues;

pub use oauth::{
    ClientAuth, DEFAULT_CLIENT_ID_KEY, DEFAULT_CLIENT_SECRET_KEY, MAX_RATE_LIMITS, MAX_RATE_WINDOW_SECS, OAuth2Spec,
    OAuthGrant, RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS, RateLimit,
};

pub use webhook::{
    DEFAULT_TOLERANCE_SECS, KeyEncoding, SignatureEncoding, SignedContent, TemplatePart, WebhookScheme, WebhookSpec,
};

#[cfg(test)]
mod tests;
