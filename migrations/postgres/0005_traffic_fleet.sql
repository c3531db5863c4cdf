-- Fleet traffic, summed at ingestion: the organization's dashboard reads
-- one row per bucket and shard instead of one per bucket and node, so it
-- costs the same for ten nodes as for ten thousand.
--
-- A report adds its increases to these rows in the same transaction as to
-- its node's rows (0004_traffic.sql), split the same way, so fleet and
-- node series agree to the byte. The shard (node id modulo 16) spreads
-- concurrent reports of one organization over 16 rows per bucket: on
-- PostgreSQL each row is locked until its transaction commits, and one
-- row per bucket would make every report of the organization wait for the
-- previous one.
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
);

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
);

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
);

-- What the node series already hold, so a portal that ran 0004 before
-- this keeps its fleet history.
INSERT INTO traffic_fleet_minute
SELECT org_id, bucket_ms, node_id % 16, SUM(requests), SUM(hit_bytes), SUM(miss_bytes), SUM(origin_bytes),
       SUM(errors), SUM(windows_update_bytes), SUM(office_bytes), SUM(xbox_bytes), SUM(edge_bytes), SUM(other_bytes)
FROM traffic_minute GROUP BY org_id, bucket_ms, node_id % 16;
INSERT INTO traffic_fleet_hour
SELECT org_id, bucket_ms, node_id % 16, SUM(requests), SUM(hit_bytes), SUM(miss_bytes), SUM(origin_bytes),
       SUM(errors), SUM(windows_update_bytes), SUM(office_bytes), SUM(xbox_bytes), SUM(edge_bytes), SUM(other_bytes)
FROM traffic_hour GROUP BY org_id, bucket_ms, node_id % 16;
INSERT INTO traffic_fleet_day
SELECT org_id, bucket_ms, node_id % 16, SUM(requests), SUM(hit_bytes), SUM(miss_bytes), SUM(origin_bytes),
       SUM(errors), SUM(windows_update_bytes), SUM(office_bytes), SUM(xbox_bytes), SUM(edge_bytes), SUM(other_bytes)
FROM traffic_day GROUP BY org_id, bucket_ms, node_id % 16;
