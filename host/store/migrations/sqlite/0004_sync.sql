-- Data sync: runs, cursors, the records store, id links, mappings and schedules. SQLite flavour;
-- keep in step with ../postgres/0004_sync.sql. Timestamps are unix milliseconds. How the rows
-- move is described in host/src/store/sync.rs.

-- One sync of one entity of an installation. Claimable while queued or running with
-- next_attempt_at <= now: for a queued run that is when it may start, for a running one when its
-- lease expires (a host that died leaves a run another host resumes from `cursor`).
CREATE TABLE sync_runs (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL CHECK (entity <> ''),
    direction TEXT NOT NULL CHECK (direction IN ('import', 'export')),
    mode TEXT NOT NULL CHECK (mode IN ('full', 'incremental')),
    -- Exports: the installation and entity whose records are written to `installation`.
    source_installation TEXT,
    source_entity TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    trigger TEXT NOT NULL CHECK (trigger IN ('api', 'schedule')),
    schedule_id TEXT,
    -- The cursor the run started from, and the last one committed with a batch.
    start_cursor TEXT,
    cursor TEXT,
    batches INTEGER NOT NULL DEFAULT 0,
    fetched INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    total INTEGER,
    -- Consecutive failed attempts of the current batch.
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    next_attempt_at INTEGER NOT NULL,
    -- Milliseconds spent running, summed over the run's leases (rate and ETA).
    active_ms INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL,
    CHECK ((direction = 'export') = (source_installation IS NOT NULL AND source_entity IS NOT NULL)),
    CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_until IS NOT NULL)),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, source_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
-- At most one active run per stream.
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (installation, entity, direction)
    WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_due ON sync_runs (next_attempt_at) WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_tenant ON sync_runs (tenant, created_at);
CREATE INDEX sync_runs_installation ON sync_runs (tenant, installation, created_at);

-- Item-level problems of a run (capped per run; the run's `failed` counter counts them all).
CREATE TABLE sync_errors (
    run_id TEXT NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    external_id TEXT,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, n)
);

-- Where the next incremental run of a stream starts: the final cursor of its last successful run.
-- `source` is '' for imports and `<installation>/<entity>` for exports.
CREATE TABLE sync_cursors (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('import', 'export')),
    source TEXT NOT NULL,
    cursor TEXT,
    run_id TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (installation, entity, direction, source),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);

-- The records store: imported records by (installation, entity, external id). `seq` is the
-- record's last change in the entity's change sequence (readers page with `since`); `op` is that
-- change. A deleted record keeps its last payload. `seen_run` is the last run that read it (a
-- full run marks the records it did not see as deleted). `local_id` (`rec_` + 64 random bits) is
-- not indexed: nothing looks records up by it, and a random key costs every insert a random
-- B-tree position.
CREATE TABLE records (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL,
    external_id TEXT NOT NULL CHECK (external_id <> ''),
    local_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    hash INTEGER NOT NULL,
    seq INTEGER NOT NULL CHECK (seq > 0),
    op TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    deleted_at INTEGER,
    seen_run TEXT,
    PRIMARY KEY (installation, entity, external_id),
    UNIQUE (installation, entity, seq),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);

-- Exports: which destination record (external id) a local record was written to.
CREATE TABLE record_links (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL,
    local_id TEXT NOT NULL,
    external_id TEXT NOT NULL CHECK (external_id <> ''),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (installation, entity, local_id),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX record_links_external ON record_links (installation, entity, external_id);

-- Field mappings (host/src/sync/mapping.rs), normalized JSON.
CREATE TABLE sync_mappings (
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL CHECK (entity <> ''),
    mapping TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (installation, entity),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);

-- Schedules: a run of the stream is queued when next_run_at passes (not when one is active).
CREATE TABLE sync_schedules (
    id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL CHECK (entity <> ''),
    direction TEXT NOT NULL CHECK (direction IN ('import', 'export')),
    mode TEXT NOT NULL CHECK (mode IN ('full', 'incremental')),
    source_installation TEXT,
    source_entity TEXT,
    interval_secs INTEGER,
    cron TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    next_run_at INTEGER NOT NULL,
    last_run_id TEXT,
    last_fired_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((interval_secs IS NULL) <> (cron IS NULL)),
    UNIQUE (installation, entity, direction),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, source_installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);
CREATE INDEX sync_schedules_due ON sync_schedules (next_run_at) WHERE enabled = 1;
CREATE INDEX sync_schedules_tenant ON sync_schedules (tenant, installation);
