//! DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of segment offsets, then one
//! PackBits segment per byte plane, most significant byte first within each sample.
//! dicom-rs's decoder stops at 16 bits; this one handles 8, 16 and 32.

#[derive(Debug, thiserror::Error)]
pub enum RleError {
    #[error("RLE header is missing or malformed")]
    Header,
    #[error("RLE frame has {found} segments, the image needs {needed}")]
    Segments { found: usize, needed: usize },
    #[error("RLE segment {0} decodes to too few bytes")]
    ShortSegment(usize),
}

/// Decodes one RLE frame to little-endian interleaved samples.
pub fn decode_frame(
    data: &[u8],
    pixels: usize,
    samples_per_pixel: usize,
    bits_allocated: u16,
) -> Result<Vec<u8>, RleError> {
    let header = data.get(..64).ok_or(RleError::Header)?;
    let word = |i: usize| {
        u32::from_le_bytes([header[i * 4], header[i * 4 + 1], header[i * 4 + 2], header[i * 4 + 3]]) as usize
    };
    let count = word(0);
    let bytes_per_sample = usize::from(bits_allocated).div_ceil(8);
    let needed = samples_per_pixel * bytes_per_sample;
    if count > 15 {
        return Err(RleError::Header);
    }
    if count != needed {
        return Err(RleError::Segments { found: count, needed });
    }
    let mut out = vec![0u8; pixels * needed];
    for seg in 0..count {
        let start = word(seg + 1);
        let end = if seg + 1 < count { word(seg + 2) } else { data.len() };
        let body = data
            .get(start..end.min(data.len()).max(start))
            .ok_or(RleError::Header)?;
        let plane = unpack(body, pixels);
        if plane.len() < pixels {
            return Err(RleError::ShortSegment(seg));
        }
        let sample = seg / bytes_per_sample;
        // Segments come most significant byte first; output is little-endian.
        let byte = bytes_per_sample - 1 - seg % bytes_per_sample;
        for (p, &v) in plane.iter().take(pixels).enumerate() {
            out[(p * samples_per_pixel + sample) * bytes_per_sample + byte] = v;
        }
    }
    Ok(out)
}

/// PackBits: a control byte n ≥ 0 copies n+1 literal bytes; -127..=-1 repeats the next byte
/// 1-n times; -128 does nothing.
fn unpack(body: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit);
    let mut i = 0;
    while i < body.len() && out.len() < limit {
        let n = body[i] as i8;
        i += 1;
        if n >= 0 {
            let len = n as usize + 1;
            let end = (i + len).min(body.len());
            out.extend_from_slice(&body[i..end]);
            i = end;
        } else if n != -128 {
            if let Some(&b) = body.get(i) {
                out.extend(std::iter::repeat_n(b, 1 + (-(n as isize)) as usize));
            }
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literals_and_runs() {
        assert_eq!(
            unpack(&[2, 1, 2, 3, 0xFE, 9, 0x80, 0, 7], 100),
            vec![1, 2, 3, 9, 9, 9, 7]
        );
    }

    #[test]
    fn sixteen_bit_segments_are_msb_first() {
        let mut data = vec![0u8; 64];
        data[0] = 2;
        data[4] = 64;
        data[8] = 67;
        data.extend_from_slice(&[1, 0x12, 0x34]); // high bytes
        data.extend_from_slice(&[1, 0x56, 0x78]); // low bytes
        let out = decode_frame(&data, 2, 1, 16).unwrap_or_default();
        assert_eq!(out, vec![0x56, 0x12, 0x78, 0x34]);
    }

    #[test]
    fn wrong_segment_count_is_an_error() {
        let mut data = vec![0u8; 64];
        data[0] = 1;
        data[4] = 64;
        data.extend_from_slice(&[0, 1]);
        assert!(matches!(
            decode_frame(&data, 1, 1, 16),
            Err(RleError::Segments { found: 1, needed: 2 })
        ));
    }
}
