//! Host-owned OAuth 2.0 credentials: connecting an installation (authorization code with PKCE,
//! or client credentials), handing its connector the access token only, and refreshing ahead of
//! expiry, on demand when a connector reports 401, and single-flight across hosts.
//!
//! The connector finds the access token under the key of its `oauth2` credential; the client id,
//! client secret and refresh token stay in the host. Each host keeps the current access token of
//! the installations it calls in memory (checked for expiry on every call), so a call does not
//! open a ciphertext; a refresh goes through the store's lease and version check
//! ([`patchbay_store::oauth`]) and, within one process, through one lock per installation.
//!
//! A refresh the provider refuses (`invalid_grant` and friends), or [`MAX_REFRESH_FAILURES`]
//! failures in a row, leaves the installation `reauth_required`: calls answer 409 until someone
//! authorizes again, and an `installation.reauth_required` event goes to the outbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patchbay_registry::{OAuth2Spec, OAuthGrant};
use serde_json::{Value, json};

use super::App;
use crate::oauth::{OAuthClient, TokenError, TokenResponse, random_token};
use patchbay_core::error::{Conflict, Error, ErrorKind, Missing, Provider};
use patchbay_core::now_ms;
use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::capability::credentials::Secret;
use patchbay_store::oauth::{GrantRow, NewTokens, OAuthState, RefreshClaim, StatusEvent};
use patchbay_store::{NewEvent, StoreError};

/// Consecutive failed refreshes after which the installation needs a new authorization.
pub const MAX_REFRESH_FAILURES: i64 = 3;
/// How long an authorization request waits for its callback.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// How long a host may take over a refresh before another one may try.
const REFRESH_LEASE_MS: i64 = 45_000;
/// An access token this close to expiry is refreshed before a call uses it.
const EXPIRY_SKEW_MS: i64 = 10_000;
/// Refresh ahead of expiry by at most this much...
const REFRESH_AHEAD_MAX_MS: i64 = 5 * 60 * 1000;
/// How long a failed background refresh waits before the next try.
const RETRY_AFTER_FAILURE_MS: i64 = 30_000;
/// The path of the callback, below the public URL.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// What a connector call needs of the OAuth side: the manifest's spec, the installation's
/// configuration (URL templates) and the tenant's client credentials.
pub struct OAuthContext {
    pub spec: OAuth2Spec,
    /// The credential key the connector reads the access token under.
    pub token_key: String,
    pub config: BTreeMap<String, String>,
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
}

impl OAuthContext {
    fn client(&self) -> Result<OAuthClient<'_>, Error> {
        OAuthClient::new(&self.spec, &self.config, self.client_id.as_ref(), self.client_secret.as_ref())
            .map_err(|m| Error::conflict(Conflict::OAuthNotConfigured, m))
    }
}

/// Why an authorization callback did not connect the installation.
#[derive(Debug)]
pub struct CallbackFailure {
    /// The user or the provider refused the authorization (as opposed to a failure).
    pub refused: bool,
    pub error: Error,
}

/// An access token as this host last saw it.
#[derive(Debug)]
pub struct CurrentToken {
    pub version: i64,
    /// When the grant was authorized: a reconnected grant starts its versions again.
    pub obtained_at: i64,
    pub access: Secret,
    pub expires_at: Option<i64>,
}

impl CurrentToken {
    fn fresh(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| e - now > EXPIRY_SKEW_MS)
    }
}

/// (tenant, installation).
type Key = (String, String);

/// Per-process OAuth state: current tokens and one refresh lock per installation.
#[derive(Default)]
pub struct OAuthTokens {
    current: Mutex<HashMap<Key, Arc<CurrentToken>>>,
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl OAuthTokens {
    fn get(&self, key: &Key) -> Option<Arc<CurrentToken>> {
        self.current.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn put(&self, key: Key, token: Arc<CurrentToken>) {
        if let Ok(mut m) = self.current.lock() {
            if m.len() >= 10_000 {
                m.clear();
            }
            // Never step back to an older token another task loaded late; a grant authorized
            // again (after a disconnect) is newer whatever its version.
            if m.get(&key).is_none_or(|t| (t.obtained_at, t.version) <= (token.obtained_at, token.version)) {
                m.insert(key, token);
            }
        }
    }

    fn forget(&self, key: &Key) {
        if let Ok(mut m) = self.current.lock() {
            m.remove(key);
        }
    }

    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 10_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(key.clone()).or_default().clone()
    }
}

fn key(tenant: &str, installation: &str) -> Key {
    (tenant.to_string(), installation.to_string())
}

fn reauth_error(installation: &str) -> Error {
    Error::new(
        ErrorKind::ReauthRequired,
        format!(
            "installation {installation} needs a new OAuth authorization (its refresh was refused); \
             POST /v1/installations/{installation}/oauth/start"
        ),
    )
}

fn unavailable(e: &TokenError) -> Error {
    Error::new(ErrorKind::Provider(Provider::OAuthUnavailable), format!("refreshing the access token failed: {e}"))
}

/// When to refresh a token ahead of its expiry: half its lifetime before, at most five minutes.
fn refresh_at(now: i64, expires_at: Option<i64>, refreshable: bool) -> Option<i64> {
    let expires_at = expires_at.filter(|_| refreshable)?;
    let lifetime = (expires_at - now).max(0);
    Some(expires_at - (lifetime / 2).min(REFRESH_AHEAD_MAX_MS))
}

impl App {
    fn seal_token(
        &self,
        tenant: &str,
        installation: &str,
        field: &str,
        value: &Secret,
    ) -> Result<(String, Vec<u8>), Error> {
        let s = self
            .keyring
            .seal(tenant, installation, field, value.expose().as_bytes())
            .map_err(|e| Error::internal(format!("sealing the OAuth token: {e}")))?;
        Ok((s.key_id, s.ciphertext))
    }

    fn open_token(&self, tenant: &str, installation: &str, field: &str, sealed: &[u8]) -> Result<Secret, Error> {
        let plain = self.keyring.open(tenant, installation, field, sealed).map_err(|e| {
            Error::internal(format!("the OAuth token of installation {installation} cannot be opened: {e}"))
        })?;
        Ok(Secret::new(String::from_utf8_lossy(&plain).into_owned()))
    }

    /// Seals a token response for storing.
    ///
    /// `has_refresh_token`: a refresh token is stored after this (received now or kept).
    fn new_tokens(
        &self,
        tenant: &str,
        installation: &str,
        grant: OAuthGrant,
        t: &TokenResponse,
        has_refresh_token: bool,
    ) -> Result<NewTokens, Error> {
        let now = now_ms();
        let (key_id, access_token) = self.seal_token(tenant, installation, "oauth:access_token", &t.access_token)?;
        let refresh_token = match &t.refresh_token {
            Some(r) => Some(self.seal_token(tenant, installation, "oauth:refresh_token", r)?.1),
            None => None,
        };
        let expires_at =
            t.expires_in.map(|s| now.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
        // A client-credentials token is renewed with the same grant; a code grant needs its
        // refresh token (checked when refreshing: without one, the user must authorize again).
        let refreshable = grant == OAuthGrant::ClientCredentials || has_refresh_token;
        Ok(NewTokens {
            key_id,
            access_token,
            refresh_token,
            token_type: t.token_type.clone(),
            scope: t.scope.clone(),
            expires_at,
            refresh_at: refresh_at(now, expires_at, refreshable),
        })
    }

    fn current_from(&self, g: &GrantRow) -> Result<Arc<CurrentToken>, Error> {
        let access = self.open_token(&g.tenant, &g.installation, "oauth:access_token", &g.access_token)?;
        let token =
            Arc::new(CurrentToken { version: g.version, obtained_at: g.obtained_at, access, expires_at: g.expires_at });
        self.oauth.put(key(&g.tenant, &g.installation), token.clone());
        Ok(token)
    }

    /// The access token a call of this installation uses: this host's copy while it is fresh,
    /// else the stored one, refreshed first when it is about to expire. A client-credentials
    /// installation obtains its first token here.
    pub async fn access_token(
        &self,
        tenant: &str,
        installation: &str,
        ctx: &OAuthContext,
    ) -> Result<Arc<CurrentToken>, Error> {
        let k = key(tenant, installation);
        let now = now_ms();
        if let Some(t) = self.oauth.get(&k)
            && t.fresh(now)
        {
            return Ok(t);
        }
        match self.store.oauth_grant(tenant, installation).await? {
            None if ctx.spec.grant == OAuthGrant::ClientCredentials => {
                self.first_client_token(tenant, installation, ctx).await
            }
            None => Err(Error::conflict(
                Conflict::OAuthNotConnected,
                format!(
                    "installation {installation} is not connected to its OAuth provider yet; \
                     POST /v1/installations/{installation}/oauth/start and open the authorize_url"
                ),
            )),
            Some(g) if g.status != patchbay_store::oauth::GRANT_ACTIVE => Err(reauth_error(installation)),
            Some(g) => {
                let t = self.current_from(&g)?;
                if t.fresh(now) { Ok(t) } else { self.refresh_token(tenant, installation, ctx, Some(g.version)).await }
            }
        }
    }

    /// A client-credentials installation's first token (one request per process at a time).
    async fn first_client_token(
        &self,
        tenant: &str,
        installation: &str,
        ctx: &OAuthContext,
    ) -> Result<Arc<CurrentToken>, Error> {
        let k = key(tenant, installation);
        let flight = self.oauth.flight(&k);
        let _guard = flight.lock().await;
        if let Some(g) = self.store.oauth_grant(tenant, installation).await? {
            return self.current_from(&g);
        }
        let client = ctx.client()?;
        let t = client.client_credentials(self.runtime.http_client()).await.map_err(|e| unavailable(&e))?;
        let tokens = self.new_tokens(tenant, installation, OAuthGrant::ClientCredentials, &t, false)?;
        let g =
            self.store.store_oauth_grant(tenant, installation, OAuthGrant::ClientCredentials.as_str(), &tokens).await?;
        self.record_change(tenant, installation, "OAuth token obtained (client credentials)".into(), vec![]);
        self.current_from(&g)
    }

    /// Replaces the access token of version `expected` (`None`: whatever is stored) and returns
    /// the new one; when another task or host already did, returns theirs without asking the
    /// provider again.
    pub async fn refresh_token(
        &self,
        tenant: &str,
        installation: &str,
        ctx: &OAuthContext,
        expected: Option<i64>,
    ) -> Result<Arc<CurrentToken>, Error> {
        let k = key(tenant, installation);
        let flight = self.oauth.flight(&k);
        let _guard = flight.lock().await;
        if let (Some(t), Some(v)) = (self.oauth.get(&k), expected)
            && t.version > v
        {
            return Ok(t);
        }
        let owner = format!("{}/{}", crate::dispatch::worker::owner_name(), patchbay_core::new_id("r"));
        let waited_since = now_ms();
        let grant = loop {
            match self.store.begin_oauth_refresh(tenant, installation, expected, &owner, REFRESH_LEASE_MS).await {
                Ok(RefreshClaim::Leased(g)) => break g,
                Ok(RefreshClaim::Current(g)) => return self.current_from(&g),
                Ok(RefreshClaim::ReauthRequired(_)) => return Err(reauth_error(installation)),
                Ok(RefreshClaim::Busy { until }) => {
                    if now_ms() - waited_since > 2 * REFRESH_LEASE_MS {
                        return Err(Error::new(
                            ErrorKind::Provider(Provider::OAuthBusy),
                            "another host has been refreshing the access token for too long",
                        ));
                    }
                    let wait = (until - now_ms()).clamp(10, 100);
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                Err(StoreError::NotFound(_)) if ctx.spec.grant == OAuthGrant::ClientCredentials => {
                    drop(_guard);
                    return self.first_client_token(tenant, installation, ctx).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let client = ctx.client()?;
        let http = self.runtime.http_client();
        let answer = match (ctx.spec.grant, &grant.refresh_token) {
            (OAuthGrant::ClientCredentials, _) => client.client_credentials(http).await,
            (OAuthGrant::AuthorizationCode, Some(sealed)) => {
                let rt = self.open_token(tenant, installation, "oauth:refresh_token", sealed)?;
                client.refresh(http, &rt).await
            }
            (OAuthGrant::AuthorizationCode, None) => Err(TokenError::Refused {
                status: 0,
                code: "invalid_grant".into(),
                description: Some("the provider issued no refresh token and the access token expired".into()),
            }),
        };
        match answer {
            Ok(t) => {
                let has_refresh = t.refresh_token.is_some() || grant.refresh_token.is_some();
                let tokens = self.new_tokens(tenant, installation, ctx.spec.grant, &t, has_refresh)?;
                // The rotated refresh token is committed before the new access token is used.
                match self.store.complete_oauth_refresh(tenant, installation, &owner, &tokens).await? {
                    Some(g) => {
                        self.metrics.oauth_refresh("ok");
                        let rotated = if t.refresh_token.is_some() { "yes" } else { "no" };
                        self.record_change(
                            tenant,
                            installation,
                            "OAuth access token refreshed".into(),
                            vec![
                                ("version".into(), g.version.to_string()),
                                ("refresh_token_rotated".into(), rotated.into()),
                            ],
                        );
                        self.current_from(&g)
                    }
                    None => Err(Error::new(
                        ErrorKind::Provider(Provider::OAuthBusy),
                        "the refresh took longer than its lease and another host took over; try again",
                    )),
                }
            }
            Err(e) => {
                self.metrics.oauth_refresh(if e.definitive() { "refused" } else { "failed" });
                let event = self.reauth_event(tenant, installation, &e);
                let deliveries = self.router.route_events(std::slice::from_ref(&event), now_ms()).await?;
                let failure = self
                    .store
                    .fail_oauth_refresh(
                        tenant,
                        installation,
                        &owner,
                        &e.to_string(),
                        e.definitive(),
                        MAX_REFRESH_FAILURES,
                        now_ms() + RETRY_AFTER_FAILURE_MS,
                        StatusEvent { event: &event, deliveries: &deliveries },
                    )
                    .await?;
                self.record_change(
                    tenant,
                    installation,
                    format!("OAuth refresh failed: {e}"),
                    vec![("failures".into(), failure.failures.to_string())],
                );
                if failure.reauth_required {
                    self.oauth.forget(&k);
                    tracing::warn!(tenant, installation, "OAuth grant needs a new authorization: {e}");
                    return Err(reauth_error(installation));
                }
                Err(unavailable(&e))
            }
        }
    }

    fn reauth_event(&self, tenant: &str, installation: &str, e: &TokenError) -> NewEvent {
        self.host_event(
            tenant,
            installation,
            "installation.reauth_required",
            json!({
                "installation": installation,
                "reason": e.code(),
                "message": e.to_string(),
                "reconnect": format!("/v1/installations/{installation}/oauth/start"),
            }),
        )
    }

    /// Starts the authorization-code flow: remembers a state and a PKCE verifier and returns the
    /// URL to open.
    pub async fn oauth_start(&self, tenant: &str, installation: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, installation).await?;
        let r = self.prepared_for(&row).await?;
        let ctx = r.oauth.as_ref().ok_or_else(|| not_oauth(installation))?;
        if ctx.spec.grant != OAuthGrant::AuthorizationCode {
            return Err(Error::conflict(
                Conflict::OAuthNoAuthorization,
                format!(
                    "the connector uses the client_credentials grant: installation {installation} obtains its \
                     token with its client id and secret, no authorization needed"
                ),
            ));
        }
        let client = ctx.client()?;
        let random = |n| random_token(n).map_err(|_| Error::internal("the system random generator failed"));
        let state = random(32)?;
        let verifier = if ctx.spec.uses_pkce() { Some(random(48)?) } else { None };
        let redirect_uri = format!("{}{CALLBACK_PATH}", self.public_url);
        let url = client.authorization_url(&redirect_uri, &state, verifier.as_deref()).map_err(Error::internal)?;
        let sealed_verifier = match &verifier {
            Some(v) => Some(self.seal_token(tenant, installation, "oauth:verifier", &Secret::new(v.clone()))?.1),
            None => None,
        };
        let now = now_ms();
        self.store
            .put_oauth_state(&OAuthState {
                state_hash: patchbay_crypto::hash_token(&state),
                tenant: tenant.to_string(),
                installation: installation.to_string(),
                redirect_uri: redirect_uri.clone(),
                verifier: sealed_verifier,
                created_at: now,
                expires_at: now + STATE_TTL_MS,
            })
            .await?;
        self.record_change(tenant, installation, "OAuth authorization started".into(), vec![]);
        Ok(json!({
            "installation": installation,
            "authorize_url": url.as_str(),
            "redirect_uri": redirect_uri,
            "pkce": verifier.is_some(),
            "expires_at": rfc3339(now + STATE_TTL_MS),
        }))
    }

    /// The provider's redirect back: exchanges the code and stores the tokens. Answers the
    /// sentence the browser shows: that the installation is connected, or why not.
    pub async fn oauth_callback(&self, params: &HashMap<String, String>) -> Result<String, CallbackFailure> {
        let failed = |error: Error| CallbackFailure { refused: false, error };
        let Some(state) = params.get("state").filter(|s| !s.is_empty()) else {
            return Err(failed(Error::bad_request("The request has no state parameter.")));
        };
        let pending = match self.store.take_oauth_state(&patchbay_crypto::hash_token(state)).await {
            Ok(Some(p)) if p.expires_at >= now_ms() => p,
            Ok(_) => {
                return Err(failed(Error::bad_request(
                    "This authorization request is unknown, was already used or has expired. Start again.",
                )));
            }
            Err(e) => return Err(failed(e.into())),
        };
        let (tenant, installation) = (pending.tenant.as_str(), pending.installation.as_str());
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").map(|d| format!(": {d}")).unwrap_or_default();
            self.record_change(tenant, installation, format!("OAuth authorization refused: {error}"), vec![]);
            return Err(CallbackFailure {
                refused: true,
                error: Error::bad_request(format!(
                    "The provider did not authorize installation {installation} ({error}{description})."
                )),
            });
        }
        let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
            return Err(failed(Error::bad_request("The request has no code parameter.")));
        };
        match self.finish_authorization(&pending, code).await {
            Ok(name) => Ok(format!("Installation {name} ({installation}) is connected. You can close this window.")),
            Err(e) => {
                self.record_change(
                    tenant,
                    installation,
                    format!("OAuth code exchange failed: {}", e.message()),
                    vec![],
                );
                Err(failed(e))
            }
        }
    }

    async fn finish_authorization(&self, pending: &OAuthState, code: &str) -> Result<String, Error> {
        let (tenant, installation) = (pending.tenant.as_str(), pending.installation.as_str());
        let row = self.get_installation(tenant, installation).await?;
        let r = self.prepared_for(&row).await?;
        let ctx = r.oauth.as_ref().ok_or_else(|| not_oauth(installation))?;
        let verifier = match &pending.verifier {
            Some(sealed) => Some(self.open_token(tenant, installation, "oauth:verifier", sealed)?),
            None => None,
        };
        let client = ctx.client()?;
        let t = client
            .exchange_code(
                self.runtime.http_client(),
                code,
                &pending.redirect_uri,
                verifier.as_ref().map(Secret::expose),
            )
            .await
            .map_err(|e| Error::new(ErrorKind::Provider(Provider::OAuthExchangeFailed), e.to_string()))?;
        let tokens =
            self.new_tokens(tenant, installation, OAuthGrant::AuthorizationCode, &t, t.refresh_token.is_some())?;
        let g =
            self.store.store_oauth_grant(tenant, installation, OAuthGrant::AuthorizationCode.as_str(), &tokens).await?;
        self.current_from(&g)?;
        self.record_change(
            tenant,
            installation,
            "OAuth authorization completed".into(),
            vec![
                ("version".into(), g.version.to_string()),
                ("refresh_token".into(), t.refresh_token.is_some().to_string()),
            ],
        );
        Ok(row.name)
    }

    /// The grant as the API shows it: never a token.
    pub async fn oauth_status(&self, tenant: &str, installation: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, installation).await?;
        let r = self.prepared_for(&row).await?;
        let ctx = r.oauth.as_ref().ok_or_else(|| not_oauth(installation))?;
        let grant = self.store.oauth_grant(tenant, installation).await?;
        Ok(grant_view(installation, &ctx.spec, grant.as_ref()))
    }

    /// Refreshes now, unless the token of `version` was already replaced (then answers the
    /// current one): the same single-flight path as calls.
    pub async fn oauth_refresh_now(
        &self,
        tenant: &str,
        installation: &str,
        version: Option<i64>,
    ) -> Result<Value, Error> {
        let row = self.get_installation(tenant, installation).await?;
        let r = self.prepared_for(&row).await?;
        let ctx = r.oauth.as_ref().ok_or_else(|| not_oauth(installation))?;
        if self.store.oauth_grant(tenant, installation).await?.is_none()
            && ctx.spec.grant == OAuthGrant::AuthorizationCode
        {
            return Err(Error::conflict(
                Conflict::OAuthNotConnected,
                format!("installation {installation} has no OAuth grant to refresh"),
            ));
        }
        self.refresh_token(tenant, installation, ctx, version).await?;
        let grant = self.store.oauth_grant(tenant, installation).await?;
        Ok(grant_view(installation, &ctx.spec, grant.as_ref()))
    }

    /// Disconnects: revokes the refresh (else access) token at the provider when the manifest
    /// names a revocation endpoint, and forgets the grant.
    pub async fn oauth_disconnect(&self, tenant: &str, installation: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, installation).await?;
        let r = self.prepared_for(&row).await?;
        let ctx = r.oauth.as_ref().ok_or_else(|| not_oauth(installation))?;
        let Some(g) = self.store.delete_oauth_grant(tenant, installation).await? else {
            return Err(Error::missing(Missing::OAuthGrant, format!("installation {installation} has no OAuth grant")));
        };
        self.oauth.forget(&key(tenant, installation));
        let (field, sealed, hint) = match &g.refresh_token {
            Some(rt) => ("oauth:refresh_token", rt.as_slice(), "refresh_token"),
            None => ("oauth:access_token", g.access_token.as_slice(), "access_token"),
        };
        let revoked = match (ctx.client(), self.open_token(tenant, installation, field, sealed)) {
            (Ok(client), Ok(token)) => match client.revoke(self.runtime.http_client(), &token, hint).await {
                Ok(done) => json!(done),
                Err(e) => json!(format!("failed: {e}")),
            },
            _ => json!(false),
        };
        self.record_change(
            tenant,
            installation,
            "OAuth grant removed".into(),
            vec![("revoked".into(), revoked.to_string())],
        );
        Ok(json!({ "installation": installation, "connected": false, "revoked": revoked }))
    }

    /// One pass of the background refresher: every grant due ahead of expiry.
    pub async fn refresh_due_tokens(&self) -> Result<usize, Error> {
        let due = self.store.due_oauth_refreshes(50).await?;
        let mut done = 0;
        for (tenant, installation, version) in due {
            let Ok(row) = self.get_installation(&tenant, &installation).await else { continue };
            let r = match self.prepared_for(&row).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(tenant, installation, "not refreshing: {}", e.message());
                    continue;
                }
            };
            let Some(ctx) = r.oauth.as_ref() else { continue };
            match self.refresh_token(&tenant, &installation, ctx, Some(version)).await {
                Ok(_) => done += 1,
                Err(e) => tracing::info!(tenant, installation, "background refresh failed: {}", e.message()),
            }
        }
        Ok(done)
    }
}

fn not_oauth(installation: &str) -> Error {
    Error::conflict(
        Conflict::NotOAuth,
        format!("the connector of installation {installation} declares no [oauth2] credentials"),
    )
}

fn grant_view(installation: &str, spec: &OAuth2Spec, g: Option<&GrantRow>) -> Value {
    let Some(g) = g else {
        return json!({ "installation": installation, "grant_type": spec.grant.as_str(), "connected": false });
    };
    json!({
        "installation": installation,
        "grant_type": g.grant_type,
        "connected": true,
        "status": g.status,
        "version": g.version,
        "scope": g.scope,
        "token_type": g.token_type,
        "has_refresh_token": g.refresh_token.is_some(),
        "expires_at": g.expires_at.map(rfc3339),
        "refresh_at": g.refresh_at.map(rfc3339),
        "obtained_at": rfc3339(g.obtained_at),
        "refreshed_at": rfc3339(g.refreshed_at),
        "failures": g.failures,
        "last_error": g.last_error,
    })
}

/// Runs [`App::refresh_due_tokens`] every `tick` until the process ends.
pub fn spawn_refresher(app: App, tick: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = app.refresh_due_tokens().await {
                tracing::warn!("OAuth refresher: {}", e.message());
            }
        }
    });
}
