-- The tamper-evident audit log; see the PostgreSQL migration for the design.

CREATE TABLE audit_entries (
    idx            INTEGER PRIMARY KEY,
    id             BLOB NOT NULL UNIQUE,
    tenant         TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_type     TEXT,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    leaf           BLOB NOT NULL
);
CREATE INDEX audit_entries_tenant ON audit_entries (tenant, idx);
CREATE INDEX audit_entries_actor ON audit_entries (tenant, actor_id, idx);
CREATE INDEX audit_entries_action ON audit_entries (tenant, action, idx);
CREATE INDEX audit_entries_resource ON audit_entries (tenant, resource_type, resource_id, idx);
CREATE INDEX audit_entries_time ON audit_entries (tenant, received_at_ms);

CREATE TABLE audit_hashes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    tree_size     INTEGER PRIMARY KEY,
    root          BLOB NOT NULL,
    note          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
