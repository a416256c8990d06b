-- The fewest indexes the queries need on the write-heavy tables, sqlite flavour. Keep in step with
-- ../postgres/0011_fewer_indexes.sql. Every index is one more b-tree written per webhook, and (on
-- the deliveries) per claim and settlement: each index below was read by no query, or only by the
-- cascade from a deleted installation, which the unique indexes leading with the installation
-- serve (installation ids are unique across tenants) — on PostgreSQL; see below for SQLite.
-- docs/architecture.md lists which query uses which index.

-- Kept here, dropped on PostgreSQL: ingress_requests_tenant_installation and
-- events_tenant_source_created serve only the cascade from a deleted installation, whose lookup
-- is (tenant, installation). The unique indexes leading with the installation would serve it,
-- but SQLite picks between them and the (tenant, ...) list indexes by statistics, and a table not
-- yet analyzed (statistics are refreshed at start and after each retention sweep) would have the
-- cascade walk every request and event of the tenant while holding the write lock.
-- Only the events list's exact type filter used it; it walks events_tenant_created instead.
DROP INDEX events_tenant_type_created;
-- The status led the key and changed with every claim and settlement, so every state change
-- rewrote it; only dead deliveries are read by status (redrive, the dead count of /metrics,
-- whether a deleted route left any to redrive).
DROP INDEX deliveries_status_route;
CREATE INDEX deliveries_dead ON deliveries (tenant, route_id) WHERE status = 'dead';
-- The cascade from installations needs (tenant, destination_installation) only; without the
-- status, claims and settlements no longer rewrite it.
DROP INDEX deliveries_destination;
CREATE INDEX deliveries_destination ON deliveries (tenant, destination_installation);
-- With the destination third, the events list's installation filter probes one event's
-- deliveries.
DROP INDEX deliveries_event;
CREATE INDEX deliveries_event ON deliveries (tenant, event_id, destination_installation);
