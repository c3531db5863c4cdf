//! What the speaker reports, and the shared table behind `peers()` and
//! `routes()`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::wire::UpdateOutcome;

/// BGP session states (RFC 4271 §8.2.2), as reported for a neighbor: the
/// most advanced state of its connections. `Active` means the speaker is
/// listening for the router; `Idle` that it is waiting before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One neighbor's session, as the portal shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: Ipv4Addr,
    pub remote_asn: u32,
    pub state: SessionState,
    /// Wall-clock time the session reached Established.
    pub established_since: Option<SystemTime>,
    /// How long it has been Established (monotonic clock).
    pub uptime: Option<Duration>,
    /// Why the session last went down or failed to come up, for a human:
    /// e.g. "hold timer expired: ...", "received NOTIFICATION 2/2 (OPEN
    /// message error: bad peer AS)". Kept after the session recovers.
    pub last_error: Option<String>,
    pub prefixes_received: usize,
    /// The router's BGP Identifier, once its OPEN was accepted.
    pub remote_router_id: Option<Ipv4Addr>,
    /// The negotiated hold time in seconds (0: no keepalives).
    pub hold_time: Option<u16>,
    /// How many times the session has reached Established: a flap counter.
    pub established_count: u64,
}

/// A route learned from a neighbor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    pub prefix: Ipv4Net,
    pub next_hop: Ipv4Addr,
    /// 4-octet ASNs, nearest first; AS_SET members flattened in wire order.
    pub as_path: Vec<u32>,
    /// The neighbor it was learned from.
    pub peer: Ipv4Addr,
}

struct StoredRoute {
    next_hop: Ipv4Addr,
    as_path: Arc<[u32]>,
}

struct PeerEntry {
    remote_asn: u32,
    state: SessionState,
    established_at: Option<(Instant, SystemTime)>,
    last_error: Option<String>,
    remote_router_id: Option<Ipv4Addr>,
    hold_time: Option<u16>,
    established_count: u64,
    routes: HashMap<Ipv4Net, StoredRoute>,
}

/// Peer states and learned routes, shared by the sessions (writers) and
/// the speaker's accessors (readers). Every change bumps the counter that
/// [`crate::Speaker::subscribe`] hands out.
pub(crate) struct Table {
    peers: Mutex<BTreeMap<Ipv4Addr, PeerEntry>>,
    changes: watch::Sender<u64>,
}

impl Table {
    pub fn new() -> Self {
        Table {
            peers: Mutex::new(BTreeMap::new()),
            changes: watch::Sender::new(0),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Ipv4Addr, PeerEntry>> {
        // Nothing panics while holding the lock; if something ever did, the
        // table is still consistent enough to report from.
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Runs `f` on the neighbor's entry, if it exists, and announces a
    /// change when `f` says it made one.
    fn with_peer(&self, address: Ipv4Addr, f: impl FnOnce(&mut PeerEntry) -> bool) {
        let changed = self.lock().get_mut(&address).map(f).unwrap_or(false);
        if changed {
            self.changed();
        }
    }

    pub fn add_peer(&self, address: Ipv4Addr, remote_asn: u32, state: SessionState) {
        self.lock().insert(
            address,
            PeerEntry {
                remote_asn,
                state,
                established_at: None,
                last_error: None,
                remote_router_id: None,
                hold_time: None,
                established_count: 0,
                routes: HashMap::new(),
            },
        );
        self.changed();
    }

    pub fn remove_peer(&self, address: Ipv4Addr) {
        let removed = self.lock().remove(&address).is_some();
        if removed {
            self.changed();
        }
    }

    pub fn set_state(&self, address: Ipv4Addr, state: SessionState) {
        self.with_peer(address, |peer| {
            let changed = peer.state != state;
            peer.state = state;
            changed
        });
    }

    pub fn set_error(&self, address: Ipv4Addr, error: String) {
        self.with_peer(address, |peer| {
            peer.last_error = Some(error);
            true
        });
    }

    pub fn session_established(
        &self,
        address: Ipv4Addr,
        remote_router_id: Ipv4Addr,
        hold_time: u16,
    ) {
        self.with_peer(address, |peer| {
            peer.state = SessionState::Established;
            peer.established_at = Some((Instant::now(), SystemTime::now()));
            peer.remote_router_id = Some(remote_router_id);
            peer.hold_time = Some(hold_time);
            peer.established_count += 1;
            true
        });
    }

    /// The established session ended: its routes go with it.
    pub fn session_down(&self, address: Ipv4Addr) {
        self.with_peer(address, |peer| {
            peer.routes.clear();
            peer.established_at = None;
            peer.hold_time = None;
            true
        });
    }

    /// Applies an UPDATE's withdrawals, then its announcements; returns how
    /// many prefixes the neighbor now has.
    pub fn apply_update(&self, address: Ipv4Addr, update: &UpdateOutcome) -> usize {
        let mut count = 0;
        let mut changed = false;
        if let Some(peer) = self.lock().get_mut(&address) {
            for prefix in &update.withdrawn {
                changed |= peer.routes.remove(prefix).is_some();
            }
            if !update.announced.is_empty() {
                let as_path: Arc<[u32]> = update.as_path.as_slice().into();
                for &(prefix, next_hop) in &update.announced {
                    let route = StoredRoute {
                        next_hop,
                        as_path: Arc::clone(&as_path),
                    };
                    peer.routes.insert(prefix, route);
                }
                changed = true;
            }
            count = peer.routes.len();
        }
        if changed {
            self.changed();
        }
        count
    }

    pub fn peers(&self) -> Vec<PeerStatus> {
        self.lock()
            .iter()
            .map(|(&address, peer)| PeerStatus {
                address,
                remote_asn: peer.remote_asn,
                state: peer.state,
                established_since: peer.established_at.map(|(_, wall)| wall),
                uptime: peer.established_at.map(|(since, _)| since.elapsed()),
                last_error: peer.last_error.clone(),
                prefixes_received: peer.routes.len(),
                remote_router_id: peer.remote_router_id,
                hold_time: peer.hold_time,
                established_count: peer.established_count,
            })
            .collect()
    }

    pub fn routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self
            .lock()
            .iter()
            .flat_map(|(&peer_address, peer)| {
                peer.routes.iter().map(move |(&prefix, route)| Route {
                    prefix,
                    next_hop: route.next_hop,
                    as_path: route.as_path.to_vec(),
                    peer: peer_address,
                })
            })
            .collect();
        routes.sort();
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(withdrawn: &[&str], announced: &[&str]) -> UpdateOutcome {
        UpdateOutcome {
            withdrawn: withdrawn.iter().map(|p| p.parse().unwrap()).collect(),
            announced: announced
                .iter()
                .map(|p| (p.parse().unwrap(), Ipv4Addr::new(192, 0, 2, 1)))
                .collect(),
            as_path: vec![65001],
            ..Default::default()
        }
    }

    #[test]
    fn updates_and_flushes_are_visible_and_announced() {
        let table = Table::new();
        let mut changes = table.subscribe();
        let peer = Ipv4Addr::new(192, 0, 2, 2);
        table.add_peer(peer, 65001, SessionState::Active);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();

        assert_eq!(
            table.apply_update(peer, &outcome(&[], &["10.0.0.0/8", "10.1.0.0/16"])),
            2
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(table.apply_update(peer, &outcome(&["10.0.0.0/8"], &[])), 1);
        assert_eq!(
            table.routes(),
            vec![Route {
                prefix: "10.1.0.0/16".parse().unwrap(),
                next_hop: Ipv4Addr::new(192, 0, 2, 1),
                as_path: vec![65001],
                peer,
            }]
        );
        changes.mark_unchanged();
        // Withdrawing what is not there changes nothing.
        table.apply_update(peer, &outcome(&["172.16.0.0/12"], &[]));
        assert!(!changes.has_changed().unwrap());

        table.session_down(peer);
        assert!(table.routes().is_empty());
        assert_eq!(table.peers()[0].prefixes_received, 0);
    }

    #[test]
    fn same_prefix_withdrawn_and_announced_ends_announced() {
        let table = Table::new();
        let peer = Ipv4Addr::new(192, 0, 2, 2);
        table.add_peer(peer, 65001, SessionState::Established);
        table.apply_update(peer, &outcome(&["10.0.0.0/8"], &["10.0.0.0/8"]));
        assert_eq!(table.routes().len(), 1);
    }
}
