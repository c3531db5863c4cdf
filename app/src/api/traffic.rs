//! Server functions for the traffic dashboards.

use leptos::prelude::*;

use crate::error::AppError;
use crate::traffic::{FleetHealth, TrafficReport};

#[cfg(feature = "ssr")]
use crate::backend::{ctx, traffic};

/// What a dashboard shows for the organization's fleet (`node` empty) or
/// one of its nodes, over a preset `range` (1h, 12h, 1d, 7d, 14d, 30d) or
/// a custom one (`from`, `to`), with times in the zone `tz` names, else in
/// the one the browser reported (a cookie), else in UTC.
#[server(endpoint = "traffic")]
pub async fn get_traffic(
    node: Option<String>,
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    tz: Option<String>,
) -> Result<TrafficReport, AppError> {
    let me = ctx::require(|_| true, "see traffic")?;
    let state = ctx::state()?;
    let cookies = use_context::<http::request::Parts>()
        .map(|parts| traffic::cookie_header(&parts.headers))
        .unwrap_or_default();
    let zone = traffic::viewer_zone(tz.as_deref(), Some(&cookies))?;
    traffic::report(
        &state.db,
        me.org_id,
        node.as_deref(),
        &traffic::RangeQuery { range, from, to },
        &zone,
        &state.settings.traffic_retention,
    )
    .await
}

/// How many of the organization's nodes are healthy, and which need
/// looking at.
#[server(endpoint = "fleet_health")]
pub async fn get_fleet_health() -> Result<FleetHealth, AppError> {
    let me = ctx::require(|_| true, "see nodes")?;
    let state = ctx::state()?;
    traffic::fleet_health(&state.db, me.org_id, state.settings.offline_after_ms()).await
}
