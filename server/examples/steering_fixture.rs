//! Fills a portal database for the steering benchmark: one organization,
//! NODES healthy nodes, and PREFIXES manual /24 blocks in 16.0.0.0/4 (one
//! million fit exactly), spread over the nodes, plus the /16s above them so
//! lookups walk more than one level. Nodes report as online for three
//! hours (start the portal with --report-interval-secs 3600).
//!
//! cargo run --release -p server --example steering_fixture -- sqlite:///tmp/steer.db 1000000 500

use app::backend::db::{now_ms, Db};
use std::net::Ipv4Addr;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("database URL");
    let prefixes: u32 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("prefix count"));
    let nodes: u32 = args.next().map_or(500, |a| a.parse().expect("node count"));
    assert!(prefixes <= 1 << 20, "at most 2^20 /24s fit in 16.0.0.0/4");
    let db = Db::open(&url).await.expect("open the database");
    let now = now_ms();
    let org_id: i64 = sqlx::query_scalar::<_, i64>(
        "INSERT INTO orgs (name, created_at) VALUES ('Benchmark ISP', $1) RETURNING id",
    )
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .expect("org");
    let mut node_ids = Vec::new();
    for n in 0..nodes {
        let name = format!("bench{n}");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO nodes (org_id, name, name_key, public_ipv4, max_egress_mbps, enabled, created_at, \
             updated_at, registered_at, last_seen_at, serving, data_port) \
             VALUES ($1, $2, $2, $3, 10000, 1, $4, $4, $4, $4, 1, 80) RETURNING id",
        )
        .bind(org_id)
        .bind(&name)
        .bind(Ipv4Addr::from(0xCB00_7100u32 + n).to_string())
        .bind(now)
        .fetch_one(&db.pool)
        .await
        .expect("node");
        node_ids.push(id);
    }
    let base = u32::from(Ipv4Addr::new(16, 0, 0, 0));
    let mut rows: Vec<(i64, String, i64, i64)> = Vec::new();
    for i in 0..prefixes {
        let first = base + (i << 8);
        rows.push((
            node_ids[(i % nodes) as usize],
            format!("{}/24", Ipv4Addr::from(first)),
            first as i64,
            (first + 255) as i64,
        ));
    }
    for i in 0..prefixes.div_ceil(256) {
        let first = base + (i << 16);
        rows.push((
            node_ids[((i * 7) % nodes) as usize],
            format!("{}/16", Ipv4Addr::from(first)),
            first as i64,
            (first + 65535) as i64,
        ));
    }
    let mut tx = db.pool.begin().await.expect("transaction");
    for batch in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO node_prefixes (node_id, org_id, prefix, first_addr, last_addr) VALUES ",
        );
        for i in 0..batch.len() {
            let b = i * 5;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        let mut query = sqlx::query(&sql);
        for (node, prefix, first, last) in batch {
            query = query
                .bind(*node)
                .bind(org_id)
                .bind(prefix)
                .bind(*first)
                .bind(*last);
        }
        query.execute(&mut *tx).await.expect("insert prefixes");
    }
    sqlx::query("UPDATE portal_counters SET value = value + 1 WHERE name = 'routing_generation'")
        .execute(&mut *tx)
        .await
        .expect("bump generation");
    tx.commit().await.expect("commit");
    println!("{} prefixes on {nodes} nodes in {url}", rows.len());
}
