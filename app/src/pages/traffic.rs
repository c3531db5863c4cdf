//! The traffic dashboards: the fleet's on the Overview page and each
//! node's on its page. Ranges are links and a GET form (`?range=7d`,
//! `?range=custom&from=…&to=…`), so they work without JavaScript and every
//! view has an address to share. Charts are SVG drawn on the server (see
//! `charts`); once the wasm bundle runs, hovering shows a crosshair and the
//! point's values, and times switch to the browser's time zone.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use super::{format_bytes, format_time, ErrorMessage};
use crate::api::{get_fleet_health, get_traffic};
use crate::charts::{charts_of, format_rate, ChartSpec};
use crate::error::AppError;
use crate::model::{ConfigState, NodeState};
use crate::traffic::{FleetHealth, Preset, TrafficReport, FAMILIES};

/// The browser's IANA time zone, from `Intl`.
#[cfg(feature = "hydrate")]
fn browser_time_zone() -> Option<String> {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    js_sys::Reflect::get(
        &format.resolved_options(),
        &wasm_bindgen::JsValue::from_str("timeZone"),
    )
    .ok()?
    .as_string()
}

/// Once hydrated, makes sure the time-zone cookie names the browser's time
/// zone; when it had to change it, the returned counter moves, so the
/// dashboard asks the server again and gets its times in that zone. Until
/// then (and without JavaScript) times are in UTC, labelled as such.
fn use_browser_time_zone() -> ReadSignal<u32> {
    let (changes, set_changes) = signal(0u32);
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(zone) = browser_time_zone() else {
                return;
            };
            let Ok(html) = document().dyn_into::<web_sys::HtmlDocument>() else {
                return;
            };
            let cookie = crate::traffic::TIME_ZONE_COOKIE;
            let cookies = html.cookie().unwrap_or_default();
            let remembered = crate::traffic::time_zone_cookie(&cookies);
            if remembered != Some(zone.as_str()) {
                let secure = window().location().protocol().ok().as_deref() == Some("https:");
                let _ = html.set_cookie(&format!(
                    "{cookie}={zone}; Path=/; Max-Age=31536000; SameSite=Strict{}",
                    if secure { "; Secure" } else { "" }
                ));
                set_changes.update(|n| *n += 1);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = set_changes;
    });
    changes
}

/// The range the address asks for, as its query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct RangeParams {
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    tz: Option<String>,
}

fn use_range_params() -> Memo<RangeParams> {
    let query = use_query_map();
    Memo::new(move |_| {
        query.with(|q| {
            let get = |k: &str| q.get(k).filter(|v| !v.trim().is_empty());
            RangeParams {
                range: get("range"),
                from: get("from"),
                to: get("to"),
                tz: get("tz"),
            }
        })
    })
}

/// The dashboard's data for the fleet (`node` `None`) or a node, following
/// the address and the browser's time zone. Made once per page, outside
/// any `Suspense`.
pub fn use_traffic(
    node: impl Fn() -> Option<String> + Send + Sync + 'static,
) -> Resource<Result<TrafficReport, AppError>> {
    let params = use_range_params();
    let zone_changes = use_browser_time_zone();
    Resource::new(
        move || (node(), params.get(), zone_changes.get()),
        |(node, p, _)| get_traffic(node, p.range, p.from, p.to, p.tz),
    )
}

pub fn use_fleet_health() -> Resource<Result<FleetHealth, AppError>> {
    Resource::new(|| (), |_| get_fleet_health())
}

/// A query string value, percent-encoded.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Healthy and unhealthy nodes, and the ones to look at.
#[component]
pub fn FleetHealthView(health: Resource<Result<FleetHealth, AppError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match health.await {
                    Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                    Ok(h) if h.total == 0 => view! {
                        <p class="hint">"No nodes yet. " <a href="/nodes">"Add one on the Nodes page"</a> "."</p>
                    }.into_any(),
                    Ok(h) => view! { <HealthSummary h/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn HealthSummary(h: FleetHealth) -> impl IntoView {
    let unhealthy = h.unhealthy();
    let unhealthy_class = if unhealthy > 0 { "tile bad" } else { "tile" };
    view! {
        <ul class="tiles health">
            <li class="tile good" data-stat="healthy">
                <span class="value">{h.healthy}</span> <span class="name">"healthy"</span>
            </li>
            <li class=unhealthy_class data-stat="unhealthy">
                <span class="value">{unhealthy}</span> <span class="name">"unhealthy"</span>
                <span class="detail">{h.offline} " offline, " {h.not_serving} " not serving"</span>
            </li>
            <li class="tile" data-stat="disabled">
                <span class="value">{h.disabled}</span> <span class="name">"disabled"</span>
            </li>
            <li class="tile" data-stat="never-connected">
                <span class="value">{h.never_connected}</span> <span class="name">"never connected"</span>
            </li>
        </ul>
        <p class="hint">"Healthy: online (reporting) and able to serve. Steering sends subscribers only to healthy nodes."</p>
        {(!h.attention.is_empty()).then(|| view! {
            <h3>"Needs attention"</h3>
            <table class="attention">
                <thead><tr><th>"Node"</th><th>"State"</th><th>"Config"</th><th>"Problems"</th><th>"Last report"</th></tr></thead>
                <tbody>
                    {h.attention.into_iter().map(|n| {
                        let state = match (n.state, n.serving) {
                            (NodeState::Online, true) => view! { <span class="badge good">"online"</span> }.into_any(),
                            (NodeState::Online, false) => view! { <span class="badge bad">"not serving"</span> }.into_any(),
                            (other, _) => view! { <span class="badge bad">{other.label()}</span> }.into_any(),
                        };
                        let config = match n.config_state {
                            ConfigState::Failed => view! {
                                <span class="badge bad">"failed"</span>
                                {n.apply_error.map(|e| view! { <span class="error-text">" " {e}</span> })}
                            }.into_any(),
                            other => view! { <span class="badge muted">{other.label()}</span> }.into_any(),
                        };
                        let name = n.name.clone();
                        view! {
                            <tr data-node=name>
                                <td><a href=format!("/nodes/{}", n.name)>{n.name.clone()}</a></td>
                                <td>{state}</td>
                                <td>{config}</td>
                                <td>{if n.problems.is_empty() {
                                    view! { "none reported" }.into_any()
                                } else {
                                    view! { <ul class="plain">{n.problems.into_iter().map(|p| view! { <li class="error-text">{p}</li> }).collect_view()}</ul> }.into_any()
                                }}</td>
                                <td>{n.last_seen_at_ms.map(format_time).unwrap_or_else(|| "never".into())}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        })}
    }
}

/// The range links and the custom range form, from the address alone (so
/// they are there to fix a bad range).
#[component]
fn RangePicker(path: String) -> impl IntoView {
    let params = use_range_params();
    let link_path = path.clone();
    let links = move || {
        let p = params.get();
        let current = match p.range.as_deref() {
            Some(r) => Preset::parse(r).ok().flatten(),
            None if p.from.is_some() => None,
            None => Some(Preset::DEFAULT),
        };
        Preset::ALL
            .into_iter()
            .map(|preset| {
                let href = format!(
                    "{link_path}{}",
                    query_string(&[("range", Some(preset.key())), ("tz", p.tz.as_deref())])
                );
                let here = current == Some(preset);
                view! {
                    <a href=href aria-current=here.then_some("page") class=if here { "range current" } else { "range" }>
                        {preset.label()}
                    </a>
                }
            })
            .collect_view()
    };
    let value =
        move |f: fn(&RangeParams) -> Option<String>| move || f(&params.get()).unwrap_or_default();
    // Folded away unless a custom range is shown: a viewer's page offers
    // no fields to fill until they ask for them.
    let custom = move || {
        let p = params.get();
        p.range.as_deref() == Some("custom") || (p.range.is_none() && p.from.is_some())
    };
    view! {
        <nav class="ranges" aria-label="Time range">
            {links}
            <details class="custom-range" open=custom>
                <summary>"Custom range"</summary>
                <Form method="GET" action=path attr:class="inline" attr:id="custom-range">
                    <input type="hidden" name="range" value="custom"/>
                    <label>"From " <input type="datetime-local" name="from" required value=value(|p| p.from.clone())/></label>
                    <label>"to " <input type="datetime-local" name="to" value=value(|p| p.to.clone())/></label>
                    <label>"time zone " <input name="tz" size="14" placeholder="e.g. Europe/Berlin" value=value(|p| p.tz.clone())/></label>
                    <button type="submit">"View range"</button>
                </Form>
            </details>
        </nav>
    }
}

/// A node's or the fleet's traffic: range picker, numbers, charts with
/// their exports, and bytes by content family.
#[component]
pub fn TrafficSection(
    traffic: Resource<Result<TrafficReport, AppError>>,
    /// The page's path, for the range links.
    path: String,
) -> impl IntoView {
    let params = use_range_params();
    view! {
        <section class="traffic" aria-labelledby="traffic-heading">
            <h2 id="traffic-heading">"Traffic"</h2>
            <RangePicker path/>
            <Transition fallback=|| view! { <p class="loading">"Loading traffic…"</p> }>
                {move || Suspend::new(async move {
                    match traffic.await {
                        Err(e) => view! { <ErrorMessage error=e/> }.into_any(),
                        Ok(report) => view! { <TrafficView report params=params.get_untracked()/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TrafficView(report: TrafficReport, params: RangeParams) -> impl IntoView {
    let s = report.summary.clone();
    let c = s.counts;
    let served = c.served_bytes().max(0) as u64;
    let efficiency = s
        .efficiency
        .map(|e| format!("{:.1} %", e * 100.0))
        .unwrap_or_else(|| "— (nothing served)".into());
    let peak = |p: &Option<crate::traffic::Peak>| match p {
        Some(p) => {
            view! { {format_rate(p.bps)} <span class="when">" (" {p.label.clone()} ")"</span> }
                .into_any()
        }
        None => view! { "—" }.into_any(),
    };
    let title = match report.range.preset {
        Some(p) => p.describe().to_string(),
        None => "Custom range".to_string(),
    };
    // Exports ask for what the page shows: the same range (as the address
    // gave it) and, explicitly, the zone the page is in.
    let export = {
        let node = report.node.clone();
        let zone = report.time_zone.clone();
        move |chart: &str, format: &str| {
            let range = params
                .range
                .clone()
                .or_else(|| params.from.as_ref().map(|_| "custom".into()));
            format!(
                "/traffic.{format}{}",
                query_string(&[
                    ("chart", Some(chart)),
                    ("node", node.as_deref()),
                    ("range", range.as_deref()),
                    ("from", params.from.as_deref()),
                    ("to", params.to.as_deref()),
                    ("tz", Some(zone.as_str())),
                ])
            )
        }
    };
    let family_total: i64 = c.families.values().iter().sum();
    let families = FAMILIES
        .iter()
        .zip(c.families.values())
        .map(|((key, name), bytes)| {
            let share = if family_total > 0 {
                format!("{:.1} %", bytes as f64 * 100.0 / family_total as f64)
            } else {
                "—".into()
            };
            view! {
                <tr data-family=*key>
                    <td>{*name}</td>
                    <td class="num">{format_bytes(bytes.max(0) as u64)}</td>
                    <td class="num">{share}</td>
                </tr>
            }
        })
        .collect_view();
    let charts = charts_of(&report)
        .into_iter()
        .map(|spec| {
            let csv = export(spec.key, "csv");
            let json = export(spec.key, "json");
            view! { <ChartFigure spec csv json/> }
        })
        .collect_view();
    view! {
        <p class="range-description">
            <strong>{title}</strong> ": " {report.range.description.clone()}
            ", one point every " {crate::charts::step_text(report.range.step_ms)} ". Times in "
            <strong class="time-zone">{report.time_zone.clone()}</strong> "."
        </p>
        <dl class="facts stats">
            <dt>"Served to subscribers"</dt><dd data-stat="served">{format_bytes(served)}</dd>
            <dt>"Bytes saved (served from cache)"</dt><dd data-stat="saved">{format_bytes(c.hit_bytes.max(0) as u64)}</dd>
            <dt>"Cache efficiency"</dt><dd data-stat="efficiency">{efficiency}</dd>
            <dt>"Peak egress"</dt><dd data-stat="peak-egress">{peak(&s.peak_egress)}</dd>
            <dt>"Average egress"</dt><dd data-stat="average-egress">{format_rate(s.average_egress_bps)}</dd>
            <dt>"Peak origin ingress"</dt><dd data-stat="peak-origin">{peak(&s.peak_origin)}</dd>
            <dt>"Average origin ingress"</dt><dd data-stat="average-origin">{format_rate(s.average_origin_bps)}</dd>
            <dt>"Fetched from origins"</dt><dd data-stat="origin">{format_bytes(c.origin_bytes.max(0) as u64)}</dd>
            <dt>"Requests"</dt><dd data-stat="requests">{c.requests} " (" {c.errors} " errors)"</dd>
        </dl>
        <p class="hint">"Peaks are the highest point of the chart: an average over one point's time."</p>
        {charts}
        <h3>"Traffic by content family"</h3>
        <table class="families">
            <thead><tr><th>"Family"</th><th class="num">"Served"</th><th class="num">"Share"</th></tr></thead>
            <tbody>{families}</tbody>
        </table>
    }
}

/// One chart: its SVG, its exports, its legend, and (hydrated) a crosshair
/// and a readout of the point under the pointer.
#[component]
fn ChartFigure(spec: ChartSpec, csv: String, json: String) -> impl IntoView {
    let hovered = RwSignal::new(None::<usize>);
    let svg = spec.svg();
    let id = format!("chart-{}", spec.key);
    let title = spec.title.clone();
    let (plot_top, plot_height) = ChartSpec::plot_fractions();
    let over = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let index = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .and_then(|el| el.get_attribute("data-i"))
                .and_then(|i| i.parse::<usize>().ok());
            if index.is_some() {
                hovered.set(index);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let legend = spec
        .series
        .iter()
        .map(|s| {
            view! { <li><span class=format!("swatch {}", s.class)></span> {s.name}</li> }
        })
        .collect_view();
    let for_crosshair = spec.clone();
    let crosshair = move || {
        hovered.get().map(|i| {
            let style = format!(
                "left: {:.3}%; top: {:.3}%; height: {:.3}%",
                for_crosshair.center_fraction(i) * 100.0,
                plot_top * 100.0,
                plot_height * 100.0
            );
            view! { <div class="crosshair" style=style></div> }
        })
    };
    let readout = move || hovered.get().map(|i| spec.describe(i));
    view! {
        <figure class="chart" id=id>
            <figcaption>
                {title}
                <span class="exports">
                    "Data: " <a href=csv.clone() download="">"CSV"</a> " " <a href=json download="">"JSON"</a>
                </span>
            </figcaption>
            <div class="chart-area" on:mouseover=over on:mouseleave=move |_| hovered.set(None)>
                <div class="chart-drawing" inner_html=svg></div>
                {crosshair}
            </div>
            <ul class="legend">{legend}</ul>
            <p class="readout" aria-live="polite">{readout}</p>
        </figure>
    }
}
