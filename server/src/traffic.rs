//! Traffic over HTTP: the CSV and JSON exports of a dashboard's charts (for
//! the signed-in person, and through the JSON API with a token), and the
//! Prometheus endpoint.
//!
//! `/metrics` covers every organization on the portal, so it is for the
//! portal's operator only: it is off unless the portal is started with
//! `--metrics-token`, and then answers only requests that carry that token
//! (`Authorization: Bearer …`, as Prometheus' `authorization` setting sends
//! it). An organization on a shared portal scrapes its own figures from
//! `/api/v1/metrics` with one of its API tokens.

use app::backend::traffic::{self, RangeQuery};
use app::backend::{secrets, AppState};
use app::error::AppError;
use app::traffic::{Chart, TrafficReport};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;

use crate::api_v1::ApiFailure;

/// What an export asks for, as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// The node, or none for the whole fleet (browser downloads only; the
    /// API names the node in its path).
    pub node: Option<String>,
    /// A preset (1h, 12h, 1d, 7d, 14d, 30d) or `custom`.
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The time zone a custom range's `from` and `to` are in.
    pub tz: Option<String>,
    /// egress, efficiency, families, or all (the default).
    pub chart: Option<String>,
    /// json (the default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    fn parse(value: Option<&str>) -> Result<Format, AppError> {
        match value.map(str::trim) {
            None | Some("") | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(AppError::invalid(format!(
                "Unknown format \"{}\": choose json or csv.",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }
}

/// The query, or a 400 that says what was wrong with it.
pub fn query_or_invalid(
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<ExportQuery, ApiFailure> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ApiFailure(AppError::invalid(format!(
            "The query is not what this call takes: {}",
            rejection.body_text()
        )))
    })
}

/// The report an export asks for, for the organization `org_id`.
pub async fn export_report(
    state: &AppState,
    org_id: i64,
    node: Option<&str>,
    query: &ExportQuery,
    remembered_zone: Option<&str>,
) -> Result<(TrafficReport, Chart), AppError> {
    let chart = match query.chart.as_deref().map(str::trim) {
        None | Some("") => Chart::All,
        Some(chart) => Chart::parse(chart)?,
    };
    let zone = traffic::viewer_zone(query.tz.as_deref(), remembered_zone)?;
    let report = traffic::report(
        &state.db,
        org_id,
        node,
        &RangeQuery {
            range: query.range.clone(),
            from: query.from.clone(),
            to: query.to.clone(),
        },
        &zone,
        &state.settings.traffic_retention,
    )
    .await?;
    Ok((report, chart))
}

/// The chart's data in the asked format; `attachment` adds a file name so
/// a browser saves it.
pub fn export_response(
    report: &TrafficReport,
    chart: Chart,
    format: Format,
    attachment: bool,
) -> Response {
    let (body, content_type, extension) = match format {
        Format::Csv => (report.to_csv(chart), "text/csv; charset=utf-8", "csv"),
        Format::Json => (
            report.to_json(chart).to_string(),
            "application/json",
            "json",
        ),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if attachment {
        let name = format!(
            "lastmile-{}-{}-{}.{extension}",
            report.node.as_deref().unwrap_or("fleet"),
            chart.key(),
            app::traffic::utc_rfc3339(report.range.start_ms).replace(':', "")
        );
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// `/traffic.csv` and `/traffic.json`: the export links beside each chart,
/// for the signed-in person's organization (the page guard has sent anyone
/// signed out to the sign-in page). The file name's ending is the format.
pub async fn browser_export(
    State(state): State<AppState>,
    axum::Extension(current): axum::Extension<app::backend::CurrentUser>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiFailure> {
    let format = if uri.path().ends_with(".csv") {
        Format::Csv
    } else {
        Format::Json
    };
    let me = current.0.ok_or(AppError::Unauthenticated)?;
    app::backend::authorize(&me, |_| true, "see traffic")?;
    let query = query_or_invalid(query)?;
    if query.format.is_some() {
        return Err(AppError::invalid("The format is in the file name: .csv or .json.").into());
    }
    let cookies = traffic::cookie_header(&headers);
    let (report, chart) = export_report(
        &state,
        me.org_id,
        query.node.as_deref(),
        &query,
        Some(&cookies),
    )
    .await?;
    Ok(export_response(&report, chart, format, true))
}

/// `GET /api/v1/traffic` and `GET /api/v1/nodes/{name}/traffic`.
pub async fn api_export(
    state: &AppState,
    org_id: i64,
    node: Option<&str>,
    query: ExportQuery,
) -> Result<Response, ApiFailure> {
    if query.node.is_some() {
        return Err(
            AppError::invalid("Name the node in the path: /api/v1/nodes/NAME/traffic.").into(),
        );
    }
    let format = Format::parse(query.format.as_deref())?;
    let (report, chart) = export_report(state, org_id, node, &query, None).await?;
    Ok(export_response(&report, chart, format, false))
}

/// Prometheus' text exposition format.
const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics_text(state: &AppState, org: Option<i64>) -> Result<Response, ApiFailure> {
    let text = traffic::prometheus(
        &state.db,
        org,
        state.settings.offline_after_ms(),
        app::backend::db::now_ms(),
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TYPE)], text).into_response())
}

#[derive(Clone)]
struct MetricsState {
    app: AppState,
    /// The token's hash (as API tokens are kept): compared hash to hash, so
    /// the comparison takes as long whatever prefix of the token a caller
    /// guessed.
    token_digest: Option<Arc<str>>,
}

/// `/metrics`, for the portal's operator: off without a token.
pub fn metrics_routes(state: AppState, token: Option<&str>) -> Router {
    Router::new()
        .route("/metrics", get(portal_metrics))
        .with_state(MetricsState {
            app: state,
            token_digest: token.map(|t| Arc::from(secrets::hash(t))),
        })
}

async fn portal_metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.token_digest else {
        return (
            StatusCode::NOT_FOUND,
            "Metrics are off: start the portal with --metrics-token to serve them.\n",
        )
            .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(secrets::hash);
    if given.as_deref() != Some(&**expected) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Send the metrics token as \"Authorization: Bearer TOKEN\".\n",
        )
            .into_response();
    }
    match metrics_text(&state.app, None).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_or_say_what_is_allowed() {
        assert_eq!(Format::parse(None).unwrap(), Format::Json);
        assert_eq!(Format::parse(Some("csv")).unwrap(), Format::Csv);
        let err = Format::parse(Some("xml")).unwrap_err().to_string();
        assert!(err.contains("Unknown format \"xml\""), "{err}");
    }
}
