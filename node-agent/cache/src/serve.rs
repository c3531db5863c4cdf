//! The data path: accepts connections and answers GET and HEAD from the
//! cache, fetching missing slices from the origin.
//!
//! A response commits to one version of the object (its identity) when its
//! head is written. Every slice it then sends must belong to that version;
//! if the object changes at the origin mid-response the connection is
//! closed instead (the client sees a short body and retries), so no
//! response ever mixes bytes of two versions.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::{Cache, NoRoom, SliceSource};
use crate::fill::{Fill, FillFailure, PassedResponse, Phase};
use crate::http::{send_simple, Conn, Framing, Head, HeadError, Method, Request};
use crate::key::{resolve_target, ObjectTarget, TargetError};
use crate::metrics::Meters;
use crate::range::{if_range_matches, parse_range, RangeRequest, Selection};
use crate::store::{Version, SLICE_HEADER_BYTES};

/// Connections still busy this long after shutdown are closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A response starts over at most this many times before its head is sent
/// (the object changed under it, or a fetch failed and is retried).
const MAX_RESTARTS: u32 = 3;
/// Fetches of one slice a response tries before giving up on it.
const MAX_FILL_ATTEMPTS: u32 = 3;
/// Longest wait for a free fill slot.
const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// Beyond the origin timeouts, how long a waiter gives a silent fill before
/// it abandons it (the fill's own timers normally fire first).
const WAITER_GRACE: Duration = Duration::from_secs(1);

/// Serves the data path on `listener` until `shutdown` completes; then stops
/// accepting, lets responses in progress finish for up to 5 seconds, and
/// returns. Errors only if the listener itself fails.
pub async fn serve(
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
                    let conn = Conn::new(stream, peer);
                    connections.spawn(connection(cache.clone(), conn, stopped.clone()));
                }
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(errno) => [
            Errno::CONNABORTED,
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::NOMEM,
            Errno::PERM,
            Errno::PROTO,
            Errno::INTR,
            Errno::AGAIN,
        ]
        .contains(&errno),
        None => true,
    }
}

struct ConnectionGauge<'a>(&'a Meters);

impl<'a> ConnectionGauge<'a> {
    fn new(meters: &'a Meters) -> Self {
        meters.active_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(meters)
    }
}

impl Drop for ConnectionGauge<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(cache: Arc<Cache>, mut conn: Conn, mut stopped: watch::Receiver<bool>) {
    let _gauge = ConnectionGauge::new(&cache.meters);
    loop {
        let request = if conn.has_buffered_input() {
            conn.read_request().await
        } else {
            tokio::select! {
                request = conn.read_request() => request,
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        };
        match request {
            Ok(None) | Err(HeadError::Gone) => return,
            Err(HeadError::Refuse(status, why)) => {
                cache.meters.count_status(status);
                let body = format!("{why}\n");
                let _ = send_simple(
                    &mut conn,
                    Framing::CLOSE,
                    status,
                    &[],
                    "text/plain",
                    body.as_bytes(),
                )
                .await;
                return;
            }
            Ok(Some(request)) => {
                let keep_alive = exchange(&cache, &mut conn, &request).await;
                if !keep_alive || *stopped.borrow() {
                    return;
                }
            }
        }
    }
}

/// What one exchange did, for the counters and the access log.
#[derive(Default)]
struct Exchange {
    status: u16,
    target: Option<Arc<ObjectTarget>>,
    hit_bytes: u64,
    miss_bytes: u64,
    /// The whole body went out: the connection can carry another request.
    complete: bool,
    cut: bool,
    stale: bool,
}

/// Why a response ended early.
enum Abort {
    /// The client went away or stopped reading.
    Client,
    /// We closed it: the object changed, a fetch failed for good, or a
    /// cache file was damaged.
    Cut(&'static str),
}

/// Answers one request; returns whether the connection may carry another.
async fn exchange(cache: &Arc<Cache>, conn: &mut Conn, request: &Request) -> bool {
    let started = Instant::now();
    let mut exchange = Exchange::default();
    let outcome = answer(cache, conn, request, &mut exchange).await;
    if let Err(Abort::Cut(_)) = outcome {
        exchange.cut = true;
        cache.meters.count_cut();
    }
    cache.meters.count_status(exchange.status);
    if exchange.stale {
        cache.meters.stale_served.fetch_add(1, Ordering::Relaxed);
    }
    if tracing::enabled!(target: "lastmile_cache::access", tracing::Level::DEBUG) {
        let (host, path) = exchange
            .target
            .as_ref()
            .map_or(("-", request.target.as_str()), |t| {
                (t.host.as_str(), t.origin_path.as_str())
            });
        tracing::debug!(
            target: "lastmile_cache::access",
            client = %conn.peer,
            method = %request.method_text,
            host,
            path,
            range = request.range.as_deref().map(String::from_utf8_lossy).as_deref().unwrap_or("-"),
            status = exchange.status,
            hit_bytes = exchange.hit_bytes,
            miss_bytes = exchange.miss_bytes,
            cut = match &outcome { Err(Abort::Cut(why)) => why, Err(Abort::Client) => "client gone", Ok(()) => "no" },
            stale = exchange.stale,
            ms = started.elapsed().as_millis() as u64,
        );
    }
    outcome.is_ok() && exchange.complete && Framing::of(request).keep_alive
}

/// An answer decided before any byte of the body.
enum Reply {
    Text(u16, String),
    Passed(Arc<PassedResponse>),
    Unsatisfiable(u64),
}

enum Prepared {
    Ready {
        version: Arc<Version>,
        selection: Selection,
        first: Option<SliceSource>,
    },
    Retry(Option<FillFailure>),
    Reply(Reply),
}

async fn answer(
    cache: &Arc<Cache>,
    conn: &mut Conn,
    request: &Request,
    exchange: &mut Exchange,
) -> Result<(), Abort> {
    let config = cache.active();
    let head_only = request.method == Method::Head;
    let refuse = |status: u16, why: &str| Reply::Text(status, why.to_string());
    let early = if request.method == Method::Other {
        Some(refuse(405, "only GET and HEAD"))
    } else if request.has_body || request.conflicting_host {
        Some(refuse(400, "bad request"))
    } else if !config.enabled {
        Some(refuse(503, "cache disabled"))
    } else {
        None
    };
    if let Some(reply) = early {
        return send_reply(conn, request, exchange, reply).await;
    }
    let target = match resolve_target(&config, &request.target, request.host.as_deref()) {
        Ok(target) => Arc::new(target),
        Err(e @ TargetError::NotAllowed(_)) => {
            return send_reply(conn, request, exchange, Reply::Text(403, e.to_string())).await
        }
        Err(e) => {
            return send_reply(conn, request, exchange, Reply::Text(400, e.to_string())).await
        }
    };
    exchange.target = Some(target.clone());
    let range = request
        .range
        .as_deref()
        .map_or(RangeRequest::Whole, parse_range);

    let mut restarts = 0;
    let (version, selection, first) = loop {
        match prepare(cache, &target, range, request, head_only, exchange).await {
            Prepared::Ready {
                version,
                selection,
                first,
            } => break (version, selection, first),
            Prepared::Reply(reply) => return send_reply(conn, request, exchange, reply).await,
            Prepared::Retry(failure) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    let reply = match failure {
                        Some(failure) => failure_reply(&failure),
                        None => refuse(502, "the object keeps changing at the origin"),
                    };
                    return send_reply(conn, request, exchange, reply).await;
                }
            }
        }
    };

    let len = version.len();
    let (status, start, end) = match selection {
        Selection::Whole => (200, 0, len),
        Selection::Partial { start, end } => (206, start, end),
        Selection::Unsatisfiable => {
            return send_reply(conn, request, exchange, Reply::Unsatisfiable(len)).await
        }
    };
    let mut head = Head::new(status);
    head.header("Content-Length", end - start);
    if status == 206 {
        head.header(
            "Content-Range",
            format_args!("bytes {start}-{}/{len}", end - 1),
        );
    }
    head.header("Accept-Ranges", "bytes");
    head.header(
        "Content-Type",
        version
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    if let Some(etag) = &version.identity.etag {
        head.header("ETag", etag);
    }
    if let Some(last_modified) = &version.identity.last_modified {
        head.header("Last-Modified", last_modified);
    }
    let from_disk = matches!(first, Some(SliceSource::Disk(_))) || head_only;
    head.header("X-Cache", if from_disk { "HIT" } else { "MISS" });
    exchange.status = status;
    let body_follows = !head_only && end > start;
    let framing = Framing::of(request);
    let head = head.finish(framing.keep_alive, framing.http10);
    conn.write_head(&head, body_follows)
        .await
        .map_err(|_| Abort::Client)?;
    if body_follows {
        send_body(cache, conn, &target, &version, start, end, first, exchange).await?;
    }
    exchange.complete = true;
    Ok(())
}

/// Finds the version to answer with and readies the first slice, before
/// anything is sent (so that anything going wrong can still be answered
/// with a proper status).
async fn prepare(
    cache: &Arc<Cache>,
    target: &Arc<ObjectTarget>,
    range: RangeRequest,
    request: &Request,
    head_only: bool,
    exchange: &mut Exchange,
) -> Prepared {
    let config = cache.active();
    let mut first_fill: Option<(u64, Arc<Fill>)> = None;
    let version = match cache.object_view(target.hash) {
        Some(view) if view.fresh => view.version,
        Some(view) => {
            let selection = select(range, request, &view.version);
            let first_index = first_slice(&selection, &view.version);
            let fill_will_tell = !head_only
                && first_index.is_some_and(|i| !cache.slice_cached(target.hash, &view.version, i));
            if fill_will_tell {
                view.version
            } else {
                match cache.probe(target, view.version.slice_size).await {
                    Ok(now) if now.identity == view.version.identity => view.version,
                    Ok(now) if head_only => now,
                    Ok(_) => return Prepared::Retry(None),
                    Err(FillFailure::Passed(passed)) if (400..500).contains(&passed.status) => {
                        if matches!(passed.status, 404 | 410) {
                            cache.forget(target.hash);
                        }
                        return Prepared::Reply(Reply::Passed(passed));
                    }
                    Err(failure) => {
                        tracing::debug!(key = %target.key, ?failure, "origin unavailable; serving a stale copy");
                        cache.defer_revalidation(target.hash);
                        exchange.stale = true;
                        view.version
                    }
                }
            }
        }
        None => {
            let known_start = match range {
                RangeRequest::Whole => Some(0),
                RangeRequest::Single(range) => range.known_start(),
            };
            match known_start.filter(|_| !head_only) {
                None => match cache.probe(target, config.slice_size).await {
                    Ok(version) => version,
                    Err(failure) => return failure_prepared(failure),
                },
                Some(start) => {
                    let index = start / config.slice_size;
                    let fill = match cache
                        .fill_slice(target, index, config.slice_size, None)
                        .await
                    {
                        Ok(Some(fill)) => fill,
                        // Stored by another request meanwhile.
                        Ok(None) => return Prepared::Retry(None),
                        Err(no_room) => return Prepared::Reply(no_room_reply(no_room)),
                    };
                    match wait_for_version(cache, &fill).await {
                        Ok(version) => {
                            first_fill = Some((index, fill));
                            version
                        }
                        Err(FillFailure::Unsatisfiable { len }) => {
                            Arc::new(Version::length_only(len, config.slice_size))
                        }
                        Err(failure) => return failure_prepared(failure),
                    }
                }
            }
        }
    };

    let selection = select(range, request, &version);
    let first_index = match first_slice(&selection, &version) {
        Some(index) if !head_only => index,
        _ => {
            return Prepared::Ready {
                version,
                selection,
                first: None,
            }
        }
    };
    let source = match first_fill {
        Some((index, fill)) if index == first_index => SliceSource::Fill(fill),
        _ => match cache.open_slice(target, &version, first_index).await {
            Ok(source) => source,
            Err(no_room) => return Prepared::Reply(no_room_reply(no_room)),
        },
    };
    match source {
        SliceSource::Changed => Prepared::Retry(None),
        SliceSource::Disk(_) => Prepared::Ready {
            version,
            selection,
            first: Some(source),
        },
        SliceSource::Fill(ref fill) => match wait_for_version(cache, fill).await {
            Ok(answered) if answered.same_as(&version) => Prepared::Ready {
                version,
                selection,
                first: Some(source),
            },
            Ok(_) | Err(FillFailure::Unsatisfiable { .. }) => Prepared::Retry(None),
            Err(failure) => failure_prepared(failure),
        },
    }
}

fn select(range: RangeRequest, request: &Request, version: &Version) -> Selection {
    let range = match (&request.if_range, range) {
        (Some(validator), RangeRequest::Single(_))
            if !if_range_matches(
                validator,
                version.identity.etag.as_deref(),
                version.identity.last_modified.as_deref(),
            ) =>
        {
            RangeRequest::Whole
        }
        _ => range,
    };
    range.select(version.len())
}

fn first_slice(selection: &Selection, version: &Version) -> Option<u64> {
    match *selection {
        Selection::Whole if version.len() > 0 => Some(0),
        Selection::Partial { start, .. } => Some(start / version.slice_size),
        _ => None,
    }
}

fn failure_prepared(failure: FillFailure) -> Prepared {
    if failure.retryable() {
        Prepared::Retry(Some(failure))
    } else {
        Prepared::Reply(failure_reply(&failure))
    }
}

fn failure_reply(failure: &FillFailure) -> Reply {
    match failure {
        FillFailure::Origin(e) => Reply::Text(e.client_status(), e.to_string()),
        FillFailure::Abandoned => Reply::Text(504, "the origin stopped sending".into()),
        FillFailure::Passed(passed) => Reply::Passed(passed.clone()),
        FillFailure::Unsatisfiable { len } => Reply::Unsatisfiable(*len),
        FillFailure::Storage(reason) => Reply::Text(503, format!("cache storage failed: {reason}")),
        FillFailure::Unusable(reason) => {
            Reply::Text(502, format!("unusable origin answer: {reason}"))
        }
    }
}

fn no_room_reply(no_room: NoRoom) -> Reply {
    match no_room {
        NoRoom::Full => Reply::Text(503, "cache drives are full of fetches in progress".into()),
        NoRoom::NoWritableDrive => Reply::Text(503, "no writable cache drive".into()),
    }
}

async fn send_reply(
    conn: &mut Conn,
    request: &Request,
    exchange: &mut Exchange,
    reply: Reply,
) -> Result<(), Abort> {
    let framing = Framing::of(request);
    let result = match reply {
        Reply::Text(status, text) => {
            exchange.status = status;
            let body = format!("{text}\n");
            send_simple(
                conn,
                framing,
                status,
                &[],
                "text/plain; charset=utf-8",
                body.as_bytes(),
            )
            .await
        }
        Reply::Unsatisfiable(len) => {
            exchange.status = 416;
            send_simple(
                conn,
                framing,
                416,
                &[("Content-Range", format!("bytes */{len}"))],
                "text/plain; charset=utf-8",
                b"",
            )
            .await
        }
        Reply::Passed(passed) => {
            exchange.status = passed.status;
            let mut head = Head::new(passed.status);
            for (name, value) in &passed.headers {
                head.raw_header(name.as_str(), value.as_bytes());
            }
            head.header("Content-Length", passed.body.len());
            let mut bytes = head.finish(framing.keep_alive, framing.http10);
            if !framing.head_only {
                bytes.extend_from_slice(&passed.body);
            }
            conn.write_all(&bytes).await
        }
    };
    result.map_err(|_| Abort::Client)?;
    exchange.complete = true;
    Ok(())
}

/// Sends bytes `start..end` of the object, slice by slice.
#[allow(clippy::too_many_arguments)]
async fn send_body(
    cache: &Arc<Cache>,
    conn: &mut Conn,
    target: &Arc<ObjectTarget>,
    version: &Arc<Version>,
    start: u64,
    end: u64,
    mut first: Option<SliceSource>,
    exchange: &mut Exchange,
) -> Result<(), Abort> {
    let slice_size = version.slice_size;
    let first_index = start / slice_size;
    let last_index = (end - 1) / slice_size;
    let mut ahead = Readahead::new(cache.active().readahead_slices, first_index + 1);
    for index in first_index..=last_index {
        let slice_start = index * slice_size;
        let mut at = start.max(slice_start) - slice_start;
        let to = end.min(slice_start + slice_size) - slice_start;
        let mut attempts = 1;
        let mut source = match (first.take(), ahead.take(index)) {
            (Some(source), _) => source,
            (None, Some(fill)) => SliceSource::Fill(fill),
            (None, None) => open(cache, target, version, index).await?,
        };
        ahead.extend(cache, target, version, index, last_index);
        loop {
            match source {
                SliceSource::Changed => return Err(Abort::Cut("object changed at the origin")),
                SliceSource::Disk(file) => {
                    conn.hold_partial_segments(true);
                    continue_readahead_at(&file, SLICE_HEADER_BYTES + at);
                    send_file(conn, cache, &file, at, to, true, target, exchange).await?;
                    break;
                }
                SliceSource::Fill(fill) => {
                    conn.hold_partial_segments(false);
                    match stream_fill(cache, conn, &fill, version, &mut at, to, target, exchange)
                        .await
                    {
                        Ok(()) => break,
                        Err(FillEnd::Abort(abort)) => return Err(abort),
                        // The fetch brought another version. If the cache
                        // still holds ours, that was a late answer from
                        // before the object changed: fetch again. Otherwise
                        // the object changed under this response.
                        Err(FillEnd::OtherVersion)
                            if cache.holds_version(target.hash, version)
                                && attempts < MAX_FILL_ATTEMPTS =>
                        {
                            attempts += 1;
                            source = open(cache, target, version, index).await?;
                        }
                        Err(FillEnd::OtherVersion) => {
                            return Err(Abort::Cut("object changed at the origin"))
                        }
                        Err(FillEnd::Failed(failure))
                            if failure.retryable() && attempts < MAX_FILL_ATTEMPTS =>
                        {
                            // Take over: a new fetch of this slice, which
                            // other waiters join; carry on from `at`.
                            attempts += 1;
                            source = open(cache, target, version, index).await?;
                        }
                        Err(FillEnd::Failed(_)) => {
                            return Err(Abort::Cut("the origin fetch failed"))
                        }
                    }
                }
            }
        }
    }
    conn.hold_partial_segments(false);
    Ok(())
}

/// The fetches a response started for the slices after the one it sends,
/// so that a cold download does not wait for a round trip per slice. The
/// response keeps them, so it reads them even when they are not stored.
struct Readahead {
    depth: u64,
    fills: VecDeque<(u64, Arc<Fill>)>,
    /// The first slice not considered yet.
    next: u64,
}

impl Readahead {
    fn new(depth: u64, next: u64) -> Readahead {
        Readahead {
            depth,
            fills: VecDeque::new(),
            next,
        }
    }

    fn take(&mut self, index: u64) -> Option<Arc<Fill>> {
        while self.fills.front().is_some_and(|(i, _)| *i < index) {
            self.fills.pop_front();
        }
        match self.fills.front() {
            Some((i, _)) if *i == index => self.fills.pop_front().map(|(_, fill)| fill),
            _ => None,
        }
    }

    /// Starts fetching what is not on disk up to `depth` slices past
    /// `current`, within the response.
    fn extend(
        &mut self,
        cache: &Arc<Cache>,
        target: &Arc<ObjectTarget>,
        version: &Version,
        current: u64,
        last: u64,
    ) {
        let until = current.saturating_add(self.depth).min(last);
        while self.next <= until {
            if let Some(fill) = cache.prefetch(target, version, self.next) {
                self.fills.push_back((self.next, fill));
            }
            self.next += 1;
        }
    }
}

async fn open(
    cache: &Arc<Cache>,
    target: &Arc<ObjectTarget>,
    version: &Arc<Version>,
    index: u64,
) -> Result<SliceSource, Abort> {
    cache
        .open_slice(target, version, index)
        .await
        .map_err(|_| Abort::Cut("no room on the cache drives"))
}

/// Reads the byte just before `offset`, so that the kernel takes the
/// sendfile from `offset` that follows for a sequential read.
///
/// On a newly opened file, a first read that starts past the first page is
/// taken for a small random one: it brings in just the pages asked for, one
/// 4 KiB folio each, and starts no readahead. Every slice's data starts at
/// its second page (after the header), so slices read back from disk held
/// 126 to 154 folios per MiB where nginx's files, whose reads start at their
/// header, held 18 to 90 (docs/benchmarks.md); more folios are more pieces
/// for every later hit's sendfile to carry. When the page is cached this is
/// a one-byte copy.
fn continue_readahead_at(file: &std::fs::File, offset: u64) {
    use std::os::unix::fs::FileExt;
    let mut byte = [0u8; 1];
    // A failure costs only the readahead; sendfile reports real errors.
    let _ = file.read_at(&mut byte, offset.saturating_sub(1));
}

#[allow(clippy::too_many_arguments)]
async fn send_file(
    conn: &mut Conn,
    cache: &Cache,
    file: &std::fs::File,
    from: u64,
    to: u64,
    from_disk: bool,
    target: &ObjectTarget,
    exchange: &mut Exchange,
) -> Result<(), Abort> {
    let len = to - from;
    match conn
        .send_file(file, SLICE_HEADER_BYTES + from, len, &cache.limiter)
        .await
    {
        Ok(()) => {
            cache.meters.count_served(target.family, from_disk, len);
            if from_disk {
                exchange.hit_bytes += len;
            } else {
                exchange.miss_bytes += len;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            tracing::error!(key = %target.key, "a cache file is shorter than its header says");
            Err(Abort::Cut("damaged cache file"))
        }
        Err(_) => Err(Abort::Client),
    }
}

enum FillEnd {
    Abort(Abort),
    Failed(FillFailure),
    /// The fetch answered with another version than the response's.
    OtherVersion,
}

/// Sends bytes `*at..to` of a slice being fetched, as they arrive.
#[allow(clippy::too_many_arguments)]
async fn stream_fill(
    cache: &Arc<Cache>,
    conn: &mut Conn,
    fill: &Arc<Fill>,
    version: &Version,
    at: &mut u64,
    to: u64,
    target: &ObjectTarget,
    exchange: &mut Exchange,
) -> Result<(), FillEnd> {
    let origin = cache.active().origin.clone();
    let mut progress = fill.progress.subscribe();
    loop {
        let now = progress.borrow_and_update().clone();
        if let Some(answered) = &now.version {
            if !answered.same_as(version) {
                return Err(FillEnd::OtherVersion);
            }
            let available = now.written.min(to);
            if available > *at {
                let file = fill.file().expect("the file exists once bytes are written");
                send_file(conn, cache, file, *at, available, false, target, exchange)
                    .await
                    .map_err(FillEnd::Abort)?;
                *at = available;
            }
            if *at >= to {
                return Ok(());
            }
        }
        let patience = match &now.phase {
            Phase::Done => {
                // Done, yet short of `to`: the slice is shorter than this
                // version says, so it is not this version.
                return Err(FillEnd::Abort(Abort::Cut("slice shorter than expected")));
            }
            Phase::Failed(failure) => return Err(FillEnd::Failed(failure.clone())),
            Phase::Queued => QUEUE_WAIT,
            Phase::Fetching if now.version.is_none() => {
                origin.connect_timeout + origin.response_timeout + WAITER_GRACE
            }
            Phase::Fetching => origin.stall_timeout + WAITER_GRACE,
        };
        if tokio::time::timeout(patience, progress.changed())
            .await
            .is_err()
        {
            cache.abandon_fill(fill);
        }
    }
}

/// Waits until a fill knows the object's version (the origin answered).
async fn wait_for_version(
    cache: &Arc<Cache>,
    fill: &Arc<Fill>,
) -> Result<Arc<Version>, FillFailure> {
    let origin = cache.active().origin.clone();
    let mut progress = fill.progress.subscribe();
    loop {
        let (phase, version) = {
            let now = progress.borrow_and_update();
            (now.phase.clone(), now.version.clone())
        };
        if let Some(version) = version {
            return Ok(version);
        }
        let patience = match phase {
            Phase::Failed(failure) => return Err(failure),
            Phase::Done => {
                return Err(FillFailure::Unusable(
                    "fetch ended without an answer".into(),
                ))
            }
            Phase::Queued => QUEUE_WAIT,
            Phase::Fetching => origin.connect_timeout + origin.response_timeout + WAITER_GRACE,
        };
        if tokio::time::timeout(patience, progress.changed())
            .await
            .is_err()
        {
            cache.abandon_fill(fill);
        }
    }
}
