-- Model registry: registered models, versions (soft-deleted, numbers never reused), aliases,
-- tags, and the append-only audit log of every registry mutation.
CREATE TABLE registered_models (
    name              TEXT PRIMARY KEY,
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    description       TEXT,
    -- The highest version number ever given out: numbers are never reused, even after gc
    -- purges a deleted version's row.
    max_version       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
) WITHOUT ROWID;

CREATE TABLE model_versions (
    name              TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    version           INTEGER NOT NULL,
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    user_id           TEXT,
    current_stage     TEXT NOT NULL DEFAULT 'None',
    description       TEXT,
    source            TEXT NOT NULL,
    storage_location  TEXT NOT NULL,
    run_id            TEXT,
    run_link          TEXT,
    model_id          TEXT,
    status            TEXT NOT NULL DEFAULT 'READY',
    status_message    TEXT,
    deleted_time      INTEGER,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions(run_id);
CREATE INDEX model_versions_by_model ON model_versions(model_id);
-- Matches the default version search order exactly, so a page is read straight off the index.
CREATE INDEX model_versions_by_update ON model_versions(last_updated_time DESC, name ASC, version DESC);

CREATE TABLE model_version_tags (
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON UPDATE CASCADE ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE registered_model_aliases (
    name    TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias   TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
) WITHOUT ROWID;

-- Append-only: no statement in the code base updates or deletes from this table.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp   INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_by_object ON audit_log(name, version);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
