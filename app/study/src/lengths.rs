//! A pre-parse walk that checks every element length against the bytes that remain, before
//! dicom-rs allocates a buffer of whatever size a (possibly hostile) file claims.
//!
//! dicom-rs reserves and zero-fills the declared length before reading; a single lying length
//! of 2 GiB costs seconds and gigabytes. This walk reads only tags and lengths, seeks over
//! values, and stops after the pixel data header (or its fragments).

use std::io::{Read, Seek, SeekFrom};

use super::error::{Result, StudyError};

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
/// Sequences nested deeper than this are refused (real files nest a handful of levels).
const MAX_DEPTH: usize = 32;
/// Largest inflated data set accepted from a deflated file.
const MAX_INFLATED: u64 = 256 << 20;

#[derive(Clone, Copy)]
pub struct Encoding {
    pub explicit: bool,
    pub big_endian: bool,
}

struct Walker<R> {
    reader: R,
    /// Stop before the first element after the file meta group, noting its transfer syntax.
    meta_only: bool,
    transfer_syntax: Option<String>,
    /// Where the meta group says it ends (from its group length), when it says.
    meta_end: Option<u64>,
    /// Whether to check the pixel data's length and fragments too (not needed for headers).
    check_pixels: bool,
    /// Walk on past the pixel data to the end of the file (for reads that do not stop there).
    whole: bool,
    /// Where the reader is (kept here: asking a buffered file costs a system call).
    at: u64,
    /// The top-level pixel data's value, when it has a defined length.
    pixel_data: Option<PixelSpan>,
    /// A top-level float or double float pixel data element was seen.
    float_pixels: bool,
}

/// Where a file's (top-level, defined-length) pixel data value lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelSpan {
    pub offset: u64,
    pub len: u64,
}

/// Values shorter than this are skipped by reading through the buffer, not by seeking (a seek
/// empties a buffered reader's buffer and costs a system call).
const SKIP_BY_READING: u32 = 16 << 10;

fn lying(tag: (u16, u16), claimed: u64, remaining: u64) -> StudyError {
    StudyError::Parse(format!(
        "element ({:04X},{:04X}) claims {claimed} bytes but only {remaining} remain (truncated or lying length)",
        tag.0, tag.1
    ))
}

impl<R: Read + Seek> Walker<R> {
    fn new(reader: R, at: u64, meta_only: bool, check_pixels: bool, whole: bool) -> Walker<R> {
        Walker {
            reader,
            meta_only,
            transfer_syntax: None,
            meta_end: None,
            check_pixels,
            whole,
            at,
            pixel_data: None,
            float_pixels: false,
        }
    }

    fn pos(&mut self) -> Result<u64> {
        Ok(self.at)
    }

    fn read<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.reader
            .read_exact(&mut b)
            .map_err(|_| StudyError::Parse("file ends inside an element header".into()))?;
        self.at += N as u64;
        Ok(b)
    }

    /// Moves on `len` bytes (already checked against what remains).
    fn advance(&mut self, len: u32) -> Result<()> {
        if len <= SKIP_BY_READING {
            let read = std::io::copy(&mut (&mut self.reader).take(u64::from(len)), &mut std::io::sink())?;
            if read != u64::from(len) {
                return Err(StudyError::Parse("file ends inside an element value".into()));
            }
        } else {
            self.reader.seek(SeekFrom::Current(i64::from(len)))?;
        }
        self.at += u64::from(len);
        Ok(())
    }

    fn u16(&mut self, e: Encoding) -> Result<u16> {
        let b = self.read::<2>()?;
        Ok(if e.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self, e: Encoding) -> Result<u32> {
        let b = self.read::<4>()?;
        Ok(if e.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn skip(&mut self, tag: (u16, u16), len: u32, limit: u64) -> Result<()> {
        let pos = self.pos()?;
        let remaining = limit.saturating_sub(pos);
        if u64::from(len) > remaining {
            return Err(lying(tag, len.into(), remaining));
        }
        self.advance(len)
    }

    /// Walks elements until `limit`, an item delimiter (when `in_item`), or the pixel data.
    /// Returns true when the pixel data was reached.
    fn elements(&mut self, e: Encoding, limit: u64, in_item: bool, depth: usize) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(StudyError::Parse(format!(
                "sequences nested deeper than {MAX_DEPTH} levels"
            )));
        }
        while self.pos()? + 8 <= limit {
            // The meta group is always explicit little endian; a group 0002 element inside the
            // data set is read in the data set's encoding, as dicom-rs does.
            let group_bytes = self.read::<2>()?;
            let group_le = u16::from_le_bytes(group_bytes);
            let enc = if group_le == 0x0002 && self.meta_only {
                Encoding {
                    explicit: true,
                    big_endian: false,
                }
            } else {
                e
            };
            let group = if enc.big_endian {
                u16::from_be_bytes(group_bytes)
            } else {
                group_le
            };
            if self.meta_only && depth == 0 && group_le != 0x0002 {
                self.reader.seek(SeekFrom::Current(-2))?;
                self.at -= 2;
                return Ok(false);
            }
            let element = self.u16(enc)?;
            let tag = (group, element);
            if tag == ITEM_END || tag == SEQUENCE_END {
                self.u32(enc)?;
                if in_item {
                    return Ok(false);
                }
                continue;
            }
            let (vr, len) = if enc.explicit && group != 0xFFFE {
                let vr = self.read::<2>()?;
                let long = long_length(&vr);
                let len = if long {
                    self.read::<2>()?;
                    self.u32(enc)?
                } else {
                    u32::from(self.u16(enc)?)
                };
                (Some(vr), len)
            } else {
                (None, self.u32(enc)?)
            };
            // Only the top-level pixel data ends a header read; pixel data nested in an item
            // (icon images) is checked like any element, as dicom-rs reads on past it.
            if depth == 0 && matches!(tag, (0x7FE0, 0x0008) | (0x7FE0, 0x0009)) {
                self.float_pixels = true;
            }
            if tag == PIXEL_DATA && depth == 0 {
                if len != UNDEFINED {
                    self.pixel_data = Some(PixelSpan {
                        offset: self.at,
                        len: u64::from(len),
                    });
                }
                if !self.check_pixels {
                    return Ok(true);
                }
                if len == UNDEFINED {
                    // Encapsulated (fragments) only exists in explicit VR; in implicit VR the
                    // parser reads an undefined length as a sequence of data sets.
                    self.items(enc, limit, depth + 1, enc.explicit, true)?;
                } else {
                    self.skip(tag, len, limit)?;
                }
                if self.whole {
                    continue;
                }
                return Ok(true);
            }
            if tag == (0x0002, 0x0000) && len == 4 && self.meta_only {
                let value = self.u32(enc)?;
                self.meta_end = Some(self.pos()? + u64::from(value));
                continue;
            }
            if tag == (0x0002, 0x0010) && len < 256 {
                let mut uid = vec![0u8; len as usize];
                self.reader
                    .read_exact(&mut uid)
                    .map_err(|_| StudyError::Parse("file ends inside the meta group".into()))?;
                self.at += u64::from(len);
                self.transfer_syntax = Some(String::from_utf8_lossy(&uid).trim_end_matches(['\0', ' ']).to_string());
                continue;
            }
            // In implicit VR the dictionary says what is a sequence, as it does for dicom-rs:
            // a defined-length sequence must be walked, not skipped, or the lengths inside it
            // go unchecked.
            // A standard sequence written with another VR (UN aside) is read differently by
            // the parser than a walk of its declared VR would assume: refuse it.
            if let Some(v) = &vr
                && v != b"SQ"
                && v != b"UN"
                && implicit_sequence(tag)
            {
                return Err(StudyError::Parse(format!(
                    "element ({:04X},{:04X}) is a sequence in the standard but declares VR {}",
                    tag.0,
                    tag.1,
                    String::from_utf8_lossy(v)
                )));
            }
            let is_sequence = match &vr {
                Some(v) => v == b"SQ",
                None => implicit_sequence(tag),
            } || len == UNDEFINED;
            if len == UNDEFINED {
                // An undefined-length UN holds a sequence in implicit VR (PS3.5 6.2.2). dicom-rs
                // 0.10 reads its content as explicit VR and then allocates gigabytes for the
                // lengths it misreads: refuse the file here instead, at no cost.
                if vr.as_ref().is_some_and(|v| v == b"UN") {
                    return Err(StudyError::Parse(format!(
                        "element ({:04X},{:04X}) is an undefined-length UN sequence, which the DICOM parser cannot read",
                        tag.0, tag.1
                    )));
                }
                self.items(enc, limit, depth + 1, false, true)?;
            } else if is_sequence {
                let pos = self.pos()?;
                let remaining = limit.saturating_sub(pos);
                if u64::from(len) > remaining {
                    return Err(lying(tag, len.into(), remaining));
                }
                let end = pos + u64::from(len);
                self.items(enc, end, depth + 1, false, false)?;
                self.ends_exactly(tag, end)?;
            } else {
                // dicom-rs reads binary numbers in whole values and reads on from there, so a
                // length that is not a multiple of the value size would desynchronise it.
                if let Some(size) = binary_value_size(vr.as_ref(), tag)
                    && u64::from(len) % size != 0
                {
                    return Err(StudyError::Parse(format!(
                        "element ({:04X},{:04X}) has {len} bytes, not a whole number of {size}-byte values",
                        tag.0, tag.1
                    )));
                }
                self.skip(tag, len, limit)?;
            }
        }
        Ok(false)
    }

    /// A sequence or item of defined length must end exactly where its last element ends:
    /// dicom-rs reads on from there, so leftover bytes would be parsed as a new element it
    /// never length-checks.
    fn ends_exactly(&mut self, tag: (u16, u16), end: u64) -> Result<()> {
        let pos = self.pos()?;
        if pos != end {
            return Err(StudyError::Parse(format!(
                "({:04X},{:04X}) declares {} bytes more than its elements hold (lying length)",
                tag.0,
                tag.1,
                end.saturating_sub(pos)
            )));
        }
        Ok(())
    }

    /// Walks sequence items (or pixel data fragments) until a sequence delimiter or `limit`.
    /// `delimited`: the sequence has undefined length and must end with a delimiter.
    fn items(&mut self, e: Encoding, limit: u64, depth: usize, fragments: bool, delimited: bool) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(StudyError::Parse(format!(
                "sequences nested deeper than {MAX_DEPTH} levels"
            )));
        }
        loop {
            if self.pos()? + 8 > limit {
                // A defined-length sequence ends at its limit; an undefined one must not.
                return if delimited {
                    Err(StudyError::Parse(
                        "sequence without end delimiter runs to the end of the file".into(),
                    ))
                } else {
                    Ok(())
                };
            }
            let group = self.u16(e)?;
            let element = self.u16(e)?;
            let len = self.u32(e)?;
            match (group, element) {
                SEQUENCE_END => return Ok(()),
                ITEM if len == UNDEFINED && !fragments => {
                    self.elements(e, limit, true, depth + 1)?;
                }
                ITEM if len != UNDEFINED => {
                    let pos = self.pos()?;
                    let remaining = limit.saturating_sub(pos);
                    if u64::from(len) > remaining {
                        return Err(lying(ITEM, len.into(), remaining));
                    }
                    if fragments {
                        self.advance(len)?;
                    } else {
                        let end = pos + u64::from(len);
                        self.elements(e, end, false, depth + 1)?;
                        self.ends_exactly(ITEM, end)?;
                    }
                }
                other => {
                    return Err(StudyError::Parse(format!(
                        "expected a sequence item, found ({:04X},{:04X})",
                        other.0, other.1
                    )));
                }
            }
        }
    }
}

/// Size of one value for VRs read as binary numbers (explicit VR bytes, else the dictionary's).
pub fn binary_value_size(vr: Option<&[u8; 2]>, tag: (u16, u16)) -> Option<u64> {
    use dicom_core::VR;
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    let vr = match vr {
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse::<VR>().ok()?,
        None => match dicom_dictionary_std::StandardDataDictionary
            .by_tag(dicom_core::Tag(tag.0, tag.1))?
            .vr()
        {
            VirtualVr::Exact(vr) => vr,
            _ => return None,
        },
    };
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => Some(8),
        _ => None,
    }
}

/// Whether an explicit VR header has a 4-byte length: as in dicom-rs, any VR not known to
/// have a 2-byte length (unknown ones included, read as UN).
pub fn long_length(vr: &[u8; 2]) -> bool {
    !matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Whether the standard dictionary defines `tag` as a sequence (how implicit VR is read).
pub fn implicit_sequence(tag: (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(tag.0, tag.1))
        .is_some_and(|entry| entry.vr() == VirtualVr::Exact(dicom_core::VR::SQ))
}

/// How a transfer syntax encodes the data set; `None` for deflated ones (not walkable).
pub fn encoding_of(transfer_syntax: &str) -> Option<Encoding> {
    match transfer_syntax {
        "1.2.840.10008.1.2" => Some(Encoding {
            explicit: false,
            big_endian: false,
        }),
        "1.2.840.10008.1.2.2" => Some(Encoding {
            explicit: true,
            big_endian: true,
        }),
        "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95" => None,
        _ => Some(Encoding {
            explicit: true,
            big_endian: false,
        }),
    }
}

/// Checks the element lengths of a data set starting at `start`, in the given encoding.
pub fn check<R: Read + Seek>(mut reader: R, start: u64, encoding: Encoding, check_pixels: bool) -> Result<()> {
    let end = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(start))?;
    // Bare files are read whole by the parser.
    let mut walker = Walker::new(reader, start, false, check_pixels, true);
    walker.elements(encoding, end, false, 0)?;
    Ok(())
}

/// Checks a Part 10 file: its meta group from `start` (just after "DICM"), then its data set
/// in the encoding the meta group declares.
/// `force` replaces the declared encoding (for files that declare one and use another).
pub fn check_part10<R: Read + Seek>(reader: R, start: u64, force: Option<Encoding>, check_pixels: bool) -> Result<()> {
    part10(reader, start, force, check_pixels, false).map(|_| ())
}

/// As [`check_part10`], walking every byte to the end of the file (pixel data and whatever
/// follows): for reads that do not stop at the pixel data.
pub fn check_part10_whole<R: Read + Seek>(reader: R, start: u64, force: Option<Encoding>) -> Result<()> {
    part10(reader, start, force, true, true).map(|_| ())
}

/// As [`check_part10_whole`] in the declared encoding, and where the pixel data value lies:
/// `None` when the file is deflated, has float pixel data, or no top-level pixel data of
/// defined length (encapsulated), so that it must be read by the parser.
pub fn pixel_span_part10<R: Read + Seek>(reader: R, start: u64) -> Result<Option<PixelSpan>> {
    part10(reader, start, None, true, true)
}

fn part10<R: Read + Seek>(
    mut reader: R,
    start: u64,
    force: Option<Encoding>,
    check_pixels: bool,
    whole: bool,
) -> Result<Option<PixelSpan>> {
    let end = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(start))?;
    let le = Encoding {
        explicit: true,
        big_endian: false,
    };
    let mut walker = Walker::new(reader, start, true, check_pixels, whole);
    walker.elements(le, end, false, 0)?;
    // The parser starts the data set where the group length says the meta group ends; a
    // length that disagrees with the meta elements would have it read bytes never checked.
    if let Some(meta_end) = walker.meta_end {
        let pos = walker.pos()?;
        if meta_end != pos {
            return Err(StudyError::Parse(format!(
                "the meta group length says it ends at byte {meta_end}, its elements end at {pos}"
            )));
        }
    }
    let ts = walker.transfer_syntax.take().unwrap_or_default();
    let Some(encoding) = force.or_else(|| encoding_of(&ts)) else {
        // Deflated: inflate (bounded) and walk what dicom-rs would read.
        let mut compressed = Vec::new();
        walker.reader.read_to_end(&mut compressed)?;
        let mut inflated = Vec::new();
        let mut decoder = flate2::read::DeflateDecoder::new(compressed.as_slice()).take(MAX_INFLATED + 1);
        decoder
            .read_to_end(&mut inflated)
            .map_err(|e| StudyError::Parse(format!("the deflated data set cannot be inflated: {e}")))?;
        if inflated.len() as u64 > MAX_INFLATED {
            return Err(StudyError::Parse(format!(
                "the deflated data set inflates to more than {} MiB; refusing it",
                MAX_INFLATED >> 20
            )));
        }
        let end = inflated.len() as u64;
        let mut inner = Walker::new(std::io::Cursor::new(inflated), 0, false, check_pixels, whole);
        let le = Encoding {
            explicit: true,
            big_endian: false,
        };
        inner.elements(le, end, false, 0)?;
        return Ok(None);
    };
    walker.meta_only = false;
    walker.elements(encoding, end, false, 0)?;
    Ok(walker.pixel_data.filter(|_| !walker.float_pixels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const LE_EXPLICIT: Encoding = Encoding {
        explicit: true,
        big_endian: false,
    };

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(tag.0.to_le_bytes());
        v.extend(tag.1.to_le_bytes());
        v.extend(vr);
        v.extend((value.len() as u16).to_le_bytes());
        v.extend(value);
        v
    }

    #[test]
    fn honest_lengths_pass_and_lying_ones_fail() {
        let mut data = element((0x0008, 0x0060), b"CS", b"MR");
        data.extend(element((0x0010, 0x0010), b"PN", b"A^B "));
        assert!(check(Cursor::new(data.clone()), 0, LE_EXPLICIT, true).is_ok());
        let mut bad = data.clone();
        bad.extend([0x10, 0x00, 0x20, 0x00, b'L', b'O', 0xFF, 0x7F]);
        let err = check(Cursor::new(bad), 0, LE_EXPLICIT, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("(0010,0020) claims 32767 bytes"), "{err}");
    }

    #[test]
    fn an_unterminated_sequence_is_refused() {
        let mut data = Vec::new();
        data.extend([0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        data.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        data.extend(element((0x0008, 0x1150), b"UI", b"1.2 "));
        assert!(check(Cursor::new(data), 0, LE_EXPLICIT, true).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut data = Vec::new();
        for _ in 0..100 {
            data.extend([0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
            data.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let err = check(Cursor::new(data), 0, LE_EXPLICIT, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
