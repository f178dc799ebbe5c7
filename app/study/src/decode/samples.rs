//! Stored samples to values: native pixel data read sample by sample (any bit depth, sign,
//! byte order, planar configuration), then colour conversion or the modality LUT.

use super::{FrameValues, RawFrame, is_jpeg_family, is_native};
use crate::error::{Result, StudyError};
use crate::header::{InstanceHeader, PixelLayout};

/// Big-endian pixel data as dicom-rs hands it over: values it parsed as 16-bit words are
/// already in native order; raw bytes (OB) still need swapping per sample.
pub(super) fn from_big_endian(bytes: &mut [u8], parsed_as_words: bool, bits: u16) {
    match (parsed_as_words, bits) {
        (true, 32) => bytes.chunks_exact_mut(4).for_each(|c| {
            c.swap(0, 2);
            c.swap(1, 3);
        }),
        (true, _) => {}
        (false, 16) => bytes.chunks_exact_mut(2).for_each(|c| c.reverse()),
        (false, 32) => bytes.chunks_exact_mut(4).for_each(|c| c.reverse()),
        _ => {}
    }
}

/// Stored samples of one frame of native data, interleaved (planar configuration undone).
pub(super) fn native_samples(bytes: &[u8], layout: &PixelLayout, frame: u32) -> Result<Vec<i64>> {
    let pixels = layout.rows as usize * layout.columns as usize;
    let spp = layout.samples_per_pixel as usize;
    let samples = pixels * spp;
    let start = samples * frame as usize;
    let short = |needed: usize| StudyError::PixelDataTooShort {
        expected: needed as u64,
        actual: bytes.len() as u64,
    };
    let mut out: Vec<i64> = match layout.bits_allocated {
        1 => {
            // Bits are packed little-endian-first across the whole pixel data, not per frame.
            let end_bit = (start + samples) as u64;
            if end_bit.div_ceil(8) > bytes.len() as u64 {
                return Err(short(end_bit.div_ceil(8) as usize));
            }
            (start..start + samples)
                .map(|i| i64::from((bytes[i / 8] >> (i % 8)) & 1))
                .collect()
        }
        8 => {
            let s = bytes
                .get(start..start + samples)
                .ok_or_else(|| short(start + samples))?;
            if layout.signed {
                s.iter().map(|&b| i64::from(b as i8)).collect()
            } else {
                s.iter().map(|&b| i64::from(b)).collect()
            }
        }
        16 => {
            let s = bytes
                .get(start * 2..(start + samples) * 2)
                .ok_or_else(|| short((start + samples) * 2))?;
            s.chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        }
        32 => {
            let s = bytes
                .get(start * 4..(start + samples) * 4)
                .ok_or_else(|| short((start + samples) * 4))?;
            s.chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        other => return Err(StudyError::UnsupportedLayout(format!("bits allocated {other}"))),
    };
    if matches!(layout.bits_allocated, 16 | 32) {
        let bits = u32::from(layout.bits_stored.clamp(1, layout.bits_allocated));
        let stored_mask: i64 = if bits >= 63 { -1 } else { (1i64 << bits) - 1 };
        for v in &mut out {
            let raw = *v & stored_mask;
            *v = if layout.signed && raw >> (bits - 1) & 1 == 1 {
                raw - (1i64 << bits)
            } else {
                raw
            };
        }
    }
    if spp == 3 && layout.planar_configuration == 1 {
        let planes = out;
        out = (0..pixels)
            .flat_map(|p| [planes[p], planes[pixels + p], planes[2 * pixels + p]])
            .collect();
    }
    Ok(out)
}

/// Applies photometric conversion (colour) or the modality LUT (grey) to a frame.
pub(super) fn to_values(
    raw: &RawFrame,
    palette: Option<&crate::palette::Palette>,
    header: &InstanceHeader,
    layout: &PixelLayout,
    frame: u32,
) -> Result<FrameValues> {
    let lut = &header
        .frames
        .get(frame as usize)
        .ok_or(StudyError::NoPixelData)?
        .modality_lut;
    let pi = layout.photometric.as_str();
    let ts = header.transfer_syntax.as_str();
    match raw {
        RawFrame::Floats(values) => Ok(FrameValues {
            channels: 1,
            values: values.iter().map(|&v| lut.apply(v) as f32).collect(),
        }),
        RawFrame::Ints(samples) if layout.samples_per_pixel == 3 => {
            // JPEG-family decoders already return RGB; native and RLE keep the stored space.
            let converted = !is_jpeg_family(ts);
            let values = match pi {
                "YBR_FULL" if converted => ybr_full_to_rgb(samples, layout.bits_stored),
                "YBR_FULL_422" if is_native(ts) => ybr_full_to_rgb(&upsample_422(samples, layout)?, layout.bits_stored),
                _ => samples.iter().map(|&v| v as f32).collect(),
            };
            Ok(FrameValues { channels: 3, values })
        }
        RawFrame::Ints(samples) if let Some(palette) = palette => Ok(FrameValues {
            channels: 3,
            values: samples.iter().flat_map(|&v| palette.lookup(v)).collect(),
        }),
        RawFrame::Ints(samples) => Ok(FrameValues {
            channels: 1,
            values: samples.iter().map(|&v| lut.apply(v as f64) as f32).collect(),
        }),
    }
}

/// Native YBR_FULL_422 stores Y Y Cb Cr per pair of pixels: expand to Y Cb Cr per pixel.
fn upsample_422(samples: &[i64], layout: &PixelLayout) -> Result<Vec<i64>> {
    // The raw slice was read as 3 samples per pixel; the 4:2:2 data is only 2 per pixel.
    let pixels = layout.rows as usize * layout.columns as usize;
    let stored = samples.get(..pixels * 2).ok_or(StudyError::PixelDataTooShort {
        expected: (pixels * 2) as u64,
        actual: samples.len() as u64,
    })?;
    Ok(stored
        .chunks_exact(4)
        .flat_map(|c| [c[0], c[2], c[3], c[1], c[2], c[3]])
        .collect())
}

/// ITU-R BT.601 full-range YCbCr → RGB, rounded and clipped like the reference decoders.
fn ybr_full_to_rgb(samples: &[i64], bits: u16) -> Vec<f32> {
    let max = ((1i64 << bits.clamp(1, 16)) - 1) as f64;
    let half = ((1i64 << (bits.clamp(1, 16) - 1)) as f64).max(1.0);
    samples
        .chunks_exact(3)
        .flat_map(|c| {
            let (y, cb, cr) = (c[0] as f64, c[1] as f64 - half, c[2] as f64 - half);
            let r = y + 1.402 * cr;
            let g = y - 0.344136 * cb - 0.714136 * cr;
            let b = y + 1.772 * cb;
            [r, g, b].map(|v| v.round().clamp(0.0, max) as f32)
        })
        .collect()
}
