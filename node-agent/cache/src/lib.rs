//! The cache data path of a Lastmile node: an HTTP/1.1 server that answers
//! range requests for software-update content from local disk, fetching
//! what it lacks from the origin.
//!
//! # Using it from the agent
//!
//! ```no_run
//! use std::sync::Arc;
//! use lastmile_cache::{Cache, CacheConfig, DriveConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = CacheConfig::default(); // disabled, default allow-list
//! config.enabled = true;
//! config.drives.push(DriveConfig { path: "/srv/cache1".into(), quota_bytes: 500 << 30 });
//! config.allowed_hosts.push("*.updates.example.net".into()); // the operator's own
//!
//! let cache: Arc<Cache> = Cache::open(config.clone()).await?; // rebuilds its index from disk
//! let data = tokio::net::TcpListener::bind("0.0.0.0:80").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:9180").await?;
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move { let _ = rx.wait_for(|s| *s).await; };
//! tokio::spawn(lastmile_cache::serve(data, cache.clone(), wait(stopped.clone())));
//! tokio::spawn(lastmile_cache::serve_admin(admin, cache.clone(), wait(stopped)));
//!
//! // Later, when the portal sends a new configuration:
//! if let Err(e) = cache.apply(config).await {
//!     // The old configuration stays in force; report `e` (it names the
//!     // drive and the reason) as the node's "config failed" state.
//!     eprintln!("{e}");
//! }
//! let health = cache.health();     // serving or not, and why
//! let counters = cache.counters(); // report these to the portal
//! # let _ = (health, counters, stop);
//! # Ok(()) }
//! ```
//!
//! If [`Cache::open`] fails (a drive is missing, say), open with
//! `CacheConfig::default()` (a disabled cache, whose data path answers 503
//! so clients use the CDN) and keep calling [`Cache::apply`].
//!
//! [`CacheConfig::allowed_hosts`] is the complete list: start from
//! [`default_allowed_hosts`] and add the operator's. The embedding process
//! should raise its soft open-file limit to the hard one (every client
//! connection, origin connection and open slice is a descriptor; the
//! standalone binary does this at start) and may run any tokio runtime: a
//! multi-threaded one uses every core.
//!
//! # Requests
//!
//! `GET` and `HEAD`. The origin host comes from the `cacheHostOrigin` query
//! parameter (`GET /path?cacheHostOrigin=host`), else from an absolute URL,
//! else from the `Host` header; the origin is fetched at
//! `http://host:<origin.port>/path?query` (without `cacheHostOrigin`).
//! Hosts not on [`CacheConfig::allowed_hosts`] get 403: the node is never an
//! open proxy. Paths with `.` or `..` segments get 400; objects are stored
//! under a hash of the key anyway, never under a path taken from the URL.
//!
//! The cache key is host + path + query, without the parameters in
//! [`CacheConfig::ignored_query_params`] (URL signatures and expiry times),
//! which are still sent to the origin.
//!
//! Range handling follows RFC 9110: one range (`a-b`, `a-`, `-n`) is
//! answered with 206, an unsatisfiable one with 416 and
//! `Content-Range: bytes */len`, no Range with 200. **Several ranges in one
//! request are answered with the whole object as 200**, which the RFC
//! allows. `If-Range` with a strong ETag or a date equal to Last-Modified
//! keeps the range; otherwise the whole object is sent.
//!
//! Responses carry `X-Cache: HIT` when their first slice came from disk,
//! `MISS` otherwise.
//!
//! # Storage
//!
//! Objects are cached as aligned slices of [`CacheConfig::slice_size`]
//! (1 MiB by default), each fetched with its own Range request, so a cold
//! request deep into a large file fetches only the slices it needs. Every
//! slice records the object's identity (length, ETag, Last-Modified); when
//! an origin answers with another identity the cached object is dropped,
//! and a response that already started with the old one is cut (connection
//! closed) rather than mixing versions. Objects without an ETag or
//! Last-Modified, and answers with `Cache-Control: no-store` or `private`,
//! are served but not stored. Error answers are passed on, never stored.
//!
//! An object is served without asking the origin for as long as its
//! Cache-Control (`s-maxage`, `max-age`, `no-cache` = 0) says, else for
//! [`CacheConfig::default_freshness`]; then a one-byte range request checks
//! it. If the origin cannot be reached (or answers 5xx) the stale copy is
//! served. After a restart every object is checked once before use.
//!
//! A slice becomes visible only once complete (temporary file, then rename),
//! so a kill -9 at any moment leaves only whole slices; leftovers are
//! removed at start-up. Slices are not fsynced one by one: each carries a
//! CRC32 that is checked the first time it is served after a restart, which
//! also catches what a power loss leaves behind.
//!
//! Each drive has a quota that its slice files (rounded up to 4 KiB blocks,
//! including fills in progress and files being deleted) never exceed.
//! Eviction is by bytes, S3-FIFO (see [`eviction`] and docs/benchmarks.md
//! for the measurement that chose it over LRU). The index takes roughly
//! 200 bytes of memory per cached slice.
//!
//! # Concurrency
//!
//! One origin fetch per slice however many clients want it; a fetch runs
//! as its own task, writing to its temporary file, and every client sends
//! from that file what has arrived so far. A fetch that breaks off, or that
//! sends nothing for [`OriginConfig::stall_timeout`], is replaced by a new
//! fetch started by one of its waiters (at most three tries per slice per
//! response), and each waiter carries on from the byte it had reached. An
//! origin that cannot be reached or does not answer within its timeouts is
//! reported at once (502 / 504), not retried. While a response sends slice
//! N, the slices up to N + [`CacheConfig::readahead_slices`] (4) that it
//! will need are fetched already, never past the requested range. At most
//! [`CacheConfig::max_concurrent_fills`] fetches run at once. Memory does
//! not grow with object size: hits go from file to socket with sendfile,
//! misses through the slice's file. The data path writes HTTP/1.1 itself
//! (parsing with httparse) because hyper cannot send from a file
//! descriptor; reading into buffers cost 2.2 times the CPU per GB
//! (docs/benchmarks.md). The origin side uses hyper's client.
//!
//! [`CacheConfig::egress_limit_bits_per_sec`] limits the node's egress; all
//! responses draw from one bucket in turns of about 10 ms of the limit, so
//! clients share it fairly.
//!
//! # Logging and metrics
//!
//! One event per request at `DEBUG` level on the target
//! `lastmile_cache::access` (client, method, host, path, range, status, hit
//! and miss bytes, whether it was cut, stale, milliseconds). It costs
//! nothing unless enabled, e.g. `RUST_LOG=info,lastmile_cache::access=debug`.
//! [`Cache::counters`] and the admin port's `/metrics` give the counters;
//! `/healthz` answers 200 or 503.

mod admin;
mod cache;
mod config;
pub mod eviction;
mod fill;
mod http;
mod key;
mod limiter;
mod metrics;
mod origin;
mod range;
mod serve;
mod store;

pub use admin::serve_admin;
pub use cache::{Cache, Health, Problem};
pub use config::{
    default_allowed_hosts, default_ignored_query_params, parse_resolve, ApplyError, CacheConfig,
    ContentFamily, DriveConfig, OriginConfig, DEFAULT_SLICE_SIZE, MAX_SLICE_SIZE, MIN_SLICE_SIZE,
};
pub use metrics::{Counters, DriveUsage, FamilyBytes};
pub use serve::serve;
