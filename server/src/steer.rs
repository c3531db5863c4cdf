//! The steering endpoints subscribers' update clients call. They are
//! public (a device asking where to download has no account), answered
//! from the in-memory index, and mounted outside the session and page
//! layers so that each request costs a trie lookup and little else.
//!
//! - `GET /api/v1/steer?client=<ipv4>`: JSON, the node(s) to use or "use
//!   the CDN". Without `client`, the address the request came from.
//! - `GET /api/v1/steer/redirect?url=<origin url>[&client=<ipv4>]`: 302 to
//!   `http://<node>/<path>?<query>&cacheHostOrigin=<host>`, or to the
//!   origin URL itself when no node can take the client.

use app::backend::steering::Decision;
use app::backend::AppState;
use app::error::AppError;
use app::validate;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lastmile_wire::{SteerNode, SteerResponse, ORIGIN_PARAM};
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};

use crate::api_v1::ApiFailure;
use crate::web::{client_ip, WebConfig};

#[derive(Clone)]
struct SteerState {
    app: AppState,
    web: WebConfig,
}

pub fn routes(state: AppState, web: WebConfig) -> Router {
    Router::new()
        .route("/api/v1/steer", get(steer))
        .route("/api/v1/steer/redirect", get(redirect))
        .with_state(SteerState { app: state, web })
}

/// The subscriber's address: the `client` parameter, or the requester.
fn subscriber(
    given: Option<&str>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    web: &WebConfig,
) -> Result<Ipv4Addr, AppError> {
    match given {
        Some(text) => validate::ipv4_address(text, "client address"),
        None => match client_ip(headers, peer, web.trust_forwarded_for) {
            Some(std::net::IpAddr::V4(v4)) => Ok(v4),
            Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Ok(v4),
                None => Err(AppError::invalid(format!(
                    "Your address {v6} is IPv6. {} address as ?client=.",
                    validate::IPV6_NOT_SUPPORTED
                ))),
            },
            None => Err(AppError::invalid(
                "Give the subscriber's IPv4 address as ?client=.",
            )),
        },
    }
}

#[derive(Deserialize)]
struct SteerQuery {
    client: Option<String>,
}

fn response(client: Ipv4Addr, decision: Decision) -> SteerResponse {
    SteerResponse {
        client: client.to_string(),
        use_cdn: decision.nodes.is_empty(),
        nodes: decision
            .nodes
            .iter()
            .map(|n| SteerNode {
                name: n.name.clone(),
                url: n.url(),
            })
            .collect(),
        prefix: decision.prefix.map(|p| p.to_string()),
        source: decision.source.map(|s| s.as_str().to_string()),
    }
}

async fn steer(
    State(state): State<SteerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<SteerQuery>,
) -> Result<Json<SteerResponse>, ApiFailure> {
    let client = subscriber(query.client.as_deref(), &headers, Some(peer), &state.web)?;
    Ok(Json(response(client, state.app.steering.steer(client))))
}

#[derive(Deserialize)]
struct RedirectQuery {
    url: String,
    client: Option<String>,
}

/// An origin URL taken apart: only absolute `http://` and `https://` URLs
/// of a named host are accepted.
struct OriginUrl {
    https: bool,
    host: String,
    /// Path and query, starting with `/`.
    path_and_query: String,
}

fn parse_origin_url(raw: &str) -> Result<OriginUrl, AppError> {
    let uri: axum::http::Uri = raw.trim().parse().map_err(|_| {
        AppError::invalid("The url parameter must be an absolute http:// or https:// URL.")
    })?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(AppError::invalid(
                "The url parameter must be an absolute http:// or https:// URL.",
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| AppError::invalid("The url parameter has no host."))?;
    if authority.as_str().contains('@') {
        return Err(AppError::invalid(
            "The url parameter must not carry a user name or password.",
        ));
    }
    Ok(OriginUrl {
        https,
        host: authority.as_str().to_ascii_lowercase(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

async fn redirect(
    State(state): State<SteerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<RedirectQuery>,
) -> Result<Response, ApiFailure> {
    let client = subscriber(query.client.as_deref(), &headers, Some(peer), &state.web)?;
    let origin = parse_origin_url(&query.url)?;
    // Nodes speak plain HTTP: an HTTPS download is not silently moved to
    // HTTP, it goes to the origin as asked.
    let decision = if origin.https {
        None
    } else {
        state
            .app
            .steering
            .steer_for_host(client, &origin.host)
            .nodes
            .into_iter()
            .next()
    };
    let location = match decision {
        Some(node) => {
            let separator = if origin.path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            format!(
                "{}{}{separator}{ORIGIN_PARAM}={}",
                node.url(),
                origin.path_and_query,
                origin.host
            )
        }
        None => query.url.trim().to_string(),
    };
    let location = HeaderValue::from_str(&location)
        .map_err(|_| AppError::invalid("The url parameter cannot be used in a redirect."))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // The answer depends on health, which changes by the second.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls_are_absolute_http() {
        let u = parse_origin_url("http://Dl.Example.COM/a/b.cab?sig=1").unwrap();
        assert!(!u.https);
        assert_eq!(u.host, "dl.example.com");
        assert_eq!(u.path_and_query, "/a/b.cab?sig=1");
        assert!(parse_origin_url("https://x.example/").unwrap().https);
        for bad in ["/relative", "ftp://x/", "http://user:pw@x/", "not a url"] {
            assert!(parse_origin_url(bad).is_err(), "{bad}");
        }
    }
}
