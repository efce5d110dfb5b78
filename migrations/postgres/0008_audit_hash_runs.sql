-- Subtree hashes as runs: one row holds the hashes of consecutive nodes of one level,
-- from `first_idx` on, 32 bytes each, and never crosses a multiple of 256 nodes (the
-- tlog-tiles grouping), so the run holding node (level, i) starts between
-- i - i % 256 and i. An append of 1000 events writes about 25 rows here instead of
-- 2000, and the verifier reads the stored hashes of a million leaves in a few thousand
-- rows. Hashes stored before this migration become runs of one.
CREATE TABLE audit_hash_runs (
    level     SMALLINT NOT NULL,
    first_idx BIGINT NOT NULL,
    hashes    BYTEA NOT NULL,
    PRIMARY KEY (level, first_idx)
);
-- Stored uncompressed (hashes do not compress), so that reading one hash of a run
-- out of line fetches only its slice.
ALTER TABLE audit_hash_runs ALTER COLUMN hashes SET STORAGE EXTERNAL;
INSERT INTO audit_hash_runs (level, first_idx, hashes) SELECT level, idx, hash FROM audit_hashes;
DROP TABLE audit_hashes;
CREATE TRIGGER audit_hash_runs_append_only BEFORE UPDATE OR DELETE ON audit_hash_runs
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
