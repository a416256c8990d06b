-- OAuth 2.0 grants owned by the host, pending authorizations, and installation health. SQLite
-- flavour; keep in step with ../postgres/0006_oauth_health.sql. Timestamps are unix milliseconds.
-- How the rows move is described in host/src/store/oauth.rs and host/src/store/health.rs.

-- The token set of an installation whose connector declares [oauth2]. Tokens are sealed like
-- credentials (AES-256-GCM, key id inside the ciphertext and in key_id); the refresh token never
-- leaves the host. `version` grows with every new access token: a refresh is single-flight
-- through the lease (a host refreshes only while it holds it) and a version check (a host that
-- wanted to refresh version n takes version n+1 when another host already stored it).
CREATE TABLE oauth_grants (
    installation TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials')),
    status TEXT NOT NULL CHECK (status IN ('active', 'reauth_required')),
    key_id TEXT NOT NULL,
    access_token BLOB NOT NULL,
    refresh_token BLOB,
    token_type TEXT,
    scope TEXT,
    -- When the access token expires (NULL: the provider did not say), and when the host
    -- refreshes it ahead of that.
    expires_at INTEGER,
    refresh_at INTEGER,
    version INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    -- Consecutive failed refreshes, and the last failure's reason (never a token).
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    obtained_at INTEGER NOT NULL,
    refreshed_at INTEGER NOT NULL,
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX oauth_grants_refresh_at ON oauth_grants (refresh_at) WHERE status = 'active';
CREATE INDEX oauth_grants_key_id ON oauth_grants (key_id);

-- Authorization requests waiting for their callback: the state (stored as its SHA-256), the
-- sealed PKCE verifier and where the code goes. Used once; expired rows are purged.
CREATE TABLE oauth_states (
    state_hash TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    verifier BLOB,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- The last health check of each installation, and when the next one is due (one host runs it:
-- the lease). Three consecutive failures set the installation's status to 'error'.
CREATE TABLE installation_health (
    installation TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'unconfigured')),
    message TEXT,
    checked_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_check_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX installation_health_next_check_at ON installation_health (next_check_at);
