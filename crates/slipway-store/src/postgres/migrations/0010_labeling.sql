-- Labeling queues (docs/design/data.md): the items of a deployment's predictions waiting for
-- a label, leased to one labeller at a time until the lease runs out.
CREATE TABLE label_queues (
    name        TEXT COLLATE "C" PRIMARY KEY,
    deployment  TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('sample', 'margin', 'flagged', 'manual')),
    rate        DOUBLE PRECISION,
    threshold   DOUBLE PRECISION,
    labels_json TEXT NOT NULL,
    lease_ms    BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE label_items (
    queue           TEXT COLLATE "C" NOT NULL REFERENCES label_queues(name) ON DELETE CASCADE,
    item_id         BIGINT NOT NULL,
    request_id      TEXT COLLATE "C" NOT NULL,
    row_index       BIGINT NOT NULL,
    inputs_json     TEXT NOT NULL,
    prediction_json TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'labelled')),
    leased_by       TEXT,
    lease_token     TEXT,
    lease_until_ms  BIGINT,
    label_json      TEXT,
    labeller        TEXT,
    labelled_ms     BIGINT,
    created_ms      BIGINT NOT NULL,
    PRIMARY KEY (queue, item_id),
    UNIQUE (queue, request_id, row_index)
);
CREATE INDEX label_items_open ON label_items(queue, state, item_id);
