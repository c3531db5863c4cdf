//! Cache nodes: what they are, the subscribers they serve (manual CIDR
//! blocks or BGP), and how a server becomes one (registration keys).
//! Every query is scoped by organization; nodes are addressed by name,
//! which is unique in an organization and never changes.

use ipnet::Ipv4Net;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::audit::{self, Actor};
use super::db::{get_bool, now_ms, Db};
use super::secrets;
use crate::error::AppError;
use crate::model::{
    AgentHealth, ConfigState, Drive, KeyStatus, LearnedRouteView, LearnedSummary, ManualPrefix,
    Neighbor, NodeDetail, NodeState, NodeSummary, RoutingMode, TrafficTotals,
};
use crate::validate::{DriveSpec, NeighborSpec};

/// What an operator sets on a node (everything but its name and routing).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub public_ipv4: std::net::Ipv4Addr,
    pub max_egress_mbps: i64,
    pub enabled: bool,
    pub drives: Vec<DriveSpec>,
    /// Content hosts added to the built-in allow-list.
    pub extra_hosts: Vec<String>,
}

fn not_found(name: &str) -> AppError {
    // Echo at most a node name's length of whatever was asked for.
    let name: String = name.chars().take(63).collect();
    AppError::NotFound(format!(
        "There is no node named \"{name}\" in your organization."
    ))
}

/// The id of the organization's node named `name` (in any case).
pub async fn id_of(db: &Db, org_id: i64, name: &str) -> Result<i64, AppError> {
    Ok(
        sqlx::query("SELECT id FROM nodes WHERE org_id = $1 AND name_key = $2")
            .bind(org_id)
            .bind(name.to_lowercase())
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| not_found(name))?
            .try_get("id")?,
    )
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Serializes every change to routing across organizations, so two of them
/// cannot claim overlapping blocks at the same moment.
async fn lock_routing(tx: &mut Transaction<'_, Any>) -> Result<(), AppError> {
    sqlx::query("UPDATE global_locks SET name = name WHERE name = 'routing'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The node's id, taking its row lock for the rest of the transaction.
async fn lock_node(
    tx: &mut Transaction<'_, Any>,
    org_id: i64,
    name: &str,
) -> Result<i64, AppError> {
    let row = sqlx::query(
        "UPDATE nodes SET updated_at = $1 WHERE org_id = $2 AND name_key = $3 RETURNING id",
    )
    .bind(now_ms())
    .bind(org_id)
    .bind(name.to_lowercase())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| not_found(name))?;
    Ok(row.try_get("id")?)
}

/// Tells every portal process that which prefixes lead to which node has
/// changed, so they rebuild their steering index.
pub async fn bump_routing_generation(tx: &mut Transaction<'_, Any>) -> Result<(), AppError> {
    sqlx::query("UPDATE portal_counters SET value = value + 1 WHERE name = 'routing_generation'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A new configuration version for the agent. The reason the previous one
/// failed no longer describes the node: it is pending until the agent
/// answers for the new one.
async fn bump_config(tx: &mut Transaction<'_, Any>, node_id: i64) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE nodes SET config_version = config_version + 1, apply_error = NULL WHERE id = $1",
    )
    .bind(node_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SUMMARY_COLUMNS: &str =
    "id, name, public_ipv4, max_egress_mbps, enabled, draining, routing_mode, \
    config_version, agent_version, registered_at, last_seen_at, applied_version, apply_error";

/// A node's row as people see it. `offline_after_ms` is how long a node may
/// stay silent before it counts as offline (three report intervals).
fn summary_from_row(
    row: &AnyRow,
    now: i64,
    offline_after_ms: i64,
) -> Result<NodeSummary, AppError> {
    let enabled = get_bool(row, "enabled")?;
    let registered_at: Option<i64> = row.try_get("registered_at")?;
    let last_seen_at: Option<i64> = row.try_get("last_seen_at")?;
    let config_version: i64 = row.try_get("config_version")?;
    let applied_version: Option<i64> = row.try_get("applied_version")?;
    let apply_error: Option<String> = row.try_get("apply_error")?;
    let state = if !enabled {
        NodeState::Disabled
    } else if registered_at.is_none() {
        NodeState::NeverConnected
    } else if last_seen_at.is_some_and(|seen| now - seen <= offline_after_ms) {
        NodeState::Online
    } else {
        NodeState::Offline
    };
    let config_state = if applied_version == Some(config_version) {
        ConfigState::Applied
    } else if apply_error.is_some() {
        ConfigState::Failed
    } else {
        ConfigState::Pending
    };
    Ok(NodeSummary {
        name: row.try_get("name")?,
        public_ipv4: row.try_get("public_ipv4")?,
        max_egress_mbps: row.try_get("max_egress_mbps")?,
        enabled,
        draining: get_bool(row, "draining")?,
        routing_mode: row.try_get::<String, _>("routing_mode")?.parse()?,
        state,
        config_state,
        config_version,
        agent_version: row.try_get("agent_version")?,
        last_seen_at_ms: last_seen_at,
        apply_error,
    })
}

pub async fn list(
    db: &Db,
    org_id: i64,
    offline_after_ms: i64,
) -> Result<Vec<NodeSummary>, AppError> {
    summaries(db, org_id, offline_after_ms, "", |_, summary| Ok(summary)).await
}

/// The organization's nodes as [`list`] gives them, each with whether its
/// data path can serve and the problems its agent last reported.
pub(crate) async fn list_with_health(
    db: &Db,
    org_id: i64,
    offline_after_ms: i64,
) -> Result<Vec<(NodeSummary, bool, Vec<String>)>, AppError> {
    summaries(
        db,
        org_id,
        offline_after_ms,
        ", serving, problems",
        |row, summary| {
            Ok((
                summary,
                get_bool(row, "serving")?,
                json_column(row, "problems")?,
            ))
        },
    )
    .await
}

/// Every node of the organization, by name: its summary and whatever
/// `more` makes of `extra_columns` (each preceded by a comma).
async fn summaries<T>(
    db: &Db,
    org_id: i64,
    offline_after_ms: i64,
    extra_columns: &str,
    more: impl Fn(&AnyRow, NodeSummary) -> Result<T, AppError>,
) -> Result<Vec<T>, AppError> {
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}{extra_columns} FROM nodes WHERE org_id = $1 ORDER BY name_key"
    ))
    .bind(org_id)
    .fetch_all(&db.pool)
    .await?;
    let now = now_ms();
    rows.iter()
        .map(|row| more(row, summary_from_row(row, now, offline_after_ms)?))
        .collect()
}

pub async fn detail(
    db: &Db,
    org_id: i64,
    name: &str,
    offline_after_ms: i64,
) -> Result<NodeDetail, AppError> {
    let row = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}, bgp_asn, agent_hostname, extra_hosts, data_port, serving, \
         problems, drive_usage, bgp_sessions FROM nodes WHERE org_id = $1 AND name_key = $2"
    ))
    .bind(org_id)
    .bind(name.to_lowercase())
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| not_found(name))?;
    let node_id: i64 = row.try_get("id")?;
    let summary = summary_from_row(&row, now_ms(), offline_after_ms)?;

    let drives = drives(db, node_id).await?;

    // The node's blocks, and which other nodes of the organization serve the
    // same block.
    let prefix_rows = sqlx::query(
        "SELECT p.prefix, other.name AS other_name FROM node_prefixes p \
         LEFT JOIN node_prefixes q ON q.org_id = p.org_id AND q.prefix = p.prefix AND q.node_id <> p.node_id \
         LEFT JOIN nodes other ON other.id = q.node_id \
         WHERE p.node_id = $1 ORDER BY p.first_addr, p.last_addr DESC, other.name_key",
    )
    .bind(node_id)
    .fetch_all(&db.pool)
    .await?;
    let mut manual_prefixes: Vec<ManualPrefix> = Vec::new();
    for r in &prefix_rows {
        let prefix: String = r.try_get("prefix")?;
        let other: Option<String> = r.try_get("other_name")?;
        match manual_prefixes.last_mut() {
            Some(last) if last.prefix == prefix => last.shared_with.extend(other),
            _ => manual_prefixes.push(ManualPrefix {
                prefix,
                shared_with: other.into_iter().collect(),
            }),
        }
    }

    let bgp_neighbors = neighbors(db, node_id).await?;

    let key = sqlx::query(
        "SELECT created_at, expires_at, created_by, used_at FROM registration_keys \
         WHERE node_id = $1 AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(node_id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| -> Result<KeyStatus, sqlx::Error> {
        Ok(KeyStatus {
            created_at_ms: r.try_get("created_at")?,
            expires_at_ms: r.try_get("expires_at")?,
            created_by: r.try_get("created_by")?,
            used_at_ms: r.try_get("used_at")?,
        })
    })
    .transpose()?;

    Ok(NodeDetail {
        summary,
        drives,
        manual_prefixes,
        bgp_asn: row
            .try_get::<Option<i64>, _>("bgp_asn")?
            .and_then(|a| u32::try_from(a).ok()),
        bgp_neighbors,
        registered_at_ms: row.try_get("registered_at")?,
        agent_hostname: row.try_get("agent_hostname")?,
        registration_key: key,
        extra_hosts: row
            .try_get::<String, _>("extra_hosts")?
            .lines()
            .map(str::to_string)
            .collect(),
        health: AgentHealth {
            serving: get_bool(&row, "serving")?,
            data_port: row
                .try_get::<Option<i64>, _>("data_port")?
                .and_then(|p| u16::try_from(p).ok()),
            problems: json_column(&row, "problems")?,
            drives: json_column(&row, "drive_usage")?,
            bgp_sessions: json_column(&row, "bgp_sessions")?,
        },
        totals: totals(db, node_id).await?,
        learned: learned_summary(db, node_id).await?,
    })
}

/// The node's cache drives, in the order the operator gave them.
pub async fn drives(db: &Db, node_id: i64) -> Result<Vec<Drive>, AppError> {
    let rows =
        sqlx::query("SELECT path, size_gb FROM node_drives WHERE node_id = $1 ORDER BY position")
            .bind(node_id)
            .fetch_all(&db.pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Drive {
                path: r.try_get("path")?,
                size_gb: r.try_get("size_gb")?,
            })
        })
        .collect()
}

/// The routers the node peers with, in the order the operator gave them.
pub async fn neighbors(db: &Db, node_id: i64) -> Result<Vec<Neighbor>, AppError> {
    let rows = sqlx::query("SELECT address, asn FROM bgp_neighbors WHERE node_id = $1 ORDER BY id")
        .bind(node_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Neighbor {
                address: r.try_get("address")?,
                asn: u32::try_from(r.try_get::<i64, _>("asn")?).unwrap_or_default(),
            })
        })
        .collect()
}

/// A JSON column the portal itself wrote from a checked report.
fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, AppError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| AppError::internal(format!("nodes.{column}: {e}")))
}

async fn totals(db: &Db, node_id: i64) -> Result<TrafficTotals, AppError> {
    let row = sqlx::query(
        "SELECT total_requests, total_hit_bytes, total_miss_bytes, total_origin_bytes, total_errors, \
         active_connections FROM node_counters WHERE node_id = $1",
    )
    .bind(node_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(TrafficTotals::default());
    };
    Ok(TrafficTotals {
        requests: row.try_get("total_requests")?,
        hit_bytes: row.try_get("total_hit_bytes")?,
        miss_bytes: row.try_get("total_miss_bytes")?,
        origin_bytes: row.try_get("total_origin_bytes")?,
        errors: row.try_get("total_errors")?,
        active_connections: row.try_get("active_connections")?,
    })
}

/// How many prefixes the node learned, and how many distinct addresses they
/// cover (overlaps and the same prefix from two routers count once).
async fn learned_summary(db: &Db, node_id: i64) -> Result<LearnedSummary, AppError> {
    let rows = sqlx::query("SELECT DISTINCT prefix FROM bgp_routes WHERE node_id = $1")
        .bind(node_id)
        .fetch_all(&db.pool)
        .await?;
    let mut set = prefix_trie::PrefixSet::<Ipv4Net>::new();
    for row in &rows {
        if let Ok(net) = row.try_get::<String, _>("prefix")?.parse::<Ipv4Net>() {
            set.insert(net);
        }
    }
    Ok(LearnedSummary {
        prefixes: rows.len() as i64,
        addresses: set.address_count().map_or(1u64 << 32, u64::from),
    })
}

/// Every route the node learned, for the JSON download.
pub async fn learned_routes(
    db: &Db,
    org_id: i64,
    name: &str,
) -> Result<Vec<LearnedRouteView>, AppError> {
    let node_id = id_of(db, org_id, name).await?;
    let rows = sqlx::query(
        "SELECT prefix, neighbor, next_hop, as_path, learned_at FROM bgp_routes WHERE node_id = $1 \
         ORDER BY first_addr, last_addr DESC, neighbor",
    )
    .bind(node_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LearnedRouteView {
                prefix: r.try_get("prefix")?,
                neighbor: r.try_get("neighbor")?,
                next_hop: r.try_get("next_hop")?,
                as_path: r
                    .try_get::<String, _>("as_path")?
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
                learned_at_ms: r.try_get("learned_at")?,
            })
        })
        .collect()
}

async fn replace_drives(
    tx: &mut Transaction<'_, Any>,
    node_id: i64,
    drives: &[DriveSpec],
) -> Result<(), AppError> {
    sqlx::query("DELETE FROM node_drives WHERE node_id = $1")
        .bind(node_id)
        .execute(&mut **tx)
        .await?;
    for (position, drive) in drives.iter().enumerate() {
        sqlx::query(
            "INSERT INTO node_drives (node_id, position, path, size_gb) VALUES ($1, $2, $3, $4)",
        )
        .bind(node_id)
        .bind(position as i64)
        .bind(&drive.path)
        .bind(drive.size_gb)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn describe_settings(settings: &NodeSettings) -> String {
    let drives = settings
        .drives
        .iter()
        .map(|d| format!("{} ({} GB)", d.path, d.size_gb))
        .collect::<Vec<_>>()
        .join(", ");
    let hosts = if settings.extra_hosts.is_empty() {
        String::new()
    } else {
        format!(", added content hosts {}", settings.extra_hosts.join(", "))
    };
    format!(
        "{}, {} Mbps, {}, drives {drives}{hosts}",
        settings.public_ipv4,
        settings.max_egress_mbps,
        if settings.enabled {
            "enabled"
        } else {
            "disabled"
        },
    )
}

pub async fn create(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    settings: &NodeSettings,
) -> Result<(), AppError> {
    let now = now_ms();
    let mut tx = db.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO nodes (org_id, name, name_key, public_ipv4, max_egress_mbps, enabled, extra_hosts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(name.to_lowercase())
    .bind(settings.public_ipv4.to_string())
    .bind(settings.max_egress_mbps)
    .bind(settings.enabled as i64)
    .bind(settings.extra_hosts.join("\n"))
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let node_id: i64 = match inserted {
        Ok(row) => row.try_get("id")?,
        Err(e) if is_unique_violation(&e) => {
            return Err(AppError::Conflict(format!(
                "A node named \"{name}\" already exists in your organization. Node names are unique (regardless of case)."
            )))
        }
        Err(e) => return Err(e.into()),
    };
    replace_drives(&mut tx, node_id, &settings.drives).await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.create",
        &format!("created node {name}: {}", describe_settings(settings)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn update(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    settings: &NodeSettings,
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    sqlx::query(
        "UPDATE nodes SET public_ipv4 = $1, max_egress_mbps = $2, enabled = $3, extra_hosts = $4 WHERE id = $5",
    )
    .bind(settings.public_ipv4.to_string())
    .bind(settings.max_egress_mbps)
    .bind(settings.enabled as i64)
    .bind(settings.extra_hosts.join("\n"))
    .bind(node_id)
    .execute(&mut *tx)
    .await?;
    replace_drives(&mut tx, node_id, &settings.drives).await?;
    bump_config(&mut tx, node_id).await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.update",
        &format!("changed node {name}: {}", describe_settings(settings)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A switch on a node that an operator flips.
enum Switch {
    /// A disabled node stops serving: its agent must know.
    Enabled(bool),
    /// Draining takes a node out of steering for new clients while it
    /// keeps serving those it has, for maintenance without cutting
    /// downloads short. Nothing changes for the agent.
    Draining(bool),
}

async fn flip(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    switch: Switch,
) -> Result<(), AppError> {
    let changes_config = matches!(switch, Switch::Enabled(_));
    let (column, on, action, verb) = match switch {
        Switch::Enabled(true) => ("enabled", true, "node.enable", "enabled"),
        Switch::Enabled(false) => ("enabled", false, "node.disable", "disabled"),
        Switch::Draining(true) => ("draining", true, "node.drain", "started draining"),
        Switch::Draining(false) => ("draining", false, "node.undrain", "stopped draining"),
    };
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    // The column comes from the fixed list above.
    sqlx::query(&format!("UPDATE nodes SET {column} = $1 WHERE id = $2"))
        .bind(on as i64)
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    if changes_config {
        bump_config(&mut tx, node_id).await?;
    }
    audit::record(
        &mut *tx,
        org_id,
        actor,
        action,
        &format!("{verb} node {name}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_enabled(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    enabled: bool,
) -> Result<(), AppError> {
    flip(db, actor, org_id, name, Switch::Enabled(enabled)).await
}

pub async fn set_draining(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    draining: bool,
) -> Result<(), AppError> {
    flip(db, actor, org_id, name, Switch::Draining(draining)).await
}

pub async fn delete(db: &Db, actor: &Actor, org_id: i64, name: &str) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    // Children first: SQLite enforces ON DELETE CASCADE only with foreign
    // keys switched on, and being explicit costs nothing.
    for table in [
        "node_drives",
        "node_prefixes",
        "bgp_neighbors",
        "bgp_routes",
        "node_counters",
        "registration_keys",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE node_id = $1"))
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    bump_routing_generation(&mut tx).await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.delete",
        &format!("deleted node {name}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn range(net: &Ipv4Net) -> (i64, i64) {
    (
        u32::from(net.network()) as i64,
        u32::from(net.broadcast()) as i64,
    )
}

/// Replaces the node's manual CIDR blocks with `blocks`, or changes nothing
/// when any block overlaps one of another organization.
pub async fn set_manual_prefixes(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    blocks: &[Ipv4Net],
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    lock_routing(&mut tx).await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    let mut problems = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let (first, last) = range(block);
        let clash = sqlx::query(
            "SELECT prefix FROM node_prefixes WHERE org_id <> $1 AND first_addr <= $2 AND last_addr >= $3 LIMIT 1",
        )
        .bind(org_id)
        .bind(last)
        .bind(first)
        .fetch_optional(&mut *tx)
        .await?;
        if clash.is_some() {
            problems.push(format!(
                "Line {}, \"{block}\": overlaps a block that another organization serves.",
                i + 1
            ));
        }
    }
    if !problems.is_empty() {
        let message = if problems.len() == 1 {
            format!("Nothing was saved. {}", problems[0])
        } else {
            format!(
                "Nothing was saved: {} entries need fixing.\n{}",
                problems.len(),
                problems.join("\n")
            )
        };
        return Err(AppError::Conflict(message));
    }
    let before: i64 = sqlx::query("SELECT COUNT(*) AS n FROM node_prefixes WHERE node_id = $1")
        .bind(node_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    sqlx::query("DELETE FROM node_prefixes WHERE node_id = $1")
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    for block in blocks {
        let (first, last) = range(block);
        sqlx::query(
            "INSERT INTO node_prefixes (node_id, org_id, prefix, first_addr, last_addr) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(node_id)
        .bind(org_id)
        .bind(block.to_string())
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    }
    let listed = blocks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.routing.manual",
        &format!(
            "set {} manual CIDR blocks on node {name} (was {before}): {listed}",
            blocks.len()
        ),
    )
    .await?;
    bump_routing_generation(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Saves the node's BGP settings: its own ASN and the routers it peers with.
pub async fn set_bgp(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    asn: u32,
    neighbors: &[NeighborSpec],
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    sqlx::query("UPDATE nodes SET bgp_asn = $1 WHERE id = $2")
        .bind(asn as i64)
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM bgp_neighbors WHERE node_id = $1")
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    for n in neighbors {
        sqlx::query("INSERT INTO bgp_neighbors (node_id, address, asn) VALUES ($1, $2, $3)")
            .bind(node_id)
            .bind(n.address.to_string())
            .bind(n.asn as i64)
            .execute(&mut *tx)
            .await?;
    }
    bump_config(&mut tx, node_id).await?;
    let listed = neighbors
        .iter()
        .map(|n| format!("{} (AS{})", n.address, n.asn))
        .collect::<Vec<_>>()
        .join(", ");
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.routing.bgp",
        &format!("set BGP on node {name}: AS{asn}, neighbors {listed}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_routing_mode(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    mode: RoutingMode,
) -> Result<(), AppError> {
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    if mode == RoutingMode::Bgp {
        let row = sqlx::query(
            "SELECT bgp_asn, (SELECT COUNT(*) FROM bgp_neighbors WHERE node_id = $1) AS neighbors FROM nodes WHERE id = $1",
        )
        .bind(node_id)
        .fetch_one(&mut *tx)
        .await?;
        let asn: Option<i64> = row.try_get("bgp_asn")?;
        let neighbors: i64 = row.try_get("neighbors")?;
        if asn.is_none() || neighbors == 0 {
            return Err(AppError::invalid(
                "Save the node's ASN and at least one BGP neighbor before switching it to BGP.",
            ));
        }
    }
    sqlx::query("UPDATE nodes SET routing_mode = $1 WHERE id = $2")
        .bind(mode.as_str())
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    if mode == RoutingMode::Manual {
        // Routes learned in an earlier BGP spell must not come back when the
        // node returns to BGP: the agent then sends its table afresh.
        sqlx::query("DELETE FROM bgp_routes WHERE node_id = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE nodes SET routes_version = NULL WHERE id = $1")
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
    }
    bump_config(&mut tx, node_id).await?;
    bump_routing_generation(&mut tx).await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.routing.mode",
        &format!("switched node {name} to {} routing", mode.label()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Issues a registration key for the node, revoking any earlier unused one.
/// Returns the key (shown once) and when it expires.
pub async fn issue_key(
    db: &Db,
    actor: &Actor,
    org_id: i64,
    name: &str,
    ttl_ms: i64,
) -> Result<(String, i64), AppError> {
    let now = now_ms();
    let key = secrets::generate("lmk_");
    let expires_at = now + ttl_ms;
    let mut tx = db.pool.begin().await?;
    let node_id = lock_node(&mut tx, org_id, name).await?;
    sqlx::query("UPDATE registration_keys SET revoked_at = $1 WHERE node_id = $2 AND used_at IS NULL AND revoked_at IS NULL")
        .bind(now)
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO registration_keys (node_id, key_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(node_id)
    .bind(secrets::hash(&key))
    .bind(&actor.name)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        org_id,
        actor,
        "node.key",
        &format!("issued a registration key for node {name}, valid for {} hours; earlier unused keys revoked", ttl_ms / 3_600_000),
    )
    .await?;
    tx.commit().await?;
    Ok((key, expires_at))
}

/// A node whose agent just registered.
#[derive(Debug)]
pub struct Registered {
    pub node_id: i64,
    pub node_name: String,
    pub org_name: String,
    pub credential: String,
}

pub const KEY_REFUSED: &str =
    "This registration key is unknown, used, revoked or expired: issue a new one in the portal.";

/// Trades a registration key for a node credential: the key works once,
/// before it expires and unless a newer key replaced it. A new credential
/// replaces any earlier one, so a re-registered server takes the node over.
pub async fn register_agent(
    db: &Db,
    key: &str,
    agent_version: &str,
    hostname: &str,
    client_addr: &str,
) -> Result<Registered, AppError> {
    let now = now_ms();
    let mut tx = db.pool.begin().await?;
    // Claiming the key is one conditional update: two agents racing with the
    // same key cannot both win.
    let claimed = sqlx::query(
        "UPDATE registration_keys SET used_at = $1 \
         WHERE key_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING node_id",
    )
    .bind(now)
    .bind(secrets::hash(key))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::invalid(KEY_REFUSED))?;
    let node_id: i64 = claimed.try_get("node_id")?;
    let credential = secrets::generate("lmn_");
    let row = sqlx::query(
        "UPDATE nodes SET credential_hash = $1, registered_at = $2, last_seen_at = $2, agent_version = $3, \
         agent_hostname = $4, applied_version = NULL, apply_error = NULL WHERE id = $5 \
         RETURNING name, org_id",
    )
    .bind(secrets::hash(&credential))
    .bind(now)
    .bind(agent_version)
    .bind(hostname)
    .bind(node_id)
    .fetch_one(&mut *tx)
    .await?;
    let node_name: String = row.try_get("name")?;
    let org_id: i64 = row.try_get("org_id")?;
    let org_name: String = sqlx::query("SELECT name FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("name")?;
    let actor = Actor {
        user_id: None,
        name: format!("agent on {hostname}"),
        client_addr: client_addr.to_string(),
    };
    audit::record(
        &mut *tx,
        org_id,
        &actor,
        "node.register",
        &format!("agent {agent_version} on {hostname} registered as node {node_name}"),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered {
        node_id,
        node_name,
        org_name,
        credential,
    })
}
