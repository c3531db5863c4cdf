-- Cache nodes, their drives and routing, registration keys, API tokens.

CREATE TABLE nodes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           BIGINT  NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- letters and digits, fixed once created; unique per organization
    -- regardless of case (name_key is the lower-cased name)
    name             TEXT    NOT NULL,
    name_key         TEXT    NOT NULL,
    public_ipv4      TEXT    NOT NULL,
    max_egress_mbps  BIGINT  NOT NULL,
    enabled          BIGINT  NOT NULL DEFAULT 1,
    routing_mode     TEXT    NOT NULL DEFAULT 'manual' CHECK (routing_mode IN ('manual', 'bgp')),
    bgp_asn          BIGINT,
    -- bumped by every change an agent must apply; agents see it as the ETag
    config_version   BIGINT  NOT NULL DEFAULT 1,
    -- the agent: its credential (hashed), what it last said about itself
    credential_hash  TEXT    UNIQUE,
    registered_at    BIGINT,
    agent_hostname   TEXT,
    agent_version    TEXT,
    last_seen_at     BIGINT,
    applied_version  BIGINT,
    apply_error      TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    UNIQUE (org_id, name_key)
);

CREATE TABLE node_drives (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id   BIGINT  NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    position  BIGINT  NOT NULL,
    path      TEXT    NOT NULL,
    size_gb   BIGINT  NOT NULL,
    UNIQUE (node_id, path)
);

-- Manual routing: IPv4 blocks, kept as text for display and as the first
-- and last address (as integers) for overlap checks and steering.
CREATE TABLE node_prefixes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     BIGINT  NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    org_id      BIGINT  NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    prefix      TEXT    NOT NULL,
    first_addr  BIGINT  NOT NULL,
    last_addr   BIGINT  NOT NULL,
    UNIQUE (node_id, prefix)
);
CREATE INDEX node_prefixes_range ON node_prefixes(first_addr, last_addr);
CREATE INDEX node_prefixes_org ON node_prefixes(org_id);

CREATE TABLE bgp_neighbors (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id   BIGINT  NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    address   TEXT    NOT NULL,
    asn       BIGINT  NOT NULL,
    UNIQUE (node_id, address)
);

-- Single-use, expiring keys that turn a server into a node. Only a hash of
-- the key is kept.
CREATE TABLE registration_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     BIGINT  NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX registration_keys_node ON registration_keys(node_id);

-- Per-person API tokens for the JSON API. They act with their creator's
-- role; only a hash is kept.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        BIGINT  NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Rows whose only purpose is to be locked: a no-op UPDATE of one serializes
-- the writers that must not interleave (a row lock on PostgreSQL, the write
-- lock on SQLite).
CREATE TABLE global_locks (
    name  TEXT PRIMARY KEY
);
INSERT INTO global_locks (name) VALUES ('routing');
