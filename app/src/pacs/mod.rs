//! PACS: the DICOM nodes a user configured, and query (C-FIND), retrieve (C-GET) and store
//! (C-STORE) against them over DIMSE, with dicom-ul's associations.
//!
//! Focal opens a network connection only here, only to a configured node, and only when a
//! command or the window asks. Retrieved files and the node list are written atomically; the
//! node list is private to its owner (0600). Nothing here logs patient data.

pub mod dimse;
pub mod nodes;
pub mod scp;
pub mod scu;

pub use nodes::{Config, Node};
pub use scu::{FindLevel, GetSummary, Query, StoreSummary, echo, find, get, move_to_focal, store};

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
    #[error("cancelled")]
    Cancelled,
    #[error("the node released the association before the operation ended")]
    Released,
    #[error("{0}")]
    Io(String),
}

impl PacsError {
    /// Sorts a dicom-ul error into what it means for the user.
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
    pub(crate) fn with_timeout(self, seconds: u64) -> PacsError {
        match self {
            PacsError::Timeout(_) => PacsError::Timeout(seconds),
            other => other,
        }
    }
}

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
