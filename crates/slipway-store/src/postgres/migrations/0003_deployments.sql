-- Serving deployments: a named endpoint and the spec it serves (the `DeploymentSpec` wire
-- shape as JSON, validated before it is written). Its mutations are audited in `audit_log`
-- with object_type 'deployment'.
CREATE TABLE deployments (
    name                   TEXT COLLATE "C" PRIMARY KEY,
    spec_json              TEXT COLLATE "C" NOT NULL,
    creation_timestamp     BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL
);
