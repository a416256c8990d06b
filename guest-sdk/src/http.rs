//! Outbound HTTP through the host's `http` capability: a request builder, JSON helpers and
//! status checks.
//!
//! The host enforces the egress policy (allowed hosts, blocked networks, time and size caps);
//! these helpers only make the common calls short:
//!
//! ```ignore
//! use patchbay_sdk::http::Request;
//!
//! let customer: Customer = Request::post("https://api.stripe.com/v1/customers")
//!     .bearer("api_key")
//!     .header("idempotency-key", &key)
//!     .form(&[("email", email.as_str())])
//!     .send_json()?;
//! ```
//!
//! Secrets go into headers as `{{secret:NAME}}` placeholders ([`Request::bearer`],
//! [`Request::secret_header`]); the host substitutes them, so the value never enters the guest.
//! The host refuses a URL that contains a placeholder or a secret value; bodies are sent as given.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::bindings::connector::patchbay::connector::http::{
    HttpError, Method, Request, Response, send as send_raw,
};
use crate::types::{ConnectorError, Fields};

/// The first value of header `name` (ASCII case-insensitive) in `headers`.
pub fn header<'a>(headers: &'a Fields, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The `{{secret:NAME}}` placeholder the host replaces with the installation's secret `name`.
pub fn secret(name: &str) -> String {
    format!("{{{{secret:{name}}}}}")
}

/// A header whose value is a template with `{{secret:NAME}}` placeholders, e.g.
/// `secret_header("authorization", "Bearer {{secret:api_key}}")`.
pub fn secret_header(name: &str, value_template: &str) -> (String, String) {
    (name.to_owned(), value_template.to_owned())
}

/// `GET url` with `accept: application/json`; a non-2xx status becomes a [`ConnectorError`].
pub fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, ConnectorError> {
    Request::get(url).send_json()
}

/// `POST url` with `body` as JSON; a non-2xx status becomes a [`ConnectorError`].
pub fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(url: &str, body: &B) -> Result<T, ConnectorError> {
    Request::post(url).json(body)?.send_json()
}

impl Request {
    /// A request with no headers, no body, the host's default timeout and no redirects.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self { method, url: url.into(), headers: Fields::new(), body: None, timeout_ms: None, follow_redirects: false }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// `HEAD url`.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// `PATCH url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Appends query parameters, percent-encoded, to the URL.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, params: &[(K, V)]) -> Self {
        if params.is_empty() {
            return self;
        }
        let separator = if self.url.contains('?') { '&' } else { '?' };
        self.url.push(separator);
        self.url.push_str(&form_urlencode(params));
        self
    }

    /// Adds a header (repeated names are kept, in order).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds several headers.
    pub fn headers<K: Into<String>, V: Into<String>>(mut self, headers: impl IntoIterator<Item = (K, V)>) -> Self {
        self.headers.extend(headers.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Adds a header whose value holds `{{secret:NAME}}` placeholders the host fills in, e.g.
    /// `.secret_header("x-api-key", "{{secret:api_key}}")`.
    pub fn secret_header(self, name: &str, value_template: &str) -> Self {
        let (name, value) = secret_header(name, value_template);
        self.header(name, value)
    }

    /// `authorization: Bearer {{secret:<secret_name>}}`.
    pub fn bearer(self, secret_name: &str) -> Self {
        let value = format!("Bearer {}", secret(secret_name));
        self.header("authorization", value)
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets `body` serialized as JSON, with `content-type: application/json`.
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Result<Self, ConnectorError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::permanent("invalid_request", format!("cannot encode JSON body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(bytes))
    }

    /// Sets an `application/x-www-form-urlencoded` body (Stripe-style APIs).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, fields: &[(K, V)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded").body(form_urlencode(fields))
    }

    /// Per-request timeout in milliseconds (the host caps it).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Per-request timeout (the host caps it).
    pub fn timeout(self, timeout: Duration) -> Self {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.timeout_ms(ms)
    }

    /// Whether to follow up to 5 redirects (each hop is checked by the host again).
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// Sends the request and returns the response whatever its status; transport failures
    /// become a [`ConnectorError`] (see `From<HttpError>`).
    pub fn send(&self) -> Result<Response, ConnectorError> {
        Ok(send_raw(self)?)
    }

    /// Sends the request; a non-2xx status becomes a [`ConnectorError`] via
    /// [`ConnectorError::from_status`].
    pub fn send_ok(&self) -> Result<Response, ConnectorError> {
        self.send()?.error_for_status()
    }

    /// Sends the request with `accept: application/json` (unless set) and decodes a 2xx body.
    pub fn send_json<T: DeserializeOwned>(mut self) -> Result<T, ConnectorError> {
        if header(&self.headers, "accept").is_none() {
            self = self.header("accept", "application/json");
        }
        self.send_ok()?.json()
    }
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text; invalid UTF-8 is replaced with U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Decodes the body as JSON; a body that does not match `T` is a permanent
    /// `invalid_response` error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::permanent(
                "invalid_response",
                format!("unexpected response body (HTTP {}): {e}", self.status),
            )
        })
    }

    /// `Ok(self)` for a 2xx status, else the error [`ConnectorError::from_status`] maps it to.
    pub fn error_for_status(self) -> Result<Self, ConnectorError> {
        if self.is_success() { Ok(self) } else { Err(self.to_error()) }
    }

    /// The [`ConnectorError`] for this response's status (see [`ConnectorError::from_status`]).
    pub fn to_error(&self) -> ConnectorError {
        ConnectorError::from_status(self.status, &self.headers, &self.body)
    }
}

/// `application/x-www-form-urlencoded` serialization (WHATWG URL standard).
pub fn form_urlencode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k.as_ref(), &mut out);
        out.push('=');
        encode_component(v.as_ref(), &mut out);
    }
    out
}

fn encode_component(input: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in input.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields() {
        let req = Request::post("https://api.example.com/v1/things")
            .query(&[("limit", "10"), ("q", "a b&c")])
            .bearer("api_key")
            .secret_header("x-api-key", "{{secret:other}}")
            .timeout(Duration::from_secs(3))
            .follow_redirects(true)
            .json(&serde_json::json!({"a": 1}))
            .expect("encodes");
        assert_eq!(req.url, "https://api.example.com/v1/things?limit=10&q=a+b%26c");
        assert_eq!(header(&req.headers, "Authorization"), Some("Bearer {{secret:api_key}}"));
        assert_eq!(header(&req.headers, "x-api-key"), Some("{{secret:other}}"));
        assert_eq!(header(&req.headers, "content-type"), Some("application/json"));
        assert_eq!(req.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(req.timeout_ms, Some(3000));
        assert!(req.follow_redirects);
    }

    #[test]
    fn query_appends_to_existing_query() {
        let req = Request::get("https://x.test/a?b=1").query(&[("c", "é")]);
        assert_eq!(req.url, "https://x.test/a?b=1&c=%C3%A9");
    }

    #[test]
    fn secret_placeholder_shape() {
        assert_eq!(secret("api_key"), "{{secret:api_key}}");
    }

    #[test]
    fn response_helpers() {
        let resp = Response {
            status: 503,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"message":"maintenance"}"#.to_vec(),
        };
        assert!(!resp.is_success());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let value: serde_json::Value = resp.json().expect("valid json");
        assert_eq!(value["message"], "maintenance");
        let err = resp.error_for_status().expect_err("503 is an error");
        assert!(err.is_retryable());
    }
}
