//! Test fixtures: an origin server whose answers the tests control (ETag
//! changes, stalls, broken connections, errors) and which counts what it is
//! asked; a raw HTTP/1.1 client that shows exactly what came back (including
//! a cut body); and a cache node started in-process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lastmile_cache::{Cache, CacheConfig, DriveConfig};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const ORIGIN_HOST: &str = "origin.test";
/// Slice size used by most tests: small, so objects of a few slices are small.
pub const SLICE: u64 = 16 * 1024;

/// Deterministic, non-repeating test content.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

#[derive(Clone, Debug)]
pub struct OriginObject {
    pub body: Arc<Vec<u8>>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
}

impl OriginObject {
    pub fn new(body: Vec<u8>, etag: &str) -> OriginObject {
        OriginObject {
            body: Arc::new(body),
            etag: Some(etag.to_string()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
            cache_control: None,
        }
    }
}

/// How the origin misbehaves for one path.
#[derive(Clone, Debug, Default)]
pub struct Behavior {
    /// Close the connection after this many body bytes, for the next N answers.
    pub break_after: Option<(usize, u32)>,
    /// Stop sending (but keep the connection) after this many body bytes,
    /// for the next N answers.
    pub stall_after: Option<(usize, u32)>,
    /// Wait before answering.
    pub delay: Duration,
    /// Answer with this status and body instead.
    pub error: Option<(u16, String)>,
    /// Answer 200 with the whole object whatever the Range.
    pub ignore_range: bool,
    /// After this many answers, the object becomes the given one.
    pub replace_after: Option<(u32, OriginObject)>,
    /// Send bodies in pieces of 4 KiB with this pause between them.
    pub trickle: Option<Duration>,
    /// One more header line in content answers.
    pub extra_header: Option<String>,
    /// These answers (numbered from 1 per path) are held back this long,
    /// with the object as it was when the request arrived.
    pub late_answers: (Vec<u32>, Duration),
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
pub struct OriginState {
    objects: Mutex<HashMap<String, OriginObject>>,
    behaviors: Mutex<HashMap<String, Behavior>>,
    answers: Mutex<HashMap<String, u32>>,
    pub log: Mutex<Vec<Logged>>,
    pub body_bytes: AtomicU64,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<OriginState>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start() -> Origin {
        Origin::start_on("127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    /// Starts (again) on a given address with given state: lets a test
    /// take the origin down and bring it back.
    pub async fn start_on(addr: SocketAddr, state: Arc<OriginState>) -> Origin {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(origin_connection(stream, served.clone()));
            }
        });
        Origin { addr, state, task }
    }

    pub fn put(&self, path: &str, object: OriginObject) {
        self.state
            .objects
            .lock()
            .unwrap()
            .insert(path.to_string(), object);
    }

    pub fn remove(&self, path: &str) {
        self.state.objects.lock().unwrap().remove(path);
    }

    pub fn behave(&self, path: &str, behavior: Behavior) {
        self.state
            .behaviors
            .lock()
            .unwrap()
            .insert(path.to_string(), behavior);
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }
}

async fn origin_connection(mut stream: TcpStream, state: Arc<OriginState>) {
    let mut buf = Vec::new();
    loop {
        let (path, range, consumed) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = request.parse(&buf) {
                let path = request.path.unwrap().to_string();
                let range = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("range"))
                    .map(|h| String::from_utf8_lossy(h.value).to_string());
                break (path, range, n);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..consumed);
        if !answer(&mut stream, &state, path, range).await {
            return;
        }
    }
}

/// Returns whether the connection stays usable.
async fn answer(
    stream: &mut TcpStream,
    state: &OriginState,
    path: String,
    range: Option<String>,
) -> bool {
    state.log.lock().unwrap().push(Logged {
        path: path.clone(),
        range: range.clone(),
    });
    let plain_path = path.split('?').next().unwrap().to_string();
    let behavior = state
        .behaviors
        .lock()
        .unwrap()
        .get(&plain_path)
        .cloned()
        .unwrap_or_default();
    let answers = {
        let mut answers = state.answers.lock().unwrap();
        let n = answers.entry(plain_path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if let Some((after, replacement)) = &behavior.replace_after {
        if answers > *after {
            state
                .objects
                .lock()
                .unwrap()
                .insert(plain_path.clone(), replacement.clone());
        }
    }
    // The object as it is when the request arrives, whatever happens while
    // the answer is held back.
    let object = state.objects.lock().unwrap().get(&plain_path).cloned();
    if !behavior.delay.is_zero() {
        tokio::time::sleep(behavior.delay).await;
    }
    if behavior.late_answers.0.contains(&answers) {
        tokio::time::sleep(behavior.late_answers.1).await;
    }
    if let Some((status, body)) = &behavior.error {
        let head = format!(
            "HTTP/1.1 {status} Oops\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        return stream.write_all(head.as_bytes()).await.is_ok()
            && stream.write_all(body.as_bytes()).await.is_ok();
    }
    let Some(object) = object else {
        let body = "no such object";
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        return stream.write_all(head.as_bytes()).await.is_ok()
            && stream.write_all(body.as_bytes()).await.is_ok();
    };
    let len = object.body.len() as u64;
    let wanted = if behavior.ignore_range {
        None
    } else {
        range.as_deref().and_then(parse_simple_range)
    };
    let mut head = String::new();
    let (start, end) = match wanted {
        None => {
            head.push_str("HTTP/1.1 200 OK\r\n");
            (0, len)
        }
        Some((first, last)) => {
            let (start, end) = match (first, last) {
                (Some(first), last) => (first, last.map_or(len, |l| (l + 1).min(len))),
                (None, Some(suffix)) => (len.saturating_sub(suffix), len),
                (None, None) => unreachable!(),
            };
            if start >= len {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                );
                return stream.write_all(head.as_bytes()).await.is_ok();
            }
            head.push_str("HTTP/1.1 206 Partial Content\r\n");
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{len}\r\n",
                end - 1
            ));
            (start, end)
        }
    };
    head.push_str(&format!("Content-Length: {}\r\n", end - start));
    head.push_str("Content-Type: application/octet-stream\r\n");
    if let Some(etag) = &object.etag {
        head.push_str(&format!("ETag: {etag}\r\n"));
    }
    if let Some(lm) = &object.last_modified {
        head.push_str(&format!("Last-Modified: {lm}\r\n"));
    }
    if let Some(cc) = &object.cache_control {
        head.push_str(&format!("Cache-Control: {cc}\r\n"));
    }
    if let Some(line) = &behavior.extra_header {
        head.push_str(&format!("{line}\r\n"));
    }
    head.push_str("\r\n");
    // Decided before anything is sent, so that answers racing on other
    // connections cannot take this one's misbehaviour.
    let break_at = take_one(state, &plain_path, |b| &mut b.break_after);
    let stall_at = take_one(state, &plain_path, |b| &mut b.stall_after);
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let body = &object.body[start as usize..end as usize];
    let limit = break_at.or(stall_at).unwrap_or(body.len()).min(body.len());
    let mut sent = 0;
    while sent < limit {
        let piece = match behavior.trickle {
            Some(_) => (limit - sent).min(4096),
            None => limit - sent,
        };
        // Counted before it is written: the test may check the count as
        // soon as the bytes reach the client.
        state.body_bytes.fetch_add(piece as u64, Ordering::SeqCst);
        if stream.write_all(&body[sent..sent + piece]).await.is_err() {
            return false;
        }
        sent += piece;
        if let Some(pause) = behavior.trickle {
            tokio::time::sleep(pause).await;
        }
    }
    if break_at.is_some() {
        return false;
    }
    if stall_at.is_some() {
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return false;
    }
    true
}

/// Uses up one of a misbehaviour's repetitions; returns its byte offset.
fn take_one(
    state: &OriginState,
    path: &str,
    which: fn(&mut Behavior) -> &mut Option<(usize, u32)>,
) -> Option<usize> {
    let mut behaviors = state.behaviors.lock().unwrap();
    match which(behaviors.get_mut(path)?) {
        Some((after, left)) if *left > 0 => {
            *left -= 1;
            Some(*after)
        }
        _ => None,
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`.
fn parse_simple_range(value: &str) -> Option<(Option<u64>, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first = if first.is_empty() {
        None
    } else {
        Some(first.parse().ok()?)
    };
    let last = if last.is_empty() {
        None
    } else {
        Some(last.parse().ok()?)
    };
    if first.is_none() && last.is_none() {
        return None;
    }
    Some((first, last))
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body had as many bytes as Content-Length said.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {ORIGIN_HOST}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    read_response(&mut stream, method == "HEAD").await
}

pub async fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[]).await
}

pub async fn get_range(addr: SocketAddr, target: &str, range: &str) -> Response {
    request(addr, "GET", target, &[("Range", range)]).await
}

/// Reads one response; a body cut short is returned with `complete: false`.
pub async fn read_response(stream: &mut TcpStream, head_only: bool) -> Response {
    read_next_response(stream, &mut Vec::new(), head_only).await
}

/// Reads one response of several on a connection; bytes read past its end
/// stay in `buf` for the next one.
pub async fn read_next_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Response {
    let (status, headers, consumed) = loop {
        let mut parsed_headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut parsed_headers);
        if let Ok(httparse::Status::Complete(n)) = parsed.parse(buf) {
            let headers = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).to_string(),
                    )
                })
                .collect::<Vec<_>>();
            break (parsed.code.unwrap(), headers, n);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let expected: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    buf.drain(..consumed);
    if head_only {
        return Response {
            status,
            headers,
            body: Vec::new(),
            complete: true,
        };
    }
    let mut body: Vec<u8> = buf.drain(..expected.min(buf.len())).collect();
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < expected {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let complete = body.len() >= expected;
    if body.len() > expected {
        buf.extend(body.drain(expected..));
    }
    Response {
        status,
        headers,
        body,
        complete,
    }
}

pub struct Node {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub cache: Arc<Cache>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    pub async fn start(config: CacheConfig) -> Node {
        let cache = Cache::open(config).await.expect("cache opens");
        Node::serve(cache).await
    }

    pub async fn serve(cache: Arc<Cache>) -> Node {
        let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let addr = data.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let tasks = vec![
            tokio::spawn(lastmile_cache::serve(
                data,
                cache.clone(),
                wait(stopped.clone()),
            )),
            tokio::spawn(lastmile_cache::serve_admin(
                admin,
                cache.clone(),
                wait(stopped),
            )),
        ];
        Node {
            addr,
            admin: admin_addr,
            cache,
            stop,
            tasks,
        }
    }

    /// Waits until no slice fetch is running, so that what was fetched is
    /// on disk and in the index.
    pub async fn settle(&self) {
        for _ in 0..1000 {
            if self.cache.counters().fills_in_progress == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("slice fetches still running after 10 seconds");
    }

    pub async fn stop(self) -> Arc<Cache> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
        self.cache
    }
}

/// A configuration for tests: one drive, 16 KiB slices, the test origin
/// allowed and resolved, short origin timeouts.
pub fn config(drive: &Path, origin: &Origin) -> CacheConfig {
    let mut config = CacheConfig {
        enabled: true,
        drives: vec![DriveConfig {
            path: drive.to_path_buf(),
            quota_bytes: 64 << 20,
        }],
        slice_size: SLICE,
        ..CacheConfig::default()
    };
    config.allowed_hosts.push(ORIGIN_HOST.to_string());
    config
        .origin
        .resolve
        .insert(ORIGIN_HOST.to_string(), origin.addr);
    config.origin.connect_timeout = Duration::from_secs(2);
    config.origin.response_timeout = Duration::from_secs(5);
    config.origin.stall_timeout = Duration::from_millis(400);
    config
}

/// A drive folder inside a temporary directory.
pub fn drive(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// Every file under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Bytes the cache's files take on a drive, counted as the quota counts
/// them (whole 4 KiB blocks).
pub fn drive_usage(drive: &Path) -> u64 {
    files_under(&drive.join("lastmile-cache"))
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len().div_ceil(4096) * 4096)
        .sum()
}

/// Waits (up to 10 seconds) for a condition that follows from work already
/// done but finished by a background task, such as deleting a file.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still not true after 10 seconds: {what}");
}

pub fn slice_files(drive: &Path) -> Vec<PathBuf> {
    files_under(&drive.join("lastmile-cache").join("objects"))
}
