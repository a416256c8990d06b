-- Keyset pagination of the admin API's lists (host/store/src/page.rs). SQLite flavour; keep
-- in step with ../postgres/0009_list_pagination.sql. Each list reads one tenant's rows in
-- (created_at, id) order after the previous page's last row: these indexes let it seek there
-- instead of reading and sorting the tenant's rows from the start on every page.
CREATE INDEX installations_tenant_created ON installations (tenant, created_at, id);
CREATE INDEX routes_tenant_created ON routes (tenant, created_at, id);
CREATE INDEX sync_schedules_tenant_created ON sync_schedules (tenant, created_at, id);

-- Runs page newest first with the id breaking ties of one millisecond.
DROP INDEX sync_runs_tenant;
CREATE INDEX sync_runs_tenant ON sync_runs (tenant, created_at, id);
DROP INDEX sync_runs_installation;
CREATE INDEX sync_runs_installation ON sync_runs (tenant, installation, created_at, id);
