-- Dataset versions (docs/design/data.md): a set by name, its immutable versions numbered
-- from 1 without gaps, each naming its manifest blob by SHA-256; tags per version; aliases
-- naming one version each.
CREATE TABLE data_sets (
    name       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);

CREATE TABLE data_versions (
    name            TEXT NOT NULL REFERENCES data_sets(name),
    version         INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    files           INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    rows            INTEGER,
    message         TEXT,
    created_by      TEXT,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX data_versions_by_manifest ON data_versions(manifest_sha256);

CREATE TABLE data_version_tags (
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);

CREATE TABLE data_aliases (
    name    TEXT NOT NULL,
    alias   TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);
