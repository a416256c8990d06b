//! [`Connections`]: connecting OAuth installations for the API — starting the authorization-code
//! flow, the provider's callback, a grant's status, refreshing now, disconnecting with revocation
//! (RFC 7009) — and the background refresher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use patchbay_core::error::{Conflict, Error, Missing, Provider};
use patchbay_core::{ErrorKind, now_ms};
use patchbay_registry::OAuthGrant;
use patchbay_runtime::capability::credentials::Secret;
use patchbay_store::Store;
use patchbay_store::oauth::{GrantRow, OAuthState};

use super::client::{TokenError, random_token};
use super::tokens::{STATE_TTL_MS, Tokens};
use crate::changes::ChangeLog;
use crate::installations::Installations;

/// The path of the callback, below the public URL.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// Why an authorization callback did not connect the installation.
#[derive(Debug)]
pub struct CallbackFailure {
    /// The user or the provider refused the authorization (as opposed to a failure).
    pub refused: bool,
    /// What went wrong, for the page shown to the user.
    pub error: Error,
}

/// A started authorization: where to send the user.
pub struct Authorization {
    /// `ins_<hex>`: the installation being connected.
    pub installation: String,
    /// The provider's authorization URL with client id, state, scopes and PKCE challenge.
    pub authorize_url: String,
    /// The host's callback URL the provider redirects back to.
    pub redirect_uri: String,
    /// Whether the request uses PKCE (S256).
    pub pkce: bool,
    /// When the state expires (unix ms).
    pub expires_at_ms: i64,
}

/// An installation's OAuth grant (never its tokens).
pub struct GrantStatus {
    /// `ins_<hex>`: the installation's id.
    pub installation: String,
    /// The manifest's grant type, for an installation not connected yet.
    pub grant_type: &'static str,
    /// The stored grant (its tokens sealed); `None` while not connected.
    pub grant: Option<GrantRow>,
}

/// What a disconnect did at the provider.
pub enum Revocation {
    /// The revocation endpoint accepted (`true`) or the manifest names none (`false`).
    Done(bool),
    /// The revocation request failed; the grant is gone from the host all the same.
    Failed(String),
}

/// What connecting needs from the rest of the host.
pub struct ConnectionsDeps {
    /// Where grants and pending authorizations are stored.
    pub store: Store,
    /// Resolves installations and their OAuth context.
    pub installations: Arc<Installations>,
    /// Seals, stores and refreshes tokens.
    pub tokens: Arc<Tokens>,
    /// Records connection changes in the installation's operation log.
    pub changes: Arc<ChangeLog>,
    /// The host's public base URL; the callback is below it.
    pub public_url: String,
}

/// Connecting installations to their OAuth providers.
pub struct Connections {
    store: Store,
    installations: Arc<Installations>,
    tokens: Arc<Tokens>,
    changes: Arc<ChangeLog>,
    public_url: String,
}

impl Connections {
    pub(crate) fn new(d: ConnectionsDeps) -> Self {
        Self {
            store: d.store,
            installations: d.installations,
            tokens: d.tokens,
            changes: d.changes,
            public_url: d.public_url,
        }
    }

    /// Starts the authorization-code flow: remembers a state and a PKCE verifier and returns the
    /// URL to open.
    pub async fn start(&self, tenant: &str, installation: &str) -> Result<Authorization, Error> {
        let (_, ctx) = self.installations.oauth_context(tenant, installation).await?;
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
            Some(v) => Some(self.tokens.seal_token(tenant, installation, "oauth:verifier", &Secret::new(v.clone()))?.1),
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
        self.changes.record(tenant, installation, "OAuth authorization started".into(), vec![]);
        Ok(Authorization {
            installation: installation.to_string(),
            authorize_url: url.as_str().to_string(),
            redirect_uri,
            pkce: verifier.is_some(),
            expires_at_ms: now + STATE_TTL_MS,
        })
    }

    /// The provider's redirect back: exchanges the code and stores the tokens. Answers the
    /// sentence the browser shows: that the installation is connected, or why not.
    pub async fn callback(&self, params: &HashMap<String, String>) -> Result<String, CallbackFailure> {
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
            self.changes.record(tenant, installation, format!("OAuth authorization refused: {error}"), vec![]);
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
                self.changes.record(
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
        let (row, ctx) = self.installations.oauth_context(tenant, installation).await?;
        let verifier = match &pending.verifier {
            Some(sealed) => Some(self.tokens.open_token(tenant, installation, "oauth:verifier", sealed)?),
            None => None,
        };
        let client = ctx.client()?;
        let t = client
            .exchange_code(self.tokens.http(), code, &pending.redirect_uri, verifier.as_ref().map(Secret::expose))
            .await
            .map_err(|e| {
                let kind = match e {
                    TokenError::Blocked(_) => Provider::OAuthBlocked,
                    _ => Provider::OAuthExchangeFailed,
                };
                Error::new(ErrorKind::Provider(kind), e.to_string())
            })?;
        let tokens = self.tokens.new_tokens(
            tenant,
            installation,
            OAuthGrant::AuthorizationCode,
            &t,
            t.refresh_token.is_some(),
        )?;
        let g =
            self.store.store_oauth_grant(tenant, installation, OAuthGrant::AuthorizationCode.as_str(), &tokens).await?;
        self.tokens.current_from(&g)?;
        self.changes.record(
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
    pub async fn status(&self, tenant: &str, installation: &str) -> Result<GrantStatus, Error> {
        let (_, ctx) = self.installations.oauth_context(tenant, installation).await?;
        let grant = self.store.oauth_grant(tenant, installation).await?;
        Ok(GrantStatus { installation: installation.to_string(), grant_type: ctx.spec.grant.as_str(), grant })
    }

    /// Refreshes now, unless the token of `version` was already replaced (then answers the
    /// current one): the same single-flight path as calls.
    pub async fn refresh_now(
        &self,
        tenant: &str,
        installation: &str,
        version: Option<i64>,
    ) -> Result<GrantStatus, Error> {
        let (_, ctx) = self.installations.oauth_context(tenant, installation).await?;
        if self.store.oauth_grant(tenant, installation).await?.is_none()
            && ctx.spec.grant == OAuthGrant::AuthorizationCode
        {
            return Err(Error::conflict(
                Conflict::OAuthNotConnected,
                format!("installation {installation} has no OAuth grant to refresh"),
            ));
        }
        self.tokens.refresh_token(tenant, installation, &ctx, version).await?;
        let grant = self.store.oauth_grant(tenant, installation).await?;
        Ok(GrantStatus { installation: installation.to_string(), grant_type: ctx.spec.grant.as_str(), grant })
    }

    /// Disconnects: revokes the refresh (else access) token at the provider when the manifest
    /// names a revocation endpoint, and forgets the grant.
    pub async fn disconnect(&self, tenant: &str, installation: &str) -> Result<Revocation, Error> {
        let (_, ctx) = self.installations.oauth_context(tenant, installation).await?;
        let Some(g) = self.store.delete_oauth_grant(tenant, installation).await? else {
            return Err(Error::missing(Missing::OAuthGrant, format!("installation {installation} has no OAuth grant")));
        };
        self.tokens.forget(tenant, installation);
        let (field, sealed, hint) = match &g.refresh_token {
            Some(rt) => ("oauth:refresh_token", rt.as_slice(), "refresh_token"),
            None => ("oauth:access_token", g.access_token.as_slice(), "access_token"),
        };
        let revoked = match (ctx.client(), self.tokens.open_token(tenant, installation, field, sealed)) {
            (Ok(client), Ok(token)) => match client.revoke(self.tokens.http(), &token, hint).await {
                Ok(done) => Revocation::Done(done),
                Err(e) => Revocation::Failed(e.to_string()),
            },
            _ => Revocation::Done(false),
        };
        self.changes.record(
            tenant,
            installation,
            "OAuth grant removed".into(),
            vec![("revoked".into(), revoked.to_string())],
        );
        Ok(revoked)
    }

    /// One pass of the background refresher: every grant due ahead of expiry.
    pub(crate) async fn refresh_due(&self) -> Result<usize, Error> {
        let due = self.store.due_oauth_refreshes(50).await?;
        let mut done = 0;
        for (tenant, installation, version) in due {
            let Ok(row) = self.installations.get(&tenant, &installation).await else { continue };
            let r = match self.installations.prepared_for(&row).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(tenant, installation, "not refreshing: {}", e.message());
                    continue;
                }
            };
            let Some(ctx) = r.oauth.as_ref() else { continue };
            match self.tokens.refresh_token(&tenant, &installation, ctx, Some(version)).await {
                Ok(_) => done += 1,
                Err(e) => tracing::info!(tenant, installation, "background refresh failed: {}", e.message()),
            }
        }
        Ok(done)
    }
}

/// `true`, `false`, or `failed: <why>` — also how the change log records it.
impl std::fmt::Display for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revocation::Done(done) => write!(f, "{done}"),
            Revocation::Failed(e) => write!(f, "\"failed: {e}\""),
        }
    }
}

/// Runs `Connections::refresh_due` every `tick` until the process ends.
pub fn spawn_refresher(connections: Arc<Connections>, tick: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = connections.refresh_due().await {
                tracing::warn!("OAuth refresher: {}", e.message());
            }
        }
    });
}
