//! From a request line and Host header to the origin request and the cache key.
//!
//! The cache stores objects under a hash of the key, never under anything
//! taken from the URL, so no URL can name a file outside the cache folders.
//! Paths with `.` or `..` segments (also percent-encoded) are refused anyway:
//! their meaning at the origin is not ours to guess.

use sha2::{Digest, Sha256};

use crate::config::{content_family, normalize_host, ActiveConfig, ContentFamily};

/// 128 bits of SHA-256 of the cache key: files are named by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KeyHash(pub [u8; 16]);

impl KeyHash {
    pub(crate) fn of(key: &str) -> KeyHash {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        KeyHash(bytes)
    }

    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_hex(text: &str) -> Option<KeyHash> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(KeyHash(bytes))
    }
}

/// Everything about the requested object that the cache needs.
#[derive(Debug, Clone)]
pub(crate) struct ObjectTarget {
    /// Origin host, normalized.
    pub host: String,
    /// Path and query sent to the origin: the client's, minus `cacheHostOrigin`.
    pub origin_path: String,
    /// `host` + path + the query without ignored parameters.
    pub key: String,
    pub hash: KeyHash,
    pub family: ContentFamily,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("bad request target: {0}")]
    Malformed(&'static str),
    #[error("the request names no origin host (Host header or cacheHostOrigin)")]
    NoHost,
    #[error("origin host {0:?} is not a valid host name")]
    BadHost(String),
    #[error("origin host {0:?} is not on this node's allow-list")]
    NotAllowed(String),
}

const ORIGIN_PARAM: &str = "cacheHostOrigin";

/// Parses a request target (origin form `/path?query` or absolute form
/// `http://host/path`) and the Host header into an [`ObjectTarget`].
pub(crate) fn resolve_target(
    config: &ActiveConfig,
    target: &str,
    host_header: Option<&str>,
) -> Result<ObjectTarget, TargetError> {
    if target.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err(TargetError::Malformed(
            "control character, space or fragment",
        ));
    }
    let (authority, path_and_query) = split_absolute_form(target)?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    check_path(path)?;

    let mut host_param: Option<String> = None;
    let mut origin_params: Vec<&str> = Vec::new();
    let mut key_params: Vec<&str> = Vec::new();
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if name.eq_ignore_ascii_case(ORIGIN_PARAM) {
            let value = param.split_once('=').map_or("", |(_, v)| v);
            host_param = Some(percent_decode(value).ok_or(TargetError::Malformed(
                "cacheHostOrigin is not valid percent-encoded UTF-8",
            ))?);
            continue;
        }
        origin_params.push(param);
        if !config.param_ignored(name) {
            key_params.push(param);
        }
    }

    let raw_host = host_param
        .as_deref()
        .or(authority)
        .or(host_header)
        .ok_or(TargetError::NoHost)?;
    let host = normalize_host(strip_port(raw_host))
        .ok_or_else(|| TargetError::BadHost(raw_host.to_string()))?;
    if !config.host_allowed(&host) {
        return Err(TargetError::NotAllowed(host));
    }

    let mut origin_path = path.to_string();
    if !origin_params.is_empty() {
        origin_path.push('?');
        origin_path.push_str(&origin_params.join("&"));
    }
    let mut key = String::with_capacity(host.len() + path.len() + 1);
    key.push_str(&host);
    key.push_str(path);
    if !key_params.is_empty() {
        key.push('?');
        key.push_str(&key_params.join("&"));
    }
    Ok(ObjectTarget {
        family: content_family(&host),
        hash: KeyHash::of(&key),
        host,
        origin_path,
        key,
    })
}

fn split_absolute_form(target: &str) -> Result<(Option<&str>, &str), TargetError> {
    if target.starts_with('/') {
        return Ok((None, target));
    }
    let scheme_len = "http://".len();
    if target.len() > scheme_len && target[..scheme_len].eq_ignore_ascii_case("http://") {
        let rest = &target[scheme_len..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(TargetError::Malformed("user info in the URL"));
        }
        let path = &rest[end..];
        if path.starts_with('?') || path.is_empty() {
            // `http://host?x` has an empty path, which means `/`.
            return Err(TargetError::Malformed("absolute URL without a path"));
        }
        return Ok((Some(authority), path));
    }
    Err(TargetError::Malformed(
        "the target must be a path starting with / or an http:// URL",
    ))
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn check_path(path: &str) -> Result<(), TargetError> {
    for segment in path.split('/').skip(1) {
        if is_dot_segment(segment) {
            return Err(TargetError::Malformed("`.` or `..` path segment"));
        }
    }
    Ok(())
}

fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(value);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, CacheConfig};

    fn config() -> ActiveConfig {
        let mut c = CacheConfig::default();
        c.allowed_hosts.push("origin.test".into());
        validate(&c).unwrap()
    }

    #[test]
    fn host_from_query_parameter_wins_and_is_not_forwarded() {
        let t = resolve_target(
            &config(),
            "/files/a.cab?cacheHostOrigin=origin.test&x=1",
            Some("node.isp.example:80"),
        )
        .unwrap();
        assert_eq!(t.host, "origin.test");
        assert_eq!(t.origin_path, "/files/a.cab?x=1");
        assert_eq!(t.key, "origin.test/files/a.cab?x=1");
    }

    #[test]
    fn host_header_with_port() {
        let t = resolve_target(&config(), "/a", Some("Origin.Test:8080")).unwrap();
        assert_eq!(t.host, "origin.test");
        assert_eq!(t.origin_path, "/a");
    }

    #[test]
    fn absolute_form() {
        let t = resolve_target(&config(), "http://origin.test/a?b", Some("other")).unwrap();
        assert_eq!(t.host, "origin.test");
        assert_eq!(t.origin_path, "/a?b");
    }

    #[test]
    fn signing_parameters_stay_out_of_the_key_but_reach_the_origin() {
        let a = resolve_target(&config(), "/f?P1=100&id=7&P4=sig1", Some("origin.test")).unwrap();
        let b = resolve_target(&config(), "/f?P1=200&id=7&P4=sig2", Some("origin.test")).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.key, "origin.test/f?id=7");
        assert_eq!(a.origin_path, "/f?P1=100&id=7&P4=sig1");
        let c = resolve_target(&config(), "/f?id=8", Some("origin.test")).unwrap();
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn refusals() {
        let c = config();
        assert_eq!(
            resolve_target(&c, "/a", Some("evil.example")).unwrap_err(),
            TargetError::NotAllowed("evil.example".into())
        );
        assert_eq!(
            resolve_target(&c, "/a", None).unwrap_err(),
            TargetError::NoHost
        );
        for bad in [
            "/a/../b",
            "/..",
            "/a/%2e%2E/b",
            "/./a",
            "a",
            "*",
            "https://origin.test/a",
        ] {
            assert!(
                matches!(
                    resolve_target(&c, bad, Some("origin.test")),
                    Err(TargetError::Malformed(_))
                ),
                "{bad} accepted"
            );
        }
        assert!(resolve_target(&c, "/a/...b/..c", Some("origin.test")).is_ok());
        assert!(matches!(
            resolve_target(&c, "/a?cacheHostOrigin=origin.test/x", None),
            Err(TargetError::BadHost(_))
        ));
        assert!(matches!(
            resolve_target(&c, "/a", Some("user@origin.test")),
            Err(TargetError::BadHost(_))
        ));
    }

    #[test]
    fn family_follows_host() {
        let t =
            resolve_target(&config(), "/a", Some("7.tlu.dl.delivery.mp.microsoft.com")).unwrap();
        assert_eq!(t.family, ContentFamily::WindowsUpdate);
    }
}
