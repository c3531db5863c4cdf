//! What the portal does for node agents: it knows them by their credential,
//! hands them their configuration, and takes their acknowledgements and
//! reports. Agents are machines, so their input is checked as strictly as a
//! person's: a broken report is refused whole with a message that says what
//! was wrong, and nothing of it is stored.

use ipnet::Ipv4Net;
use lastmile_wire::{
    AppliedRequest, BgpNeighbor, DriveSpec, LearnedRoute, NodeConfig, Report, ReportResponse,
    RoutesUpdate, Routing, WithdrawnRoute,
};
use sqlx::{Any, Row, Transaction};
use std::net::Ipv4Addr;

use super::db::{get_bool, now_ms, Db};
use super::{nodes, secrets, traffic, PortalSettings};
use crate::error::AppError;

/// The node an agent's credential belongs to.
#[derive(Debug, Clone)]
pub struct AgentNode {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    /// The node's configuration version when the request arrived, so a
    /// config poll that finds it unchanged costs no further query.
    pub config_version: i64,
}

pub const CREDENTIAL_PREFIX: &str = "lmn_";

pub async fn authenticate(db: &Db, credential: &str) -> Result<Option<AgentNode>, AppError> {
    if !credential.starts_with(CREDENTIAL_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, org_id, name, config_version FROM nodes WHERE credential_hash = $1",
    )
    .bind(secrets::hash(credential))
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| {
        Ok(AgentNode {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            name: row.try_get("name")?,
            config_version: row.try_get("config_version")?,
        })
    })
    .transpose()
}

/// The node's configuration as the agent must apply it.
pub async fn config(
    db: &Db,
    node_id: i64,
    settings: &PortalSettings,
) -> Result<NodeConfig, AppError> {
    let row = sqlx::query(
        "SELECT name, enabled, public_ipv4, max_egress_mbps, routing_mode, bgp_asn, config_version, extra_hosts \
         FROM nodes WHERE id = $1",
    )
    .bind(node_id)
    .fetch_one(&db.pool)
    .await?;
    let drives = nodes::drives(db, node_id)
        .await?
        .into_iter()
        .map(|d| DriveSpec {
            path: d.path,
            size_gb: d.size_gb.max(0) as u64,
        })
        .collect();
    let routing = match row.try_get::<String, _>("routing_mode")?.as_str() {
        "bgp" => {
            let neighbors = nodes::neighbors(db, node_id)
                .await?
                .into_iter()
                .map(|n| BgpNeighbor {
                    address: n.address,
                    asn: n.asn,
                })
                .collect();
            Routing::Bgp {
                asn: row.try_get::<Option<i64>, _>("bgp_asn")?.unwrap_or(0) as u32,
                neighbors,
            }
        }
        _ => Routing::Manual,
    };
    let extra_hosts: String = row.try_get("extra_hosts")?;
    Ok(NodeConfig {
        version: row.try_get("config_version")?,
        node_name: row.try_get("name")?,
        enabled: get_bool(&row, "enabled")?,
        public_ipv4: row.try_get("public_ipv4")?,
        max_egress_mbps: row.try_get::<i64, _>("max_egress_mbps")?.max(0) as u64,
        drives,
        extra_allowed_hosts: extra_hosts.lines().map(str::to_string).collect(),
        routing,
        report_interval_secs: settings.report_interval_secs,
        poll_interval_secs: settings.config_poll_secs,
    })
}

/// The ETag of a configuration: its version and the portal settings that
/// travel with it, so a change of either reaches the agents.
pub fn config_etag(version: i64, settings: &PortalSettings) -> String {
    format!(
        "\"v{version}-r{}-p{}\"",
        settings.report_interval_secs, settings.config_poll_secs
    )
}

const MAX_TEXT: usize = 1000;

fn printable(value: &str, what: &str, max: usize) -> Result<(), AppError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(AppError::invalid(format!(
            "The agent's {what} must be at most {max} printable characters."
        )));
    }
    Ok(())
}

pub async fn record_applied(
    db: &Db,
    node: &AgentNode,
    applied: &AppliedRequest,
) -> Result<(), AppError> {
    if applied.version < 1 {
        return Err(AppError::invalid(
            "The applied configuration version must be a positive number.",
        ));
    }
    if let Some(error) = &applied.error {
        printable(error, "reason for not applying", MAX_TEXT)?;
        if error.trim().is_empty() {
            return Err(AppError::invalid(
                "Say why the configuration could not be applied.",
            ));
        }
    }
    // A version the portal never issued is a broken agent, not a fact to
    // show the operator.
    let known = sqlx::query("SELECT config_version FROM nodes WHERE id = $1")
        .bind(node.id)
        .fetch_one(&db.pool)
        .await?
        .try_get::<i64, _>("config_version")?;
    if applied.version > known {
        return Err(AppError::invalid(format!(
            "Configuration version {} was never issued to this node (the latest is {known}).",
            applied.version
        )));
    }
    let (applied_version, error) = match &applied.error {
        None => (Some(applied.version), None),
        // A failed apply leaves the node on the version it had: the agent
        // keeps serving on its last good configuration.
        Some(e) => (None, Some(e.trim().to_string())),
    };
    let now = now_ms();
    match applied_version {
        Some(v) => {
            sqlx::query(
                "UPDATE nodes SET applied_version = $1, apply_error = NULL, last_seen_at = $2 WHERE id = $3",
            )
            .bind(v)
            .bind(now)
            .bind(node.id)
            .execute(&db.pool)
            .await?;
        }
        None => {
            sqlx::query("UPDATE nodes SET apply_error = $1, last_seen_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now)
                .bind(node.id)
                .execute(&db.pool)
                .await?;
        }
    }
    Ok(())
}

/// Limits that keep one broken or hostile agent from filling the database.
const MAX_PROBLEMS: usize = 50;
const MAX_DRIVES: usize = 64;
const MAX_SESSIONS: usize = 64;
/// Far more subscriber prefixes than any ISP has; a router that sends the
/// whole internet table is misconfigured, and is told so.
pub const MAX_ROUTES: usize = 500_000;

/// What one report changed, for the caller (traffic series, steering).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReportEffects {
    pub response: ReportResponse,
    /// Counter increases since the previous report, never negative.
    pub delta: CounterDelta,
    /// The node's learned routes changed: steering must rebuild.
    pub routes_changed: bool,
}

/// Counter increases of one report, bytes per content family included.
pub type CounterDelta = crate::traffic::TrafficCounts;

struct CheckedRoute {
    net: Ipv4Net,
    neighbor: String,
    next_hop: String,
    as_path: String,
}

fn check_report(report: &Report) -> Result<(), AppError> {
    printable(&report.boot_id, "boot id", 100)?;
    if report.boot_id.trim().is_empty() {
        return Err(AppError::invalid("The report has no boot id."));
    }
    printable(&report.agent_version, "version", 64)?;
    if report.data_port == 0 {
        return Err(AppError::invalid("The data port must be 1 to 65535."));
    }
    if report.problems.len() > MAX_PROBLEMS {
        return Err(AppError::invalid(format!(
            "A report carries at most {MAX_PROBLEMS} problems."
        )));
    }
    for problem in &report.problems {
        printable(problem, "problem text", MAX_TEXT)?;
    }
    if report.drives.len() > MAX_DRIVES {
        return Err(AppError::invalid(format!(
            "A report carries at most {MAX_DRIVES} drives."
        )));
    }
    for drive in &report.drives {
        printable(&drive.path, "drive path", 4096)?;
    }
    let counters = CounterDelta::COLUMNS
        .into_iter()
        .zip(CounterDelta::reported(&report.counters))
        .chain([("active_connections", report.active_connections)]);
    for (name, value) in counters {
        if value > i64::MAX as u64 {
            return Err(AppError::invalid(format!(
                "The {} counter is out of range.",
                name.replace('_', " ")
            )));
        }
    }
    if let Some(bgp) = &report.bgp {
        if bgp.sessions.len() > MAX_SESSIONS {
            return Err(AppError::invalid(format!(
                "A report carries at most {MAX_SESSIONS} BGP sessions."
            )));
        }
        for s in &bgp.sessions {
            parse_ipv4(&s.neighbor, "BGP neighbor")?;
            printable(&s.state, "BGP session state", 20)?;
            if let Some(e) = &s.last_error {
                printable(e, "BGP error", MAX_TEXT)?;
            }
        }
    }
    Ok(())
}

fn parse_ipv4(value: &str, what: &str) -> Result<Ipv4Addr, AppError> {
    value.parse().map_err(|_| {
        AppError::invalid(format!(
            "The {what} \"{}\" is not an IPv4 address.",
            value.chars().take(60).collect::<String>()
        ))
    })
}

fn parse_prefix(value: &str) -> Result<Ipv4Net, AppError> {
    let net: Ipv4Net = value.parse().map_err(|_| {
        AppError::invalid(format!(
            "The learned prefix \"{}\" is not an IPv4 CIDR block.",
            value.chars().take(60).collect::<String>()
        ))
    })?;
    if net != net.trunc() {
        return Err(AppError::invalid(format!(
            "The learned prefix {value} has host bits set."
        )));
    }
    Ok(net)
}

fn check_route(route: &LearnedRoute) -> Result<CheckedRoute, AppError> {
    let net = parse_prefix(&route.prefix)?;
    parse_ipv4(&route.neighbor, "BGP neighbor")?;
    parse_ipv4(&route.next_hop, "next hop")?;
    if route.as_path.len() > 255 {
        return Err(AppError::invalid("An AS path is at most 255 hops long."));
    }
    Ok(CheckedRoute {
        net,
        neighbor: route.neighbor.clone(),
        next_hop: route.next_hop.clone(),
        as_path: route
            .as_path
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    })
}

fn check_withdrawn(route: &WithdrawnRoute) -> Result<(Ipv4Net, String), AppError> {
    let net = parse_prefix(&route.prefix)?;
    parse_ipv4(&route.neighbor, "BGP neighbor")?;
    Ok((net, route.neighbor.clone()))
}

/// Stores a report. Counters become never-decreasing totals: the same
/// `boot_id` with values at or above the last ones adds the difference; a
/// new `boot_id` (the agent restarted) or values that went down (which only
/// a restart explains) adds the values themselves. The increases also go
/// into the node's traffic series (see [`traffic`]).
pub async fn record_report(
    db: &Db,
    node: &AgentNode,
    report: &Report,
    settings: &PortalSettings,
) -> Result<ReportEffects, AppError> {
    record_report_at(db, node, report, settings, now_ms()).await
}

/// [`record_report`] as if it arrived at `now` (Unix ms): for tests of how
/// reports become traffic series over time.
pub async fn record_report_at(
    db: &Db,
    node: &AgentNode,
    report: &Report,
    settings: &PortalSettings,
    now: i64,
) -> Result<ReportEffects, AppError> {
    check_report(report)?;
    // Parse every route before touching the database: a broken entry
    // refuses the whole report.
    let routes = match report.bgp.as_ref().and_then(|b| b.routes.as_ref()) {
        Some(update) => {
            let total = update.announced.len() + update.withdrawn.len();
            if total > MAX_ROUTES {
                return Err(AppError::invalid(format!(
                    "A report carries at most {MAX_ROUTES} route changes."
                )));
            }
            let announced = keep_last_announcements(
                update
                    .announced
                    .iter()
                    .map(check_route)
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let withdrawn = update
                .withdrawn
                .iter()
                .map(check_withdrawn)
                .collect::<Result<Vec<_>, _>>()?;
            Some((update, announced, withdrawn))
        }
        None => None,
    };

    let mut effects = ReportEffects::default();
    let sessions = report
        .bgp
        .as_ref()
        .map(|b| serde_json::to_string(&b.sessions))
        .transpose()
        .map_err(AppError::internal)?
        .unwrap_or_else(|| "[]".into());
    let _turn = db.write_turn().await;
    let mut tx = db.pool.begin().await?;
    // A write first: on SQLite it takes the write lock (waiting for it if
    // need be) before anything is read. A transaction that read first
    // would fail with "database is locked", without waiting, whenever
    // another connection wrote before its first write.
    sqlx::query(
        "UPDATE nodes SET last_seen_at = $1, agent_version = $2, data_port = $3, serving = $4, \
         problems = $5, drive_usage = $6, bgp_sessions = $7 WHERE id = $8",
    )
    .bind(now)
    .bind(&report.agent_version)
    .bind(report.data_port as i64)
    .bind(report.serving as i64)
    .bind(serde_json::to_string(&report.problems).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&report.drives).map_err(AppError::internal)?)
    .bind(sessions)
    .bind(node.id)
    .execute(&mut *tx)
    .await?;
    let (delta, since) = add_counters(&mut tx, node.id, report, now).await?;
    effects.delta = delta;

    if let Some((update, announced, withdrawn)) = routes {
        match apply_routes(&mut tx, node.id, update, &announced, &withdrawn, now).await? {
            RoutesOutcome::Applied { changed } => effects.routes_changed = changed,
            RoutesOutcome::NeedFull => effects.response.send_full_routes = true,
        }
        if effects.routes_changed {
            nodes::bump_routing_generation(&mut tx).await?;
        }
    }
    // Last before the commit: the fleet's rows it writes are shared with
    // the organization's other reports.
    traffic::record(
        &mut tx,
        node.org_id,
        node.id,
        &delta,
        since,
        now,
        &settings.traffic_retention,
    )
    .await?;
    tx.commit().await?;
    Ok(effects)
}

/// The counter columns of `node_counters`: `last_<name>` holds the agent's
/// cumulative value, `total_<name>` the sum over every life.
const COUNTERS: [&str; 10] = CounterDelta::COLUMNS;
const N: usize = COUNTERS.len();

/// Adds the report's counters to the node's totals. Returns the increase,
/// and when the agent's previous report in the same life came (the span
/// the increase was served over), if it did.
async fn add_counters(
    tx: &mut Transaction<'_, Any>,
    node_id: i64,
    report: &Report,
    now: i64,
) -> Result<(CounterDelta, Option<i64>), AppError> {
    // check_report has made sure every counter fits an i64.
    let current = CounterDelta::reported(&report.counters).map(|v| v as i64);
    let last_columns = COUNTERS.map(|n| format!("last_{n}")).join(", ");
    let previous = sqlx::query(&format!(
        "SELECT boot_id, updated_at, {last_columns} FROM node_counters WHERE node_id = $1"
    ))
    .bind(node_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (delta, since) = match previous {
        Some(row) => {
            // Family counters are NULL until the first report after they
            // were added: no baseline, so no increase from them yet.
            let mut last = [None; N];
            for (i, name) in COUNTERS.iter().enumerate() {
                last[i] = row.try_get::<Option<i64>, _>(format!("last_{name}").as_str())?;
            }
            let same_life = row.try_get::<String, _>("boot_id")? == report.boot_id;
            let monotonic = (0..N).all(|i| last[i].is_none_or(|l| current[i] >= l));
            let (delta, since) = if same_life && monotonic {
                let delta: [i64; N] =
                    std::array::from_fn(|i| last[i].map_or(0, |l| current[i] - l));
                (delta, Some(row.try_get::<i64, _>("updated_at")?))
            } else {
                (current, None)
            };
            let mut sql = String::from("UPDATE node_counters SET boot_id = $1, ");
            for (i, name) in COUNTERS.iter().enumerate() {
                sql.push_str(&format!(
                    "last_{name} = ${}, total_{name} = total_{name} + ${}, ",
                    2 * i + 2,
                    2 * i + 3
                ));
            }
            let next = 2 * N + 2;
            sql.push_str(&format!(
                "active_connections = ${next}, updated_at = ${} WHERE node_id = ${}",
                next + 1,
                next + 2
            ));
            let mut query = sqlx::query(&sql).bind(&report.boot_id);
            for i in 0..N {
                query = query.bind(current[i]).bind(delta[i]);
            }
            query
                .bind(report.active_connections as i64)
                .bind(now)
                .bind(node_id)
                .execute(&mut **tx)
                .await?;
            (delta, since)
        }
        None => {
            let totals = COUNTERS.map(|n| format!("total_{n}")).join(", ");
            // The first report: its counters are both the baseline and the
            // totals, so the same parameters fill both.
            let values = (0..N)
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO node_counters (node_id, boot_id, {last_columns}, {totals}, active_connections, updated_at) \
                 VALUES ($1, $2, {values}, {values}, ${}, ${})",
                N + 3,
                N + 4
            );
            let mut query = sqlx::query(&sql).bind(node_id).bind(&report.boot_id);
            for value in current {
                query = query.bind(value);
            }
            query
                .bind(report.active_connections as i64)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            (current, None)
        }
    };
    Ok((CounterDelta::from_array(delta), since))
}

enum RoutesOutcome {
    Applied { changed: bool },
    NeedFull,
}

/// Rows per multi-row INSERT: a full table goes in thousands of rows at a
/// time instead of one statement each.
const ROUTE_BATCH: usize = 500;

async fn apply_routes(
    tx: &mut Transaction<'_, Any>,
    node_id: i64,
    update: &RoutesUpdate,
    announced: &[CheckedRoute],
    withdrawn: &[(Ipv4Net, String)],
    now: i64,
) -> Result<RoutesOutcome, AppError> {
    let held: Option<i64> = sqlx::query("SELECT routes_version FROM nodes WHERE id = $1")
        .bind(node_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("routes_version")?;
    let mut changed = false;
    match update.base {
        None => {
            let removed = sqlx::query("DELETE FROM bgp_routes WHERE node_id = $1")
                .bind(node_id)
                .execute(&mut **tx)
                .await?;
            changed |= removed.rows_affected() > 0 || !announced.is_empty();
        }
        Some(base) if held == Some(base as i64) => {
            for (net, neighbor) in withdrawn {
                let removed = sqlx::query(
                    "DELETE FROM bgp_routes WHERE node_id = $1 AND prefix = $2 AND neighbor = $3",
                )
                .bind(node_id)
                .bind(net.to_string())
                .bind(neighbor)
                .execute(&mut **tx)
                .await?;
                changed |= removed.rows_affected() > 0;
            }
            // An announcement replaces what the neighbor said before about
            // the same prefix.
            for route in announced {
                sqlx::query(
                    "DELETE FROM bgp_routes WHERE node_id = $1 AND prefix = $2 AND neighbor = $3",
                )
                .bind(node_id)
                .bind(route.net.to_string())
                .bind(&route.neighbor)
                .execute(&mut **tx)
                .await?;
            }
            changed |= !announced.is_empty();
        }
        Some(_) => return Ok(RoutesOutcome::NeedFull),
    }
    for batch in announced.chunks(ROUTE_BATCH) {
        let mut sql = String::from(
            "INSERT INTO bgp_routes (node_id, prefix, neighbor, first_addr, last_addr, next_hop, as_path, learned_at) VALUES ",
        );
        for i in 0..batch.len() {
            let b = i * 8;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8
            ));
        }
        // A full table replaces everything, and a delta deleted what it
        // re-announces, so these rows are new.
        let mut query = sqlx::query(&sql);
        for route in batch {
            query = query
                .bind(node_id)
                .bind(route.net.to_string())
                .bind(&route.neighbor)
                .bind(u32::from(route.net.network()) as i64)
                .bind(u32::from(route.net.broadcast()) as i64)
                .bind(&route.next_hop)
                .bind(&route.as_path)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE nodes SET routes_version = $1 WHERE id = $2")
        .bind(update.version as i64)
        .bind(node_id)
        .execute(&mut **tx)
        .await?;
    Ok(RoutesOutcome::Applied { changed })
}

/// PostgreSQL refuses an INSERT … ON CONFLICT that touches one row twice,
/// so of several announcements of one prefix by one neighbor only the last
/// is kept, as it would be on the wire.
fn keep_last_announcements(routes: Vec<CheckedRoute>) -> Vec<CheckedRoute> {
    use std::collections::HashMap;
    let mut last: HashMap<(Ipv4Net, String), usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        last.insert((r.net, r.neighbor.clone()), i);
    }
    routes
        .into_iter()
        .enumerate()
        .filter(|(i, r)| last[&(r.net, r.neighbor.clone())] == *i)
        .map(|(_, r)| r)
        .collect()
}
