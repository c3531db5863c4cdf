//! Traffic as the portal shows it: what the server sends the browser for a
//! dashboard (points already labelled in the viewer's time zone, so the
//! browser renders exactly what the server rendered), the numbers derived
//! from it, and the CSV and JSON exports of each chart.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use crate::error::AppError;

/// The cookie that remembers the viewer's time zone (an IANA name), which
/// the hydrated page sets from the browser's own, so the server labels
/// charts in it from then on.
pub const TIME_ZONE_COOKIE: &str = "lastmile_tz";

/// The time zone the browser reported, from a `Cookie` header's text (the
/// server reads the request's; the browser reads `document.cookie`).
pub fn time_zone_cookie(cookies: &str) -> Option<&str> {
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == TIME_ZONE_COOKIE).then_some(value.trim())
    })
}

/// Bytes served by content family (as the agent classifies its hosts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCounts {
    pub windows_update: i64,
    pub office: i64,
    pub xbox: i64,
    pub edge: i64,
    pub other: i64,
}

/// The content families, in the order the portal shows them, with their
/// names for people and for exports.
pub const FAMILIES: [(&str, &str); 5] = [
    ("windows_update", "Windows Update"),
    ("office", "Office"),
    ("xbox", "Xbox"),
    ("edge", "Edge"),
    ("other", "Other"),
];

impl FamilyCounts {
    /// The values in the order of [`FAMILIES`].
    pub fn values(&self) -> [i64; 5] {
        [
            self.windows_update,
            self.office,
            self.xbox,
            self.edge,
            self.other,
        ]
    }

    pub fn add(&mut self, other: &FamilyCounts) {
        self.windows_update += other.windows_update;
        self.office += other.office;
        self.xbox += other.xbox;
        self.edge += other.edge;
        self.other += other.other;
    }
}

/// Counter increases over some span of time: one report's, or one chart
/// point's. Never negative.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounts {
    pub requests: i64,
    /// Bytes served to clients from the cache: the bytes saved upstream.
    pub hit_bytes: i64,
    /// Bytes served to clients that had to come from the origin first.
    pub miss_bytes: i64,
    /// Bytes fetched from origins (the upstream traffic the node caused).
    pub origin_bytes: i64,
    pub errors: i64,
    pub families: FamilyCounts,
}

impl TrafficCounts {
    /// The counters as database columns, in [`TrafficCounts::to_array`]
    /// order: the tier tables name them so, and `node_counters` keeps
    /// `last_<name>` and `total_<name>` of each.
    pub const COLUMNS: [&'static str; 10] = [
        "requests",
        "hit_bytes",
        "miss_bytes",
        "origin_bytes",
        "errors",
        "windows_update_bytes",
        "office_bytes",
        "xbox_bytes",
        "edge_bytes",
        "other_bytes",
    ];

    pub fn to_array(&self) -> [i64; 10] {
        let f = &self.families;
        [
            self.requests,
            self.hit_bytes,
            self.miss_bytes,
            self.origin_bytes,
            self.errors,
            f.windows_update,
            f.office,
            f.xbox,
            f.edge,
            f.other,
        ]
    }

    /// An agent's cumulative counters, as reported, in
    /// [`TrafficCounts::COLUMNS`] order.
    pub fn reported(c: &lastmile_wire::Counters) -> [u64; 10] {
        let f = &c.families;
        [
            c.requests,
            c.hit_bytes,
            c.miss_bytes,
            c.origin_bytes,
            c.errors,
            f.windows_update,
            f.office,
            f.xbox,
            f.edge,
            f.other,
        ]
    }

    pub fn from_array(v: [i64; 10]) -> TrafficCounts {
        TrafficCounts {
            requests: v[0],
            hit_bytes: v[1],
            miss_bytes: v[2],
            origin_bytes: v[3],
            errors: v[4],
            families: FamilyCounts {
                windows_update: v[5],
                office: v[6],
                xbox: v[7],
                edge: v[8],
                other: v[9],
            },
        }
    }

    /// Everything sent to subscribers: hits and misses.
    pub fn served_bytes(&self) -> i64 {
        self.hit_bytes + self.miss_bytes
    }

    /// Hit bytes divided by all bytes served, or `None` when nothing was.
    pub fn efficiency(&self) -> Option<f64> {
        let served = self.served_bytes();
        (served > 0).then(|| self.hit_bytes as f64 / served as f64)
    }

    pub fn is_zero(&self) -> bool {
        *self == TrafficCounts::default()
    }

    pub fn add(&mut self, other: &TrafficCounts) {
        self.requests += other.requests;
        self.hit_bytes += other.hit_bytes;
        self.miss_bytes += other.miss_bytes;
        self.origin_bytes += other.origin_bytes;
        self.errors += other.errors;
        self.families.add(&other.families);
    }
}

/// The ranges offered as links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    #[serde(rename = "1h")]
    Hour1,
    #[serde(rename = "12h")]
    Hours12,
    #[serde(rename = "1d")]
    Day1,
    #[serde(rename = "7d")]
    Days7,
    #[serde(rename = "14d")]
    Days14,
    #[serde(rename = "30d")]
    Days30,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Hour1,
        Preset::Hours12,
        Preset::Day1,
        Preset::Days7,
        Preset::Days14,
        Preset::Days30,
    ];
    /// What a dashboard shows when the address names no range.
    pub const DEFAULT: Preset = Preset::Day1;

    /// The value of the `range` query parameter.
    pub fn key(self) -> &'static str {
        match self {
            Preset::Hour1 => "1h",
            Preset::Hours12 => "12h",
            Preset::Day1 => "1d",
            Preset::Days7 => "7d",
            Preset::Days14 => "14d",
            Preset::Days30 => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Preset::Hour1 => "1 h",
            Preset::Hours12 => "12 h",
            Preset::Day1 => "1 d",
            Preset::Days7 => "7 d",
            Preset::Days14 => "14 d",
            Preset::Days30 => "30 d",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Preset::Hour1 => "Last hour",
            Preset::Hours12 => "Last 12 hours",
            Preset::Day1 => "Last day",
            Preset::Days7 => "Last 7 days",
            Preset::Days14 => "Last 14 days",
            Preset::Days30 => "Last 30 days",
        }
    }

    pub fn duration_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Preset::Hour1 => HOUR,
            Preset::Hours12 => 12 * HOUR,
            Preset::Day1 => 24 * HOUR,
            Preset::Days7 => 7 * 24 * HOUR,
            Preset::Days14 => 14 * 24 * HOUR,
            Preset::Days30 => 30 * 24 * HOUR,
        }
    }

    /// Parses the `range` query parameter: a preset, or `None` for
    /// `custom`.
    pub fn parse(value: &str) -> Result<Option<Preset>, AppError> {
        let value = value.trim();
        if value == "custom" {
            return Ok(None);
        }
        Preset::ALL
            .into_iter()
            .find(|p| p.key() == value)
            .map(Some)
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "Unknown range \"{}\": choose 1h, 12h, 1d, 7d, 14d or 30d, or custom with from and to.",
                    value.chars().take(40).collect::<String>()
                ))
            })
    }
}

/// The span a dashboard shows, as the server resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeInfo {
    /// `None` for a custom range.
    pub preset: Option<Preset>,
    /// Start of the first point (aligned to the step), Unix ms.
    pub start_ms: i64,
    /// End of the data shown: the end asked for, or now if earlier.
    pub end_ms: i64,
    /// Width of one point.
    pub step_ms: i64,
    /// The range in words, in the viewer's time zone.
    pub description: String,
}

/// One point of a chart: what was delivered in `[start_ms, start_ms + step)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficPoint {
    pub start_ms: i64,
    /// How much of the step the point covers: the whole step, except for
    /// the last point of a range that ends now, which covers the time until
    /// now. Rates are bytes over this span.
    pub span_ms: i64,
    /// When, in the viewer's time zone, for tooltips and readouts.
    pub label: String,
    pub counts: TrafficCounts,
}

impl TrafficPoint {
    /// Bits per second sent to subscribers, averaged over the point.
    pub fn egress_bps(&self) -> f64 {
        rate_bps(self.counts.served_bytes(), self.span_ms)
    }

    /// Bits per second fetched from origins, averaged over the point.
    pub fn origin_bps(&self) -> f64 {
        rate_bps(self.counts.origin_bytes, self.span_ms)
    }

    /// Whether the point covers less than its step (the one in progress).
    pub fn partial(&self, step_ms: i64) -> bool {
        self.span_ms < step_ms
    }
}

/// Bits per second of `bytes` spread over `span_ms`.
pub(crate) fn rate_bps(bytes: i64, span_ms: i64) -> f64 {
    if span_ms <= 0 {
        return 0.0;
    }
    bytes as f64 * 8.0 * 1000.0 / span_ms as f64
}

/// A labelled time on a chart's horizontal axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxisTick {
    pub at_ms: i64,
    pub label: String,
}

/// A peak: how high, and the point it was reached in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub bps: f64,
    pub label: String,
}

/// The numbers above the charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficSummary {
    pub counts: TrafficCounts,
    /// Hit bytes over all bytes served, `None` when nothing was served.
    pub efficiency: Option<f64>,
    /// The highest point of the egress chart (an average over one step).
    pub peak_egress: Option<Peak>,
    /// All bytes served over the whole range, in bits per second.
    pub average_egress_bps: f64,
    pub peak_origin: Option<Peak>,
    pub average_origin_bps: f64,
}

impl TrafficSummary {
    pub fn of(points: &[TrafficPoint], range_ms: i64) -> TrafficSummary {
        let mut counts = TrafficCounts::default();
        for p in points {
            counts.add(&p.counts);
        }
        let peak = |rate: fn(&TrafficPoint) -> f64| {
            points
                .iter()
                .filter(|p| rate(p) > 0.0)
                // The first of equal peaks: stable, whatever the order of
                // the floating-point comparison.
                .fold(None::<&TrafficPoint>, |best, p| match best {
                    Some(b) if rate(b) >= rate(p) => Some(b),
                    _ => Some(p),
                })
                .map(|p| Peak {
                    bps: rate(p),
                    label: p.label.clone(),
                })
        };
        TrafficSummary {
            efficiency: counts.efficiency(),
            peak_egress: peak(TrafficPoint::egress_bps),
            average_egress_bps: rate_bps(counts.served_bytes(), range_ms),
            peak_origin: peak(TrafficPoint::origin_bps),
            average_origin_bps: rate_bps(counts.origin_bytes, range_ms),
            counts,
        }
    }
}

/// Everything a dashboard (the fleet's or a node's) shows for one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficReport {
    /// The node, or `None` for the whole fleet of the organization.
    pub node: Option<String>,
    pub range: RangeInfo,
    /// IANA name of the time zone the labels are in, or `UTC`.
    pub time_zone: String,
    pub points: Vec<TrafficPoint>,
    pub ticks: Vec<AxisTick>,
    pub summary: TrafficSummary,
}

/// Node health across the organization's fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHealth {
    pub total: usize,
    /// Online (reporting) and serving.
    pub healthy: usize,
    /// Registered and enabled, but silent for three report intervals.
    pub offline: usize,
    /// Reporting, but its data path cannot serve (no usable drive…).
    pub not_serving: usize,
    pub disabled: usize,
    pub never_connected: usize,
    /// Nodes an operator should look at: unhealthy ones, and healthy ones
    /// with problems or a configuration they could not apply.
    pub attention: Vec<NodeAttention>,
}

impl FleetHealth {
    pub fn unhealthy(&self) -> usize {
        self.offline + self.not_serving
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAttention {
    pub name: String,
    pub state: crate::model::NodeState,
    pub serving: bool,
    pub config_state: crate::model::ConfigState,
    pub apply_error: Option<String>,
    pub problems: Vec<String>,
    pub last_seen_at_ms: Option<i64>,
}

/// The charts a dashboard draws, each exportable on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chart {
    /// Egress to subscribers and ingress from origins, bit/s.
    Egress,
    /// Cache efficiency, %.
    Efficiency,
    /// Bytes served by content family.
    Families,
    /// Every column: what the JSON API returns unless asked for one chart.
    All,
}

impl Chart {
    pub fn key(self) -> &'static str {
        match self {
            Chart::Egress => "egress",
            Chart::Efficiency => "efficiency",
            Chart::Families => "families",
            Chart::All => "all",
        }
    }

    pub fn parse(value: &str) -> Result<Chart, AppError> {
        [
            Chart::Egress,
            Chart::Efficiency,
            Chart::Families,
            Chart::All,
        ]
        .into_iter()
        .find(|c| c.key() == value.trim())
        .ok_or_else(|| {
            AppError::invalid(format!(
                "Unknown chart \"{}\": choose egress, efficiency, families or all.",
                value.chars().take(40).collect::<String>()
            ))
        })
    }

    /// The columns of the chart's data, after the time columns every
    /// export starts with (`start`, `start_ms`, `seconds`).
    pub fn columns(self) -> &'static [Column] {
        use Column::*;
        match self {
            Chart::Egress => &[EgressBps, OriginIngressBps, ServedBytes, OriginBytes],
            Chart::Efficiency => &[HitBytes, MissBytes, Efficiency],
            Chart::Families => &[WindowsUpdate, Office, Xbox, Edge, Other],
            Chart::All => &[
                Requests,
                Errors,
                ServedBytes,
                HitBytes,
                MissBytes,
                OriginBytes,
                EgressBps,
                OriginIngressBps,
                Efficiency,
                WindowsUpdate,
                Office,
                Xbox,
                Edge,
                Other,
            ],
        }
    }
}

/// One column of exported chart data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Requests,
    Errors,
    ServedBytes,
    HitBytes,
    MissBytes,
    OriginBytes,
    EgressBps,
    OriginIngressBps,
    Efficiency,
    WindowsUpdate,
    Office,
    Xbox,
    Edge,
    Other,
}

/// A value in an export: a count, a rate, or nothing (efficiency of a
/// point without traffic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Count(i64),
    Rate(f64),
    Empty,
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Requests => "requests",
            Column::Errors => "errors",
            Column::ServedBytes => "served_bytes",
            Column::HitBytes => "hit_bytes",
            Column::MissBytes => "miss_bytes",
            Column::OriginBytes => "origin_bytes",
            Column::EgressBps => "egress_bps",
            Column::OriginIngressBps => "origin_ingress_bps",
            Column::Efficiency => "efficiency",
            Column::WindowsUpdate => "windows_update_bytes",
            Column::Office => "office_bytes",
            Column::Xbox => "xbox_bytes",
            Column::Edge => "edge_bytes",
            Column::Other => "other_bytes",
        }
    }

    pub fn value(self, p: &TrafficPoint) -> Value {
        let c = &p.counts;
        match self {
            Column::Requests => Value::Count(c.requests),
            Column::Errors => Value::Count(c.errors),
            Column::ServedBytes => Value::Count(c.served_bytes()),
            Column::HitBytes => Value::Count(c.hit_bytes),
            Column::MissBytes => Value::Count(c.miss_bytes),
            Column::OriginBytes => Value::Count(c.origin_bytes),
            Column::EgressBps => Value::Rate(p.egress_bps()),
            Column::OriginIngressBps => Value::Rate(p.origin_bps()),
            Column::Efficiency => c.efficiency().map_or(Value::Empty, Value::Rate),
            Column::WindowsUpdate => Value::Count(c.families.windows_update),
            Column::Office => Value::Count(c.families.office),
            Column::Xbox => Value::Count(c.families.xbox),
            Column::Edge => Value::Count(c.families.edge),
            Column::Other => Value::Count(c.families.other),
        }
    }
}

/// Rates are exported rounded to a thousandth: more digits would be noise.
fn rate_json(v: f64) -> serde_json::Value {
    serde_json::Value::from((v * 1000.0).round() / 1000.0)
}

fn rate_text(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded}")
    }
}

/// Unix milliseconds as RFC 3339 in UTC, as exports give times (machines
/// read them; the viewer's time zone is for people).
pub fn utc_rfc3339(ms: i64) -> String {
    let (date, secs) = civil_utc(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The UTC date (YYYY-MM-DD) of Unix milliseconds, and the seconds into it.
pub(crate) fn civil_utc(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), rem)
}

impl TrafficReport {
    /// The chart's data as CSV: a header line, then one line a point.
    pub fn to_csv(&self, chart: Chart) -> String {
        let mut out = String::from("start,start_ms,seconds");
        for column in chart.columns() {
            out.push(',');
            out.push_str(column.name());
        }
        out.push('\n');
        for p in &self.points {
            let _ = write!(
                out,
                "{},{},{}",
                utc_rfc3339(p.start_ms),
                p.start_ms,
                p.span_ms / 1000
            );
            for column in chart.columns() {
                out.push(',');
                match column.value(p) {
                    Value::Count(n) => out.push_str(&n.to_string()),
                    Value::Rate(r) => out.push_str(&rate_text(r)),
                    Value::Empty => {}
                }
            }
            out.push('\n');
        }
        out
    }

    /// The chart's data as JSON: the range, the summary and the points.
    pub fn to_json(&self, chart: Chart) -> serde_json::Value {
        use serde_json::{json, Map};
        let points: Vec<serde_json::Value> = self
            .points
            .iter()
            .map(|p| {
                let mut obj = Map::new();
                obj.insert("start".into(), utc_rfc3339(p.start_ms).into());
                obj.insert("start_ms".into(), p.start_ms.into());
                obj.insert("seconds".into(), (p.span_ms / 1000).into());
                for column in chart.columns() {
                    let value = match column.value(p) {
                        Value::Count(n) => n.into(),
                        Value::Rate(r) => rate_json(r),
                        Value::Empty => serde_json::Value::Null,
                    };
                    obj.insert(column.name().into(), value);
                }
                serde_json::Value::Object(obj)
            })
            .collect();
        let s = &self.summary;
        let c = &s.counts;
        json!({
            "node": self.node,
            "chart": chart.key(),
            "range": self.range.preset.map_or("custom", Preset::key),
            "start": utc_rfc3339(self.range.start_ms),
            "end": utc_rfc3339(self.range.end_ms),
            "start_ms": self.range.start_ms,
            "end_ms": self.range.end_ms,
            "step_seconds": self.range.step_ms / 1000,
            "summary": {
                "requests": c.requests,
                "errors": c.errors,
                "served_bytes": c.served_bytes(),
                "hit_bytes": c.hit_bytes,
                "miss_bytes": c.miss_bytes,
                "bytes_saved": c.hit_bytes,
                "origin_bytes": c.origin_bytes,
                "efficiency": s.efficiency.map(rate_json),
                "peak_egress_bps": s.peak_egress.as_ref().map_or(0.0.into(), |p| rate_json(p.bps)),
                "average_egress_bps": rate_json(s.average_egress_bps),
                "peak_origin_ingress_bps": s.peak_origin.as_ref().map_or(0.0.into(), |p| rate_json(p.bps)),
                "average_origin_ingress_bps": rate_json(s.average_origin_bps),
                "families": {
                    "windows_update_bytes": c.families.windows_update,
                    "office_bytes": c.families.office,
                    "xbox_bytes": c.families.xbox,
                    "edge_bytes": c.families.edge,
                    "other_bytes": c.families.other,
                },
            },
            "points": points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start_ms: i64, span_ms: i64, hit: i64, miss: i64, origin: i64) -> TrafficPoint {
        TrafficPoint {
            start_ms,
            span_ms,
            label: format!("p{start_ms}"),
            counts: TrafficCounts {
                requests: 1,
                hit_bytes: hit,
                miss_bytes: miss,
                origin_bytes: origin,
                errors: 0,
                families: FamilyCounts {
                    windows_update: hit + miss,
                    ..Default::default()
                },
            },
        }
    }

    #[test]
    fn rates_are_bits_per_second_over_the_span() {
        // 7.5 MB in a minute is 1 Mbit/s; the same bytes in half a minute
        // (the point in progress) twice that.
        assert_eq!(point(0, 60_000, 7_500_000, 0, 0).egress_bps(), 1_000_000.0);
        assert_eq!(point(0, 30_000, 0, 7_500_000, 0).egress_bps(), 2_000_000.0);
        assert_eq!(point(0, 0, 5, 5, 5).egress_bps(), 0.0);
    }

    #[test]
    fn the_summary_has_totals_efficiency_peaks_and_averages() {
        let points = vec![
            point(0, 60_000, 300, 100, 100),
            point(60_000, 60_000, 600, 0, 0),
            point(120_000, 60_000, 0, 0, 0),
        ];
        let s = TrafficSummary::of(&points, 180_000);
        assert_eq!(s.counts.hit_bytes, 900);
        assert_eq!(s.counts.served_bytes(), 1000);
        assert_eq!(s.efficiency, Some(0.9));
        assert_eq!(s.peak_egress.as_ref().unwrap().label, "p60000");
        assert_eq!(s.peak_egress.as_ref().unwrap().bps, 600.0 * 8.0 / 60.0);
        assert_eq!(s.peak_origin.as_ref().unwrap().label, "p0");
        assert!((s.average_egress_bps - 1000.0 * 8.0 / 180.0).abs() < 1e-9);
        // Nothing served: no efficiency and no peak rather than 0 % at some
        // arbitrary time.
        let idle = TrafficSummary::of(&[point(0, 60_000, 0, 0, 0)], 60_000);
        assert_eq!(idle.efficiency, None);
        assert_eq!(idle.peak_egress, None);
    }

    #[test]
    fn ranges_and_charts_parse_or_say_what_is_allowed() {
        assert_eq!(Preset::parse("7d").unwrap(), Some(Preset::Days7));
        assert_eq!(Preset::parse("custom").unwrap(), None);
        let err = Preset::parse("2h").unwrap_err().to_string();
        assert!(err.contains("Unknown range \"2h\""), "{err}");
        assert_eq!(Chart::parse("families").unwrap(), Chart::Families);
        assert!(Chart::parse("pie").is_err());
    }

    #[test]
    fn csv_exports_have_a_header_and_a_line_per_point() {
        let points = vec![
            point(1_795_000_020_000, 60_000, 750, 250, 250),
            point(1_795_000_080_000, 30_000, 0, 0, 0),
        ];
        let report = TrafficReport {
            node: Some("edge1".into()),
            range: RangeInfo {
                preset: Some(Preset::Hour1),
                start_ms: 1_795_000_020_000,
                end_ms: 1_795_000_110_000,
                step_ms: 60_000,
                description: String::new(),
            },
            time_zone: "UTC".into(),
            summary: TrafficSummary::of(&points, 90_000),
            points,
            ticks: vec![],
        };
        let csv = report.to_csv(Chart::Efficiency);
        assert_eq!(
            csv,
            "start,start_ms,seconds,hit_bytes,miss_bytes,efficiency\n\
             2026-11-18T11:07:00Z,1795000020000,60,750,250,0.75\n\
             2026-11-18T11:08:00Z,1795000080000,30,0,0,\n"
        );
        let egress = report.to_csv(Chart::Egress);
        assert!(egress.starts_with(
            "start,start_ms,seconds,egress_bps,origin_ingress_bps,served_bytes,origin_bytes\n"
        ));
        assert!(egress.contains(",60,133.333,33.333,1000,250\n"), "{egress}");

        let json = report.to_json(Chart::Families);
        assert_eq!(json["node"], "edge1");
        assert_eq!(json["range"], "1h");
        assert_eq!(json["step_seconds"], 60);
        assert_eq!(json["points"][0]["windows_update_bytes"], 1000);
        assert_eq!(json["points"][0]["start"], "2026-11-18T11:07:00Z");
        assert!(json["points"][0].get("hit_bytes").is_none());
        assert_eq!(json["summary"]["efficiency"], 0.75);
        assert_eq!(json["summary"]["bytes_saved"], 750);
    }
}
