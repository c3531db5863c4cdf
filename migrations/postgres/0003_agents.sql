-- What node agents report, what steering needs, and the prefixes nodes learn
-- over BGP.

-- Draining: steering sends no new clients, the node keeps serving.
ALTER TABLE nodes ADD COLUMN draining BIGINT NOT NULL DEFAULT 0;
-- Content hosts the operator adds to the built-in allow-list, one a line.
ALTER TABLE nodes ADD COLUMN extra_hosts TEXT NOT NULL DEFAULT '';
-- The agent's last report. JSON arrays for what is only ever shown whole.
ALTER TABLE nodes ADD COLUMN data_port BIGINT;
ALTER TABLE nodes ADD COLUMN serving BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN problems TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN drive_usage TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN bgp_sessions TEXT NOT NULL DEFAULT '[]';
-- The version of the learned-route table the portal holds for the node;
-- agents send deltas from it (see lastmile_wire::RoutesUpdate).
ALTER TABLE nodes ADD COLUMN routes_version BIGINT;

-- Traffic totals per node. Agents send counters that only grow while the
-- agent process lives (boot_id names that life); the portal turns them into
-- totals that never go backwards, whatever restarts or lost reports happen.
CREATE TABLE node_counters (
    node_id              BIGINT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    boot_id              TEXT   NOT NULL,
    -- the agent's cumulative values in its current life
    last_requests        BIGINT NOT NULL,
    last_hit_bytes       BIGINT NOT NULL,
    last_miss_bytes      BIGINT NOT NULL,
    last_origin_bytes    BIGINT NOT NULL,
    last_errors          BIGINT NOT NULL,
    -- sums over every life
    total_requests       BIGINT NOT NULL,
    total_hit_bytes      BIGINT NOT NULL,
    total_miss_bytes     BIGINT NOT NULL,
    total_origin_bytes   BIGINT NOT NULL,
    total_errors         BIGINT NOT NULL,
    active_connections   BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

-- Prefixes a node learned from its routers. first_addr/last_addr as in
-- node_prefixes.
CREATE TABLE bgp_routes (
    node_id     BIGINT  NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    prefix      TEXT    NOT NULL,
    neighbor    TEXT    NOT NULL,
    first_addr  BIGINT  NOT NULL,
    last_addr   BIGINT  NOT NULL,
    next_hop    TEXT    NOT NULL,
    as_path     TEXT    NOT NULL,
    learned_at  BIGINT  NOT NULL,
    PRIMARY KEY (node_id, prefix, neighbor)
);

-- Bumped by every change to which prefixes lead to which node; each portal
-- process rebuilds its in-memory steering index when it moves. (Health,
-- draining and enabled are read every second without a rebuild.)
CREATE TABLE portal_counters (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO portal_counters (name, value) VALUES ('routing_generation', 1);
