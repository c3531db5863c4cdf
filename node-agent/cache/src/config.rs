//! What the agent hands to [`crate::Cache::open`] and [`crate::Cache::apply`],
//! and the checks that turn bad values into an [`ApplyError`] an operator can act on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::SLICE_HEADER_BYTES;

/// The whole configuration of the cache. `CacheConfig::default()` is a disabled
/// cache with the default allow-list, which an agent can open while it has no
/// valid configuration yet.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    /// When false the data path answers 503 so clients fall back to the CDN.
    pub enabled: bool,
    /// Cache drives: folders, each with a quota the cache never exceeds.
    pub drives: Vec<DriveConfig>,
    /// Objects are cached as aligned slices of this many bytes, each fetched
    /// from the origin with its own Range request. A multiple of 4 KiB between
    /// 4 KiB and 64 MiB. Objects already cached keep the slice size they were
    /// stored with.
    pub slice_size: u64,
    /// The complete allow-list: `default_allowed_hosts()` plus the operator's
    /// own. `*.example.com` matches `example.com` and any name below it;
    /// `example.com` only itself.
    pub allowed_hosts: Vec<String>,
    /// Query parameters that only sign or time-limit a URL. They are left out
    /// of the cache key (so every signed variant of one file is one cache
    /// entry) but still sent to the origin. Matched case-insensitively; a
    /// trailing `*` matches a prefix (`X-Amz-*`).
    pub ignored_query_params: Vec<String>,
    /// Egress limit for the whole node, shared fairly by all clients. `None`: no limit.
    pub egress_limit_bits_per_sec: Option<u64>,
    /// How the origins are reached.
    pub origin: OriginConfig,
    /// How long an object is served without asking the origin whether it
    /// changed, when the origin's Cache-Control does not say.
    pub default_freshness: Duration,
    /// Origin fetches running at once, node-wide. Bounds memory and origin
    /// connections; fills beyond it wait their turn.
    pub max_concurrent_fills: usize,
    /// While a response sends slice N, the slices up to N + this many that
    /// it will need and that are not on disk are fetched already (never
    /// past the end of the requested range). 0 fetches each slice only when
    /// the response reaches it.
    pub readahead_slices: u64,
}

/// One cache drive: a folder (the cache keeps its files in a `lastmile-cache`
/// folder inside it) and the most bytes the cache may keep there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveConfig {
    pub path: PathBuf,
    pub quota_bytes: u64,
}

/// How origins are reached. Origins are fetched over plain HTTP/1.1 (update
/// content hosts serve it; the content is signed by its publisher).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginConfig {
    /// TCP port of the origins. Default 80.
    pub port: u16,
    /// Host name -> address to connect to instead of resolving the name
    /// (like curl's `--resolve`): for tests, labs, and pinning an origin.
    pub resolve: HashMap<String, SocketAddr>,
    /// Longest wait for a TCP connection to the origin.
    pub connect_timeout: Duration,
    /// Longest wait for the origin's response head after the request.
    pub response_timeout: Duration,
    /// Longest pause in the middle of a body before the fetch is abandoned
    /// and taken over by another fetch.
    pub stall_timeout: Duration,
}

/// One `--resolve` entry, `HOST=ADDRESS:PORT` (as curl's), for
/// [`OriginConfig::resolve`]: the host normalized as requests' hosts are.
pub fn parse_resolve(text: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not HOST=ADDRESS:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not ADDRESS:PORT: {e}"))?;
    Ok((lastmile_wire::hosts::normalize_host(host), addr))
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            port: 80,
            resolve: HashMap::new(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(10),
        }
    }
}

pub const DEFAULT_SLICE_SIZE: u64 = 1024 * 1024;
pub const MIN_SLICE_SIZE: u64 = 4 * 1024;
pub const MAX_SLICE_SIZE: u64 = 64 * 1024 * 1024;
/// A drive must hold at least this many slices, so that concurrent fills and
/// eviction have room to work.
pub const MIN_SLICES_PER_DRIVE: u64 = 4;

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            drives: Vec::new(),
            slice_size: DEFAULT_SLICE_SIZE,
            allowed_hosts: default_allowed_hosts(),
            ignored_query_params: default_ignored_query_params(),
            egress_limit_bits_per_sec: None,
            origin: OriginConfig::default(),
            default_freshness: Duration::from_secs(3600),
            max_concurrent_fills: 256,
            readahead_slices: 4,
        }
    }
}

/// The kinds of content the counters break bytes down by: the portal's own
/// list, so both count the same way.
pub use lastmile_wire::hosts::Family as ContentFamily;

/// Exactly the default allow-list of DESIGN.md.
pub fn default_allowed_hosts() -> Vec<String> {
    lastmile_wire::hosts::DEFAULT_CONTENT_HOSTS
        .iter()
        .map(|(pattern, _)| pattern.to_string())
        .collect()
}

/// Query parameters that sign or time-limit URLs on the CDNs that carry update
/// content: Microsoft's `P1`..`P4` (expiry and signature on
/// `tlu.dl.delivery.mp.microsoft.com`), Akamai tokens, CloudFront and S3
/// signatures.
pub fn default_ignored_query_params() -> Vec<String> {
    [
        "P1",
        "P2",
        "P3",
        "P4",
        "__gda__",
        "hdnts",
        "hdnea",
        "Expires",
        "Signature",
        "Key-Pair-Id",
        "Policy",
        "X-Amz-*",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect()
}

/// Why a configuration was refused. The previous configuration stays in force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("no cache drive is configured")]
    NoDrives,
    #[error("cache drive {path}: folder is missing")]
    DriveMissing { path: PathBuf },
    #[error("cache drive {path}: not a folder")]
    DriveNotAFolder { path: PathBuf },
    #[error("cache drive {path}: not writable ({reason})")]
    DriveNotWritable { path: PathBuf, reason: String },
    #[error(
        "cache drive {path}: too small: its filesystem holds {filesystem_bytes} bytes, \
         less than the quota of {quota_bytes} bytes"
    )]
    DriveTooSmall {
        path: PathBuf,
        filesystem_bytes: u64,
        quota_bytes: u64,
    },
    #[error(
        "cache drive {path}: quota of {quota_bytes} bytes is below the minimum of \
         {minimum_bytes} bytes ({MIN_SLICES_PER_DRIVE} slices)"
    )]
    QuotaBelowMinimum {
        path: PathBuf,
        quota_bytes: u64,
        minimum_bytes: u64,
    },
    #[error("cache drive {path}: listed more than once, or inside another cache drive")]
    DriveOverlaps { path: PathBuf },
    #[error("cache drive {path}: could not read its contents ({reason})")]
    DriveUnreadable { path: PathBuf, reason: String },
    #[error("slice size {0} is invalid: it must be a multiple of 4 KiB between 4 KiB and 64 MiB")]
    InvalidSliceSize(u64),
    #[error("allowed host {pattern:?} is invalid: {reason}")]
    InvalidHostPattern { pattern: String, reason: String },
    #[error("ignored query parameter {0:?} is invalid")]
    InvalidQueryParam(String),
    #[error("origin resolve entry {0:?} is not a valid host name")]
    InvalidResolveHost(String),
    #[error("egress limit must be more than 0 bits per second")]
    ZeroEgressLimit,
    #[error("max_concurrent_fills must be at least 1")]
    ZeroConcurrentFills,
}

/// A validated allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostPattern {
    /// The domain, lowercase, without the leading `*.`.
    domain: String,
    wildcard: bool,
}

impl HostPattern {
    pub(crate) fn parse(pattern: &str) -> Result<HostPattern, ApplyError> {
        let invalid = |reason: &str| ApplyError::InvalidHostPattern {
            pattern: pattern.to_string(),
            reason: reason.to_string(),
        };
        let (wildcard, domain) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if domain.contains('*') {
            return Err(invalid("`*` is only allowed as a leading `*.`"));
        }
        let domain = normalize_host(domain).ok_or_else(|| {
            invalid("not a host name (letters, digits, `-` and `.`, labels of 1 to 63 characters)")
        })?;
        Ok(HostPattern { domain, wildcard })
    }

    /// `host` must already be normalized (see [`normalize_host`]).
    pub(crate) fn matches(&self, host: &str) -> bool {
        if host == self.domain {
            return true;
        }
        self.wildcard
            && host.len() > self.domain.len()
            && host.ends_with(self.domain.as_str())
            && host.as_bytes()[host.len() - self.domain.len() - 1] == b'.'
    }
}

/// Lowercases a host name and drops a trailing dot; `None` when it is not a
/// plain DNS name or IPv4 address (which also rejects anything that could
/// smuggle a port, path or user info).
pub(crate) fn normalize_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
    }
    Some(host.to_ascii_lowercase())
}

/// The family of a host: that of the most specific known content host
/// pattern it matches (`x.dl.delivery.mp.microsoft.com` is Windows Update
/// even though `*.delivery.mp.microsoft.com`, Edge, matches it too).
pub(crate) fn content_family(host: &str) -> ContentFamily {
    lastmile_wire::hosts::family(host)
}

/// A validated ignored-query-parameter entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParamPattern {
    name: String,
    prefix: bool,
}

impl ParamPattern {
    fn parse(raw: &str) -> Result<ParamPattern, ApplyError> {
        let (name, prefix) = match raw.strip_suffix('*') {
            Some(name) => (name, true),
            None => (raw, false),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'*' | b'#' | b'?'));
        if !valid {
            return Err(ApplyError::InvalidQueryParam(raw.to_string()));
        }
        Ok(ParamPattern {
            name: name.to_string(),
            prefix,
        })
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.prefix {
            name.len() >= self.name.len()
                && name.as_bytes()[..self.name.len()].eq_ignore_ascii_case(self.name.as_bytes())
        } else {
            name.eq_ignore_ascii_case(&self.name)
        }
    }
}

/// The parts of a configuration the request path reads, checked and
/// pre-parsed once per apply.
#[derive(Debug)]
pub(crate) struct ActiveConfig {
    pub enabled: bool,
    pub slice_size: u64,
    pub allowed_hosts: Vec<HostPattern>,
    pub ignored_query_params: Vec<ParamPattern>,
    pub origin: OriginConfig,
    pub default_freshness: Duration,
    pub readahead_slices: u64,
}

impl ActiveConfig {
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|p| p.matches(host))
    }

    pub(crate) fn param_ignored(&self, name: &str) -> bool {
        self.ignored_query_params.iter().any(|p| p.matches(name))
    }
}

/// Checks everything that does not touch the drives.
pub(crate) fn validate(config: &CacheConfig) -> Result<ActiveConfig, ApplyError> {
    let slice = config.slice_size;
    if !(MIN_SLICE_SIZE..=MAX_SLICE_SIZE).contains(&slice) || slice % 4096 != 0 {
        return Err(ApplyError::InvalidSliceSize(slice));
    }
    if config.enabled && config.drives.is_empty() {
        return Err(ApplyError::NoDrives);
    }
    if config.egress_limit_bits_per_sec == Some(0) {
        return Err(ApplyError::ZeroEgressLimit);
    }
    if config.max_concurrent_fills == 0 {
        return Err(ApplyError::ZeroConcurrentFills);
    }
    let minimum_bytes = MIN_SLICES_PER_DRIVE * (slice + SLICE_HEADER_BYTES);
    for drive in &config.drives {
        if drive.quota_bytes < minimum_bytes {
            return Err(ApplyError::QuotaBelowMinimum {
                path: drive.path.clone(),
                quota_bytes: drive.quota_bytes,
                minimum_bytes,
            });
        }
    }
    let allowed_hosts = config
        .allowed_hosts
        .iter()
        .map(|p| HostPattern::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let ignored_query_params = config
        .ignored_query_params
        .iter()
        .map(|p| ParamPattern::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut origin = config.origin.clone();
    let mut resolve = HashMap::new();
    for (host, addr) in &config.origin.resolve {
        let normalized =
            normalize_host(host).ok_or_else(|| ApplyError::InvalidResolveHost(host.clone()))?;
        resolve.insert(normalized, *addr);
    }
    origin.resolve = resolve;
    Ok(ActiveConfig {
        enabled: config.enabled,
        slice_size: slice,
        allowed_hosts,
        ignored_query_params,
        origin,
        default_freshness: config.default_freshness,
        readahead_slices: config.readahead_slices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_bare_domain_and_subdomains_only() {
        let p = HostPattern::parse("*.Example.com").unwrap();
        assert!(p.matches("example.com"));
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(!p.matches("example.com.evil.net"));
        let exact = HostPattern::parse("origin.test").unwrap();
        assert!(exact.matches("origin.test"));
        assert!(!exact.matches("a.origin.test"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "*", "a.*.com", "exa mple.com", "host:80", "*.", "a..b"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn default_list_is_the_design_list() {
        let hosts = default_allowed_hosts();
        assert_eq!(hosts.len(), 22);
        assert!(hosts.contains(&"*.delivery.mp.microsoft.com".to_string()));
        assert!(hosts.contains(&"*.xvcf2.xboxlive.com".to_string()));
        for h in &hosts {
            HostPattern::parse(h).unwrap();
        }
    }

    #[test]
    fn families_prefer_the_most_specific_pattern() {
        assert_eq!(
            content_family("2.tlu.dl.delivery.mp.microsoft.com"),
            ContentFamily::WindowsUpdate
        );
        assert_eq!(
            content_family("msedge.f.dl.delivery.mp.microsoft.com"),
            ContentFamily::WindowsUpdate
        );
        assert_eq!(
            content_family("msedge.b.tlu.delivery.mp.microsoft.com"),
            ContentFamily::Edge
        );
        assert_eq!(
            content_family("officecdn.microsoft.com"),
            ContentFamily::Office
        );
        assert_eq!(content_family("assets1.xboxlive.com"), ContentFamily::Xbox);
        assert_eq!(content_family("origin.test"), ContentFamily::Other);
    }

    #[test]
    fn param_patterns() {
        let p = ParamPattern::parse("X-Amz-*").unwrap();
        assert!(p.matches("x-amz-signature"));
        assert!(!p.matches("x-am"));
        let exact = ParamPattern::parse("P1").unwrap();
        assert!(exact.matches("p1"));
        assert!(!exact.matches("P10"));
        assert!(ParamPattern::parse("a=b").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = CacheConfig {
            enabled: true,
            ..CacheConfig::default()
        };
        assert_eq!(validate(&c).unwrap_err(), ApplyError::NoDrives);
        c.drives.push(DriveConfig {
            path: "/x".into(),
            quota_bytes: 10,
        });
        assert!(matches!(
            validate(&c).unwrap_err(),
            ApplyError::QuotaBelowMinimum { .. }
        ));
        c.slice_size = 5000;
        assert_eq!(
            validate(&c).unwrap_err(),
            ApplyError::InvalidSliceSize(5000)
        );
    }
}
