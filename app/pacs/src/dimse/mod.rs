//! DIMSE messages: a command set (group 0000, always Implicit VR Little Endian, with its group
//! length) and an optional data set in the presentation context's transfer syntax. This module
//! encodes, decodes and reassembles them without I/O (so the fuzz targets need no network
//! code); `wire` sends and receives them over a dicom-ul association, each cut into P-DATA
//! values no larger than the peer accepts.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::PacsError;

#[cfg(feature = "network")]
mod wire;
#[cfg(feature = "network")]
pub use wire::{Association, receive, send};

/// Command Field values (PS3.7 E.1).
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_GET_RQ: u16 = 0x0010;
    pub const C_GET_RSP: u16 = 0x8010;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_MOVE_RQ: u16 = 0x0021;
    pub const C_MOVE_RSP: u16 = 0x8021;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Command Data Set Type: no data set follows.
pub const NO_DATASET: u16 = 0x0101;
/// Command Data Set Type: a data set follows (any other value means the same).
pub const WITH_DATASET: u16 = 0x0000;
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One element of a command set.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Us(u16),
    Ui(&'a str),
    Ae(&'a str),
}

/// Encodes a command set (Implicit VR Little Endian) with its Command Group Length first.
pub fn command(elements: &[(Tag, Value)]) -> Result<Vec<u8>, PacsError> {
    let mut obj = InMemDicomObject::new_empty();
    for (tag, value) in elements {
        let element = match value {
            Value::Us(v) => DataElement::new(*tag, VR::US, PrimitiveValue::from(*v)),
            Value::Ui(s) => DataElement::new(*tag, VR::UI, PrimitiveValue::from(s.trim_end_matches('\0'))),
            Value::Ae(s) => DataElement::new(*tag, VR::AE, PrimitiveValue::from(*s)),
        };
        obj.put(element);
    }
    let body = encode(&obj, IMPLICIT_VR_LE)?;
    obj.put(DataElement::new(
        tags::COMMAND_GROUP_LENGTH,
        VR::UL,
        PrimitiveValue::from(body.len() as u32),
    ));
    encode(&obj, IMPLICIT_VR_LE)
}

/// Encodes a data set in a transfer syntax (no preamble, no file meta).
pub fn encode(obj: &InMemDicomObject, ts_uid: &str) -> Result<Vec<u8>, PacsError> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| PacsError::Protocol(format!("unknown transfer syntax {ts_uid}")))?;
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, ts)
        .map_err(|e| PacsError::Protocol(format!("could not encode a data set: {e}")))?;
    Ok(out)
}

/// Decodes a data set received in a transfer syntax. In the little-endian syntaxes (every
/// command set, and the query answers nodes send) each element's declared length is first
/// checked against the bytes that follow it: the parser reserves what an element declares, so
/// a few bytes declaring 4 GiB would otherwise cost 4 GiB (found by fuzz/pdv_reassembly).
pub fn decode(bytes: &[u8], ts_uid: &str) -> Result<InMemDicomObject, PacsError> {
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| PacsError::Protocol(format!("unknown transfer syntax {ts_uid}")))?;
    let explicit = match ts_uid {
        IMPLICIT_VR_LE => Some(false),
        EXPLICIT_VR_LE => Some(true),
        _ => None,
    };
    if let Some(explicit) = explicit {
        check_lengths(bytes, explicit, 0, false, false)
            .map_err(|e| PacsError::Protocol(format!("a data set from the node is malformed: {e}")))?;
    }
    InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| PacsError::Protocol(format!("could not decode a data set from the node: {e}")))
}

/// Walks the element headers of a little-endian data set (and of the items of its sequences),
/// refusing any declared length longer than what follows. Stricter than the walk files get
/// (`study::lengths`, whose VR and dictionary rules it shares): what a node sends must be well
/// formed, so odd lengths and sequences that do not hold items are refused too, each of which
/// put dicom-rs's parser out of step with the bytes under fuzz/pdv_reassembly.
/// `until_delimiter`: the bytes are the content of an undefined-length sequence or item, ending
/// at its delimiter; `items_only`: they are a sequence's content. Returns the bytes consumed.
fn check_lengths(b: &[u8], explicit: bool, depth: u32, until_delimiter: bool, items_only: bool) -> Result<usize, String> {
    const UNDEFINED: u32 = 0xFFFF_FFFF;
    const ITEM: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];
    if depth > 16 {
        return Err("sequences nested more than 16 deep".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut pos = 0;
    while pos < b.len() {
        if b.len() - pos < 8 {
            return Err("an element header is cut short".into());
        }
        let (group, element) = (u16_at(pos), u16_at(pos + 2));
        if group == 0xFFFE {
            let len = u32_at(pos + 4);
            pos += 8;
            match element {
                0xE00D | 0xE0DD if until_delimiter => return Ok(pos),
                0xE000 if len == UNDEFINED => pos += check_lengths(&b[pos..], explicit, depth + 1, true, false)?,
                0xE000 => {
                    let len = len as usize;
                    if len > b.len() - pos {
                        return Err(format!("an item declares {len} bytes where {} remain", b.len() - pos));
                    }
                    check_lengths(&b[pos..pos + len], explicit, depth + 1, false, false)?;
                    pos += len;
                }
                _ => return Err(format!("a stray delimiter (FFFE,{element:04X})")),
            }
            continue;
        }
        if items_only {
            return Err(format!("element ({group:04X},{element:04X}) inside a sequence, not in an item"));
        }
        let explicit_vr = explicit.then(|| [b[pos + 4], b[pos + 5]]);
        let (len, header, sequence) = match &explicit_vr {
            Some(vr) if crate::study::lengths::long_length(vr) => {
                if b.len() - pos < 12 {
                    return Err("an element header is cut short".into());
                }
                (u32_at(pos + 8), 12, vr == b"SQ")
            }
            Some(_) => (u32::from(u16_at(pos + 6)), 8, false),
            None => (u32_at(pos + 4), 8, false),
        };
        pos += header;
        let sequence = sequence || (!explicit && crate::study::lengths::implicit_sequence((group, element)));
        if len == UNDEFINED {
            pos += check_lengths(&b[pos..], explicit, depth + 1, true, sequence)?;
            continue;
        }
        let len = len as usize;
        if len > b.len() - pos {
            return Err(format!(
                "element ({group:04X},{element:04X}) declares {len} bytes where {} remain",
                b.len() - pos
            ));
        }
        // Every DICOM value length is even (PS3.5 7.1.1), and the parser reads binary numbers
        // whole: a length that breaks either leaves it out of step with the bytes (reading a
        // later length from the middle of a value: found by fuzz/pdv_reassembly).
        if len % 2 != 0 {
            return Err(format!("element ({group:04X},{element:04X}) has an odd length, {len}"));
        }
        if let Some(size) = crate::study::lengths::binary_value_size(explicit_vr.as_ref(), (group, element))
            && len as u64 % size != 0
        {
            return Err(format!(
                "element ({group:04X},{element:04X}) holds {len} bytes, not a multiple of {size}"
            ));
        }
        // A sequence holds items, each a data set (a sequence in implicit VR is known from the
        // dictionary, or an unknown element by its first tag).
        let value = &b[pos..pos + len];
        if sequence {
            check_lengths(value, explicit, depth + 1, false, true)?;
        } else if !explicit && value.starts_with(&ITEM) {
            check_lengths(value, explicit, depth + 1, false, false)?;
        }
        pos += len;
    }
    if until_delimiter {
        return Err("a sequence or item without its delimiter".into());
    }
    Ok(pos)
}

/// A received message: its context, command set and data set bytes (if any).
pub struct Message {
    pub context: u8,
    pub command: InMemDicomObject,
    pub data: Option<Vec<u8>>,
}

impl Message {
    pub fn us(&self, tag: Tag) -> Option<u16> {
        self.command.element(tag).ok().and_then(|e| e.to_int::<u16>().ok())
    }

    pub fn text(&self, tag: Tag) -> Option<String> {
        self.command
            .element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
    }

    pub fn field(&self) -> u16 {
        self.us(tags::COMMAND_FIELD).unwrap_or(0)
    }

    pub fn status(&self) -> u16 {
        self.us(tags::STATUS).unwrap_or(0xFFFF)
    }
}

/// What receiving one message may cost. A node decides how many P-DATA fragments it sends and
/// how fast; without these bounds a node that never marks a fragment "last" fills memory, and
/// one that sends a byte every few seconds (each read within the socket's timeout) holds Focal
/// forever.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest command set: a command set is a dozen short elements, well under 1 KiB;
    /// 64 KiB leaves room for any honest peer's private elements.
    pub max_command: usize,
    /// The largest data set (the node's `max_dataset_mb`).
    pub max_data: usize,
    /// Seconds the message may take from the first read, plus one second for each
    /// `MIN_BYTES_PER_S` received: a large instance on a slow link keeps going, a trickle does not.
    pub seconds: u64,
}

/// The slowest transfer that still counts as progress: 64 KiB/s, far below any working DICOM
/// link, far above a node that trickles bytes.
pub const MIN_BYTES_PER_S: u64 = 64 << 10;

impl Limits {
    pub const MAX_COMMAND: usize = 64 << 10;

    pub fn new(seconds: u64, max_dataset_mb: u64) -> Limits {
        Limits {
            max_command: Self::MAX_COMMAND,
            max_data: usize::try_from(max_dataset_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            seconds: seconds.max(1),
        }
    }
}

/// One P-DATA value as the reassembly needs it (what dicom-ul's `PDataValue` carries).
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// The presentation context.
    pub context: u8,
    /// Part of the command set (else of the data set).
    pub command: bool,
    /// The last fragment of its set.
    pub last: bool,
    pub data: &'a [u8],
}

/// One message put back together from its P-DATA values: the command set and, when the
/// command announces one, the data set, each refused as it grows past `limits`. No I/O, so
/// that it can be fuzzed (fuzz/fuzz_targets/pdv_reassembly.rs).
pub struct Reassembly {
    limits: Limits,
    command: Vec<u8>,
    data: Vec<u8>,
    command_done: bool,
    data_done: bool,
    context: u8,
    parsed: Option<InMemDicomObject>,
}

impl Reassembly {
    pub fn new(limits: Limits) -> Reassembly {
        Reassembly {
            limits,
            command: Vec::new(),
            data: Vec::new(),
            command_done: false,
            data_done: false,
            context: 0,
            parsed: None,
        }
    }

    /// Takes one P-DATA value.
    pub fn push(&mut self, v: Fragment) -> Result<(), PacsError> {
        self.context = v.context;
        match v.command {
            true if !self.command_done => {
                if self.command.len() + v.data.len() > self.limits.max_command {
                    return Err(PacsError::Protocol(format!(
                        "the node's command set grew past {} KiB without ending; refused",
                        self.limits.max_command >> 10
                    )));
                }
                self.command.extend_from_slice(v.data);
                self.command_done = v.last;
            }
            false => {
                if self.data.len() + v.data.len() > self.limits.max_data {
                    return Err(PacsError::Protocol(format!(
                        "the node's data set grew past {} MiB (the node's max_dataset_mb); refused",
                        self.limits.max_data >> 20
                    )));
                }
                self.data.extend_from_slice(v.data);
                self.data_done = v.last;
            }
            true => {
                return Err(PacsError::Protocol(
                    "a second command set arrived before the data set".into(),
                ));
            }
        }
        Ok(())
    }

    /// The message, once it is whole (its command set decoded, its data set complete or none
    /// announced); None while parts are missing.
    pub fn message(&mut self) -> Result<Option<Message>, PacsError> {
        if self.command_done && self.parsed.is_none() {
            self.parsed = Some(decode(&self.command, IMPLICIT_VR_LE)?);
        }
        let Some(command) = self.parsed.take() else {
            return Ok(None);
        };
        let data_type = command
            .element(tags::COMMAND_DATA_SET_TYPE)
            .ok()
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(NO_DATASET);
        if data_type != NO_DATASET && !self.data_done {
            self.parsed = Some(command);
            return Ok(None);
        }
        Ok(Some(Message {
            context: self.context,
            command,
            data: (data_type != NO_DATASET).then(|| std::mem::take(&mut self.data)),
        }))
    }
}

/// Names of the DIMSE statuses a reader may meet (PS3.7 Annex C and the query/retrieve classes).
pub fn status_text(status: u16) -> String {
    let text = match status {
        0x0000 => "success",
        0xFF00 | 0xFF01 => "pending",
        0xFE00 => "cancelled",
        0x0107 | 0xB000 | 0xB007 | 0xB006 => "warning (some sub-operations failed or coerced)",
        0x0122 => "SOP class not supported",
        0x0124 => "not authorised",
        0xA700..=0xA7FF => "out of resources",
        0xA801 => "move destination unknown",
        0xA900..=0xA9FF => "data set does not match SOP class",
        0xC000..=0xCFFF => "unable to process",
        0x0110 => "processing failure",
        0x0211 => "unrecognised operation",
        _ => "failure",
    };
    format!("{text} (status 0x{status:04X})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths_past_the_end_are_refused_before_parsing() {
        let echo = command(&[
            (tags::COMMAND_FIELD, Value::Us(field::C_ECHO_RSP)),
            (tags::COMMAND_DATA_SET_TYPE, Value::Us(NO_DATASET)),
        ])
        .unwrap();
        assert!(decode(&echo, IMPLICIT_VR_LE).is_ok());
        // (0000,0800) UL declaring 0xFFFFFF00 bytes: 12 bytes that would reserve 4 GiB.
        let hostile = [0x00, 0x00, 0x00, 0x08, 0x00, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
        let err = decode(&hostile, IMPLICIT_VR_LE).err().expect("refused").to_string();
        assert!(err.contains("declares"), "{err}");
        // A group length (UL) of 6 bytes: the parser would read 4 and take the next length
        // from the fifth.
        let odd = [0x03, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 1, 0, 0, 0, 0xC6, 0];
        let err = decode(&odd, IMPLICIT_VR_LE).err().expect("refused").to_string();
        assert!(err.contains("not a multiple of 4"), "{err}");
        // An undefined-length sequence that never ends.
        let open = [0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode(&open, IMPLICIT_VR_LE).is_err());
    }

    #[test]
    fn reassembly_refuses_a_command_set_past_its_limit() {
        let mut parts = Reassembly::new(Limits { max_command: 16, max_data: 16, seconds: 1 });
        let zeros = [0u8; 10];
        let value = |last| Fragment { context: 1, command: true, last, data: &zeros };
        parts.push(value(false)).unwrap();
        assert!(parts.message().unwrap().is_none());
        assert!(parts.push(value(true)).is_err());
    }
}
