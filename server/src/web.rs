//! The request layer around the Leptos app: cross-site request forgery
//! protection, who is asking and from where, which pages they may see, and
//! how forms posted without JavaScript get their answer.

use app::backend::{
    accounts, AppState, ClientAddr, CurrentUser, SessionAuth, SESSION_AUTH_KEY, SESSION_FLASH_KEY,
};
use app::error::AppError;
use app::model::{Flash, RefusedForm};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use tower_sessions::Session;

/// Settings of the request layer that come from the command line.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// Take the client address from `X-Forwarded-For` (set by a load
    /// balancer in front of the portal) instead of the socket.
    pub trust_forwarded_for: bool,
}

/// Refuses state-changing requests that a browser sent on behalf of another
/// site. Browsers label every request with `Sec-Fetch-Site` or, on older
/// ones, `Origin`; a cross-site form or fetch therefore always shows itself.
/// Requests with neither come from programs, not browsers, and carry no
/// ambient cookies to abuse. (This is the check Go's
/// `http.CrossOriginProtection` performs; with SameSite=Strict session
/// cookies it is a second, independent wall.)
pub async fn cross_origin_guard(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    if !is_same_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "refused a cross-origin state change");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(AppError::Forbidden(
                "Cross-site request refused: submit the form from the portal itself.".into(),
            )),
        )
            .into_response();
    }
    next.run(req).await
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The address a request came from: the socket's peer, or the first
/// `X-Forwarded-For` entry when the portal sits behind a load balancer that
/// sets it (and only then: otherwise clients could pick their own address).
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    forwarded.or(peer.map(|p| p.ip()))
}

/// Resolves the client address and the signed-in person once per request
/// and puts both in the request's extensions for pages and server functions.
pub async fn identify(
    State((state, config)): State<(AppState, WebConfig)>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/pkg/") {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let client = client_ip(req.headers(), peer, config.trust_forwarded_for)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());

    let auth = match session.get::<SessionAuth>(SESSION_AUTH_KEY).await {
        Ok(auth) => auth,
        Err(e) => return AppError::internal(format!("reading session: {e}")).into_page_response(),
    };
    let me = match auth {
        Some(auth) => match accounts::load_me(&state.db, auth.user_id, auth.epoch).await {
            Ok(Some(me)) => Some(me),
            Ok(None) => {
                // The account is gone or its password was reset: this
                // session has ended.
                let _ = session.remove::<SessionAuth>(SESSION_AUTH_KEY).await;
                None
            }
            Err(e) => return e.into_page_response(),
        },
        None => None,
    };
    req.extensions_mut().insert(ClientAddr(client));
    req.extensions_mut().insert(CurrentUser(me));
    next.run(req).await
}

/// Where a page request may go: first-run setup until it is done, sign-in
/// for everyone signed out, and the password page for anyone still on a
/// temporary password. Server functions check for themselves.
pub async fn page_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_page = matches!(*req.method(), Method::GET | Method::HEAD)
        && !path.starts_with("/api/")
        && !path.starts_with("/pkg/")
        && path != "/healthz"
        && path != "/favicon.ico"
        // Fetched by the install command on a server, without a session.
        && path != lastmile_wire::INSTALL_SCRIPT_PATH
        && !path.starts_with("/downloads/");
    if !is_page {
        return next.run(req).await;
    }
    let set_up = match state.is_set_up().await {
        Ok(done) => done,
        Err(e) => return e.into_page_response(),
    };
    let me = req
        .extensions()
        .get::<CurrentUser>()
        .and_then(|c| c.0.clone());
    let target = match (set_up, path, &me) {
        (false, "/setup", _) => None,
        (false, _, _) => Some("/setup"),
        // After first-run setup the setup page itself renders "not found".
        // (Rendering another route here instead would not match the page
        // the browser hydrates at /setup.)
        (true, "/setup", _) => None,
        (true, "/login", Some(_)) => Some("/"),
        (true, "/login", None) => None,
        (true, _, None) => Some("/login"),
        (true, "/account/password", Some(_)) => None,
        (true, _, Some(me)) if me.must_change_password => Some("/account/password"),
        _ => None,
    };
    match target {
        Some(to) => Redirect::to(to).into_response(),
        None => next.run(req).await,
    }
}

trait PageResponse {
    fn into_page_response(self) -> Response;
}

impl PageResponse for AppError {
    fn into_page_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, self.to_string()).into_response()
    }
}

/// Shapes server-function answers. Plain HTML form posts (no JavaScript)
/// get what such forms expect: a redirect back to the page they came from,
/// with any error, and what was typed into the form, kept in the session
/// for that page to show once. (Leptos would redirect too, but put the
/// error in the URL, where no page reads it, and drop the input.)
/// Calls from the hydrated app and from programs get errors as JSON with
/// the HTTP status that fits, instead of a blanket 500.
pub async fn server_fn_responses(session: Session, mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") || path.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let action = path.to_string();
    let accepts_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    // Leptos redirects form posts to the Referer unless the function chose
    // a destination itself. A marker in place of the Referer tells the two
    // apart afterwards.
    let back = req
        .headers_mut()
        .insert(header::REFERER, HeaderValue::from_static(RETURN_MARK))
        .and_then(|v| v.to_str().ok().map(same_site_path))
        .unwrap_or_else(|| "/".to_string());
    // A browser's own form post: its fields are read here (and handed on
    // unchanged) so that, refused, they can go back into the form.
    let mut posted_fields = None;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if accepts_html && is_form {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large to accept.",
            )
                .into_response();
        };
        posted_fields = Some(kept_fields(&bytes));
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let response = next.run(req).await;

    let failed = response.headers().contains_key("serverfnerror");
    if !failed {
        let automatic_return = response
            .headers()
            .get(header::LOCATION)
            .is_some_and(|l| l.as_bytes() == RETURN_MARK.as_bytes());
        if accepts_html && (automatic_return || !response.headers().contains_key(header::LOCATION))
        {
            return Redirect::to(&back).into_response();
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let error: AppError = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| AppError::internal(format!("undecodable server function error: {e}")));
    if accepts_html {
        let flash = Flash {
            message: Some(error.to_string()),
            form: posted_fields.map(|fields| RefusedForm { action, fields }),
        };
        if let Err(e) = session.insert(SESSION_FLASH_KEY, flash).await {
            return AppError::internal(format!("storing flash: {e}")).into_page_response();
        }
        return Redirect::to(&back).into_response();
    }
    parts.status =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::from_parts(parts, Body::from(bytes))
}

const RETURN_MARK: &str = "/.lastmile-return-to-referer";

/// The largest form a browser may post to a server function: room for a
/// pasted list of tens of thousands of CIDR blocks, and a bound on what a
/// refused post keeps in the session.
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// A posted form's fields, in order, without secrets (passwords, the
/// first-run setup code): those are never written to the session store,
/// and a refused form asks for them again.
fn kept_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .filter(|(name, _)| !name.contains("password") && name != "setup_code")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The path and query of a Referer, so a redirect can never leave the portal.
fn same_site_path(referer: &str) -> String {
    let after_scheme = referer.split_once("://").map_or(referer, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) if !after_scheme[i..].starts_with("//") => after_scheme[i..].to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_paths_stay_on_the_portal() {
        assert_eq!(
            same_site_path("https://portal:8443/people?x=1"),
            "/people?x=1"
        );
        assert_eq!(same_site_path("https://portal:8443"), "/");
        assert_eq!(same_site_path("https://portal//evil.example/"), "/");
    }

    #[test]
    fn refused_forms_keep_their_fields_but_never_secrets() {
        let body = b"name=edge1&prefixes=10.0.0.0%2F8%0A192.0.2.7%2F24&password=s3cret&new_password_confirm=x&setup_code=abc";
        assert_eq!(
            kept_fields(body),
            vec![
                ("name".to_string(), "edge1".to_string()),
                (
                    "prefixes".to_string(),
                    "10.0.0.0/8\n192.0.2.7/24".to_string()
                ),
            ]
        );
    }

    #[test]
    fn cross_site_requests_are_recognized() {
        let mut h = HeaderMap::new();
        assert!(is_same_origin(&h), "non-browser clients pass");
        h.insert(header::HOST, HeaderValue::from_static("portal:8443"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://portal:8443"),
        );
        assert!(is_same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!is_same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!is_same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(is_same_origin(&h));
    }
}
