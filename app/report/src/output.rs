//! Reading back what `focal analyze` (or the window) wrote: summary, label and attention maps,
//! the reader's corrections and review.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ExportError;
use super::review::{REVIEWED_LABELS_FILE, Review};
use crate::inference::nifti::{self, Voxels};
use crate::inference::output::{ATTENTION_FILE, LABELS_FILE, SUMMARY_FILE};

#[derive(Debug, Clone, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The brain-extent model's sha256 (analyses by models with one).
    #[serde(default)]
    pub extent_sha256: Option<String>,
    /// The brain extractor's files' sha256s (locate, segment), when the model has one.
    #[serde(default)]
    pub extractor_sha256: Vec<String>,
    pub verified_against_manifest: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderRecord {
    pub name: String,
    pub fallback_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelRecord {
    pub index: u8,
    pub name: String,
    pub mean_probability: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SummaryRecord {
    pub model: ModelRecord,
    pub provider: ProviderRecord,
    pub series_uid: String,
    pub grid: [usize; 3],
    pub labels: Vec<LabelRecord>,
    /// Faithfulness, modality reliance, volume warnings, slots (absent in older folders).
    #[serde(flatten)]
    pub insights: crate::inference::analysis::Insights,
}

/// An analysis folder, loaded.
pub struct AnalysisOutput {
    pub dir: PathBuf,
    pub summary: SummaryRecord,
    /// The reviewed label map when the reader corrected one, else the model's.
    pub labels: Vec<u8>,
    pub attention: Vec<f32>,
    pub review: Option<Review>,
    /// Occlusion evidence maps computed for this analysis: what each is, and the volume
    /// holding them (zero on slices without one).
    pub evidence: Vec<crate::inference::evidence::EvidenceInfo>,
    pub evidence_values: Option<Vec<f32>>,
    /// Weights over the model's modality slots, [slice][slot][row][column], and their count.
    pub modality: Option<(usize, Vec<f32>)>,
}

impl AnalysisOutput {
    pub fn read(dir: &Path) -> Result<AnalysisOutput, ExportError> {
        let bad = |what: String| ExportError::Analysis(what);
        let text = std::fs::read_to_string(dir.join(SUMMARY_FILE)).map_err(|e| {
            bad(format!(
                "{}: summary.json could not be read ({e}); is this a `focal analyze` output folder?",
                dir.display()
            ))
        })?;
        let summary: SummaryRecord =
            serde_json::from_str(&text).map_err(|e| bad(format!("summary.json is not one Focal wrote: {e}")))?;
        let expected = summary.grid.iter().product::<usize>();
        let reviewed = dir.join(REVIEWED_LABELS_FILE);
        let label_file = if reviewed.exists() {
            reviewed
        } else {
            dir.join(LABELS_FILE)
        };
        let labels = match nifti::read(&label_file).map_err(|e| bad(e.to_string()))? {
            (_, Voxels::U8(v)) if v.len() == expected => v,
            _ => {
                return Err(bad(format!(
                    "{} does not match the grid in summary.json",
                    label_file.display()
                )));
            }
        };
        let attention = match nifti::read(&dir.join(ATTENTION_FILE)).map_err(|e| bad(e.to_string()))? {
            (_, Voxels::F32(v)) if v.len() == expected => v,
            _ => return Err(bad("attention.nii does not match the grid in summary.json".into())),
        };
        let review = Review::load(dir).map_err(|e| bad(e.to_string()))?;
        let mut evidence = crate::inference::output::read_evidence_index(dir);
        let evidence_values = match nifti::read(&dir.join(crate::inference::output::EVIDENCE_FILE)) {
            Ok((_, Voxels::F32(v))) if v.len() == expected => Some(v),
            _ => None,
        };
        if evidence_values.is_none() {
            evidence.clear();
        }
        evidence.retain(|e| e.slice < summary.grid[2]);
        let modality = match nifti::read(&dir.join(crate::inference::output::MODALITY_FILE)) {
            Ok((dims, Voxels::F32(v))) if dims[3] > 0 && v.len() == expected * dims[3] => {
                Some((
                    dims[3],
                    crate::inference::output::from_fourth_axis(&v, summary.grid[0] * summary.grid[1], summary.grid[2], dims[3]),
                ))
            }
            _ => None,
        };
        Ok(AnalysisOutput {
            dir: dir.to_path_buf(),
            summary,
            labels,
            attention,
            review,
            evidence,
            evidence_values,
            modality,
        })
    }
}

