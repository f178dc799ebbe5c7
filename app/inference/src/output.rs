//! The analysis folder: label, attention and probability maps as NIfTI, and summary.json
//! (what `focal export` and the window read back).

use std::path::Path;

use serde::Serialize;

use super::analysis::LabelVolume;
use super::{Analysis, Engine, Provider, nifti};
use crate::study::{self, Volume};

#[derive(Serialize)]
pub struct Summary<'a> {
    model: ModelInfo<'a>,
    provider: &'a Provider,
    series_uid: &'a str,
    study_uid: &'a str,
    slices: usize,
    grid: [usize; 3],
    spacing_mm: Option<[f64; 3]>,
    skipped_slices: &'a [study::SkippedSlice],
    labels: &'a [LabelVolume],
    mean_confidence: Option<f64>,
    slice_confidence: &'a [Option<f64>],
    #[serde(flatten)]
    insights: &'a super::analysis::Insights,
    seconds: Timings,
    files: Vec<&'a str>,
    note: &'a str,
}

#[derive(Serialize)]
pub struct ModelInfo<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extent_sha256: Option<&'a str>,
    /// The brain extractor's files (locate, segment), when the model has one.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    extractor_sha256: &'a [String],
    verified_against_manifest: bool,
}

#[derive(Serialize)]
pub struct Timings {
    pub scan: f64,
    pub load_volume: f64,
    pub load_model: f64,
    pub inference_total: f64,
    pub model_only: f64,
    /// The attention's deletion test (part of inference_total).
    pub faithfulness: f64,
    pub slices_per_second: f64,
}

/// Writes the maps and summary.json into `out` (created), each file atomically.
pub fn write_analysis_folder(
    out: &Path,
    volume: &Volume,
    analysis: &Analysis,
    engine: &Engine,
    series_uid: &str,
    study_uid: &str,
    seconds: Timings,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    write_results(out, volume, analysis)?;
    let summary = Summary {
        model: ModelInfo {
            name: &engine.manifest.name,
            version: &engine.manifest.version,
            sha256: &engine.sha256,
            extent_sha256: engine.extent_sha256.as_deref(),
            extractor_sha256: &engine.extractor_sha256,
            verified_against_manifest: engine.verified,
        },
        provider: &engine.provider,
        series_uid,
        study_uid,
        slices: analysis.slices,
        grid: [analysis.columns, analysis.rows, analysis.slices],
        spacing_mm: volume.geometry.as_ref().map(|g| g.spacing),
        skipped_slices: &volume.skipped,
        labels: &analysis.summary.labels,
        mean_confidence: analysis.summary.mean_confidence,
        slice_confidence: &analysis.summary.slice_confidence,
        insights: &analysis.summary.insights,
        seconds,
        files: if analysis.modality_attention.is_some() {
            vec![LABELS_FILE, ATTENTION_FILE, PROBABILITIES_FILE, MODALITY_FILE]
        } else {
            vec![LABELS_FILE, ATTENTION_FILE, PROBABILITIES_FILE]
        },
        note: "Research use only, not for diagnosis. The attention map shows which pixels the model let through to its segmentation (see faithfulness for how much the labels depend on them), not a finding.",
    };
    let text = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    crate::outdir::write_atomic(&out.join(SUMMARY_FILE), text.as_bytes())
}

// The analysis folder's file names, named here only.
/// What the analysis found and how (JSON).
pub const SUMMARY_FILE: &str = "summary.json";
/// The label of every voxel, [x, y, z].
pub const LABELS_FILE: &str = "labels.nii";
/// The model's spatial attention, [x, y, z].
pub const ATTENTION_FILE: &str = "attention.nii";
/// The probability of every label, [x, y, z, label].
pub const PROBABILITIES_FILE: &str = "probabilities.nii";
/// The weights over modality slots, [x, y, z, slot].
pub const MODALITY_FILE: &str = "modality_attention.nii";
/// Evidence maps computed so far (zero on slices without one) and what each was computed for.
pub const EVIDENCE_FILE: &str = "evidence.nii";
pub const EVIDENCE_INDEX: &str = "evidence.json";

fn write_results(out: &Path, volume: &Volume, a: &Analysis) -> std::io::Result<()> {
    let g = volume.geometry.as_ref();
    let dims = [a.columns, a.rows, a.slices, 1];
    nifti::write(&out.join(LABELS_FILE), dims, g, nifti::Data::U8(&a.labels))?;
    nifti::write(&out.join(ATTENTION_FILE), dims, g, nifti::Data::F32(&a.attention))?;
    let plane = a.columns * a.rows;
    let classes = a.probabilities.len() / (plane * a.slices).max(1);
    nifti::write(
        &out.join(PROBABILITIES_FILE),
        [a.columns, a.rows, a.slices, classes],
        g,
        nifti::Data::F32(&by_fourth_axis(&a.probabilities, plane, a.slices, classes)),
    )?;
    // A stale map from an earlier run would not match these labels.
    let _ = std::fs::remove_file(out.join(EVIDENCE_FILE));
    let _ = std::fs::remove_file(out.join(EVIDENCE_INDEX));
    match &a.modality_attention {
        Some(m) => {
            let slots = m.len() / (plane * a.slices).max(1);
            nifti::write(
                &out.join(MODALITY_FILE),
                [a.columns, a.rows, a.slices, slots],
                g,
                nifti::Data::F32(&by_fourth_axis(m, plane, a.slices, slots)),
            )?;
        }
        None => {
            let _ = std::fs::remove_file(out.join(MODALITY_FILE));
        }
    }
    Ok(())
}

/// NIfTI order is x fastest, then y, z, t: regroups [slice][t][plane] as [t][slice][plane].
pub fn by_fourth_axis(values: &[f32], plane: usize, slices: usize, count: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..count {
        for k in 0..slices {
            let at = (k * count + c) * plane;
            out.extend_from_slice(&values[at..at + plane]);
        }
    }
    out
}

/// The inverse of `by_fourth_axis`: NIfTI's [t][slice][plane] back to [slice][t][plane].
pub fn from_fourth_axis(values: &[f32], plane: usize, slices: usize, count: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for c in 0..count {
        for k in 0..slices {
            let from = (c * slices + k) * plane;
            let to = (k * count + c) * plane;
            out[to..to + plane].copy_from_slice(&values[from..from + plane]);
        }
    }
    out
}

/// Adds an evidence map to the analysis folder (evidence.nii holds one volume; each slice
/// keeps its latest map) and records it in evidence.json.
pub fn write_evidence(out: &Path, volume: &Volume, map: &super::evidence::EvidenceMap) -> std::io::Result<()> {
    let plane = volume.columns * volume.rows;
    let expected = plane * volume.slices;
    let mut all = match nifti::read(&out.join(EVIDENCE_FILE)) {
        Ok((_, nifti::Voxels::F32(v))) if v.len() == expected => v,
        _ => vec![0f32; expected],
    };
    let k = map.info.slice;
    if k >= volume.slices || map.values.len() != plane {
        return Err(std::io::Error::other("the evidence map does not fit the volume"));
    }
    all[k * plane..(k + 1) * plane].copy_from_slice(&map.values);
    let mut index = read_evidence_index(out);
    index.retain(|i| i.slice != k);
    index.push(map.info.clone());
    index.sort_by_key(|i| i.slice);
    nifti::write(
        &out.join(EVIDENCE_FILE),
        [volume.columns, volume.rows, volume.slices, 1],
        volume.geometry.as_ref(),
        nifti::Data::F32(&all),
    )?;
    let text = serde_json::to_string_pretty(&index).map_err(std::io::Error::other)?;
    crate::outdir::write_atomic(&out.join(EVIDENCE_INDEX), text.as_bytes())
}

/// The evidence maps recorded in an analysis folder (none when there is no index).
pub fn read_evidence_index(dir: &Path) -> Vec<super::evidence::EvidenceInfo> {
    std::fs::read_to_string(dir.join(EVIDENCE_INDEX))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourth_axis_regrouping_round_trips() {
        // 3 slices of 2 voxels, 2 volumes along t: value = 100 t + 10 slice + voxel.
        let slot_major: Vec<f32> = (0..3)
            .flat_map(|k| (0..2).flat_map(move |t| (0..2).map(move |i| (100 * t + 10 * k + i) as f32)))
            .collect();
        let nifti = by_fourth_axis(&slot_major, 2, 3, 2);
        assert_eq!(nifti[..6], [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
        assert_eq!(from_fourth_axis(&nifti, 2, 3, 2), slot_major);
    }
}
