//! Palette colour lookup tables, including the segmented form (PS3.3 C.7.9.2).

use dicom_core::Tag;
use dicom_dictionary_std::tags;

use super::attrs::{self, Object};
use super::error::{Result, StudyError};

/// Red, green and blue palette colour lookup tables.
pub struct Palette {
    tables: [(i64, Vec<u16>); 3],
}

impl Palette {
    pub fn read(obj: &Object) -> Result<Self> {
        Ok(Palette {
            tables: [
                read_table(
                    obj,
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
                read_table(
                    obj,
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
                read_table(
                    obj,
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                    tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                    tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                )?,
            ],
        })
    }

    pub fn lookup(&self, v: i64) -> [f32; 3] {
        self.tables.each_ref().map(|(first, data)| {
            let i = (v - first).clamp(0, data.len() as i64 - 1) as usize;
            f32::from(data[i])
        })
    }
}

fn words(raw: &[u8]) -> Vec<u16> {
    raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

fn read_table(obj: &Object, descriptor: Tag, data: Tag, segmented: Tag) -> Result<(i64, Vec<u16>)> {
    let desc = attrs::floats(obj, descriptor)
        .ok_or_else(|| StudyError::Decode("palette colour LUT descriptor missing".into()))?;
    let entries = match desc.first().copied().unwrap_or(0.0) {
        0.0 => 65536,
        n => n as usize,
    };
    let first = desc.get(1).copied().unwrap_or(0.0) as i64;
    let bits = desc.get(2).copied().unwrap_or(16.0);
    let table: Vec<u16> = if let Some(raw) = attrs::bytes(obj, data) {
        if bits <= 8.0 && raw.len() == entries {
            raw.iter().map(|&b| u16::from(b)).collect()
        } else if bits <= 8.0 && raw.len() == entries * 2 {
            // 8-bit entries stored one per 16-bit word.
            words(&raw).into_iter().map(|w| w & 0xFF).collect()
        } else {
            words(&raw)
        }
    } else if let Some(raw) = attrs::bytes(obj, segmented) {
        expand_segments(&words(&raw), entries)?
    } else {
        return Err(StudyError::Decode("palette colour LUT data missing".into()));
    };
    if table.is_empty() {
        return Err(StudyError::Decode("empty palette colour LUT".into()));
    }
    Ok((first, table))
}

/// Expands segmented LUT data: discrete (0), linear (1) and indirect (2) segments.
fn expand_segments(words: &[u16], entries: usize) -> Result<Vec<u16>> {
    let bad = |what: &str| StudyError::Decode(format!("segmented palette LUT: {what}"));
    let mut out: Vec<f64> = Vec::with_capacity(entries);
    let mut segment_starts: Vec<usize> = Vec::new();
    let mut i = 0;
    let mut depth = 0;
    expand_from(
        words,
        &mut i,
        usize::MAX,
        &mut out,
        &mut segment_starts,
        &mut depth,
        entries,
    )
    .map_err(|e| bad(e))?;
    if out.len() < entries {
        return Err(bad("shorter than its descriptor"));
    }
    Ok(out
        .iter()
        .take(entries)
        .map(|v| v.round().clamp(0.0, 65535.0) as u16)
        .collect())
}

fn expand_from(
    words: &[u16],
    i: &mut usize,
    max_segments: usize,
    out: &mut Vec<f64>,
    starts: &mut Vec<usize>,
    depth: &mut usize,
    entries: usize,
) -> std::result::Result<(), &'static str> {
    *depth += 1;
    if *depth > 4 {
        return Err("indirect segments nest too deep");
    }
    let mut done = 0;
    while *i < words.len() && done < max_segments && out.len() <= entries {
        let kind = words[*i];
        let len = usize::from(*words.get(*i + 1).ok_or("truncated")?);
        starts.push(out.len());
        match kind {
            0 => {
                let values = words.get(*i + 2..*i + 2 + len).ok_or("truncated discrete segment")?;
                out.extend(values.iter().map(|&v| f64::from(v)));
                *i += 2 + len;
            }
            1 => {
                let end = f64::from(*words.get(*i + 2).ok_or("truncated linear segment")?);
                let start = *out.last().ok_or("linear segment with no previous value")?;
                out.extend((1..=len).map(|k| start + (end - start) * k as f64 / len as f64));
                *i += 3;
            }
            2 => {
                let offset_words = words.get(*i + 2..*i + 4).ok_or("truncated indirect segment")?;
                let offset = usize::from(offset_words[0]) | (usize::from(offset_words[1]) << 16);
                let mut j = offset;
                let mut nested_starts = Vec::new();
                expand_from(words, &mut j, len, out, &mut nested_starts, depth, entries)?;
                *i += 4;
            }
            _ => return Err("unknown segment type"),
        }
        done += 1;
    }
    *depth -= 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_then_linear() {
        let lut = expand_segments(&[0, 2, 0, 10, 1, 3, 40], 5).unwrap_or_default();
        assert_eq!(lut, vec![0, 10, 20, 30, 40]);
    }
}
