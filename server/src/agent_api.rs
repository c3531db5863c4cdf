//! The endpoints node agents talk to (see `lastmile_wire` for the
//! conversation). Every call but registration carries the node's credential
//! as a bearer token; the portal keeps only its hash.

use app::backend::agents::{self, AgentNode};
use app::backend::{nodes, AppState, ClientAddr};
use app::error::AppError;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lastmile_wire::{AppliedRequest, RegisterRequest, RegisterResponse, Report, ReportResponse};

use crate::api_v1::{ApiFailure, JsonBody};

/// Large enough for a full BGP table of several hundred thousand routes,
/// which an agent sends after a restart.
const REPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(lastmile_wire::REGISTER_PATH, post(register))
        .route(lastmile_wire::CONFIG_PATH, get(config))
        .route(lastmile_wire::APPLIED_PATH, post(applied))
        .route(
            lastmile_wire::REPORT_PATH,
            post(report).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .with_state(state)
}

/// The node whose credential came with the request.
pub struct Agent(pub AgentNode);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiFailure(AppError::Unauthenticated))?;
        agents::authenticate(&state.db, credential)
            .await?
            .map(Agent)
            // The node was deleted or re-registered elsewhere: the agent
            // must be registered again with a new key.
            .ok_or_else(|| {
                ApiFailure(AppError::Forbidden(
                    "This node credential is not valid (the node was deleted or registered again). \
                     Register the agent with a new key."
                        .into(),
                ))
            })
    }
}

/// A node agent trades its registration key for a node credential.
async fn register(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientAddr>>,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiFailure> {
    let clean = |value: &str, field: &str, max: usize| -> Result<String, AppError> {
        let value = value.trim();
        if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
            return Err(AppError::invalid(format!(
                "The agent's {field} must be 1 to {max} printable characters."
            )));
        }
        Ok(value.to_string())
    };
    let version = clean(&body.agent_version, "version", 64)?;
    let hostname = clean(&body.hostname, "host name", 253)?;
    if body.key.len() > 200 {
        return Err(AppError::invalid(nodes::KEY_REFUSED).into());
    }
    let client_addr = client
        .map(|c| c.0 .0.clone())
        .unwrap_or_else(|| "unknown".into());
    let registered =
        nodes::register_agent(&state.db, &body.key, &version, &hostname, &client_addr).await?;
    tracing::info!(node = %registered.node_name, org = %registered.org_name, %hostname, "agent registered");
    Ok(Json(RegisterResponse {
        node_id: registered.node_id,
        node_name: registered.node_name,
        org_name: registered.org_name,
        credential: registered.credential,
    }))
}

/// The node's configuration; 304 when the agent already has it.
async fn config(
    State(state): State<AppState>,
    Agent(node): Agent,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    // Most polls find nothing new: the version read with the credential
    // answers them without reading the configuration.
    let etag = agents::config_etag(node.config_version, &state.settings);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let config = agents::config(&state.db, node.id, &state.settings).await?;
    // The version the configuration was read at (a change may have landed
    // since the credential was checked).
    let etag = agents::config_etag(config.version, &state.settings);
    let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
    Ok(([(header::ETAG, etag_value)], Json(config)).into_response())
}

async fn applied(
    State(state): State<AppState>,
    Agent(node): Agent,
    JsonBody(body): JsonBody<AppliedRequest>,
) -> Result<StatusCode, ApiFailure> {
    agents::record_applied(&state.db, &node, &body).await?;
    if let Some(error) = &body.error {
        tracing::warn!(node = %node.name, version = body.version, %error, "agent could not apply its configuration");
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn report(
    State(state): State<AppState>,
    Agent(node): Agent,
    JsonBody(body): JsonBody<Report>,
) -> Result<Json<ReportResponse>, ApiFailure> {
    let effects = agents::record_report(&state.db, &node, &body, &state.settings).await?;
    if effects.routes_changed {
        state.steering.wake();
    }
    Ok(Json(effects.response))
}
