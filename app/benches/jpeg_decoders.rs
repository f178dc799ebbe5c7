//! Baseline (8-bit DCT) JPEG frames of the DICOM corpus decoded by jpeg-decoder (what
//! dicom-pixeldata uses for Focal) and by zune-jpeg, alternating rounds, in one run: total
//! time of each, the ratio, and the largest difference between their outputs. Not a test.
//!
//!     cargo bench -p focal --bench jpeg_decoders        (FOCAL_CORPUS as scripts/test.sh sets it)
//!
//! Neither crate decodes 12-bit DCT JPEG (transfer syntax .51): jpeg-decoder 0.3 refuses any
//! precision but 8 outside lossless, zune-jpeg 0.5 parses 8-bit only, so Focal keeps its own
//! 12-bit decoder (app/study/src/codec/jpeg12.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;

const BASELINE: &str = "1.2.840.10008.1.2.4.50";
const ROUNDS: usize = 5;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "dcm") {
            out.push(p);
        }
    }
}

/// Each frame's JPEG codestream of a baseline-JPEG file (one fragment per frame, or all
/// fragments of a single-frame file joined).
fn codestreams(path: &Path) -> Vec<Vec<u8>> {
    let Ok(obj) = dicom_object::open_file(path) else { return Vec::new() };
    if obj.meta().transfer_syntax().trim_end_matches('\0') != BASELINE {
        return Vec::new();
    }
    let Some(fragments) = obj.get(tags::PIXEL_DATA).and_then(|e| e.value().fragments()) else {
        return Vec::new();
    };
    let frames = obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<usize>().ok())
        .unwrap_or(1);
    if frames > 1 && fragments.len() == frames {
        fragments.iter().map(|f| f.to_vec()).collect()
    } else {
        vec![fragments.iter().flat_map(|f| f.iter().copied()).collect()]
    }
}

fn with_jpeg_decoder(data: &[u8]) -> Option<Vec<u8>> {
    jpeg_decoder::Decoder::new(data).decode().ok()
}

/// As Focal decodes them (`study/decode.rs`): grey frames as one sample per pixel (zune-jpeg's
/// default output is RGB), colour as RGB.
fn with_zune(data: &[u8]) -> Option<Vec<u8>> {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let mut probe = zune_jpeg::JpegDecoder::new(ZCursor::new(data));
    probe.decode_headers().ok()?;
    let out = if probe.info()?.components == 1 { ColorSpace::Luma } else { ColorSpace::RGB };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(out);
    zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options).decode().ok()
}

fn main() {
    let corpus = std::env::var_os("FOCAL_CORPUS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/focal/corpus")))
        .expect("FOCAL_CORPUS or HOME")
        .join("wheels");
    let mut files = Vec::new();
    walk(&corpus, &mut files);
    files.sort();
    let mut streams = Vec::new();
    for f in &files {
        for s in codestreams(f) {
            // Only what both decode is timed; the rest is counted.
            match (with_jpeg_decoder(&s), with_zune(&s)) {
                (Some(a), Some(b)) if a.len() == b.len() => {
                    let diff = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
                    streams.push((f.clone(), s, diff, a.len()));
                }
                (a, b) => eprintln!(
                    "{}: jpeg-decoder {}, zune-jpeg {}",
                    f.display(),
                    a.map_or("fails".into(), |v| format!("{} bytes", v.len())),
                    b.map_or("fails".into(), |v| format!("{} bytes", v.len()))
                ),
            }
        }
    }
    assert!(!streams.is_empty(), "no baseline JPEG frames under {}", corpus.display());
    let mut times = [Duration::ZERO; 2];
    for _ in 0..ROUNDS {
        for (k, decode) in [with_jpeg_decoder as fn(&[u8]) -> Option<Vec<u8>>, with_zune].into_iter().enumerate() {
            let t = Instant::now();
            for (_, s, _, _) in &streams {
                std::hint::black_box(decode(s));
            }
            times[k] += t.elapsed();
        }
    }
    let pixels: usize = streams.iter().map(|s| s.3).sum();
    let worst = streams.iter().map(|s| s.2).max().unwrap_or(0);
    println!(
        "{} baseline JPEG frames ({:.1} M output bytes), {ROUNDS} rounds: jpeg-decoder {:.3} s, zune-jpeg {:.3} s, ratio {:.2}; largest output difference {worst}",
        streams.len(),
        pixels as f64 / 1e6,
        times[0].as_secs_f64(),
        times[1].as_secs_f64(),
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );
}
