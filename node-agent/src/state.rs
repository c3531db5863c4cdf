//! What the agent keeps on disk between runs, in its state folder:
//!
//! - `agent.json`: the portal's address, how to trust it, and the node
//!   credential. Owner-only (0600): the credential is the node's identity.
//! - `config.json`: the last configuration that was applied successfully,
//!   with its ETag. After a restart the agent serves on it at once, whether
//!   or not the portal can be reached.
//!
//! Files are replaced atomically (write a temporary file, fsync, rename),
//! so a crash leaves the old file or the new one, never half of either.

use lastmile_wire::NodeConfig;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::portal::Trust;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub portal: String,
    pub trust: Trust,
    pub node_id: i64,
    pub node_name: String,
    pub org_name: String,
    pub credential: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedConfig {
    pub etag: String,
    pub config: NodeConfig,
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    fn registration_path(&self) -> PathBuf {
        self.dir.join("agent.json")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The folder, made if missing and closed to everyone but its owner.
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    pub fn load_registration(&self) -> Result<Registration, String> {
        let path = self.registration_path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{} cannot be read ({e}): register this server first with `lastmile-agent register`",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))
    }

    pub fn save_registration(&self, registration: &Registration) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(registration)?;
        write_atomically(&self.registration_path(), &json, 0o600)
    }

    /// The last good configuration, if there is one. A damaged file is
    /// reported and ignored: the agent then waits for the portal.
    pub fn load_config(&self) -> Option<SavedConfig> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str(&text) {
            Ok(saved) => Some(saved),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged saved configuration");
                None
            }
        }
    }

    pub fn save_config(&self, saved: &SavedConfig) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(saved)?;
        write_atomically(&self.config_path(), &json, 0o600)
    }
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        // The rename is durable only once the folder is.
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_file_is_owner_only_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.ensure().unwrap();
        let reg = Registration {
            portal: "https://portal.example:8443".into(),
            trust: Trust::Pin("sha256//x".into()),
            node_id: 7,
            node_name: "edge1".into(),
            org_name: "ISP".into(),
            credential: "lmn_secret".into(),
        };
        state.save_registration(&reg).unwrap();
        let loaded = state.load_registration().unwrap();
        assert_eq!(loaded.credential, "lmn_secret");
        assert_eq!(loaded.trust, reg.trust);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("state/agent.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(dir.path().join("state"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        assert!(state.load_config().is_none());
        std::fs::write(dir.path().join("state/config.json"), b"{broken").unwrap();
        assert!(state.load_config().is_none(), "a damaged file is ignored");
    }
}
