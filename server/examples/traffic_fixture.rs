//! Fills a portal database for the traffic benchmarks (bench/traffic/run.sh):
//! one organization with an administrator (`bench`, password
//! `bench-password-1`), NODES nodes that look online and serving, each with
//! a known agent credential (written one a line to CREDENTIALS, for the
//! load generator), and DAYS days of traffic history for each of the first
//! HISTORY nodes in all three tiers, as ingestion would have left it: each
//! tier as far back as the default retention keeps it (DAYS at most), each
//! coarser row the sum of the finer ones, and the fleet's series the sum of
//! the nodes'.
//!
//! cargo run --release -p server --example traffic_fixture -- \
//!     sqlite:///tmp/traffic.db NODES DAYS HISTORY CREDENTIALS

use app::backend::accounts::{self, NewOrg};
use app::backend::db::{now_ms, Db};
use app::backend::traffic::{self, Tier, TrafficRetention, DAY_MS, MINUTE_MS};
use app::backend::{passwords, secrets};
use app::traffic::TrafficCounts;
use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;

/// Bytes node `n` served in the minute starting at `t`: a daily curve (a
/// trough at night, a peak in the evening) that differs a little per node,
/// with 80 % to 95 % from cache. Returns (hit, miss).
fn minute_bytes(n: u32, t: i64) -> (i64, i64) {
    let minute_of_day = (t.rem_euclid(DAY_MS) / MINUTE_MS) as f64;
    let phase = (minute_of_day / 1440.0 - 0.3) * std::f64::consts::TAU;
    let scale = 1.0 + 0.5 * f64::from(n % 7) / 7.0;
    // About 100 Mbit/s on average, 180 at the evening peak.
    let bytes = (750_000_000.0 * scale * (1.0 + 0.8 * phase.sin())).max(0.0) as i64;
    let hit_share = 0.80 + 0.15 * f64::from(n % 4) / 4.0;
    let hit = (bytes as f64 * hit_share) as i64;
    (hit, bytes - hit)
}

/// One tier row: the counters of `[start, start + width)` for node `n`, in
/// [`TrafficCounts::COLUMNS`] order.
fn row(n: u32, start: i64, width: i64) -> [i64; 10] {
    let mut v = [0i64; 10];
    let mut t = start;
    while t < start + width {
        let (hit, miss) = minute_bytes(n, t);
        let served = hit + miss;
        v[0] += served / 50_000_000 + 1; // requests of ~50 MB
        v[1] += hit;
        v[2] += miss;
        v[3] += miss;
        v[4] += i64::from(t % (7 * MINUTE_MS) == 0);
        // Families: 60 % Windows Update, 15 % Office, 15 % Xbox, 7 % Edge.
        v[5] += served * 60 / 100;
        v[6] += served * 15 / 100;
        v[7] += served * 15 / 100;
        v[8] += served * 7 / 100;
        v[9] += served - served * 97 / 100;
        t += MINUTE_MS;
    }
    v
}

/// Inserts rows (bucket, key, counters) into a tier table whose third key
/// column is `key` (node_id, or shard for the fleet's series).
async fn insert_rows(db: &Db, table: &str, key: &str, org: i64, rows: &[(i64, i64, [i64; 10])]) {
    let mut tx = db.pool.begin().await.expect("transaction");
    for batch in rows.chunks(400) {
        let columns = TrafficCounts::COLUMNS.join(", ");
        let mut sql = format!("INSERT INTO {table} (org_id, bucket_ms, {key}, {columns}) VALUES ");
        let per_row = 3 + TrafficCounts::COLUMNS.len();
        for i in 0..batch.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for j in 0..per_row {
                if j > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * per_row + j + 1));
            }
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for (bucket, node, values) in batch {
            query = query.bind(org).bind(*bucket).bind(*node);
            for v in values {
                query = query.bind(*v);
            }
        }
        query.execute(&mut *tx).await.expect("insert traffic");
    }
    tx.commit().await.expect("commit");
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("database URL");
    let nodes: u32 = args.next().map_or(100, |a| a.parse().expect("node count"));
    let days: i64 = args.next().map_or(30, |a| a.parse().expect("days"));
    let history: u32 = args
        .next()
        .map_or(nodes, |a| a.parse().expect("history nodes"));
    let credentials_file = args.next().expect("credentials file");
    let db = Db::open(&url).await.expect("open the database");
    let now = now_ms();

    let hash = passwords::hash("bench-password-1".into())
        .await
        .expect("hash");
    let (org, _) = accounts::create_org(
        &db,
        NewOrg {
            org_name: "Benchmark ISP",
            admin_username: "bench",
            admin_password_hash: &hash,
            must_change_password: false,
            is_first_run: true,
        },
        "fixture",
    )
    .await
    .expect("organization");

    let mut credentials = std::io::BufWriter::new(
        std::fs::File::create(&credentials_file).expect("credentials file"),
    );
    let mut node_ids = Vec::with_capacity(nodes as usize);
    let mut tx = db.pool.begin().await.expect("transaction");
    for n in 0..nodes {
        let name = format!("bench{n}");
        let credential = format!("lmn_bench{n:08}");
        writeln!(credentials, "{credential}").expect("write credential");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO nodes (org_id, name, name_key, public_ipv4, max_egress_mbps, enabled, created_at, \
             updated_at, registered_at, last_seen_at, serving, data_port, credential_hash, agent_version, \
             applied_version) VALUES ($1, $2, $2, $3, 10000, 1, $4, $4, $4, $4, 1, 80, $5, '0.1.0', 1) RETURNING id",
        )
        .bind(org)
        .bind(&name)
        .bind(Ipv4Addr::from(0x0A00_0000u32 + n).to_string())
        .bind(now)
        .bind(secrets::hash(&credential))
        .fetch_one(&mut *tx)
        .await
        .expect("node");
        node_ids.push(id);
    }
    tx.commit().await.expect("commit nodes");
    credentials.flush().expect("flush credentials");

    let retention = TrafficRetention::default();
    let mut total_rows = 0usize;
    let mut fleet: [HashMap<(i64, i64), [i64; 10]>; 3] = Default::default();
    for (n, &id) in node_ids.iter().enumerate().take(history as usize) {
        let n = n as u32;
        let shard = id.rem_euclid(traffic::FLEET_SHARDS);
        for (fleet_tier, tier) in fleet.iter_mut().zip(Tier::ALL) {
            // Whole buckets back from the current one, as far as the tier
            // keeps them (and no further back than DAYS).
            let width = tier.width_ms();
            let current = now - now.rem_euclid(width);
            let mut rows = Vec::new();
            let mut t = current - retention.of(tier).min(days * DAY_MS);
            while t < current {
                rows.push((t, id, row(n, t, width)));
                t += width;
            }
            insert_rows(&db, tier.table(), "node_id", org, &rows).await;
            total_rows += rows.len();
            // The fleet's series: the same counters summed by bucket and shard.
            for (bucket, _, values) in rows {
                let sum = fleet_tier.entry((bucket, shard)).or_insert([0; 10]);
                for (total, value) in sum.iter_mut().zip(values) {
                    *total += value;
                }
            }
        }
    }
    for (fleet_tier, tier) in fleet.iter().zip(Tier::ALL) {
        let rows: Vec<(i64, i64, [i64; 10])> = fleet_tier
            .iter()
            .map(|(&(bucket, shard), values)| (bucket, shard, *values))
            .collect();
        insert_rows(&db, tier.fleet_table(), "shard", org, &rows).await;
        total_rows += rows.len();
    }
    if db.backend == app::backend::db::Backend::Sqlite {
        // Everything into the database file itself, so its size is the
        // data's.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&db.pool)
            .await
            .expect("checkpoint");
    }
    println!(
        "{nodes} nodes (credentials in {credentials_file}), {days} days of history for {} of them: {total_rows} rows in {url}",
        history.min(nodes)
    );
}
