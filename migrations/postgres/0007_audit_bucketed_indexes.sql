-- The actor, action and resource indexes lead with the event's bucket of 16,384
-- consecutive indexes (`idx >> 14`). Filtered reads walk the buckets in order
-- (crates/palisade-audit/src/store/filtered.rs, which must spell the same expression
-- for the index to be used). Why:
-- - Appends: a batch inserts into the newest bucket's few pages of each index instead
--   of one page per event spread over the whole index, and each page first dirtied
--   after a checkpoint costs a full-page image in the WAL.
-- - Action prefixes: the actions under a prefix come out of the index in action order,
--   so a page of the newest had to sort every match in the log (1 s at a million
--   events on PostgreSQL); now at most one bucket's.
DROP INDEX audit_entries_actor;
DROP INDEX audit_entries_action;
DROP INDEX audit_entries_resource;
CREATE INDEX audit_entries_actor_bucketed ON audit_entries (tenant, (idx >> 14), actor_id, idx);
CREATE INDEX audit_entries_action_bucketed
    ON audit_entries (tenant, (idx >> 14), action text_pattern_ops, idx);
CREATE INDEX audit_entries_resource_bucketed
    ON audit_entries (tenant, (idx >> 14), resource_type, resource_id, idx);
