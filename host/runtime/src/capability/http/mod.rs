//! `http` capability: outbound HTTP for connectors, deny-by-default.
//!
//! Every request (and every redirect hop) is checked against the installation's
//! [`EgressPolicy`] before connecting; the address actually connected to is checked against the
//! operator's [`NetworkPolicy`] by the client's resolver. `{{secret:NAME}}` placeholders in header
//! values are filled in by the host after the destination check, so secrets only travel to allowed
//! destinations and never enter the guest; placeholders or secret values in a URL are refused.
//! Requests have timeouts (bounded by the call's own deadline), a per-call count limit and a
//! response-size cap, and each is recorded in the operation log as method, host, path (no query),
//! status, bytes and milliseconds.

pub mod fixtures;
pub mod network;
pub mod policy;

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use url::{Host, Url};

pub use network::{BlockedAddress, Cidr, NetworkPolicy};
pub use policy::{EgressPolicy, PatternError};

use patchbay_core::log::{Level, Source};
use wasmtime::component::Linker;

use super::credentials::CredentialSource;
use super::log::{LogBuffer, Scrubber};
use crate::bindings::connector::patchbay::connector::http as wit;
use crate::egress::{Egress, EgressError};
use wit::{HttpError, Method, Request, Response};

/// Per-call HTTP bounds.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Most requests one call may send (a request and the redirects it follows count once).
    pub max_requests_per_call: u32,
    /// Timeout of a request that names none.
    pub default_timeout: Duration,
    /// Longest timeout a request may ask for (the call's deadline still applies).
    pub max_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest response body, in bytes.
    pub max_response_bytes: usize,
    /// Most redirects followed for one request.
    pub max_redirects: u8,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_requests_per_call: 50,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(60),
            max_request_bytes: 8 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

/// How long a 429 without a usable `Retry-After` pauses the provider budget.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A `Retry-After` value (RFC 9110 §10.2.3): delay seconds or an HTTP date.
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at_ms = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(Duration::from_millis(u64::try_from(at_ms - patchbay_core::now_ms()).unwrap_or(0)))
}

/// The provider budget a call's requests draw from (the services' token buckets): told when the
/// provider answers 429, so every caller of that provider waits, not only the one refused.
pub trait EgressBudget: Send + Sync {
    /// The provider answered 429; it asked for `retry_after` (or `DEFAULT_RETRY_AFTER`).
    fn throttled(&self, retry_after: Duration);
}

/// What the `http` host functions see: the installation's policy and secrets, the runtime's
/// client and network policy, and the call's budget and log.
pub(crate) struct HttpView<'a> {
    /// The host's guarded way out (network policy, resolution, literals).
    pub egress: &'a Egress,
    /// The installation's allowed destinations.
    pub allowed: &'a EgressPolicy,
    /// Where `{{secret:NAME}}` header placeholders are filled from.
    pub credentials: &'a dyn CredentialSource,
    pub scrubber: &'a Scrubber,
    pub limits: &'a HttpLimits,
    /// The call's wall-clock deadline; no request outlives it.
    pub deadline: Instant,
    /// Requests made so far in this call.
    pub requests: &'a mut u32,
    /// The provider budget the installation's calls draw from; a 429 pauses it.
    pub budget: Option<&'a dyn EgressBudget>,
    pub log: &'a mut LogBuffer,
    /// When set, requests are answered from these fixtures, never from the network.
    pub fixtures: Option<&'a fixtures::Fixtures>,
}

crate::capability::view_data!(HttpData => HttpView);

/// Links the `http` import; `view` gives the host functions the call's [`HttpView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HttpView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HttpData>(linker, view)
}

const PLACEHOLDER: &str = "{{secret:";

fn method_of(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Options => reqwest::Method::OPTIONS,
    }
}

/// Substitutes `{{secret:NAME}}` placeholders in a header value; also returns the secret values
/// it filled in.
fn fill_secrets<'s>(value: &str, secrets: &'s dyn CredentialSource) -> Result<(String, Vec<&'s str>), String> {
    if !value.contains(PLACEHOLDER) {
        return Ok((value.to_string(), Vec::new()));
    }
    let mut used = Vec::new();
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(PLACEHOLDER) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PLACEHOLDER.len()..];
        let end = after.find("}}").ok_or("unterminated {{secret:...}} placeholder")?;
        let name = after[..end].trim();
        let secret =
            secrets.secret(name).ok_or_else(|| format!("no secret named {name:?} is set for this installation"))?;
        out.push_str(secret.expose());
        used.push(secret.expose());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok((out, used))
}

/// Headers a connector may not set: the host owns framing and the destination.
fn is_forbidden_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "upgrade"
            | "te"
            | "trailer"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-connection"
    )
}

struct Prepared {
    /// (name, value after substitution, carried a secret)
    headers: Vec<(HeaderName, HeaderValue, bool)>,
    /// Scrubs the secrets filled into this request from its response, so a destination that
    /// reflects request headers cannot hand them to the guest.
    reflected: Option<Scrubber>,
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

fn log_target(url: &Url) -> (String, String) {
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    (host, url.path().to_string())
}

fn egress_error(e: EgressError) -> HttpError {
    match e {
        EgressError::Invalid(m) => HttpError::InvalidRequest(m),
        EgressError::Blocked(b) => HttpError::AddressBlocked(b.to_string()),
    }
}

fn error_name(e: &HttpError) -> &'static str {
    match e {
        HttpError::DestinationNotAllowed(_) => "destination-not-allowed",
        HttpError::AddressBlocked(_) => "address-blocked",
        HttpError::InvalidRequest(_) => "invalid-request",
        HttpError::Timeout => "timeout",
        HttpError::ResponseTooLarge(_) => "response-too-large",
        HttpError::ConnectionFailed(_) => "connection-failed",
        HttpError::TooManyRequests(_) => "too-many-requests",
    }
}

/// Maps a client error to the WIT error. The URL is dropped from the message: the request record
/// already names host and path, and a query string may carry tokens.
fn map_reqwest_error(e: reqwest::Error) -> HttpError {
    let e = e.without_url();
    let e = &e;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BlockedAddress>() {
            return HttpError::AddressBlocked(b.to_string());
        }
        src = s.source();
    }
    if e.is_timeout() {
        return HttpError::Timeout;
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    HttpError::ConnectionFailed(msg)
}

impl HttpView<'_> {
    fn record(&mut self, method: &str, url: &Url, outcome: Result<(u16, usize), &HttpError>, started: Instant) {
        let (host, path) = log_target(url);
        let ms = started.elapsed().as_millis().to_string();
        let mut fields = vec![
            ("method".to_string(), method.to_string()),
            ("host".into(), host.clone()),
            ("path".into(), path.clone()),
        ];
        match outcome {
            Ok((status, bytes)) => {
                fields.push(("status".into(), status.to_string()));
                fields.push(("bytes".into(), bytes.to_string()));
                fields.push(("ms".into(), ms));
                let level = if status >= 500 { Level::Warn } else { Level::Info };
                self.log.push(
                    self.scrubber,
                    level,
                    Source::Http,
                    &format!("{method} {host}{path} -> {status}"),
                    fields,
                );
            }
            Err(e) => {
                fields.push(("error".into(), error_name(e).to_string()));
                fields.push(("ms".into(), ms));
                let detail = match e {
                    HttpError::DestinationNotAllowed(m)
                    | HttpError::AddressBlocked(m)
                    | HttpError::InvalidRequest(m)
                    | HttpError::ConnectionFailed(m) => m.clone(),
                    HttpError::Timeout => "timed out".into(),
                    HttpError::ResponseTooLarge(n) => format!("response larger than {n} bytes"),
                    HttpError::TooManyRequests(n) => format!("more than {n} requests in one call"),
                };
                self.log.push(
                    self.scrubber,
                    Level::Warn,
                    Source::Http,
                    &format!("{method} {host}{path} failed: {detail}"),
                    fields,
                );
            }
        }
    }

    /// Records a failed request (or hop) and hands the error back.
    fn fail(&mut self, method: &reqwest::Method, url: &Url, started: Instant, e: HttpError) -> HttpError {
        self.record(method.as_str(), url, Err(&e), started);
        e
    }

    /// Validates the URL and destination of one hop.
    fn check_url(&self, url: &Url) -> Result<(), HttpError> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HttpError::InvalidRequest("URLs may not carry user info; use headers".into()));
        }
        let raw = url.as_str();
        let decoded = percent_decode(raw);
        if raw.contains(PLACEHOLDER) || decoded.contains(PLACEHOLDER) {
            return Err(HttpError::InvalidRequest(
                "secret placeholders are only substituted in header values, not in URLs".into(),
            ));
        }
        if self.scrubber.contains_secret(raw) || self.scrubber.contains_secret(&decoded) {
            return Err(HttpError::InvalidRequest(
                "the URL contains a secret value of this installation; send secrets in headers".into(),
            ));
        }
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(HttpError::InvalidRequest(format!("unsupported scheme {:?}", url.scheme())));
        }
        self.allowed.check(url).map_err(HttpError::DestinationNotAllowed)?;
        self.egress.check(url).map_err(egress_error)
    }

    fn prepare(&self, req: &Request) -> Result<Prepared, HttpError> {
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut injected = Vec::new();
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("invalid header name {name:?}")))?;
            if is_forbidden_header(&name) {
                return Err(HttpError::InvalidRequest(format!("header {name} is set by the host")));
            }
            let (filled, used) = fill_secrets(value, self.credentials).map_err(HttpError::InvalidRequest)?;
            let value = HeaderValue::from_str(&filled)
                .map_err(|_| HttpError::InvalidRequest(format!("invalid value for header {name}")))?;
            headers.push((name, value, !used.is_empty()));
            injected.extend(used);
        }
        if req.body.as_ref().is_some_and(|b| b.len() > self.limits.max_request_bytes) {
            return Err(HttpError::InvalidRequest(format!(
                "request body larger than {} bytes",
                self.limits.max_request_bytes
            )));
        }
        let reflected = if injected.is_empty() { None } else { Some(Scrubber::new(injected)) };
        Ok(Prepared { headers, reflected })
    }

    async fn exchange(&mut self, req: Request) -> Result<Response, HttpError> {
        if *self.requests >= self.limits.max_requests_per_call {
            return Err(HttpError::TooManyRequests(self.limits.max_requests_per_call));
        }
        *self.requests += 1;
        let started = Instant::now();
        let method = method_of(req.method);
        let mut url = match Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => {
                let err = HttpError::InvalidRequest(format!("invalid URL: {e}"));
                self.log.push(
                    self.scrubber,
                    Level::Warn,
                    Source::Http,
                    &format!("{method} (invalid URL) failed: {e}"),
                    vec![],
                );
                return Err(err);
            }
        };
        url.set_fragment(None);
        if let Err(e) = self.check_url(&url) {
            return Err(self.fail(&method, &url, started, e));
        }
        let prepared = match self.prepare(&req) {
            Ok(p) => p,
            Err(e) => return Err(self.fail(&method, &url, started, e)),
        };
        if let Some(fixtures) = self.fixtures {
            return self.answer_from(fixtures, &method, &url, &req, started);
        }
        let requested =
            req.timeout_ms.map(|ms| Duration::from_millis(ms.into())).unwrap_or(self.limits.default_timeout);
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = requested.min(self.limits.max_timeout).min(remaining);

        let origin = url.clone();
        let mut method = method;
        let mut body = req.body;
        let mut hops = 0u8;
        loop {
            let hop_started = Instant::now();
            let mut builder = match self.egress.request(method.clone(), url.clone()) {
                Ok(b) => b,
                Err(e) => return Err(self.fail(&method, &url, hop_started, egress_error(e))),
            };
            let cross_origin = !same_origin(&origin, &url);
            for (name, value, secret) in &prepared.headers {
                // On a redirect to another origin, credentials stay behind (as browsers do).
                if cross_origin && (*secret || matches!(name.as_str(), "authorization" | "cookie")) {
                    continue;
                }
                builder = builder.header(name.clone(), value.clone());
            }
            if let Some(b) = &body {
                builder = builder.body(b.clone());
            }
            let remaining = timeout.saturating_sub(started.elapsed());
            let result = tokio::time::timeout(remaining, self.read(builder)).await.unwrap_or(Err(HttpError::Timeout));
            let (status, headers, bytes) = match result {
                Ok(r) => r,
                Err(e) => return Err(self.fail(&method, &url, hop_started, e)),
            };
            self.record(method.as_str(), &url, Ok((status, bytes.len())), hop_started);
            if status == 429
                && let Some(budget) = self.budget
            {
                let retry_after = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| retry_after(v))
                    .unwrap_or(DEFAULT_RETRY_AFTER);
                budget.throttled(retry_after);
            }
            let location = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.clone());
            let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            match (req.follow_redirects && is_redirect, location) {
                (true, Some(loc)) => {
                    hops += 1;
                    if hops > self.limits.max_redirects {
                        let e = HttpError::InvalidRequest(format!("more than {} redirects", self.limits.max_redirects));
                        return Err(self.fail(&method, &url, hop_started, e));
                    }
                    let next = match url.join(&loc) {
                        Ok(next) => next,
                        Err(e) => {
                            let e = HttpError::InvalidRequest(format!("invalid redirect location: {e}"));
                            return Err(self.fail(&method, &url, hop_started, e));
                        }
                    };
                    if let Err(e) = self.check_url(&next) {
                        return Err(self.fail(&method, &next, Instant::now(), e));
                    }
                    if status == 303 || ((status == 301 || status == 302) && method == reqwest::Method::POST) {
                        method = reqwest::Method::GET;
                        body = None;
                    }
                    url = next;
                }
                _ => {
                    let (headers, body) = match &prepared.reflected {
                        Some(scrub) => (
                            headers.into_iter().map(|(k, v)| (k, scrub.scrub(&v))).collect(),
                            scrub.scrub_bytes(&bytes).unwrap_or(bytes),
                        ),
                        None => (headers, bytes),
                    };
                    return Ok(Response { status, headers, body });
                }
            }
        }
    }

    /// Answers a request that passed every check from the fixtures (test mode): the first that
    /// matches, else `connection-failed` naming the request. Never the network.
    fn answer_from(
        &mut self,
        fixtures: &fixtures::Fixtures,
        method: &reqwest::Method,
        url: &Url,
        req: &Request,
        started: Instant,
    ) -> Result<Response, HttpError> {
        let Some(f) = fixtures.find(method.as_str(), url.as_str(), &req.headers, req.body.as_deref()) else {
            let e = HttpError::ConnectionFailed(format!(
                "test mode: no fixture matches {method} {}{} (the network is never used in test mode)",
                url.host_str().unwrap_or_default(),
                url.path()
            ));
            return Err(self.fail(method, url, started, e));
        };
        let body = f.response.body_bytes();
        if body.len() > self.limits.max_response_bytes {
            let e = HttpError::ResponseTooLarge(self.limits.max_response_bytes as u64);
            return Err(self.fail(method, url, started, e));
        }
        let (host, path) = log_target(url);
        let status = f.response.status;
        let name = f.name.clone().unwrap_or_else(|| "unnamed".into());
        self.log.push(
            self.scrubber,
            Level::Info,
            Source::Http,
            &format!("{method} {host}{path} -> {status} (fixture {name})"),
            vec![
                ("method".into(), method.to_string()),
                ("host".into(), host),
                ("path".into(), path),
                ("status".into(), status.to_string()),
                ("bytes".into(), body.len().to_string()),
                ("mode".into(), "test".into()),
                ("fixture".into(), name),
            ],
        );
        Ok(Response { status, headers: f.response.headers.clone(), body })
    }

    async fn read(&self, builder: reqwest::RequestBuilder) -> Result<(u16, Vec<(String, String)>, Vec<u8>), HttpError> {
        let cap = self.limits.max_response_bytes;
        let mut resp = builder.send().await.map_err(map_reqwest_error)?;
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(HttpError::ResponseTooLarge(cap as u64));
        }
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(map_reqwest_error)? {
            if body.len() + chunk.len() > cap {
                return Err(HttpError::ResponseTooLarge(cap as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }
}

/// The URL with `%XX` escapes and form-encoded `+` decoded, to find secrets hidden by encoding.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

impl wit::Host for HttpView<'_> {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        Ok(self.exchange(req).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::credentials::Secrets;

    #[test]
    fn placeholders_are_filled_from_secrets() {
        let s: Secrets = [("api_key", "sk_123")].into_iter().collect();
        assert_eq!(
            fill_secrets("Bearer {{secret:api_key}}", &s).unwrap(),
            ("Bearer sk_123".to_string(), vec!["sk_123"])
        );
        assert_eq!(fill_secrets("plain", &s).unwrap(), ("plain".to_string(), vec![]));
        assert!(fill_secrets("{{secret:nope}}", &s).unwrap_err().contains("nope"));
        assert!(fill_secrets("{{secret:api_key", &s).is_err());
    }

    #[test]
    fn percent_decoding_catches_encoded_placeholders() {
        assert!(percent_decode("https://x/?a=%7B%7Bsecret:k%7D%7D").contains(PLACEHOLDER));
    }
}
