-- Monitors on deployments: the `MonitorSpec` wire shape as JSON (validated before it is
-- written), audited with object_type 'monitor'.
CREATE TABLE monitors (
    name                   TEXT PRIMARY KEY,
    spec_json              TEXT NOT NULL,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL
);

-- One evaluated window of a monitor; re-evaluation replaces it.
CREATE TABLE monitor_windows (
    monitor     TEXT NOT NULL REFERENCES monitors(name) ON DELETE CASCADE,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    series_json TEXT NOT NULL,
    drift_json  TEXT,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (monitor, start_ms)
);

-- Labels posted for past requests, one JSON array per request (a label per row). A later post
-- for the same request replaces the earlier one.
CREATE TABLE ground_truth (
    deployment  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (deployment, request_id)
);
CREATE INDEX ground_truth_received ON ground_truth (deployment, received_ms);

-- Every firing of an alert rule. The unique key makes a firing happen once, however many
-- evaluations (or replicas) see the same streak.
CREATE TABLE alert_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor         TEXT NOT NULL REFERENCES monitors(name) ON DELETE CASCADE,
    rule            TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    series          TEXT NOT NULL,
    value           REAL NOT NULL,
    threshold       REAL NOT NULL,
    fired_at        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (monitor, rule, window_start_ms)
);
