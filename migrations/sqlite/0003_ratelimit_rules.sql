-- Rate-limit rules created over the API (rules from palisade.toml are not stored).
-- `spec` is the rule's JSON as accepted by PUT /v1/ratelimit/rules/{name}.
CREATE TABLE ratelimit_rules (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
