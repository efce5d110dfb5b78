-- The actor and resource indexes lead with the event's bucket of 16,384 consecutive
-- indexes (`idx >> 14`), so that a batch of appends inserts into the newest bucket's
-- few pages of each index instead of one random page per event: every page an
-- append dirties is written to the WAL again at commit. Filtered reads walk the
-- buckets (crates/palisade-audit/src/store/filtered.rs, which must spell the same
-- expression for the index to be used).
DROP INDEX audit_entries_actor;
DROP INDEX audit_entries_resource;
CREATE INDEX audit_entries_actor_bucketed ON audit_entries (tenant, idx >> 14, actor_id, idx);
CREATE INDEX audit_entries_resource_bucketed
    ON audit_entries (tenant, idx >> 14, resource_type, resource_id, idx);
