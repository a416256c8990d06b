-- Event log and outbox, PostgreSQL flavour. Keep in step with ../sqlite/0002_events_outbox.sql.
-- Timestamps are unix milliseconds. See host/src/store/outbox.rs for how the rows move.

-- Raw webhook requests as received, never updated (only dedupe_key is cleared once it ages out,
-- see Store::purge_dedupe_keys_before). response_* is the answer given, replayed to duplicates.
CREATE TABLE ingress_requests (
    id TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    -- JSON array of [name, value] pairs in the order received.
    headers_json TEXT NOT NULL,
    body BYTEA NOT NULL,
    dedupe_key TEXT CHECK (dedupe_key <> ''),
    response_status BIGINT NOT NULL CHECK (response_status BETWEEN 100 AND 599),
    response_body TEXT NOT NULL,
    -- NULL keys never collide, on both backends.
    UNIQUE (installation, dedupe_key),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX ingress_requests_tenant_installation ON ingress_requests (tenant, installation, received_at);
CREATE INDEX ingress_requests_dedupe_age ON ingress_requests (received_at) WHERE dedupe_key IS NOT NULL;

-- Normalized events, from webhooks (ingress_id set) or from connectors' `events` import.
CREATE TABLE events (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    tenant TEXT NOT NULL,
    source_installation TEXT NOT NULL,
    event_type TEXT NOT NULL CHECK (event_type <> ''),
    subject TEXT,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL CHECK (idempotency_key <> ''),
    ingress_id TEXT REFERENCES ingress_requests (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (source_installation, idempotency_key),
    -- Target of deliveries' (tenant, event_id) foreign key, which keeps both in one tenant.
    UNIQUE (tenant, id),
    FOREIGN KEY (tenant, source_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX events_tenant_created ON events (tenant, created_at, id);
CREATE INDEX events_tenant_type_created ON events (tenant, event_type, created_at);
CREATE INDEX events_tenant_source_created ON events (tenant, source_installation, created_at);
CREATE INDEX events_ingress ON events (ingress_id) WHERE ingress_id IS NOT NULL;

-- One event's delivery to one destination (an operation of an installation), tracked on its own.
-- next_attempt_at is when the row is next claimable: the scheduled attempt while pending, the
-- lease expiry while leased. One partial index therefore serves claims, expired-lease recovery
-- and the dispatcher's next wake-up. attempts counts claims and numbers delivery_attempts rows;
-- schedule_base is attempts at the last redrive (the retry schedule restarts from there).
CREATE TABLE deliveries (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    event_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    route_id TEXT,
    destination_installation TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation <> ''),
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    status TEXT NOT NULL CHECK (status IN ('pending', 'leased', 'delivered', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    schedule_base BIGINT NOT NULL DEFAULT 0 CHECK (schedule_base >= 0 AND schedule_base <= attempts),
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((status = 'leased') = (lease_owner IS NOT NULL AND lease_until IS NOT NULL)),
    FOREIGN KEY (tenant, event_id) REFERENCES events (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, destination_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'leased');
CREATE INDEX deliveries_event ON deliveries (tenant, event_id);
CREATE INDEX deliveries_destination ON deliveries (tenant, destination_installation, status);
CREATE INDEX deliveries_status_route ON deliveries (status, tenant, route_id);

-- Every attempt of a delivery, by attempt number.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    outcome TEXT NOT NULL
        CHECK (outcome IN ('ok', 'retryable', 'permanent', 'rate-limited', 'unauthorized', 'error')),
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
