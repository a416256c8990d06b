-- The change log behind the hosts' configuration caches, PostgreSQL flavour. Keep in step with
-- ../sqlite/0010_config_changes.sql. Every insert, update or delete of a row that a cache holds
-- (tenants, API keys, installations — credentials bump their revision —, webhook hooks, routes,
-- connector versions) records the row's tenant here in the same transaction ('' for operator
-- keys and public connector versions: every tenant), and NOTIFYs the hosts listening on
-- `patchbay_config` at commit. Hosts read the log after the highest id they have seen (see
-- host/services/src/config_cache.rs); rows older than an hour are pruned.
CREATE TABLE config_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX config_changes_at ON config_changes (at);

-- TG_ARGV[0]: the column holding the row's tenant.
CREATE FUNCTION patchbay_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        t := COALESCE(to_jsonb(OLD) ->> TG_ARGV[0], '');
    ELSE
        t := COALESCE(to_jsonb(NEW) ->> TG_ARGV[0], '');
    END IF;
    INSERT INTO config_changes (tenant, at)
        VALUES (t, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    PERFORM pg_notify('patchbay_config', t);
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_config_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('id');
CREATE TRIGGER api_keys_config_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('tenant');
CREATE TRIGGER installations_config_changed AFTER INSERT OR UPDATE OR DELETE ON installations
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('tenant');
CREATE TRIGGER installation_hooks_config_changed AFTER INSERT OR UPDATE OR DELETE ON installation_hooks
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('tenant');
CREATE TRIGGER routes_config_changed AFTER INSERT OR UPDATE OR DELETE ON routes
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('tenant');
CREATE TRIGGER connector_versions_config_changed AFTER INSERT OR UPDATE OR DELETE ON connector_versions
    FOR EACH ROW EXECUTE FUNCTION patchbay_config_changed('owner');
