-- The records store keyed by stream, SQLite flavour; keep in step with
-- ../postgres/0005_record_streams.sql.
--
-- An (installation, entity) gets a small integer id once; its records carry that id instead of
-- the two text columns. Both B-trees of `records` (the key and the change sequence) then compare
-- short keys, which halves the cost of every stored record. Existing records move over.
CREATE TABLE record_streams (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    installation TEXT NOT NULL,
    entity TEXT NOT NULL CHECK (entity <> ''),
    UNIQUE (installation, entity),
    FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id) ON DELETE CASCADE
);

INSERT INTO record_streams (tenant, installation, entity)
SELECT DISTINCT tenant, installation, entity FROM records ORDER BY installation, entity;

-- `seq` is the record's last change in its stream's change sequence (readers page with `since`);
-- `op` is that change. A deleted record keeps its last payload. `seen_run` is the last run that
-- read it (a full run marks the records it did not see as deleted). `local_id` (`rec_` + 64
-- random bits) is not indexed: nothing looks records up by it, and a random key costs every
-- insert a random B-tree position.
CREATE TABLE records_by_stream (
    stream INTEGER NOT NULL REFERENCES record_streams (id) ON DELETE CASCADE,
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
    PRIMARY KEY (stream, external_id),
    UNIQUE (stream, seq)
);

INSERT INTO records_by_stream (stream, external_id, local_id, payload, hash, seq, op, first_seen_at,
                               last_seen_at, changed_at, deleted_at, seen_run)
SELECT s.id, r.external_id, r.local_id, r.payload, r.hash, r.seq, r.op, r.first_seen_at, r.last_seen_at,
       r.changed_at, r.deleted_at, r.seen_run
FROM records r JOIN record_streams s ON s.installation = r.installation AND s.entity = r.entity;

DROP TABLE records;
ALTER TABLE records_by_stream RENAME TO records;

-- The highest change sequence number of the stream when an import run wrote its first batch.
-- Records above it were written by the run itself, so a full run's deletion sweep only looks at
-- the records at or below it (none for a stream's first sync).
ALTER TABLE sync_runs ADD COLUMN base_seq INTEGER;
