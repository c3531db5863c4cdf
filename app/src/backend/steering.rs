//! Steering: which node should serve a subscriber's address.
//!
//! Answers come from memory, never from a database query per request: a
//! prefix trie over every manual CIDR block and BGP-learned prefix (rebuilt
//! when the routing generation in the database moves), and a table of node
//! health (reloaded every second). Health is judged at lookup time, so a
//! node that stops reporting leaves steering on its own, a few report
//! intervals after its last word, without anyone writing anything. This is
//! the lesson of Traffic Monitor and Traffic Router: route on health, and
//! when nothing healthy is left, send the client to the CDN.
//!
//! Among the nodes of the longest matching prefix, a client is placed by
//! rendezvous hashing of its address: the same client keeps landing on the
//! same node, clients spread evenly, and when a node leaves only its own
//! clients move.

use ipnet::Ipv4Net;
use prefix_trie::PrefixMap;
use sqlx::Row;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

use super::db::{get_bool, now_ms, Db};
use crate::error::AppError;
use crate::model::{RouteSource, SteerCandidate, SteerExplanation, SteerVerdict};

/// One node's claim on a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub node_id: i64,
    pub source: RouteSource,
}

/// The prefixes and who claims them. Members of a prefix live in one flat
/// array, so a million prefixes cost a million small values, not a million
/// allocations.
#[derive(Default)]
pub struct RouteIndex {
    trie: PrefixMap<Ipv4Net, (u32, u32)>,
    members: Vec<Member>,
}

impl RouteIndex {
    /// Builds the index from `(prefix, member)` pairs in any order.
    pub fn build(mut claims: Vec<(Ipv4Net, Member)>) -> RouteIndex {
        claims.sort_unstable_by_key(|(net, m)| (*net, m.node_id, m.source as u8));
        claims.dedup();
        let mut index = RouteIndex {
            trie: PrefixMap::new(),
            members: Vec::with_capacity(claims.len()),
        };
        let mut i = 0;
        while i < claims.len() {
            let net = claims[i].0;
            let start = index.members.len() as u32;
            while i < claims.len() && claims[i].0 == net {
                index.members.push(claims[i].1);
                i += 1;
            }
            index
                .trie
                .insert(net, (start, index.members.len() as u32 - start));
        }
        index
    }

    pub fn prefix_count(&self) -> usize {
        self.trie.len()
    }

    /// Every prefix containing `addr` with its members, longest first.
    pub fn covering(&self, addr: Ipv4Addr) -> impl Iterator<Item = (Ipv4Net, &[Member])> {
        let host = Ipv4Net::from(addr);
        let mut found: Vec<(Ipv4Net, (u32, u32))> =
            self.trie.cover(&host).map(|(net, v)| (net, *v)).collect();
        found.reverse();
        found.into_iter().map(move |(net, (start, len))| {
            (
                net,
                &self.members[start as usize..start as usize + len as usize],
            )
        })
    }

    /// The longest prefix containing `addr` that has a member `eligible`
    /// accepts, with those members, best first for this client.
    pub fn lookup(
        &self,
        addr: Ipv4Addr,
        eligible: impl Fn(&Member) -> bool,
    ) -> Option<(Ipv4Net, Vec<Member>)> {
        let host = Ipv4Net::from(addr);
        // The trie yields shortest first; the longest with a usable member
        // wins, so remember the last one seen.
        let mut best = None;
        for (net, (start, len)) in self.trie.cover(&host) {
            let members = &self.members[*start as usize..(*start + *len) as usize];
            if members.iter().any(&eligible) {
                best = Some((net, members));
            }
        }
        let (net, members) = best?;
        let mut chosen: Vec<Member> = members.iter().copied().filter(eligible).collect();
        chosen.sort_by_key(|m| std::cmp::Reverse(rendezvous_score(addr, m.node_id)));
        Some((net, chosen))
    }
}

/// A stable pseudo-random score of a (client, node) pair: the node with the
/// highest score serves the client (rendezvous hashing). splitmix64's
/// finalizer, so every portal process and every release agrees.
pub fn rendezvous_score(client: Ipv4Addr, node_id: i64) -> u64 {
    let mut z = (u32::from(client) as u64) ^ (node_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What steering needs to know about a node, reloaded every second.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub public_ipv4: String,
    pub data_port: u16,
    pub enabled: bool,
    pub draining: bool,
    pub registered: bool,
    pub last_seen_at_ms: Option<i64>,
    pub serving: bool,
    /// Content hosts added to this node's allow-list.
    pub extra_hosts: Vec<String>,
}

impl NodeEntry {
    /// Why this node may or may not take new clients at `now`.
    pub fn standing(&self, now: i64, offline_after_ms: i64) -> SteerVerdict {
        if !self.enabled {
            SteerVerdict::Disabled
        } else if !self.registered {
            SteerVerdict::NeverConnected
        } else if self
            .last_seen_at_ms
            .is_none_or(|seen| now - seen > offline_after_ms)
        {
            SteerVerdict::Offline
        } else if !self.serving {
            SteerVerdict::NotServing
        } else if self.draining {
            SteerVerdict::Draining
        } else {
            SteerVerdict::Chosen
        }
    }

    /// Where clients download from.
    pub fn url(&self) -> String {
        if self.data_port == 80 {
            format!("http://{}", self.public_ipv4)
        } else {
            format!("http://{}:{}", self.public_ipv4, self.data_port)
        }
    }
}

/// A steering answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub prefix: Option<Ipv4Net>,
    pub source: Option<RouteSource>,
    /// Best first; empty means "use the CDN".
    pub nodes: Vec<NodeEntry>,
}

pub struct Steering {
    db: Db,
    offline_after_ms: i64,
    routes: RwLock<Arc<RouteIndex>>,
    nodes: RwLock<Arc<HashMap<i64, NodeEntry>>>,
    loaded_generation: AtomicI64,
    refreshing: Mutex<()>,
    wake: Arc<Notify>,
}

impl Steering {
    pub fn new(db: Db, offline_after_ms: i64) -> Steering {
        Steering {
            db,
            offline_after_ms,
            routes: RwLock::new(Arc::new(RouteIndex::default())),
            nodes: RwLock::new(Arc::new(HashMap::new())),
            loaded_generation: AtomicI64::new(-1),
            refreshing: Mutex::new(()),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn offline_after_ms(&self) -> i64 {
        self.offline_after_ms
    }

    /// Asks the refresher to look now rather than at its next tick: this
    /// process just changed routing.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Brings the index up to date with the database: node health always,
    /// the prefix trie when the routing generation moved.
    pub async fn refresh(&self) -> Result<(), AppError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let generation: i64 =
            sqlx::query("SELECT value FROM portal_counters WHERE name = 'routing_generation'")
                .fetch_one(&self.db.pool)
                .await?
                .try_get("value")?;
        if generation != self.loaded_generation.load(Ordering::Acquire) {
            let started = std::time::Instant::now();
            let index = Arc::new(load_routes(&self.db).await?);
            tracing::debug!(
                prefixes = index.prefix_count(),
                took_ms = started.elapsed().as_millis() as u64,
                generation,
                "steering index rebuilt"
            );
            *self.routes.write().expect("steering lock") = index;
            self.loaded_generation.store(generation, Ordering::Release);
        }
        let nodes = Arc::new(load_nodes(&self.db).await?);
        *self.nodes.write().expect("steering lock") = nodes;
        Ok(())
    }

    /// Keeps the index fresh: every second, and at once when woken. Stops
    /// when the portal that owns the index is gone.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let steering = Arc::downgrade(self);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            loop {
                let Some(this) = steering.upgrade() else {
                    return;
                };
                if let Err(e) = this.refresh().await {
                    // The last good index keeps answering: when the
                    // database is away, steering goes on with what it knew.
                    tracing::warn!(error = %e, "refreshing the steering index");
                }
                drop(this);
                let woken = wake.notified();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = woken => {}
                }
            }
        });
    }

    fn snapshot(&self) -> (Arc<RouteIndex>, Arc<HashMap<i64, NodeEntry>>) {
        (
            self.routes.read().expect("steering lock").clone(),
            self.nodes.read().expect("steering lock").clone(),
        )
    }

    pub fn prefix_count(&self) -> usize {
        self.snapshot().0.prefix_count()
    }

    pub fn steer(&self, client: Ipv4Addr) -> Decision {
        self.steer_where(client, |_| true)
    }

    /// Steering for a download from `host`: only nodes that cache that host
    /// can take the client.
    pub fn steer_for_host(&self, client: Ipv4Addr, host: &str) -> Decision {
        self.steer_where(client, |n| {
            lastmile_wire::hosts::is_allowed(host, &n.extra_hosts)
        })
    }

    fn steer_where(&self, client: Ipv4Addr, serves: impl Fn(&NodeEntry) -> bool) -> Decision {
        let (routes, nodes) = self.snapshot();
        let now = now_ms();
        let eligible = |m: &Member| {
            nodes.get(&m.node_id).is_some_and(|n| {
                n.standing(now, self.offline_after_ms) == SteerVerdict::Chosen && serves(n)
            })
        };
        match routes.lookup(client, eligible) {
            Some((prefix, members)) => Decision {
                prefix: Some(prefix),
                source: members.first().map(|m| m.source),
                nodes: members
                    .iter()
                    .filter_map(|m| nodes.get(&m.node_id).cloned())
                    .collect(),
            },
            None => Decision {
                prefix: None,
                source: None,
                nodes: Vec::new(),
            },
        }
    }

    /// The answer for `client`, and for every node of `org_id` why it was
    /// or was not chosen.
    pub fn explain(&self, client: Ipv4Addr, org_id: i64) -> SteerExplanation {
        let decision = self.steer(client);
        let (routes, nodes) = self.snapshot();
        let now = now_ms();
        let chosen_len = decision.prefix.map(|p| p.prefix_len());
        let mut candidates = Vec::new();
        let mut listed = std::collections::HashSet::new();
        for (prefix, members) in routes.covering(client) {
            for member in members {
                let Some(node) = nodes.get(&member.node_id) else {
                    continue;
                };
                if node.org_id != org_id {
                    continue;
                }
                let standing = node.standing(now, self.offline_after_ms);
                let verdict = match (standing, chosen_len) {
                    (SteerVerdict::Chosen, Some(len)) if prefix.prefix_len() < len => {
                        SteerVerdict::LessSpecific
                    }
                    (SteerVerdict::Chosen, _) => {
                        if decision.nodes.first().map(|n| n.id) == Some(node.id) {
                            SteerVerdict::Chosen
                        } else {
                            SteerVerdict::Alternative
                        }
                    }
                    (other, _) => other,
                };
                listed.insert(node.id);
                candidates.push(SteerCandidate {
                    node: node.name.clone(),
                    prefix: Some(prefix.to_string()),
                    source: Some(member.source),
                    verdict,
                });
            }
        }
        let mut unmatched: Vec<&NodeEntry> = nodes
            .values()
            .filter(|n| n.org_id == org_id && !listed.contains(&n.id))
            .collect();
        unmatched.sort_by_key(|n| n.name.to_lowercase());
        candidates.extend(unmatched.into_iter().map(|n| SteerCandidate {
            node: n.name.clone(),
            prefix: None,
            source: None,
            verdict: SteerVerdict::NoMatchingPrefix,
        }));
        let chosen_elsewhere = decision.nodes.first().is_some_and(|n| n.org_id != org_id);
        SteerExplanation {
            client: client.to_string(),
            use_cdn: decision.nodes.is_empty(),
            chosen: if chosen_elsewhere {
                None
            } else {
                decision.nodes.first().map(|n| n.name.clone())
            },
            chosen_url: if chosen_elsewhere {
                None
            } else {
                decision.nodes.first().map(NodeEntry::url)
            },
            served_by_other_org: chosen_elsewhere,
            prefix: decision.prefix.map(|p| p.to_string()),
            source: decision.source,
            candidates,
        }
    }
}

async fn load_routes(db: &Db) -> Result<RouteIndex, AppError> {
    // Only the prefixes of each node's current mode count: a node switched
    // to BGP stops serving the blocks that were typed in for it, and back.
    let rows = sqlx::query(
        "SELECT p.prefix AS prefix, p.node_id AS node_id, 0 AS bgp FROM node_prefixes p \
         JOIN nodes n ON n.id = p.node_id WHERE n.routing_mode = 'manual' \
         UNION ALL \
         SELECT r.prefix AS prefix, r.node_id AS node_id, 1 AS bgp FROM bgp_routes r \
         JOIN nodes n ON n.id = r.node_id WHERE n.routing_mode = 'bgp'",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut claims = Vec::with_capacity(rows.len());
    for row in rows {
        let prefix: String = row.try_get("prefix")?;
        let Ok(net) = prefix.parse::<Ipv4Net>() else {
            tracing::warn!(%prefix, "unreadable prefix in the database, left out of steering");
            continue;
        };
        let source = if row.try_get::<i64, _>("bgp")? == 1 {
            RouteSource::Bgp
        } else {
            RouteSource::Manual
        };
        claims.push((
            net,
            Member {
                node_id: row.try_get("node_id")?,
                source,
            },
        ));
    }
    Ok(RouteIndex::build(claims))
}

async fn load_nodes(db: &Db) -> Result<HashMap<i64, NodeEntry>, AppError> {
    let rows = sqlx::query(
        "SELECT id, org_id, name, public_ipv4, data_port, enabled, draining, registered_at, \
         last_seen_at, serving, extra_hosts FROM nodes",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut nodes = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        nodes.insert(
            id,
            NodeEntry {
                id,
                org_id: row.try_get("org_id")?,
                name: row.try_get("name")?,
                public_ipv4: row.try_get("public_ipv4")?,
                data_port: row
                    .try_get::<Option<i64>, _>("data_port")?
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(80),
                enabled: get_bool(&row, "enabled")?,
                draining: get_bool(&row, "draining")?,
                registered: row.try_get::<Option<i64>, _>("registered_at")?.is_some(),
                last_seen_at_ms: row.try_get("last_seen_at")?,
                serving: get_bool(&row, "serving")?,
                extra_hosts: row
                    .try_get::<String, _>("extra_hosts")?
                    .lines()
                    .map(str::to_string)
                    .collect(),
            },
        );
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn manual(node_id: i64) -> Member {
        Member {
            node_id,
            source: RouteSource::Manual,
        }
    }

    #[test]
    fn the_longest_prefix_with_a_usable_node_wins() {
        let index = RouteIndex::build(vec![
            (net("10.0.0.0/8"), manual(1)),
            (net("10.1.0.0/16"), manual(2)),
            (net("10.1.1.0/24"), manual(3)),
        ]);
        let addr: Ipv4Addr = "10.1.1.7".parse().unwrap();
        let (prefix, members) = index.lookup(addr, |_| true).unwrap();
        assert_eq!((prefix, members[0].node_id), (net("10.1.1.0/24"), 3));
        // Node 3 unusable: the next most specific takes over.
        let (prefix, members) = index.lookup(addr, |m| m.node_id != 3).unwrap();
        assert_eq!((prefix, members[0].node_id), (net("10.1.0.0/16"), 2));
        assert!(index.lookup(addr, |_| false).is_none());
        assert!(index
            .lookup("192.0.2.1".parse().unwrap(), |_| true)
            .is_none());
        let covering: Vec<Ipv4Net> = index.covering(addr).map(|(n, _)| n).collect();
        assert_eq!(
            covering,
            [net("10.1.1.0/24"), net("10.1.0.0/16"), net("10.0.0.0/8")]
        );
    }

    #[test]
    fn clients_spread_evenly_and_stay_put() {
        let index = RouteIndex::build(vec![
            (net("10.0.0.0/16"), manual(1)),
            (net("10.0.0.0/16"), manual(2)),
            (net("10.0.0.0/16"), manual(3)),
        ]);
        let mut counts = HashMap::new();
        for i in 0..3000u32 {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 7);
            let (_, first) = index.lookup(addr, |_| true).unwrap();
            let (_, again) = index.lookup(addr, |_| true).unwrap();
            assert_eq!(first, again, "a client keeps its node");
            assert_eq!(first.len(), 3);
            *counts.entry(first[0].node_id).or_insert(0) += 1;
            // Without node 1, its clients move and nobody else's do.
            let (_, without_one) = index.lookup(addr, |m| m.node_id != 1).unwrap();
            if first[0].node_id != 1 {
                assert_eq!(without_one[0], first[0]);
            }
        }
        for node in 1..=3 {
            let share = counts[&node] as f64 / 3000.0;
            assert!((0.28..0.39).contains(&share), "node {node}: {share}");
        }
    }

    #[test]
    fn duplicate_claims_count_once() {
        let index = RouteIndex::build(vec![
            (net("10.0.0.0/8"), manual(1)),
            (net("10.0.0.0/8"), manual(1)),
        ]);
        assert_eq!(index.prefix_count(), 1);
        let (_, members) = index.lookup("10.9.9.9".parse().unwrap(), |_| true).unwrap();
        assert_eq!(members.len(), 1);
    }
}
