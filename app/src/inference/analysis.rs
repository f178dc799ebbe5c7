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
    /// Weight of each modality slot per voxel, [slice][slot][row][column] (models with slots).
    pub modality_attention: Option<Vec<f32>>,
    pub summary: AnalysisSummary,
}

/// How much one label relied on each modality slot.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ModalityReliance {
    pub label: String,
    pub slots: Vec<SlotWeight>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SlotWeight {
    pub slot: String,
    /// Whether a series was given for this slot.
    pub present: bool,
    /// Mean weight over the label's voxels (the weights of all slots sum to 1).
    pub mean_weight: Option<f64>,
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
    /// Everything, the deletion test included.
    pub seconds_total: f64,
    pub seconds_model: f64,
    /// The deletion test of the attention map (part of seconds_total).
    pub seconds_faithfulness: f64,
    /// Slices per second of the segmentation itself (without the deletion test).
    pub slices_per_second: f64,
    pub insights: Insights,
}

/// What an analysis says about itself beyond labels: the attention's deletion test, which
/// series each label relied on, volumes outside adult norms, and the series in each slot.
/// Written into summary.json and read back by exports and the window.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Insights {
    /// The deletion test of the attention map on this volume.
    #[serde(default)]
    pub faithfulness: Option<super::faithfulness::Faithfulness>,
    #[serde(default)]
    pub modality_reliance: Vec<ModalityReliance>,
    #[serde(default)]
    pub volume_warnings: Vec<String>,
    #[serde(default)]
    pub slots: Vec<SlotSeries>,
}

/// The series given for one modality slot.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SlotSeries {
    pub slot: String,
    pub series_uid: String,
    pub description: Option<String>,
    /// Share of the analysed volume this series covers (1 for the analysed series).
    pub coverage: f64,
}

/// Warnings for label volumes outside the manifest's adult ranges (mL), e.g. when the model
/// labels tissue outside the brain, or the scan covers only part of the head.
pub fn volume_warnings(manifest: &super::Manifest, volumes: &[(u8, f64)]) -> Vec<String> {
    let mut out = Vec::new();
    for l in &manifest.labels {
        let (Some([lo, hi]), Some((_, ml))) = (l.expected_ml, volumes.iter().find(|(i, _)| *i == l.index)) else {
            continue;
        };
        if *ml < lo || *ml > hi {
            out.push(format!(
                "{} volume {ml:.0} mL is outside the adult range {lo:.0}–{hi:.0} mL",
                l.name
            ));
        }
    }
    if let Some([lo, hi]) = manifest.expected_total_ml {
        let total: f64 = volumes.iter().filter(|(i, _)| *i != 0).map(|(_, ml)| ml).sum();
        if total < lo || total > hi {
            let why = if total > hi {
                "tissue outside the brain may be labelled"
            } else {
                "the scan may not cover the whole brain"
            };
            out.push(format!(
                "labelled brain volume {total:.0} mL is outside the adult range {lo:.0}–{hi:.0} mL ({why})"
            ));
        }
    }
    out
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
    scale_and_clip(plane, percentile_of_positive(plane.iter().copied(), percentile), clip)
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
pub fn crop(plane: &[f32], pw: usize, h: usize, w: usize) -> Vec<f32> {
    (0..h).flat_map(|y| plane[y * pw..y * pw + w].iter().copied()).collect()
}

/// The model's pixel grid for a volume: the slice's physical extent at the model's spacing,
/// padded to the model's size multiple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelGrid {
    pub rows: usize,
    pub columns: usize,
    /// Model grid before padding.
    pub mh: usize,
    pub mw: usize,
    /// Padded model grid (what the model sees).
    pub ph: usize,
    pub pw: usize,
}

impl ModelGrid {
    /// A padded model-grid plane cropped and resampled back to the volume's slice grid.
    pub fn to_volume(&self, padded: &[f32]) -> Vec<f32> {
        resample(&crop(padded, self.pw, self.mh, self.mw), self.mh, self.mw, self.rows, self.columns)
    }
}

/// Makes the model's input for a slice: for each modality slot, the slice and its
/// neighbours (clamped at the ends of the volume), resampled to the model grid, normalised
/// as the manifest says and padded. A slot without a series is zeros.
pub struct Preprocessor<'a> {
    slots: Vec<Option<&'a Volume>>,
    context: usize,
    percentile: f64,
    clip: [f32; 2],
    per_slab: bool,
    pub grid: ModelGrid,
}

impl<'a> Preprocessor<'a> {
    /// `volumes[0]` is the analysed series; the others must already be on its grid.
    pub fn new(engine: &Engine, volumes: &[&'a Volume]) -> Result<Preprocessor<'a>> {
        let m = &engine.manifest;
        let Some(primary) = volumes.first() else {
            return Err(InferenceError::Input("no series to analyse".into()));
        };
        if volumes.iter().any(|v| v.channels != 1) {
            return Err(InferenceError::Input(
                "colour images cannot be segmented by a grey-level MR model".into(),
            ));
        }
        if volumes.len() > m.input.slots.len() {
            return Err(InferenceError::Input(format!(
                "{} series given, but the model takes at most {} ({})",
                volumes.len(),
                m.input.slots.len(),
                m.input.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        if volumes
            .iter()
            .any(|v| (v.rows, v.columns, v.slices) != (primary.rows, primary.columns, primary.slices))
        {
            return Err(InferenceError::Input(
                "every series must be resampled onto the analysed series' grid first".into(),
            ));
        }
        let (rows, columns) = (primary.rows, primary.columns);
        let spacing = primary.geometry.as_ref().map_or([1.0, 1.0, 1.0], |g| g.spacing);
        let target = m.input.pixel_spacing_mm;
        let mh = ((rows as f64 * spacing[1] / target[0]).round() as usize).max(1);
        let mw = ((columns as f64 * spacing[0] / target[1]).round() as usize).max(1);
        if mh > 4096 || mw > 4096 {
            return Err(InferenceError::Input(format!(
                "slices of {mw}×{mh} at the model's spacing are too large"
            )));
        }
        let multiple = m.input.size_multiple;
        let mut slots: Vec<Option<&Volume>> = volumes.iter().copied().map(Some).collect();
        slots.resize(m.input.slots.len(), None);
        Ok(Preprocessor {
            slots,
            context: m.input.context_slices,
            percentile: m.input.normalisation.percentile,
            clip: m.input.normalisation.clip,
            per_slab: m.input.normalisation.scope == "each slot's slab",
            grid: ModelGrid {
                rows,
                columns,
                mh,
                mw,
                ph: mh.div_ceil(multiple) * multiple,
                pw: mw.div_ceil(multiple) * multiple,
            },
        })
    }

    pub fn channels(&self) -> usize {
        self.slots.len() * (2 * self.context + 1)
    }

    pub fn slices(&self) -> usize {
        self.slots[0].map_or(0, |v| v.slices)
    }

    /// Which slots hold a series.
    pub fn present(&self) -> Vec<bool> {
        self.slots.iter().map(Option::is_some).collect()
    }

    /// The model input for slice `k`: [channels, ph, pw].
    pub fn input(&self, k: usize) -> Vec<f32> {
        let g = self.grid;
        let mut out = Vec::with_capacity(self.channels() * g.ph * g.pw);
        let ctx = self.context as isize;
        for slot in &self.slots {
            let Some(v) = slot else {
                out.resize(out.len() + (2 * self.context + 1) * g.ph * g.pw, 0.0);
                continue;
            };
            let last = v.slices.saturating_sub(1) as isize;
            let planes: Vec<Vec<f32>> = (-ctx..=ctx)
                .map(|d| {
                    let j = (k as isize + d).clamp(0, last) as usize;
                    resample(v.slice(j).unwrap_or(&[]), g.rows, g.columns, g.mh, g.mw)
                })
                .collect();
            let scale = self.per_slab.then(|| percentile_of_positive(planes.iter().flatten().copied(), self.percentile));
            for plane in &planes {
                let normalised = match scale {
                    Some(s) => scale_and_clip(plane, s, self.clip),
                    None => normalise(plane, self.percentile, self.clip),
                };
                out.extend(pad_to(&normalised, g.mh, g.mw, g.ph, g.pw));
            }
        }
        out
    }
}

/// The given percentile (linear interpolation, as numpy) of the values > 0; None if none.
fn percentile_of_positive(values: impl Iterator<Item = f32>, percentile: f64) -> Option<f32> {
    let mut positive: Vec<f32> = values.filter(|v| *v > 0.0).collect();
    if positive.is_empty() {
        return None;
    }
    positive.sort_by(f32::total_cmp);
    let pos = percentile / 100.0 * (positive.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(positive.len() - 1);
    let scale = f64::from(positive[lo]) + (f64::from(positive[hi]) - f64::from(positive[lo])) * frac;
    Some(scale.max(1e-6) as f32)
}

fn scale_and_clip(plane: &[f32], scale: Option<f32>, clip: [f32; 2]) -> Vec<f32> {
    match scale {
        Some(s) => plane.iter().map(|v| (v.max(0.0) / s).clamp(clip[0], clip[1])).collect(),
        None => vec![0.0; plane.len()],
    }
}

/// Zero-pads a (h, w) plane at the bottom and right to (ph, pw).
fn pad_to(plane: &[f32], h: usize, w: usize, ph: usize, pw: usize) -> Vec<f32> {
    let mut out = vec![0f32; ph * pw];
    for y in 0..h {
        out[y * pw..y * pw + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
    }
    out
}

/// Runs the model on every slice of a grey-level volume.
pub fn analyze_volume(
    engine: &mut Engine,
    volume: &Volume,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Analysis> {
    analyze_volumes(engine, &[volume], progress, cancel)
}

/// Runs the model on every slice of `volumes[0]`, with the other series (already resampled
/// onto its grid) in the model's further modality slots.
pub fn analyze_volumes(
    engine: &mut Engine,
    volumes: &[&Volume],
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Analysis> {
    let start = Instant::now();
    let pre = Preprocessor::new(engine, volumes)?;
    let volume = volumes[0];
    let g = pre.grid;
    let (rows, cols, slices) = (volume.rows, volume.columns, volume.slices);
    let spacing = volume.geometry.as_ref().map_or([1.0, 1.0, 1.0], |g| g.spacing);
    let classes = engine.classes();
    let slots = engine.slots();
    let plane = rows * cols;
    let (ph, pw) = (g.ph, g.pw);
    let mut labels = vec![0u8; plane * slices];
    let mut attention = vec![0f32; plane * slices];
    let mut probabilities = vec![0f32; plane * slices * classes];
    let mut modality = engine.manifest.has_modality_attention().then(|| vec![0f32; plane * slices * slots]);
    let mut model_seconds = 0.0;
    for first in (0..slices).step_by(BATCH) {
        if cancel.load(Ordering::Relaxed) {
            return Err(InferenceError::Cancelled);
        }
        let batch: Vec<usize> = (first..(first + BATCH).min(slices)).collect();
        let input: Vec<f32> = batch.iter().flat_map(|&k| pre.input(k)).collect();
        let t = Instant::now();
        let out = engine.run(input, batch.len(), ph, pw)?;
        model_seconds += t.elapsed().as_secs_f64();
        for (b, &k) in batch.iter().enumerate() {
            attention[k * plane..(k + 1) * plane].copy_from_slice(&g.to_volume(&out.attention[b * ph * pw..(b + 1) * ph * pw]));
            if let (Some(all), Some(m)) = (modality.as_mut(), out.modality.as_ref()) {
                for s in 0..slots {
                    let at = ((b * slots) + s) * ph * pw;
                    let dst = (k * slots + s) * plane;
                    all[dst..dst + plane].copy_from_slice(&g.to_volume(&m[at..at + ph * pw]));
                }
            }
            let base = (b * classes) * ph * pw;
            let per_class: Vec<Vec<f32>> = (0..classes)
                .map(|c| g.to_volume(&out.probs[base + c * ph * pw..base + (c + 1) * ph * pw]))
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
    if engine.manifest.postprocess.iter().any(|p| p == "largest_component") {
        let removed = super::postprocess::keep_largest_component(&mut labels, [cols, rows, slices]);
        tracing::debug!(removed, "voxels outside the largest labelled component set to background");
    }
    let summary = summarise(
        engine,
        &labels,
        &probabilities,
        [rows, cols, slices],
        spacing,
        (g.mh, g.mw),
        classes,
    );
    if cancel.load(Ordering::Relaxed) {
        return Err(InferenceError::Cancelled);
    }
    let t = Instant::now();
    let faithfulness = super::faithfulness::deletion_test(engine, &pre, &labels)?;
    let seconds_faithfulness = t.elapsed().as_secs_f64();
    let modality_reliance = modality
        .as_ref()
        .map(|m| reliance(engine, &labels, m, plane, slices, slots, &pre.present()))
        .unwrap_or_default();
    let seconds_total = start.elapsed().as_secs_f64();
    Ok(Analysis {
        columns: cols,
        rows,
        slices,
        labels,
        attention,
        probabilities,
        modality_attention: modality,
        summary: AnalysisSummary {
            seconds_total,
            seconds_model: model_seconds,
            seconds_faithfulness,
            slices_per_second: slices as f64 / (seconds_total - seconds_faithfulness).max(1e-9),
            insights: Insights {
                faithfulness,
                modality_reliance,
                ..summary.insights
            },
            ..summary
        },
    })
}

/// Per label: the mean weight the model gave each modality slot over that label's voxels.
fn reliance(
    engine: &Engine,
    labels: &[u8],
    modality: &[f32],
    plane: usize,
    slices: usize,
    slots: usize,
    present: &[bool],
) -> Vec<ModalityReliance> {
    engine
        .manifest
        .labels
        .iter()
        .filter(|l| l.index != 0)
        .map(|l| {
            let mut sums = vec![0f64; slots];
            let mut n = 0usize;
            for k in 0..slices {
                for i in 0..plane {
                    if labels[k * plane + i] == l.index {
                        n += 1;
                        for (s, sum) in sums.iter_mut().enumerate() {
                            *sum += f64::from(modality[(k * slots + s) * plane + i]);
                        }
                    }
                }
            }
            ModalityReliance {
                label: l.name.clone(),
                slots: engine
                    .manifest
                    .input
                    .slots
                    .iter()
                    .zip(&sums)
                    .zip(present)
                    .map(|((spec, sum), &present)| SlotWeight {
                        slot: spec.name.clone(),
                        present,
                        mean_weight: (n > 0).then(|| sum / n as f64),
                    })
                    .collect(),
            }
        })
        .collect()
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
        seconds_faithfulness: 0.0,
        slices_per_second: 0.0,
        insights: Insights {
            volume_warnings: volume_warnings(
                &engine.manifest,
                &engine
                    .manifest
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(c, l)| (l.index, counts[c] as f64 * voxel_ml))
                    .collect::<Vec<_>>(),
            ),
            ..Insights::default()
        },
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
