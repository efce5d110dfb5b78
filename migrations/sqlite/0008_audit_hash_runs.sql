-- Subtree hashes as runs: one row holds the hashes of consecutive nodes of one level,
-- from `first_idx` on, 32 bytes each, and never crosses a multiple of 256 nodes (the
-- tlog-tiles grouping), so the run holding node (level, i) starts between
-- i - i % 256 and i. An append of 1000 events writes about 25 rows here instead of
-- 2000, and the verifier reads the stored hashes of a million leaves in a few thousand
-- rows. Hashes stored before this migration become runs of one.
CREATE TABLE audit_hash_runs (
    level     INTEGER NOT NULL,
    first_idx INTEGER NOT NULL,
    hashes    BLOB NOT NULL,
    PRIMARY KEY (level, first_idx)
);
INSERT INTO audit_hash_runs (level, first_idx, hashes) SELECT level, idx, hash FROM audit_hashes;
DROP TABLE audit_hashes;
CREATE TRIGGER audit_hash_runs_no_update BEFORE UPDATE ON audit_hash_runs
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_hash_runs_no_delete BEFORE DELETE ON audit_hash_runs
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
