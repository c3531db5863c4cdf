//! Traffic as time series: storage, queries, and what the dashboards, the
//! exports, the JSON API and `/metrics` read.
//!
//! **Ingestion.** Each report's counter increases (never negative, see
//! [`super::agents::record_report`]) cover the time since the node's
//! previous report in the same agent life. They are spread evenly over that
//! time and added to per-node buckets of three tiers, minute, hour and day
//! (`traffic_minute`, `traffic_hour`, `traffic_day`), in the report's own
//! transaction. So a lost report leaves no gap and no spike: the next one
//! carries the missing bytes and they land where they were served. The
//! first report of a new agent life (a restart, whose counters start again
//! from zero) goes into the bucket of the report: the agent reports as soon
//! as it starts, so there is little in it, and the portal does not know
//! when the new life began.
//!
//! **Rollups without a rollup job.** Every tier is written at ingestion,
//! split with the same exact integer arithmetic, so a 30-day chart read
//! from hours and a 1-hour chart read from minutes agree to the byte. The
//! same increases also go into the organization's fleet series
//! (`traffic_fleet_*`, a row per bucket and shard), which the fleet
//! dashboard reads, so it costs the same whatever the fleet's size. The
//! housekeeping job only deletes rows past each tier's retention
//! ([`TrafficRetention`]), which bounds the tables at about
//! `(nodes + 16 × organizations) × (minutes + hours + days kept)` rows.
//!
//! **Reading.** A chart point is a whole number of buckets of the finest
//! tier that still holds the range's start, summed in the database; ranges
//! are cut into at most [`MAX_POINTS`] points.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;
use std::fmt::Write as _;

use super::db::{now_ms, Db};
use super::nodes;
use crate::error::AppError;
use crate::model::NodeState;
use crate::traffic::{
    AxisTick, FleetHealth, NodeAttention, Preset, RangeInfo, TrafficCounts, TrafficPoint,
    TrafficReport, TrafficSummary,
};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Charts have at most this many points: about one per two pixels of a
/// chart on a laptop screen.
pub const MAX_POINTS: i64 = 400;

/// Point widths a range may be cut into, finest first. Each is a whole
/// number of buckets of the tiers it is used with.
const STEPS: [i64; 17] = [
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
    14 * DAY_MS,
    30 * DAY_MS,
    90 * DAY_MS,
];

/// The three series, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    /// The per-node series.
    pub fn table(self) -> &'static str {
        match self {
            Tier::Minute => "traffic_minute",
            Tier::Hour => "traffic_hour",
            Tier::Day => "traffic_day",
        }
    }

    /// The organization's series, summed at ingestion (see
    /// `0004_traffic.sql`).
    pub fn fleet_table(self) -> &'static str {
        match self {
            Tier::Minute => "traffic_fleet_minute",
            Tier::Hour => "traffic_fleet_hour",
            Tier::Day => "traffic_fleet_day",
        }
    }

    pub fn width_ms(self) -> i64 {
        match self {
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
            Tier::Day => DAY_MS,
        }
    }
}

/// How long each tier is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficRetention {
    pub minute_ms: i64,
    pub hour_ms: i64,
    pub day_ms: i64,
}

impl Default for TrafficRetention {
    /// Minutes for two days (the 1 h, 12 h and 1 d ranges), hours for 45
    /// days (7 d, 14 d and 30 d), days for 400 (a year, compared with the
    /// month before it).
    fn default() -> Self {
        Self {
            minute_ms: 48 * HOUR_MS,
            hour_ms: 45 * DAY_MS,
            day_ms: 400 * DAY_MS,
        }
    }
}

impl TrafficRetention {
    pub fn of(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Minute => self.minute_ms,
            Tier::Hour => self.hour_ms,
            Tier::Day => self.day_ms,
        }
    }
}

/// The counter columns of the tier tables.
const COLUMNS: [&str; 10] = TrafficCounts::COLUMNS;

/// Splits `delta`, served evenly over `[from, until)`, into the buckets of
/// `width` ms that the interval overlaps, leaving out buckets that end
/// before `keep_from` (past the tier's retention). Exact: the shares are
/// differences of `floor(value × elapsed / length)`, so without clipping
/// they add up to `delta` to the unit, and every tier agrees.
pub fn split(
    delta: &TrafficCounts,
    from: i64,
    until: i64,
    width: i64,
    keep_from: i64,
) -> Vec<(i64, TrafficCounts)> {
    debug_assert!(from < until && width > 0);
    let length = i128::from(until - from);
    let values = delta.to_array();
    let share_until = |t: i64| -> [i64; 10] {
        let elapsed = i128::from(t - from);
        values.map(|v| (i128::from(v) * elapsed / length) as i64)
    };
    let mut rows = Vec::new();
    let mut bucket = from.div_euclid(width) * width;
    bucket = bucket.max(keep_from.div_euclid(width) * width);
    let mut before = share_until(bucket.max(from));
    while bucket < until {
        let end = (bucket + width).min(until);
        let after = share_until(end);
        let mut part = [0i64; 10];
        for i in 0..10 {
            part[i] = after[i] - before[i];
        }
        if part.iter().any(|&v| v != 0) {
            rows.push((bucket, TrafficCounts::from_array(part)));
        }
        before = after;
        bucket += width;
    }
    rows
}

/// Rows per multi-row upsert (13 parameters each, well under both
/// databases' limits).
const UPSERT_BATCH: usize = 400;

/// Rows each bucket of an organization's fleet series is split over, by
/// node id: concurrent reports of one organization then rarely wait for
/// each other's row locks on PostgreSQL.
pub const FLEET_SHARDS: i64 = 16;

/// Adds one report's increases to the node's and its organization's series, in the report's
/// transaction. `since` is the time of the node's previous report when
/// this one continues the same agent life.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    org_id: i64,
    node_id: i64,
    delta: &TrafficCounts,
    since: Option<i64>,
    now: i64,
    retention: &TrafficRetention,
) -> Result<(), AppError> {
    if delta.is_zero() {
        return Ok(());
    }
    let from = match since {
        Some(since) if since < now => since,
        // A new life, or a clock that went backwards: the report's bucket.
        _ => now - 1,
    };
    let splits: Vec<(Tier, Vec<(i64, TrafficCounts)>)> = Tier::ALL
        .into_iter()
        .map(|tier| {
            let keep_from = now - retention.of(tier);
            (tier, split(delta, from, now, tier.width_ms(), keep_from))
        })
        .collect();
    for (tier, rows) in &splits {
        for batch in rows.chunks(UPSERT_BATCH) {
            upsert(tx, tier.table(), "node_id", org_id, node_id, batch).await?;
        }
    }
    // The fleet's rows last: on PostgreSQL they are shared with the
    // organization's other reports, and are locked until the commit.
    let shard = node_id.rem_euclid(FLEET_SHARDS);
    for (tier, rows) in &splits {
        for batch in rows.chunks(UPSERT_BATCH) {
            upsert(tx, tier.fleet_table(), "shard", org_id, shard, batch).await?;
        }
    }
    Ok(())
}

/// Adds `rows` (bucket, counts) to the rows of `table` keyed by the
/// organization, the bucket and `key` (the node, or the fleet's shard).
async fn upsert(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    key: &str,
    org_id: i64,
    key_value: i64,
    rows: &[(i64, TrafficCounts)],
) -> Result<(), AppError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = format!(
        "INSERT INTO {table} (org_id, bucket_ms, {key}, {}) VALUES ",
        COLUMNS.join(", ")
    );
    let width = 3 + COLUMNS.len();
    for i in 0..rows.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for j in 0..width {
            if j > 0 {
                sql.push(',');
            }
            let _ = write!(sql, "${}", i * width + j + 1);
        }
        sql.push(')');
    }
    let _ = write!(
        sql,
        " ON CONFLICT (org_id, bucket_ms, {key}) DO UPDATE SET "
    );
    for (i, column) in COLUMNS.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "{column} = {table}.{column} + excluded.{column}");
    }
    let mut query = sqlx::query(&sql);
    for (bucket, counts) in rows {
        query = query.bind(org_id).bind(*bucket).bind(key_value);
        for value in counts.to_array() {
            query = query.bind(value);
        }
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Deletes every tier's rows past its retention. Organization by
/// organization, so each delete walks the primary key instead of the table.
pub async fn prune(db: &Db, retention: &TrafficRetention, now: i64) -> Result<u64, AppError> {
    let orgs: Vec<i64> = sqlx::query("SELECT id FROM orgs")
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    for tier in Tier::ALL {
        let cutoff = now - retention.of(tier);
        for table in [tier.table(), tier.fleet_table()] {
            for org in &orgs {
                deleted += sqlx::query(&format!(
                    "DELETE FROM {table} WHERE org_id = $1 AND bucket_ms < $2"
                ))
                .bind(org)
                .bind(cutoff)
                .execute(&db.pool)
                .await?
                .rows_affected();
            }
        }
    }
    Ok(deleted)
}

/// Whose traffic a query sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every node the organization has or had.
    Org(i64),
    Node(i64),
}

/// A range as the database reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub preset: Option<Preset>,
    pub tier: Tier,
    /// Start of the first point, a multiple of `step_ms`.
    pub start_ms: i64,
    /// End of the data shown (exclusive).
    pub end_ms: i64,
    pub step_ms: i64,
}

impl Window {
    pub fn points(&self) -> i64 {
        (self.end_ms - self.start_ms + self.step_ms - 1) / self.step_ms
    }
}

/// The finest tier that still holds `start`, and the finest step of it
/// that cuts `[start, end)` into at most [`MAX_POINTS`] points.
fn choose_step(start: i64, end: i64, now: i64, retention: &TrafficRetention) -> (Tier, i64) {
    let tier = Tier::ALL
        .into_iter()
        .find(|&t| start >= now - retention.of(t))
        .unwrap_or(Tier::Day);
    let span = end - start;
    let step = STEPS
        .into_iter()
        .filter(|s| s % tier.width_ms() == 0)
        // One more point than the span needs, for the alignment below.
        .find(|s| span / s < MAX_POINTS)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    (tier, step)
}

/// The viewer's time zone: where chart labels and the custom range form
/// live.
#[derive(Debug, Clone)]
pub struct ViewerZone {
    pub tz: TimeZone,
    /// The IANA name, or `UTC`.
    pub name: String,
}

impl ViewerZone {
    pub fn utc() -> ViewerZone {
        ViewerZone {
            tz: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// A zone by its IANA name, such as `Europe/Berlin`, or `UTC`.
    pub fn named(name: &str) -> Result<ViewerZone, AppError> {
        let name = name.trim();
        let plausible = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
        let tz = plausible
            .then(|| TimeZone::get(name).ok())
            .flatten()
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "Unknown time zone \"{}\": give an IANA name such as Europe/Berlin, or UTC.",
                    name.chars().take(64).collect::<String>()
                ))
            })?;
        Ok(ViewerZone {
            tz,
            name: name.to_string(),
        })
    }

    fn civil(&self, ms: i64) -> DateTime {
        match Timestamp::from_millisecond(ms) {
            Ok(ts) => ts.to_zoned_datetime(self.tz.clone()).datetime(),
            Err(_) => DateTime::default(),
        }
    }

    /// Unix ms of a wall-clock time in this zone (the earlier of two in a
    /// DST fold, the later side of a DST gap, as people mean them).
    fn instant(&self, dt: DateTime) -> Option<i64> {
        dt.to_zoned_datetime(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn day_label(dt: DateTime) -> String {
    format!(
        "{} {} {}",
        WEEKDAYS[dt.weekday().to_monday_zero_offset() as usize],
        dt.day(),
        MONTHS[(dt.month() - 1) as usize]
    )
}

fn clock(dt: DateTime) -> String {
    format!("{:02}:{:02}", dt.hour(), dt.minute())
}

/// "Fri 20 Nov 2026 14:05": a moment, in words.
fn moment(zone: &ViewerZone, ms: i64) -> String {
    let dt = zone.civil(ms);
    format!("{} {} {}", day_label(dt), dt.year(), clock(dt))
}

/// What a point covers, in the viewer's zone: "Fri 20 Nov 14:05–14:10",
/// or with its end's day when it ends on another day.
fn point_label(zone: &ViewerZone, start: i64, end: i64) -> String {
    let (a, b) = (zone.civil(start), zone.civil(end));
    if a.date() == b.date() {
        format!("{} {}–{}", day_label(a), clock(a), clock(b))
    } else {
        format!(
            "{} {} – {} {}",
            day_label(a),
            clock(a),
            day_label(b),
            clock(b)
        )
    }
}

/// Reads a range ending in `from`/`to` form fields: a `datetime-local`
/// value in the viewer's zone, or an RFC 3339 time with its offset.
fn parse_moment(raw: &str, zone: &ViewerZone, which: &str) -> Result<i64, AppError> {
    let raw = raw.trim();
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    raw.parse::<DateTime>()
        .ok()
        .and_then(|dt| zone.instant(dt))
        .ok_or_else(|| {
            AppError::invalid(format!(
                "The {which} of the range, \"{}\", is not a date and time such as 2026-11-20T14:00.",
                raw.chars().take(40).collect::<String>()
            ))
        })
}

/// Every cookie of a request in one `Cookie` header's form. Over HTTP/2
/// browsers send each cookie as a header field of its own.
pub fn cookie_header(headers: &http::HeaderMap) -> String {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The zone to label times in: `explicit` (a `tz` parameter; an unknown
/// one is an error), else the one the browser reported in the time-zone
/// cookie among `cookies` (a `Cookie` header; an unknown one is ignored),
/// else UTC.
pub fn viewer_zone(explicit: Option<&str>, cookies: Option<&str>) -> Result<ViewerZone, AppError> {
    if let Some(name) = explicit.map(str::trim).filter(|n| !n.is_empty()) {
        return ViewerZone::named(name);
    }
    let remembered = cookies.and_then(crate::traffic::time_zone_cookie);
    Ok(remembered
        .and_then(|name| ViewerZone::named(name).ok())
        .unwrap_or_else(ViewerZone::utc))
}

/// What the address asked for: `range` (a preset or `custom`), and for a
/// custom range `from` and `to`.
#[derive(Debug, Clone, Default)]
pub struct RangeQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Turns what the address asked for into the window to read.
pub fn resolve(
    query: &RangeQuery,
    zone: &ViewerZone,
    now: i64,
    retention: &TrafficRetention,
) -> Result<Window, AppError> {
    let preset = match given(&query.range) {
        Some(range) => Preset::parse(range)?,
        // A custom range without `range=custom` (a hand-written address).
        None if given(&query.from).is_some() => None,
        None => Some(Preset::DEFAULT),
    };
    let (start, end) = match preset {
        Some(p) => (now - p.duration_ms(), now),
        None => {
            let from = given(&query.from)
                .ok_or_else(|| AppError::invalid("Give the start of the custom range (from)."))?;
            let start = parse_moment(from, zone, "start")?;
            let end = match given(&query.to) {
                Some(to) => parse_moment(to, zone, "end")?.min(now),
                None => now,
            };
            if start >= now {
                return Err(AppError::invalid("The range starts in the future."));
            }
            if start >= end {
                return Err(AppError::invalid("The range must end after it starts."));
            }
            if end - start < MINUTE_MS {
                return Err(AppError::invalid("A range must be at least a minute long."));
            }
            if start < now - retention.day_ms {
                return Err(AppError::invalid(format!(
                    "Traffic is kept for {} days: choose a start after {}.",
                    retention.day_ms / DAY_MS,
                    moment(zone, now - retention.day_ms)
                )));
            }
            (start, end)
        }
    };
    let (tier, step) = choose_step(start, end, now, retention);
    Ok(Window {
        preset,
        tier,
        start_ms: start.div_euclid(step) * step,
        end_ms: end,
        step_ms: step,
    })
}

/// The scope's counts per point of the window, summed in the database.
pub async fn slot_counts(
    db: &Db,
    scope: Scope,
    window: &Window,
) -> Result<HashMap<i64, TrafficCounts>, AppError> {
    let sums = COLUMNS
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The fleet from its own series (a row per bucket and shard, however
    // many nodes), a node from its own.
    let (table, condition, id) = match scope {
        Scope::Org(id) => (window.tier.fleet_table(), "org_id = $4", id),
        Scope::Node(id) => (window.tier.table(), "node_id = $4", id),
    };
    let sql = format!(
        "SELECT (bucket_ms - $1) / $2 AS slot, {sums} FROM {table} \
         WHERE {condition} AND bucket_ms >= $1 AND bucket_ms < $3 GROUP BY slot"
    );
    let rows = sqlx::query(&sql)
        .bind(window.start_ms)
        .bind(window.step_ms)
        .bind(window.end_ms)
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
    let mut slots = HashMap::with_capacity(rows.len());
    for row in &rows {
        slots.insert(row.try_get::<i64, _>("slot")?, counts_from_row(row)?);
    }
    Ok(slots)
}

/// The counts in a row that has every one of [`COLUMNS`] under its name.
fn counts_from_row(row: &sqlx::any::AnyRow) -> Result<TrafficCounts, AppError> {
    let mut values = [0i64; COLUMNS.len()];
    for (value, column) in values.iter_mut().zip(COLUMNS) {
        *value = row.try_get(column)?;
    }
    Ok(TrafficCounts::from_array(values))
}

/// Times on the horizontal axis: round wall-clock times in the viewer's
/// zone (every N minutes or hours, or local midnights), about six of them.
fn ticks(zone: &ViewerZone, start: i64, end: i64) -> Vec<AxisTick> {
    const MINUTES: [i64; 11] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720];
    const DAYS: [i64; 5] = [1, 2, 7, 14, 30];
    let span_min = (end - start) / MINUTE_MS;
    let first = zone.civil(start).date();
    let last = zone.civil(end).date();
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        days.push(day);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    let mut out: Vec<AxisTick> = Vec::new();
    if let Some(every) = MINUTES.into_iter().find(|m| span_min / m <= 7) {
        let several_days = days.len() > 1;
        let mut previous_day: Option<Date> = None;
        for day in &days {
            let mut minute = 0;
            while minute < 24 * 60 {
                let dt = DateTime::new(
                    day.year(),
                    day.month(),
                    day.day(),
                    (minute / 60) as i8,
                    (minute % 60) as i8,
                    0,
                    0,
                );
                minute += every;
                let Some(at) = dt.ok().and_then(|dt| zone.instant(dt)) else {
                    continue;
                };
                if at < start || at > end || out.last().is_some_and(|t| t.at_ms >= at) {
                    continue;
                }
                let civil = zone.civil(at);
                let label = if several_days && previous_day != Some(civil.date()) {
                    format!("{} {}", day_label(civil), clock(civil))
                } else {
                    clock(civil)
                };
                previous_day = Some(civil.date());
                out.push(AxisTick { at_ms: at, label });
            }
        }
    } else {
        let midnights: Vec<i64> = days
            .iter()
            .filter_map(|day| {
                DateTime::new(day.year(), day.month(), day.day(), 0, 0, 0, 0)
                    .ok()
                    .and_then(|dt| zone.instant(dt))
            })
            .filter(|at| (start..=end).contains(at))
            .collect();
        let every = DAYS
            .into_iter()
            .find(|d| midnights.len() as i64 / d <= 7)
            .unwrap_or(30);
        for at in midnights.into_iter().step_by(every as usize) {
            out.push(AxisTick {
                at_ms: at,
                label: day_label(zone.civil(at)),
            });
        }
    }
    out
}

/// Builds a dashboard's data: the scope's points over the window, labelled
/// in the viewer's zone.
pub fn build_report(
    node: Option<String>,
    window: &Window,
    slots: &HashMap<i64, TrafficCounts>,
    zone: &ViewerZone,
) -> TrafficReport {
    let mut points = Vec::with_capacity(window.points() as usize);
    for i in 0..window.points() {
        let start = window.start_ms + i * window.step_ms;
        let end = (start + window.step_ms).min(window.end_ms);
        points.push(TrafficPoint {
            start_ms: start,
            span_ms: end - start,
            label: point_label(zone, start, start + window.step_ms),
            counts: slots.get(&i).copied().unwrap_or_default(),
        });
    }
    let chart_end = window.start_ms + window.points() * window.step_ms;
    let summary = TrafficSummary::of(&points, window.end_ms - window.start_ms);
    TrafficReport {
        node,
        range: RangeInfo {
            preset: window.preset,
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            step_ms: window.step_ms,
            description: format!(
                "{} – {}",
                moment(zone, window.start_ms),
                moment(zone, window.end_ms)
            ),
        },
        time_zone: zone.name.clone(),
        ticks: ticks(zone, window.start_ms, chart_end),
        points,
        summary,
    }
}

/// A dashboard's data for the organization's fleet (`node` `None`) or one
/// of its nodes; an unknown node is "not found", whichever organization
/// has one of that name.
pub async fn report(
    db: &Db,
    org_id: i64,
    node: Option<&str>,
    query: &RangeQuery,
    zone: &ViewerZone,
    retention: &TrafficRetention,
) -> Result<TrafficReport, AppError> {
    // An empty `node` (a form's blank field) means the fleet.
    let node = node.map(str::trim).filter(|n| !n.is_empty());
    let scope = match node {
        Some(name) => Scope::Node(nodes::id_of(db, org_id, name).await?),
        None => Scope::Org(org_id),
    };
    let window = resolve(query, zone, now_ms(), retention)?;
    let slots = slot_counts(db, scope, &window).await?;
    Ok(build_report(
        node.map(str::to_string),
        &window,
        &slots,
        zone,
    ))
}

/// Node health across the organization's fleet: the same states as the
/// node list, and whether each node's data path can serve.
pub async fn fleet_health(
    db: &Db,
    org_id: i64,
    offline_after_ms: i64,
) -> Result<FleetHealth, AppError> {
    let nodes = nodes::list_with_health(db, org_id, offline_after_ms).await?;
    let mut health = FleetHealth {
        total: nodes.len(),
        ..FleetHealth::default()
    };
    for (node, serving, problems) in nodes {
        let healthy = node.state == NodeState::Online && serving;
        match node.state {
            NodeState::Online if serving => health.healthy += 1,
            NodeState::Online => health.not_serving += 1,
            NodeState::Offline => health.offline += 1,
            NodeState::Disabled => health.disabled += 1,
            NodeState::NeverConnected => health.never_connected += 1,
        }
        let needs_attention = matches!(node.state, NodeState::Online | NodeState::Offline)
            && (!healthy
                || !problems.is_empty()
                || node.config_state == crate::model::ConfigState::Failed);
        if needs_attention {
            health.attention.push(NodeAttention {
                name: node.name,
                state: node.state,
                serving,
                config_state: node.config_state,
                apply_error: node.apply_error,
                problems,
                last_seen_at_ms: node.last_seen_at_ms,
            });
        }
    }
    Ok(health)
}

/// Prometheus' text format: a metric's help and type, once.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as Prometheus' text format wants it escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family printed from one value per organization: its name, how
/// to read the value from `T`, and its help text.
type Metric<T> = (&'static str, fn(&T) -> i64, &'static str);

/// Fleet metrics in Prometheus' text format: for every organization
/// (`org` `None`, the portal's operator) or for one.
pub async fn prometheus(
    db: &Db,
    org: Option<i64>,
    offline_after_ms: i64,
    now: i64,
) -> Result<String, AppError> {
    let orgs: Vec<(i64, String)> =
        sqlx::query("SELECT id, name FROM orgs WHERE ($1 = 0 OR id = $1) ORDER BY id")
            .bind(org.unwrap_or(0))
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect::<Result<_, sqlx::Error>>()?;
    let org_names: HashMap<i64, String> = orgs.iter().cloned().collect();

    let mut healths = Vec::new();
    for (id, name) in &orgs {
        healths.push((label(name), fleet_health(db, *id, offline_after_ms).await?));
    }

    // Totals since each node was created, per node, from the counters
    // reports keep.
    let totals = COLUMNS.map(|c| format!("c.total_{c} AS {c}")).join(", ");
    let node_rows = sqlx::query(&format!(
        "SELECT n.org_id, n.name, {totals}, c.active_connections \
         FROM nodes n JOIN node_counters c ON c.node_id = n.id \
         WHERE ($1 = 0 OR n.org_id = $1) ORDER BY n.org_id, n.name_key"
    ))
    .bind(org.unwrap_or(0))
    .fetch_all(&db.pool)
    .await?;
    struct NodeTotals {
        org: String,
        node: String,
        counts: TrafficCounts,
        connections: i64,
    }
    let mut nodes_totals = Vec::new();
    for r in &node_rows {
        let org_id: i64 = r.try_get("org_id")?;
        nodes_totals.push(NodeTotals {
            org: label(org_names.get(&org_id).map_or("", String::as_str)),
            node: label(&r.try_get::<String, _>("name")?),
            counts: counts_from_row(r)?,
            connections: r.try_get("active_connections")?,
        });
    }

    // Recent rates from the minute series: the last five complete minutes
    // for egress, the last complete hour's minutes for efficiency.
    let this_minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
    let recent = |from: i64| {
        sqlx::query(
            "SELECT org_id, CAST(SUM(hit_bytes) AS BIGINT) AS hit, CAST(SUM(miss_bytes) AS BIGINT) AS miss, \
             CAST(SUM(origin_bytes) AS BIGINT) AS origin FROM traffic_fleet_minute \
             WHERE bucket_ms >= $1 AND bucket_ms < $2 AND ($3 = 0 OR org_id = $3) GROUP BY org_id",
        )
        .bind(from)
        .bind(this_minute)
        .bind(org.unwrap_or(0))
        .fetch_all(&db.pool)
    };
    let mut five_minutes: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    for r in recent(this_minute - 5 * MINUTE_MS).await? {
        five_minutes.insert(
            r.try_get("org_id")?,
            (r.try_get("hit")?, r.try_get("miss")?, r.try_get("origin")?),
        );
    }
    let mut hour: HashMap<i64, (i64, i64)> = HashMap::new();
    for r in recent(this_minute - HOUR_MS).await? {
        hour.insert(
            r.try_get("org_id")?,
            (r.try_get("hit")?, r.try_get("miss")?),
        );
    }

    let mut out = String::new();
    family(
        &mut out,
        "lastmile_nodes",
        "gauge",
        "Nodes by state: healthy (online and serving), offline, not_serving (online, data path down), disabled, never_connected.",
    );
    for (org, h) in &healths {
        for (state, n) in [
            ("healthy", h.healthy),
            ("offline", h.offline),
            ("not_serving", h.not_serving),
            ("disabled", h.disabled),
            ("never_connected", h.never_connected),
        ] {
            let _ = writeln!(out, "lastmile_nodes{{org=\"{org}\",state=\"{state}\"}} {n}");
        }
    }
    let mut org_sums: Vec<(String, TrafficCounts)> = Vec::new();
    for t in &nodes_totals {
        if org_sums.last().is_none_or(|(o, _)| *o != t.org) {
            org_sums.push((t.org.clone(), TrafficCounts::default()));
        }
        org_sums.last_mut().expect("pushed above").1.add(&t.counts);
    }
    family(
        &mut out,
        "lastmile_served_bytes_total",
        "counter",
        "Bytes sent to subscribers by the organization's current nodes, from the cache (source=hit) or fetched for them (source=miss).",
    );
    for (org, s) in &org_sums {
        let _ = writeln!(
            out,
            "lastmile_served_bytes_total{{org=\"{org}\",source=\"hit\"}} {}",
            s.hit_bytes
        );
        let _ = writeln!(
            out,
            "lastmile_served_bytes_total{{org=\"{org}\",source=\"miss\"}} {}",
            s.miss_bytes
        );
    }
    let org_counters: [Metric<TrafficCounts>; 3] = [
        (
            "lastmile_origin_bytes_total",
            |c| c.origin_bytes,
            "Bytes the organization's current nodes fetched from origins.",
        ),
        (
            "lastmile_requests_total",
            |c| c.requests,
            "Requests the organization's current nodes answered.",
        ),
        (
            "lastmile_errors_total",
            |c| c.errors,
            "Requests that failed on the organization's current nodes.",
        ),
    ];
    for (name, value, help) in org_counters {
        family(&mut out, name, "counter", help);
        for (org, s) in &org_sums {
            let _ = writeln!(out, "{name}{{org=\"{org}\"}} {}", value(s));
        }
    }
    family(
        &mut out,
        "lastmile_family_bytes_total",
        "counter",
        "Bytes sent to subscribers by content family.",
    );
    for (org, s) in &org_sums {
        let families = crate::traffic::FAMILIES.iter().zip(s.families.values());
        for ((key, _), bytes) in families {
            let _ = writeln!(
                out,
                "lastmile_family_bytes_total{{org=\"{org}\",family=\"{key}\"}} {bytes}"
            );
        }
    }
    let rates: [Metric<(i64, i64, i64)>; 2] = [
        (
            "lastmile_egress_bits_per_second",
            |(hit, miss, _)| hit + miss,
            "Bits per second sent to subscribers, averaged over the last five complete minutes.",
        ),
        (
            "lastmile_origin_ingress_bits_per_second",
            |(_, _, origin)| *origin,
            "Bits per second fetched from origins, averaged over the last five complete minutes.",
        ),
    ];
    for (name, bytes, help) in rates {
        family(&mut out, name, "gauge", help);
        for (id, org) in &orgs {
            let recent = five_minutes.get(id).copied().unwrap_or_default();
            let bps = crate::traffic::rate_bps(bytes(&recent), 5 * MINUTE_MS);
            let _ = writeln!(out, "{name}{{org=\"{}\"}} {bps}", label(org));
        }
    }
    family(
        &mut out,
        "lastmile_cache_efficiency_ratio",
        "gauge",
        "Hit bytes over all bytes served in the last hour (absent when nothing was served).",
    );
    for (id, name) in &orgs {
        if let Some(&(hit, miss)) = hour.get(id) {
            if hit + miss > 0 {
                let _ = writeln!(
                    out,
                    "lastmile_cache_efficiency_ratio{{org=\"{}\"}} {}",
                    label(name),
                    hit as f64 / (hit + miss) as f64
                );
            }
        }
    }
    family(
        &mut out,
        "lastmile_node_served_bytes_total",
        "counter",
        "Bytes a node sent to subscribers, from the cache (source=hit) or fetched for them (source=miss).",
    );
    for t in &nodes_totals {
        let _ = writeln!(
            out,
            "lastmile_node_served_bytes_total{{org=\"{}\",node=\"{}\",source=\"hit\"}} {}\n\
             lastmile_node_served_bytes_total{{org=\"{}\",node=\"{}\",source=\"miss\"}} {}",
            t.org, t.node, t.counts.hit_bytes, t.org, t.node, t.counts.miss_bytes
        );
    }
    family(
        &mut out,
        "lastmile_node_origin_bytes_total",
        "counter",
        "Bytes a node fetched from origins.",
    );
    for t in &nodes_totals {
        let _ = writeln!(
            out,
            "lastmile_node_origin_bytes_total{{org=\"{}\",node=\"{}\"}} {}",
            t.org, t.node, t.counts.origin_bytes
        );
    }
    family(
        &mut out,
        "lastmile_node_active_connections",
        "gauge",
        "Client connections open on a node at its last report.",
    );
    for t in &nodes_totals {
        let _ = writeln!(
            out,
            "lastmile_node_active_connections{{org=\"{}\",node=\"{}\"}} {}",
            t.org, t.node, t.connections
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::FamilyCounts;

    fn counts(requests: i64, hit: i64, miss: i64) -> TrafficCounts {
        TrafficCounts {
            requests,
            hit_bytes: hit,
            miss_bytes: miss,
            origin_bytes: miss,
            errors: 0,
            families: FamilyCounts {
                windows_update: hit + miss,
                ..FamilyCounts::default()
            },
        }
    }

    fn total(rows: &[(i64, TrafficCounts)]) -> TrafficCounts {
        let mut sum = TrafficCounts::default();
        for (_, c) in rows {
            sum.add(c);
        }
        sum
    }

    #[test]
    fn a_report_is_spread_over_the_time_since_the_previous_one() {
        // 90 s of traffic from 10:00:30 to 10:02:00: a third in the first
        // minute, two thirds in the second, exactly.
        let t0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS;
        let delta = counts(9, 3_000, 1_001);
        let rows = split(&delta, t0 + 30_000, t0 + 120_000, MINUTE_MS, 0);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, t0);
        assert_eq!(rows[1].0, t0 + MINUTE_MS);
        assert_eq!(rows[0].1.hit_bytes, 1_000);
        assert_eq!(rows[1].1.hit_bytes, 2_000);
        assert_eq!(rows[0].1.requests + rows[1].1.requests, 9);
        // Odd amounts still add up to the unit, in every tier.
        for width in [MINUTE_MS, HOUR_MS, DAY_MS] {
            assert_eq!(
                total(&split(&delta, t0 + 30_000, t0 + 120_000, width, 0)),
                delta
            );
        }
        let hours = split(&delta, t0 + 30_000, t0 + 120_000, HOUR_MS, 0);
        assert_eq!(hours.len(), 1);
    }

    #[test]
    fn spreading_leaves_out_buckets_past_retention() {
        // Three days of silence: the minute tier keeps only its last two
        // days, the day tier all of it.
        let now = 10 * DAY_MS;
        let delta = counts(3 * 24 * 60, 3 * 24 * 60 * 1000, 0);
        let minutes = split(&delta, now - 3 * DAY_MS, now, MINUTE_MS, now - 2 * DAY_MS);
        assert_eq!(minutes.len(), 2 * 24 * 60);
        assert_eq!(total(&minutes).requests, 2 * 24 * 60);
        let days = split(&delta, now - 3 * DAY_MS, now, DAY_MS, 0);
        assert_eq!(days.len(), 3);
        assert_eq!(total(&days), delta);
    }

    #[test]
    fn a_zero_length_interval_lands_in_one_bucket() {
        let rows = split(&counts(1, 5, 5), 119_999, 120_000, MINUTE_MS, 0);
        assert_eq!(rows, vec![(60_000, counts(1, 5, 5))]);
    }

    fn zone(name: &str) -> ViewerZone {
        ViewerZone::named(name).unwrap()
    }

    #[test]
    fn ranges_resolve_to_a_tier_and_a_step() {
        let now = 1_795_000_000_000;
        let r = TrafficRetention::default();
        let utc = ViewerZone::utc();
        let of = |range: &str| {
            resolve(
                &RangeQuery {
                    range: Some(range.into()),
                    ..Default::default()
                },
                &utc,
                now,
                &r,
            )
            .unwrap()
        };
        let hour = of("1h");
        assert_eq!((hour.tier, hour.step_ms), (Tier::Minute, MINUTE_MS));
        assert_eq!(hour.points(), 61, "60 minutes and the one in progress");
        assert_eq!(
            (of("12h").tier, of("12h").step_ms),
            (Tier::Minute, 2 * MINUTE_MS)
        );
        assert_eq!(
            (of("1d").tier, of("1d").step_ms),
            (Tier::Minute, 5 * MINUTE_MS)
        );
        assert_eq!((of("7d").tier, of("7d").step_ms), (Tier::Hour, HOUR_MS));
        assert_eq!((of("14d").tier, of("14d").step_ms), (Tier::Hour, HOUR_MS));
        let month = of("30d");
        assert_eq!((month.tier, month.step_ms), (Tier::Hour, 2 * HOUR_MS));
        assert!(month.points() <= MAX_POINTS);
        assert_eq!(month.start_ms % month.step_ms, 0);
        // No range at all is the default one.
        let default = resolve(&RangeQuery::default(), &utc, now, &r).unwrap();
        assert_eq!(default.preset, Some(Preset::DEFAULT));
    }

    #[test]
    fn custom_ranges_are_read_in_the_viewers_zone_and_checked() {
        let now = 1_795_000_000_000; // 2026-11-18 11:06:40 UTC
        let r = TrafficRetention::default();
        let custom = |from: &str, to: &str, z: &ViewerZone| {
            resolve(
                &RangeQuery {
                    range: Some("custom".into()),
                    from: Some(from.into()),
                    to: Some(to.into()),
                },
                z,
                now,
                &r,
            )
        };
        // 09:00 in Berlin (UTC+1 in November) is 08:00 UTC.
        let w = custom(
            "2026-11-18T09:00",
            "2026-11-18T10:00",
            &zone("Europe/Berlin"),
        )
        .unwrap();
        assert_eq!(w.start_ms, 1_794_988_800_000);
        assert_eq!(w.end_ms - w.start_ms, HOUR_MS);
        // RFC 3339 with an offset means what it says, whatever the zone.
        let w = custom("2026-11-18T08:00:00Z", "", &zone("Asia/Tokyo")).unwrap();
        assert_eq!(w.start_ms, 1_794_988_800_000);
        assert_eq!(w.end_ms, now, "no end: until now");
        // A month ago is read from hours; a year ago from days.
        let w = custom("2026-10-18T00:00", "2026-10-20T00:00", &ViewerZone::utc()).unwrap();
        assert_eq!(w.tier, Tier::Hour);
        let w = custom("2025-12-01T00:00", "2026-01-01T00:00", &ViewerZone::utc()).unwrap();
        assert_eq!(w.tier, Tier::Day);

        let err = |from: &str, to: &str| {
            custom(from, to, &ViewerZone::utc())
                .unwrap_err()
                .to_string()
        };
        assert!(err("yesterday", "").contains("\"yesterday\", is not a date and time"));
        assert!(err("2026-11-18T10:00", "2026-11-18T09:00").contains("must end after it starts"));
        assert!(err("2027-01-01T00:00", "").contains("starts in the future"));
        assert!(err("2020-01-01T00:00", "").contains("Traffic is kept for 400 days"));
        assert!(err("2026-11-18T10:00", "2026-11-18T10:00:30Z").contains("at least a minute"));
        let missing = resolve(
            &RangeQuery {
                range: Some("custom".into()),
                ..Default::default()
            },
            &ViewerZone::utc(),
            now,
            &r,
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("start of the custom range"), "{missing}");
    }

    #[test]
    fn the_zone_comes_from_the_address_then_the_cookie_then_utc() {
        let cookies = Some("lastmile_session=abc; lastmile_tz=Asia/Tokyo");
        assert_eq!(
            viewer_zone(Some("Europe/Berlin"), cookies).unwrap().name,
            "Europe/Berlin"
        );
        assert_eq!(viewer_zone(None, cookies).unwrap().name, "Asia/Tokyo");
        assert_eq!(viewer_zone(Some(""), None).unwrap().name, "UTC");
        assert_eq!(
            viewer_zone(None, Some("lastmile_tz=Nowhere/Else"))
                .unwrap()
                .name,
            "UTC"
        );
        assert!(viewer_zone(Some("Nowhere/Else"), cookies).is_err());
    }

    #[test]
    fn cookies_split_over_several_header_fields_are_all_read() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "lastmile_session=abc".parse().unwrap(),
        );
        headers.append(
            http::header::COOKIE,
            "lastmile_tz=Asia/Tokyo".parse().unwrap(),
        );
        let cookies = cookie_header(&headers);
        assert_eq!(
            viewer_zone(None, Some(&cookies)).unwrap().name,
            "Asia/Tokyo"
        );
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            zone("America/Argentina/Buenos_Aires").name,
            "America/Argentina/Buenos_Aires"
        );
        assert!(ViewerZone::named("UTC").is_ok());
        let err = ViewerZone::named("Mars/Olympus").unwrap_err().to_string();
        assert!(err.contains("Unknown time zone \"Mars/Olympus\""), "{err}");
        assert!(ViewerZone::named("../../etc/passwd").is_err());
    }

    #[test]
    fn labels_and_ticks_are_in_the_viewers_zone() {
        // 2026-11-18 11:06:40 UTC is 12:06 in Berlin and 20:06 in Tokyo.
        let now = 1_795_000_000_000;
        let window = Window {
            preset: Some(Preset::Hour1),
            tier: Tier::Minute,
            start_ms: now - now % MINUTE_MS - HOUR_MS,
            end_ms: now,
            step_ms: MINUTE_MS,
        };
        let berlin = build_report(None, &window, &HashMap::new(), &zone("Europe/Berlin"));
        assert_eq!(berlin.time_zone, "Europe/Berlin");
        assert_eq!(
            berlin.points.last().unwrap().label,
            "Wed 18 Nov 12:06–12:07"
        );
        assert_eq!(
            berlin.points.last().unwrap().span_ms,
            40_000,
            "the minute in progress"
        );
        let labels: Vec<&str> = berlin.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            ["11:10", "11:20", "11:30", "11:40", "11:50", "12:00"]
        );
        let utc = build_report(None, &window, &HashMap::new(), &ViewerZone::utc());
        assert_eq!(utc.ticks[0].label, "10:10");
        assert_eq!(utc.ticks[0].at_ms, berlin.ticks[0].at_ms);

        // A week: local midnights, by day.
        let week = Window {
            preset: Some(Preset::Days7),
            tier: Tier::Hour,
            start_ms: now - now % HOUR_MS - 7 * DAY_MS,
            end_ms: now,
            step_ms: HOUR_MS,
        };
        let tokyo = build_report(None, &week, &HashMap::new(), &zone("Asia/Tokyo"));
        assert!(tokyo.ticks.iter().all(|t| {
            let dt = zone("Asia/Tokyo").civil(t.at_ms);
            dt.hour() == 0 && dt.minute() == 0
        }));
        assert_eq!(tokyo.ticks.len(), 7);
        assert_eq!(tokyo.ticks[0].label, "Thu 12 Nov");
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
