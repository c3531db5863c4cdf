//! Which origin hosts a node caches for, and which content family each
//! belongs to. Shared by the agent (its allow-list and its per-family
//! counters) and the portal (the steering redirect only sends a client to a
//! node for a host that node will serve).

use serde::{Deserialize, Serialize};

/// The known update-content hosts (DESIGN.md), with the family each belongs
/// to. A leading `*.` matches any subdomain and the bare domain too.
pub const DEFAULT_CONTENT_HOSTS: &[(&str, Family)] = &[
    ("*.b1.download.windowsupdate.com", Family::WindowsUpdate),
    ("*.dl.delivery.mp.microsoft.com", Family::WindowsUpdate),
    ("*.download.windowsupdate.com", Family::WindowsUpdate),
    ("*.au.download.windowsupdate.com", Family::WindowsUpdate),
    ("*.au.b1.download.windowsupdate.com", Family::WindowsUpdate),
    ("*.tlu.dl.delivery.mp.microsoft.com", Family::WindowsUpdate),
    ("*.ctldl.windowsupdate.com", Family::WindowsUpdate),
    ("*.delivery.mp.microsoft.com", Family::Edge),
    ("*.officecdn.microsoft.com", Family::Office),
    ("*.officecdn.microsoft.com.edgesuite.net", Family::Office),
    ("*.cdn.office.net", Family::Office),
    ("*.assets1.xboxlive.com", Family::Xbox),
    ("*.assets2.xboxlive.com", Family::Xbox),
    ("*.dlassets.xboxlive.com", Family::Xbox),
    ("*.dlassets2.xboxlive.com", Family::Xbox),
    ("*.d1.xboxlive.com", Family::Xbox),
    ("*.d2.xboxlive.com", Family::Xbox),
    ("*.assets.xbox.com", Family::Xbox),
    ("*.xvcb1.xboxlive.com", Family::Xbox),
    ("*.xvcb2.xboxlive.com", Family::Xbox),
    ("*.xvcf1.xboxlive.com", Family::Xbox),
    ("*.xvcf2.xboxlive.com", Family::Xbox),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    WindowsUpdate,
    Office,
    Xbox,
    Edge,
    Other,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::WindowsUpdate,
        Family::Office,
        Family::Xbox,
        Family::Edge,
        Family::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::WindowsUpdate => "windows_update",
            Family::Office => "office",
            Family::Xbox => "xbox",
            Family::Edge => "edge",
            Family::Other => "other",
        }
    }

    /// A dense index, for counters kept in an array.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Family::WindowsUpdate => "Windows Update",
            Family::Office => "Office",
            Family::Xbox => "Xbox",
            Family::Edge => "Edge",
            Family::Other => "Other",
        }
    }
}

/// Lower-cases a host and drops a port and a trailing dot, the forms in
/// which the same host can arrive in a `Host` header or a URL.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` (normalized) matches `pattern`: either exactly, or for
/// `*.domain`, `domain` itself or any name under it. Case is ignored without
/// copying either side: the data path asks this for every request.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().trim_end_matches('.');
    let (domain, wildcard) = match pattern.strip_prefix("*.") {
        Some(domain) => (domain, true),
        None => (pattern, false),
    };
    let (host, domain) = (host.as_bytes(), domain.as_bytes());
    host.eq_ignore_ascii_case(domain)
        || (wildcard
            && host.len() > domain.len()
            && host[host.len() - domain.len() - 1] == b'.'
            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain))
}

/// The most specific default pattern that matches, so that
/// `x.tlu.dl.delivery.mp.microsoft.com` counts as Windows Update and not as
/// Edge (whose `*.delivery.mp.microsoft.com` also matches it).
fn best_default_match(host: &str) -> Option<Family> {
    DEFAULT_CONTENT_HOSTS
        .iter()
        .filter(|(pattern, _)| host_matches(pattern, host))
        .max_by_key(|(pattern, _)| pattern.len())
        .map(|(_, family)| *family)
}

/// The content family of a host; hosts the operator added count as other.
pub fn family(host: &str) -> Family {
    best_default_match(&normalize_host(host)).unwrap_or(Family::Other)
}

/// Whether a node with these operator-added hosts serves `host`.
pub fn is_allowed(host: &str, extra_hosts: &[String]) -> bool {
    let host = normalize_host(host);
    !host.is_empty()
        && (best_default_match(&host).is_some()
            || extra_hosts.iter().any(|p| host_matches(p, &host)))
}

/// Checks an operator-entered host pattern: a DNS name, optionally with a
/// leading `*.`. Returns the normalized pattern or what is wrong with it.
pub fn validate_host_pattern(raw: &str) -> Result<String, String> {
    let pattern = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
    if name.is_empty() {
        return Err("enter a host name such as updates.example.net or *.example.net".into());
    }
    if name.len() > 253 {
        return Err("host names are at most 253 characters long".into());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("enter a host name, not an address".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "\"{label}\" is not a valid part of a host name (letters, digits and inner hyphens)"
            ));
        }
    }
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_the_bare_domain_and_subdomains_only() {
        assert!(host_matches("*.example.com", "example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(!host_matches("*.example.com", "example.com.evil.net"));
        assert!(host_matches("origin.test", "origin.test"));
        assert!(host_matches(" *.Example.COM. ", "a.example.com"));
        assert!(!host_matches("origin.test", "x.origin.test"));
    }

    #[test]
    fn families_take_the_most_specific_pattern() {
        assert_eq!(
            family("7.tlu.dl.delivery.mp.microsoft.com"),
            Family::WindowsUpdate
        );
        assert_eq!(family("msedge.b.delivery.mp.microsoft.com"), Family::Edge);
        assert_eq!(family("officecdn.microsoft.com"), Family::Office);
        assert_eq!(family("ASSETS1.XBOXLIVE.COM:80"), Family::Xbox);
        assert_eq!(family("origin.test"), Family::Other);
    }

    #[test]
    fn only_known_or_added_hosts_are_allowed() {
        assert!(is_allowed("dl.delivery.mp.microsoft.com", &[]));
        assert!(!is_allowed("example.com", &[]));
        assert!(is_allowed("cdn.origin.test.", &["*.origin.test".into()]));
        assert!(!is_allowed("", &["*.origin.test".into()]));
    }

    #[test]
    fn host_patterns_are_checked() {
        assert_eq!(
            validate_host_pattern(" *.Updates.Example.NET. ").unwrap(),
            "*.updates.example.net"
        );
        assert!(validate_host_pattern("203.0.113.1").is_err());
        assert!(validate_host_pattern("a..b").is_err());
        assert!(validate_host_pattern("-a.b").is_err());
        assert!(validate_host_pattern("a_b.c").is_err());
        assert!(validate_host_pattern("").is_err());
    }
}
