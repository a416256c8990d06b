//! Egress destinations a connector may reach, from its manifest's `allowed_hosts`.
//!
//! Pattern syntax (one per entry):
//! - `https://api.stripe.com` — exact host, scheme and default port (443 for https, 80 for http).
//! - `https://*.slack.com` — any subdomain (one or more labels) of `slack.com`, not the apex.
//! - `https://api.example.com:8443`, `http://127.0.0.1:*` — explicit or any port.
//! - `https://hooks.example.com/services/` — additionally restricts the path prefix.
//! - `api.stripe.com` — no scheme means `https`.
//! - `{{config.base_url}}`, `https://{{config.shop}}.myshopify.com` — templates filled from the
//!   installation's configuration. A template fills a value, not a URL: one that opens the pattern
//!   takes a whole origin (only its origin counts; a path in it is ignored), one that is the whole
//!   host takes a host name, one inside a host takes a single label, and others a port or one path
//!   segment; a value that does not fit (`evil.example/?` for a label) is refused, naming the key.
//!   A template whose key is not configured allows nothing.
//!
//! Matching is on the parsed URL (lower-cased, IDNA-normalised host, trailing dot ignored). There is
//! no implicit allowance: an empty policy denies everything.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Subdomains(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Exact(u16),
    Any,
}

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
    path_prefix: Option<String>,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Subdomains(s) => format!("*{s}"),
            HostPattern::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            HostPattern::Ip(ip) => ip.to_string(),
        };
        let port = match self.port {
            PortPattern::Any => ":*".to_string(),
            PortPattern::Exact(p) if Some(p) == default_port(&self.scheme) => String::new(),
            PortPattern::Exact(p) => format!(":{p}"),
        };
        write!(f, "{}://{host}{port}{}", self.scheme, self.path_prefix.as_deref().unwrap_or(""))
    }
}

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed host {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

fn normalize_host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

impl Destination {
    /// Parses one pattern that has no templates left in it.
    pub(crate) fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError { pattern: pattern.to_string(), reason: reason.to_string() };
        let p = pattern.trim();
        if p.is_empty() {
            return Err(err("empty"));
        }
        let (scheme, rest) = match p.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("https".to_string(), p),
        };
        if scheme != "https" && scheme != "http" {
            return Err(err("scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(err("user info is not allowed"));
        }
        if path.contains('?') || path.contains('#') || path.contains('*') {
            return Err(err("path may not contain a query, fragment or wildcard"));
        }
        // Split the port off, minding IPv6 literals.
        let (host_part, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let end = stripped.find(']').ok_or_else(|| err("unterminated IPv6 literal"))?;
            let after = &stripped[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(err("unexpected text after IPv6 literal")),
            };
            (&authority[..end + 2], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => PortPattern::Exact(default_port(&scheme).ok_or_else(|| err("unknown scheme"))?),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| err("port must be a number or *"))?),
        };
        let host = if let Some(suffix) = host_part.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(err("only a leading `*.` wildcard is supported"));
            }
            let parsed = Url::parse(&format!("{scheme}://{suffix}/")).map_err(|_| err("invalid host"))?;
            match parsed.host() {
                Some(Host::Domain(d)) if d.contains('.') => HostPattern::Subdomains(format!(".{}", normalize_host(d))),
                Some(Host::Domain(_)) => return Err(err("a wildcard must cover a domain with at least two labels")),
                _ => return Err(err("wildcards apply to domain names only")),
            }
        } else {
            if host_part.contains('*') {
                return Err(err("only a leading `*.` wildcard is supported"));
            }
            let parsed = Url::parse(&format!("{scheme}://{host_part}/")).map_err(|_| err("invalid host"))?;
            match parsed.host() {
                Some(Host::Domain(d)) => HostPattern::Exact(normalize_host(d)),
                Some(Host::Ipv4(ip)) => HostPattern::Ip(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => HostPattern::Ip(IpAddr::V6(ip)),
                None => return Err(err("missing host")),
            }
        };
        let path_prefix = match path {
            "" | "/" => None,
            p => Some(p.to_string()),
        };
        Ok(Self { scheme, host, port, path_prefix })
    }

    /// Whether `url` falls inside this destination.
    pub(crate) fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(port) = url.port_or_known_default() else { return false };
        if let PortPattern::Exact(p) = self.port
            && p != port
        {
            return false;
        }
        let host_ok = match (&self.host, url.host()) {
            (HostPattern::Exact(h), Some(Host::Domain(d))) => normalize_host(d) == *h,
            (HostPattern::Subdomains(s), Some(Host::Domain(d))) => {
                let d = normalize_host(d);
                d.len() > s.len() && d.ends_with(s.as_str())
            }
            (HostPattern::Ip(ip), Some(Host::Ipv4(v4))) => *ip == IpAddr::V4(v4),
            (HostPattern::Ip(ip), Some(Host::Ipv6(v6))) => *ip == IpAddr::V6(v6),
            _ => false,
        };
        if !host_ok {
            return false;
        }
        match &self.path_prefix {
            None => true,
            Some(prefix) => {
                let path = url.path();
                // A prefix without a trailing slash matches whole segments only.
                path == prefix
                    || path.starts_with(prefix.as_str())
                        && (prefix.ends_with('/') || path[prefix.len()..].starts_with('/'))
            }
        }
    }
}

/// The set of destinations one installation may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allowed: Vec<Destination>,
}

/// Outcome of building a policy: the policy plus notes about patterns that allow nothing.
#[derive(Debug)]
pub struct BuiltPolicy {
    /// The destinations the patterns allow.
    pub policy: EgressPolicy,
    /// Templates whose configuration key is unset (they allow nothing).
    pub unresolved: Vec<String>,
}

impl EgressPolicy {
    /// A policy that denies every destination.
    #[cfg(test)]
    pub(crate) fn deny_all() -> Self {
        Self::default()
    }

    /// Builds a policy from patterns without templates.
    #[cfg(test)]
    pub(crate) fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        Ok(Self::build(patterns, &BTreeMap::new())?.policy)
    }

    /// Builds the policy from manifest patterns, filling `{{config.KEY}}` templates from `config`.
    pub fn build<S: AsRef<str>>(
        patterns: &[S],
        config: &BTreeMap<String, String>,
    ) -> Result<BuiltPolicy, PatternError> {
        let mut allowed = Vec::new();
        let mut unresolved = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref();
            match fill_template(raw, config)? {
                Template::Plain => allowed.push(Destination::parse(raw)?),
                Template::Filled(value) if opens_with_origin(raw) => allowed.push(origin_of(raw, &value)?),
                Template::Filled(value) => allowed.push(Destination::parse(&value)?),
                Template::Missing(key) => unresolved.push(format!("{raw} (config key {key:?} is not set)")),
            }
        }
        Ok(BuiltPolicy { policy: Self { allowed }, unresolved })
    }

    /// `Ok` when some destination allows `url`, else a reason naming what is allowed.
    pub(crate) fn check(&self, url: &Url) -> Result<(), String> {
        if self.allowed.iter().any(|d| d.matches(url)) {
            return Ok(());
        }
        let host = url.host_str().unwrap_or("");
        let port = url.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
        if self.allowed.is_empty() {
            Err(format!("{}://{host}{port} is not allowed: this connector declares no allowed hosts", url.scheme()))
        } else {
            let list = self.allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            Err(format!(
                "{}://{host}{port}{} is not an allowed destination (allowed: {list})",
                url.scheme(),
                url.path()
            ))
        }
    }
}

/// A `{{config.KEY}}` template after filling.
pub enum Template {
    /// No template in it.
    Plain,
    /// The templates filled in: the resulting pattern.
    Filled(String),
    /// The config value of this key is not set.
    Missing(String),
}

/// Where a `{{config.KEY}}` template stands in a URL pattern, which decides what its value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The template opens the pattern and a path or nothing follows: the value is a whole origin
    /// (`https://shop.example.com:8443`, a path after it allowed, or a bare host).
    Origin,
    /// The template is the whole host between `scheme://` and a port, path or the end: a host name.
    Host,
    /// The template is part of the host (`https://{{config.shop}}.myshopify.com`): one label.
    Label,
    /// The template is the port.
    Port,
    /// The template is in the path: one path segment.
    Segment,
}

impl Slot {
    fn of(before: &str, after: &str) -> Self {
        let ends_authority = |s: &str| s.is_empty() || s.starts_with(['/', ':']);
        if before.is_empty() {
            return if after.is_empty() || after.starts_with('/') { Slot::Origin } else { Slot::Label };
        }
        let authority = match before.find("://") {
            Some(i) => &before[i + 3..],
            None => before,
        };
        if authority.contains('/') {
            Slot::Segment
        } else if authority.ends_with(':') && !authority.starts_with('[') {
            Slot::Port
        } else if authority.is_empty() && ends_authority(after) {
            Slot::Host
        } else {
            Slot::Label
        }
    }

    /// Checks a configuration value for this slot; the error says what the slot accepts.
    fn check(self, value: &str) -> Result<(), String> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        match self {
            Slot::Label if label_ok(value) => Ok(()),
            Slot::Label => Err("must be a single host label (letters, digits and inner hyphens, at most 63)".into()),
            Slot::Host if value.len() <= 253 && value.trim_end_matches('.').split('.').all(label_ok) => Ok(()),
            Slot::Host => {
                Err("must be a host name (labels of letters, digits and inner hyphens, joined by dots)".into())
            }
            Slot::Port if value.parse::<u16>().is_ok_and(|p| p > 0) && value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(())
            }
            Slot::Port => Err("must be a port number from 1 to 65535".into()),
            Slot::Segment
                if value != "."
                    && value != ".."
                    && value.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')) =>
            {
                Ok(())
            }
            Slot::Segment => Err("must be a single path segment (letters, digits, '-', '.', '_', '~')".into()),
            Slot::Origin => {
                if value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '*')) {
                    return Err("must be an origin such as https://host.example.com (no spaces or backslashes)".into());
                }
                let with_scheme = if value.contains("://") { value.to_string() } else { format!("https://{value}") };
                let url = Url::parse(&with_scheme)
                    .map_err(|e| format!("must be an origin such as https://host.example.com: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err("must be an http or https origin".into());
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err("may not carry user info".into());
                }
                if url.query().is_some() || url.fragment().is_some() || value.contains(['?', '#']) {
                    return Err("may not carry a query or fragment".into());
                }
                if url.host().is_none() {
                    return Err("has no host".into());
                }
                Ok(())
            }
        }
    }
}

/// Fills the `{{config.KEY}}` templates of `raw` (manifest destinations and OAuth endpoints).
/// A template fills a value, never a URL: where it stands decides what the value may be — a whole
/// origin when the template opens the pattern, a host name when it is the whole host, one host
/// label when it is part of one, a port, or one path segment — and anything else is refused with
/// an error naming the key. Values are trimmed, trailing slashes of origins included, so
/// `{{config.base_url}}/path` does not double the slash.
pub fn fill_template(raw: &str, config: &BTreeMap<String, String>) -> Result<Template, PatternError> {
    if !raw.contains("{{") {
        return Ok(Template::Plain);
    }
    let err = |reason: String| PatternError { pattern: raw.to_string(), reason };
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| err("unterminated `{{`".into()))?;
        let expr = after[..end].trim();
        let key = expr
            .strip_prefix("config.")
            .ok_or_else(|| err(format!("unknown template {expr:?}; use {{{{config.KEY}}}}")))?;
        rest = &after[end + 2..];
        let Some(value) = config.get(key) else { return Ok(Template::Missing(key.to_string())) };
        let slot = Slot::of(&out, rest.split("{{").next().unwrap_or(""));
        let value = value.trim();
        let value = if slot == Slot::Origin { value.trim_end_matches('/') } else { value };
        if value.is_empty() || value.contains("{{") {
            return Err(err(format!("config value {key:?} may not be empty or contain templates")));
        }
        slot.check(value).map_err(|why| err(format!("config value {key:?} {why}")))?;
        out.push_str(value);
    }
    out.push_str(rest);
    Ok(Template::Filled(out))
}

/// Whether `raw` opens with a template that stands for the whole origin.
fn opens_with_origin(raw: &str) -> bool {
    let Some(after) = raw.trim().strip_prefix("{{") else { return false };
    after.find("}}").is_some_and(|end| {
        let rest = &after[end + 2..];
        rest.is_empty() || rest.starts_with('/')
    })
}

/// For a filled-in template only the origin counts: a configured `https://x.example.com/api/v2`
/// allows `https://x.example.com`.
fn origin_of(raw: &str, filled: &str) -> Result<Destination, PatternError> {
    let err = |reason: &str| PatternError { pattern: raw.to_string(), reason: reason.to_string() };
    let with_scheme = if filled.contains("://") { filled.to_string() } else { format!("https://{filled}") };
    let url = Url::parse(&with_scheme).map_err(|e| err(&format!("filled-in value is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err("filled-in value may not carry user info"));
    }
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => return Err(err("filled-in value has no host")),
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Destination::parse(&format!("{}://{host}{port}", url.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn policy(p: &[&str]) -> EgressPolicy {
        EgressPolicy::from_patterns(p).unwrap()
    }

    #[test]
    fn exact_host_scheme_and_default_port() {
        let p = policy(&["https://api.stripe.com"]);
        assert!(p.check(&url("https://api.stripe.com/v1/charges")).is_ok());
        assert!(p.check(&url("https://API.Stripe.com./v1")).is_ok());
        assert!(p.check(&url("http://api.stripe.com/v1")).is_err());
        assert!(p.check(&url("https://api.stripe.com:8443/v1")).is_err());
        assert!(p.check(&url("https://evil.com/?https://api.stripe.com")).is_err());
        assert!(p.check(&url("https://api.stripe.com.evil.com/")).is_err());
    }

    #[test]
    fn bare_host_means_https() {
        let p = policy(&["api.sendgrid.com"]);
        assert!(p.check(&url("https://api.sendgrid.com/v3/mail/send")).is_ok());
        assert!(p.check(&url("http://api.sendgrid.com/")).is_err());
    }

    #[test]
    fn wildcard_matches_subdomains_not_apex() {
        let p = policy(&["https://*.slack.com"]);
        assert!(p.check(&url("https://hooks.slack.com/services/x")).is_ok());
        assert!(p.check(&url("https://a.b.slack.com/")).is_ok());
        assert!(p.check(&url("https://slack.com/")).is_err());
        assert!(p.check(&url("https://evilslack.com/")).is_err());
        assert!(p.check(&url("https://slack.com.evil.io/")).is_err());
    }

    #[test]
    fn ports_and_ip_literals() {
        let p = policy(&["http://127.0.0.1:*", "https://[::1]:8443"]);
        assert!(p.check(&url("http://127.0.0.1:9999/x")).is_ok());
        assert!(p.check(&url("http://127.0.0.2:9999/x")).is_err());
        assert!(p.check(&url("https://[::1]:8443/")).is_ok());
        assert!(p.check(&url("https://[::1]/")).is_err());
    }

    #[test]
    fn path_prefix_matches_whole_segments() {
        let p = policy(&["https://hooks.example.com/services"]);
        assert!(p.check(&url("https://hooks.example.com/services")).is_ok());
        assert!(p.check(&url("https://hooks.example.com/services/T1/B2")).is_ok());
        assert!(p.check(&url("https://hooks.example.com/services-admin")).is_err());
        assert!(p.check(&url("https://hooks.example.com/")).is_err());
    }

    #[test]
    fn templates_fill_from_config_origin_only() {
        let cfg = BTreeMap::from([
            ("base_url".to_string(), "https://acme.example.com:8443/api/v2".to_string()),
            ("shop".to_string(), "acme".to_string()),
        ]);
        let built = EgressPolicy::build(
            &["{{config.base_url}}", "https://{{config.shop}}.myshopify.com", "{{config.missing}}"],
            &cfg,
        )
        .unwrap();
        let p = built.policy;
        assert!(p.check(&url("https://acme.example.com:8443/other")).is_ok());
        assert!(p.check(&url("https://acme.example.com/other")).is_err());
        assert!(p.check(&url("https://acme.myshopify.com/admin")).is_ok());
        assert!(p.check(&url("https://other.myshopify.com/admin")).is_err());
        assert_eq!(built.unresolved.len(), 1);
    }

    #[test]
    fn a_config_value_fills_a_value_not_a_url() {
        let build = |pattern: &str, value: &str| {
            EgressPolicy::build(&[pattern], &BTreeMap::from([("k".to_string(), value.to_string())]))
        };
        // The finding: a label position cannot take another origin.
        for bad in [
            "evil.example/?",
            "evil.example#",
            "evil.example",
            "a/b",
            "a@b",
            "a:1",
            "a?b",
            "-a",
            "",
            " ",
            "a b",
            "a\\b",
        ] {
            let e = build("https://{{config.k}}.myshopify.com", bad).expect_err(bad);
            assert!(e.reason.contains("\"k\""), "{bad}: {e}");
        }
        let p = build("https://{{config.k}}.myshopify.com", "acme-shop").unwrap().policy;
        assert!(p.check(&url("https://acme-shop.myshopify.com/admin")).is_ok());
        assert!(p.check(&url("https://evil.example/")).is_err());
        // A whole host takes a host name, not a URL.
        assert!(build("https://{{config.k}}/api", "api.example.com").is_ok());
        for bad in ["api.example.com/x", "evil.example?", "user@evil.example", "evil.example:81"] {
            assert!(build("https://{{config.k}}/api", bad).is_err(), "{bad}");
        }
        // A port takes a number; a path segment takes one segment.
        assert!(build("https://api.example.com:{{config.k}}", "8443").is_ok());
        for bad in ["0", "65536", "80/evil", "+80"] {
            assert!(build("https://api.example.com:{{config.k}}", bad).is_err(), "{bad}");
        }
        assert!(build("https://api.example.com/{{config.k}}/", "acct_1").is_ok());
        for bad in ["..", "a/../b", "a?b", "%2e%2e"] {
            assert!(build("https://api.example.com/{{config.k}}/", bad).is_err(), "{bad}");
        }
        // A whole origin takes an origin, but no query, fragment, user info or other scheme.
        assert!(build("{{config.k}}", "https://acme.example.com:8443/api").is_ok());
        for bad in [
            "https://a.example?x",
            "https://a.example#x",
            "ftp://a.example",
            "https://u:p@a.example",
            "https://a.example\\@b",
        ] {
            assert!(build("{{config.k}}", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_values_cannot_widen_the_policy() {
        let cfg = BTreeMap::from([("shop".to_string(), "*".to_string())]);
        assert!(EgressPolicy::build(&["https://{{config.shop}}.myshopify.com"], &cfg).is_err());
        let cfg = BTreeMap::from([("u".to_string(), "https://user:pw@x.example.com".to_string())]);
        assert!(EgressPolicy::build(&["{{config.u}}"], &cfg).is_err());
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "ftp://x.com",
            "https://a.*.com",
            "https://*",
            "https://*.com",
            "https://u@x.com",
            "https://x.com:http",
            "https://x.com/a?b",
            "{{secret.x}}",
        ] {
            assert!(EgressPolicy::from_patterns(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_policy_denies_with_clear_reason() {
        let e = EgressPolicy::deny_all().check(&url("https://x.com")).unwrap_err();
        assert!(e.contains("declares no allowed hosts"));
    }
}
