//! Requests to origins: hyper's HTTP/1.1 client connection, with a small
//! keep-alive pool per address and names resolved through the configured
//! resolve map first, then DNS (cached briefly).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, ACCEPT_ENCODING, HOST, RANGE, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::OriginConfig;

const POOL_IDLE_LIMIT: Duration = Duration::from_secs(30);
const POOL_MAX_IDLE_PER_ADDR: usize = 64;
const DNS_CACHE_TTL: Duration = Duration::from_secs(30);
/// hyper's read buffer per origin connection; bounds memory per fill.
const ORIGIN_READ_BUFFER: usize = 128 * 1024;
const USER_AGENT_VALUE: &str = concat!("lastmile-cache/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OriginError {
    #[error("could not resolve origin {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("could not connect to origin {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("origin {host} did not answer within {after:?}")]
    Timeout { host: String, after: Duration },
    #[error("origin {host} paused for {after:?} in the middle of a body")]
    Stalled { host: String, after: Duration },
    #[error("origin {host}: {reason}")]
    Protocol { host: String, reason: String },
}

impl OriginError {
    /// The status a client gets when this is all there is to tell it.
    pub(crate) fn client_status(&self) -> u16 {
        match self {
            OriginError::Timeout { .. } | OriginError::Stalled { .. } => 504,
            _ => 502,
        }
    }
}

type Sender = http1::SendRequest<Empty<Bytes>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Addresses of a host and port, and when they were looked up.
type DnsCache = HashMap<(String, u16), (Vec<SocketAddr>, Instant)>;

#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    dns: Mutex<DnsCache>,
}

#[derive(Clone, Default)]
pub(crate) struct OriginClient {
    pool: Arc<Pool>,
}

/// An origin's answer; the body is read with [`OriginResponse::chunk`]. A
/// body read to its end gives the connection back to the pool.
pub(crate) struct OriginResponse {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    give_back: Option<(Arc<Pool>, SocketAddr, Sender)>,
    host: String,
}

impl OriginResponse {
    /// The next piece of the body, `None` at its end. Fails when the origin
    /// sends nothing for `stall`.
    pub(crate) async fn chunk(&mut self, stall: Duration) -> Result<Option<Bytes>, OriginError> {
        loop {
            let frame = match timeout(stall, self.body.frame()).await {
                Err(_) => {
                    return Err(OriginError::Stalled {
                        host: self.host.clone(),
                        after: stall,
                    })
                }
                Ok(None) => {
                    if let Some((pool, addr, sender)) = self.give_back.take() {
                        pool.put_back(addr, sender);
                    }
                    return Ok(None);
                }
                Ok(Some(Err(e))) => {
                    return Err(OriginError::Protocol {
                        host: self.host.clone(),
                        reason: e.to_string(),
                    })
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }

    pub(crate) fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Pool {
    fn put_back(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(addr).or_default();
        if list.len() < POOL_MAX_IDLE_PER_ADDR {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(&addr)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < POOL_IDLE_LIMIT && !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }
}

impl OriginClient {
    /// `GET http://host/path` with an optional inclusive byte range.
    pub(crate) async fn get(
        &self,
        config: &OriginConfig,
        host: &str,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<OriginResponse, OriginError> {
        let addrs = self.resolve(config, host).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut sender, addr, reused) = self.checkout(config, host, &addrs).await?;
            let request = build_request(config, host, path, range)?;
            let sent = timeout(config.response_timeout, sender.send_request(request)).await;
            let response = match sent {
                Err(_) => {
                    return Err(OriginError::Timeout {
                        host: host.to_string(),
                        after: config.response_timeout,
                    })
                }
                // A pooled connection the origin closed while it sat idle.
                Ok(Err(_)) if reused && attempt == 1 => continue,
                Ok(Err(e)) => {
                    return Err(OriginError::Protocol {
                        host: host.to_string(),
                        reason: e.to_string(),
                    })
                }
                Ok(Ok(response)) => response,
            };
            let (parts, body) = response.into_parts();
            return Ok(OriginResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
                give_back: Some((self.pool.clone(), addr, sender)),
                host: host.to_string(),
            });
        }
    }

    async fn checkout(
        &self,
        config: &OriginConfig,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<(Sender, SocketAddr, bool), OriginError> {
        for addr in addrs {
            while let Some(mut sender) = self.pool.take_idle(*addr) {
                if let Ok(Ok(())) = timeout(Duration::from_millis(50), sender.ready()).await {
                    return Ok((sender, *addr, true));
                }
            }
        }
        let mut last_error = String::from("no address");
        for addr in addrs {
            match timeout(config.connect_timeout, TcpStream::connect(addr)).await {
                Err(_) => {
                    last_error = format!("{addr}: timed out after {:?}", config.connect_timeout)
                }
                Ok(Err(e)) => last_error = format!("{addr}: {e}"),
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let (sender, connection) = http1::Builder::new()
                        .max_buf_size(ORIGIN_READ_BUFFER)
                        .handshake(TokioIo::new(stream))
                        .await
                        .map_err(|e| OriginError::Connect {
                            host: host.to_string(),
                            reason: e.to_string(),
                        })?;
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return Ok((sender, *addr, false));
                }
            }
        }
        Err(OriginError::Connect {
            host: host.to_string(),
            reason: last_error,
        })
    }

    async fn resolve(
        &self,
        config: &OriginConfig,
        host: &str,
    ) -> Result<Vec<SocketAddr>, OriginError> {
        if let Some(addr) = config.resolve.get(host) {
            return Ok(vec![*addr]);
        }
        let key = (host.to_string(), config.port);
        if let Some((addrs, at)) = self.pool.dns.lock().expect("dns lock").get(&key) {
            if at.elapsed() < DNS_CACHE_TTL {
                return Ok(addrs.clone());
            }
        }
        let looked_up = timeout(
            config.connect_timeout,
            tokio::net::lookup_host((host, config.port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match looked_up {
            Err(_) => {
                return Err(OriginError::Resolve {
                    host: host.to_string(),
                    reason: "timed out".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(OriginError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
        if addrs.is_empty() {
            return Err(OriginError::Resolve {
                host: host.to_string(),
                reason: "no addresses".into(),
            });
        }
        self.pool
            .dns
            .lock()
            .expect("dns lock")
            .insert(key, (addrs.clone(), Instant::now()));
        Ok(addrs)
    }
}

fn build_request(
    config: &OriginConfig,
    host: &str,
    path: &str,
    range: Option<(u64, u64)>,
) -> Result<http::Request<Empty<Bytes>>, OriginError> {
    let host_header = if config.port == 80 {
        host.to_string()
    } else {
        format!("{host}:{}", config.port)
    };
    let mut builder = http::Request::get(path)
        .header(HOST, host_header)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(ACCEPT_ENCODING, "identity");
    if let Some((first, last)) = range {
        builder = builder.header(RANGE, format!("bytes={first}-{last}"));
    }
    builder
        .body(Empty::new())
        .map_err(|e| OriginError::Protocol {
            host: host.to_string(),
            reason: format!("cannot build the request: {e}"),
        })
}
