//! What the node agent tells the speaker.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The whole speaker's configuration; [`crate::Speaker::reconfigure`] takes a
/// complete new one and works out what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// The node's ASN; 4-octet values are sent as AS_TRANS in the OPEN and
    /// in full in the 4-octet ASN capability.
    pub local_asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Accept sessions here (port 179 in production, any port in labs).
    /// `None`: do not listen; only neighbors with `connect_to` come up.
    pub listen: Option<SocketAddr>,
    /// The hold time proposed in our OPEN, in seconds: 0 (no keepalives,
    /// no hold timer) or at least 3. The session uses the smaller of ours
    /// and the peer's.
    pub hold_time: u16,
    pub neighbors: Vec<NeighborConfig>,
    /// Delays between connection attempts to active neighbors.
    pub connect_retry: RetryPolicy,
}

impl SpeakerConfig {
    /// A configuration with no neighbors, not listening, hold time 90 s.
    pub fn new(local_asn: u32, router_id: Ipv4Addr) -> Self {
        SpeakerConfig {
            local_asn,
            router_id,
            listen: None,
            hold_time: 90,
            neighbors: Vec::new(),
            connect_retry: RetryPolicy::default(),
        }
    }

    /// Refuses configurations that could never work, with the reason.
    pub fn validate(&self) -> io::Result<()> {
        let invalid = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        if self.local_asn == 0 {
            return invalid("the local ASN must not be 0 (RFC 7607)".into());
        }
        if self.router_id.is_unspecified()
            || self.router_id.is_multicast()
            || self.router_id.is_broadcast()
        {
            return invalid(format!(
                "router ID {} is not a unicast address",
                self.router_id
            ));
        }
        if matches!(self.hold_time, 1 | 2) {
            return invalid("the hold time must be 0 or at least 3 seconds (RFC 4271 §4.2)".into());
        }
        if self.connect_retry.initial.is_zero()
            || self.connect_retry.initial > self.connect_retry.max
        {
            return invalid("the retry policy needs 0 < initial <= max".into());
        }
        let mut addresses = HashSet::new();
        for neighbor in &self.neighbors {
            if !addresses.insert(neighbor.address) {
                return invalid(format!("neighbor {} is configured twice", neighbor.address));
            }
            if neighbor.remote_asn == 0 {
                return invalid(format!(
                    "neighbor {}: the remote ASN must not be 0",
                    neighbor.address
                ));
            }
            if neighbor.connect_to.is_none() && self.listen.is_none() {
                return invalid(format!(
                    "neighbor {} can never connect: the speaker does not listen and the neighbor has no connect_to",
                    neighbor.address
                ));
            }
            if neighbor.max_prefixes == 0 {
                return invalid(format!(
                    "neighbor {}: max_prefixes must be at least 1",
                    neighbor.address
                ));
            }
        }
        Ok(())
    }
}

/// One router the node peers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    /// The router's address: incoming connections are accepted from it only.
    pub address: Ipv4Addr,
    /// The router's ASN; equal to `local_asn` for iBGP.
    pub remote_asn: u32,
    /// Also connect out to this address and port (active mode). `None`:
    /// passive, wait for the router.
    pub connect_to: Option<SocketAddr>,
    /// Source address of outgoing connections; `None` lets the kernel
    /// choose. Routers check it against their neighbor address.
    pub local_address: Option<Ipv4Addr>,
    /// Beyond this many prefixes the session is closed with a Cease
    /// (maximum number of prefixes reached, RFC 4486): it bounds what one
    /// peer can make the node hold in memory.
    pub max_prefixes: u32,
}

/// The default cap on prefixes from one neighbor: far above any ISP's
/// subscriber prefixes, well below a full Internet table.
pub const DEFAULT_MAX_PREFIXES: u32 = 200_000;

impl NeighborConfig {
    /// A passive neighbor with the default prefix limit.
    pub fn new(address: Ipv4Addr, remote_asn: u32) -> Self {
        NeighborConfig {
            address,
            remote_asn,
            connect_to: None,
            local_address: None,
            max_prefixes: DEFAULT_MAX_PREFIXES,
        }
    }
}

/// Exponential backoff between connection attempts: `initial`, doubled
/// after each failure up to `max`, with ±25 % jitter. A session that stayed
/// up for longer than `max` starts again from `initial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(120),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SpeakerConfig {
        let mut config = SpeakerConfig::new(65000, Ipv4Addr::new(192, 0, 2, 1));
        config.listen = Some("127.0.0.1:1179".parse().unwrap());
        config
            .neighbors
            .push(NeighborConfig::new(Ipv4Addr::new(192, 0, 2, 2), 65001));
        config
    }

    #[test]
    fn sensible_configuration_is_accepted() {
        valid().validate().unwrap();
    }

    #[test]
    fn impossible_configurations_are_refused_with_a_reason() {
        let mut cases: Vec<(SpeakerConfig, &str)> = Vec::new();
        let mut c = valid();
        c.local_asn = 0;
        cases.push((c, "local ASN"));
        let mut c = valid();
        c.router_id = Ipv4Addr::UNSPECIFIED;
        cases.push((c, "router ID"));
        let mut c = valid();
        c.hold_time = 2;
        cases.push((c, "hold time"));
        let mut c = valid();
        c.neighbors.push(c.neighbors[0].clone());
        cases.push((c, "twice"));
        let mut c = valid();
        c.neighbors[0].remote_asn = 0;
        cases.push((c, "remote ASN"));
        let mut c = valid();
        c.listen = None;
        cases.push((c, "never connect"));
        let mut c = valid();
        c.connect_retry.initial = Duration::ZERO;
        cases.push((c, "retry"));
        let mut c = valid();
        c.neighbors[0].max_prefixes = 0;
        cases.push((c, "max_prefixes"));
        for (config, expected) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
        }
    }
}
