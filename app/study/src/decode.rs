//! Pixel data → f32 modality values, one frame at a time.
//!
//! Compressed frames are decompressed by dicom-rs's codecs (and Focal's own 12-bit JPEG
//! decoder, which dicom-rs lacks); everything after decompression — bit depths 1 to 32, sign
//! extension, planar configuration, YBR and palette colour, the modality LUT — is done here
//! so that every transfer syntax goes through one well-tested path.

use std::io::{Read, Seek, SeekFrom};

use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;

use super::attrs;
use super::error::{Result, StudyError};
use super::header::{InstanceHeader, ModalityLut, PixelLayout};
use super::codec::decompressed;
use super::open::{Extent, open_object};

mod samples;
use samples::{from_big_endian, native_samples, to_values};

/// Decoded images may not exceed this many bytes per file, whatever the header claims.
pub const MAX_DECODED_BYTES: u64 = 8 << 30;
/// A compressed file is assumed to hold at most this ratio of decoded to stored bytes.
const MAX_COMPRESSION_RATIO: u64 = 2000;

/// One decoded frame: `channels` interleaved values per pixel (1 = grey, 3 = RGB).
#[derive(Debug, Clone)]
pub struct FrameValues {
    pub channels: usize,
    pub values: Vec<f32>,
}

/// Transfer syntaxes whose pixel data is stored uncompressed.
fn is_native(ts: &str) -> bool {
    matches!(
        ts,
        uids::IMPLICIT_VR_LITTLE_ENDIAN
            | uids::EXPLICIT_VR_LITTLE_ENDIAN
            | attrs::EXPLICIT_VR_BIG_ENDIAN
            | uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    ) || ts.is_empty()
}

fn is_jpeg_family(ts: &str) -> bool {
    ts.starts_with("1.2.840.10008.1.2.4.")
}

/// Bytes a layout occupies uncompressed (native 4:2:2 colour holds two samples per pixel).
fn native_size(layout: &PixelLayout) -> Option<u64> {
    let full = layout.native_bytes()?;
    Some(
        if layout.photometric == "YBR_FULL_422" && layout.samples_per_pixel == 3 {
            full / 3 * 2
        } else {
            full
        },
    )
}

/// Refuses layouts that cannot be real for the file's size, before anything is allocated.
pub fn check_plausible(header: &InstanceHeader) -> Result<&PixelLayout> {
    let layout = header.pixels.as_ref().ok_or(StudyError::NoPixelData)?;
    let implausible = || StudyError::ImplausibleSize {
        rows: layout.rows,
        columns: layout.columns,
        frames: layout.frames,
        bits: layout.bits_allocated,
        bytes: layout.decoded_bytes().unwrap_or(u64::MAX),
        file_size: header.file_size,
    };
    if layout.rows == 0 || layout.columns == 0 {
        return Err(StudyError::UnsupportedLayout("zero rows or columns".into()));
    }
    if !matches!(layout.bits_allocated, 1 | 8 | 16 | 32 | 64) {
        return Err(StudyError::UnsupportedLayout(format!(
            "bits allocated {}",
            layout.bits_allocated
        )));
    }
    if !matches!(layout.samples_per_pixel, 1 | 3) {
        return Err(StudyError::UnsupportedLayout(format!(
            "{} samples per pixel",
            layout.samples_per_pixel
        )));
    }
    let decoded = layout.decoded_bytes().ok_or_else(implausible)?;
    if decoded > MAX_DECODED_BYTES {
        return Err(implausible());
    }
    if is_native(&header.transfer_syntax) && header.transfer_syntax != uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
        let native = native_size(layout).ok_or_else(implausible)?;
        if native > header.file_size {
            return Err(StudyError::PixelDataTooShort {
                expected: native,
                actual: header.file_size,
            });
        }
    } else if decoded > header.file_size.saturating_mul(MAX_COMPRESSION_RATIO).max(64 << 20) {
        return Err(implausible());
    }
    Ok(layout)
}

/// The layout, when the file's is plausible and holds every frame asked for.
fn check_frames<'a>(header: &'a InstanceHeader, frames: &[u32]) -> Result<&'a PixelLayout> {
    let layout = check_plausible(header)?;
    match frames.iter().find(|&&f| f >= layout.frames) {
        Some(bad) => Err(StudyError::Decode(format!("frame {bad} requested of {}", layout.frames))),
        None => Ok(layout),
    }
}

/// Decodes the given frames of a file to modality values.
pub fn decode_frames(header: &InstanceHeader, frames: &[u32]) -> Result<Vec<FrameValues>> {
    check_frames(header, frames)?;
    let obj =
        open_object(&header.path, Extent::WithPixels)?.ok_or_else(|| StudyError::Parse("not a DICOM file".into()))?;
    decode_frames_of(&obj, header, frames)
}

/// As `decode_frames`, from the file already opened with its pixel data (objects whose frames
/// are read a group at a time, such as a segmentation's segments, open it once).
pub fn decode_frames_of(obj: &DefaultDicomObject, header: &InstanceHeader, frames: &[u32]) -> Result<Vec<FrameValues>> {
    let layout = check_frames(header, frames)?;
    let source = PixelSource::new(obj, header, layout)?;
    // The palette is the same for every frame: read it once per file.
    let palette = match layout.photometric.as_str() {
        "PALETTE COLOR" if layout.samples_per_pixel == 1 => Some(super::palette::Palette::read(obj)?),
        _ => None,
    };
    let grey = matches!(source, PixelSource::Encapsulated) && is_grey(layout);
    let one = |&frame: &u32| {
        if grey {
            let mut values = vec![0f32; layout.rows as usize * layout.columns as usize];
            grey_frame_into(obj, header, layout, frame, &mut values)?;
            return Ok(FrameValues { channels: 1, values });
        }
        let raw = source.frame(obj, layout, frame)?;
        to_values(&raw, palette.as_ref(), header, layout, frame)
    };
    // Compressed frames of one file (enhanced multi-frame objects) decompress in parallel;
    // files are already decoded in parallel by the volume loader.
    if matches!(source, PixelSource::Encapsulated) && frames.len() > 1 {
        use rayon::prelude::*;
        frames.par_iter().map(one).collect()
    } else {
        frames.iter().map(one).collect()
    }
}

/// What became of one frame handed to `decode_frames_into`.
pub type FrameOutcome = std::result::Result<(), String>;

/// Decodes the given frames of a file straight into `planes` (one per frame, each exactly one
/// frame of values). Grey, uncompressed, little-endian 8- and 16-bit data (most CT and MR) is
/// read from the file a frame at a time into a buffer the thread keeps, after the same length
/// walk that guards the parser, and goes through the modality LUT into the plane (files the
/// walk cannot place, through dicom-rs's parse of the file); everything else is decoded as
/// `decode_frames` does and copied. The outer error is the
/// file's (every frame failed); the inner ones are per frame.
pub fn decode_frames_into(header: &InstanceHeader, frames: &[u32], planes: &mut [&mut [f32]]) -> Result<Vec<FrameOutcome>> {
    let layout = check_plausible(header)?;
    if is_grey(layout) && !is_native(&header.transfer_syntax) && frames.iter().all(|&f| f < layout.frames) {
        // Compressed grey frames (JPEG, JPEG-LS, JPEG 2000, RLE): decompressed and converted
        // straight into their planes, in parallel within a multi-frame file.
        let obj =
            open_object(&header.path, Extent::WithPixels)?.ok_or_else(|| StudyError::Parse("not a DICOM file".into()))?;
        if obj.get(tags::PIXEL_DATA).is_some_and(|e| e.value().fragments().is_some()) {
            use rayon::prelude::*;
            return Ok(frames
                .par_iter()
                .zip(planes.par_iter_mut())
                .map(|(&frame, plane)| grey_frame_into(&obj, header, layout, frame, plane).map_err(|e| e.to_string()))
                .collect());
        }
    }
    let direct = is_grey(layout)
        && matches!(layout.bits_allocated, 8 | 16)
        && is_native(&header.transfer_syntax)
        && header.transfer_syntax != attrs::EXPLICIT_VR_BIG_ENDIAN;
    if !direct || frames.iter().any(|&f| f >= layout.frames) {
        return Ok(copy_into(decode_frames(header, frames)?, planes));
    }
    let pixels = layout.rows as usize * layout.columns as usize;
    let convert = FrameConversion::new(&layout);
    // Most files: the pixel bytes read straight from the file into a buffer kept by the thread.
    if let Some((file, span)) = super::open::native_pixel_span(&header.path)? {
        let unit = if layout.bits_allocated == 8 { 1 } else { 2 };
        return Ok(frames
            .iter()
            .zip(planes.iter_mut())
            .map(|(&frame, plane)| {
                let lut = frame_lut(header, frame)?;
                let (first, bytes) = (pixels * frame as usize * unit, pixels * unit);
                if (first + bytes) as u64 > span.len {
                    return Err(StudyError::PixelDataTooShort {
                        expected: (first + bytes) as u64,
                        actual: span.len,
                    }
                    .to_string());
                }
                FRAME_BYTES.with_borrow_mut(|buf| {
                    buf.resize(bytes, 0);
                    let mut f = &file;
                    f.seek(SeekFrom::Start(span.offset + first as u64))
                        .and_then(|_| f.read_exact(buf))
                        .map_err(|e| format!("reading the pixel data: {e}"))?;
                    convert.frame(&Stored::Bytes(buf), 0, pixels, lut, plane)
                })
            })
            .collect());
    }
    let obj =
        open_object(&header.path, Extent::WithPixels)?.ok_or_else(|| StudyError::Parse("not a DICOM file".into()))?;
    if obj.get(tags::FLOAT_PIXEL_DATA).is_some() || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some() {
        return Ok(copy_into(decode_frames(header, frames)?, planes));
    }
    let elem = obj.get(tags::PIXEL_DATA).ok_or(StudyError::NoPixelData)?;
    let stored = match elem.value().primitive() {
        Some(dicom_core::PrimitiveValue::U8(bytes)) => Stored::Bytes(bytes),
        Some(dicom_core::PrimitiveValue::U16(words)) => Stored::Words(words),
        Some(dicom_core::PrimitiveValue::I16(words)) => Stored::SignedWords(words),
        _ => return Ok(copy_into(decode_frames(header, frames)?, planes)),
    };
    Ok(frames
        .iter()
        .zip(planes.iter_mut())
        .map(|(&frame, plane)| convert.frame(&stored, pixels * frame as usize, pixels, frame_lut(header, frame)?, plane))
        .collect())
}

thread_local! {
    /// One frame's pixel bytes: reused, so a volume's files do not each map fresh pages.
    static FRAME_BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn frame_lut(header: &InstanceHeader, frame: u32) -> std::result::Result<&ModalityLut, String> {
    Ok(&header
        .frames
        .get(frame as usize)
        .ok_or("no header for this frame")?
        .modality_lut)
}

/// Stored samples (grey, native, little endian) to modality values.
struct FrameConversion {
    bits_allocated: u16,
    signed: bool,
    bits: u32,
    mask: u32,
    sign_bit: u32,
}

impl FrameConversion {
    fn new(layout: &PixelLayout) -> FrameConversion {
        let bits = u32::from(layout.bits_stored.clamp(1, layout.bits_allocated));
        FrameConversion {
            bits_allocated: layout.bits_allocated,
            signed: layout.signed,
            bits,
            mask: if bits >= 32 { u32::MAX } else { (1u32 << bits) - 1 },
            sign_bit: 1u32 << (bits - 1),
        }
    }

    /// Converts the frame whose first sample is `start` (in samples) into `plane`.
    fn frame(&self, stored: &Stored, start: usize, pixels: usize, lut: &ModalityLut, plane: &mut [f32]) -> FrameOutcome {
        if plane.len() != pixels {
            return Err(format!("a plane of {} values for a frame of {pixels}", plane.len()));
        }
        let (mask, sign_bit, bits, signed) = (self.mask, self.sign_bit, self.bits, self.signed);
        let to_int = |raw: u32| -> i32 {
            let v = raw & mask;
            if signed && v & sign_bit != 0 { v as i32 - (1i32 << bits) } else { v as i32 }
        };
        let short = |have: usize, unit: usize| {
            StudyError::PixelDataTooShort {
                expected: ((start + pixels) * unit) as u64,
                actual: (have * unit) as u64,
            }
            .to_string()
        };
        // The modality LUT chosen once per frame, not per pixel: the loops below then
        // compile to straight arithmetic (the same f64 operations as `ModalityLut::apply`,
        // so the values are bit-identical).
        let rescale = match lut {
            ModalityLut::None => Some((1.0, 0.0)),
            ModalityLut::Rescale(r) => Some((r.slope, r.intercept)),
            ModalityLut::Table(_) => None,
        };
        let put = |out: &mut f32, v: i32| {
            *out = match rescale {
                Some((slope, intercept)) => (f64::from(v) * slope + intercept) as f32,
                None => lut.apply(f64::from(v)) as f32,
            };
        };
        match (stored, self.bits_allocated) {
            (Stored::Bytes(b), 8) => {
                let s = b.get(start..start + pixels).ok_or_else(|| short(b.len(), 1))?;
                // As `native_samples` reads 8-bit data: the byte itself, no bit mask.
                for (out, &v) in plane.iter_mut().zip(s) {
                    put(out, if signed { i32::from(v as i8) } else { i32::from(v) });
                }
            }
            (Stored::Bytes(b), _) => {
                let s = b.get(start * 2..(start + pixels) * 2).ok_or_else(|| short(b.len() / 2, 2))?;
                for (out, c) in plane.iter_mut().zip(s.chunks_exact(2)) {
                    put(out, to_int(u32::from(u16::from_le_bytes([c[0], c[1]]))));
                }
            }
            (Stored::Words(w), _) => {
                let s = w.get(start..start + pixels).ok_or_else(|| short(w.len(), 2))?;
                for (out, &v) in plane.iter_mut().zip(s) {
                    put(out, to_int(u32::from(v)));
                }
            }
            (Stored::SignedWords(w), _) => {
                let s = w.get(start..start + pixels).ok_or_else(|| short(w.len(), 2))?;
                for (out, &v) in plane.iter_mut().zip(s) {
                    put(out, to_int(u32::from(v as u16)));
                }
            }
        }
        Ok(())
    }
}

/// One sample per pixel through the modality LUT (no palette, no colour).
fn is_grey(layout: &PixelLayout) -> bool {
    layout.samples_per_pixel == 1 && matches!(layout.photometric.as_str(), "MONOCHROME1" | "MONOCHROME2")
}

/// A compressed grey frame decompressed and converted into `plane` without intermediate
/// samples (8- and 16-bit decoder output; other widths through the general path).
fn grey_frame_into(
    obj: &DefaultDicomObject,
    header: &InstanceHeader,
    layout: &PixelLayout,
    frame: u32,
    plane: &mut [f32],
) -> Result<()> {
    let pixels = layout.rows as usize * layout.columns as usize;
    let (bytes, l) = decompressed(obj, layout, frame)?;
    let lut = frame_lut(header, frame).map_err(|e| StudyError::Decode(e.to_string()))?;
    if matches!(l.bits_allocated, 8 | 16) {
        return FrameConversion::new(&l)
            .frame(&Stored::Bytes(&bytes), 0, pixels, lut, plane)
            .map_err(StudyError::Decode);
    }
    let raw = RawFrame::Ints(native_samples(&bytes, &l, 0)?);
    let values = to_values(&raw, None, header, layout, frame)?;
    match copy_into(vec![values], &mut [plane]).pop() {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(StudyError::Decode(e)),
        None => Err(StudyError::NoPixelData),
    }
}

/// Stored pixel data as dicom-rs parsed it.
enum Stored<'a> {
    Bytes(&'a [u8]),
    Words(&'a [u16]),
    SignedWords(&'a [i16]),
}

/// Copies decoded frames into their planes, checking sizes.
fn copy_into(values: Vec<FrameValues>, planes: &mut [&mut [f32]]) -> Vec<FrameOutcome> {
    let mut values = values.into_iter();
    planes
        .iter_mut()
        .map(|plane| match values.next() {
            Some(v) if v.values.len() == plane.len() => {
                plane.copy_from_slice(&v.values);
                Ok(())
            }
            Some(v) => Err(format!("decoded {} values, expected {}", v.values.len(), plane.len())),
            None => Err("frame missing from decoder output".to_string()),
        })
        .collect()
}

/// Where a frame's stored samples come from.
enum PixelSource {
    /// Uncompressed integer samples, little-endian, all frames.
    Native(Vec<u8>),
    /// Float or Double Float Pixel Data.
    Float(Vec<f64>),
    /// Encapsulated: decompressed per frame.
    Encapsulated,
}

/// Stored samples of one frame, interleaved, before any value transform.
enum RawFrame {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl PixelSource {
    fn new(obj: &DefaultDicomObject, header: &InstanceHeader, layout: &PixelLayout) -> Result<Self> {
        if let Some(values) =
            attrs::floats(obj, tags::FLOAT_PIXEL_DATA).or_else(|| attrs::floats(obj, tags::DOUBLE_FLOAT_PIXEL_DATA))
        {
            return Ok(PixelSource::Float(values));
        }
        let elem = obj.get(tags::PIXEL_DATA).ok_or(StudyError::NoPixelData)?;
        if elem.value().fragments().is_some() {
            return Ok(PixelSource::Encapsulated);
        }
        let mut bytes = elem
            .to_bytes()
            .map_err(|e| StudyError::Decode(e.to_string()))?
            .into_owned();
        if header.transfer_syntax == attrs::EXPLICIT_VR_BIG_ENDIAN {
            let words = matches!(
                elem.value().primitive(),
                Some(dicom_core::PrimitiveValue::U16(_) | dicom_core::PrimitiveValue::I16(_))
            );
            from_big_endian(&mut bytes, words, layout.bits_allocated);
        }
        let expected = native_size(layout).unwrap_or(u64::MAX);
        if (bytes.len() as u64) < expected {
            return Err(StudyError::PixelDataTooShort {
                expected,
                actual: bytes.len() as u64,
            });
        }
        Ok(PixelSource::Native(bytes))
    }

    fn frame(&self, obj: &DefaultDicomObject, layout: &PixelLayout, frame: u32) -> Result<RawFrame> {
        let layout = layout.clone();
        let samples = layout.rows as usize * layout.columns as usize * layout.samples_per_pixel as usize;
        match self {
            PixelSource::Float(values) => {
                let start = samples * frame as usize;
                let slice = values
                    .get(start..start + samples)
                    .ok_or(StudyError::PixelDataTooShort {
                        expected: ((start + samples) * 4) as u64,
                        actual: (values.len() * 4) as u64,
                    })?;
                Ok(RawFrame::Floats(slice.to_vec()))
            }
            PixelSource::Native(bytes) if layout.photometric == "YBR_FULL_422" && layout.samples_per_pixel == 3 => {
                // Native 4:2:2 stores Y Y Cb Cr per pixel pair: two samples per pixel.
                let mut packed = layout.clone();
                packed.samples_per_pixel = 1;
                packed.columns *= 2;
                packed.planar_configuration = 0;
                Ok(RawFrame::Ints(native_samples(bytes, &packed, frame)?))
            }
            PixelSource::Native(bytes) => Ok(RawFrame::Ints(native_samples(bytes, &layout, frame)?)),
            PixelSource::Encapsulated => {
                let (bytes, l) = decompressed(obj, &layout, frame)?;
                Ok(RawFrame::Ints(native_samples(&bytes, &l, 0)?))
            }
        }
    }
}
