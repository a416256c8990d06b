//! Recorded HTTP exchanges that answer a call's requests instead of the network: the base of
//! testing a connector without a live API. An installation given [`Fixtures`] never reaches the
//! network — a request no fixture matches fails with `connection-failed` naming it — while every
//! check before the network still applies (the manifest's allowed hosts, the address policy,
//! secret placeholders, the per-call budget, literal blocked addresses), so a connector cannot
//! pass in test mode what those checks refuse live. (A host name is resolved only to connect,
//! which test mode never does: one that resolves to a blocked network is refused live only.)
//!
//! Matching reads the request as the guest sent it, before the host fills in secrets: a fixture
//! names a header carrying a secret by its placeholder (`Bearer {{secret:api_key}}`), so fixtures
//! never hold secret values.
//!
//! ```json
//! [
//!   {
//!     "name": "send",
//!     "request": {
//!       "method": "POST",
//!       "url": "https://ntfy.example/",
//!       "headers": { "authorization": "Bearer {{secret:token}}" },
//!       "body_json": { "topic": "alerts" }
//!     },
//!     "response": { "status": 200, "headers": [["content-type", "application/json"]],
//!                   "body_json": { "id": "sPs71M8A2T" } }
//!   }
//! ]
//! ```
//!
//! A request matches a fixture when the method is the same (case-insensitive), the URL is the same
//! (or starts with the fixture's URL when that ends in `*`), every header the fixture names is
//! present with that value (names case-insensitive), and the body is the fixture's `body` text
//! exactly or holds every member of its `body_json` (objects compared member by member, other
//! values equal). The first matching fixture answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most fixtures one set may hold.
pub const MAX_FIXTURES: usize = 1000;

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// For reports and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which requests it answers.
    pub request: RequestMatcher,
    /// What it answers.
    pub response: FixtureResponse,
}

/// Which requests a fixture answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatcher {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The whole URL, or a prefix ending in `*`.
    pub url: String,
    /// Headers the request must carry, with these values (placeholders, not secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body must be a JSON document holding these members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_json: Option<Value>,
    /// The body must be exactly this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A recorded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    /// The HTTP status.
    pub status: u16,
    /// Response headers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// A JSON body (sent compact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_json: Option<Value>,
    /// A text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl FixtureResponse {
    /// The body's bytes.
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body_json, &self.body) {
            (Some(v), _) => v.to_string().into_bytes(),
            (None, Some(t)) => t.clone().into_bytes(),
            (None, None) => Vec::new(),
        }
    }
}

/// A set of fixtures, checked when parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fixtures {
    list: Vec<Fixture>,
}

impl Fixtures {
    /// Parses a JSON array of fixtures, saying which one is wrong and why.
    pub fn parse(json: &str) -> Result<Self, String> {
        let list: Vec<Fixture> = serde_json::from_str(json).map_err(|e| format!("fixtures: {e}"))?;
        Self::new(list)
    }

    /// Checks and wraps a list of fixtures.
    pub fn new(list: Vec<Fixture>) -> Result<Self, String> {
        if list.len() > MAX_FIXTURES {
            return Err(format!("fixtures: {} of them; at most {MAX_FIXTURES}", list.len()));
        }
        for (i, f) in list.iter().enumerate() {
            let at = format!("fixtures[{i}]{}", f.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default());
            if reqwest::Method::from_bytes(f.request.method.to_ascii_uppercase().as_bytes()).is_err() {
                return Err(format!("{at}: request.method {:?} is not an HTTP method", f.request.method));
            }
            let url = f.request.url.strip_suffix('*').unwrap_or(&f.request.url);
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{at}: request.url must start with http:// or https://"));
            }
            if f.request.body.is_some() && f.request.body_json.is_some() {
                return Err(format!("{at}: request has both body and body_json; give one"));
            }
            if f.response.body.is_some() && f.response.body_json.is_some() {
                return Err(format!("{at}: response has both body and body_json; give one"));
            }
            if !(100..=599).contains(&f.response.status) {
                return Err(format!("{at}: response.status {} is not an HTTP status", f.response.status));
            }
        }
        Ok(Self { list })
    }

    /// The fixtures, in order.
    pub fn list(&self) -> &[Fixture] {
        &self.list
    }

    /// The first fixture matching a request as the guest sent it.
    pub fn find(&self, method: &str, url: &str, headers: &[(String, String)], body: Option<&[u8]>) -> Option<&Fixture> {
        self.list.iter().find(|f| matches(&f.request, method, url, headers, body))
    }
}

fn matches(m: &RequestMatcher, method: &str, url: &str, headers: &[(String, String)], body: Option<&[u8]>) -> bool {
    if !m.method.eq_ignore_ascii_case(method) {
        return false;
    }
    let url_ok = match m.url.strip_suffix('*') {
        Some(prefix) => url.starts_with(prefix),
        None => url == m.url || url.strip_suffix('/') == Some(&m.url) || m.url.strip_suffix('/') == Some(url),
    };
    if !url_ok {
        return false;
    }
    for (name, want) in &m.headers {
        if !headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(name) && v == want) {
            return false;
        }
    }
    let body = body.unwrap_or_default();
    if let Some(text) = &m.body
        && text.as_bytes() != body
    {
        return false;
    }
    if let Some(want) = &m.body_json {
        let Ok(got) = serde_json::from_slice::<Value>(body) else { return false };
        if !contains(&got, want) {
            return false;
        }
    }
    true
}

/// Whether `got` holds `want`: objects member by member (recursively), anything else equal.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Fixtures {
        Fixtures::parse(
            r#"[
              {"name": "publish", "request": {"method": "post", "url": "https://ntfy.example/",
                "headers": {"Authorization": "Bearer {{secret:token}}"},
                "body_json": {"topic": "alerts", "extra": {"deep": 1}}},
               "response": {"status": 200, "body_json": {"id": "x1"}}},
              {"request": {"method": "GET", "url": "https://ntfy.example/v1/*"},
               "response": {"status": 503, "headers": [["retry-after", "2"]], "body": "down"}}
            ]"#,
        )
        .unwrap()
    }

    #[test]
    fn requests_match_by_method_url_headers_and_body_members() {
        let f = set();
        let auth = vec![("authorization".to_string(), "Bearer {{secret:token}}".to_string())];
        let body = br#"{"topic": "alerts", "message": "hi", "extra": {"deep": 1, "more": 2}}"#;
        assert_eq!(
            f.find("POST", "https://ntfy.example/", &auth, Some(body)).and_then(|x| x.name.as_deref()),
            Some("publish")
        );
        // The secret's value instead of its placeholder, another topic, no body: no match.
        let raw = vec![("authorization".to_string(), "Bearer tk_live".to_string())];
        assert!(f.find("POST", "https://ntfy.example/", &raw, Some(body)).is_none());
        assert!(f.find("POST", "https://ntfy.example/", &auth, Some(br#"{"topic": "other"}"#)).is_none());
        assert!(f.find("POST", "https://ntfy.example/", &auth, None).is_none());
        assert!(f.find("POST", "https://ntfy.example/", &auth, Some(b"not json")).is_none());
        // A prefix pattern; the text body and headers of the answer.
        let down = f.find("GET", "https://ntfy.example/v1/health", &[], None).unwrap();
        assert_eq!(down.response.status, 503);
        assert_eq!(down.response.body_bytes(), b"down");
        assert!(f.find("GET", "https://ntfy.example/v2/health", &[], None).is_none());
        assert!(f.find("DELETE", "https://ntfy.example/v1/x", &[], None).is_none());
    }

    #[test]
    fn bad_fixtures_are_refused_with_where_and_why() {
        let err = |json: &str| Fixtures::parse(json).unwrap_err();
        assert!(err("{}").starts_with("fixtures: "));
        let e = err(
            r#"[{"name": "a", "request": {"method": "FETCH IT", "url": "https://x/"}, "response": {"status": 200}}]"#,
        );
        assert_eq!(e, "fixtures[0] (a): request.method \"FETCH IT\" is not an HTTP method");
        let e = err(r#"[{"request": {"method": "GET", "url": "ftp://x/"}, "response": {"status": 200}}]"#);
        assert!(e.contains("request.url must start with http"), "{e}");
        let e = err(r#"[{"request": {"method": "GET", "url": "https://x/"}, "response": {"status": 42}}]"#);
        assert!(e.contains("not an HTTP status"), "{e}");
        let e =
            err(r#"[{"request": {"method": "GET", "url": "https://x/", "colour": 1}, "response": {"status": 200}}]"#);
        assert!(e.contains("unknown field `colour`"), "{e}");
        let many: Vec<Value> = (0..=MAX_FIXTURES)
            .map(
                |_| serde_json::json!({"request": {"method": "GET", "url": "https://x/"}, "response": {"status": 200}}),
            )
            .collect();
        assert!(err(&Value::Array(many).to_string()).contains("at most 1000"));
    }
}
