-- Traffic as time series: what each node delivered, per minute, hour and day.
--
-- Every report's counter increases (never negative: see record_report) are
-- spread over the time since the node's previous report and added to the
-- buckets of all three tiers in the same transaction, so a lost report
-- leaves neither a gap nor a spike, and the tiers always agree. A
-- housekeeping job deletes each tier's rows past its retention; nothing is
-- recomputed from finer rows.
--
-- Rows name their organization, not only their node: node ids are never
-- reused, and a deleted node's traffic stays part of its organization's
-- history until retention removes it. (The organization's deletion removes
-- it at once.) A node's page reads through the node index; the fleet
-- dashboard reads the fleet tables at the end of this file.

-- The agent's cumulative bytes per content family in its current life, and
-- their sums over every life, beside the other counters. NULL until the
-- first report after this migration: a baseline of "unknown" rather than 0,
-- so an agent already running does not show all its past bytes at once.
ALTER TABLE node_counters ADD COLUMN last_windows_update_bytes BIGINT;
ALTER TABLE node_counters ADD COLUMN last_office_bytes BIGINT;
ALTER TABLE node_counters ADD COLUMN last_xbox_bytes BIGINT;
ALTER TABLE node_counters ADD COLUMN last_edge_bytes BIGINT;
ALTER TABLE node_counters ADD COLUMN last_other_bytes BIGINT;
ALTER TABLE node_counters ADD COLUMN total_windows_update_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE node_counters ADD COLUMN total_office_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE node_counters ADD COLUMN total_xbox_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE node_counters ADD COLUMN total_edge_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE node_counters ADD COLUMN total_other_bytes BIGINT NOT NULL DEFAULT 0;

-- bucket_ms: the bucket's start, Unix milliseconds (UTC). Days are UTC days.
CREATE TABLE traffic_minute (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    node_id               BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, node_id)
) WITHOUT ROWID;
CREATE INDEX traffic_minute_node ON traffic_minute(node_id, bucket_ms);

CREATE TABLE traffic_hour (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    node_id               BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, node_id)
) WITHOUT ROWID;
CREATE INDEX traffic_hour_node ON traffic_hour(node_id, bucket_ms);

CREATE TABLE traffic_day (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    node_id               BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, node_id)
) WITHOUT ROWID;
CREATE INDEX traffic_day_node ON traffic_day(node_id, bucket_ms);

-- Fleet traffic, summed at ingestion: the organization's dashboard reads
-- one row per bucket and shard instead of one per bucket and node, so it
-- costs the same for ten nodes as for ten thousand.
--
-- A report adds its increases to these rows in the same transaction as to
-- its node's rows above, split the same way, so fleet and node series agree
-- to the byte. The shard (node id modulo 16) spreads concurrent reports of
-- one organization over 16 rows per bucket: on PostgreSQL each row is
-- locked until its transaction commits, and one row per bucket would make
-- every report of the organization wait for the previous one.
CREATE TABLE traffic_fleet_minute (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    shard                 BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, shard)
) WITHOUT ROWID;

CREATE TABLE traffic_fleet_hour (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    shard                 BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, shard)
) WITHOUT ROWID;

CREATE TABLE traffic_fleet_day (
    org_id                BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    bucket_ms             BIGINT NOT NULL,
    shard                 BIGINT NOT NULL,
    requests              BIGINT NOT NULL,
    hit_bytes             BIGINT NOT NULL,
    miss_bytes            BIGINT NOT NULL,
    origin_bytes          BIGINT NOT NULL,
    errors                BIGINT NOT NULL,
    windows_update_bytes  BIGINT NOT NULL,
    office_bytes          BIGINT NOT NULL,
    xbox_bytes            BIGINT NOT NULL,
    edge_bytes            BIGINT NOT NULL,
    other_bytes           BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket_ms, shard)
) WITHOUT ROWID;
