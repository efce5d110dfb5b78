-- Authorization policies, one row per tenant. `policy` is the tenant's
-- PolicySet as JSON, exactly as written through the API.
--
-- `version` grows by one on every write (optimistic concurrency: a writer
-- names the version it read, and loses if another writer got there first),
-- and instances poll it to learn that their copy is stale.
--
-- Deleting a tenant keeps its row with `policy` NULL (a tombstone) and bumps
-- the version, so a tenant deleted and created again never reuses a version
-- another instance may still hold in memory and in its decision cache.
CREATE TABLE authz_policies (
    tenant        TEXT PRIMARY KEY,
    version       BIGINT NOT NULL,
    policy        TEXT,
    updated_at_ms BIGINT NOT NULL
);
