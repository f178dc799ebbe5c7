//! The reader's review of an analysis: per-label findings accepted or rejected with notes, key
//! images, impression and sign-off. Saved as review.json beside the analysis output.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::render::SliceStyle;

pub const REVIEW_FILE: &str = "review.json";
/// Label map after the reader's corrections (the model's own stays in labels.nii).
pub const REVIEWED_LABELS_FILE: &str = "labels-reviewed.nii";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Decision {
    #[default]
    Pending,
    Accepted,
    Rejected,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Pending => "not reviewed",
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }
}

/// One label's result: what the (possibly corrected) map measures, and the reader's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub label: u8,
    pub name: String,
    pub voxels: usize,
    pub volume_ml: f64,
    /// First and last slice (0-based) holding the label.
    pub slice_range: Option<[usize; 2]>,
    /// The model's mean probability over the label's voxels.
    pub mean_confidence: Option<f64>,
    pub decision: Decision,
    pub note: String,
}

/// A slice the reader marked, with how it looked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyImage {
    pub slice: usize,
    pub style: SliceStyle,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Review {
    pub findings: Vec<Finding>,
    pub key_images: Vec<KeyImage>,
    pub impression: String,
    pub reader: String,
    /// When the reader signed (local time, "YYYY-MM-DD HH:MM"); None until signed.
    pub signed_at: Option<String>,
    /// True once the reader corrected the label map.
    pub edited: bool,
}

/// Measures every non-background label of a label volume (`n` voxels per slice).
pub fn measure(
    labels: &[u8],
    n: usize,
    voxel_ml: f64,
    names: &[(u8, String)],
    confidence: &dyn Fn(u8) -> Option<f64>,
) -> Vec<Finding> {
    names
        .iter()
        .filter(|(index, _)| *index > 0)
        .map(|(index, name)| {
            let mut voxels = 0;
            let mut range: Option<[usize; 2]> = None;
            for (k, plane) in labels.chunks(n.max(1)).enumerate() {
                let c = plane.iter().filter(|&&l| l == *index).count();
                if c > 0 {
                    voxels += c;
                    range = Some(range.map_or([k, k], |r| [r[0], k]));
                }
            }
            Finding {
                label: *index,
                name: name.clone(),
                voxels,
                volume_ml: voxels as f64 * voxel_ml,
                slice_range: range,
                mean_confidence: confidence(*index),
                decision: Decision::Pending,
                note: String::new(),
            }
        })
        .collect()
}

impl Review {
    /// Brings measured findings in while keeping the reader's decisions and notes.
    pub fn update_findings(&mut self, measured: Vec<Finding>) {
        let old = std::mem::take(&mut self.findings);
        self.findings = measured
            .into_iter()
            .map(|mut f| {
                if let Some(o) = old.iter().find(|o| o.label == f.label) {
                    f.decision = o.decision;
                    f.note = o.note.clone();
                }
                f
            })
            .collect();
    }

    pub fn load(dir: &Path) -> std::io::Result<Option<Review>> {
        let path = dir.join(REVIEW_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::outdir::write_atomic(&dir.join(REVIEW_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_measure_volume_and_range_and_keep_decisions() {
        // 2 slices of 4 voxels; label 1 on slice 1 only, label 2 on both.
        let labels = [0, 1, 2, 0, 2, 2, 0, 0];
        let names = vec![(0, "bg".to_string()), (1, "a".to_string()), (2, "b".to_string())];
        let f = measure(&labels, 4, 0.5, &names, &|_| Some(0.9));
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].voxels, f[0].slice_range), (1, Some([0, 0])));
        assert_eq!((f[1].voxels, f[1].volume_ml, f[1].slice_range), (3, 1.5, Some([0, 1])));
        let mut review = Review::default();
        review.update_findings(f.clone());
        review.findings[1].decision = Decision::Rejected;
        review.findings[1].note = "over-segmented".into();
        review.update_findings(f);
        assert_eq!(review.findings[1].decision, Decision::Rejected);
        assert_eq!(review.findings[1].note, "over-segmented");
    }
}
