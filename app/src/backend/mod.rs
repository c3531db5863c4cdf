//! Everything of the portal that runs only on the server: storage, password
//! hashing, sessions, throttling, and the request context that server
//! functions read.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod db;
pub mod nodes;
pub mod passwords;
pub mod secrets;
pub mod sessions;
pub mod steering;
pub mod throttle;
pub mod tokens;
pub mod traffic;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::AppError;
use crate::model::Me;
use db::Db;

/// Shared by every request: passed to server functions through Leptos
/// context and to axum handlers as state, never kept in a global.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The in-memory index that answers "which node serves this address?".
    pub steering: Arc<steering::Steering>,
    /// Asked for on the first-run setup page, so that whoever reaches a new
    /// portal first over the network cannot claim it. Printed at start-up.
    pub setup_code: Arc<str>,
    pub settings: Arc<PortalSettings>,
    setup_done: Arc<AtomicBool>,
}

/// Operator settings that pages and server functions need.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// How long a node registration key stays valid.
    pub registration_key_ttl_ms: i64,
    /// The address agents and browsers reach the portal at, such as
    /// `https://portal.isp.example:8443`. Without it, the scheme and `Host`
    /// of each request.
    pub public_url: Option<String>,
    /// Whether the portal itself speaks HTTPS.
    pub https: bool,
    /// curl's `sha256//…` pin of the portal's TLS key, put into install
    /// commands when the certificate is self-signed (nothing else vouches
    /// for it).
    pub tls_pin: Option<String>,
    /// How often agents report. A node is offline after three silent
    /// intervals, and steering stops sending clients to it.
    pub report_interval_secs: u64,
    /// How often agents poll for a new configuration.
    pub config_poll_secs: u64,
    /// How long each tier of the traffic series is kept.
    pub traffic_retention: traffic::TrafficRetention,
}

impl PortalSettings {
    /// How long a node may stay silent before it counts as offline.
    pub fn offline_after_ms(&self) -> i64 {
        3 * self.report_interval_secs.max(1) as i64 * 1000
    }
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            registration_key_ttl_ms: 24 * 3_600_000,
            public_url: None,
            https: false,
            tls_pin: None,
            report_interval_secs: 30,
            config_poll_secs: 15,
            traffic_retention: traffic::TrafficRetention::default(),
        }
    }
}

impl AppState {
    pub fn new(db: Db, setup_code: impl Into<Arc<str>>) -> Self {
        let settings = Arc::new(PortalSettings::default());
        Self {
            steering: Arc::new(steering::Steering::new(
                db.clone(),
                settings.offline_after_ms(),
            )),
            db,
            setup_code: setup_code.into(),
            settings,
            setup_done: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn with_settings(mut self, settings: PortalSettings) -> Self {
        self.steering = Arc::new(steering::Steering::new(
            self.db.clone(),
            settings.offline_after_ms(),
        ));
        self.settings = Arc::new(settings);
        self
    }

    /// Whether first-run setup has happened. Once it has, it stays so: the
    /// answer is remembered and the database is not asked again.
    pub async fn is_set_up(&self) -> Result<bool, AppError> {
        if self.setup_done.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let done = accounts::setup_done(&self.db).await?;
        if done {
            self.setup_done.store(true, Ordering::Relaxed);
        }
        Ok(done)
    }
}

/// The client's address, as the request layer determined it (the socket's
/// peer, or the proxy's forwarded address when proxies are trusted).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

/// Who is signed in on this request, resolved once by the request layer.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Option<Me>);

/// What a session stores about its sign-in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SessionAuth {
    pub user_id: i64,
    pub epoch: i64,
}

pub const SESSION_AUTH_KEY: &str = "auth";
/// What a form refused without JavaScript left for the next page
/// ([`crate::model::Flash`]).
pub const SESSION_FLASH_KEY: &str = "flash";
/// A registration key issued by a form posted without JavaScript, kept for
/// the one page view that shows it.
pub const SESSION_ISSUED_KEY: &str = "issued_key";

/// Whether `me` may do `what`: their temporary password changed, and their
/// role allowing it. Shared by server functions and the JSON API.
pub fn authorize(
    me: &Me,
    allowed: impl Fn(crate::model::Role) -> bool,
    what: &str,
) -> Result<(), AppError> {
    if me.must_change_password {
        return Err(AppError::PasswordChangeRequired);
    }
    if !allowed(me.role) {
        return Err(AppError::Forbidden(format!(
            "Your role ({}) does not allow you to {what}.",
            me.role
        )));
    }
    Ok(())
}

/// Accessors for server functions and components rendering on the server.
pub mod ctx {
    use super::*;
    use crate::model::Role;
    use audit::Actor;
    use http::request::Parts;
    use leptos::prelude::use_context;
    use tower_sessions::Session;

    pub fn state() -> Result<AppState, AppError> {
        use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
    }

    fn parts() -> Result<Parts, AppError> {
        use_context::<Parts>()
            .ok_or_else(|| AppError::internal("request parts missing from context"))
    }

    pub fn session() -> Result<Session, AppError> {
        parts()?
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| AppError::internal("session layer missing"))
    }

    pub fn client_addr() -> String {
        parts()
            .ok()
            .and_then(|p| p.extensions.get::<ClientAddr>().map(|c| c.0.clone()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// The signed-in person, even one who still has to change a temporary
    /// password.
    pub fn signed_in() -> Result<Me, AppError> {
        parts()?
            .extensions
            .get::<CurrentUser>()
            .and_then(|c| c.0.clone())
            .ok_or(AppError::Unauthenticated)
    }

    /// The signed-in person, ready to work: their temporary password changed,
    /// and their role allowing what `allowed` asks.
    pub fn require(allowed: impl Fn(Role) -> bool, what: &str) -> Result<Me, AppError> {
        let me = signed_in()?;
        authorize(&me, allowed, what)?;
        Ok(me)
    }

    /// The portal's own address as the person's browser reached it.
    pub fn portal_url() -> Result<String, AppError> {
        let settings = state()?.settings;
        if let Some(url) = &settings.public_url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let parts = parts()?;
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .ok_or_else(|| AppError::invalid("The request did not say which host it was for."))?;
        let scheme = if settings.https { "https" } else { "http" };
        Ok(format!("{scheme}://{host}"))
    }

    pub fn actor(me: &Me) -> Actor {
        Actor {
            user_id: Some(me.user_id),
            name: me.username.clone(),
            client_addr: client_addr(),
        }
    }
}
