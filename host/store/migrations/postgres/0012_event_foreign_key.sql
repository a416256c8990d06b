-- A delivery's foreign key names its event by id alone, postgres only (SQLite looks a foreign key
-- up through the parent's unique index, whatever its statistics; its schema keeps the pair).
--
-- PostgreSQL checks a foreign key with a query it plans once per connection and keeps.
-- `tenant = $1 AND id = $2` could be answered by UNIQUE (tenant, id) or by walking
-- events_tenant_created (tenant, created_at, id) through all of the tenant's events: on tables
-- without statistics (a new database, a host's first minutes) the two cost the same, and a
-- connection that chose the walk kept it. Measured: three quarters of the database's CPU during
-- webhook ingest went to those walks, and ingest ran at a third of its speed. `id = $1` has one
-- index that leads with it, the primary key. The tenant of a delivery is its event's: the store
-- refuses a delivery whose tenant differs from its event's before writing (`check_batch`).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_event_id_fkey;
-- The cascade from a deleted event finds its deliveries by event id.
DROP INDEX deliveries_event;
CREATE INDEX deliveries_event ON deliveries (event_id, destination_installation);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_id_fkey
    FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
-- Only the foreign key used it; an event by tenant and id is the primary key's lookup. One b-tree
-- fewer written per event.
ALTER TABLE events DROP CONSTRAINT events_tenant_id_key;
