//! Compressed pixel data → one frame's bytes: RLE (Focal's decoder), JPEG (zune-jpeg for 8-bit
//! DCT, Focal's own decoder for 12-bit and untransformed RGB, which dicom-rs lacks or gets
//! wrong) and every other syntax dicom-rs's codecs know; each frame checked to be whole and of
//! the header's size. What the bytes mean (bit depth, colour, the modality LUT) is decode.rs's.

use dicom_dictionary_std::{tags, uids};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;

use super::error::{Result, StudyError};
use super::header::PixelLayout;

mod jpeg12;
mod rle;

/// One frame decompressed and checked to hold a whole frame, with the layout of the bytes
/// the decoder handed back (one frame, interleaved, its own bits allocated).
pub(crate) fn decompressed(obj: &DefaultDicomObject, layout: &PixelLayout, frame: u32) -> Result<(Vec<u8>, PixelLayout)> {
    let (bytes, bits) = decompress(obj, layout, frame)?;
    let samples = layout.rows as usize * layout.columns as usize * layout.samples_per_pixel as usize;
    let expected = samples * (bits as usize).div_ceil(8);
    if bytes.len() < expected {
        return Err(StudyError::WrongFrameSize {
            frame,
            expected,
            actual: bytes.len(),
        });
    }
    let mut l = layout.clone();
    l.bits_allocated = bits;
    l.frames = 1;
    l.planar_configuration = 0;
    Ok((bytes, l))
}

/// Decompresses one frame; returns little-endian samples and their bits allocated.
fn decompress(obj: &DefaultDicomObject, layout: &PixelLayout, frame: u32) -> Result<(Vec<u8>, u16)> {
    let ts = obj.meta().transfer_syntax();
    let pixels = layout.rows as usize * layout.columns as usize;
    if ts == uids::RLE_LOSSLESS {
        let fragment = frame_fragment(obj, frame, layout.frames)
            .ok_or_else(|| StudyError::Decode(format!("no RLE data for frame {frame}")))?;
        let bytes = rle::decode_frame(
            &fragment,
            pixels,
            layout.samples_per_pixel.into(),
            layout.bits_allocated,
        )
        .map_err(|e| StudyError::Decode(e.to_string()))?;
        return Ok((bytes, layout.bits_allocated));
    }
    // A codestream whose own size disagrees with Rows/Columns would be decoded into a buffer of
    // the header's size without complaint (the image silently garbled): refuse it here.
    if let Some(fragment) = frame_fragment(obj, frame, layout.frames)
        && let Some((w, h)) = codestream_size(&fragment)
        && (w, h) != (u32::from(layout.columns), u32::from(layout.rows))
    {
        return Err(StudyError::Decode(format!(
            "frame {frame} is compressed as {w}×{h} pixels but the header says {}×{} (Columns×Rows)",
            layout.columns, layout.rows
        )));
    }
    if matches!(ts, uids::JPEG_BASELINE8_BIT | uids::JPEG_EXTENDED12_BIT) {
        if let Some(fragment) = frame_fragment(obj, frame, layout.frames) {
            // 12-bit data, and RGB stored without colour transform, go to Focal's decoder:
            // dicom-rs refuses the first and wrongly converts the second from YCbCr.
            let precision = jpeg12::precision(&fragment);
            if precision == Some(12)
                || (layout.samples_per_pixel == 3 && jpeg12::stores_rgb(&fragment, layout.photometric == "RGB"))
            {
                let samples = jpeg12::decode(&fragment).map_err(|e| StudyError::Decode(e.to_string()))?;
                let bits = if precision == Some(12) { 16 } else { 8 };
                let bytes = if bits == 16 {
                    samples.iter().flat_map(|v| v.to_le_bytes()).collect()
                } else {
                    samples.iter().map(|&v| v as u8).collect()
                };
                return Ok((bytes, bits));
            }
            if precision == Some(8)
                && let Some(bytes) = zune_baseline(&fragment, layout)
            {
                return Ok((bytes, 8));
            }
        }
    }
    let decoded = obj.decode_pixel_data_frame(frame).map_err(|e| {
        let text = crate::error_chain(&e);
        if text.contains("nsupported") || text.contains("not supported") {
            StudyError::UnsupportedTransferSyntax {
                uid: ts.to_string(),
                detail: text,
            }
        } else {
            StudyError::Decode(text)
        }
    })?;
    let bits = decoded.bits_allocated();
    Ok((decoded.into_data(), bits))
}

/// An 8-bit DCT JPEG frame decoded by zune-jpeg (2.5× jpeg-decoder's speed on the corpus,
/// `cargo bench --bench jpeg_decoders`): grey as one sample per pixel, colour as RGB (what the
/// JPEG-family path hands on). None when zune-jpeg cannot decode it or its output does not
/// fit the header (its width and height were already checked against the header by
/// `decompress`); dicom-rs's decoder then has its turn and gives the error.
fn zune_baseline(fragment: &[u8], layout: &PixelLayout) -> Option<Vec<u8>> {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let out = match layout.samples_per_pixel {
        1 => ColorSpace::Luma,
        3 => ColorSpace::RGB,
        _ => return None,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(out)
        .set_max_width(layout.columns as usize)
        .set_max_height(layout.rows as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(fragment), options);
    decoder.decode_headers().ok()?;
    let expected = layout.rows as usize * layout.columns as usize * usize::from(layout.samples_per_pixel);
    if decoder.output_buffer_size() != Some(expected) {
        return None;
    }
    decoder.decode().ok().filter(|v| v.len() == expected)
}

/// Width and height a JPEG, JPEG-LS or JPEG 2000 codestream declares (SOFn / SOF55 / SIZ), if
/// the fragment starts with one.
fn codestream_size(data: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let be32 = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // JPEG 2000: SOC then SIZ (a raw codestream, or inside a JP2 'jp2c' box).
    if let Some(at) = data.windows(4).take(4096).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) {
        let siz = at + 4;
        let (xsiz, ysiz, xo, yo) = (be32(siz + 4)?, be32(siz + 8)?, be32(siz + 12)?, be32(siz + 16)?);
        return Some((xsiz.checked_sub(xo)?, ysiz.checked_sub(yo)?));
    }
    // JPEG family: walk the marker segments from SOI to the first frame header.
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    while at + 4 <= data.len() {
        if data[at] != 0xFF {
            return None;
        }
        let marker = data[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let len = be16(at + 2)? as usize;
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) || marker == 0xF7;
        if is_frame {
            // Ysiz == 0 means "defined later by DNL": nothing to compare.
            let (h, w) = (be16(at + 5)?, be16(at + 7)?);
            return (h > 0).then_some((w, h));
        }
        at += 2 + len;
    }
    None
}

/// The compressed bytes of one frame (fragments joined by the offset table, or one per frame).
fn frame_fragment(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Option<Vec<u8>> {
    let elem = obj.get(tags::PIXEL_DATA)?;
    let fragments = elem.value().fragments()?;
    let offsets = elem.value().offset_table().unwrap_or(&[]);
    if frames == 1 {
        return Some(fragments.iter().flatten().copied().collect());
    }
    if fragments.len() == frames as usize {
        return fragments.get(frame as usize).cloned();
    }
    if offsets.len() == frames as usize {
        // Fragment byte positions include their 8-byte item headers.
        let mut pos = 0u64;
        let mut out = Vec::new();
        let start = u64::from(offsets[frame as usize]);
        let end = offsets.get(frame as usize + 1).map_or(u64::MAX, |&o| u64::from(o));
        for f in fragments {
            if pos >= start && pos < end {
                out.extend_from_slice(f);
            }
            pos += f.len() as u64 + 8;
        }
        return Some(out);
    }
    None
}
