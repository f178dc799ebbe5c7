//! The analysis folder: label, attention and probability maps as NIfTI, and summary.json
//! (what `focal export` and the window read back).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::analysis::LabelVolume;
use super::{Analysis, Engine, nifti};
use crate::study::{self, Volume};

/// summary.json: what the analysis found and how. Written by `write_analysis_folder`, read back
/// by `read_summary` (exports, the window); one type both ways, so the two cannot drift.
/// Fields added after the first release default when an older folder lacks them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub model: ModelInfo,
    pub provider: ProviderInfo,
    pub series_uid: String,
    #[serde(default)]
    pub study_uid: String,
    /// The analysed series as a person names it, and how it was chosen (absent in older folders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesRecord>,
    #[serde(default)]
    pub slices: usize,
    /// Columns, rows, slices of every map.
    pub grid: [usize; 3],
    #[serde(default)]
    pub spacing_mm: Option<[f64; 3]>,
    #[serde(default)]
    pub skipped_slices: Vec<study::SkippedSlice>,
    pub labels: Vec<LabelVolume>,
    #[serde(default)]
    pub mean_confidence: Option<f64>,
    #[serde(default)]
    pub slice_confidence: Vec<Option<f64>>,
    /// Faithfulness, modality reliance, volume warnings, slots (absent in older folders).
    #[serde(flatten)]
    pub insights: super::analysis::Insights,
    #[serde(default)]
    pub seconds: Timings,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub note: String,
}

/// The analysed series: number, modality, description, and how it was chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub number: Option<i64>,
    pub modality: Option<String>,
    pub description: Option<String>,
    /// "the largest greyscale MR stack", "named by \"T2\""…
    pub chosen: String,
}

/// What was analysed: the series and study UIDs summary.json records, and the series as a
/// person names it.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub series_uid: String,
    pub study_uid: String,
    pub series: SeriesRecord,
}

impl Source {
    /// The source of an analysis of `stack` of `series`, chosen as `chosen` says.
    pub fn of(series: &study::Series, stack: &study::Stack, chosen: &str) -> Source {
        Source {
            series_uid: series.uid.clone(),
            study_uid: stack.slices.first().map_or(String::new(), |s| s.instance.study_uid.clone()),
            series: SeriesRecord {
                number: series.number,
                modality: series.modality.clone(),
                description: series.description.clone(),
                chosen: chosen.to_string(),
            },
        }
    }

    /// The source of the series a choice made.
    pub fn chosen(choice: &study::Choice) -> Source {
        Source::of(choice.series, choice.stack, &choice.how)
    }
}

/// Which model made the analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The brain-extent model's sha256 (analyses by models with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent_sha256: Option<String>,
    /// The brain extractor's files (locate, segment), when the model has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extractor_sha256: Vec<String>,
    pub verified_against_manifest: bool,
}

/// The execution provider that ran it (`Provider`, as written).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    pub fallback_reason: Option<String>,
}

/// Seconds each part took.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub scan: f64,
    pub load_volume: f64,
    pub load_model: f64,
    pub inference_total: f64,
    pub model_only: f64,
    /// The attention's deletion test (part of inference_total).
    pub faithfulness: f64,
    /// The key regions' score and regions (part of inference_total).
    #[serde(default)]
    pub key_regions: f64,
    pub slices_per_second: f64,
}

impl Timings {
    /// The analysis's own timings, with what came before it (scanning the files, decoding the
    /// volume, loading the model; 0 where the caller did not time it).
    pub fn of(analysis: &Analysis, scan: f64, load_volume: f64, load_model: f64) -> Timings {
        let s = &analysis.summary;
        Timings {
            scan,
            load_volume,
            load_model,
            inference_total: s.seconds_total,
            model_only: s.seconds_model,
            faithfulness: s.seconds_faithfulness,
            key_regions: analysis.key_regions.as_ref().map_or(0.0, |k| k.seconds),
            slices_per_second: s.slices_per_second,
        }
    }
}

/// Writes the maps and summary.json into `out` (created), each file atomically.
pub fn write_analysis_folder(
    out: &Path,
    volume: &Volume,
    analysis: &Analysis,
    engine: &Engine,
    source: &Source,
    seconds: Timings,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    write_results(out, volume, analysis)?;
    let mut files = vec![LABELS_FILE, ATTENTION_FILE, PROBABILITIES_FILE];
    if analysis.modality_attention.is_some() {
        files.push(MODALITY_FILE);
    }
    if analysis.key_regions.is_some() {
        files.extend([KEY_REGIONS_FILE, KEY_REGION_IDS_FILE]);
    }
    let summary = Summary {
        model: ModelInfo {
            name: engine.manifest.name.clone(),
            version: engine.manifest.version.clone(),
            sha256: engine.sha256.clone(),
            extent_sha256: engine.extent_sha256.clone(),
            extractor_sha256: engine.extractor_sha256.clone(),
            verified_against_manifest: engine.verified,
        },
        provider: ProviderInfo {
            name: engine.provider.name.to_string(),
            fallback_reason: engine.provider.fallback_reason.clone(),
        },
        series_uid: source.series_uid.clone(),
        study_uid: source.study_uid.clone(),
        series: Some(source.series.clone()),
        slices: analysis.slices,
        grid: [analysis.columns, analysis.rows, analysis.slices],
        spacing_mm: volume.geometry.as_ref().map(|g| g.spacing),
        skipped_slices: volume.skipped.clone(),
        labels: analysis.summary.labels.clone(),
        mean_confidence: analysis.summary.mean_confidence,
        slice_confidence: analysis.summary.slice_confidence.clone(),
        insights: analysis.summary.insights.clone(),
        seconds,
        files: files.into_iter().map(String::from).collect(),
        note: NOTE.to_string(),
    };
    let text = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    crate::outdir::write_atomic(&out.join(SUMMARY_FILE), text.as_bytes())
}

/// What every summary says of itself.
const NOTE: &str = "Research use only, not for diagnosis. The attention map shows which pixels the model let through to its segmentation (see faithfulness for how much the labels depend on them), not a finding.";

/// Reads an analysis folder's summary.json; the error says what is wrong with the folder.
pub fn read_summary(dir: &Path) -> Result<Summary, crate::InferenceError> {
    let bad = |reason: String| crate::InferenceError::AnalysisFolder {
        path: dir.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(dir.join(SUMMARY_FILE)).map_err(|e| {
        bad(format!(
            "{SUMMARY_FILE} could not be read ({e}); is this a `focal analyze` output folder?"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| bad(format!("{SUMMARY_FILE} is not one Focal wrote: {e}")))
}

// The analysis folder's file names, named here only.
/// What the analysis found and how (JSON).
pub const SUMMARY_FILE: &str = "summary.json";
/// The label of every voxel, [x, y, z].
pub const LABELS_FILE: &str = "labels.nii";
/// The label map after a reader's corrections (the model's own stays in `LABELS_FILE`).
pub const REVIEWED_LABELS_FILE: &str = "labels-reviewed.nii";

/// The labels an analysis folder stands for: the reader's corrected map where there is one,
/// else the model's.
pub fn current_labels_file(dir: &Path) -> std::path::PathBuf {
    let reviewed = dir.join(REVIEWED_LABELS_FILE);
    if reviewed.exists() { reviewed } else { dir.join(LABELS_FILE) }
}
/// The model's spatial attention, [x, y, z].
pub const ATTENTION_FILE: &str = "attention.nii";
/// The probability of every label, [x, y, z, label].
pub const PROBABILITIES_FILE: &str = "probabilities.nii";
/// The weights over modality slots, [x, y, z, slot].
pub const MODALITY_FILE: &str = "modality_attention.nii";
/// The key regions' score: each brain voxel's departure from healthy tissue, [x, y, z].
pub const KEY_REGIONS_FILE: &str = "key_regions.nii";
/// The key region each voxel belongs to (0: none; the summary's `key_regions` ids), [x, y, z].
pub const KEY_REGION_IDS_FILE: &str = "key_region_ids.nii";
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
    match &a.key_regions {
        Some(k) => {
            nifti::write(&out.join(KEY_REGIONS_FILE), dims, g, nifti::Data::F32(&k.score))?;
            nifti::write(&out.join(KEY_REGION_IDS_FILE), dims, g, nifti::Data::U8(&k.ids))?;
        }
        None => {
            let _ = std::fs::remove_file(out.join(KEY_REGIONS_FILE));
            let _ = std::fs::remove_file(out.join(KEY_REGION_IDS_FILE));
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

    /// The summary a folder holds reads back as it was written, and a folder from before the
    /// later fields (timings, slots, files…) still reads.
    #[test]
    fn summaries_read_back_as_written_and_older_ones_still_read() {
        let summary = Summary {
            model: ModelInfo {
                name: "m".into(),
                version: "1".into(),
                sha256: "ab".into(),
                extent_sha256: None,
                extractor_sha256: vec!["cd".into()],
                verified_against_manifest: true,
            },
            provider: ProviderInfo { name: "CPU".into(), fallback_reason: Some("no GPU".into()) },
            series_uid: "1.2".into(),
            study_uid: "1.3".into(),
            series: Some(SeriesRecord {
                number: Some(3),
                modality: Some("MR".into()),
                description: Some("T1 MPRAGE".into()),
                chosen: "the largest greyscale MR stack".into(),
            }),
            slices: 2,
            grid: [3, 4, 2],
            spacing_mm: Some([1.0, 1.0, 2.0]),
            skipped_slices: Vec::new(),
            labels: vec![LabelVolume { index: 2, name: "grey matter".into(), voxels: 5, volume_ml: 0.01, mean_probability: Some(0.9) }],
            mean_confidence: Some(0.8),
            slice_confidence: vec![Some(0.8), None],
            insights: Default::default(),
            seconds: Timings { inference_total: 1.5, ..Default::default() },
            files: vec![LABELS_FILE.into()],
            note: NOTE.into(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let text = serde_json::to_string_pretty(&summary).expect("json");
        std::fs::write(dir.path().join(SUMMARY_FILE), &text).expect("write");
        let back = read_summary(dir.path()).expect("read");
        assert_eq!(serde_json::to_value(&back).expect("value"), serde_json::to_value(&summary).expect("value"));
        let old = r#"{"model": {"name": "m", "version": "0.9", "sha256": "ab", "verified_against_manifest": false},
            "provider": {"name": "CPU", "fallback_reason": null}, "series_uid": "1.2", "grid": [3, 4, 2],
            "labels": [{"index": 1, "name": "CSF", "voxels": 1, "volume_ml": 0.002, "mean_probability": null}]}"#;
        std::fs::write(dir.path().join(SUMMARY_FILE), old).expect("write");
        let back = read_summary(dir.path()).expect("an older summary reads");
        assert_eq!((back.grid, back.labels.len(), back.seconds.inference_total), ([3, 4, 2], 1, 0.0));
        assert_eq!(back.series, None, "an older folder does not say how its series was chosen");
        std::fs::write(dir.path().join(SUMMARY_FILE), "{}").expect("write");
        let why = read_summary(dir.path()).expect_err("refused");
        assert!(matches!(why, crate::InferenceError::AnalysisFolder { .. }), "{why}");
        assert!(why.to_string().contains("not one Focal wrote"), "{why}");
    }

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
