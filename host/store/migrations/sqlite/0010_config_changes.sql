-- The change log behind the hosts' configuration caches, SQLite flavour. Keep in step with
-- ../postgres/0010_config_changes.sql. Every insert, update or delete of a row that a cache holds
-- (tenants, API keys, installations — credentials bump their revision —, webhook hooks, routes,
-- connector versions) records the row's tenant here in the same transaction ('' for operator
-- keys and public connector versions: every tenant). Hosts read the log after the highest id
-- they have seen (see host/services/src/config_cache.rs); rows older than an hour are pruned.
-- AUTOINCREMENT: an id is never handed out twice, even after the newest rows were pruned.
CREATE TABLE config_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX config_changes_at ON config_changes (at);

CREATE TRIGGER tenants_config_insert AFTER INSERT ON tenants BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER tenants_config_update AFTER UPDATE ON tenants BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER tenants_config_delete AFTER DELETE ON tenants BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (OLD.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER api_keys_config_insert AFTER INSERT ON api_keys BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (COALESCE(NEW.tenant, ''), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER api_keys_config_update AFTER UPDATE ON api_keys BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (COALESCE(NEW.tenant, ''), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER api_keys_config_delete AFTER DELETE ON api_keys BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (COALESCE(OLD.tenant, ''), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installations_config_insert AFTER INSERT ON installations BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installations_config_update AFTER UPDATE ON installations BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installations_config_delete AFTER DELETE ON installations BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (OLD.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installation_hooks_config_insert AFTER INSERT ON installation_hooks BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installation_hooks_config_update AFTER UPDATE ON installation_hooks BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER installation_hooks_config_delete AFTER DELETE ON installation_hooks BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (OLD.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER routes_config_insert AFTER INSERT ON routes BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER routes_config_update AFTER UPDATE ON routes BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER routes_config_delete AFTER DELETE ON routes BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (OLD.tenant, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER connector_versions_config_insert AFTER INSERT ON connector_versions BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.owner, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER connector_versions_config_update AFTER UPDATE ON connector_versions BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (NEW.owner, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER connector_versions_config_delete AFTER DELETE ON connector_versions BEGIN
    INSERT INTO config_changes (tenant, at)
        VALUES (OLD.owner, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
