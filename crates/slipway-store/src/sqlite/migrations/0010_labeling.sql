-- Labeling queues (docs/design/data.md): the items of a deployment's predictions waiting for
-- a label, leased to one labeller at a time until the lease runs out.
CREATE TABLE label_queues (
    name        TEXT PRIMARY KEY,
    deployment  TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('sample', 'margin', 'flagged', 'manual')),
    rate        REAL,
    threshold   REAL,
    labels_json TEXT NOT NULL,
    lease_ms    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE label_items (
    queue           TEXT NOT NULL REFERENCES label_queues(name) ON DELETE CASCADE,
    item_id         INTEGER NOT NULL,
    request_id      TEXT NOT NULL,
    row_index       INTEGER NOT NULL,
    inputs_json     TEXT NOT NULL,
    prediction_json TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'labelled')),
    leased_by       TEXT,
    lease_token     TEXT,
    lease_until_ms  INTEGER,
    label_json      TEXT,
    labeller        TEXT,
    labelled_ms     INTEGER,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (queue, item_id),
    UNIQUE (queue, request_id, row_index)
);
CREATE INDEX label_items_open ON label_items(queue, state, item_id);
