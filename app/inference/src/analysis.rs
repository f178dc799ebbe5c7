//! Batched inference over a volume (its model input from `preprocess`) and post-processing:
//! back to the slice grid, labels, confidence, volumes, the deletion test, modality reliance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::engine::Engine;
pub use super::preprocess::{ModelGrid, Preprocessor, crop, normalise, pad, resample};
pub use super::steps::PostprocessStep;
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
    /// The key regions' score and region map (manifests with `key_regions`).
    pub key_regions: Option<super::key_regions::KeyRegions>,
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

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// The manifest's post-processing steps as applied, with what each removed.
    #[serde(default)]
    pub postprocess: Vec<PostprocessStep>,
    /// Where the attention lies: the share of its mass inside the labelled brain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_in_brain: Option<f64>,
    /// Where the scan departs from its own model of healthy tissue (None: not looked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_regions: Option<Vec<super::key_regions::KeyRegion>>,
    /// Regions set aside as likely physiological (listed apart from the key regions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_regions_set_aside: Vec<super::key_regions::SetAside>,
}

impl Insights {
    /// A slot's series as a reader knows it: "T1 (series "T1 3D axial")", or the slot's name
    /// when the analysis does not say which series it held.
    pub fn series_name(&self, slot: &str) -> String {
        match self.slots.iter().find(|s| s.slot == slot) {
            Some(SlotSeries { description: Some(d), .. }) => format!("{slot} (series \"{d}\")"),
            _ => slot.to_string(),
        }
    }
}

/// The share of the attention map's mass on labelled voxels (the brain, after
/// post-processing); None when the map holds no mass.
pub fn attention_in_brain(attention: &[f32], labels: &[u8]) -> Option<f64> {
    let (mut inside, mut all) = (0f64, 0f64);
    for (&a, &l) in attention.iter().zip(labels) {
        if a.is_finite() && a > 0.0 {
            all += f64::from(a);
            if l != 0 {
                inside += f64::from(a);
            }
        }
    }
    (all > 0.0).then(|| inside / all)
}

/// "38 % of the attention map's mass lies inside the labelled brain (62 % outside it: scalp,
/// skull, background)", for the CLI, the window and the report.
pub fn describe_attention_in_brain(share: f64) -> String {
    format!(
        "{:.0} % of the attention map's mass lies inside the labelled brain ({:.0} % outside it: scalp, skull, background)",
        share * 100.0,
        (1.0 - share) * 100.0
    )
}

/// The series given for one modality slot.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SlotSeries {
    pub slot: String,
    pub series_uid: String,
    pub description: Option<String>,
    /// Share of the analysed volume this series covers (1 for the analysed series).
    pub coverage: f64,
    /// What a reader should know about the series' geometry before trusting measurements
    /// (duplicate positions, irregular spacing, missing slices, gantry tilt...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
    // The brain extractor runs first, while little else is held in memory (its 256³ pass is
    // the analysis's largest); its step below applies the mask.
    let t = Instant::now();
    let extracted = if engine.manifest.uses_extractor() {
        super::extractor::brain_mask(engine, volumes[0])?
    } else {
        None
    };
    let extractor_seconds = t.elapsed().as_secs_f64();
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
    let mut model_seconds = extractor_seconds;
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
    let (postprocess, step_seconds, key_regions) = super::steps::run(
        engine,
        volumes,
        extracted,
        &mut labels,
        &mut probabilities,
        [cols, rows, slices],
        spacing,
        cancel,
    )?;
    model_seconds += step_seconds;
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
    let in_brain = attention_in_brain(&attention, &labels);
    let regions = key_regions.as_ref().map(|k| k.regions.clone());
    let set_aside = key_regions.as_ref().map(|k| k.set_aside.clone()).unwrap_or_default();
    let seconds_total = start.elapsed().as_secs_f64();
    Ok(Analysis {
        columns: cols,
        rows,
        slices,
        labels,
        attention,
        probabilities,
        modality_attention: modality,
        key_regions,
        summary: AnalysisSummary {
            seconds_total,
            seconds_model: model_seconds,
            seconds_faithfulness,
            slices_per_second: slices as f64 / (seconds_total - seconds_faithfulness).max(1e-9),
            insights: Insights {
                faithfulness,
                modality_reliance,
                postprocess,
                attention_in_brain: in_brain,
                key_regions: regions,
                key_regions_set_aside: set_aside,
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
    fn the_attention_inside_the_brain_is_its_share_of_the_mass_on_labelled_voxels() {
        let attention = [0.5, 0.25, 0.25, 0.0, f32::NAN];
        let labels = [0, 1, 3, 2, 2];
        let share = attention_in_brain(&attention, &labels).expect("mass");
        assert!((share - 0.5).abs() < 1e-12, "{share}");
        assert_eq!(attention_in_brain(&[0.0; 3], &[1; 3]), None);
        assert!(describe_attention_in_brain(share).starts_with("50 % of the attention map's mass"));
    }
}
