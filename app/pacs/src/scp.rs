//! Focal's storage SCP for C-MOVE: the node opens its own association to Focal to send the
//! instances. It listens only while one move runs, accepts associations only when they call
//! Focal's AE title from the moving node's AE title, and writes each instance whole.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};

use super::PacsError;
use super::dimse::{self, field};
use super::receive::{RETRIEVE_SYNTAXES, STORAGE_CLASSES, Tally, answer_store};

/// Admits only the moving node, calling Focal by its AE title.
struct OnlyFrom {
    peer_ae: String,
}

impl AccessControl for OnlyFrom {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        } else if calling_ae_title.trim() != self.peer_ae.trim() {
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        } else {
            Ok(())
        }
    }
}

/// What the SCP took in.
#[derive(Debug, Default)]
pub struct Received {
    pub tally: Tally,
    /// Associations that ended badly or were refused (no patient data).
    pub problems: Vec<String>,
}

/// A running storage SCP; `stop` ends it and returns what arrived.
pub struct StorageScp {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Received>,
}

impl StorageScp {
    pub fn stop(self) -> Received {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_else(|_| Received {
            problems: vec!["the storage SCP thread failed".into()],
            ..Default::default()
        })
    }
}

/// Listens on `listen` (`HOST:PORT`) for the node `peer_ae` sending to `our_ae`, writing into
/// `folder`.
pub fn start(
    listen: &str,
    our_ae: &str,
    peer_ae: &str,
    folder: PathBuf,
    limits: dimse::Limits,
) -> Result<StorageScp, PacsError> {
    let timeout_s = limits.seconds;
    let listener = TcpListener::bind(listen)
        .map_err(|e| PacsError::Config(format!("cannot listen on {listen} for the node's C-STORE: {e}")))?;
    let address = listener.local_addr().map_err(|e| PacsError::Io(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| PacsError::Io(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (our_ae, peer_ae, flag) = (our_ae.to_string(), peer_ae.to_string(), stop.clone());
    let handle = std::thread::spawn(move || {
        let mut got = Received::default();
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(OnlyFrom { peer_ae })
            .ae_title(our_ae)
            .read_timeout(Duration::from_secs(timeout_s.max(1)))
            .write_timeout(Duration::from_secs(timeout_s.max(1)));
        for class in STORAGE_CLASSES {
            options = options.with_abstract_syntax(*class);
        }
        for ts in RETRIEVE_SYNTAXES {
            options = options.with_transfer_syntax(*ts);
        }
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((socket, _)) => {
                    if socket.set_nonblocking(false).is_err() {
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    match options.establish(socket) {
                        Ok(assoc) => serve(assoc, &folder, &mut got, limits),
                        Err(e) => got
                            .problems
                            .push(format!("an association was refused: {}", crate::study::error_chain(&e))),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    got.problems.push(format!("accept: {e}"));
                    break;
                }
            }
        }
        got
    });
    Ok(StorageScp { address, stop, handle })
}

fn serve(
    mut assoc: dicom_ul::association::ServerAssociation<std::net::TcpStream>,
    folder: &std::path::Path,
    got: &mut Received,
    limits: dimse::Limits,
) {
    let syntaxes: HashMap<u8, String> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.clone()))
        .collect();
    loop {
        let msg = match dimse::receive(&mut assoc, limits) {
            Ok(m) => m,
            Err(PacsError::Released) => return,
            Err(e) => {
                got.problems.push(format!("the node's association ended: {e}"));
                return;
            }
        };
        if msg.field() != field::C_STORE_RQ {
            got.problems
                .push(format!("unexpected message 0x{:04X} on the storage SCP", msg.field()));
            let _ = assoc.abort();
            return;
        }
        if let Err(e) = answer_store(&mut assoc, &msg, &syntaxes, folder, &mut got.tally) {
            got.problems.push(format!("answering the node: {e}"));
            return;
        }
    }
}
