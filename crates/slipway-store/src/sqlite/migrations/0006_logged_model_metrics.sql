-- Metrics a run logged for one of its logged models (log-batch metrics that name a model_id):
-- what a logged model's data.metrics lists. The run's own history holds the same points.
CREATE TABLE logged_model_metrics (
    model_id       TEXT NOT NULL,
    key            TEXT NOT NULL,
    step           INTEGER NOT NULL,
    timestamp      INTEGER NOT NULL,
    value          REAL NOT NULL,
    is_nan         INTEGER NOT NULL DEFAULT 0,
    run_id         TEXT NOT NULL,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (model_id, key, timestamp, step, run_id)
);
CREATE INDEX logged_model_metrics_by_run ON logged_model_metrics(run_id);
