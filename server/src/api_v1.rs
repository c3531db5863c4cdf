//! The versioned JSON API under `/api/v1/`: the portal's node and routing
//! operations for automation, authenticated by per-person API tokens, and the
//! endpoint node agents register with. Errors are JSON `{code, message}`
//! with a stable code; `openapi.json` describes it all.

use app::api::nodes::{install_command, parse_settings};
use app::backend::audit::Actor;
use app::backend::{authorize, nodes, tokens, AppState, ClientAddr};
use app::error::AppError;
use app::model::{
    Drive, IssuedKey, LearnedRouteView, Me, Neighbor, NodeDetail, NodeSummary, Role, RoutingMode,
    SteerExplanation,
};
use app::validate;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::traffic;

/// An error as the JSON API answers it.
pub struct ApiFailure(pub AppError);

impl From<AppError> for ApiFailure {
    fn from(e: AppError) -> Self {
        ApiFailure(e)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = lastmile_wire::ApiError {
            code: self.0.code().to_string(),
            message: self.0.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiFailure>;

/// A JSON body, with malformed JSON answered in the API's error format.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(ApiFailure(AppError::invalid(format!(
                "The request body is not what this call takes: {}",
                rejection.body_text()
            )))),
        }
    }
}

/// The person an API token speaks for.
pub struct Caller {
    me: Me,
    client_addr: String,
}

impl Caller {
    fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.me.user_id),
            name: format!("{} (API token)", self.me.username),
            client_addr: self.client_addr.clone(),
        }
    }

    fn may(&self, allowed: impl Fn(Role) -> bool, what: &str) -> Result<(), ApiFailure> {
        Ok(authorize(&self.me, allowed, what)?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiFailure(AppError::Forbidden(
                    "Send an API token as \"Authorization: Bearer TOKEN\". Create one under API tokens in the portal."
                        .into(),
                ))
            })?;
        let me = tokens::authenticate(&state.db, token)
            .await?
            .ok_or(ApiFailure(AppError::Unauthenticated))?;
        let client_addr = parts
            .extensions
            .get::<ClientAddr>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| "unknown".into());
        Ok(Caller { me, client_addr })
    }
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/nodes", get(list_nodes).post(create_node))
        .route(
            "/api/v1/nodes/{name}",
            get(get_node).patch(update_node).delete(delete_node),
        )
        .route("/api/v1/nodes/{name}/routing/manual", put(put_manual))
        .route("/api/v1/nodes/{name}/routing/bgp", put(put_bgp))
        .route("/api/v1/nodes/{name}/routing/mode", put(put_mode))
        .route("/api/v1/nodes/{name}/draining", put(put_draining))
        .route("/api/v1/nodes/{name}/bgp/routes", get(learned_routes))
        .route("/api/v1/nodes/{name}/registration-key", post(issue_key))
        .route("/api/v1/steer/explain", get(explain))
        .route("/api/v1/traffic", get(fleet_traffic))
        .route("/api/v1/nodes/{name}/traffic", get(node_traffic))
        .route("/api/v1/metrics", get(org_metrics))
        .with_state(state)
}

async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<NodeSummary>>> {
    caller.may(|_| true, "see nodes")?;
    Ok(Json(
        nodes::list(&state.db, caller.me.org_id, offline_after(&state)).await?,
    ))
}

async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(|_| true, "see nodes")?;
    Ok(Json(detail(&state, &caller, &name).await?))
}

fn offline_after(state: &AppState) -> i64 {
    state.settings.offline_after_ms()
}

async fn detail(state: &AppState, caller: &Caller, name: &str) -> Result<NodeDetail, AppError> {
    nodes::detail(&state.db, caller.me.org_id, name, offline_after(state)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNode {
    name: String,
    public_ipv4: String,
    max_egress_mbps: i64,
    #[serde(default = "yes")]
    enabled: bool,
    drives: Vec<Drive>,
    #[serde(default)]
    extra_hosts: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A list as the portal's form takes it (one entry a line), so both follow
/// the same rules and entry N is "line N" in error messages.
fn lines_text(entries: &[String], what: &str) -> Result<String, AppError> {
    if entries.iter().any(|e| e.contains(['\n', '\r', ','])) {
        return Err(AppError::invalid(format!(
            "Give one {what} per array entry."
        )));
    }
    Ok(entries.join("\n"))
}

/// Drives as the portal's form takes them, so both follow the same rules.
fn drives_text(drives: &[Drive]) -> Result<String, AppError> {
    if drives.iter().any(|d| d.path.contains(['\n', '\r'])) {
        return Err(AppError::invalid(
            "A drive's path cannot contain a line break.",
        ));
    }
    Ok(drives
        .iter()
        .map(|d| format!("{} {}", d.path, d.size_gb))
        .collect::<Vec<_>>()
        .join("\n"))
}

async fn create_node(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewNode>,
) -> ApiResult<(StatusCode, Json<NodeDetail>)> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    let name = validate::node_name(&body.name)?;
    let settings = parse_settings(
        &body.public_ipv4,
        &body.max_egress_mbps.to_string(),
        body.enabled,
        &drives_text(&body.drives)?,
        &lines_text(&body.extra_hosts, "host")?,
    )?;
    nodes::create(
        &state.db,
        &caller.actor(),
        caller.me.org_id,
        &name,
        &settings,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, &caller, &name).await?),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeChanges {
    public_ipv4: Option<String>,
    max_egress_mbps: Option<i64>,
    enabled: Option<bool>,
    drives: Option<Vec<Drive>>,
    extra_hosts: Option<Vec<String>>,
}

async fn update_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(changes): JsonBody<NodeChanges>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    let org = caller.me.org_id;
    let current = detail(&state, &caller, &name).await?;
    let settings = parse_settings(
        changes
            .public_ipv4
            .as_deref()
            .unwrap_or(&current.summary.public_ipv4),
        &changes
            .max_egress_mbps
            .unwrap_or(current.summary.max_egress_mbps)
            .to_string(),
        changes.enabled.unwrap_or(current.summary.enabled),
        &drives_text(changes.drives.as_deref().unwrap_or(&current.drives))?,
        &lines_text(
            changes
                .extra_hosts
                .as_deref()
                .unwrap_or(&current.extra_hosts),
            "host",
        )?,
    )?;
    let canonical = current.summary.name;
    nodes::update(&state.db, &caller.actor(), org, &canonical, &settings).await?;
    Ok(Json(detail(&state, &caller, &canonical).await?))
}

async fn delete_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    nodes::delete(&state.db, &caller.actor(), caller.me.org_id, &name).await?;
    state.steering.wake();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRouting {
    prefixes: Vec<String>,
}

async fn put_manual(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ManualRouting>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    let blocks = validate::cidr_list(&lines_text(&body.prefixes, "CIDR block")?)?;
    nodes::set_manual_prefixes(&state.db, &caller.actor(), caller.me.org_id, &name, &blocks)
        .await?;
    state.steering.wake();
    Ok(Json(detail(&state, &caller, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BgpSettings {
    asn: u64,
    neighbors: Vec<Neighbor>,
}

async fn put_bgp(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<BgpSettings>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    let asn = validate::asn(&body.asn.to_string(), "node's ASN")?;
    let lines = body
        .neighbors
        .iter()
        .map(|n| format!("{} {}", n.address, n.asn))
        .collect::<Vec<_>>();
    let neighbors = validate::neighbors(&lines.join("\n"))?;
    nodes::set_bgp(
        &state.db,
        &caller.actor(),
        caller.me.org_id,
        &name,
        asn,
        &neighbors,
    )
    .await?;
    Ok(Json(detail(&state, &caller, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mode {
    mode: RoutingMode,
}

async fn put_mode(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Mode>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    nodes::set_routing_mode(
        &state.db,
        &caller.actor(),
        caller.me.org_id,
        &name,
        body.mode,
    )
    .await?;
    state.steering.wake();
    Ok(Json(detail(&state, &caller, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Draining {
    draining: bool,
}

async fn put_draining(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Draining>,
) -> ApiResult<Json<NodeDetail>> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    nodes::set_draining(
        &state.db,
        &caller.actor(),
        caller.me.org_id,
        &name,
        body.draining,
    )
    .await?;
    state.steering.wake();
    Ok(Json(detail(&state, &caller, &name).await?))
}

async fn learned_routes(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<LearnedRouteView>>> {
    caller.may(|_| true, "see nodes")?;
    Ok(Json(
        nodes::learned_routes(&state.db, caller.me.org_id, &name).await?,
    ))
}

#[derive(Deserialize)]
struct ExplainQuery {
    client: String,
}

/// Where a subscriber goes and why, for the caller's organization.
async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Query(query): axum::extract::Query<ExplainQuery>,
) -> ApiResult<Json<SteerExplanation>> {
    caller.may(|_| true, "see nodes")?;
    let client = validate::ipv4_address(&query.client, "subscriber address")?;
    Ok(Json(state.steering.explain(client, caller.me.org_id)))
}

/// The fleet's traffic over a range, as JSON or CSV (see openapi.json).
async fn fleet_traffic(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<axum::extract::Query<traffic::ExportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    caller.may(|_| true, "see traffic")?;
    let query = traffic::query_or_invalid(query)?;
    traffic::api_export(&state, caller.me.org_id, None, query).await
}

/// One node's traffic; another organization's node is "not found".
async fn node_traffic(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<traffic::ExportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    caller.may(|_| true, "see traffic")?;
    let query = traffic::query_or_invalid(query)?;
    traffic::api_export(&state, caller.me.org_id, Some(&name), query).await
}

/// The caller's organization's metrics in Prometheus' text format.
async fn org_metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.may(|_| true, "see traffic")?;
    traffic::metrics_text(&state, Some(caller.me.org_id)).await
}

async fn issue_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<(StatusCode, Json<IssuedKey>)> {
    caller.may(Role::can_operate, "change nodes or routing")?;
    let name = detail(&state, &caller, &name).await?.summary.name;
    let (key, expires_at_ms) = nodes::issue_key(
        &state.db,
        &caller.actor(),
        caller.me.org_id,
        &name,
        state.settings.registration_key_ttl_ms,
    )
    .await?;
    let portal = portal_url(&state, &headers)?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            node: name,
            install_command: install_command(&portal, state.settings.tls_pin.as_deref(), &key),
            key,
            expires_at_ms,
        }),
    ))
}

fn portal_url(state: &AppState, headers: &axum::http::HeaderMap) -> Result<String, AppError> {
    if let Some(url) = &state.settings.public_url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| AppError::invalid("The request did not say which host it was for."))?;
    Ok(format!(
        "{}://{host}",
        if state.settings.https {
            "https"
        } else {
            "http"
        }
    ))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
