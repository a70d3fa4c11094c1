-- Requests the auth layer refused, for an access audit: who (as claimed, when authentication
-- failed), from where, what, and why. Written in batches off the request path; kept 90 days.
CREATE TABLE access_denials (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp  INTEGER NOT NULL,
    principal  TEXT,
    token_id   TEXT,
    address    TEXT,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX access_denials_by_time ON access_denials(timestamp);
CREATE INDEX access_denials_by_principal ON access_denials(principal, timestamp);
