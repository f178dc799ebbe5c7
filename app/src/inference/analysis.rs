//! Pre-processing (resample to the model's grid, normalise, pad), batched inference, and
//! post-processing (back to the slice grid, labels, confidence, volumes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::engine::Engine;
use super::{InferenceError, Result};
use crate::study::{Progress, Volume};

/// Slices per model call: bounds memory (only one batch of tensors lives at a time).
pub const BATCH: usize = 8;

/// The model's results on a volume, on the volume's own grid.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub columns: usize,
    pub rows: usize,
    pub slices: usize,
    /// Label index per voxel, slice-major.
    pub labels: Vec<u8>,
    /// Attention (0–1) per voxel.
    pub attention: Vec<f32>,
    /// Probability of each label per voxel: [slice][label][row][column].
    pub probabilities: Vec<f32>,
    pub summary: AnalysisSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelVolume {
    pub index: u8,
    pub name: String,
    pub voxels: usize,
    pub volume_ml: f64,
    /// Mean probability of this label where it was predicted.
    pub mean_probability: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSummary {
    pub model_grid: [usize; 2],
    pub labels: Vec<LabelVolume>,
    /// Per slice: mean maximum probability inside the predicted (non-background) mask.
    pub slice_confidence: Vec<Option<f64>>,
    pub mean_confidence: Option<f64>,
    pub seconds_total: f64,
    pub seconds_model: f64,
    pub slices_per_second: f64,
}

/// Bilinear resampling of a (h, w) plane to (nh, nw), pixel centres aligned.
pub fn resample(src: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    if (h, w) == (nh, nw) {
        return src.to_vec();
    }
    let mut out = vec![0f32; nh * nw];
    let (sy, sx) = (h as f64 / nh as f64, w as f64 / nw as f64);
    for y in 0..nh {
        let fy = ((y as f64 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f64);
        let (y0, ty) = (fy.floor() as usize, (fy - fy.floor()) as f32);
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..nw {
            let fx = ((x as f64 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f64);
            let (x0, tx) = (fx.floor() as usize, (fx - fx.floor()) as f32);
            let x1 = (x0 + 1).min(w - 1);
            let top = src[y0 * w + x0] * (1.0 - tx) + src[y0 * w + x1] * tx;
            let bottom = src[y1 * w + x0] * (1.0 - tx) + src[y1 * w + x1] * tx;
            out[y * nw + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    out
}

/// Divides by the given percentile (linear interpolation, as numpy) of the values > 0 and
/// clips to [lo, hi]; negative values count as 0.
pub fn normalise(plane: &[f32], percentile: f64, clip: [f32; 2]) -> Vec<f32> {
    let mut positive: Vec<f32> = plane.iter().copied().filter(|v| *v > 0.0).collect();
    if positive.is_empty() {
        return vec![0.0; plane.len()];
    }
    positive.sort_by(f32::total_cmp);
    let pos = percentile / 100.0 * (positive.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(positive.len() - 1);
    let scale = f64::from(positive[lo]) + (f64::from(positive[hi]) - f64::from(positive[lo])) * frac;
    let scale = scale.max(1e-6) as f32;
    plane
        .iter()
        .map(|v| (v.max(0.0) / scale).clamp(clip[0], clip[1]))
        .collect()
}

/// Zero-pads a plane at the bottom and right to multiples of `m`.
pub fn pad(plane: &[f32], h: usize, w: usize, m: usize) -> (Vec<f32>, usize, usize) {
    let (ph, pw) = (h.div_ceil(m) * m, w.div_ceil(m) * m);
    let mut out = vec![0f32; ph * pw];
    for y in 0..h {
        out[y * pw..y * pw + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
    }
    (out, ph, pw)
}

/// Crops the top-left (h, w) of a (ph, pw) plane.
fn crop(plane: &[f32], pw: usize, h: usize, w: usize) -> Vec<f32> {
    (0..h).flat_map(|y| plane[y * pw..y * pw + w].iter().copied()).collect()
}

/// Runs the model on every slice of a grey-level volume.
pub fn analyze_volume(
    engine: &mut Engine,
    volume: &Volume,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Analysis> {
    if volume.channels != 1 {
        return Err(InferenceError::Input(
            "colour images cannot be segmented by a grey-level MR model".into(),
        ));
    }
    let start = Instant::now();
    let (rows, cols, slices) = (volume.rows, volume.columns, volume.slices);
    let spacing = volume.geometry.as_ref().map_or([1.0, 1.0, 1.0], |g| g.spacing);
    let target = engine.manifest.input.pixel_spacing_mm;
    // Model grid: the slice's physical extent at the model's pixel spacing.
    let mh = ((rows as f64 * spacing[1] / target[0]).round() as usize).max(1);
    let mw = ((cols as f64 * spacing[0] / target[1]).round() as usize).max(1);
    if mh > 4096 || mw > 4096 {
        return Err(InferenceError::Input(format!(
            "slices of {mw}×{mh} at the model's spacing are too large"
        )));
    }
    let classes = engine.classes();
    let norm = engine.manifest.input.normalisation.clone();
    let multiple = engine.manifest.input.size_multiple;
    let plane = rows * cols;
    let mut labels = vec![0u8; plane * slices];
    let mut attention = vec![0f32; plane * slices];
    let mut probabilities = vec![0f32; plane * slices * classes];
    let mut model_seconds = 0.0;
    for first in (0..slices).step_by(BATCH) {
        if cancel.load(Ordering::Relaxed) {
            return Err(InferenceError::Cancelled);
        }
        let batch: Vec<usize> = (first..(first + BATCH).min(slices)).collect();
        let mut input = Vec::new();
        let (mut ph, mut pw) = (0, 0);
        for &k in &batch {
            let values = volume.slice(k).unwrap_or(&[]);
            let resampled = resample(values, rows, cols, mh, mw);
            let normalised = normalise(&resampled, norm.percentile, norm.clip);
            let (padded, h, w) = pad(&normalised, mh, mw, multiple);
            (ph, pw) = (h, w);
            input.extend(padded);
        }
        let t = Instant::now();
        let (probs, att) = engine.run(input, batch.len(), ph, pw)?;
        model_seconds += t.elapsed().as_secs_f64();
        for (b, &k) in batch.iter().enumerate() {
            let a = crop(&att[b * ph * pw..(b + 1) * ph * pw], pw, mh, mw);
            attention[k * plane..(k + 1) * plane].copy_from_slice(&resample(&a, mh, mw, rows, cols));
            let base = (b * classes) * ph * pw;
            let per_class: Vec<Vec<f32>> = (0..classes)
                .map(|c| {
                    let p = crop(&probs[base + c * ph * pw..base + (c + 1) * ph * pw], pw, mh, mw);
                    resample(&p, mh, mw, rows, cols)
                })
                .collect();
            for (c, p) in per_class.iter().enumerate() {
                let at = (k * classes + c) * plane;
                probabilities[at..at + plane].copy_from_slice(p);
            }
            for i in 0..plane {
                let best = (0..classes)
                    .max_by(|&x, &y| per_class[x][i].total_cmp(&per_class[y][i]))
                    .unwrap_or(0);
                labels[k * plane + i] = engine.manifest.labels.get(best).map_or(best as u8, |l| l.index);
            }
        }
        progress(Progress {
            done: batch[batch.len() - 1] + 1,
            total: slices,
        });
    }
    let summary = summarise(
        engine,
        &labels,
        &probabilities,
        [rows, cols, slices],
        spacing,
        (mh, mw),
        classes,
    );
    let seconds_total = start.elapsed().as_secs_f64();
    Ok(Analysis {
        columns: cols,
        rows,
        slices,
        labels,
        attention,
        probabilities,
        summary: AnalysisSummary {
            seconds_total,
            seconds_model: model_seconds,
            slices_per_second: slices as f64 / seconds_total.max(1e-9),
            ..summary
        },
    })
}

fn summarise(
    engine: &Engine,
    labels: &[u8],
    probabilities: &[f32],
    [rows, cols, slices]: [usize; 3],
    spacing: [f64; 3],
    (mh, mw): (usize, usize),
    classes: usize,
) -> AnalysisSummary {
    let plane = rows * cols;
    let voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    let mut counts = vec![0usize; classes];
    let mut prob_sums = vec![0f64; classes];
    let mut slice_confidence = Vec::with_capacity(slices);
    for k in 0..slices {
        let (mut sum, mut n) = (0f64, 0usize);
        for i in 0..plane {
            let l = labels[k * plane + i] as usize;
            let c = l.min(classes - 1);
            let p = f64::from(probabilities[(k * classes + c) * plane + i]);
            counts[c] += 1;
            prob_sums[c] += p;
            if l != 0 {
                sum += p;
                n += 1;
            }
        }
        slice_confidence.push((n > 0).then(|| sum / n as f64));
    }
    let known: Vec<f64> = slice_confidence.iter().flatten().copied().collect();
    let total_fg: usize = counts.iter().skip(1).sum();
    let weighted: f64 = prob_sums.iter().skip(1).sum();
    AnalysisSummary {
        model_grid: [mw, mh],
        labels: engine
            .manifest
            .labels
            .iter()
            .enumerate()
            .map(|(c, l)| LabelVolume {
                index: l.index,
                name: l.name.clone(),
                voxels: counts[c],
                volume_ml: counts[c] as f64 * voxel_ml,
                mean_probability: (counts[c] > 0).then(|| prob_sums[c] / counts[c] as f64),
            })
            .collect(),
        mean_confidence: (!known.is_empty() && total_fg > 0).then(|| weighted / total_fg as f64),
        slice_confidence,
        seconds_total: 0.0,
        seconds_model: 0.0,
        slices_per_second: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1..=10], 99.5) = 9.955
        let v: Vec<f32> = (1..=10).map(|x| x as f32).collect();
        let n = normalise(&v, 99.5, [0.0, 1.0]);
        assert!((n[8] - 9.0 / 9.955).abs() < 1e-6);
        assert_eq!(n[9], 1.0);
    }

    #[test]
    fn resample_identity_and_halving() {
        let v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(resample(&v, 2, 2, 2, 2), v);
        let half = resample(&[0.0, 2.0, 0.0, 2.0], 2, 2, 1, 1);
        assert_eq!(half, vec![1.0]);
    }

    #[test]
    fn pad_to_multiple() {
        let (p, h, w) = pad(&[1.0; 6], 2, 3, 8);
        assert_eq!((h, w), (8, 8));
        assert_eq!(p[0..3], [1.0; 3]);
        assert_eq!(p[3], 0.0);
        assert_eq!(p[8..11], [1.0; 3]);
    }
}
