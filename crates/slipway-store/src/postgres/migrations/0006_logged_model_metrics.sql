-- PostgreSQL twin of sqlite/migrations/0006: metrics a run logged for one of its logged models.
CREATE TABLE logged_model_metrics (
    model_id       TEXT COLLATE "C" NOT NULL,
    key            TEXT COLLATE "C" NOT NULL,
    step           BIGINT NOT NULL,
    timestamp      BIGINT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         BIGINT NOT NULL DEFAULT 0,
    run_id         TEXT COLLATE "C" NOT NULL,
    dataset_name   TEXT COLLATE "C",
    dataset_digest TEXT COLLATE "C",
    PRIMARY KEY (model_id, key, timestamp, step, run_id)
);
CREATE INDEX logged_model_metrics_by_run ON logged_model_metrics(run_id);
