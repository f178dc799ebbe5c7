//! What Focal takes in from a node, whichever way it comes (the instances a C-GET sends back on
//! its own association, or a C-MOVE's C-STOREs to Focal's storage SCP): the storage classes and
//! transfer syntaxes it accepts, each instance written whole, and the C-STORE answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;

use super::PacsError;
use super::dimse::{self, EXPLICIT_VR_LE, IMPLICIT_VR_LE, Message, NO_DATASET, Value, field};

/// Storage classes Focal accepts from a C-GET (at most 128 presentation contexts fit in one
/// association with the query classes).
pub(super) const STORAGE_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.4",      // MR
    "1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR
    "1.2.840.10008.5.1.4.1.1.2",      // CT
    "1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT
    "1.2.840.10008.5.1.4.1.1.128",    // PET
    "1.2.840.10008.5.1.4.1.1.130",    // Enhanced PET
    "1.2.840.10008.5.1.4.1.1.20",     // NM
    "1.2.840.10008.5.1.4.1.1.6.1",    // US
    "1.2.840.10008.5.1.4.1.1.3.1",    // US multi-frame
    "1.2.840.10008.5.1.4.1.1.1",      // CR
    "1.2.840.10008.5.1.4.1.1.1.1",    // DX presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  // DX processing
    "1.2.840.10008.5.1.4.1.1.1.2",    // MG presentation
    "1.2.840.10008.5.1.4.1.1.12.1",   // XA
    "1.2.840.10008.5.1.4.1.1.481.1",  // RT image
    "1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",    // MF greyscale byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",    // MF greyscale word SC
    "1.2.840.10008.5.1.4.1.1.7.4",    // MF true colour SC
    "1.2.840.10008.5.1.4.1.1.66.4",   // Segmentation
    "1.2.840.10008.5.1.4.1.1.30",     // Parametric Map
    "1.2.840.10008.5.1.4.1.1.104.1",  // Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.88.11",  // Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  // Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  // Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  // Comprehensive 3D SR (measurement reports, Focal's too)
    "1.2.840.10008.5.1.4.1.1.88.59",  // Key Object Selection
    "1.2.840.10008.5.1.4.1.1.481.3",  // RT Structure Set
    "1.2.840.10008.5.1.4.1.1.11.1",   // Greyscale softcopy presentation state
    "1.2.840.10008.5.1.4.1.1.77.1.4", // VL photographic
];

/// Transfer syntaxes Focal reads, offered for retrieved instances (the node keeps the stored
/// encoding when it is among them, or converts).
pub(super) const RETRIEVE_SYNTAXES: &[&str] = &[
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.51", // JPEG extended
    "1.2.840.10008.1.2.4.57", // JPEG lossless
    "1.2.840.10008.1.2.4.70", // JPEG lossless SV1
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.5",    // RLE
    "1.2.840.10008.1.2.1.99", // deflated
];

/// Whether a received instance was new or already in the folder.
#[derive(Debug)]
pub(super) enum Stored {
    New(u64),
    Had,
}

/// Counts of what a retrieve took in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub received: usize,
    pub already_had: usize,
    pub failed: usize,
    pub bytes: u64,
}

/// Keeps one C-STORE sub-operation's instance and answers it (success, or out of resources
/// when it could not be written).
pub(super) fn answer_store<A: dicom_ul::association::SyncAssociation<std::net::TcpStream>>(
    assoc: &mut A,
    msg: &Message,
    syntaxes: &HashMap<u8, String>,
    folder: &Path,
    tally: &mut Tally,
) -> Result<(), PacsError> {
    let status = match store_received(msg, syntaxes, folder) {
        Ok(Stored::New(bytes)) => {
            tally.received += 1;
            tally.bytes += bytes;
            0x0000
        }
        Ok(Stored::Had) => {
            tally.already_had += 1;
            0x0000
        }
        Err(e) => {
            tracing::warn!("a retrieved instance was not kept: {e}");
            tally.failed += 1;
            e.status()
        }
    };
    let class = msg.text(tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default();
    let instance = msg.text(tags::AFFECTED_SOP_INSTANCE_UID).unwrap_or_default();
    let rsp = dimse::command(&[
        (tags::AFFECTED_SOP_CLASS_UID, Value::Ui(&class)),
        (tags::COMMAND_FIELD, Value::Us(field::C_STORE_RSP)),
        (
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            Value::Us(msg.us(tags::MESSAGE_ID).unwrap_or(0)),
        ),
        (tags::COMMAND_DATA_SET_TYPE, Value::Us(NO_DATASET)),
        (tags::STATUS, Value::Us(status)),
        (tags::AFFECTED_SOP_INSTANCE_UID, Value::Ui(&instance)),
    ])?;
    dimse::send(assoc, msg.context, &rsp, None)
}

/// Writes one received instance as a DICOM file (preamble, file meta, the data set as sent).
/// Why a C-STORE's instance was not kept; the kind decides the status the node is sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotKept {
    /// The request itself is incomplete: the node sent something Focal cannot understand.
    #[error("{0}")]
    Malformed(&'static str),
    /// The instance could not be written here (disk full, permissions).
    #[error("{0}")]
    Write(String),
}

impl NotKept {
    /// The C-STORE status: "cannot understand" (0xC000) or "out of resources" (0xA700).
    pub(super) fn status(&self) -> u16 {
        match self {
            NotKept::Malformed(_) => 0xC000,
            NotKept::Write(_) => 0xA700,
        }
    }
}

pub(super) fn store_received(msg: &Message, syntaxes: &HashMap<u8, String>, folder: &Path) -> Result<Stored, NotKept> {
    let class = msg
        .text(tags::AFFECTED_SOP_CLASS_UID)
        .ok_or(NotKept::Malformed("no SOP class in the C-STORE request"))?;
    let instance = msg
        .text(tags::AFFECTED_SOP_INSTANCE_UID)
        .ok_or(NotKept::Malformed("no SOP instance in the C-STORE request"))?;
    let ts = syntaxes
        .get(&msg.context)
        .ok_or(NotKept::Malformed("C-STORE on an unknown presentation context"))?;
    let data = msg.data.as_deref().ok_or(NotKept::Malformed("C-STORE without a data set"))?;
    let path = folder.join(format!("{}.dcm", crate::uid::key(&instance)));
    if path.exists() {
        return Ok(Stored::Had);
    }
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class.as_str())
        .media_storage_sop_instance_uid(instance.as_str())
        .transfer_syntax(ts.as_str())
        .implementation_class_uid(crate::uid::implementation_class_uid())
        .build()
        .map_err(|e| NotKept::Write(format!("file meta: {e}")))?;
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    meta.write(&mut bytes).map_err(|e| NotKept::Write(format!("file meta: {e}")))?;
    bytes.extend_from_slice(data);
    crate::outdir::write_atomic(&path, &bytes).map_err(|e| NotKept::Write(format!("{}: {e}", path.display())))?;
    Ok(Stored::New(bytes.len() as u64))
}

impl crate::query::GetSummary {
    pub(super) fn from_tally(folder: PathBuf, tally: Tally, warning: Option<String>, started: std::time::Instant) -> Self {
        Self {
            folder,
            received: tally.received,
            already_had: tally.already_had,
            failed: tally.failed,
            warning,
            bytes: tally.bytes,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// `study_folder`, made if it is not there yet.
pub(crate) fn created_study_folder(cache: &Path, study_uid: &str) -> Result<PathBuf, PacsError> {
    let folder = crate::query::study_folder(cache, study_uid);
    std::fs::create_dir_all(&folder).map_err(|e| PacsError::Io(format!("cannot create {}: {e}", folder.display())))?;
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_request(data: Option<Vec<u8>>) -> Message {
        let command = dimse::command(&[
            (tags::AFFECTED_SOP_CLASS_UID, Value::Ui(STORAGE_CLASSES[0])),
            (tags::AFFECTED_SOP_INSTANCE_UID, Value::Ui("1.2.3.4")),
        ])
        .expect("a command");
        Message {
            context: 1,
            command: dimse::decode(&command, IMPLICIT_VR_LE).expect("decodes"),
            data,
        }
    }

    #[test]
    fn a_store_not_kept_answers_by_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let syntaxes = HashMap::from([(1u8, EXPLICIT_VR_LE.to_string())]);
        // No data set: the node's request is incomplete.
        let why = store_received(&store_request(None), &syntaxes, dir.path()).expect_err("no data");
        assert_eq!(why.status(), 0xC000, "{why}");
        // An unknown presentation context: also the node's fault.
        let why = store_received(&store_request(Some(vec![])), &HashMap::new(), dir.path()).expect_err("no context");
        assert_eq!(why.status(), 0xC000, "{why}");
        // A folder that cannot be written: Focal's side, out of resources.
        let missing = dir.path().join("not-there");
        let why = store_received(&store_request(Some(vec![])), &syntaxes, &missing).expect_err("no folder");
        assert!(matches!(why, NotKept::Write(_)), "{why}");
        assert_eq!(why.status(), 0xA700);
        // And a well-formed request is kept, then recognised.
        assert!(matches!(store_received(&store_request(Some(vec![])), &syntaxes, dir.path()), Ok(Stored::New(_))));
        assert!(matches!(store_received(&store_request(Some(vec![])), &syntaxes, dir.path()), Ok(Stored::Had)));
    }
}
