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
    seconds: Timings,
    files: [&'a str; 3],
    note: &'a str,
}

#[derive(Serialize)]
pub struct ModelInfo<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    verified_against_manifest: bool,
}

#[derive(Serialize)]
pub struct Timings {
    pub scan: f64,
    pub load_volume: f64,
    pub load_model: f64,
    pub inference_total: f64,
    pub model_only: f64,
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
        seconds,
        files: ["labels.nii", "attention.nii", "probabilities.nii"],
        note: "Research use only, not for diagnosis. The attention map shows where the model's finest attention gate passed detail, not a finding.",
    };
    let text = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    crate::outdir::write_atomic(&out.join("summary.json"), text.as_bytes())
}

fn write_results(out: &Path, volume: &Volume, a: &Analysis) -> std::io::Result<()> {
    let g = volume.geometry.as_ref();
    let dims = [a.columns, a.rows, a.slices, 1];
    nifti::write(&out.join("labels.nii"), dims, g, nifti::Data::U8(&a.labels))?;
    nifti::write(&out.join("attention.nii"), dims, g, nifti::Data::F32(&a.attention))?;
    // NIfTI order is x fastest, then y, z, t (label): regroup [slice][label] as [label][slice].
    let plane = a.columns * a.rows;
    let classes = a.probabilities.len() / (plane * a.slices).max(1);
    let mut by_label = Vec::with_capacity(a.probabilities.len());
    for c in 0..classes {
        for k in 0..a.slices {
            let at = (k * classes + c) * plane;
            by_label.extend_from_slice(&a.probabilities[at..at + plane]);
        }
    }
    nifti::write(
        &out.join("probabilities.nii"),
        [a.columns, a.rows, a.slices, classes],
        g,
        nifti::Data::F32(&by_label),
    )?;
    Ok(())
}
