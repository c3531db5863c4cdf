//! The Lastmile portal server: the Leptos app, its server functions and the
//! request layer around them, served over HTTP or HTTPS.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests start a
//! real portal on an ephemeral port and stop it when they are done.

pub mod agent_api;
pub mod api_v1;
pub mod config;
pub mod steer;
pub mod tls;
pub mod traffic;
pub mod web;

use app::backend::sessions::DbSessionStore;
use app::backend::{db::Db, AppState};
use app::{shell, App};
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, get_service};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tower_http::services::ServeFile;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use web::WebConfig;

/// The name the wasm bundle is built under (`scripts/build-site`).
pub const BUNDLE_NAME: &str = "lastmile";
pub const SESSION_COOKIE: &str = "lastmile_session";

pub struct RouterOptions {
    /// Folder holding `pkg/` with the wasm bundle, its JavaScript and CSS.
    pub site_root: String,
    /// Mark the session cookie `Secure`: on whenever the portal speaks HTTPS.
    pub secure_cookies: bool,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    pub web: WebConfig,
    /// The node agent binary served to install scripts.
    pub agent_binary: std::path::PathBuf,
    /// The bearer token `/metrics` asks for; without one it is off.
    pub metrics_token: Option<String>,
}

pub fn router(state: AppState, options: RouterOptions) -> Router {
    let leptos_options = LeptosOptions::builder()
        .output_name(BUNDLE_NAME)
        .site_root(options.site_root.as_str())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(App);
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(options.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(options.session_idle).unwrap_or(time::Duration::hours(12)),
        ));
    let context_state = state.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &leptos_options,
            routes,
            move || provide_context(context_state.clone()),
            {
                let leptos_options = leptos_options.clone();
                move || shell(leptos_options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);
    state.steering.spawn_refresher();
    let steering = steer::routes(state.clone(), options.web.clone());
    let metrics = traffic::metrics_routes(state.clone(), options.metrics_token.as_deref());
    let portal = Router::new()
        .route("/healthz", get(healthz).with_state(state.clone()))
        .merge(api_v1::routes(state.clone()))
        .merge(agent_api::routes(state.clone()))
        .route(
            lastmile_wire::AGENT_DOWNLOAD_PATH,
            get_service(ServeFile::new(&options.agent_binary)),
        )
        .route(lastmile_wire::INSTALL_SCRIPT_PATH, get(install_script))
        .route(
            "/nodes/{name}/learned-routes.json",
            get(learned_routes_download).with_state(state.clone()),
        )
        .route(
            "/traffic.csv",
            get(traffic::browser_export).with_state(state.clone()),
        )
        .route(
            "/traffic.json",
            get(traffic::browser_export).with_state(state.clone()),
        )
        .merge(pages)
        .layer(from_fn_with_state(state.clone(), web::page_guard))
        .layer(from_fn(web::server_fn_responses))
        .layer(from_fn_with_state((state, options.web), web::identify))
        .layer(sessions)
        .layer(from_fn(web::cross_origin_guard))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ));
    // Steering skips the session and page layers: subscribers' devices
    // have no session, and it must answer tens of thousands a second.
    // So does /metrics: Prometheus brings a token, not a session.
    steering.merge(metrics).merge(portal)
}

/// The script the install command pipes into `sh`: it downloads the agent
/// from this portal, registers it and sets up its service.
async fn install_script() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("assets/install.sh"),
    )
}

/// The JSON download of a node's BGP-learned routes, for the signed-in
/// person's own organization (the page guard has already sent anyone
/// signed out to the sign-in page).
async fn learned_routes_download(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::Extension(current): axum::Extension<app::backend::CurrentUser>,
) -> Result<axum::response::Response, api_v1::ApiFailure> {
    use axum::response::IntoResponse;
    let me = current.0.ok_or(app::error::AppError::Unauthenticated)?;
    app::backend::authorize(&me, |_| true, "see nodes")?;
    let routes = app::backend::nodes::learned_routes(&state.db, me.org_id, &name).await?;
    let disposition = format!("attachment; filename=\"{name}-learned-routes.json\"");
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition)
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        )],
        axum::Json(routes),
    )
        .into_response())
}

/// 200 when the portal can reach its database, 503 when it cannot: for load
/// balancers and monitoring.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(&state.db.pool).await {
        Ok(_) => (axum::http::StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n",
            )
        }
    }
}

/// Serves `app` on `listener` (HTTPS when `tls` is given) until `shutdown`
/// completes, then lets requests in flight finish for up to ten seconds.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await
        }
    }
}

/// Deletes expired sessions, stale sign-in failures and traffic past its
/// retention every few minutes.
pub fn spawn_housekeeping(db: Db, traffic_retention: app::backend::traffic::TrafficRetention) {
    use tower_sessions::session_store::ExpiredDeletion;
    tokio::spawn(async move {
        let store = DbSessionStore::new(db.clone());
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "deleting expired sessions");
            }
            if let Err(e) = app::backend::throttle::prune(&db).await {
                tracing::warn!(error = %e, "pruning sign-in failures");
            }
            let now = app::backend::db::now_ms();
            if let Err(e) = app::backend::traffic::prune(&db, &traffic_retention, now).await {
                tracing::warn!(error = %e, "deleting traffic past its retention");
            }
        }
    });
}
