//! Fetching one slice from the origin into a temporary file that every
//! client wanting the slice reads while it grows.
//!
//! A fill runs as its own task, so a client that goes away does not stop the
//! fetch others are waiting for, and a slow client does not slow it down.
//! Progress (the object's version once the origin answered, bytes written,
//! the outcome) is published on a `watch` channel; waiters send the bytes
//! written so far straight from the temporary file (sendfile), so they get
//! bytes as they arrive and nothing is buffered per client.
//!
//! A fill that fails or stalls is taken over: the waiter that notices
//! (its own wait timed out, or the fill reported a transport failure) starts
//! a new fill of the slice, which the other waiters join; each waiter resumes
//! from the byte it had reached.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION, RETRY_AFTER,
};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::cache::{Cache, SliceId};
use crate::key::ObjectTarget;
use crate::origin::{OriginError, OriginResponse};
use crate::store::{
    DriveShared, Identity, SliceHeader, Version, MAX_VALIDATOR_BYTES, SLICE_HEADER_BYTES,
};

/// Waiters hear of new bytes once this many have arrived...
const ANNOUNCE_BYTES: u64 = 64 * 1024;
/// ...or this long after the last news, whichever comes first.
const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(10);
/// Error bodies from the origin are passed on up to this size.
const MAX_PASSED_BODY: usize = 64 * 1024;

/// An origin answer that is not content: passed to the client as it came
/// (status, a few headers, body up to 64 KiB), never stored.
#[derive(Debug)]
pub(crate) struct PassedResponse {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
pub(crate) enum FillFailure {
    /// Could not reach the origin or it broke off: worth another try.
    Origin(OriginError),
    /// A waiter saw no progress for too long and abandoned the fill.
    Abandoned,
    /// The origin answered with an error (or something that is not content).
    Passed(Arc<PassedResponse>),
    /// The slice starts past the end of the object, which has `len` bytes.
    Unsatisfiable { len: u64 },
    /// The drive could not take the slice.
    Storage(String),
    /// The origin answered in a way the cache cannot use.
    Unusable(String),
}

impl FillFailure {
    /// A fetch that broke off or stalled is worth another (which is how a
    /// waiter takes over); an origin that cannot be reached or does not
    /// answer in time is not: the client hears so at once.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            FillFailure::Origin(e) => matches!(
                e,
                OriginError::Stalled { .. } | OriginError::Protocol { .. }
            ),
            FillFailure::Abandoned => true,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Waiting for a fill slot (`max_concurrent_fills`).
    Queued,
    Fetching,
    Done,
    Failed(FillFailure),
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub phase: Phase,
    /// Known once the origin answered.
    pub version: Option<Arc<Version>>,
    /// Data bytes of this slice in that version.
    pub data_len: u64,
    /// Data bytes written to the file so far (readable by waiters).
    pub written: u64,
}

pub(crate) struct Fill {
    pub id: SliceId,
    pub target: Arc<ObjectTarget>,
    pub slice_size: u64,
    pub drive: Arc<DriveShared>,
    /// Quota bytes held for this fill until it is published or dropped.
    pub reservation: u64,
    pub tmp_path: PathBuf,
    file: OnceLock<File>,
    pub progress: watch::Sender<Progress>,
    /// Deletion of the slices evicted to make room, which must finish first.
    evictions: Mutex<Option<JoinHandle<()>>>,
    task: Mutex<Option<AbortHandle>>,
    settled: AtomicBool,
    pub(crate) published: AtomicBool,
}

/// When an origin was asked and when it answered (wall clock, ns). An
/// answer with another identity than the cached one replaces it only if its
/// request left after the cached identity was seen: requests in flight
/// while an object changes come back in any order, and the older answers
/// among them must not win.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation {
    pub requested_at_ns: u64,
    pub answered_at_ns: u64,
}

/// What a finished fetch hands to [`Cache::complete_fill`].
pub(crate) struct Fetched {
    pub version: Arc<Version>,
    pub seen: Observation,
    pub storable: bool,
    pub file_len: u64,
    /// From the origin's Cache-Control, when it said.
    pub fresh_for: Option<Duration>,
}

impl Fill {
    pub(crate) fn new(
        id: SliceId,
        target: Arc<ObjectTarget>,
        slice_size: u64,
        drive: Arc<DriveShared>,
        reservation: u64,
        tmp_path: PathBuf,
        evictions: Option<JoinHandle<()>>,
    ) -> Fill {
        let (progress, _) = watch::channel(Progress {
            phase: Phase::Queued,
            version: None,
            data_len: 0,
            written: 0,
        });
        Fill {
            id,
            target,
            slice_size,
            drive,
            reservation,
            tmp_path,
            file: OnceLock::new(),
            progress,
            evictions: Mutex::new(evictions),
            task: Mutex::new(None),
            settled: AtomicBool::new(false),
            published: AtomicBool::new(false),
        }
    }

    /// The temporary file, once the origin has answered.
    pub(crate) fn file(&self) -> Option<&File> {
        self.file.get()
    }

    pub(crate) fn set_task(&self, handle: AbortHandle) {
        *self.task.lock().expect("fill task lock") = Some(handle);
    }

    pub(crate) fn abort_task(&self) {
        if let Some(handle) = self.task.lock().expect("fill task lock").take() {
            handle.abort();
        }
    }

    /// Only the first of completion and failure takes effect.
    pub(crate) fn settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn has_failed(&self) -> bool {
        matches!(self.progress.borrow().phase, Phase::Failed(_))
    }

    /// The version the origin answered with, once it has.
    pub(crate) fn version(&self) -> Option<Arc<Version>> {
        self.progress.borrow().version.clone()
    }

    fn slice_start(&self) -> u64 {
        self.id.index * self.slice_size
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.published.load(Ordering::Acquire) {
            if self.file.get().is_some() {
                let _ = std::fs::remove_file(&self.tmp_path);
            }
            self.drive
                .reserved
                .fetch_sub(self.reservation, Ordering::AcqRel);
        }
    }
}

/// The body of a fill task.
pub(crate) async fn run_fill(cache: Arc<Cache>, fill: Arc<Fill>) {
    let permit = cache.fill_permit().await;
    fill.progress.send_modify(|p| {
        if matches!(p.phase, Phase::Queued) {
            p.phase = Phase::Fetching;
        }
    });
    let result = fetch_slice(&cache, &fill).await;
    drop(permit);
    match result {
        Ok(fetched) => cache.complete_fill(&fill, fetched),
        Err(failure) => {
            if let FillFailure::Storage(reason) = &failure {
                cache.drive_failed(&fill.drive, reason);
            }
            cache.fail_fill(&fill, failure);
        }
    }
}

async fn fetch_slice(cache: &Arc<Cache>, fill: &Arc<Fill>) -> Result<Fetched, FillFailure> {
    let evictions = fill.evictions.lock().expect("evictions lock").take();
    if let Some(evictions) = evictions {
        let _ = evictions.await;
    }
    let config = cache.active();
    let start = fill.slice_start();
    // Always the whole slice: the origin clamps the end to the object's
    // length, and the answer tells us that length.
    let last = start + fill.slice_size - 1;
    let requested_at_ns = now_ns();
    let response = cache
        .origin_get(&fill.target, Some((start, last)))
        .await
        .map_err(FillFailure::Origin)?;
    let seen = Observation {
        requested_at_ns,
        answered_at_ns: now_ns(),
    };
    let (answer, mut response) = interpret(response, start, fill.slice_size).await?;
    let version = Arc::new(answer.version);
    if start >= version.len() {
        return Err(FillFailure::Unsatisfiable { len: version.len() });
    }
    let data_len = version.slice_len(fill.id.index);
    if let Some(last_sent) = answer.last_byte {
        if last_sent != start + data_len - 1 {
            return Err(FillFailure::Unusable(format!(
                "asked for bytes {start}-{last}, got {start}-{last_sent} of {}",
                version.len()
            )));
        }
    }
    cache.observe(&fill.target, &version, seen, answer.freshness);

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&fill.tmp_path)
        .map_err(|e| FillFailure::Storage(format!("cannot create a temporary file: {e}")))?;
    let file = fill.file.get_or_init(|| file);
    fill.progress.send_modify(|p| {
        p.version = Some(version.clone());
        p.data_len = data_len;
    });

    let stall = config.origin.stall_timeout;
    let mut skip = answer.skip;
    let mut received = 0u64;
    let mut data_file = PieceWriter::new(file, SLICE_HEADER_BYTES);
    let mut announced = 0u64;
    let mut announced_at = Instant::now();
    let mut crc = crc32fast::Hasher::new();
    let storage_failure = |e: io::Error| FillFailure::Storage(format!("cannot write a slice: {e}"));
    while received < data_len {
        let Some(mut chunk) = response.chunk(stall).await.map_err(FillFailure::Origin)? else {
            return Err(FillFailure::Origin(OriginError::Protocol {
                host: fill.target.host.clone(),
                reason: format!("body ended after {received} of {data_len} bytes"),
            }));
        };
        cache.count_origin_bytes(chunk.len() as u64);
        let skipped = skip.min(chunk.len() as u64);
        skip -= skipped;
        chunk.advance(skipped as usize);
        chunk.truncate(chunk.len().min((data_len - received) as usize));
        if chunk.is_empty() {
            continue;
        }
        crc.update(&chunk);
        received += chunk.len() as u64;
        data_file.push(chunk).map_err(storage_failure)?;
        // Waiters hear of everything received within the interval.
        let due = announced_at.elapsed() >= ANNOUNCE_INTERVAL;
        if due || received == data_len {
            data_file.flush().map_err(storage_failure)?;
        }
        // Waiters are woken per batch, not per network read: every wake-up
        // costs each of them a sendfile call.
        let written = data_file.at - SLICE_HEADER_BYTES;
        if written - announced >= ANNOUNCE_BYTES || written == data_len || due {
            fill.progress.send_modify(|p| p.written = written);
            announced = written;
            announced_at = Instant::now();
        }
    }
    if answer.last_byte.is_some() {
        // A 206 of exactly the slice: reading its (empty) end hands the
        // connection back to the pool. A 200 is cut off by dropping it.
        let _ = response.chunk(stall).await;
    }
    let header = SliceHeader {
        key: fill.id.key,
        index: fill.id.index,
        identity: version.identity.clone(),
        slice_size: version.slice_size,
        content_type: version.content_type.clone(),
        data_len,
        data_crc: crc.finalize(),
        observed_at_ns: seen.answered_at_ns,
        key_text: fill.target.key.clone(),
    };
    file.write_all_at(&header.encode(), 0)
        .map_err(|e| FillFailure::Storage(format!("cannot write a slice: {e}")))?;
    Ok(Fetched {
        version,
        seen,
        storable: answer.storable,
        file_len: SLICE_HEADER_BYTES + data_len,
        fresh_for: answer.freshness,
    })
}

/// Writes a slice's data as it arrives, in pieces that each end on a
/// power-of-two boundary of the file offset, up to [`MAX_PIECE`].
///
/// The kernel sizes a new page-cache folio by the length of the write that
/// creates it, within the alignment of its offset. Written as the network
/// delivered it (often 16 KiB at a time, and out of step with the 4 KiB
/// slice header), a slice stayed mostly in 4 to 16 KiB folios: 50 to 170
/// per MiB, depending on the origin's connection, each a separate piece for
/// every hit's sendfile to take through the socket. In 64 KiB folios (about
/// 21 per MiB) the same warm hits cost 5 to 10% less CPU
/// (docs/benchmarks.md). Bytes wait here only until their piece is whole,
/// so waiters hear of them on the same 64 KiB rhythm as before.
struct PieceWriter<'a> {
    file: &'a File,
    /// The file offset of the first byte not written yet.
    at: u64,
    /// Received bytes not written yet, as the network delivered them (no
    /// copy: `pwritev` takes them where they are).
    pending: VecDeque<Bytes>,
    pending_len: u64,
}

/// The largest piece [`PieceWriter`] writes at once, and more than it ever
/// keeps between two pushes.
const MAX_PIECE: u64 = 64 * 1024;
const PAGE: u64 = 4096;
/// The most buffers one `pwritev` takes (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;

impl<'a> PieceWriter<'a> {
    fn new(file: &'a File, at: u64) -> PieceWriter<'a> {
        PieceWriter {
            file,
            at,
            pending: VecDeque::new(),
            pending_len: 0,
        }
    }

    /// Takes received bytes and writes every piece they complete.
    fn push(&mut self, bytes: Bytes) -> io::Result<()> {
        self.pending_len += bytes.len() as u64;
        self.pending.push_back(bytes);
        loop {
            let end = piece_end(self.at);
            if self.at + self.pending_len < end {
                return Ok(());
            }
            self.write_front(end - self.at)?;
        }
    }

    /// Writes everything held, whole piece or not.
    fn flush(&mut self) -> io::Result<()> {
        self.write_front(self.pending_len)
    }

    fn write_front(&mut self, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let mut left = len;
            let slices: Vec<io::IoSlice<'_>> = self
                .pending
                .iter()
                .take(MAX_IOVECS)
                .map_while(|bytes| {
                    (left > 0).then(|| {
                        let take = left.min(bytes.len() as u64) as usize;
                        left -= take as u64;
                        io::IoSlice::new(&bytes[..take])
                    })
                })
                .collect();
            let n = match rustix::io::pwritev(self.file, &slices, self.at) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n as u64,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            self.at += n;
            self.pending_len -= n;
            len -= n;
            let mut consumed = n as usize;
            while consumed > 0 {
                let front = self
                    .pending
                    .front_mut()
                    .expect("written bytes were pending");
                if front.len() <= consumed {
                    consumed -= front.len();
                    self.pending.pop_front();
                } else {
                    front.advance(consumed);
                    consumed = 0;
                }
            }
        }
        Ok(())
    }
}

/// Where the piece that starts at file offset `at` ends: at the next
/// multiple of the largest power of two that divides `at`, kept between a
/// page and [`MAX_PIECE`]. From the slice header's end (4 KiB) that gives
/// pieces of 4, 8, 16 and 32 KiB, then 64 KiB each; after an early write
/// ended off a page boundary, the rest of that page first.
fn piece_end(at: u64) -> u64 {
    let alignment = 1u64.checked_shl(at.trailing_zeros()).unwrap_or(MAX_PIECE);
    let step = alignment.clamp(PAGE, MAX_PIECE);
    (at / step + 1) * step
}

/// What an origin's answer to a range request says about the object.
pub(crate) struct Answer {
    pub version: Version,
    pub freshness: Option<Duration>,
    /// False for `Cache-Control: no-store` / `private`, and for objects
    /// without a validator.
    pub storable: bool,
    /// Bytes to discard before the asked range (an origin that ignored
    /// Range and sent the whole object).
    pub skip: u64,
    /// Last byte of the answer when it was a 206.
    pub last_byte: Option<u64>,
}

/// Reads the status and headers of an answer to `Range: bytes=start-...`.
/// Non-content answers become [`FillFailure::Passed`] (with their body read,
/// up to a limit) or [`FillFailure::Unsatisfiable`].
pub(crate) async fn interpret(
    mut response: OriginResponse,
    start: u64,
    slice_size: u64,
) -> Result<(Answer, OriginResponse), FillFailure> {
    let (len, skip, last_byte) = match response.status {
        206 => match response.header(CONTENT_RANGE).and_then(parse_content_range) {
            Some(ContentRange::Bytes {
                first,
                last,
                total: Some(total),
            }) if first == start && last < total => (total, 0, Some(last)),
            _ => {
                return Err(FillFailure::Unusable(format!(
                    "206 with Content-Range {:?} for a range starting at {start}",
                    response.header(CONTENT_RANGE)
                )))
            }
        },
        200 => match response
            .header(CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(len) => (len, start, None),
            None => {
                return Err(FillFailure::Unusable(
                    "200 without Content-Length: the object's length is unknown".into(),
                ))
            }
        },
        416 => {
            if let Some(ContentRange::Unsatisfied { total }) =
                response.header(CONTENT_RANGE).and_then(parse_content_range)
            {
                return Err(FillFailure::Unsatisfiable { len: total });
            }
            return Err(FillFailure::Passed(Arc::new(capture(&mut response).await)));
        }
        _ => return Err(FillFailure::Passed(Arc::new(capture(&mut response).await))),
    };
    // We ask for identity; an encoded body's bytes are not the object's.
    if let Some(encoding) = response.header(CONTENT_ENCODING) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Err(FillFailure::Unusable(format!(
                "the origin sent Content-Encoding {encoding:?}"
            )));
        }
    }
    let text = |name| {
        response
            .header(name)
            .filter(|v| v.len() <= MAX_VALIDATOR_BYTES)
            .map(str::to_string)
    };
    let identity = Identity {
        len,
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
    };
    let cache_control = CacheControl::parse(response.header(CACHE_CONTROL).unwrap_or(""));
    let answer = Answer {
        storable: identity.has_validator() && !cache_control.no_store,
        version: Version::new(identity, slice_size, text(CONTENT_TYPE)),
        freshness: cache_control.freshness,
        skip,
        last_byte,
    };
    Ok((answer, response))
}

async fn capture(response: &mut OriginResponse) -> PassedResponse {
    let mut headers = Vec::new();
    for name in [CONTENT_TYPE, LOCATION, RETRY_AFTER, CACHE_CONTROL] {
        if let Some(value) = response.headers.get(&name) {
            headers.push((name, value.clone()));
        }
    }
    let mut body = BytesMut::new();
    while body.len() < MAX_PASSED_BODY {
        match response.chunk(Duration::from_secs(5)).await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(MAX_PASSED_BODY - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            _ => break,
        }
    }
    PassedResponse {
        status: response.status,
        headers,
        body: body.freeze(),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ContentRange {
    Bytes {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    Unsatisfied {
        total: u64,
    },
}

pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim();
    if range.trim() == "*" {
        return Some(ContentRange::Unsatisfied {
            total: total.parse().ok()?,
        });
    }
    let (first, last) = range.trim().split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    if last < first {
        return None;
    }
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some(ContentRange::Bytes { first, last, total })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct CacheControl {
    no_store: bool,
    freshness: Option<Duration>,
}

impl CacheControl {
    fn parse(value: &str) -> CacheControl {
        let mut result = CacheControl::default();
        let mut max_age = None;
        let mut shared_max_age = None;
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, argument) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let seconds = || argument.and_then(|a| a.parse::<u64>().ok());
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("private") {
                result.no_store = true;
            } else if name.eq_ignore_ascii_case("no-cache") {
                max_age = Some(0);
            } else if name.eq_ignore_ascii_case("max-age") {
                max_age = max_age.or(seconds());
            } else if name.eq_ignore_ascii_case("s-maxage") {
                shared_max_age = seconds();
            }
        }
        result.freshness = shared_max_age.or(max_age).map(Duration::from_secs);
        result
    }
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_on_power_of_two_boundaries_up_to_64_kib() {
        let mut ends = Vec::new();
        let mut at = SLICE_HEADER_BYTES;
        while at < SLICE_HEADER_BYTES + 1024 * 1024 {
            at = piece_end(at);
            ends.push(at / 1024);
        }
        assert_eq!(&ends[..6], &[8, 16, 32, 64, 128, 192]);
        assert!(ends.windows(2).skip(3).all(|w| w[1] - w[0] == 64));
        // After a write that ended off a page, the rest of that page first.
        assert_eq!(piece_end(8192 + 100), 12288);
        assert_eq!(piece_end(0), MAX_PIECE);
    }

    #[test]
    fn a_piece_writer_writes_every_byte_where_it_belongs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..20 {
            let len = rng.gen_range(1..600_000);
            let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("slice");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            let mut writer = PieceWriter::new(&file, SLICE_HEADER_BYTES);
            let mut sent = 0;
            while sent < len {
                // Network reads of any size, down to single bytes, with the
                // flushes a slow origin's interval forces now and then.
                let max = if round % 4 == 0 { 8 } else { 70_000 };
                let n = rng.gen_range(1..=max).min(len - sent);
                writer
                    .push(Bytes::copy_from_slice(&data[sent..sent + n]))
                    .unwrap();
                sent += n;
                if rng.gen_ratio(1, 20) {
                    writer.flush().unwrap();
                    assert_eq!(writer.at, SLICE_HEADER_BYTES + sent as u64);
                }
                assert!(
                    writer.pending_len < MAX_PIECE,
                    "holds {} bytes",
                    writer.pending_len
                );
            }
            writer.flush().unwrap();
            assert_eq!(writer.at, SLICE_HEADER_BYTES + len as u64);
            let written = std::fs::read(&path).unwrap();
            assert_eq!(written.len() as u64, SLICE_HEADER_BYTES + len as u64);
            assert!(
                written[SLICE_HEADER_BYTES as usize..] == data[..],
                "round {round}"
            );
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some(ContentRange::Bytes {
                first: 0,
                last: 9,
                total: Some(100)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange::Bytes {
                first: 5,
                last: 9,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */100"),
            Some(ContentRange::Unsatisfied { total: 100 })
        );
        assert_eq!(parse_content_range("bytes 9-5/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn cache_control() {
        assert_eq!(
            CacheControl::parse("public, max-age=60"),
            CacheControl {
                no_store: false,
                freshness: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            CacheControl::parse("max-age=60, s-maxage=\"600\""),
            CacheControl {
                no_store: false,
                freshness: Some(Duration::from_secs(600))
            }
        );
        assert!(CacheControl::parse("Private").no_store);
        assert_eq!(
            CacheControl::parse("no-cache").freshness,
            Some(Duration::ZERO)
        );
        assert_eq!(CacheControl::parse("").freshness, None);
    }
}
