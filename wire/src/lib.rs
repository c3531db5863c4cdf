//! What node agents and the portal say to each other, in one place, so the
//! two sides cannot drift apart. All bodies are JSON.

use serde::{Deserialize, Serialize};

/// `POST`: trade a single-use registration key for a node credential.
pub const REGISTER_PATH: &str = "/api/v1/agent/register";

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
