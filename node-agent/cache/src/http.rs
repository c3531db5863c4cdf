//! The server side of HTTP/1.1, by hand around httparse: request heads in,
//! response heads out, bodies sent from files with sendfile(2). hyper's body
//! model has no way to hand a file descriptor to the kernel; cache hits are
//! most of the bytes a node sends, and sendfile is what lets them match nginx
//! (measurements in docs/benchmarks.md).

use std::cell::RefCell;
use std::fmt::Display;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::net::SendFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::limiter::EgressLimiter;

/// A keep-alive connection may sit idle this long between requests.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// A request head must arrive within this once it has started.
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// A client that accepts no bytes for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// Largest single sendfile(2) call; the kernel may send less.
const MAX_SENDFILE: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Other,
}

#[derive(Debug)]
pub(crate) struct Request {
    pub method: Method,
    pub method_text: String,
    pub target: String,
    pub http10: bool,
    pub host: Option<String>,
    pub range: Option<Vec<u8>>,
    pub if_range: Option<Vec<u8>>,
    pub keep_alive: bool,
    pub has_body: bool,
    /// Duplicate Host headers (a request RFC 9112 says to refuse).
    pub conflicting_host: bool,
}

#[derive(Debug)]
pub(crate) enum HeadError {
    /// The connection ended or failed; nothing to answer.
    Gone,
    /// Answer with this status and close.
    Refuse(u16, &'static str),
}

pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub peer: SocketAddr,
    /// TCP_CORK is on: partial segments wait for more bytes.
    holding_partial_segments: bool,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
            peer,
            holding_partial_segments: false,
        }
    }

    /// Holds back partial segments (TCP_CORK) while a body streams from
    /// disk, or sends what is held at once.
    ///
    /// With TCP_NODELAY alone, each time the client's receive window ends
    /// inside a segment the kernel sends the sliver up to the window's edge
    /// as a segment of its own. Over loopback, where the window moves in
    /// 64 KiB steps and a segment carries 65,483 bytes, that made about five
    /// extra 53-byte segments per 1 MiB response, each a full trip through
    /// both TCP stacks, where nginx, which corks the same way
    /// (`tcp_nopush`), sends none; holding them back saved a few percent of
    /// CPU per GB (docs/benchmarks.md).
    ///
    /// Only for bytes that are all at hand: a fetch's bytes trickle in, and
    /// holding them would delay its waiters.
    pub(crate) fn hold_partial_segments(&mut self, hold: bool) {
        if self.holding_partial_segments != hold {
            // A failure only loses the saving; the bytes still go out.
            let _ = rustix::net::sockopt::set_tcp_cork(&self.stream, hold);
            self.holding_partial_segments = hold;
        }
    }

    /// Whether bytes of a next request are already here (pipelining).
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Waits for the next request: `Ok(None)` when the client closed the
    /// connection (or stayed idle too long) between requests.
    pub(crate) async fn read_request(&mut self) -> Result<Option<Request>, HeadError> {
        // Held bytes would wait for the kernel's cork timer (200 ms) while
        // the client waits for them to ask again.
        debug_assert!(
            !self.holding_partial_segments,
            "a response ended with bytes held back"
        );
        if self.buf.is_empty() {
            match timeout(KEEPALIVE_IDLE, self.fill_buf()).await {
                Err(_) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
        loop {
            if let Some(request) = self.parse()? {
                return Ok(Some(request));
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(HeadError::Refuse(431, "request head too large"));
            }
            match tokio::time::timeout_at(deadline, self.fill_buf()).await {
                Err(_) => return Err(HeadError::Refuse(408, "request head too slow")),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(HeadError::Gone),
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn fill_buf(&mut self) -> io::Result<usize> {
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let result = self.stream.read(&mut self.buf[len..]).await;
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(len + n);
        result
    }

    fn parse(&mut self) -> Result<Option<Request>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let consumed = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(n)) => n,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::Refuse(431, "too many header fields"))
            }
            Err(_) => return Err(HeadError::Refuse(400, "malformed request head")),
        };
        let method_text = parsed.method.unwrap_or("").to_string();
        let method = match method_text.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        };
        let http10 = parsed.version == Some(0);
        let mut request = Request {
            method,
            method_text,
            target: parsed.path.unwrap_or("").to_string(),
            http10,
            host: None,
            range: None,
            if_range: None,
            keep_alive: !http10,
            has_body: false,
            conflicting_host: false,
        };
        let mut ranges = 0;
        for header in parsed.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                if request.host.is_some() {
                    request.conflicting_host = true;
                }
                request.host = Some(String::from_utf8_lossy(header.value).trim().to_string());
            } else if name.eq_ignore_ascii_case("range") {
                ranges += 1;
                request.range = Some(header.value.to_vec());
            } else if name.eq_ignore_ascii_case("if-range") {
                request.if_range = Some(header.value.to_vec());
            } else if name.eq_ignore_ascii_case("connection") {
                for token in String::from_utf8_lossy(header.value).split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        request.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                        request.keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                request.has_body = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                let value = String::from_utf8_lossy(header.value);
                if value.trim() != "0" {
                    request.has_body = true;
                }
            }
        }
        if ranges > 1 {
            // Several Range fields: ignored, like several ranges in one.
            request.range = None;
        }
        self.buf.drain(..consumed);
        Ok(Some(request))
    }

    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        timeout(SEND_TIMEOUT, self.stream.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))?
    }

    /// Writes a response head; with `body_follows` the kernel holds it back
    /// (MSG_MORE) to leave in the same packet as the start of the body.
    pub(crate) async fn write_head(&mut self, head: &[u8], body_follows: bool) -> io::Result<()> {
        if !body_follows {
            return self.write_all(head).await;
        }
        let stream = &self.stream;
        let mut sent = 0;
        while sent < head.len() {
            let n = timeout(
                SEND_TIMEOUT,
                stream.async_io(Interest::WRITABLE, || {
                    rustix::net::send(stream, &head[sent..], SendFlags::MORE)
                        .map_err(io::Error::from)
                }),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
            sent += n;
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` with sendfile(2), drawing
    /// from the egress limit.
    pub(crate) async fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        limiter: &EgressLimiter,
    ) -> io::Result<()> {
        let stream = &self.stream;
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let turn_end = at + limiter.grant(end - at).await;
            while at < turn_end {
                let want = (turn_end - at).min(MAX_SENDFILE) as usize;
                let n = timeout(
                    SEND_TIMEOUT,
                    stream.async_io(Interest::WRITABLE, || {
                        rustix::fs::sendfile(stream, file, Some(&mut at), want)
                            .map_err(io::Error::from)
                    }),
                )
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "cache file shorter than expected",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Builds a response head.
pub(crate) struct Head {
    buf: Vec<u8>,
}

impl Head {
    pub(crate) fn new(status: u16) -> Head {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(status.to_string().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(reason(status).as_bytes());
        buf.extend_from_slice(b"\r\nServer: lastmile-cache\r\nDate: ");
        with_http_date(|date| buf.extend_from_slice(date.as_bytes()));
        buf.extend_from_slice(b"\r\n");
        Head { buf }
    }

    pub(crate) fn header(&mut self, name: &str, value: impl Display) -> &mut Head {
        use std::io::Write as _;
        let _ = write!(self.buf, "{name}: {value}\r\n");
        self
    }

    pub(crate) fn raw_header(&mut self, name: &str, value: &[u8]) -> &mut Head {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    pub(crate) fn finish(mut self, keep_alive: bool, http10: bool) -> Vec<u8> {
        if !keep_alive {
            self.buf.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            self.buf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

fn with_http_date(f: impl FnOnce(&str)) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        f(&cached.1);
    });
}

/// How an answer to a request is framed: with or without its body, and
/// whether the connection stays open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub head_only: bool,
    pub keep_alive: bool,
    pub http10: bool,
}

impl Framing {
    /// A full answer, then the connection closes.
    pub(crate) const CLOSE: Framing = Framing {
        head_only: false,
        keep_alive: false,
        http10: false,
    };

    pub(crate) fn of(request: &Request) -> Framing {
        Framing {
            head_only: request.method == Method::Head,
            // A body we do not read would be taken for the next request.
            keep_alive: request.keep_alive && !request.has_body,
            http10: request.http10,
        }
    }
}

/// A small complete response (errors, admin pages).
pub(crate) async fn send_simple(
    conn: &mut Conn,
    framing: Framing,
    status: u16,
    extra: &[(&str, String)],
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let mut head = Head::new(status);
    head.header("Content-Type", content_type)
        .header("Content-Length", body.len());
    for (name, value) in extra {
        head.header(name, value);
    }
    let mut bytes = head.finish(framing.keep_alive, framing.http10);
    if !framing.head_only {
        bytes.extend_from_slice(body);
    }
    conn.write_all(&bytes).await
}
