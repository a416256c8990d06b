//! A faithful OAuth 2.0 authorization server and protected API on 127.0.0.1, for the host's
//! OAuth tests: RFC 6749 (authorization code §4.1, refresh §6, client credentials §4.4, client
//! authentication §2.3.1 basic and post, error responses §5.2, `Cache-Control: no-store`),
//! RFC 7636 (PKCE S256, verifier checked at the token endpoint) and RFC 7009 (revocation).
//!
//! - `GET /oauth/authorize` approves at once (a user who clicks "allow") and redirects to the
//!   registered `redirect_uri` with `code` and `state`; codes are single use, bound to the client,
//!   the redirect URI and the PKCE challenge, and live 60 s.
//! - `POST /oauth/token` issues bearer tokens. Refresh-token rotation is on by default: a
//!   refresh returns a new refresh token and retires the old one; presenting a retired one is
//!   treated as theft (RFC 9700 §4.14.2): the whole grant is revoked.
//! - `POST /oauth/revoke` revokes a refresh or access token (200 for unknown tokens).
//! - `GET /api/me` and `POST /api/notify` accept a valid, unexpired access token and answer
//!   401 with `WWW-Authenticate: Bearer error="invalid_token"` otherwise.
//!
//! Knobs change behaviour mid-test ([`OAuthServer::set_expires_in`], [`OAuthServer::revoke_all`],
//! [`OAuthServer::invalidate_access_tokens`], [`OAuthServer::token_delay`]...), and counters
//! tell what the host asked for ([`OAuthServer::token_requests`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The client the server knows.
pub const CLIENT_ID: &str = "patchbay-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "s3cr3t:with/odd&chars";

#[derive(Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scope: Option<String>,
    issued: Instant,
}

#[derive(Clone)]
struct Access {
    grant: u64,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    next: u64,
    codes: HashMap<String, Code>,
    /// Live refresh tokens → grant id.
    refresh: HashMap<String, u64>,
    /// Refresh tokens retired by rotation → grant id (reuse detection).
    retired: HashMap<String, u64>,
    access: HashMap<String, Access>,
    revoked_grants: std::collections::HashSet<u64>,
    expires_in: u64,
    rotate: bool,
    issue_refresh: bool,
    delay: Duration,
    fail_next: u32,
    /// Token requests by grant type.
    token_requests: HashMap<String, u32>,
    /// Authorization requests, as query maps.
    authorizations: Vec<HashMap<String, String>>,
    /// Token request forms (secrets included: the test server is the provider).
    token_forms: Vec<HashMap<String, String>>,
    notifications: Vec<String>,
    revocations: Vec<String>,
    /// Requests refused with 429 before answering normally, and the Retry-After they carry.
    rate_limited: u32,
    retry_after_secs: u64,
    api_calls: u32,
    /// When set, `/api/*` answers this status (after authentication).
    api_status: Option<u16>,
    api_delay: Duration,
}

/// The running server.
#[derive(Clone)]
pub struct OAuthServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl OAuthServer {
    /// Starts on an ephemeral port; tokens live an hour, refresh tokens rotate.
    pub async fn start() -> Self {
        let inner =
            Arc::new(Mutex::new(Inner { expires_in: 3600, rotate: true, issue_refresh: true, ..Default::default() }));
        let app = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/revoke", post(revoke))
            .route("/api/me", get(me))
            .route("/api/notify", post(notify))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the OAuth server");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        lock(&self.inner).expires_in = secs;
    }

    /// Whether refreshes rotate the refresh token (default true).
    pub fn set_rotation(&self, on: bool) {
        lock(&self.inner).rotate = on;
    }

    /// Whether the code exchange issues a refresh token (default true).
    pub fn set_issue_refresh_token(&self, on: bool) {
        lock(&self.inner).issue_refresh = on;
    }

    /// How long the token endpoint takes to answer.
    pub fn token_delay(&self, delay: Duration) {
        lock(&self.inner).delay = delay;
    }

    /// The next `n` token requests answer 503.
    pub fn fail_next(&self, n: u32) {
        lock(&self.inner).fail_next = n;
    }

    /// The next `n` API requests answer 429 with `Retry-After: secs`.
    pub fn rate_limit_next(&self, n: u32, secs: u64) {
        let mut s = lock(&self.inner);
        s.rate_limited = n;
        s.retry_after_secs = secs;
    }

    /// `/api/*` answers `status` to authenticated requests (`None`: normally).
    pub fn set_api_status(&self, status: Option<u16>) {
        lock(&self.inner).api_status = status;
    }

    /// How long `/api/*` takes to answer.
    pub fn api_delay(&self, delay: Duration) {
        lock(&self.inner).api_delay = delay;
    }

    /// Revokes every grant (as a user removing the app would): refresh and access tokens die.
    pub fn revoke_all(&self) {
        let mut s = lock(&self.inner);
        let grants: Vec<u64> = s.refresh.values().chain(s.access.values().map(|a| &a.grant)).copied().collect();
        s.revoked_grants.extend(grants);
        s.refresh.clear();
        s.access.clear();
    }

    /// Access tokens stop working (refresh tokens keep working): the next API call gets 401.
    pub fn invalidate_access_tokens(&self) {
        lock(&self.inner).access.clear();
    }

    /// Token requests so far with this grant type.
    pub fn token_requests(&self, grant_type: &str) -> u32 {
        lock(&self.inner).token_requests.get(grant_type).copied().unwrap_or(0)
    }

    /// Every token request form so far.
    pub fn token_forms(&self) -> Vec<HashMap<String, String>> {
        lock(&self.inner).token_forms.clone()
    }

    /// Every authorization request's parameters so far.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        lock(&self.inner).authorizations.clone()
    }

    /// Texts received by `/api/notify`.
    pub fn notifications(&self) -> Vec<String> {
        lock(&self.inner).notifications.clone()
    }

    /// Tokens presented to `/oauth/revoke`.
    pub fn revocations(&self) -> Vec<String> {
        lock(&self.inner).revocations.clone()
    }

    /// Requests to `/api/*` (answered or refused).
    pub fn api_calls(&self) -> u32 {
        lock(&self.inner).api_calls
    }

    /// Whether this refresh token is live.
    pub fn refresh_token_is_live(&self, token: &str) -> bool {
        lock(&self.inner).refresh.contains_key(token)
    }
}

fn random(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).expect("random bytes");
    URL_SAFE_NO_PAD.encode(b)
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response();
    no_store(r.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"token\""));
    }
    r
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

async fn authorize(State(inner): State<Arc<Mutex<Inner>>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = lock(&inner);
    s.authorizations.push(q.clone());
    // §4.1.2.1: a bad client or redirect URI is not redirected to.
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect) = q.get("redirect_uri").and_then(|u| url::Url::parse(u).ok()) else {
        return (StatusCode::BAD_REQUEST, "missing or invalid redirect_uri").into_response();
    };
    let back = |params: &[(&str, &str)]| {
        let mut u = redirect.clone();
        u.query_pairs_mut().extend_pairs(params);
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(u.as_str()).expect("location"));
        r
    };
    let state = q.get("state").cloned().unwrap_or_default();
    if q.get("response_type").map(String::as_str) != Some("code") {
        return back(&[("error", "unsupported_response_type"), ("state", &state)]);
    }
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() && q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return back(&[
            ("error", "invalid_request"),
            ("error_description", "only S256 is supported"),
            ("state", &state),
        ]);
    }
    let code = random(24);
    let c = Code {
        client_id: CLIENT_ID.into(),
        redirect_uri: redirect.to_string(),
        challenge,
        scope: q.get("scope").cloned(),
        issued: Instant::now(),
    };
    s.codes.insert(code.clone(), c);
    back(&[("code", &code), ("state", &state)])
}

/// The client's id from HTTP Basic (form-decoded parts, §2.3.1) or the body; `Err` is the
/// response for a failed authentication.
fn authenticate(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), Box<Response>> {
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    let (id, secret) = match basic {
        Some(b) => {
            let decoded = STANDARD.decode(b.trim()).ok().and_then(|d| String::from_utf8(d).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(Box::new(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed basic credentials",
                )));
            };
            let dec =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            (dec(id), dec(secret))
        }
        None => (form.get("client_id").cloned(), form.get("client_secret").cloned()),
    };
    if id.as_deref() != Some(CLIENT_ID) || secret.as_deref() != Some(CLIENT_SECRET) {
        return Err(Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed")));
    }
    Ok(())
}

fn issue(s: &mut Inner, grant: u64, refresh: bool, scope: Option<String>) -> Response {
    let access = random(24);
    s.access.insert(access.clone(), Access { grant, expires: Instant::now() + Duration::from_secs(s.expires_in) });
    let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": s.expires_in });
    if refresh {
        let rt = random(32);
        s.refresh.insert(rt.clone(), grant);
        body["refresh_token"] = Value::String(rt);
    }
    if let Some(scope) = scope {
        body["scope"] = Value::String(scope);
    }
    let mut r = axum::Json(body).into_response();
    no_store(r.headers_mut());
    r
}

async fn token(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let delay = {
        let mut s = lock(&inner);
        *s.token_requests.entry(grant_type.clone()).or_default() += 1;
        s.token_forms.push(form.clone());
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = lock(&inner);
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "<html>maintenance</html>").into_response();
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the body must be form-encoded");
    }
    if let Err(r) = authenticate(&headers, &form) {
        return *r;
    }
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(code) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
            };
            if code.issued.elapsed() > Duration::from_secs(60) || code.client_id != CLIENT_ID {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "expired code");
            }
            if form.get("redirect_uri") != Some(&code.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri does not match");
            }
            if let Some(challenge) = &code.challenge {
                let Some(verifier) = form.get("code_verifier") else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code_verifier is required");
                };
                // RFC 7636 §4.1: 43 to 128 unreserved characters.
                let ok = (43..=128).contains(&verifier.len())
                    && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
                if !ok || &computed != challenge {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
                }
            }
            s.next += 1;
            let grant = s.next;
            let refresh = s.issue_refresh;
            issue(&mut s, grant, refresh, code.scope)
        }
        "refresh_token" => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
            };
            if let Some(grant) = s.retired.get(rt).copied() {
                // A retired token presented again: revoke the grant altogether.
                s.revoked_grants.insert(grant);
                s.refresh.retain(|_, g| *g != grant);
                s.access.retain(|_, a| a.grant != grant);
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "refresh token reused; grant revoked");
            }
            let Some(grant) = s.refresh.get(rt).copied() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "refresh token is invalid or revoked");
            };
            let rotate = s.rotate;
            if rotate {
                s.refresh.remove(rt);
                s.retired.insert(rt.clone(), grant);
            }
            issue(&mut s, grant, rotate, None)
        }
        "client_credentials" => {
            s.next += 1;
            let grant = s.next;
            issue(&mut s, grant, false, form.get("scope").cloned())
        }
        "" => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
    }
}

async fn revoke(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if let Err(r) = authenticate(&headers, &form) {
        return *r;
    }
    let mut s = lock(&inner);
    let Some(token) = form.get("token").cloned() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    s.revocations.push(token.clone());
    // §2.1: revoking a refresh token also invalidates the grant's access tokens.
    if let Some(grant) = s.refresh.remove(&token) {
        s.revoked_grants.insert(grant);
        s.access.retain(|_, a| a.grant != grant);
    }
    s.access.remove(&token);
    StatusCode::OK.into_response()
}

/// Checks the bearer token of an API request.
fn bearer(inner: &Mutex<Inner>, headers: &HeaderMap) -> Result<u64, Box<Response>> {
    let mut s = lock(inner);
    s.api_calls += 1;
    if s.rate_limited > 0 {
        s.rate_limited -= 1;
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s.retry_after_secs));
        return Err(Box::new(r));
    }
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.access.get(t)) {
        Some(a) if a.expires > Instant::now() && !s.revoked_grants.contains(&a.grant) => Ok(a.grant),
        _ => {
            let mut r = (StatusCode::UNAUTHORIZED, "invalid token").into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            Err(Box::new(r))
        }
    }
}

/// The configured API delay and forced status.
async fn api_behaviour(inner: &Mutex<Inner>) -> Option<Response> {
    let (delay, status) = {
        let s = lock(inner);
        (s.api_delay, s.api_status)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(status?).ok()?;
    Some((status, "forced status").into_response())
}

async fn me(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let grant = match bearer(&inner, &headers) {
        Ok(grant) => grant,
        Err(r) => return *r,
    };
    if let Some(r) = api_behaviour(&inner).await {
        return r;
    }
    format!("user-{grant}").into_response()
}

async fn notify(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = bearer(&inner, &headers) {
        return *r;
    }
    if let Some(r) = api_behaviour(&inner).await {
        return r;
    }
    let text = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["text"].as_str().map(str::to_string));
    lock(&inner).notifications.push(text.unwrap_or_default());
    "delivered".into_response()
}
