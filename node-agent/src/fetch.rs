//! `lastmile-agent fetch URL`: a reference update client.
//!
//! It behaves like the devices Lastmile serves: it asks steering where to
//! download, fetches the file in parallel 1 MiB range requests, checks what
//! it got (length, validators, and a SHA-256 when given), and when the node
//! fails part way through it takes the rest of the file from the origin (the
//! CDN), so the download always completes. At the end it says where the
//! bytes came from and how fast. Tests, benchmarks and operators ("would
//! this subscriber be served, and how well?") all use it.

use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::portal::{Portal, Trust};

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub url: String,
    /// Ask this portal's steering API first; without it, go to the origin.
    pub portal: Option<String>,
    pub trust: Trust,
    /// The subscriber address to steer for; by default the portal uses the
    /// address the request comes from.
    pub client: Option<String>,
    pub output: PathBuf,
    pub sha256: Option<String>,
    pub connections: usize,
    pub chunk_size: u64,
    /// Draw a progress line on the terminal.
    pub progress: bool,
    /// Host → address overrides for the origin, like curl's `--resolve`.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

/// Where the bytes of a download came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchSummary {
    pub total_bytes: u64,
    pub node: Option<String>,
    pub node_bytes: u64,
    pub origin_bytes: u64,
    /// Why the node was abandoned, when it was.
    pub node_failure: Option<String>,
    pub elapsed: Duration,
}

impl FetchSummary {
    pub fn describe(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let mut text = format!(
            "{} in {:.2} s ({}/s)\n",
            human_bytes(self.total_bytes),
            secs,
            human_bytes((self.total_bytes as f64 / secs) as u64)
        );
        match &self.node {
            Some(node) => text.push_str(&format!(
                "  from node {node}: {}\n",
                human_bytes(self.node_bytes)
            )),
            None => text.push_str("  steering: no node serves this client\n"),
        }
        text.push_str(&format!(
            "  from the CDN (origin): {}\n",
            human_bytes(self.origin_bytes)
        ));
        if let Some(reason) = &self.node_failure {
            text.push_str(&format!("  the node failed part way: {reason}\n"));
        }
        text
    }
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The origin URL taken apart, as steering needs it.
struct Origin {
    url: String,
    host: String,
    path_and_query: String,
}

fn parse_origin(url: &str) -> Result<Origin, String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL: {e}"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) {
        return Err(format!("{url} must start with http:// or https://"));
    }
    let host = parsed
        .authority()
        .ok_or_else(|| format!("{url} has no host"))?
        .as_str()
        .to_string();
    Ok(Origin {
        url: url.to_string(),
        host,
        path_and_query: parsed
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// The object's identity, as the first response gave it. Every later range
/// must carry the same, or bytes of two versions would be mixed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    length: u64,
    etag: Option<String>,
    last_modified: Option<String>,
}

struct Source {
    url: String,
    label: String,
}

async fn steer(options: &FetchOptions, origin: &Origin) -> Result<Option<Source>, String> {
    let Some(portal_url) = &options.portal else {
        return Ok(None);
    };
    if origin.url.starts_with("https://") {
        // Nodes speak plain HTTP; an HTTPS download stays with the origin.
        return Ok(None);
    }
    let portal = Portal::new(portal_url, &options.trust, None).map_err(|e| e.to_string())?;
    let mut path = "/api/v1/steer".to_string();
    if let Some(client) = &options.client {
        path.push_str(&format!("?client={client}"));
    }
    let answer: lastmile_wire::SteerResponse = portal
        .get_json(&path)
        .await
        .map_err(|e| format!("asking steering: {e}"))?;
    Ok(answer.nodes.first().map(|node| {
        let separator = if origin.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        Source {
            url: format!(
                "{}{}{separator}{}={}",
                node.url,
                origin.path_and_query,
                lastmile_wire::ORIGIN_PARAM,
                origin.host
            ),
            label: node.name.clone(),
        }
    }))
}

#[derive(Debug)]
enum RangeError {
    /// Worth trying elsewhere (the node failed), or again (the origin).
    Failed(String),
    /// The object changed while it was being downloaded.
    Changed(String),
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RangeError::Failed(why) | RangeError::Changed(why) => f.write_str(why),
        }
    }
}

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `bytes START-END/TOTAL` → TOTAL.
fn total_from_content_range(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// Fetches one range into memory (at most one chunk), checking its status,
/// its length and the object's identity.
async fn fetch_range(
    http: &reqwest::Client,
    url: &str,
    start: u64,
    end: u64,
    expected: Option<&Identity>,
) -> Result<(Vec<u8>, Identity), RangeError> {
    let mut req = http.get(url).header(RANGE, format!("bytes={start}-{end}"));
    if let Some(etag) = expected.and_then(|i| i.etag.as_deref()) {
        // If the object changed, answer 200 with the new one rather than a
        // range of it: the change shows at once.
        if !etag.starts_with("W/") {
            req = req.header(IF_RANGE, etag);
        }
    }
    let res = req
        .send()
        .await
        .map_err(|e| RangeError::Failed(format!("request failed: {e}")))?;
    if res.status() != StatusCode::PARTIAL_CONTENT {
        if res.status() == StatusCode::OK && expected.is_some() {
            return Err(RangeError::Changed(
                "the file changed during the download".into(),
            ));
        }
        return Err(RangeError::Failed(format!(
            "answered {} to a range request",
            res.status()
        )));
    }
    let total = header(&res, CONTENT_RANGE)
        .as_deref()
        .and_then(total_from_content_range)
        .ok_or_else(|| RangeError::Failed("a range answer without Content-Range".into()))?;
    let identity = Identity {
        length: total,
        etag: header(&res, ETAG),
        last_modified: header(&res, LAST_MODIFIED),
    };
    if let Some(expected) = expected {
        let same = expected.length == identity.length
            && (expected.etag.is_none()
                || identity.etag.is_none()
                || expected.etag == identity.etag)
            && (expected.last_modified.is_none()
                || identity.last_modified.is_none()
                || expected.last_modified == identity.last_modified);
        if !same {
            return Err(RangeError::Changed(format!(
                "the file changed during the download (was {expected:?}, now {identity:?})"
            )));
        }
    }
    let wanted = (end.min(identity.length.saturating_sub(1)) - start + 1) as usize;
    let mut body = Vec::with_capacity(wanted);
    let mut stream = res.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| RangeError::Failed(format!("cut off: {e}")))?;
        body.extend_from_slice(&piece);
        if body.len() > wanted {
            return Err(RangeError::Failed("sent more bytes than asked".into()));
        }
    }
    if body.len() != wanted {
        return Err(RangeError::Failed(format!(
            "sent {} of {wanted} bytes",
            body.len()
        )));
    }
    Ok((body, identity))
}

struct Shared {
    next_chunk: AtomicU64,
    chunks: u64,
    node_failed: AtomicBool,
    node_failure: Mutex<Option<String>>,
    node_bytes: AtomicU64,
    origin_bytes: AtomicU64,
}

pub async fn fetch(options: FetchOptions) -> Result<FetchSummary, String> {
    let started = Instant::now();
    let origin = parse_origin(&options.url)?;
    let node = steer(&options, &origin).await?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .user_agent(concat!("lastmile-fetch/", env!("CARGO_PKG_VERSION")));
    for (host, addr) in &options.resolve {
        builder = builder.resolve(host, *addr);
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    let chunk = options.chunk_size.max(4096);

    // The first range tells the object's size and identity.
    let mut node_failure = None;
    let mut first = None;
    if let Some(node) = &node {
        match fetch_range(&http, &node.url, 0, chunk - 1, None).await {
            Ok(got) => first = Some((got, true)),
            Err(e) => node_failure = Some(format!("bytes 0-{}: {e}", chunk - 1)),
        }
    }
    let ((first_body, identity), from_node) = match first {
        Some(got) => got,
        None => (
            fetch_range(&http, &origin.url, 0, chunk - 1, None)
                .await
                .map_err(|e| format!("the origin: {e}"))?,
            false,
        ),
    };
    let first_len = first_body.len() as u64;
    let shared = Arc::new(Shared {
        next_chunk: AtomicU64::new(1),
        chunks: identity.length.div_ceil(chunk).max(1),
        node_failed: AtomicBool::new(node.is_none() || node_failure.is_some()),
        node_failure: Mutex::new(node_failure),
        node_bytes: AtomicU64::new(if from_node { first_len } else { 0 }),
        origin_bytes: AtomicU64::new(if from_node { 0 } else { first_len }),
    });

    let file = std::fs::File::create(&options.output)
        .map_err(|e| format!("creating {}: {e}", options.output.display()))?;
    file.set_len(identity.length)
        .map_err(|e| format!("sizing {}: {e}", options.output.display()))?;
    let file = Arc::new(file);
    write_at(&file, 0, &first_body)?;

    let progress = options.progress.then(|| {
        let shared = shared.clone();
        let total = identity.length;
        tokio::spawn(async move {
            let began = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let node = shared.node_bytes.load(Ordering::Relaxed);
                let cdn = shared.origin_bytes.load(Ordering::Relaxed);
                let done = node + cdn;
                let rate = done as f64 / began.elapsed().as_secs_f64().max(0.001);
                eprint!(
                    "\r{:5.1}%  {} of {}  {}/s  node {}  CDN {}   ",
                    done as f64 * 100.0 / total.max(1) as f64,
                    human_bytes(done),
                    human_bytes(total),
                    human_bytes(rate as u64),
                    human_bytes(node),
                    human_bytes(cdn)
                );
            }
        })
    });

    let mut workers = Vec::new();
    for _ in 0..options.connections.max(1) {
        let http = http.clone();
        let shared = shared.clone();
        let file = file.clone();
        let identity = identity.clone();
        let node_url = node.as_ref().map(|n| n.url.clone());
        let origin_url = origin.url.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let index = shared.next_chunk.fetch_add(1, Ordering::Relaxed);
                if index >= shared.chunks {
                    return Ok(());
                }
                let start = index * chunk;
                let end = (start + chunk - 1).min(identity.length - 1);
                let body = fetch_chunk(
                    &http,
                    &shared,
                    node_url.as_deref(),
                    &origin_url,
                    start,
                    end,
                    &identity,
                )
                .await?;
                write_at(&file, start, &body)?;
            }
        }));
    }
    let mut failure = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(format!("a download task failed: {e}"))),
        }
    }
    if let Some(task) = progress {
        task.abort();
        eprintln!();
    }
    if let Some(e) = failure {
        let _ = std::fs::remove_file(&options.output);
        return Err(e);
    }
    file.sync_all().map_err(|e| e.to_string())?;
    check_sha256(&options)?;
    let summary = FetchSummary {
        total_bytes: identity.length,
        node: node.map(|n| n.label),
        node_bytes: shared.node_bytes.load(Ordering::Relaxed),
        origin_bytes: shared.origin_bytes.load(Ordering::Relaxed),
        node_failure: shared.node_failure.lock().unwrap().clone(),
        elapsed: started.elapsed(),
    };
    Ok(summary)
}

fn note_node_failure(shared: &Shared, reason: String) {
    if !shared.node_failed.swap(true, Ordering::Relaxed) {
        *shared.node_failure.lock().unwrap() = Some(reason);
    }
}

/// One chunk: from the node while it works, then from the origin, which is
/// tried three times before the download is given up.
async fn fetch_chunk(
    http: &reqwest::Client,
    shared: &Shared,
    node_url: Option<&str>,
    origin_url: &str,
    start: u64,
    end: u64,
    identity: &Identity,
) -> Result<Vec<u8>, String> {
    if let Some(url) = node_url.filter(|_| !shared.node_failed.load(Ordering::Relaxed)) {
        match fetch_range(http, url, start, end, Some(identity)).await {
            Ok((body, _)) => {
                shared
                    .node_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                return Ok(body);
            }
            Err(e) => note_node_failure(shared, format!("bytes {start}-{end}: {e}")),
        }
    }
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
        }
        match fetch_range(http, origin_url, start, end, Some(identity)).await {
            Ok((body, _)) => {
                shared
                    .origin_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                return Ok(body);
            }
            Err(RangeError::Changed(e)) => return Err(format!("{e}; run the download again")),
            Err(RangeError::Failed(e)) => last = e,
        }
    }
    Err(format!("the origin failed for bytes {start}-{end}: {last}"))
}

fn write_at(file: &std::fs::File, offset: u64, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
        .map_err(|e| format!("writing the download: {e}"))
}

/// With `--sha256`, checks the finished file (every range was already
/// checked against the object's length and identity as it arrived).
fn check_sha256(options: &FetchOptions) -> Result<(), String> {
    if let Some(expected) = &options.sha256 {
        let mut file = std::fs::File::open(&options.output).map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| e.to_string())?;
        let got = hex::encode(hasher.finalize());
        if !got.eq_ignore_ascii_case(expected.trim()) {
            let _ = std::fs::remove_file(&options.output);
            return Err(format!(
                "SHA-256 mismatch: expected {expected}, got {got}; the file was removed"
            ));
        }
    }
    Ok(())
}

/// Whether to draw progress: only on a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_totals_are_read() {
        assert_eq!(total_from_content_range("bytes 0-1023/4096"), Some(4096));
        assert_eq!(total_from_content_range("bytes */4096"), Some(4096));
        assert_eq!(total_from_content_range("bytes 0-1/*"), None);
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn origins_must_be_http_urls() {
        let o = parse_origin("http://dl.example/a/b.cab?x=1").unwrap();
        assert_eq!(o.host, "dl.example");
        assert_eq!(o.path_and_query, "/a/b.cab?x=1");
        assert!(parse_origin("ftp://x/").is_err());
    }
}
