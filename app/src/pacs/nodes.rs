//! The configured DICOM nodes: `pacs.json` under `$FOCAL_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/focal`, else `~/.config/focal`. The file is the owner's alone (0600, in a
//! 0700 folder) and replaced whole on every change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PacsError;

/// Focal's own AE title when a node does not name another.
pub const DEFAULT_OUR_AE: &str = "FOCAL";
/// Seconds to wait for a connection, an association or an answer.
pub const DEFAULT_TIMEOUT_S: u64 = 30;

/// One DICOM node (DIMSE).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Node {
    /// The user's name for it (`focal pacs echo NAME`).
    pub name: String,
    /// The node's AE title.
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Focal's AE title towards this node (the node must know it).
    #[serde(default = "default_our_ae")]
    pub our_ae: String,
    /// Seconds to wait for a connection, an association or an answer.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_our_ae() -> String {
    DEFAULT_OUR_AE.to_string()
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_S
}

impl Node {
    /// `AE@host:port`, as DICOM tools write a node (no patient data).
    pub fn address(&self) -> String {
        format!("{}@{}:{}", self.ae_title, self.host, self.port)
    }

    /// Refuses what no DICOM node could be.
    pub fn validate(&self) -> Result<(), PacsError> {
        for (what, ae) in [
            ("the node's AE title", &self.ae_title),
            ("Focal's AE title", &self.our_ae),
        ] {
            let t = ae.trim();
            if t.is_empty() || t.len() > 16 || t.contains('\\') || t.chars().any(|c| c.is_control() || !c.is_ascii()) {
                return Err(PacsError::Config(format!(
                    "{what} {ae:?} is not an AE title (1 to 16 ASCII characters, no backslash)"
                )));
            }
        }
        if self.name.trim().is_empty() {
            return Err(PacsError::Config("a node needs a name".into()));
        }
        if self.host.trim().is_empty() {
            return Err(PacsError::Config(format!("node {}: no host", self.name)));
        }
        if self.port == 0 {
            return Err(PacsError::Config(format!("node {}: port 0", self.name)));
        }
        Ok(())
    }
}

/// Everything in `pacs.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// Where `pacs.json` lives.
pub fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("FOCAL_CONFIG_DIR") {
        return PathBuf::from(d).join("pacs.json");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("focal").join("pacs.json")
}

impl Config {
    /// The nodes in `path`; none when the file does not exist yet.
    pub fn load(path: &Path) -> Result<Config, PacsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(PacsError::Config(format!("cannot read {}: {e}", path.display()))),
        };
        let config: Config = serde_json::from_str(&text)
            .map_err(|e| PacsError::Config(format!("{} is not a valid node list: {e}", path.display())))?;
        for n in &config.nodes {
            n.validate()
                .map_err(|e| PacsError::Config(format!("{}: {e}", path.display())))?;
        }
        Ok(config)
    }

    /// Writes the node list whole, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), PacsError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |e: std::io::Error| PacsError::Config(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| PacsError::Config(e.to_string()))?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn node(&self, name: &str) -> Result<&Node, PacsError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            PacsError::Config(if known.is_empty() {
                format!("no node named {name:?}: none is configured yet (focal pacs add NAME --ae AE --host HOST --port PORT)")
            } else {
                format!("no node named {name:?} (configured: {})", known.join(", "))
            })
        })
    }

    /// Adds a node, or replaces the one with the same name.
    pub fn upsert(&mut self, node: Node) -> Result<(), PacsError> {
        node.validate()?;
        match self.nodes.iter_mut().find(|n| n.name == node.name) {
            Some(n) => *n = node,
            None => self.nodes.push(node),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ae: &str) -> Node {
        Node {
            name: "pacs".into(),
            ae_title: ae.into(),
            host: "127.0.0.1".into(),
            port: 104,
            our_ae: DEFAULT_OUR_AE.into(),
            timeout_s: 5,
        }
    }

    #[test]
    fn ae_titles_are_checked() {
        assert!(node("ORTHANC").validate().is_ok());
        assert!(node("").validate().is_err());
        assert!(node("A_TITLE_THAT_IS_TOO_LONG").validate().is_err());
        assert!(node("BAD\\AE").validate().is_err());
    }

    #[test]
    fn saved_node_list_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf").join("pacs.json");
        let mut c = Config::default();
        c.upsert(node("ORTHANC")).unwrap();
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let back = Config::load(&path).unwrap();
        assert_eq!(back.nodes, c.nodes);
        assert!(back.node("other").unwrap_err().to_string().contains("configured: pacs"));
    }
}
