//! The traffic charts as SVG markup, drawn from a [`TrafficReport`] alone.
//! The server renders them into the page, so they are readable without
//! JavaScript; the browser, hydrating, draws the very same string (the same
//! data, the same arithmetic), so nothing is redrawn. Every point carries a
//! native SVG `<title>` (a tooltip with or without JavaScript); the
//! hydrated page adds a crosshair and a readout (see `pages::traffic`).

use std::fmt::Write as _;

use crate::pages::format_bytes;
use crate::traffic::{AxisTick, TrafficPoint, TrafficReport, FAMILIES};

/// The drawing's coordinate system (the SVG scales to the page's width).
pub const WIDTH: f64 = 800.0;
pub const HEIGHT: f64 = 220.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// What the vertical axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    BitsPerSecond,
    Percent,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines through the middle of each point; the first series filled
    /// below.
    Lines,
    /// One bar a point, the series stacked.
    StackedBars,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    /// Colour class (`s0`, `s1`, … in the style sheet).
    pub class: &'static str,
    /// One value a point; `None` where there is nothing to show (the
    /// efficiency of a point without traffic), which breaks the line.
    pub values: Vec<Option<f64>>,
}

/// One chart of a dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub key: &'static str,
    pub title: String,
    pub unit: Unit,
    pub style: Style,
    pub series: Vec<Series>,
    /// When each point is, for tooltips.
    pub labels: Vec<String>,
    /// Whether each point is the one still in progress.
    pub partial: Vec<bool>,
    pub start_ms: i64,
    pub step_ms: i64,
    pub ticks: Vec<AxisTick>,
}

/// A chart's step as a count and a unit: (1, "minute"), (5, "minutes").
fn step_parts(step_ms: i64) -> (i64, &'static str) {
    let minutes = step_ms / 60_000;
    match minutes {
        1 => (1, "minute"),
        m if m < 60 => (m, "minutes"),
        60 => (1, "hour"),
        m if m < 1440 => (m / 60, "hours"),
        1440 => (1, "day"),
        m => (m / 1440, "days"),
    }
}

/// "5 minutes", "1 hour".
pub(crate) fn step_text(step_ms: i64) -> String {
    let (count, unit) = step_parts(step_ms);
    format!("{count} {unit}")
}

/// "per minute", "per 5 minutes": the unit of a rate chart.
fn step_words(step_ms: i64) -> String {
    match step_parts(step_ms) {
        (1, unit) => format!("per {unit}"),
        (count, unit) => format!("per {count} {unit}"),
    }
}

/// The three charts of a dashboard, in the order the page shows them.
pub fn charts_of(report: &TrafficReport) -> Vec<ChartSpec> {
    let points = &report.points;
    let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    let partial: Vec<bool> = points
        .iter()
        .map(|p| p.partial(report.range.step_ms))
        .collect();
    let base = |key, title: String, unit, style, series| ChartSpec {
        key,
        title,
        unit,
        style,
        series,
        labels: labels.clone(),
        partial: partial.clone(),
        start_ms: report.range.start_ms,
        step_ms: report.range.step_ms,
        ticks: report.ticks.clone(),
    };
    let per = |f: fn(&TrafficPoint) -> Option<f64>| points.iter().map(f).collect::<Vec<_>>();
    let family_series = FAMILIES
        .iter()
        .enumerate()
        .map(|(i, (_, name))| Series {
            name,
            class: ["f0", "f1", "f2", "f3", "f4"][i],
            values: points
                .iter()
                .map(|p| Some(p.counts.families.values()[i] as f64))
                .collect(),
        })
        .collect();
    vec![
        base(
            "egress",
            "Egress to subscribers and ingress from origins".into(),
            Unit::BitsPerSecond,
            Style::Lines,
            vec![
                Series {
                    name: "Egress",
                    class: "s0",
                    values: per(|p| Some(p.egress_bps())),
                },
                Series {
                    name: "Origin ingress",
                    class: "s1",
                    values: per(|p| Some(p.origin_bps())),
                },
            ],
        ),
        base(
            "efficiency",
            "Cache efficiency (hit bytes of all bytes served)".into(),
            Unit::Percent,
            Style::Lines,
            vec![Series {
                name: "Efficiency",
                class: "s2",
                values: per(|p| p.counts.efficiency().map(|e| e * 100.0)),
            }],
        ),
        base(
            "families",
            format!(
                "Bytes served by content family, {}",
                step_words(report.range.step_ms)
            ),
            Unit::Bytes,
            Style::StackedBars,
            family_series,
        ),
    ]
}

/// A number without trailing zeros, at most two decimals.
fn trim_number(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

const RATE_UNITS: [&str; 5] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
const BYTE_UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];

/// The power of 1000 to show values up to `top` in.
fn magnitude(top: f64) -> usize {
    let mut k = 0;
    let mut v = top;
    while v >= 1000.0 && k < 4 {
        v /= 1000.0;
        k += 1;
    }
    k
}

/// An axis label: every label of an axis in the unit its top needs.
fn axis_label(unit: Unit, value: f64, top: f64) -> String {
    match unit {
        Unit::Percent => format!("{} %", trim_number(value)),
        Unit::BitsPerSecond | Unit::Bytes => {
            let k = magnitude(top);
            let names = if unit == Unit::Bytes {
                BYTE_UNITS
            } else {
                RATE_UNITS
            };
            format!(
                "{} {}",
                trim_number(value / 1000f64.powi(k as i32)),
                names[k]
            )
        }
    }
}

/// A value on its own (tooltips, readouts, the numbers above the charts).
pub fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Percent => format!("{value:.1} %"),
        Unit::Bytes => format_bytes(value.max(0.0).round() as u64),
        Unit::BitsPerSecond => format_rate(value),
    }
}

/// Bits per second in bit/s, kbit/s, Mbit/s, Gbit/s or Tbit/s.
pub fn format_rate(bps: f64) -> String {
    let k = magnitude(bps);
    let v = bps / 1000f64.powi(k as i32);
    if k == 0 {
        format!("{} {}", v.round(), RATE_UNITS[0])
    } else {
        format!("{v:.1} {}", RATE_UNITS[k])
    }
}

/// The top of the vertical axis and the distance between its gridlines: a
/// round number (1, 2, 2.5 or 5 times a power of ten) four or five times.
pub fn scale(unit: Unit, max: f64) -> Option<(f64, f64)> {
    if unit == Unit::Percent {
        return Some((100.0, 25.0));
    }
    if max <= 0.0 || !max.is_finite() {
        return None;
    }
    let raw = max / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    Some(((max / step).ceil() * step, step))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl ChartSpec {
    /// How many points the chart has.
    pub fn point_count(&self) -> usize {
        self.labels.len()
    }

    fn span_ms(&self) -> f64 {
        (self.point_count().max(1) as i64 * self.step_ms) as f64
    }

    fn x_of(&self, ms: i64) -> f64 {
        LEFT + (ms - self.start_ms) as f64 / self.span_ms() * PLOT_W
    }

    /// Where the middle of point `i` is, as a fraction of the width.
    pub fn center_fraction(&self, i: usize) -> f64 {
        let start = self.start_ms + i as i64 * self.step_ms;
        (self.x_of(start) + self.x_of(start + self.step_ms)) / 2.0 / WIDTH
    }

    /// The plot area's top and height as fractions of the drawing's
    /// height (for the crosshair over it).
    pub fn plot_fractions() -> (f64, f64) {
        (TOP / HEIGHT, PLOT_H / HEIGHT)
    }

    /// The largest value the axis must reach.
    fn max_value(&self) -> f64 {
        match self.style {
            Style::Lines => self
                .series
                .iter()
                .flat_map(|s| s.values.iter().flatten())
                .fold(0.0, |m: f64, v| m.max(*v)),
            Style::StackedBars => (0..self.point_count())
                .map(|i| {
                    self.series
                        .iter()
                        .map(|s| s.values[i].unwrap_or(0.0))
                        .sum::<f64>()
                })
                .fold(0.0, f64::max),
        }
    }

    /// Whether there is anything to draw.
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .any(|v| *v > 0.0)
    }

    /// What point `i` shows, in words: its time and each series' value.
    pub fn describe(&self, i: usize) -> String {
        let mut text = self.labels[i].clone();
        if self.partial[i] {
            text.push_str(" (so far)");
        }
        for s in &self.series {
            let value = match s.values[i] {
                Some(v) => format_value(self.unit, v),
                None => "no traffic".into(),
            };
            let _ = write!(text, " · {}: {value}", s.name);
        }
        text
    }

    /// The chart as an SVG element.
    pub fn svg(&self) -> String {
        let mut out = String::with_capacity(8_000 + self.point_count() * 220);
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
            escape(&self.title)
        );
        let baseline = TOP + PLOT_H;
        let scale = scale(self.unit, self.max_value());
        let y_of = |v: f64| match scale {
            Some((top, _)) => baseline - (v / top).clamp(0.0, 1.0) * PLOT_H,
            None => baseline,
        };

        // Gridlines and the vertical axis' labels, with units.
        out.push_str(r#"<g class="axis y">"#);
        let mut gridlines = vec![0.0];
        if let Some((top, step)) = scale {
            let mut v = step;
            while v <= top + step / 1000.0 {
                gridlines.push(v);
                v += step;
            }
        }
        for v in gridlines {
            let y = y_of(v);
            let top = scale.map_or(0.0, |(t, _)| t);
            let _ = write!(
                out,
                r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text x="{}" y="{y:.1}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                escape(&axis_label(self.unit, v, top.max(v)))
            );
        }
        out.push_str("</g>");

        // Times, in the viewer's zone.
        out.push_str(r#"<g class="axis x">"#);
        for tick in &self.ticks {
            let x = self.x_of(tick.at_ms);
            if !(LEFT..=WIDTH - RIGHT).contains(&x) {
                continue;
            }
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{baseline}" y2="{}"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                baseline + 4.0,
                HEIGHT - 8.0,
                escape(&tick.label)
            );
        }
        out.push_str("</g>");

        match self.style {
            Style::Lines => self.draw_lines(&mut out, &y_of),
            Style::StackedBars => self.draw_bars(&mut out, &y_of),
        }

        if !self.has_data() {
            let _ = write!(
                out,
                r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No traffic in this period</text>"#,
                LEFT + PLOT_W / 2.0,
                TOP + PLOT_H / 2.0
            );
        }

        // One invisible column a point, to hover: the browser shows its
        // title as a tooltip, and the hydrated page reads its index.
        out.push_str(r#"<g class="hover">"#);
        for i in 0..self.point_count() {
            let start = self.start_ms + i as i64 * self.step_ms;
            let (x0, x1) = (self.x_of(start), self.x_of(start + self.step_ms));
            let _ = write!(
                out,
                r#"<rect data-i="{i}" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{PLOT_H}" fill="transparent"><title>{}</title></rect>"#,
                x1 - x0,
                escape(&self.describe(i))
            );
        }
        out.push_str("</g></svg>");
        out
    }

    fn draw_lines(&self, out: &mut String, y_of: &dyn Fn(f64) -> f64) {
        let baseline = TOP + PLOT_H;
        for (n, series) in self.series.iter().enumerate() {
            // Runs of consecutive values: a missing value breaks the line.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (i, value) in series.values.iter().enumerate() {
                match value {
                    Some(v) => {
                        let x = self.center_fraction(i) * WIDTH;
                        runs.last_mut().expect("never empty").push((x, y_of(*v)));
                    }
                    None => runs.push(Vec::new()),
                }
            }
            runs.retain(|r| !r.is_empty());
            let mut line = String::new();
            let mut area = String::new();
            for run in &runs {
                for (k, (x, y)) in run.iter().enumerate() {
                    let _ = write!(line, "{}{x:.1},{y:.1}", if k == 0 { "M" } else { "L" });
                }
                if n == 0 {
                    let (first, last) = (run[0], run[run.len() - 1]);
                    let _ = write!(area, "M{:.1},{baseline}", first.0);
                    for (x, y) in run {
                        let _ = write!(area, "L{x:.1},{y:.1}");
                    }
                    let _ = write!(area, "L{:.1},{baseline}Z", last.0);
                }
            }
            if !area.is_empty() {
                let _ = write!(out, r#"<path class="area {}" d="{area}"/>"#, series.class);
            }
            if !line.is_empty() {
                let _ = write!(out, r#"<path class="line {}" d="{line}"/>"#, series.class);
            }
            // A lone value has no line to show it: a dot does.
            for run in runs.iter().filter(|r| r.len() == 1) {
                let _ = write!(
                    out,
                    r#"<circle class="dot {}" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                    series.class, run[0].0, run[0].1
                );
            }
        }
    }

    /// One path per series, a closed rectangle per point: a fifth of the
    /// markup of a `<rect>` each, which on a 30-day chart of five
    /// families is most of the page.
    fn draw_bars(&self, out: &mut String, y_of: &dyn Fn(f64) -> f64) {
        let mut paths: Vec<String> = vec![String::new(); self.series.len()];
        for i in 0..self.point_count() {
            let start = self.start_ms + i as i64 * self.step_ms;
            let (x0, x1) = (self.x_of(start), self.x_of(start + self.step_ms));
            let gap = ((x1 - x0) * 0.15).min(2.0);
            let width = (x1 - x0 - 2.0 * gap).max(0.5);
            let mut below = 0.0;
            for (path, series) in paths.iter_mut().zip(&self.series) {
                let v = series.values[i].unwrap_or(0.0);
                if v <= 0.0 {
                    continue;
                }
                let (y_top, y_bottom) = (y_of(below + v), y_of(below));
                below += v;
                let _ = write!(
                    path,
                    "M{:.1},{y_top:.1}h{width:.1}V{y_bottom:.1}h-{width:.1}Z",
                    x0 + gap
                );
            }
        }
        for (path, series) in paths.iter().zip(&self.series) {
            if !path.is_empty() {
                let _ = write!(out, r#"<path class="bar {}" d="{path}"/>"#, series.class);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{
        FamilyCounts, Preset, RangeInfo, TrafficCounts, TrafficPoint, TrafficReport, TrafficSummary,
    };

    fn report(served: &[(i64, i64)]) -> TrafficReport {
        let start = 1_795_000_000_000 - 1_795_000_000_000 % 60_000;
        let points: Vec<TrafficPoint> = served
            .iter()
            .enumerate()
            .map(|(i, &(hit, miss))| TrafficPoint {
                start_ms: start + i as i64 * 60_000,
                span_ms: 60_000,
                label: format!("10:{i:02}"),
                counts: TrafficCounts {
                    requests: 1,
                    hit_bytes: hit,
                    miss_bytes: miss,
                    origin_bytes: miss,
                    errors: 0,
                    families: FamilyCounts {
                        windows_update: hit,
                        office: miss,
                        ..Default::default()
                    },
                },
            })
            .collect();
        TrafficReport {
            node: None,
            range: RangeInfo {
                preset: Some(Preset::Hour1),
                start_ms: start,
                end_ms: start + served.len() as i64 * 60_000,
                step_ms: 60_000,
                description: String::new(),
            },
            time_zone: "UTC".into(),
            ticks: vec![AxisTick {
                at_ms: start + 60_000,
                label: "10:01".into(),
            }],
            summary: TrafficSummary::of(&points, served.len() as i64 * 60_000),
            points,
        }
    }

    #[test]
    fn axes_are_round_numbers_with_units() {
        assert_eq!(
            scale(Unit::BitsPerSecond, 930_000_000.0),
            Some((1e9, 2.5e8))
        );
        assert_eq!(scale(Unit::Bytes, 7.0), Some((8.0, 2.0)));
        assert_eq!(scale(Unit::Percent, 3.0), Some((100.0, 25.0)));
        assert_eq!(scale(Unit::Bytes, 0.0), None);
        assert_eq!(axis_label(Unit::BitsPerSecond, 2.5e8, 1e9), "0.25 Gbit/s");
        assert_eq!(axis_label(Unit::BitsPerSecond, 2.5e8, 7.5e8), "250 Mbit/s");
        assert_eq!(axis_label(Unit::BitsPerSecond, 1e9, 1e9), "1 Gbit/s");
        assert_eq!(
            axis_label(Unit::BitsPerSecond, 1.25e9, 2.5e9),
            "1.25 Gbit/s"
        );
        assert_eq!(axis_label(Unit::Bytes, 5e11, 2e12), "0.5 TB");
        assert_eq!(axis_label(Unit::Bytes, 0.0, 0.0), "0 B");
        assert_eq!(axis_label(Unit::Percent, 75.0, 100.0), "75 %");
        assert_eq!(format_rate(1_234_000.0), "1.2 Mbit/s");
        assert_eq!(format_rate(12.4), "12 bit/s");
        assert_eq!(format_value(Unit::Bytes, 1_500_000.0), "1.5 MB");
    }

    #[test]
    fn a_chart_has_labelled_axes_series_and_a_tooltip_per_point() {
        // 7.5 MB a minute is 1 Mbit/s of egress.
        let r = report(&[(7_500_000, 0), (5_000_000, 2_500_000), (0, 0)]);
        let charts = charts_of(&r);
        assert_eq!(
            charts.iter().map(|c| c.key).collect::<Vec<_>>(),
            ["egress", "efficiency", "families"]
        );
        let egress = charts[0].svg();
        assert!(egress.starts_with("<svg "), "{egress}");
        assert!(egress.ends_with("</svg>"));
        // Every label of an axis in the unit its top needs.
        assert!(egress.contains(">1 Mbit/s</text>"), "{egress}");
        assert!(egress.contains(">0.25 Mbit/s</text>"));
        assert!(egress.contains(">0 Mbit/s</text>"));
        assert!(egress.contains(">10:01</text>"), "the time axis");
        assert!(egress.contains(r#"<path class="area s0""#));
        assert!(egress.contains(r#"<path class="line s1""#));
        assert_eq!(egress.matches("<title>").count(), 3);
        assert!(egress
            .contains("<title>10:01 · Egress: 1.0 Mbit/s · Origin ingress: 333.3 kbit/s</title>"));
        assert!(!egress.contains("No traffic"));

        // Efficiency in %, with no value (and no line) where nothing was
        // served.
        let efficiency = charts[1].svg();
        assert!(efficiency.contains(">100 %</text>") && efficiency.contains(">50 %</text>"));
        assert!(efficiency.contains("<title>10:02 · Efficiency: no traffic</title>"));
        assert!(efficiency.contains("<title>10:01 · Efficiency: 66.7 %</title>"));

        // Bytes, stacked: one bar per family and point with traffic.
        let families = charts[2].svg();
        assert_eq!(families.matches(r#"<path class="bar f0""#).count(), 1);
        assert_eq!(families.matches(r#"<path class="bar f1""#).count(), 1);
        assert_eq!(families.matches('Z').count(), 3);
        assert!(families.contains(">8 MB</text>"), "{families}");
        assert!(charts[2].title.ends_with("per minute"));
    }

    #[test]
    fn an_empty_range_says_so_and_still_has_axes() {
        let r = report(&[(0, 0), (0, 0)]);
        for chart in charts_of(&r) {
            let svg = chart.svg();
            assert!(svg.contains("No traffic in this period"), "{svg}");
            assert!(svg.contains(r#"<g class="axis y">"#));
            assert_eq!(svg.matches("<title>").count(), 2);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        // No points at all (a range shorter than a step cannot happen, but
        // the drawing must not fail on it).
        let none = report(&[]);
        assert!(charts_of(&none)[0].svg().contains("No traffic"));
    }

    #[test]
    fn text_is_escaped() {
        let mut r = report(&[(1, 0)]);
        r.points[0].label = "<script>&".into();
        let svg = charts_of(&r)[0].svg();
        assert!(svg.contains("&lt;script&gt;&amp;"));
        assert!(!svg.contains("<script>"));
    }

    #[test]
    fn the_crosshair_sits_in_the_middle_of_a_point() {
        let r = report(&[(1, 0), (1, 0)]);
        let chart = &charts_of(&r)[0];
        let first = chart.center_fraction(0) * WIDTH;
        assert!((first - (LEFT + PLOT_W / 4.0)).abs() < 1e-9);
    }
}
