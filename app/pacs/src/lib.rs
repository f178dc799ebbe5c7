//! focal-pacs: the DICOM nodes a user configured, and query, retrieve and store against them: over
//! DIMSE (C-FIND, C-GET, C-MOVE, C-STORE, with dicom-ul's associations) or DICOMweb (QIDO-RS,
//! WADO-RS, STOW-RS, with ureq over rustls). `Endpoint` does either for a node of either kind.
//!
//! Focal opens a network connection only here, only to a configured node, and only when a
//! command or the window asks. Retrieved files and the node list are written atomically; the
//! node list is private to its owner (0600). Nothing here logs patient data.

// Paths inside this crate name the layers below as Focal does (crate::study, crate::uid).
pub(crate) use focal_study as study;
pub(crate) use focal_util::{cache_dir, places, uid};
#[cfg(feature = "network")]
pub(crate) use focal_util::outdir;

pub mod dicomweb;
pub mod dimse;
pub mod nodes;
pub mod query;
#[cfg(feature = "network")]
pub mod receive;
#[cfg(feature = "network")]
pub mod scp;
#[cfg(feature = "network")]
pub mod scu;

pub use nodes::{Auth, Config, Endpoint, Node, WebNode};
pub use query::{FindLevel, GetSummary, Query, StoreSummary};
#[cfg(feature = "network")]
pub use scu::{echo, find, get, move_to_focal, store};

/// The default retrieve cache: `$FOCAL_CACHE/retrieved`, else `~/.cache/focal/retrieved`;
/// an error without either (retrieved studies are patients' data: never the temporary folder).
pub fn default_cache() -> Result<std::path::PathBuf, PacsError> {
    Ok(crate::cache_dir().map_err(|e| PacsError::Config(e.to_string()))?.join("retrieved"))
}

/// Log levels the DICOMweb client may not go beyond: its trace level writes requests as sent,
/// `Authorization` header included.
pub const CLIENT_LOG_CAPS: [&str; 3] = ["ureq=warn", "ureq_proto=warn", "rustls=warn"];

/// What went wrong talking to a node, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect: {0}")]
    Unreachable(String),
    #[error("the node refused the association: {0} (check the node's AE title and that it knows Focal's AE title)")]
    Rejected(String),
    #[error("the node accepted none of the services asked for ({0})")]
    NotSupported(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("the association was aborted: {0}")]
    Aborted(String),
    #[error("DICOM protocol error: {0}")]
    Protocol(String),
    #[error("the node answered {0}")]
    Failed(String),
    #[error("the connection broke off: {0}")]
    Disconnected(String),
    #[error("TLS failed: {0} (for a server with a private certificate authority, give its certificate with --ca-file)")]
    Tls(String),
    #[error("the server refused Focal's credentials ({0}); check the user, password or token")]
    Unauthorized(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the node released the association before the operation ended")]
    Released,
    #[error("{0}")]
    Io(String),
}

impl PacsError {
    /// Sorts a dicom-ul error into what it means for the user.
    #[cfg(feature = "network")]
    pub(crate) fn from_ul(doing: &str, e: dicom_ul::association::Error) -> PacsError {
        use dicom_ul::association::Error as E;
        let chain = crate::study::error_chain(&e);
        match &e {
            E::Rejected { association_rj, .. } => PacsError::Rejected(association_rj.source.to_string()),
            E::Connect { .. } | E::ToAddress { .. } => PacsError::Unreachable(chain),
            E::NoAcceptedPresentationContexts { .. } => PacsError::NotSupported(chain),
            E::Aborted { .. } => PacsError::Aborted("by the node".into()),
            E::ConnectionClosed { .. } => PacsError::Aborted("the node closed the connection".into()),
            E::Timeout { .. } => PacsError::Timeout(0),
            E::ReceivePdu { .. } | E::WireRead { .. } if is_timeout(&e) => PacsError::Timeout(0),
            _ => PacsError::Protocol(format!("{doing} the node: {chain}")),
        }
    }

    /// The timeout error with the bound that was used.
    #[cfg(feature = "network")]
    pub(crate) fn with_timeout(self, seconds: u64) -> PacsError {
        match self {
            PacsError::Timeout(_) => PacsError::Timeout(seconds),
            other => other,
        }
    }
}

#[cfg(feature = "network")]
impl Endpoint {
    /// C-ECHO, or a one-study QIDO-RS query: is the node there and does it let Focal in?
    pub fn echo(&self) -> Result<std::time::Duration, PacsError> {
        match self {
            Endpoint::Dimse(n) => echo(n),
            Endpoint::Web(w) => dicomweb::echo(w),
        }
    }

    /// C-FIND or QIDO-RS; rows keyed by attribute keyword either way.
    pub fn find(
        &self,
        level: FindLevel,
        query: &Query,
    ) -> Result<Vec<std::collections::BTreeMap<String, String>>, PacsError> {
        match self {
            Endpoint::Dimse(n) => find(n, level, query),
            Endpoint::Web(w) => dicomweb::find(w, level, query),
        }
    }

    /// C-GET or WADO-RS into the cache's folder for the study; resumable either way.
    pub fn get(
        &self,
        study_uid: &str,
        series_uid: Option<&str>,
        cache: &std::path::Path,
        progress: &dyn Fn(usize, Option<usize>),
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<GetSummary, PacsError> {
        match self {
            Endpoint::Dimse(n) => get(n, study_uid, series_uid, cache, progress, cancel),
            Endpoint::Web(w) => dicomweb::get(w, study_uid, series_uid, cache, progress, cancel),
        }
    }

    /// C-STORE or STOW-RS of DICOM files.
    pub fn store(&self, files: &[std::path::PathBuf]) -> Result<StoreSummary, PacsError> {
        match self {
            Endpoint::Dimse(n) => store(n, files),
            Endpoint::Web(w) => dicomweb::store(w, files),
        }
    }
}

impl Endpoint {
    /// The protocol's words for each operation (for messages).
    pub fn verbs(&self) -> [&'static str; 4] {
        match self {
            Endpoint::Dimse(_) => ["C-ECHO", "C-FIND", "C-GET", "C-STORE"],
            Endpoint::Web(_) => ["QIDO-RS echo", "QIDO-RS", "WADO-RS", "STOW-RS"],
        }
    }
}

#[cfg(feature = "network")]
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        }
        source = s.source();
    }
    false
}
