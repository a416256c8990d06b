-- A version's compile state: an upload answers once its compile is done or a short wait has passed,
-- and a compile that outlasts the wait finishes in the background. `ready` versions run;
-- `compiling` ones are not callable yet; `failed` ones never will be (their bytes may be replaced
-- by a new upload of the same version). `state_at`: when the state was last set (unix ms), which
-- also lets another host take over a compile whose host stopped. Keep in step with
-- ../sqlite/0012_version_state.sql. Adding a column with a constant default rewrites nothing.
ALTER TABLE connector_versions ADD COLUMN state TEXT NOT NULL DEFAULT 'ready'
    CHECK (state IN ('compiling', 'ready', 'failed'));
ALTER TABLE connector_versions ADD COLUMN state_message TEXT;
ALTER TABLE connector_versions ADD COLUMN state_at BIGINT;
