//! DIMSE messages over a dicom-ul association: sent cut into P-DATA values no larger than the
//! peer accepts, received whole within `Limits` (the PDUs themselves are dicom-ul's).

use std::net::TcpStream;

use dicom_ul::association::SyncAssociation;
use dicom_ul::association::client::ClientAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use super::{Fragment, Limits, MIN_BYTES_PER_S, Message, Reassembly};
use crate::PacsError;

pub type Association = ClientAssociation<TcpStream>;

/// PDV header: 4 bytes of length, the context ID and the message control header.
const PDV_HEADER: usize = 6;

/// The largest P-DATA value payload the peer accepts in one PDU.
fn chunk_len<A: SyncAssociation<TcpStream>>(assoc: &A) -> usize {
    match assoc.peer_max_pdu_length() {
        0 => 1 << 20,
        n => (n as usize).saturating_sub(PDV_HEADER).max(64),
    }
}

/// Sends one message: the command set, then the data set (if any) in fragments.
pub fn send<A: SyncAssociation<TcpStream>>(
    assoc: &mut A,
    context: u8,
    command: &[u8],
    data: Option<&[u8]>,
) -> Result<(), PacsError> {
    let chunk = chunk_len(assoc);
    for (i, part) in command.chunks(chunk).enumerate() {
        let last = (i + 1) * chunk >= command.len();
        send_pdv(assoc, context, PDataValueType::Command, last, part)?;
    }
    if let Some(data) = data {
        if data.is_empty() {
            send_pdv(assoc, context, PDataValueType::Data, true, &[])?;
        }
        for (i, part) in data.chunks(chunk).enumerate() {
            let last = (i + 1) * chunk >= data.len();
            send_pdv(assoc, context, PDataValueType::Data, last, part)?;
        }
    }
    Ok(())
}

fn send_pdv<A: SyncAssociation<TcpStream>>(
    assoc: &mut A,
    context: u8,
    value_type: PDataValueType,
    is_last: bool,
    data: &[u8],
) -> Result<(), PacsError> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context,
            value_type,
            is_last,
            data: data.to_vec(),
        }],
    };
    SyncAssociation::send(assoc, &pdu).map_err(|e| PacsError::from_ul("sending to", e))
}

/// Shuts a socket down when a message takes longer than its limits allow, so that the blocked
/// read returns; disarmed on drop.
struct Watchdog {
    stop: Option<std::sync::mpsc::Sender<()>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Watchdog {
    fn arm(stream: &TcpStream, seconds: u64) -> Option<Watchdog> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::time::{Duration, Instant};
        let stream = stream.try_clone().ok()?;
        let (stop, wait) = std::sync::mpsc::channel::<()>();
        let fired = std::sync::Arc::new(AtomicBool::new(false));
        let received = std::sync::Arc::new(AtomicU64::new(0));
        let (f, r) = (fired.clone(), received.clone());
        let start = Instant::now();
        std::thread::spawn(move || loop {
            let allowed = Duration::from_secs(seconds + r.load(Ordering::Relaxed) / MIN_BYTES_PER_S);
            let left = allowed.saturating_sub(start.elapsed());
            if left.is_zero() {
                f.store(true, Ordering::SeqCst);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            match wait.recv_timeout(left) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                _ => return, // disarmed
            }
        });
        Some(Watchdog {
            stop: Some(stop),
            fired,
            received,
        })
    }

    fn add(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Receives one whole message (its command set and, when announced, its data set) within
/// `limits`: a longer command or data set is refused, and a message slower than allowed ends
/// in a timeout.
pub fn receive<A: SyncAssociation<TcpStream>>(assoc: &mut A, limits: Limits) -> Result<Message, PacsError> {
    let watchdog = Watchdog::arm(assoc.inner_stream(), limits.seconds);
    let result = receive_within(assoc, limits, watchdog.as_ref());
    match (result, &watchdog) {
        (Err(_), Some(w)) if w.fired() => Err(PacsError::Timeout(limits.seconds)),
        (result, _) => result,
    }
}

fn receive_within<A: SyncAssociation<TcpStream>>(
    assoc: &mut A,
    limits: Limits,
    watchdog: Option<&Watchdog>,
) -> Result<Message, PacsError> {
    let mut parts = Reassembly::new(limits);
    loop {
        if let Some(message) = parts.message()? {
            return Ok(message);
        }
        quick_ack(assoc);
        match SyncAssociation::receive(assoc).map_err(|e| PacsError::from_ul("receiving from", e))? {
            Pdu::PData { data: values } => {
                for v in values {
                    if let Some(w) = watchdog {
                        w.add(v.data.len());
                    }
                    parts.push(Fragment {
                        context: v.presentation_context_id,
                        command: v.value_type == PDataValueType::Command,
                        last: v.is_last,
                        data: &v.data,
                    })?;
                }
            }
            Pdu::AbortRQ { source } => return Err(PacsError::Aborted(format!("{source:?}"))),
            Pdu::ReleaseRQ => {
                let _ = SyncAssociation::send(assoc, &Pdu::ReleaseRP);
                return Err(PacsError::Released);
            }
            other => {
                return Err(PacsError::Protocol(format!(
                    "unexpected {} from the node",
                    other.short_description()
                )));
            }
        }
    }
}

/// Acknowledges what arrives at once rather than after the delayed-ACK timer. A node that
/// leaves Nagle's algorithm on (Orthanc does) holds its next small message until our ACK,
/// which would otherwise cost ~40 ms per retrieved instance. Linux resets the flag after
/// reads, so it is set before each one; elsewhere this does nothing.
fn quick_ack<A: SyncAssociation<TcpStream>>(assoc: &mut A) {
    #[cfg(target_os = "linux")]
    {
        let stream: &TcpStream = assoc.inner_stream();
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
            tracing::debug!("TCP_QUICKACK: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = assoc;
}
