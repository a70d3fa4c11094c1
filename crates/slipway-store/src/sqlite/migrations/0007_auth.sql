-- Who may call the server and what each caller may do (docs/design/auth.md). Used only when
-- auth is on; with it off these tables stay empty.

-- Users and service accounts. `principal_id` is MLflow's user `id`. `password_hash` is a PHC
-- argon2id string, or a werkzeug hash imported from MLflow (rehashed at the next login); null
-- for service accounts, which authenticate with tokens only.
CREATE TABLE principals (
    principal_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'service_account')),
    name          TEXT NOT NULL UNIQUE,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT,
    created_ms    INTEGER NOT NULL
);

-- Groups are MLflow's roles. Every principal has a personal group (`personal_of`) holding its
-- direct grants, as MLflow keeps a synthetic role per user.
CREATE TABLE auth_groups (
    group_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    personal_of INTEGER UNIQUE REFERENCES principals(principal_id) ON DELETE CASCADE,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE group_members (
    membership_id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      INTEGER NOT NULL REFERENCES auth_groups(group_id) ON DELETE CASCADE,
    principal_id  INTEGER NOT NULL REFERENCES principals(principal_id) ON DELETE CASCADE,
    UNIQUE (group_id, principal_id)
);
CREATE INDEX group_members_by_principal ON group_members(principal_id);

-- A group's permission on one object of a kind (`pattern` its id or name) or on all of them
-- (`*`). `permission`: 1 READ, 2 USE, 3 EDIT, 4 MANAGE, 0 NO_PERMISSIONS, -1 DENY.
CREATE TABLE grants (
    grant_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id   INTEGER NOT NULL REFERENCES auth_groups(group_id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('experiment', 'registered_model', 'deployment')),
    pattern    TEXT NOT NULL,
    permission INTEGER NOT NULL,
    UNIQUE (group_id, kind, pattern)
);
CREATE INDEX grants_by_object ON grants(kind, pattern);

-- API tokens: the secret is kept only as its SHA-256 (hex); 256 random bits need no slow hash.
CREATE TABLE api_tokens (
    token_id      TEXT PRIMARY KEY,
    principal_id  INTEGER NOT NULL REFERENCES principals(principal_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    scopes_json   TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER,
    revoked_ms    INTEGER
);
CREATE INDEX api_tokens_by_principal ON api_tokens(principal_id);

-- One row. `epoch` grows with every change of who someone is or what they may do, so caches
-- of credentials and grants (in this process or another replica) know when to drop an entry.
CREATE TABLE auth_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO auth_state (id, epoch) VALUES (1, 0);

