//! DICOM nodes that misbehave on purpose, written for these tests on 127.0.0.1 (Orthanc cannot
//! be made to): one that answers a C-ECHO with command fragments never marked last, one that
//! sends its answer a byte at a time, one that negotiates the association a byte at a time.
//! Focal must refuse the flood by its size and end the trickles by the exchange's deadline,
//! not wait for each byte within the socket's timeout. Each server stops by itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use dicom_ul::pdu::{
    AssociationAC, PDataValue, PDataValueType, Pdu, PresentationContextResult, PresentationContextResultReason,
    UserVariableItem, read_pdu, write_pdu,
};
use focal::pacs::PacsError;
use focal::pacs::nodes::{DEFAULT_MAX_DATASET_MB, Node};

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// After the association, command fragments of 16,000 bytes, never the last, up to 200 MB.
    Flood,
    /// After the association, a P-DATA PDU sent one byte every 250 ms (for about 10 s).
    TrickleAnswer,
    /// The A-ASSOCIATE-AC itself sent one byte every 250 ms.
    TrickleAssociation,
}

/// One PDU as it came: header and body.
fn read_raw_pdu(s: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 6];
    s.read_exact(&mut header).expect("PDU header");
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let mut pdu = header.to_vec();
    pdu.resize(6 + len, 0);
    s.read_exact(&mut pdu[6..]).expect("PDU body");
    pdu
}

fn encode(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    write_pdu(&mut out, pdu).expect("write PDU");
    out
}

/// The A-ASSOCIATE-AC that accepts every context the request proposes (Implicit VR LE).
fn accept(request: &[u8]) -> Vec<u8> {
    let Some(Pdu::AssociationRQ(rq)) = read_pdu(request, 16_384, false).expect("parse request") else {
        panic!("expected an A-ASSOCIATE-RQ");
    };
    encode(&Pdu::AssociationAC(AssociationAC {
        protocol_version: rq.protocol_version,
        calling_ae_title: rq.calling_ae_title,
        called_ae_title: rq.called_ae_title,
        application_context_name: rq.application_context_name,
        presentation_contexts: rq
            .presentation_contexts
            .iter()
            .map(|pc| PresentationContextResult {
                id: pc.id,
                reason: PresentationContextResultReason::Acceptance,
                transfer_syntax: "1.2.840.10008.1.2".into(),
            })
            .collect(),
        user_variables: vec![
            UserVariableItem::MaxLength(16_384),
            UserVariableItem::ImplementationClassUID("1.2.826.0.1.3680043.10.1502.99".into()),
        ],
    }))
}

/// Writes `bytes` one at a time, 250 ms apart; false once the peer has gone.
fn trickle(s: &mut TcpStream, bytes: &[u8]) -> bool {
    for b in bytes {
        if s.write_all(&[*b]).and_then(|()| s.flush()).is_err() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    true
}

/// A one-connection hostile node on a free loopback port; its thread says whether Focal hung
/// up before the node had finished misbehaving.
fn hostile(how: Misbehaviour) -> (u16, JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let request = read_raw_pdu(&mut s);
        let ac = accept(&request);
        if let Misbehaviour::TrickleAssociation = how {
            return !trickle(&mut s, &ac[..ac.len().min(40)]);
        }
        s.write_all(&ac).expect("send AC");
        let _echo = read_raw_pdu(&mut s);
        match how {
            Misbehaviour::Flood => {
                let fragment = encode(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: 1,
                        value_type: PDataValueType::Command,
                        is_last: false,
                        data: vec![0u8; 16_000],
                    }],
                });
                for _ in 0..(200_000_000 / fragment.len()) {
                    if s.write_all(&fragment).is_err() {
                        return true;
                    }
                }
                false
            }
            Misbehaviour::TrickleAnswer => {
                let answer = encode(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: 1,
                        value_type: PDataValueType::Command,
                        is_last: true,
                        data: vec![0u8; 34],
                    }],
                });
                !trickle(&mut s, &answer)
            }
            Misbehaviour::TrickleAssociation => unreachable!(),
        }
    });
    (port, handle)
}

fn node(port: u16) -> Node {
    Node {
        name: "hostile".into(),
        ae_title: "HOSTILE".into(),
        host: "127.0.0.1".into(),
        port,
        our_ae: "FOCAL".into(),
        timeout_s: 1,
        max_dataset_mb: DEFAULT_MAX_DATASET_MB,
    }
}

#[test]
fn endless_command_fragments_are_refused_by_size() {
    let (port, server) = hostile(Misbehaviour::Flood);
    let err = focal::pacs::scu::echo(&node(port)).expect_err("a flood is no answer");
    assert!(
        matches!(&err, PacsError::Protocol(m) if m.contains("command set grew past 64 KiB")),
        "{err}"
    );
    assert!(server.join().expect("server"), "Focal kept reading the flood");
}

#[test]
fn an_answer_sent_a_byte_at_a_time_ends_at_the_exchange_deadline() {
    let (port, server) = hostile(Misbehaviour::TrickleAnswer);
    let err = focal::pacs::scu::echo(&node(port)).expect_err("a trickle is no answer");
    assert!(matches!(err, PacsError::Timeout(1)), "{err}");
    assert!(server.join().expect("server"), "Focal waited for the whole trickle");
}

#[test]
fn an_association_negotiated_a_byte_at_a_time_ends_at_its_deadline() {
    let (port, server) = hostile(Misbehaviour::TrickleAssociation);
    let err = focal::pacs::scu::echo(&node(port)).expect_err("a trickle is no association");
    assert!(matches!(err, PacsError::Timeout(2)), "{err}");
    // The negotiation's thread stays until its own read gives up; the server sees the
    // connection go when that thread drops it, which the test does not wait for.
    drop(server);
}
