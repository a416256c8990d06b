-- Webhook hook ids and routing rules, SQLite flavour. Keep in step with
-- ../postgres/0003_hooks_routes.sql. Timestamps are unix milliseconds.

-- The public address of an installation's webhook ingress: POST /hooks/{hook_id}. An
-- unguessable token, one per installation, replaced when rotated (the old one stops working).
CREATE TABLE installation_hooks (
    hook_id TEXT NOT NULL PRIMARY KEY CHECK (length(hook_id) >= 32),
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);

-- Routing rules: events matching a rule become deliveries to its destination (see
-- host/src/routing.rs). Matching happens when an event is stored, in the same transaction.
CREATE TABLE routes (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    tenant TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (name <> ''),
    -- JSON array of event type globs (`expense.*`, `*`).
    event_types TEXT NOT NULL,
    source_installation TEXT,
    -- JSON object of payload conditions, or NULL.
    filter_json TEXT,
    destination_installation TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation <> ''),
    -- JSON template of the operation's arguments, or NULL for the default.
    payload_template TEXT,
    -- JSON array of retry delays in seconds, or NULL for the default schedule.
    retry_schedule TEXT,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    revision INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant, name),
    FOREIGN KEY (tenant, source_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, destination_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX routes_tenant ON routes (tenant, enabled);
