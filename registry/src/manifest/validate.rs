//! The manifest rules that span fields: ids and keys, lengths, semver, api version defaults and
//! sunsets, field types per list, defaults fitting their type, `allowed_hosts` templates and the
//! webhook table (its secret, and which fields its scheme takes). Each violation becomes an [`Issue`] with its path.

use std::collections::HashMap;

use super::{
    ApiStatus, ApiVersion, Field, FieldType, Issue, MAX_DESCRIPTION_CHARS, MAX_HELP_CHARS, MAX_RATE_LIMITS,
    MAX_RATE_WINDOW_SECS, MAX_TITLE_CHARS, Manifest, OAuth2Spec, OAuthGrant, RESERVED_AUTHORIZE_PARAMS,
    RESERVED_TOKEN_PARAMS, RateLimit, SignedContent, WebhookScheme, WebhookSpec, webhook::is_header_name,
};

/// Every rule violation of `m`, in field order.
pub(super) fn issues(m: &Manifest) -> Vec<Issue> {
    let mut v = Validator::default();
    v.slug("id", &m.id);
    v.text("title", &m.title, MAX_TITLE_CHARS, false);
    v.text("description", &m.description, MAX_DESCRIPTION_CHARS, true);
    v.text("provider", &m.provider, MAX_TITLE_CHARS, false);
    v.version(&m.version);
    v.api_versions(&m.api_versions);
    v.fields("credentials", &m.credentials, FieldList::Credentials);
    v.fields("config", &m.config, FieldList::Config);
    v.allowed_hosts(&m.allowed_hosts, &m.config);
    if let Some(webhook) = &m.webhook {
        v.webhook(webhook, &m.credentials);
    }
    if let Some(bundle) = &m.bundle {
        v.slug("bundle.id", &bundle.id);
        v.text("bundle.title", &bundle.title, MAX_TITLE_CHARS, false);
    }
    v.oauth2(m.oauth2.as_ref(), &m.credentials, &m.config);
    v.rate_limits(&m.rate_limits);
    v.issues
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldList {
    Credentials,
    Config,
}

/// Collects [`Issue`]s while walking a manifest.
#[derive(Default)]
struct Validator {
    issues: Vec<Issue>,
}

/// `^[a-z][a-z0-9-]{1,62}$`
fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `^[a-z][a-z0-9_]{0,63}$`
fn is_field_key(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl Validator {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue { path: path.into(), message: message.into() });
    }

    fn slug(&mut self, path: &str, value: &str) {
        if !is_slug(value) {
            self.push(
                path,
                format!(
                    "{value:?} is not a valid id: use 2 to 63 lowercase letters, digits and '-', starting with a letter"
                ),
            );
        }
    }

    /// Non-blank, at most `max` characters, no control characters (newlines and tabs allowed
    /// when `multiline`).
    fn text(&mut self, path: &str, value: &str, max: usize, multiline: bool) {
        if value.trim().is_empty() {
            self.push(path, "must not be empty");
            return;
        }
        let len = value.chars().count();
        if len > max {
            self.push(path, format!("is {len} characters long; at most {max} are allowed"));
        }
        if value.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t' || c == '\r'))) {
            self.push(path, "must not contain control characters");
        }
    }

    fn version(&mut self, version: &str) {
        match semver::Version::parse(version) {
            Ok(v) if !v.build.is_empty() => {
                self.push("version", format!("{version:?} has build metadata (+{}); it is not allowed", v.build))
            }
            Ok(_) => {}
            Err(e) => self.push("version", format!("{version:?} is not a semantic version (e.g. 1.2.3): {e}")),
        }
    }

    fn api_versions(&mut self, versions: &[ApiVersion]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut default: Option<usize> = None;
        for (i, v) in versions.iter().enumerate() {
            let path = format!("api_versions[{i}]");
            let id_ok = !v.id.is_empty()
                && v.id.len() <= 64
                && v.id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
            if !id_ok {
                self.push(
                    format!("{path}.id"),
                    format!("{:?} is not a valid api version id: use 1 to 64 letters, digits, '.', '_' and '-'", v.id),
                );
            } else if let Some(first) = seen.insert(&v.id, i) {
                self.push(
                    format!("{path}.id"),
                    format!("duplicate api version {:?} (also api_versions[{first}])", v.id),
                );
            }
            self.text(&format!("{path}.label"), &v.label, MAX_TITLE_CHARS, false);
            if v.default {
                match default {
                    Some(first) => self.push(
                        format!("{path}.default"),
                        format!("more than one default api version (api_versions[{first}] is the default already)"),
                    ),
                    None => default = Some(i),
                }
                if v.status == ApiStatus::Deprecated {
                    self.push(format!("{path}.default"), "the default api version may not be deprecated");
                }
            }
            if let Some(sunset) = v.sunset
                && v.status != ApiStatus::Deprecated
            {
                self.push(format!("{path}.sunset"), format!("sunset {sunset} requires status = \"deprecated\""));
            }
        }
        if !versions.is_empty() && default.is_none() {
            self.push("api_versions", "exactly one api version must have default = true; none has");
        }
    }

    fn fields(&mut self, list: &str, fields: &[Field], which: FieldList) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            let path = format!("{list}[{i}]");
            if !is_field_key(&f.key) {
                self.push(
                    format!("{path}.key"),
                    format!(
                        "{:?} is not a valid key: use 1 to 64 lowercase letters, digits and '_', starting with a letter",
                        f.key
                    ),
                );
            } else if let Some(first) = seen.insert(&f.key, i) {
                self.push(format!("{path}.key"), format!("duplicate key {:?} (also {list}[{first}].key)", f.key));
            }
            self.text(&format!("{path}.label"), &f.label, MAX_TITLE_CHARS, false);
            if let Some(help) = &f.help {
                self.text(&format!("{path}.help"), help, MAX_HELP_CHARS, true);
            }
            match which {
                FieldList::Credentials => {
                    if matches!(f.kind, FieldType::Number | FieldType::Boolean) {
                        self.push(
                            format!("{path}.type"),
                            format!(
                                "type {:?} is not allowed in credentials; use secret, text, url or oauth2",
                                f.kind.as_str()
                            ),
                        );
                    }
                    if f.default.is_some() {
                        self.push(format!("{path}.default"), "credentials cannot have a default value");
                    }
                    if f.guest_readable && f.kind == FieldType::Oauth2 {
                        self.push(
                            format!("{path}.guest_readable"),
                            "an oauth2 credential is never readable by the connector; the host sends its access token with `{{secret:KEY}}`",
                        );
                    }
                }
                FieldList::Config => {
                    if matches!(f.kind, FieldType::Secret | FieldType::Oauth2) {
                        self.push(
                            format!("{path}.type"),
                            format!(
                                "type {:?} is not allowed in config; declare it under [[credentials]], which the host keeps encrypted",
                                f.kind.as_str()
                            ),
                        );
                    }
                    if let Some(default) = &f.default
                        && let Err(reason) = check_value(f.kind, default)
                    {
                        self.push(format!("{path}.default"), reason);
                    }
                    if f.guest_readable {
                        self.push(format!("{path}.guest_readable"), "config values are always readable; remove it");
                    }
                }
            }
        }
    }

    fn allowed_hosts(&mut self, hosts: &[String], config: &[Field]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, host) in hosts.iter().enumerate() {
            let path = format!("allowed_hosts[{i}]");
            if host.trim().is_empty() {
                self.push(path, "must not be empty");
                continue;
            }
            if let Err(reason) = check_host(host, config) {
                self.push(path, reason);
            } else if let Some(first) = seen.insert(host, i) {
                self.push(path, format!("duplicate entry {host:?} (also allowed_hosts[{first}])"));
            }
        }
    }

    /// The `[oauth2]` table and the `oauth2` credential belong together: one implies the other.
    fn oauth2(&mut self, spec: Option<&OAuth2Spec>, credentials: &[Field], config: &[Field]) {
        let token_fields: Vec<usize> =
            credentials.iter().enumerate().filter(|(_, f)| f.kind == FieldType::Oauth2).map(|(i, _)| i).collect();
        let Some(spec) = spec else {
            for i in token_fields {
                self.push(
                    format!("credentials[{i}].type"),
                    "a credential of type \"oauth2\" needs an [oauth2] table saying how the host obtains its token",
                );
            }
            return;
        };
        match token_fields.as_slice() {
            [] => self.push(
                "oauth2",
                "declare one credential of type \"oauth2\": the connector reads the access token under its key",
            ),
            [_] => {}
            [_, rest @ ..] => {
                for i in rest {
                    self.push(format!("credentials[{i}].type"), "only one credential may be of type \"oauth2\"");
                }
            }
        }
        match (spec.grant, &spec.authorize_url) {
            (OAuthGrant::AuthorizationCode, None) => {
                self.push("oauth2.authorize_url", "is required by the authorization_code grant")
            }
            (OAuthGrant::ClientCredentials, Some(_)) => {
                self.push("oauth2.authorize_url", "the client_credentials grant has no authorization step; remove it")
            }
            _ => {}
        }
        if spec.grant == OAuthGrant::ClientCredentials && spec.pkce.is_some() {
            self.push("oauth2.pkce", "PKCE belongs to the authorization_code grant; remove it");
        }
        let urls = [
            ("authorize_url", spec.authorize_url.as_ref()),
            ("token_url", Some(&spec.token_url)),
            ("revoke_url", spec.revoke_url.as_ref()),
        ];
        for (name, url) in urls {
            if let Some(url) = url
                && let Err(reason) = check_endpoint(url, config)
            {
                self.push(format!("oauth2.{name}"), reason);
            }
        }
        let id_key = spec.client_id_key();
        match credentials.iter().find(|f| f.key == id_key) {
            None => self.push(
                "oauth2.client_id",
                format!("names no declared credential {id_key:?}; declare it (type text or secret) for the tenant's client id"),
            ),
            Some(f) if !matches!(f.kind, FieldType::Text | FieldType::Secret) => self.push(
                "oauth2.client_id",
                format!("credential {id_key:?} is of type {}; the client id must be text or secret", f.kind.as_str()),
            ),
            Some(_) => {}
        }
        let secret_key = spec.client_secret_key();
        match credentials.iter().find(|f| f.key == secret_key) {
            None if spec.client_secret.is_some() || spec.grant == OAuthGrant::ClientCredentials => self.push(
                "oauth2.client_secret",
                format!("names no declared credential {secret_key:?}; declare it with type secret"),
            ),
            Some(f) if f.kind != FieldType::Secret => self.push(
                "oauth2.client_secret",
                format!("credential {secret_key:?} is of type {}; the client secret must be a secret", f.kind.as_str()),
            ),
            _ => {}
        }
        for (i, scope) in spec.scopes.iter().enumerate() {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let ok = !scope.is_empty()
                && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !ok {
                self.push(
                    format!("oauth2.scopes[{i}]"),
                    format!("{scope:?} is not a scope token: printable ASCII without spaces, '\"' or '\\'"),
                );
            } else if spec.scope_separator.is_some() && scope.contains(spec.separator()) {
                self.push(
                    format!("oauth2.scopes[{i}]"),
                    format!("{scope:?} contains the scope separator {:?}", spec.separator()),
                );
            }
        }
        if let Some(sep) = &spec.scope_separator
            && (sep.is_empty() || sep.len() > 3 || sep.chars().any(|c| c.is_control()))
        {
            self.push(
                "oauth2.scope_separator",
                format!("{sep:?} is not a usable separator: 1 to 3 printable characters"),
            );
        }
        for (table, params, reserved) in [
            ("authorize_params", &spec.authorize_params, RESERVED_AUTHORIZE_PARAMS),
            ("token_params", &spec.token_params, RESERVED_TOKEN_PARAMS),
        ] {
            for key in params.keys() {
                if reserved.contains(&key.as_str()) {
                    self.push(format!("oauth2.{table}.{key}"), "is set by the host; remove it");
                } else if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    self.push(format!("oauth2.{table}"), format!("{key:?} is not a parameter name"));
                }
            }
        }
    }

    fn rate_limits(&mut self, limits: &[RateLimit]) {
        self.issues.extend(rate_limit_issues("rate_limits", limits));
    }

    fn webhook(&mut self, spec: &WebhookSpec, credentials: &[Field]) {
        match credentials.iter().find(|f| f.key == spec.secret) {
            None => self.push(
                "webhook.secret",
                format!(
                    "{:?} names no credentials field; declare it under [[credentials]] with type = \"secret\"",
                    spec.secret
                ),
            ),
            Some(f) if f.kind != FieldType::Secret => self.push(
                "webhook.secret",
                format!("credentials field {:?} has type {:?}; it must be \"secret\"", spec.secret, f.kind.as_str()),
            ),
            Some(_) => {}
        }
        if spec.scheme.is_generic() {
            self.generic_webhook(spec);
        } else {
            self.builtin_webhook(spec);
        }
        if spec.tolerance_secs == Some(0) {
            self.push("webhook.tolerance_secs", "must be greater than 0");
        }
    }

    /// `hmac` / `hmac-sha256`: the manifest describes the format.
    fn generic_webhook(&mut self, spec: &WebhookSpec) {
        let scheme = spec.scheme;
        match &spec.header {
            None => self.push("webhook.header", format!("is required by scheme \"{scheme}\"")),
            Some(h) if !is_header_name(h) => {
                self.push("webhook.header", format!("{h:?} is not a valid HTTP header name"))
            }
            Some(_) => {}
        }
        if spec.encoding.is_none() {
            self.push("webhook.encoding", format!("is required by scheme \"{scheme}\" (hex or base64)"));
        }
        if let Some(header) = &spec.timestamp_header
            && !is_header_name(header)
        {
            self.push("webhook.timestamp_header", format!("{header:?} is not a valid HTTP header name"));
        }
        if spec.tolerance_secs.is_some() && spec.timestamp_header.is_none() {
            self.push("webhook.tolerance_secs", "requires webhook.timestamp_header");
        }
        if let Some(sep) = &spec.separator {
            if sep.is_empty() {
                self.push("webhook.separator", "must not be empty");
            } else if spec.prefix.as_deref().is_some_and(|p| p.contains(sep.as_str())) {
                self.push("webhook.separator", format!("{sep:?} also occurs in webhook.prefix"));
            }
        }
        let content = match spec.signed_content.as_deref().map(SignedContent::parse) {
            None => SignedContent::body_only(),
            Some(Ok(content)) => content,
            Some(Err(reason)) => {
                self.push("webhook.signed_content", reason);
                return;
            }
        };
        match (content.uses_timestamp(), &spec.timestamp_header) {
            (true, None) => {
                self.push("webhook.signed_content", "uses {timestamp}, which requires webhook.timestamp_header")
            }
            // A timestamp that is not signed gives no replay protection. `hmac-sha256` manifests
            // predate templates and keep validating as they did.
            (false, Some(_)) if scheme == WebhookScheme::Hmac => self.push(
                "webhook.signed_content",
                "must contain {timestamp} when webhook.timestamp_header is set, or the timestamp is not authenticated",
            ),
            _ => {}
        }
    }

    /// Built-in schemes fix their headers and formats; only `secret` and `tolerance_secs` apply.
    fn builtin_webhook(&mut self, spec: &WebhookSpec) {
        let scheme = spec.scheme;
        let fixed = [
            ("header", spec.header.is_some()),
            ("prefix", spec.prefix.is_some()),
            ("encoding", spec.encoding.is_some()),
            ("timestamp_header", spec.timestamp_header.is_some()),
            ("signed_content", spec.signed_content.is_some()),
            ("key_encoding", spec.key_encoding.is_some()),
            ("separator", spec.separator.is_some()),
        ];
        for (name, set) in fixed {
            if set {
                self.push(
                    format!("webhook.{name}"),
                    format!("is fixed by scheme \"{scheme}\"; remove it (only the generic \"hmac\" scheme takes it)"),
                );
            }
        }
        if spec.tolerance_secs.is_some() && !scheme.has_builtin_timestamp() {
            self.push(
                "webhook.tolerance_secs",
                format!("scheme \"{scheme}\" signs no timestamp, so it has no replay window"),
            );
        }
    }
}

/// Whether `value` is acceptable for a field of type `kind`.
fn check_value(kind: FieldType, value: &str) -> Result<(), String> {
    match kind {
        FieldType::Number => match value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            _ => Err(format!("{value:?} is not a number")),
        },
        FieldType::Boolean => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("{value:?} is not a boolean (true or false)")),
        },
        FieldType::Url => match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
            Ok(_) => Err(format!("{value:?} is not an http(s) URL")),
            Err(e) => Err(format!("{value:?} is not a URL: {e}")),
        },
        FieldType::Text | FieldType::Secret | FieldType::Oauth2 => Ok(()),
    }
}

/// The problems of a list of rate limits at `path` (the manifest's `rate_limits`, or an
/// installation's `limits.rate_limits`, which the host checks with the same rules).
pub fn rate_limit_issues(path: &str, limits: &[RateLimit]) -> Vec<Issue> {
    let mut v = Validator::default();
    if limits.len() > MAX_RATE_LIMITS {
        v.push(path, format!("declares {} buckets; at most {MAX_RATE_LIMITS} are allowed", limits.len()));
    }
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for (i, l) in limits.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if l.requests == 0 {
            v.push(format!("{at}.requests"), "must be at least 1");
        }
        if l.per_seconds == 0 || l.per_seconds > MAX_RATE_WINDOW_SECS {
            v.push(format!("{at}.per_seconds"), format!("must be between 1 and {MAX_RATE_WINDOW_SECS}"));
        } else if let Some(first) = seen.insert(l.per_seconds, i) {
            v.push(format!("{at}.per_seconds"), format!("duplicate window (also {path}[{first}])"));
        }
        if l.burst == Some(0) {
            v.push(format!("{at}.burst"), "must be at least 1");
        }
    }
    v.issues
}

/// Checks an OAuth endpoint: an absolute http(s) URL without a fragment, or a template of
/// declared config fields.
fn check_endpoint(url: &str, config: &[Field]) -> Result<(), String> {
    if url.contains("{{") {
        return check_host(url, config);
    }
    match url::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") || !u.has_host() => {
            Err(format!("{url:?} is not an http(s) URL"))
        }
        Ok(u) if u.fragment().is_some() => Err(format!("{url:?} must not have a fragment")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{url:?} is not a URL: {e}")),
    }
}

/// Checks an `allowed_hosts` entry: no whitespace outside templates, and every template is a
/// well-formed `{{config.KEY}}` naming a declared text or url config field.
fn check_host(host: &str, config: &[Field]) -> Result<(), String> {
    let literal = |text: &str| {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(format!("{host:?} must not contain whitespace"))
        } else if text.contains("}}") {
            Err(format!("{host:?} has a \"}}}}\" without a matching \"{{{{\""))
        } else {
            Ok(())
        }
    };
    let mut rest = host;
    while let Some(start) = rest.find("{{") {
        literal(&rest[..start])?;
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("{host:?} has an unterminated \"{{{{\""))?;
        let expr = after[..end].trim();
        let key = expr.strip_prefix("config.").ok_or_else(|| {
            format!("unknown template {{{{{expr}}}}} in {host:?}; only {{{{config.KEY}}}} is supported")
        })?;
        match config.iter().find(|f| f.key == key) {
            None => return Err(format!("template {{{{config.{key}}}}} names no declared config field")),
            Some(f) if !matches!(f.kind, FieldType::Text | FieldType::Url) => {
                return Err(format!(
                    "template {{{{config.{key}}}}} names a {} field; only text and url fields can name hosts",
                    f.kind.as_str()
                ));
            }
            Some(_) => {}
        }
        rest = &after[end + 2..];
    }
    literal(rest)
}
