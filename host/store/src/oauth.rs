//! `oauth_grants` and `oauth_states`: the host-owned OAuth 2.0 token sets and the authorization
//! requests waiting for their callback.
//!
//! A grant's `version` grows with every stored access token. Refreshing is single-flight across
//! hosts in two steps, so no database lock is held across the token request:
//!
//! 1. [`Store::begin_oauth_refresh`] locks the row (`SELECT … FOR UPDATE` on PostgreSQL; the
//!    `BEGIN IMMEDIATE` write lock on SQLite) and checks the version the caller wants to replace.
//!    If another host already stored a newer one, that one is the answer (no token request). If
//!    another host holds an unexpired refresh lease, the caller waits for it. Otherwise the caller
//!    takes the lease and commits.
//! 2. The caller asks the provider, then [`Store::complete_oauth_refresh`] stores the new tokens
//!    (a rotated refresh token included) with `version + 1` — only while it still holds the lease
//!    — before the new access token is used anywhere. [`Store::fail_oauth_refresh`] counts a
//!    failure instead and, past the limit or on a definitive refusal, marks the grant and the
//!    installation `reauth_required` and stores the `installation.reauth_required` event with its
//!    deliveries in the same transaction.
//!
//! Token columns hold ciphertexts sealed by the keyring; this module never sees a token.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::{NewDelivery, NewEvent};
use super::{Backend, Rows, Store, StoreError, now_ms};

/// Status of a grant that yields access tokens.
pub const GRANT_ACTIVE: &str = "active";
/// Installation status while its OAuth grant needs a new authorization.
pub(crate) const INSTALLATION_REAUTH: &str = "reauth_required";

/// A stored grant. Token fields are ciphertexts.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// The tenant's id.
    pub tenant: String,
    /// The installation the grant belongs to.
    pub installation: String,
    /// How the tokens were obtained: `authorization_code` or `client_credentials`.
    pub grant_type: String,
    /// [`GRANT_ACTIVE`], or `reauth_required` after a refused refresh or too many failed ones.
    pub status: String,
    /// Id of the master key the tokens are sealed under.
    pub key_id: String,
    /// The sealed access token.
    pub access_token: Vec<u8>,
    /// The sealed refresh token; `None` when the provider issued none.
    pub refresh_token: Option<Vec<u8>>,
    /// The token type the provider gave (normally `Bearer`); `None` when it gave none.
    pub token_type: Option<String>,
    /// The scopes the provider granted, space-separated; `None` when it did not say.
    pub scope: Option<String>,
    /// When the access token expires, in unix milliseconds; `None`: no lifetime given.
    pub expires_at: Option<i64>,
    /// When to refresh the access token, in unix milliseconds; `None` when it is not refreshed
    /// ahead of time (no lifetime, or nothing to refresh with).
    pub refresh_at: Option<i64>,
    /// Grows by one with every stored access token, starting at 1.
    pub version: i64,
    /// Who holds the refresh lease (a host process and a request id), valid until `lease_until`.
    pub lease_owner: Option<String>,
    /// When the refresh lease expires, in unix milliseconds.
    pub lease_until: Option<i64>,
    /// Failed refreshes in a row; reset by a successful one.
    pub failures: i64,
    /// The last refresh failure's message; `None` after a success.
    pub last_error: Option<String>,
    /// When the grant was stored (authorization or client credentials), in unix milliseconds.
    pub obtained_at: i64,
    /// When the access token was last stored, in unix milliseconds.
    pub refreshed_at: i64,
}

impl std::fmt::Debug for GrantRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRow")
            .field("installation", &self.installation)
            .field("status", &self.status)
            .field("version", &self.version)
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

const GRANT_COLUMNS: &str = "tenant, installation, grant_type, status, key_id, access_token, refresh_token, token_type, \
     scope, expires_at, refresh_at, version, lease_owner, lease_until, failures, last_error, obtained_at, refreshed_at";

fn grant_from(row: &AnyRow) -> Result<GrantRow, sqlx::Error> {
    Ok(GrantRow {
        tenant: row.try_get("tenant")?,
        installation: row.try_get("installation")?,
        grant_type: row.try_get("grant_type")?,
        status: row.try_get("status")?,
        key_id: row.try_get("key_id")?,
        access_token: row.try_get("access_token")?,
        refresh_token: row.try_get("refresh_token")?,
        token_type: row.try_get("token_type")?,
        scope: row.try_get("scope")?,
        expires_at: row.try_get("expires_at")?,
        refresh_at: row.try_get("refresh_at")?,
        version: row.try_get("version")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        failures: row.try_get("failures")?,
        last_error: row.try_get("last_error")?,
        obtained_at: row.try_get("obtained_at")?,
        refreshed_at: row.try_get("refreshed_at")?,
    })
}

/// Tokens to store, already sealed under `key_id`.
#[derive(Clone)]
pub struct NewTokens {
    /// Id of the master key the tokens are sealed under.
    pub key_id: String,
    /// The sealed access token.
    pub access_token: Vec<u8>,
    /// `None` keeps the stored refresh token (the provider did not rotate it).
    pub refresh_token: Option<Vec<u8>>,
    /// The token type the provider gave; `None` when it gave none.
    pub token_type: Option<String>,
    /// The scopes the provider granted; `None` when it did not say (a refresh keeps the stored ones).
    pub scope: Option<String>,
    /// When the access token expires, in unix milliseconds; `None`: no lifetime given.
    pub expires_at: Option<i64>,
    /// When to refresh the access token, in unix milliseconds; `None` when it is not refreshed
    /// ahead of time (no lifetime, or nothing to refresh with).
    pub refresh_at: Option<i64>,
}

/// A pending authorization request.
#[derive(Clone)]
pub struct OAuthState {
    /// SHA-256 (hex) of the `state` parameter.
    pub state_hash: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation being authorized.
    pub installation: String,
    /// The callback URL given to the provider, sent again when the code is exchanged.
    pub redirect_uri: String,
    /// The sealed PKCE verifier.
    pub verifier: Option<Vec<u8>>,
    /// When the request was made, in unix milliseconds.
    pub created_at: i64,
    /// When the request expires, in unix milliseconds.
    pub expires_at: i64,
}

/// What [`Store::begin_oauth_refresh`] found.
#[derive(Debug)]
pub enum RefreshClaim {
    /// The caller holds the lease and should ask the provider; the grant as it was.
    Leased(GrantRow),
    /// A newer version than the one the caller wanted to replace is stored: use it.
    Current(GrantRow),
    /// Another host is refreshing until this time; wait and ask again.
    Busy {
        /// When the other host's lease expires, in unix milliseconds.
        until: i64,
    },
    /// The grant needs a new authorization; nothing to refresh.
    ReauthRequired(GrantRow),
}

/// A host-made event and its deliveries, stored only if the transition it announces happens.
pub struct StatusEvent<'a> {
    /// The event announcing the transition.
    pub event: &'a NewEvent,
    /// Its deliveries.
    pub deliveries: &'a [NewDelivery],
}

/// What [`Store::fail_oauth_refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshFailure {
    /// Consecutive failures, this one included.
    pub failures: i64,
    /// This failure made the grant `reauth_required` (the event was stored).
    pub reauth_required: bool,
    /// The lease had been lost; nothing was written.
    pub lease_lost: bool,
}

impl Store {
    /// The installation's grant, if it has one.
    pub async fn oauth_grant(&self, tenant: &str, installation: &str) -> Result<Option<GrantRow>, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE tenant = $1 AND installation = $2"))
                .bind(tenant)
                .bind(installation)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.as_ref().map(grant_from).transpose()?)
    }

    /// Stores a new authorization (code exchange or client credentials): a new version, status
    /// active, no failures. An installation waiting for re-authorization becomes `active`.
    pub async fn store_oauth_grant(
        &self,
        tenant: &str,
        installation: &str,
        grant_type: &str,
        tokens: &NewTokens,
    ) -> Result<GrantRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT version FROM oauth_grants WHERE tenant = $1 AND installation = $2")
                .bind(tenant)
                .bind(installation)
                .fetch_optional(&mut *tx)
                .await?;
        let version = previous.unwrap_or(0) + 1;
        sqlx::query("DELETE FROM oauth_grants WHERE tenant = $1 AND installation = $2")
            .bind(tenant)
            .bind(installation)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO oauth_grants ({GRANT_COLUMNS}) \
             VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, 0, NULL, $12, $12) \
             RETURNING {GRANT_COLUMNS}"
        ))
        .bind(tenant)
        .bind(installation)
        .bind(grant_type)
        .bind(&tokens.key_id)
        .bind(tokens.access_token.as_slice())
        .bind(tokens.refresh_token.as_deref())
        .bind(tokens.token_type.as_deref())
        .bind(tokens.scope.as_deref())
        .bind(tokens.expires_at)
        .bind(tokens.refresh_at)
        .bind(version)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| super::missing_installation(e, installation))?;
        sqlx::query(
            "UPDATE installations SET status = 'active', updated_at = $3 \
             WHERE tenant = $1 AND id = $2 AND status = 'reauth_required'",
        )
        .bind(tenant)
        .bind(installation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(grant_from(&row)?)
    }

    /// Step 1 of a refresh: see the module doc. `expected` is the version the caller holds (or
    /// saw failing); `None` refreshes whatever is stored.
    pub async fn begin_oauth_refresh(
        &self,
        tenant: &str,
        installation: &str,
        expected: Option<i64>,
        owner: &str,
        lease_ms: i64,
    ) -> Result<RefreshClaim, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE tenant = $1 AND installation = $2{lock}"
        ))
        .bind(tenant)
        .bind(installation)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(grant) = row.as_ref().map(grant_from).transpose()? else {
            return Err(StoreError::NotFound(format!("installation {installation} has no OAuth grant")));
        };
        if grant.status != GRANT_ACTIVE {
            return Ok(RefreshClaim::ReauthRequired(grant));
        }
        if expected.is_some_and(|v| v != grant.version) {
            return Ok(RefreshClaim::Current(grant));
        }
        if let (Some(holder), Some(until)) = (&grant.lease_owner, grant.lease_until)
            && holder != owner
            && until > now
        {
            return Ok(RefreshClaim::Busy { until });
        }
        sqlx::query(
            "UPDATE oauth_grants SET lease_owner = $3, lease_until = $4 \
             WHERE tenant = $1 AND installation = $2",
        )
        .bind(tenant)
        .bind(installation)
        .bind(owner)
        .bind(now + lease_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshClaim::Leased(grant))
    }

    /// Step 2 of a successful refresh: stores the new tokens as `version + 1` if `owner` still
    /// holds the lease; `None` when it lost it (another host took over after it expired).
    pub async fn complete_oauth_refresh(
        &self,
        tenant: &str,
        installation: &str,
        owner: &str,
        tokens: &NewTokens,
    ) -> Result<Option<GrantRow>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE oauth_grants SET key_id = $4, access_token = $5, \
                 refresh_token = COALESCE($6, refresh_token), \
                 token_type = $7, scope = COALESCE($8, scope), expires_at = $9, refresh_at = $10, \
                 version = version + 1, lease_owner = NULL, lease_until = NULL, failures = 0, last_error = NULL, \
                 refreshed_at = $11 \
             WHERE tenant = $1 AND installation = $2 AND lease_owner = $3 AND status = 'active' \
             RETURNING {GRANT_COLUMNS}"
        ))
        .bind(tenant)
        .bind(installation)
        .bind(owner)
        .bind(&tokens.key_id)
        .bind(tokens.access_token.as_slice())
        .bind(tokens.refresh_token.as_deref())
        .bind(tokens.token_type.as_deref())
        .bind(tokens.scope.as_deref())
        .bind(tokens.expires_at)
        .bind(tokens.refresh_at)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(grant_from).transpose()?)
    }

    /// A failed refresh by the lease holder: counts it, releases the lease and retries no sooner
    /// than `retry_at`. With `definitive` (the provider refused the grant) or at `max_failures`,
    /// the grant and the installation become `reauth_required` and `event` is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail_oauth_refresh(
        &self,
        tenant: &str,
        installation: &str,
        owner: &str,
        error: &str,
        definitive: bool,
        max_failures: i64,
        retry_at: i64,
        event: StatusEvent<'_>,
    ) -> Result<RefreshFailure, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE oauth_grants SET failures = failures + 1, last_error = $4, lease_owner = NULL, lease_until = NULL, \
                 refresh_at = $5 \
             WHERE tenant = $1 AND installation = $2 AND lease_owner = $3 AND status = 'active' \
             RETURNING failures",
        )
        .bind(tenant)
        .bind(installation)
        .bind(owner)
        .bind(error)
        .bind(retry_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(failures) = failures else {
            return Ok(RefreshFailure { failures: 0, reauth_required: false, lease_lost: true });
        };
        let reauth = definitive || failures >= max_failures;
        if reauth {
            sqlx::query("UPDATE oauth_grants SET status = 'reauth_required' WHERE tenant = $1 AND installation = $2")
                .bind(tenant)
                .bind(installation)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE installations SET status = $3, updated_at = $4 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(installation)
                .bind(INSTALLATION_REAUTH)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let deliveries: Vec<&NewDelivery> = event.deliveries.iter().collect();
            super::ingress::insert_events(&mut tx, self.backend(), Rows::One, &[(event.event, None)], &deliveries)
                .await?;
        }
        tx.commit().await?;
        if reauth && !event.deliveries.is_empty() {
            self.wake_dispatchers();
        }
        Ok(RefreshFailure { failures, reauth_required: reauth, lease_lost: false })
    }

    /// Active grants due for a refresh ahead of expiry, with no live lease: `(tenant,
    /// installation, version)`, soonest first.
    pub async fn due_oauth_refreshes(&self, limit: u32) -> Result<Vec<(String, String, i64)>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT tenant, installation, version FROM oauth_grants \
             WHERE status = 'active' AND refresh_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY refresh_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant")?, r.try_get("installation")?, r.try_get("version")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Up to `limit` grants sealed under any key other than `key_id` (for key rotation).
    pub async fn oauth_grants_not_under(&self, key_id: &str, limit: u32) -> Result<Vec<GrantRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE key_id <> $1 ORDER BY installation LIMIT $2"
        ))
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(grant_from).collect::<Result<_, _>>()?)
    }

    /// Replaces a grant's ciphertexts if it still holds `old`'s tokens (compare-and-swap), so a
    /// refresh that stored new tokens meanwhile is never overwritten. `true` when replaced.
    pub async fn replace_oauth_ciphertexts(
        &self,
        old: &GrantRow,
        key_id: &str,
        access_token: &[u8],
        refresh_token: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE oauth_grants SET key_id = $4, access_token = $5, refresh_token = $6 \
             WHERE tenant = $1 AND installation = $2 AND version = $3 AND access_token = $7",
        )
        .bind(&old.tenant)
        .bind(&old.installation)
        .bind(old.version)
        .bind(key_id)
        .bind(access_token)
        .bind(refresh_token)
        .bind(old.access_token.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the installation's grant; the removed row, if there was one.
    pub async fn delete_oauth_grant(&self, tenant: &str, installation: &str) -> Result<Option<GrantRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM oauth_grants WHERE tenant = $1 AND installation = $2 RETURNING {GRANT_COLUMNS}"
        ))
        .bind(tenant)
        .bind(installation)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(grant_from).transpose()?)
    }

    /// Remembers an authorization request until its callback (or expiry).
    pub async fn put_oauth_state(&self, s: &OAuthState) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, tenant, installation, redirect_uri, verifier, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.state_hash)
        .bind(&s.tenant)
        .bind(&s.installation)
        .bind(&s.redirect_uri)
        .bind(s.verifier.as_deref())
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::missing_installation(e, &s.installation))?;
        // Requests never answered are forgotten as new ones arrive.
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(s.created_at).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (deletes and returns) an authorization request: a state works once.
    pub async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OAuthState>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 \
             RETURNING state_hash, tenant, installation, redirect_uri, verifier, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OAuthState {
            state_hash: row.try_get("state_hash")?,
            tenant: row.try_get("tenant")?,
            installation: row.try_get("installation")?,
            redirect_uri: row.try_get("redirect_uri")?,
            verifier: row.try_get("verifier")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}
