//! The configured DICOM nodes: `pacs.json` under `$FOCAL_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/focal`, else `~/.config/focal`. The file is the owner's alone (0600, in a
//! 0700 folder) and replaced whole on every change. It holds DIMSE nodes (`nodes`) and DICOMweb
//! servers (`web`), whose credentials it keeps; nothing prints them.

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
    /// The largest data set Focal takes from this node in one message (MiB). 1 GiB holds an
    /// enhanced multi-frame CT or MR of some 2,000 slices of 512 × 512 at 16 bits; raise it for
    /// larger objects (tomosynthesis, whole-slide images), which Focal does not view anyway.
    #[serde(default = "default_max_dataset_mb")]
    pub max_dataset_mb: u64,
}

/// See [`Node::max_dataset_mb`].
pub const DEFAULT_MAX_DATASET_MB: u64 = 1024;

fn default_max_dataset_mb() -> u64 {
    DEFAULT_MAX_DATASET_MB
}

impl Node {
    /// The bounds on each message received from this node.
    pub fn limits(&self) -> super::dimse::Limits {
        super::dimse::Limits::new(self.timeout_s, self.max_dataset_mb)
    }
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

/// How Focal proves who it is to a DICOMweb server.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Auth {
    #[default]
    None,
    /// HTTP basic authentication.
    Basic { user: String, password: String },
    /// A bearer token (OAuth 2 access token, API key).
    Bearer { token: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Auth {
    /// What kind of credential this is, never the secret itself.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "no authentication".into(),
            Auth::Basic { user, .. } => format!("basic as {user} (password hidden)"),
            Auth::Bearer { .. } => "bearer token (hidden)".into(),
        }
    }
}

/// One DICOMweb server (QIDO-RS, WADO-RS, STOW-RS under one base URL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebNode {
    pub name: String,
    /// The DICOMweb root, e.g. `https://pacs.example.org/dicom-web` (no credentials in it).
    pub url: String,
    #[serde(default)]
    pub auth: Auth,
    /// PEM file of the certificate authorities to trust for this server (default: the
    /// Mozilla roots built into Focal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection or for each answer.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

/// Whether `host` (as a URL writes it) is this machine.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl WebNode {
    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The URL as shown to users (it holds no credentials: `validate` refuses those).
    pub fn address(&self) -> String {
        self.base().to_string()
    }

    /// `(scheme, authority, host)` of the URL.
    fn parts(&self) -> Option<(&str, &str, &str)> {
        let (scheme, rest) = self.url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let host_port = authority.rsplit('@').next()?;
        let host = match host_port.rfind(':') {
            Some(i) if !host_port[i..].contains(']') => &host_port[..i],
            _ => host_port,
        };
        Some((scheme, authority, host))
    }

    /// Refuses what cannot be a DICOMweb server Focal may talk to.
    pub fn validate(&self) -> Result<(), PacsError> {
        if self.name.trim().is_empty() {
            return Err(PacsError::Config("a node needs a name".into()));
        }
        let Some((scheme, authority, host)) = self.parts() else {
            return Err(PacsError::Config(format!(
                "node {}: {:?} is not a URL (http://HOST:PORT/PATH or https://…)",
                self.name, self.url
            )));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(PacsError::Config(format!(
                "node {}: only http and https URLs are DICOMweb servers, not {scheme}",
                self.name
            )));
        }
        if authority.contains('@') {
            return Err(PacsError::Config(format!(
                "node {}: the URL holds credentials; give them with --user/--password-stdin or --token-stdin",
                self.name
            )));
        }
        if host.is_empty() {
            return Err(PacsError::Config(format!("node {}: no host in the URL", self.name)));
        }
        if scheme == "http" && self.auth != Auth::None && !is_loopback_host(host) {
            return Err(PacsError::Config(format!(
                "node {}: credentials would cross the network unencrypted; use an https URL",
                self.name
            )));
        }
        if self.timeout_s == 0 {
            return Err(PacsError::Config(format!("node {}: timeout 0", self.name)));
        }
        Ok(())
    }
}

/// A configured node of either kind.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Dimse(Node),
    Web(WebNode),
}

impl Endpoint {
    pub fn name(&self) -> &str {
        match self {
            Endpoint::Dimse(n) => &n.name,
            Endpoint::Web(w) => &w.name,
        }
    }

    /// `node NAME (AE@host:port)` or `node NAME (URL)`: no credentials, no patient data.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Dimse(n) => format!("node {} ({})", n.name, n.address()),
            Endpoint::Web(w) => format!("node {} ({})", w.name, w.address()),
        }
    }
}

/// Everything in `pacs.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// DICOMweb servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web: Vec<WebNode>,
}

/// Where `pacs.json` lives.
/// An error without a home folder or `FOCAL_CONFIG_DIR`: the file holds credentials, and is
/// never put in the temporary folder.
pub fn config_path() -> Result<PathBuf, PacsError> {
    Ok(crate::places::config_dir().map_err(|e| PacsError::Config(e.to_string()))?.join("pacs.json"))
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
        let in_file = |e: PacsError| PacsError::Config(format!("{}: {e}", path.display()));
        for n in &config.nodes {
            n.validate().map_err(in_file)?;
        }
        for w in &config.web {
            w.validate().map_err(in_file)?;
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

    /// Every node's name, DIMSE nodes first.
    pub fn names(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .chain(self.web.iter().map(|w| w.name.as_str()))
            .collect()
    }

    fn unknown(&self, name: &str) -> PacsError {
        let known = self.names();
        PacsError::Config(if known.is_empty() {
            format!(
                "no node named {name:?}: none is configured yet (focal pacs add NAME --ae AE --host HOST --port PORT, \
                 or focal pacs add-web NAME --url URL)"
            )
        } else {
            format!("no node named {name:?} (configured: {})", known.join(", "))
        })
    }

    /// The DIMSE node `name`.
    pub fn node(&self, name: &str) -> Result<&Node, PacsError> {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(n) => Ok(n),
            None if self.web.iter().any(|w| w.name == name) => Err(PacsError::Config(format!(
                "node {name:?} is a DICOMweb server, not a DIMSE node"
            ))),
            None => Err(self.unknown(name)),
        }
    }

    /// The node `name`, of either kind.
    pub fn endpoint(&self, name: &str) -> Result<Endpoint, PacsError> {
        if let Some(n) = self.nodes.iter().find(|n| n.name == name) {
            return Ok(Endpoint::Dimse(n.clone()));
        }
        match self.web.iter().find(|w| w.name == name) {
            Some(w) => Ok(Endpoint::Web(w.clone())),
            None => Err(self.unknown(name)),
        }
    }

    /// Adds a DIMSE node, or replaces the node with the same name (of either kind).
    pub fn upsert(&mut self, node: Node) -> Result<(), PacsError> {
        node.validate()?;
        self.web.retain(|w| w.name != node.name);
        match self.nodes.iter_mut().find(|n| n.name == node.name) {
            Some(n) => *n = node,
            None => self.nodes.push(node),
        }
        Ok(())
    }

    /// Adds a DICOMweb server, or replaces the node with the same name (of either kind).
    pub fn upsert_web(&mut self, node: WebNode) -> Result<(), PacsError> {
        node.validate()?;
        self.nodes.retain(|n| n.name != node.name);
        match self.web.iter_mut().find(|w| w.name == node.name) {
            Some(w) => *w = node,
            None => self.web.push(node),
        }
        Ok(())
    }

    /// Removes the node `name` (of either kind).
    pub fn remove(&mut self, name: &str) -> Result<(), PacsError> {
        let before = self.nodes.len() + self.web.len();
        self.nodes.retain(|n| n.name != name);
        self.web.retain(|w| w.name != name);
        if self.nodes.len() + self.web.len() == before {
            return Err(self.unknown(name));
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
            max_dataset_mb: DEFAULT_MAX_DATASET_MB,
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

    fn web(url: &str, auth: Auth) -> WebNode {
        WebNode {
            name: "web".into(),
            url: url.into(),
            auth,
            ca_file: None,
            timeout_s: 5,
        }
    }

    #[test]
    fn web_nodes_are_checked() {
        let basic = || Auth::Basic {
            user: "u".into(),
            password: "p".into(),
        };
        assert!(web("https://pacs.example.org/dicom-web", basic()).validate().is_ok());
        assert!(web("http://127.0.0.1:8042/dicom-web", basic()).validate().is_ok());
        assert!(web("http://[::1]:8042/dicom-web", basic()).validate().is_ok());
        assert!(web("http://pacs.example.org/dicom-web", Auth::None).validate().is_ok());
        let plain = web("http://pacs.example.org/dicom-web", basic()).validate().unwrap_err();
        assert!(plain.to_string().contains("unencrypted"), "{plain}");
        let inline = web("https://u:p@pacs.example.org/", Auth::None).validate().unwrap_err();
        assert!(inline.to_string().contains("holds credentials"), "{inline}");
        assert!(web("ftp://pacs.example.org/", Auth::None).validate().is_err());
        assert!(web("pacs.example.org", Auth::None).validate().is_err());
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let mut c = Config::default();
        c.upsert_web(web(
            "https://pacs.example.org/dicom-web",
            Auth::Basic {
                user: "reader".into(),
                password: "s3cret-pw".into(),
            },
        ))
        .unwrap();
        c.upsert_web(WebNode {
            name: "tok".into(),
            ..web("https://pacs.example.org/dicom-web", Auth::Bearer { token: "tok-123456".into() })
        })
        .unwrap();
        let shown = format!("{c:?} {:?} {:?}", c.endpoint("web").unwrap(), c.endpoint("tok").unwrap());
        assert!(!shown.contains("s3cret-pw") && !shown.contains("tok-123456"), "{shown}");
        assert!(shown.contains("basic as reader"), "{shown}");
    }

    #[test]
    fn one_name_one_node_across_kinds() {
        let mut c = Config::default();
        c.upsert(node("ORTHANC")).unwrap();
        c.upsert_web(WebNode {
            name: "pacs".into(),
            ..web("http://127.0.0.1:8042/dicom-web", Auth::None)
        })
        .unwrap();
        assert!(c.nodes.is_empty(), "the web node replaced the DIMSE node of that name");
        assert!(matches!(c.endpoint("pacs").unwrap(), Endpoint::Web(_)));
        assert!(c.node("pacs").unwrap_err().to_string().contains("DICOMweb"));
        c.remove("pacs").unwrap();
        assert!(c.remove("pacs").is_err());
    }
}
