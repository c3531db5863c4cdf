//! The admin port: `GET /metrics` (Prometheus text) and `GET /healthz`
//! (200 when the node can serve, 503 when it cannot, with the reasons).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::Cache;
use crate::http::{send_simple, Conn, Framing, HeadError, Method, Request};
use crate::metrics::render_prometheus;
use crate::serve::is_transient_accept_error;

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    cache: Arc<Cache>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(admin_connection(cache.clone(), Conn::new(stream, peer), stopped.clone()));
                }
                Err(e) if is_transient_accept_error(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    connections.shutdown().await;
    Ok(())
}

async fn admin_connection(cache: Arc<Cache>, mut conn: Conn, mut stopped: watch::Receiver<bool>) {
    loop {
        let request = tokio::select! {
            request = conn.read_request() => request,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) | Err(HeadError::Gone) => return,
            Err(HeadError::Refuse(status, why)) => {
                let _ = send_simple(
                    &mut conn,
                    Framing::CLOSE,
                    status,
                    &[],
                    "text/plain",
                    why.as_bytes(),
                )
                .await;
                return;
            }
        };
        if respond(&cache, &mut conn, &request).await.is_err() || !Framing::of(&request).keep_alive
        {
            return;
        }
    }
}

async fn respond(cache: &Cache, conn: &mut Conn, request: &Request) -> io::Result<()> {
    let path = request.target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (request.method, path) {
        (Method::Other, _) => (405, "text/plain", "only GET and HEAD\n".to_string()),
        (_, "/metrics") => {
            let healthy = cache.health().serving;
            (
                200,
                "text/plain; version=0.0.4",
                render_prometheus(&cache.counters(), healthy),
            )
        }
        (_, "/healthz") => {
            let health = cache.health();
            let problems: Vec<String> = health.problems.iter().map(|p| p.to_string()).collect();
            if health.serving {
                let mut body = "ok\n".to_string();
                for problem in problems {
                    body.push_str(&format!("warning: {problem}\n"));
                }
                (200, "text/plain", body)
            } else {
                (
                    503,
                    "text/plain",
                    format!("not serving: {}\n", problems.join("; ")),
                )
            }
        }
        _ => (404, "text/plain", "not found\n".to_string()),
    };
    send_simple(
        conn,
        Framing::of(request),
        status,
        &[],
        content_type,
        body.as_bytes(),
    )
    .await
}
