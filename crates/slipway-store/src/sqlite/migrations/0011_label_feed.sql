-- Where feeding a labeling queue from its deployment's prediction log got to (docs/design/data.md):
-- the time up to which logged predictions were offered, so a restart reads on from there.
ALTER TABLE label_queues ADD COLUMN fed_ms INTEGER;
