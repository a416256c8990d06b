-- patchbay schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_initial.sql: the same
-- tables, columns and constraints, spelled for each backend. Timestamps are unix milliseconds.
-- Tables are created unqualified, in the first schema of search_path.
-- A landed migration is never edited; changes go into a new numbered file.

CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Admin API keys. Only a hash of the secret is stored. tenant IS NULL marks an operator key.
CREATE TABLE api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    tenant TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes_json TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- Component bytes, content-addressed by the sha256 of the bytes (hex).
CREATE TABLE component_blobs (
    digest TEXT NOT NULL PRIMARY KEY,
    bytes BYTEA NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    created_at BIGINT NOT NULL
);

-- owner = '' is the public catalog; otherwise the id of the tenant that uploaded a private connector.
CREATE TABLE connectors (
    owner TEXT NOT NULL DEFAULT '',
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    provider TEXT NOT NULL,
    bundle_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX connectors_id ON connectors (id);
CREATE INDEX connectors_category ON connectors (category);

-- Published versions are immutable; only the deprecation columns change.
CREATE TABLE connector_versions (
    owner TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES component_blobs (digest),
    manifest_json TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    signed_by TEXT,
    published_at BIGINT NOT NULL,
    deprecated_at BIGINT,
    sunset TEXT,
    deprecation_message TEXT,
    PRIMARY KEY (owner, connector_id, version),
    FOREIGN KEY (owner, connector_id) REFERENCES connectors (owner, id)
);
CREATE INDEX connector_versions_digest ON connector_versions (digest);

CREATE TABLE installations (
    id TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    connector_owner TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    version TEXT NOT NULL,
    api_version TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    status TEXT NOT NULL,
    config_json TEXT NOT NULL,
    limits_json TEXT NOT NULL,
    credentials_from TEXT,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant, name),
    UNIQUE (tenant, id),
    FOREIGN KEY (connector_owner, connector_id, version)
        REFERENCES connector_versions (owner, connector_id, version)
);
CREATE INDEX installations_connector ON installations (connector_owner, connector_id, version);

-- Sealed credential values (AES-256-GCM; the key id is also inside the ciphertext).
CREATE TABLE credentials (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    field TEXT NOT NULL,
    key_id TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (installation, field),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX credentials_key_id ON credentials (key_id);

CREATE TABLE operation_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    level_num BIGINT NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    fields_json TEXT NOT NULL
);
CREATE INDEX operation_logs_installation ON operation_logs (installation, id);

-- Connector state (the `state` capability). size = key bytes + value bytes, for the quota.
-- COLLATE "C" makes list_keys order bytewise, as on SQLite.
CREATE TABLE state (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    size BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, installation, key)
);
