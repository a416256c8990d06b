-- Retention: per-tenant policies, the lease of host-wide background jobs, and the indexes the
-- retention sweep reads by. SQLite flavour; keep in step with ../postgres/0008_retention.sql.
-- Timestamps are unix milliseconds. How the rows move is described in host/store/src/retention.rs
-- and docs/retention.md.

-- A tenant's overrides of the operator's retention defaults (normalized JSON written by the
-- services: {"events": {"max_age_secs": 86400, "max_count": 1000}, ...}).
CREATE TABLE retention_policies (
    tenant TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    policy_json TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Host-wide periodic jobs that one host at a time runs (the retention sweep): who holds the job
-- until when, and when it last finished.
CREATE TABLE job_leases (
    name TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    lease_owner TEXT,
    lease_until INTEGER,
    last_run_at INTEGER
);

-- Age and count sweeps per tenant, oldest first.
CREATE INDEX operation_logs_tenant_at ON operation_logs (tenant, at_ms);
CREATE INDEX ingress_requests_tenant_received ON ingress_requests (tenant, received_at);
-- Deleted records (the change feed's tombstones) by stream and age; live records are not in it.
CREATE INDEX records_tombstones ON records (stream, deleted_at) WHERE op = 'deleted';
-- Whether any destination still holds an exported record (a tombstone it has not consumed).
CREATE INDEX record_links_local_id ON record_links (local_id);
