-- Dataset versions (docs/design/data.md): a set by name, its immutable versions numbered
-- from 1 without gaps, each naming its manifest blob by SHA-256; tags per version; aliases
-- naming one version each.
CREATE TABLE data_sets (
    name       TEXT COLLATE "C" PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE data_versions (
    name            TEXT COLLATE "C" NOT NULL REFERENCES data_sets(name),
    version         BIGINT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    files           BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    rows            BIGINT,
    message         TEXT,
    created_by      TEXT,
    created_ms      BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX data_versions_by_manifest ON data_versions(manifest_sha256);

CREATE TABLE data_version_tags (
    name    TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);

CREATE TABLE data_aliases (
    name    TEXT COLLATE "C" NOT NULL,
    alias   TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);
