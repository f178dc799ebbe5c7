//! Opening DICOM files, including the slightly broken ones real archives hold.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_dictionary_std::{StandardDataDictionary, tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, FileDicomObject, InMemDicomObject, OpenFileOptions, file::ReadPreamble};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::error::{Result, StudyError};
use super::{attrs, lengths};

/// How much of a file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Everything before the pixel data (for scanning).
    Header,
    /// Up to and including the pixel data; anything after it (trailing padding) is ignored.
    WithPixels,
}

/// How a file announces itself in its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signature {
    /// 128-byte preamble then "DICM".
    Part10,
    /// No preamble and no file meta: the data set starts at byte 0, in this transfer syntax.
    Bare(&'static str),
    NotDicom,
}

/// Whether a file starts as a DICOM Part 10 file (preamble, then "DICM").
pub fn is_part10(path: &Path) -> bool {
    matches!(signature(path), Ok(Signature::Part10))
}

fn signature(path: &Path) -> std::io::Result<Signature> {
    signature_of(&mut File::open(path)?)
}

/// The signature of what `reader` holds from its start; a Part 10 file is left just after "DICM".
fn signature_of(reader: &mut impl Read) -> std::io::Result<Signature> {
    let mut head = [0u8; 132];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    if filled == 132 && &head[128..132] == b"DICM" {
        return Ok(Signature::Part10);
    }
    if filled < 8 {
        return Ok(Signature::NotDicom);
    }
    // A bare data set starts with a small group (0008 identifying, sometimes 0002 or 0005)
    // followed by a small element number; explicit VR shows two upper-case letters.
    let vr_letters = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
    let group_le = u16::from_le_bytes([head[0], head[1]]);
    let group_be = u16::from_be_bytes([head[0], head[1]]);
    let element_le = u16::from_le_bytes([head[2], head[3]]);
    let element_be = u16::from_be_bytes([head[2], head[3]]);
    if matches!(group_le, 0x0008 | 0x0005) && element_le < 0x0100 {
        return Ok(Signature::Bare(if vr_letters {
            uids::EXPLICIT_VR_LITTLE_ENDIAN
        } else {
            uids::IMPLICIT_VR_LITTLE_ENDIAN
        }));
    }
    if matches!(group_be, 0x0008 | 0x0005) && element_be < 0x0100 && vr_letters {
        return Ok(Signature::Bare(attrs::EXPLICIT_VR_BIG_ENDIAN));
    }
    Ok(Signature::NotDicom)
}

fn parse_error(e: &dyn std::error::Error) -> StudyError {
    StudyError::Parse(super::error_chain(e))
}

/// A Part 10 file whose pixel data can be read as the bytes they are (native encoding, defined
/// length, not deflated), checked by the same walk as `open_object`, with where they lie.
/// `None` whenever the parser must read the file instead (any doubt included: it reports
/// the errors).
pub fn native_pixel_span(path: &Path) -> Result<Option<(File, lengths::PixelSpan)>> {
    let file = File::open(path)?;
    if signature_of(&mut &file)? != Signature::Part10 {
        return Ok(None);
    }
    Ok(lengths::pixel_span_part10(BufReader::new(&file), 132).ok().flatten().map(|span| (file, span)))
}

/// Opens a DICOM file. `Ok(None)` when the file is not DICOM at all.
pub fn open_object(path: &Path, extent: Extent) -> Result<Option<DefaultDicomObject>> {
    let check_pixels = extent == Extent::WithPixels;
    match signature(path)? {
        Signature::NotDicom => Ok(None),
        Signature::Part10 => {
            // Reading the pixel data, the parser also reads the element after it (if any):
            // walk to the end of the file then.
            let walked = if check_pixels {
                lengths::check_part10_whole(BufReader::new(File::open(path)?), 132, None)
            } else {
                lengths::check_part10(BufReader::new(File::open(path)?), 132, None, false)
            };
            if let Err(declared) = walked {
                // Some writers declare explicit VR but encode the data set implicitly.
                let implicit = lengths::Encoding {
                    explicit: false,
                    big_endian: false,
                };
                return match lengths::check_part10_whole(BufReader::new(File::open(path)?), 132, Some(implicit)) {
                    Ok(()) => reread_implicit(path).map(Some).map_err(|_| declared),
                    Err(_) => Err(declared),
                };
            }
            let options = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
            let options = match extent {
                Extent::Header => options.read_until(tags::PIXEL_DATA),
                Extent::WithPixels => options.read_to(tags::PIXEL_DATA),
            };
            match options.open_file(path) {
                Ok(obj) => Ok(Some(obj)),
                // Some writers declare explicit VR but encode the data set implicitly; re-read
                // it so only when its lengths hold up in implicit VR too.
                Err(first) => {
                    let implicit = lengths::Encoding {
                        explicit: false,
                        big_endian: false,
                    };
                    lengths::check_part10_whole(BufReader::new(File::open(path)?), 132, Some(implicit))
                        .map_err(|_| parse_error(&first))?;
                    reread_implicit(path).map(Some).map_err(|_| parse_error(&first))
                }
            }
        }
        Signature::Bare(ts) => {
            if let Some(encoding) = lengths::encoding_of(ts) {
                lengths::check(BufReader::new(File::open(path)?), 0, encoding, check_pixels)?;
            }
            read_bare(path, ts).map(Some)
        }
    }
}

fn transfer_syntax(uid: &str) -> Result<&'static dicom_encoding::TransferSyntax> {
    TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| StudyError::UnsupportedTransferSyntax {
            uid: uid.to_string(),
            detail: "unknown transfer syntax".into(),
        })
}

/// Re-reads a Part 10 file whose meta declares an explicit VR little endian encoding (plain
/// or compressed) but whose data set is implicit VR.
/// The caller must have walked the whole file (pixel data included) in implicit VR: this reads
/// all of it, with no stop at the pixel data.
fn reread_implicit(path: &Path) -> Result<DefaultDicomObject> {
    let mut file = BufReader::new(File::open(path)?);
    file.seek(SeekFrom::Start(128))?;
    let meta = dicom_object::FileMetaTable::from_reader(&mut file).map_err(|e| parse_error(&e))?;
    let declared = transfer_syntax(meta.transfer_syntax())?;
    if declared.uid() == uids::IMPLICIT_VR_LITTLE_ENDIAN || declared.endianness() != dicom_encoding::Endianness::Little
    {
        return Err(StudyError::Parse("not declared as explicit VR little endian".into()));
    }
    let data = InMemDicomObject::read_dataset_with_ts(file, transfer_syntax(uids::IMPLICIT_VR_LITTLE_ENDIAN)?)
        .map_err(|e| parse_error(&e))?;
    Ok(with_meta(meta, data))
}

/// Reads a file without preamble or meta group, in the transfer syntax its first bytes show.
fn read_bare(path: &Path, ts: &str) -> Result<DefaultDicomObject> {
    let file = BufReader::new(File::open(path)?);
    let data = InMemDicomObject::read_dataset_with_ts(file, transfer_syntax(ts)?).map_err(|e| parse_error(&e))?;
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(
            attrs::string(&data, tags::SOP_CLASS_UID).unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.7".into()),
        )
        .media_storage_sop_instance_uid(attrs::string(&data, tags::SOP_INSTANCE_UID).unwrap_or_else(|| "2.25.0".into()))
        .transfer_syntax(ts)
        .build()
        .map_err(|e| parse_error(&e))?;
    Ok(with_meta(meta, data))
}

fn with_meta(meta: dicom_object::FileMetaTable, data: InMemDicomObject) -> DefaultDicomObject {
    let mut obj: DefaultDicomObject = FileDicomObject::new_empty_with_dict_and_meta(StandardDataDictionary, meta);
    for element in data {
        if dicom_core::header::Header::tag(&element).group() != 0x0002 {
            obj.put(element);
        }
    }
    obj
}
