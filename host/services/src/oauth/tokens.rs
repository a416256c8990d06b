//! [`Tokens`]: each OAuth installation's current access token — this host's copy while it is
//! fresh, else the stored grant, refreshed ahead of expiry or after a connector's 401, once per
//! process (a lock per installation) and once across hosts (the store's lease and version check).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patchbay_core::error::{Conflict, Error, ErrorKind, Provider};
use patchbay_core::{new_id, now_ms};
use patchbay_crypto::Keyring;
use patchbay_registry::{OAuth2Spec, OAuthGrant};
use patchbay_runtime::capability::credentials::Secret;
use patchbay_runtime::egress::Egress;
use patchbay_store::oauth::{GrantRow, NewTokens, RefreshClaim, StatusEvent};
use patchbay_store::{NewEvent, Store, StoreError};
use serde_json::json;

use super::client::{OAuthClient, TokenError, TokenResponse};
use crate::changes::ChangeLog;
use crate::events::host_event;
use crate::metrics::Metrics;
use crate::routing::Router;

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

/// What a connector call needs of the OAuth side: the manifest's spec, the installation's
/// configuration (URL templates) and the tenant's client credentials.
pub struct OAuthContext {
    /// The manifest's `[oauth2]` section.
    pub spec: OAuth2Spec,
    /// The credential key the connector reads the access token under.
    pub token_key: String,
    /// The installation's configuration, for the endpoint URL templates.
    pub config: BTreeMap<String, String>,
    /// The OAuth client id from the installation's credentials; `None` when not set.
    pub client_id: Option<Secret>,
    /// The OAuth client secret from the installation's credentials; `None` when not set.
    pub client_secret: Option<Secret>,
}

impl OAuthContext {
    pub(crate) fn client(&self) -> Result<OAuthClient<'_>, Error> {
        OAuthClient::new(&self.spec, &self.config, self.client_id.as_ref(), self.client_secret.as_ref())
            .map_err(|m| Error::conflict(Conflict::OAuthNotConfigured, m))
    }
}

/// An access token as this host last saw it.
#[derive(Debug)]
pub struct CurrentToken {
    /// The grant's version this token was stored under.
    pub version: i64,
    /// When the grant was authorized: a reconnected grant starts its versions again.
    pub obtained_at: i64,
    /// The access token.
    pub access: Secret,
    /// When it expires, in unix milliseconds; `None` when the provider gave no lifetime.
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
struct OAuthTokens {
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
    let kind = match e {
        TokenError::Blocked(_) => Provider::OAuthBlocked,
        _ => Provider::OAuthUnavailable,
    };
    Error::new(ErrorKind::Provider(kind), format!("refreshing the access token failed: {e}"))
}

/// When to refresh a token ahead of its expiry: half its lifetime before, at most five minutes.
fn refresh_at(now: i64, expires_at: Option<i64>, refreshable: bool) -> Option<i64> {
    let expires_at = expires_at.filter(|_| refreshable)?;
    let lifetime = (expires_at - now).max(0);
    Some(expires_at - (lifetime / 2).min(REFRESH_AHEAD_MAX_MS))
}

/// What token handling needs from the rest of the host.
pub struct TokensDeps {
    /// Where grants are stored.
    pub store: Store,
    /// Seals and opens tokens.
    pub keyring: Arc<Keyring>,
    /// The host's way out: the operator's network policy applies to token endpoints.
    pub http: Egress,
    /// Turns the `installation.reauth_required` event into deliveries by the tenant's routes.
    pub router: Arc<Router>,
    /// Records token changes in the installation's operation log.
    pub changes: Arc<ChangeLog>,
    /// Counts refreshes by outcome.
    pub metrics: Arc<Metrics>,
}

/// Each OAuth installation's access token: this host's copy, the stored grant, refreshes.
pub struct Tokens {
    store: Store,
    keyring: Arc<Keyring>,
    http: Egress,
    router: Arc<Router>,
    changes: Arc<ChangeLog>,
    metrics: Arc<Metrics>,
    current: OAuthTokens,
}

impl Tokens {
    pub(crate) fn new(d: TokensDeps) -> Self {
        Self {
            store: d.store,
            keyring: d.keyring,
            http: d.http,
            router: d.router,
            changes: d.changes,
            metrics: d.metrics,
            current: OAuthTokens::default(),
        }
    }

    /// The guarded way out token requests go through.
    pub(crate) fn http(&self) -> &Egress {
        &self.http
    }

    /// Forgets this host's copy of an installation's token (after a disconnect).
    pub(crate) fn forget(&self, tenant: &str, installation: &str) {
        self.current.forget(&key(tenant, installation));
    }

    pub(crate) fn seal_token(
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

    pub(crate) fn open_token(
        &self,
        tenant: &str,
        installation: &str,
        field: &str,
        sealed: &[u8],
    ) -> Result<Secret, Error> {
        let plain = self.keyring.open(tenant, installation, field, sealed).map_err(|e| {
            Error::internal(format!("the OAuth token of installation {installation} cannot be opened: {e}"))
        })?;
        Ok(Secret::new(String::from_utf8_lossy(&plain).into_owned()))
    }

    /// Seals a token response for storing.
    ///
    /// `has_refresh_token`: a refresh token is stored after this (received now or kept).
    pub(crate) fn new_tokens(
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

    pub(crate) fn current_from(&self, g: &GrantRow) -> Result<Arc<CurrentToken>, Error> {
        let access = self.open_token(&g.tenant, &g.installation, "oauth:access_token", &g.access_token)?;
        let token =
            Arc::new(CurrentToken { version: g.version, obtained_at: g.obtained_at, access, expires_at: g.expires_at });
        self.current.put(key(&g.tenant, &g.installation), token.clone());
        Ok(token)
    }

    /// The access token a call of this installation uses: this host's copy while it is fresh,
    /// else the stored one, refreshed first when it is about to expire. A client-credentials
    /// installation obtains its first token here.
    pub(crate) async fn access_token(
        &self,
        tenant: &str,
        installation: &str,
        ctx: &OAuthContext,
    ) -> Result<Arc<CurrentToken>, Error> {
        let k = key(tenant, installation);
        let now = now_ms();
        if let Some(t) = self.current.get(&k)
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
        let flight = self.current.flight(&k);
        let _guard = flight.lock().await;
        if let Some(g) = self.store.oauth_grant(tenant, installation).await? {
            return self.current_from(&g);
        }
        let client = ctx.client()?;
        let t = client.client_credentials(&self.http).await.map_err(|e| unavailable(&e))?;
        let tokens = self.new_tokens(tenant, installation, OAuthGrant::ClientCredentials, &t, false)?;
        let g =
            self.store.store_oauth_grant(tenant, installation, OAuthGrant::ClientCredentials.as_str(), &tokens).await?;
        self.changes.record(tenant, installation, "OAuth token obtained (client credentials)".into(), vec![]);
        self.current_from(&g)
    }

    /// Replaces the access token of version `expected` (`None`: whatever is stored) and returns
    /// the new one; when another task or host already did, returns theirs without asking the
    /// provider again.
    pub(crate) async fn refresh_token(
        &self,
        tenant: &str,
        installation: &str,
        ctx: &OAuthContext,
        expected: Option<i64>,
    ) -> Result<Arc<CurrentToken>, Error> {
        let k = key(tenant, installation);
        let flight = self.current.flight(&k);
        let _guard = flight.lock().await;
        if let (Some(t), Some(v)) = (self.current.get(&k), expected)
            && t.version > v
        {
            return Ok(t);
        }
        let owner = format!("{}/{}", crate::dispatch::worker::owner_name(), new_id("r"));
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
        let http = &self.http;
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
                        self.changes.record(
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
                self.changes.record(
                    tenant,
                    installation,
                    format!("OAuth refresh failed: {e}"),
                    vec![("failures".into(), failure.failures.to_string())],
                );
                if failure.reauth_required {
                    self.current.forget(&k);
                    tracing::warn!(tenant, installation, "OAuth grant needs a new authorization: {e}");
                    return Err(reauth_error(installation));
                }
                Err(unavailable(&e))
            }
        }
    }

    fn reauth_event(&self, tenant: &str, installation: &str, e: &TokenError) -> NewEvent {
        host_event(
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
}
