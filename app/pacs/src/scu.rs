//! Focal as a service class user: C-ECHO, C-FIND (study and series level, Study Root),
//! C-GET (the node sends the instances back on the same association, so no inbound port is
//! needed) and C-STORE.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::PresentationContextResultReason;

use super::dimse::{
    self, Association, EXPLICIT_VR_LE, IMPLICIT_VR_LE, NO_DATASET, Value, WITH_DATASET, field,
};
use super::query::{FindLevel, GetSummary, Query, StoreSummary, return_keys};
use super::receive::{RETRIEVE_SYNTAXES, STORAGE_CLASSES, Tally, answer_store, created_study_folder};
use super::{Node, PacsError};

pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";


fn options(node: &Node) -> ClientAssociationOptions<'static> {
    let t = Duration::from_secs(node.timeout_s.max(1));
    ClientAssociationOptions::new()
        .calling_ae_title(node.our_ae.clone())
        .called_ae_title(node.ae_title.clone())
        .connection_timeout(t)
        .read_timeout(t)
        .write_timeout(t)
}

fn establish(node: &Node, opts: ClientAssociationOptions<'static>) -> Result<Association, PacsError> {
    // The connection and each read of the negotiation have the node's timeout; the whole has
    // twice it, so that a node answering a byte at a time cannot hold Focal. A negotiation
    // still under way then is left to its thread, which drops the association when it ends.
    let (tx, rx) = std::sync::mpsc::channel();
    let (host, port) = (node.host.clone(), node.port);
    std::thread::spawn(move || {
        let _ = tx.send(opts.establish((host.as_str(), port)));
    });
    let whole = Duration::from_secs(2 * node.timeout_s.max(1));
    let established = rx.recv_timeout(whole).map_err(|_| PacsError::Timeout(2 * node.timeout_s.max(1)))?;
    let mut assoc =
        established.map_err(|e| PacsError::from_ul("connecting to", e).with_timeout(node.timeout_s))?;
    // DIMSE is request/response: small responses (a C-STORE-RSP per retrieved instance) must
    // leave at once, not wait for Nagle's algorithm and the peer's delayed ACK (~40 ms each).
    if let Err(e) = assoc.inner_stream().set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    Ok(assoc)
}

/// The accepted context for an abstract syntax, and its transfer syntax.
fn context_for(assoc: &Association, abstract_syntax: &str) -> Option<(u8, String)> {
    assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance && pc.abstract_syntax == abstract_syntax)
        .map(|pc| (pc.id, pc.transfer_syntax.clone()))
}

fn finish(assoc: Association) {
    if let Err(e) = assoc.release() {
        tracing::debug!("release: {}", crate::study::error_chain(&e));
    }
}

/// C-ECHO: the round trip time of a verification request.
pub fn echo(node: &Node) -> Result<Duration, PacsError> {
    let started = Instant::now();
    let mut assoc = establish(
        node,
        options(node).with_presentation_context(VERIFICATION, vec![IMPLICIT_VR_LE]),
    )?;
    let (ctx, _) = context_for(&assoc, VERIFICATION).ok_or_else(|| PacsError::NotSupported("verification".into()))?;
    let cmd = dimse::command(&[
        (tags::AFFECTED_SOP_CLASS_UID, Value::Ui(VERIFICATION)),
        (tags::COMMAND_FIELD, Value::Us(field::C_ECHO_RQ)),
        (tags::MESSAGE_ID, Value::Us(1)),
        (tags::COMMAND_DATA_SET_TYPE, Value::Us(NO_DATASET)),
    ])?;
    dimse::send(&mut assoc, ctx, &cmd, None)?;
    let rsp = dimse::receive(&mut assoc, node.limits()).map_err(|e| e.with_timeout(node.timeout_s))?;
    finish(assoc);
    if rsp.field() != field::C_ECHO_RSP || rsp.status() != 0 {
        return Err(PacsError::Failed(dimse::status_text(rsp.status())));
    }
    Ok(started.elapsed())
}

fn identifier(level: FindLevel, q: &Query) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let level_name = match level {
        FindLevel::Study => "STUDY",
        FindLevel::Series => "SERIES",
    };
    obj.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level_name),
    ));
    for (_, tag, vr) in return_keys(level) {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
    }
    let modality_tag = match level {
        FindLevel::Study => (tags::MODALITIES_IN_STUDY, VR::CS),
        FindLevel::Series => (tags::MODALITY, VR::CS),
    };
    let keys = [
        (tags::PATIENT_NAME, VR::PN, &q.patient_name),
        (tags::PATIENT_ID, VR::LO, &q.patient_id),
        (tags::STUDY_DATE, VR::DA, &q.study_date),
        (modality_tag.0, modality_tag.1, &q.modality),
        (tags::ACCESSION_NUMBER, VR::SH, &q.accession),
        (tags::STUDY_INSTANCE_UID, VR::UI, &q.study_uid),
        (tags::SERIES_INSTANCE_UID, VR::UI, &q.series_uid),
    ];
    for (tag, vr, value) in keys {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
    }
    obj
}

/// Opens an association whose options propose `class`, and sends the query/retrieve request
/// (`command_field`, plus `extra` command elements) with its identifier. Returns the
/// association, the request's context and its transfer syntax.
fn send_request(
    node: &Node,
    opts: ClientAssociationOptions<'static>,
    (class, name): (&str, &str),
    command_field: u16,
    extra: &[(Tag, Value)],
    identifier: &InMemDicomObject,
) -> Result<(Association, u8, String), PacsError> {
    let mut assoc = establish(node, opts)?;
    let (ctx, ts) = context_for(&assoc, class).ok_or_else(|| PacsError::NotSupported(name.into()))?;
    let mut elements = vec![
        (tags::AFFECTED_SOP_CLASS_UID, Value::Ui(class)),
        (tags::COMMAND_FIELD, Value::Us(command_field)),
        (tags::MESSAGE_ID, Value::Us(1)),
        (tags::PRIORITY, Value::Us(0)),
        (tags::COMMAND_DATA_SET_TYPE, Value::Us(WITH_DATASET)),
    ];
    elements.extend(extra.iter().map(|(t, v)| (*t, v.clone())));
    let cmd = dimse::command(&elements)?;
    dimse::send(&mut assoc, ctx, &cmd, Some(&dimse::encode(identifier, &ts)?))?;
    Ok((assoc, ctx, ts))
}

/// C-FIND: one map of keyword → value per match, in the node's order.
pub fn find(node: &Node, level: FindLevel, query: &Query) -> Result<Vec<BTreeMap<String, String>>, PacsError> {
    let opts = options(node).with_presentation_context(STUDY_ROOT_FIND, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    let (mut assoc, _, ts) = send_request(
        node,
        opts,
        (STUDY_ROOT_FIND, "Study Root C-FIND"),
        field::C_FIND_RQ,
        &[],
        &identifier(level, query),
    )?;
    let mut matches = Vec::new();
    loop {
        let rsp = dimse::receive(&mut assoc, node.limits()).map_err(|e| e.with_timeout(node.timeout_s))?;
        match rsp.status() {
            0xFF00 | 0xFF01 => {
                let Some(bytes) = &rsp.data else { continue };
                let obj = dimse::decode(bytes, &ts)?;
                let mut row = BTreeMap::new();
                for (name, tag, _) in return_keys(level) {
                    if let Some(v) = obj.element(tag).ok().and_then(|e| e.to_str().ok()) {
                        row.insert(name.to_string(), v.trim_end_matches(['\0', ' ']).to_string());
                    }
                }
                matches.push(row);
            }
            0x0000 => break,
            s => {
                let _ = assoc.abort();
                return Err(PacsError::Failed(dimse::status_text(s)));
            }
        }
    }
    finish(assoc);
    Ok(matches)
}

/// C-GET of a study (or one series of it) into `study_folder(cache, study)`. Each instance is
/// written whole (temporary name, then rename) as it arrives, so an interrupted retrieve keeps
/// what arrived and a second one writes only what is missing.
pub fn get(
    node: &Node,
    study_uid: &str,
    series_uid: Option<&str>,
    cache: &Path,
    progress: &dyn Fn(usize, Option<usize>),
    cancel: &AtomicBool,
) -> Result<GetSummary, PacsError> {
    let started = Instant::now();
    let folder = created_study_folder(cache, study_uid)?;
    let mut opts = options(node).with_presentation_context(STUDY_ROOT_GET, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
    for class in STORAGE_CLASSES {
        opts = opts
            .with_presentation_context(*class, RETRIEVE_SYNTAXES.to_vec())
            .with_role_selection(*class, false, true);
    }
    let ident = retrieve_identifier(study_uid, series_uid);
    let (mut assoc, ctx, _) = send_request(
        node,
        opts,
        (STUDY_ROOT_GET, "Study Root C-GET"),
        field::C_GET_RQ,
        &[],
        &ident,
    )?;
    let syntaxes: HashMap<u8, String> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.clone()))
        .collect();
    let mut warning = None;
    let mut cancel_sent = false;
    let mut total: Option<usize> = None;
    let mut tally = Tally::default();
    loop {
        if cancel.load(Ordering::Relaxed) && !cancel_sent {
            let c = dimse::command(&[
                (tags::COMMAND_FIELD, Value::Us(field::C_CANCEL_RQ)),
                (tags::MESSAGE_ID_BEING_RESPONDED_TO, Value::Us(1)),
                (tags::COMMAND_DATA_SET_TYPE, Value::Us(NO_DATASET)),
            ])?;
            dimse::send(&mut assoc, ctx, &c, None)?;
            cancel_sent = true;
        }
        let msg = match dimse::receive(&mut assoc, node.limits()) {
            Ok(m) => m,
            Err(e) => {
                // What arrived is on disk, whole; the caller can retrieve again to resume.
                return Err(e.with_timeout(node.timeout_s));
            }
        };
        match msg.field() {
            field::C_STORE_RQ => {
                answer_store(&mut assoc, &msg, &syntaxes, &folder, &mut tally)?;
                progress(tally.received + tally.already_had + tally.failed, total);
            }
            field::C_GET_RSP => match msg.status() {
                0xFF00 => {
                    let count = |t| msg.us(t).map_or(0, usize::from);
                    total = Some(
                        count(tags::NUMBER_OF_REMAINING_SUBOPERATIONS)
                            + count(tags::NUMBER_OF_COMPLETED_SUBOPERATIONS)
                            + count(tags::NUMBER_OF_FAILED_SUBOPERATIONS)
                            + count(tags::NUMBER_OF_WARNING_SUBOPERATIONS),
                    );
                }
                0x0000 => break,
                0xFE00 => {
                    finish(assoc);
                    return Err(PacsError::Cancelled);
                }
                0xB000 => {
                    let failed = msg.us(tags::NUMBER_OF_FAILED_SUBOPERATIONS).unwrap_or(0);
                    warning = Some(format!("{failed} instance(s) could not be sent by the node"));
                    break;
                }
                s => {
                    let _ = assoc.abort();
                    return Err(PacsError::Failed(dimse::status_text(s)));
                }
            },
            other => {
                let _ = assoc.abort();
                return Err(PacsError::Protocol(format!(
                    "unexpected message 0x{other:04X} during C-GET"
                )));
            }
        }
    }
    finish(assoc);
    Ok(GetSummary::from_tally(folder, tally, warning, started))
}

/// The identifier of a study- or series-level retrieve.
fn retrieve_identifier(study_uid: &str, series_uid: Option<&str>) -> InMemDicomObject {
    let mut ident = InMemDicomObject::new_empty();
    let level = if series_uid.is_some() { "SERIES" } else { "STUDY" };
    ident.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(level),
    ));
    ident.put(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(study_uid),
    ));
    if let Some(s) = series_uid {
        ident.put(DataElement::new(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(s),
        ));
    }
    ident
}

/// C-MOVE of a study (or series) to Focal itself: a storage SCP listens on `listen` while the
/// move runs (the node must know Focal's AE title at that address), taking instances only
/// from this node, into `study_folder(cache, study)` as `get` does.
pub fn move_to_focal(
    node: &Node,
    study_uid: &str,
    series_uid: Option<&str>,
    cache: &Path,
    listen: &str,
    progress: &dyn Fn(usize, Option<usize>),
) -> Result<GetSummary, PacsError> {
    let started = Instant::now();
    let folder = created_study_folder(cache, study_uid)?;
    let scp = super::scp::start(listen, &node.our_ae, &node.ae_title, folder.clone(), node.limits())?;
    let result = (|| {
        let opts = options(node).with_presentation_context(STUDY_ROOT_MOVE, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
        let (mut assoc, _, _) = send_request(
            node,
            opts,
            (STUDY_ROOT_MOVE, "Study Root C-MOVE"),
            field::C_MOVE_RQ,
            &[(tags::MOVE_DESTINATION, Value::Ae(&node.our_ae))],
            &retrieve_identifier(study_uid, series_uid),
        )?;
        let mut warning = None;
        loop {
            let rsp = dimse::receive(&mut assoc, node.limits()).map_err(|e| e.with_timeout(node.timeout_s))?;
            if rsp.field() != field::C_MOVE_RSP {
                let _ = assoc.abort();
                return Err(PacsError::Protocol(format!(
                    "unexpected message 0x{:04X} during C-MOVE",
                    rsp.field()
                )));
            }
            let count = |t| rsp.us(t).map_or(0, usize::from);
            let done = count(tags::NUMBER_OF_COMPLETED_SUBOPERATIONS);
            match rsp.status() {
                0xFF00 => progress(done, Some(done + count(tags::NUMBER_OF_REMAINING_SUBOPERATIONS))),
                0x0000 => break,
                0xB000 => {
                    warning = Some(format!(
                        "{} instance(s) could not be sent by the node",
                        count(tags::NUMBER_OF_FAILED_SUBOPERATIONS)
                    ));
                    break;
                }
                s => {
                    let _ = assoc.abort();
                    return Err(PacsError::Failed(dimse::status_text(s)));
                }
            }
        }
        finish(assoc);
        Ok(warning)
    })();
    let got = scp.stop();
    let warning = result?;
    for p in &got.problems {
        tracing::warn!("storage SCP: {p}");
    }
    let warning = warning.or_else(|| got.problems.first().cloned());
    Ok(GetSummary::from_tally(folder, got.tally, warning, started))
}

/// C-STORE of DICOM files, each in its own encoding when the node accepts it, else converted
/// to Explicit or Implicit VR Little Endian when the file is not compressed.
pub fn store(node: &Node, files: &[PathBuf]) -> Result<StoreSummary, PacsError> {
    let started = Instant::now();
    let mut objects = Vec::new();
    let mut summary = StoreSummary::default();
    for f in files {
        match dicom_object::open_file(f) {
            Ok(obj) => objects.push((f.clone(), obj)),
            Err(e) => summary.failed.push((f.clone(), format!("not a DICOM file: {e}"))),
        }
    }
    if objects.is_empty() {
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }
    // One context per (class, own syntax), and one per class for the little-endian fallbacks.
    let mut proposed: Vec<(String, Vec<String>)> = Vec::new();
    for (_, obj) in &objects {
        let class = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
        for p in [
            (class.clone(), vec![ts.clone()]),
            (
                class.clone(),
                vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()],
            ),
        ] {
            if !proposed.contains(&p) {
                proposed.push(p);
            }
        }
    }
    if proposed.len() > 128 {
        return Err(PacsError::Config(
            "more than 64 different SOP classes in one store".into(),
        ));
    }
    let mut opts = options(node);
    for (class, ts) in &proposed {
        opts = opts.with_presentation_context(class.clone(), ts.clone());
    }
    let mut assoc = establish(node, opts)?;
    let accepted: Vec<(u8, String, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| (pc.id, pc.abstract_syntax.clone(), pc.transfer_syntax.clone()))
        .collect();
    for (i, (path, obj)) in objects.iter().enumerate() {
        let class = obj.meta().media_storage_sop_class_uid().trim_end_matches('\0');
        let instance = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0');
        let own = obj.meta().transfer_syntax().trim_end_matches('\0');
        let native = [EXPLICIT_VR_LE, IMPLICIT_VR_LE, uids::EXPLICIT_VR_LITTLE_ENDIAN].contains(&own);
        let choice = accepted
            .iter()
            .find(|(_, a, t)| a == class && t == own)
            .or_else(|| accepted.iter().find(|(_, a, _)| a == class).filter(|_| native));
        let Some((ctx, _, ts)) = choice else {
            summary.failed.push((
                path.clone(),
                format!("the node does not accept SOP class {class} in this encoding"),
            ));
            continue;
        };
        let data = dimse::encode(obj, ts)?;
        let message_id = (i % 0xFFFF + 1) as u16;
        let cmd = dimse::command(&[
            (tags::AFFECTED_SOP_CLASS_UID, Value::Ui(class)),
            (tags::COMMAND_FIELD, Value::Us(field::C_STORE_RQ)),
            (tags::MESSAGE_ID, Value::Us(message_id)),
            (tags::PRIORITY, Value::Us(0)),
            (tags::COMMAND_DATA_SET_TYPE, Value::Us(WITH_DATASET)),
            (tags::AFFECTED_SOP_INSTANCE_UID, Value::Ui(instance)),
        ])?;
        dimse::send(&mut assoc, *ctx, &cmd, Some(&data))?;
        let rsp = dimse::receive(&mut assoc, node.limits()).map_err(|e| e.with_timeout(node.timeout_s))?;
        match rsp.status() {
            0x0000 | 0xB000 | 0xB006 | 0xB007 => summary.stored += 1,
            s => summary.failed.push((path.clone(), dimse::status_text(s))),
        }
    }
    finish(assoc);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
