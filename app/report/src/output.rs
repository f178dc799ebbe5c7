//! Reading back what `focal analyze` (or the window) wrote: summary, label and attention maps,
//! the reader's corrections and review.

use std::path::{Path, PathBuf};

use super::ExportError;
use super::review::Review;
use crate::inference::nifti::{self, Voxels};
use crate::inference::output::{ATTENTION_FILE, Summary, current_labels_file, read_summary};

/// An analysis folder, loaded.
pub struct AnalysisOutput {
    pub dir: PathBuf,
    pub summary: Summary,
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
    /// The key regions' score and region map (analyses whose model looks for them).
    pub key_regions: Option<(Vec<f32>, Vec<u8>)>,
}

impl AnalysisOutput {
    pub fn read(dir: &Path) -> Result<AnalysisOutput, ExportError> {
        let bad = |what: String| ExportError::Analysis(what);
        let summary = read_summary(dir).map_err(|e| bad(e.to_string()))?;
        let expected = summary.grid.iter().product::<usize>();
        let label_file = current_labels_file(dir);
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
        let key_regions = match (
            nifti::read(&dir.join(crate::inference::output::KEY_REGIONS_FILE)),
            nifti::read(&dir.join(crate::inference::output::KEY_REGION_IDS_FILE)),
        ) {
            (Ok((_, Voxels::F32(score))), Ok((_, Voxels::U8(ids)))) if score.len() == expected && ids.len() == expected => {
                Some((score, ids))
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
            key_regions,
        })
    }
}

