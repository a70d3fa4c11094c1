-- Tracking: experiments, runs, their params, tags, metrics, dataset inputs and logged models.
CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL DEFAULT 'active',
    creation_time     INTEGER NOT NULL,
    last_update_time  INTEGER NOT NULL
);
CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;

-- Runs are addressed by their uuid on the wire and by an integer key inside the database:
-- side tables repeat the key millions of times (metric history), so it must be small and
-- cheap to compare.
CREATE TABLE runs (
    run_key         INTEGER PRIMARY KEY,
    run_uuid        TEXT NOT NULL UNIQUE,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name            TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    artifact_uri    TEXT NOT NULL,
    deleted_time    INTEGER
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, lifecycle_stage, start_time DESC, run_uuid);

CREATE TABLE params (
    run_key  INTEGER NOT NULL REFERENCES runs(run_key),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params(key, value);

CREATE TABLE tags (
    run_key  INTEGER NOT NULL REFERENCES runs(run_key),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
CREATE INDEX tags_by_key ON tags(key, value);

-- The full history. NaN cannot be stored in a REAL column (SQLite turns it into NULL), so it is
-- kept as value 0 with is_nan = 1, as MLflow does.
CREATE TABLE metrics (
    run_key   INTEGER NOT NULL REFERENCES runs(run_key),
    key       TEXT NOT NULL,
    step      INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;

-- The latest value per (run, key) by (step, timestamp, value): what runs/get and search read.
CREATE TABLE latest_metrics (
    run_key   INTEGER NOT NULL REFERENCES runs(run_key),
    key       TEXT NOT NULL,
    step      INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, key)
) WITHOUT ROWID;
CREATE INDEX latest_metrics_by_key ON latest_metrics(key, value);

CREATE TABLE datasets (
    dataset_uuid  TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    source_type   TEXT NOT NULL,
    source        TEXT NOT NULL,
    schema        TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);
CREATE INDEX datasets_by_digest ON datasets(digest);

CREATE TABLE dataset_inputs (
    input_uuid   TEXT PRIMARY KEY,
    dataset_uuid TEXT NOT NULL REFERENCES datasets(dataset_uuid),
    run_key      INTEGER NOT NULL REFERENCES runs(run_key),
    UNIQUE (run_key, dataset_uuid)
);
CREATE TABLE input_tags (
    input_uuid TEXT NOT NULL REFERENCES dataset_inputs(input_uuid),
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (input_uuid, name)
) WITHOUT ROWID;

CREATE TABLE logged_models (
    model_id          TEXT PRIMARY KEY,
    experiment_id     INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name              TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    status            TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL DEFAULT 'active',
    model_type        TEXT,
    source_run_id     TEXT,
    status_message    TEXT,
    deleted_time      INTEGER
);
CREATE INDEX logged_models_by_experiment ON logged_models(experiment_id, name);
CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;

-- Models a run consumed (model_inputs) or produced (model_outputs).
CREATE TABLE run_model_links (
    run_key   INTEGER NOT NULL REFERENCES runs(run_key),
    model_id  TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    step      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, direction, model_id)
) WITHOUT ROWID;
