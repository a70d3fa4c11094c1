-- Leases: which server process does a job that must run on one at a time (monitor evaluation
-- and alert delivery when several replicas share a database).
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT COLLATE "C" NOT NULL,
    expires_ms BIGINT NOT NULL
);
