//! What node agents and the portal say to each other, in one place, so the
//! two sides cannot drift apart. All bodies are JSON.
//!
//! The conversation, in the order it happens (the model is Apache Traffic
//! Control's: agents pull, apply, acknowledge; the portal never pushes):
//!
//! 1. [`REGISTER_PATH`]: the agent trades a single-use registration key for a
//!    node credential, sent as `Authorization: Bearer <credential>` on every
//!    later request.
//! 2. [`CONFIG_PATH`]: a conditional GET. The ETag is the config version; a
//!    poll with `If-None-Match` answers 304 while nothing changed, so a fleet
//!    of thousands of agents polling every few seconds costs little.
//! 3. [`APPLIED_PATH`]: the agent says which version it applied, or why it
//!    could not. The portal shows "applied", "pending" or "failed".
//! 4. [`REPORT_PATH`]: every report interval, the agent's cumulative counters,
//!    health, problems and (in BGP mode) sessions and learned prefixes.

use serde::{Deserialize, Serialize};

pub mod hosts;

/// `POST`: trade a single-use registration key for a node credential.
pub const REGISTER_PATH: &str = "/api/v1/agent/register";
/// `GET` (conditional): the node's configuration.
pub const CONFIG_PATH: &str = "/api/v1/agent/config";
/// `POST`: which configuration version the agent applied, or why not.
pub const APPLIED_PATH: &str = "/api/v1/agent/applied";
/// `POST`: counters, health and BGP state.
pub const REPORT_PATH: &str = "/api/v1/agent/report";

/// Where the install script is served by the portal.
pub const INSTALL_SCRIPT_PATH: &str = "/install.sh";
/// Where the agent binary for x86-64 Linux is served by the portal.
pub const AGENT_DOWNLOAD_PATH: &str = "/downloads/lastmile-agent-x86_64-linux";

/// The environment variable the install script reads the key from, so the
/// key never appears in a command's arguments.
pub const REGISTRATION_KEY_ENV: &str = "LASTMILE_REGISTRATION_KEY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The registration key the portal issued for the node.
    pub key: String,
    /// The agent's version, shown in the portal.
    pub agent_version: String,
    /// The server's host name, recorded in the audit log.
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub node_id: i64,
    pub node_name: String,
    pub org_name: String,
    /// The node's secret: sent as `Authorization: Bearer <credential>` on
    /// every later agent request. The portal keeps only its hash.
    pub credential: String,
}

/// Every error the portal's JSON endpoints return: a stable code for
/// programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// Everything a node must do, as the portal wants it now. The agent keeps
/// the last one it applied on disk and serves on it while the portal is
/// away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Bumped by every change; the agent acknowledges the version it applied.
    pub version: i64,
    pub node_name: String,
    /// A disabled node stops serving (its health URL says 503), so clients
    /// that still reach it fall back to the CDN.
    pub enabled: bool,
    pub public_ipv4: String,
    pub max_egress_mbps: u64,
    pub drives: Vec<DriveSpec>,
    /// Content hosts the operator added to the built-in allow-list.
    pub extra_allowed_hosts: Vec<String>,
    pub routing: Routing,
    /// How often the portal wants counters; it calls a node offline after
    /// three silent intervals.
    pub report_interval_secs: u64,
    /// How often to poll for a new configuration.
    pub poll_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveSpec {
    pub path: String,
    pub size_gb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Routing {
    /// Subscribers are the CIDR blocks an operator typed into the portal;
    /// the node itself has nothing to do for routing.
    Manual,
    /// The node peers with the ISP's router and learns the prefixes.
    Bgp {
        asn: u32,
        neighbors: Vec<BgpNeighbor>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpNeighbor {
    pub address: String,
    pub asn: u32,
}

/// `POST` [`APPLIED_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRequest {
    pub version: i64,
    /// `None` when the version was applied; otherwise what stopped it, for
    /// the operator (e.g. "drive /srv/cache1 is not writable").
    pub error: Option<String>,
}

/// `POST` [`REPORT_PATH`].
///
/// Counters are cumulative since the agent process started (`boot_id`
/// names that life), so a lost report loses nothing: the next one carries
/// the sum. The portal turns them into deltas, and a new `boot_id` tells it
/// the counters started again from zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub boot_id: String,
    pub agent_version: String,
    /// The port the data path listens on, so steering can hand out
    /// `http://<public address>:<port>/` when it is not 80.
    pub data_port: u16,
    pub counters: Counters,
    pub active_connections: u64,
    pub drives: Vec<DriveUsage>,
    /// Whether the data path can serve right now.
    pub serving: bool,
    /// What the operator should look at, in plain words. Empty when healthy.
    pub problems: Vec<String>,
    /// Present in BGP mode.
    pub bgp: Option<BgpReport>,
}

/// Cumulative since the agent's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    /// Bytes served to clients from the cache.
    pub hit_bytes: u64,
    /// Bytes served to clients that had to come from the origin first.
    pub miss_bytes: u64,
    /// Bytes fetched from the origin.
    pub origin_bytes: u64,
    pub errors: u64,
    /// Bytes served, by content family.
    pub families: FamilyBytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyBytes {
    pub windows_update: u64,
    pub office: u64,
    pub xbox: u64,
    pub edge: u64,
    pub other: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveUsage {
    pub path: String,
    pub used_bytes: u64,
    pub quota_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpReport {
    pub sessions: Vec<BgpSession>,
    /// Changes to the learned routes since the version the portal last
    /// confirmed, or the whole table (`base: None`).
    pub routes: Option<RoutesUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSession {
    pub neighbor: String,
    pub asn: u32,
    /// Idle, Connect, Active, OpenSent, OpenConfirm or Established.
    pub state: String,
    /// When the session reached Established, Unix milliseconds.
    pub established_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub prefixes: u64,
}

/// Learned routes travel as deltas between versions the portal confirmed.
/// When the portal holds a different version than `base` (a report was
/// lost after it was applied, say), it refuses the delta and answers
/// [`ReportResponse::send_full_routes`]; the agent then sends the whole
/// table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutesUpdate {
    /// The version these changes lead to.
    pub version: u64,
    /// The version they start from; `None` replaces the whole table.
    pub base: Option<u64>,
    pub announced: Vec<LearnedRoute>,
    /// Prefixes no longer learned from that neighbor.
    pub withdrawn: Vec<WithdrawnRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LearnedRoute {
    pub prefix: String,
    pub neighbor: String,
    pub next_hop: String,
    pub as_path: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WithdrawnRoute {
    pub prefix: String,
    pub neighbor: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportResponse {
    /// The delta did not start from the portal's version: send everything.
    pub send_full_routes: bool,
}

/// The answer of the steering API, `GET /api/v1/steer?client=<ipv4>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteerResponse {
    pub client: String,
    /// `true` when no healthy node serves the client: download from the CDN.
    pub use_cdn: bool,
    /// Nodes to use, best first; the rest are alternatives of the same
    /// specificity for when the first fails.
    pub nodes: Vec<SteerNode>,
    /// The matching prefix, e.g. `203.0.113.0/24`.
    pub prefix: Option<String>,
    /// `manual` or `bgp`.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteerNode {
    pub name: String,
    /// `http://<address>[:port]`; a request for `http://<host>/<path>` goes
    /// to `<url>/<path>?cacheHostOrigin=<host>`.
    pub url: String,
}

/// The query parameter that names the origin host on a node URL.
pub const ORIGIN_PARAM: &str = "cacheHostOrigin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_tagged_by_mode() {
        let manual = serde_json::to_string(&Routing::Manual).unwrap();
        assert_eq!(manual, r#"{"mode":"manual"}"#);
        let bgp: Routing = serde_json::from_str(
            r#"{"mode":"bgp","asn":4200000001,"neighbors":[{"address":"192.0.2.1","asn":64512}]}"#,
        )
        .unwrap();
        assert_eq!(
            bgp,
            Routing::Bgp {
                asn: 4_200_000_001,
                neighbors: vec![BgpNeighbor {
                    address: "192.0.2.1".into(),
                    asn: 64512
                }]
            }
        );
    }
}
