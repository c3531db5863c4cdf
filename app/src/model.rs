//! Types that travel between the server and the browser.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::AppError;

/// What a person may do inside their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// People, and everything an operator can do.
    Admin,
    /// Nodes and routing.
    Operator,
    /// Reads everything, changes nothing.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Role::Admin => "people and everything else",
            Role::Operator => "nodes and routing",
            Role::Viewer => "read only",
        }
    }

    pub fn can_manage_people(self) -> bool {
        self == Role::Admin
    }

    pub fn can_operate(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(AppError::invalid(format!(
                "Unknown role \"{other}\": choose admin, operator or viewer."
            ))),
        }
    }
}

/// The signed-in person, as every page and server function sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: i64,
    pub username: String,
    pub org_id: i64,
    pub org_name: String,
    pub role: Role,
    pub must_change_password: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub client_addr: String,
}

/// One page of the audit log, newest first. `older` is the cursor for the
/// next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub older: Option<i64>,
}

/// What a form posted without JavaScript left for the page it returns to:
/// the error that refused it, and what was typed into it (never passwords),
/// so the person fixes their input instead of typing it all again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    pub message: Option<String>,
    pub form: Option<RefusedForm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedForm {
    /// The server function's path, so only the form that was posted is
    /// filled in again, not another on the same page with a field of the
    /// same name.
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl RefusedForm {
    /// The value `field` had; `None` when the form did not send it (an
    /// unticked checkbox).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }
}

/// Shortest password the portal accepts, temporary ones included.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longer inputs are refused before hashing, so nobody can make the server
/// hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 256;

pub fn validate_password(password: &str, field: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(AppError::invalid(format!(
            "{field} must be at least {MIN_PASSWORD_LEN} characters long."
        )));
    }
    if chars > MAX_PASSWORD_LEN {
        return Err(AppError::invalid(format!(
            "{field} must be at most {MAX_PASSWORD_LEN} characters long."
        )));
    }
    Ok(())
}

/// Normalizes and checks a sign-in name: 1 to 64 characters of letters,
/// digits, `.`, `_`, `-` and `@`, compared case-insensitively.
pub fn normalize_username(raw: &str) -> Result<String, AppError> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() {
        return Err(AppError::invalid("Enter a user name."));
    }
    if name.chars().count() > 64 {
        return Err(AppError::invalid(
            "User names are at most 64 characters long.",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(AppError::invalid(format!(
            "User names may contain letters, digits, '.', '_', '-' and '@', not {bad:?}."
        )));
    }
    Ok(name)
}

pub fn normalize_org_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("Enter the organization's name."));
    }
    if name.chars().count() > 100 {
        return Err(AppError::invalid(
            "Organization names are at most 100 characters long.",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "Organization names cannot contain control characters.",
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_checked() {
        assert_eq!(
            normalize_username("  Alice@ISP.example ").unwrap(),
            "alice@isp.example"
        );
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username(&"x".repeat(65)).is_err());
    }

    #[test]
    fn roles_parse_and_refuse_unknown() {
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn password_length_is_enforced() {
        assert!(validate_password("short", "Password").is_err());
        assert!(validate_password("long enough!", "Password").is_ok());
        assert!(validate_password(&"p".repeat(257), "Password").is_err());
    }
}

/// How a node learns which subscribers it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// CIDR blocks the operator enters.
    Manual,
    /// Prefixes the node learns from the operator's router.
    Bgp,
}

impl RoutingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Manual => "manual",
            RoutingMode::Bgp => "bgp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RoutingMode::Manual => "Manual CIDR",
            RoutingMode::Bgp => "BGP",
        }
    }
}

impl FromStr for RoutingMode {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "manual" => Ok(RoutingMode::Manual),
            "bgp" => Ok(RoutingMode::Bgp),
            other => Err(AppError::invalid(format!(
                "Unknown routing mode \"{other}\": choose manual or bgp."
            ))),
        }
    }
}

/// Whether the node's agent is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// No agent has ever registered for it.
    NeverConnected,
    Online,
    /// Registered, but no report within three report intervals.
    Offline,
    /// Switched off by an operator.
    Disabled,
}

impl NodeState {
    pub fn label(self) -> &'static str {
        match self {
            NodeState::NeverConnected => "never connected",
            NodeState::Online => "online",
            NodeState::Offline => "offline",
            NodeState::Disabled => "disabled",
        }
    }
}

/// Whether the node runs its latest configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigState {
    /// Not yet acknowledged by the agent.
    Pending,
    Applied,
    /// The agent tried and could not; the reason is kept.
    Failed,
}

impl ConfigState {
    pub fn label(self) -> &'static str {
        match self {
            ConfigState::Pending => "pending",
            ConfigState::Applied => "applied",
            ConfigState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    pub path: String,
    pub size_gb: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    pub address: String,
    pub asn: u32,
}

/// A manual CIDR block, and the organization's other nodes that serve the
/// same block (traffic is spread across them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualPrefix {
    pub prefix: String,
    pub shared_with: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub public_ipv4: String,
    pub max_egress_mbps: i64,
    pub enabled: bool,
    /// Steering sends it no new clients; it keeps serving.
    pub draining: bool,
    pub routing_mode: RoutingMode,
    pub state: NodeState,
    pub config_state: ConfigState,
    pub config_version: i64,
    pub agent_version: Option<String>,
    pub last_seen_at_ms: Option<i64>,
    pub apply_error: Option<String>,
}

/// The registration key currently on file for a node (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub created_by: String,
    pub used_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub summary: NodeSummary,
    pub drives: Vec<Drive>,
    pub manual_prefixes: Vec<ManualPrefix>,
    pub bgp_asn: Option<u32>,
    pub bgp_neighbors: Vec<Neighbor>,
    pub registered_at_ms: Option<i64>,
    pub agent_hostname: Option<String>,
    pub registration_key: Option<KeyStatus>,
    /// Content hosts the operator added to the built-in allow-list.
    pub extra_hosts: Vec<String>,
    pub health: AgentHealth,
    pub totals: TrafficTotals,
    pub learned: LearnedSummary,
}

/// A freshly issued registration key: shown once, never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub node: String,
    pub key: String,
    pub expires_at_ms: i64,
    /// The one command that installs and registers the agent.
    pub install_command: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// A freshly created API token: shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiToken {
    pub name: String,
    pub token: String,
}

/// Where a steering prefix comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    /// Typed into the portal by an operator.
    Manual = 0,
    /// Learned by the node from the ISP's router.
    Bgp = 1,
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Manual => "manual",
            RouteSource::Bgp => "bgp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RouteSource::Manual => "manual CIDR",
            RouteSource::Bgp => "learned over BGP",
        }
    }
}

/// Why steering did or did not pick a node for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SteerVerdict {
    /// The client goes here.
    Chosen,
    /// Equally specific and healthy: used when the chosen node fails.
    Alternative,
    /// Healthy, but a longer prefix of another node matches.
    LessSpecific,
    Disabled,
    /// Keeps serving its clients, takes no new ones.
    Draining,
    /// No report within three report intervals.
    Offline,
    NeverConnected,
    /// Its agent has not reported that it can serve (no report yet, no
    /// writable drive, disabled in its configuration).
    NotServing,
    /// None of its prefixes contains the address.
    NoMatchingPrefix,
}

impl SteerVerdict {
    pub fn describe(self) -> &'static str {
        match self {
            SteerVerdict::Chosen => "chosen",
            SteerVerdict::Alternative => "alternative (equally specific; spread by client address)",
            SteerVerdict::LessSpecific => "not chosen: a more specific prefix matches",
            SteerVerdict::Disabled => "not chosen: disabled",
            SteerVerdict::Draining => "not chosen: draining",
            SteerVerdict::Offline => "not chosen: offline (no recent report)",
            SteerVerdict::NeverConnected => "not chosen: its agent never connected",
            SteerVerdict::NotServing => "not chosen: its agent has not reported that it can serve",
            SteerVerdict::NoMatchingPrefix => "does not serve this address",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteerCandidate {
    pub node: String,
    pub prefix: Option<String>,
    pub source: Option<RouteSource>,
    pub verdict: SteerVerdict,
}

/// "Where does this subscriber go, and why?"
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteerExplanation {
    pub client: String,
    pub use_cdn: bool,
    /// The chosen node, when it is one of the asking organization's.
    pub chosen: Option<String>,
    pub chosen_url: Option<String>,
    /// The address is served by a node of another organization (whose
    /// details are not shown).
    pub served_by_other_org: bool,
    pub prefix: Option<String>,
    pub source: Option<RouteSource>,
    /// The asking organization's nodes, most specific match first.
    pub candidates: Vec<SteerCandidate>,
}

/// Traffic totals since the node was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficTotals {
    pub requests: i64,
    pub hit_bytes: i64,
    pub miss_bytes: i64,
    pub origin_bytes: i64,
    pub errors: i64,
    pub active_connections: i64,
}

/// What the node learned over BGP, in short.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedSummary {
    pub prefixes: i64,
    /// Distinct IPv4 addresses the prefixes cover.
    pub addresses: u64,
}

/// One learned route, as the JSON download lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRouteView {
    pub prefix: String,
    pub neighbor: String,
    pub next_hop: String,
    pub as_path: Vec<u32>,
    pub learned_at_ms: i64,
}

/// What the agent said in its last report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHealth {
    pub serving: bool,
    pub data_port: Option<u16>,
    pub problems: Vec<String>,
    pub drives: Vec<lastmile_wire::DriveUsage>,
    pub bgp_sessions: Vec<lastmile_wire::BgpSession>,
}
