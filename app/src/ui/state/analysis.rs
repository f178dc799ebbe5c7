//! An analysis on screen and the reader's edits of it: the model's maps, the review, brush and
//! eraser corrections with undo and redo, and saving them beside the analysis. No egui here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::report::Review;
use crate::report::review::{REVIEWED_LABELS_FILE, measure};

/// An analysis on screen: the model's maps, the reader's corrections and review.
pub struct AnalysisView {
    pub series: String,
    /// Folder the analysis and its review are saved in.
    pub dir: PathBuf,
    pub columns: usize,
    pub rows: usize,
    pub slices: usize,
    /// Label map as corrected so far (the model's, until the reader edits).
    pub labels: Vec<u8>,
    pub attention: Arc<Vec<f32>>,
    pub provider_name: String,
    pub fallback_reason: Option<String>,
    pub verified: bool,
    /// Mean probability per label from the model run.
    pub confidence: Vec<(u8, Option<f64>)>,
    /// "89 slices in 4.0 s (22 slices/s)" for a run made in this window.
    pub timing: Option<String>,
    pub voxel_ml: f64,
    pub review: Review,
    /// Bumped on every edit (redraws the overlay).
    pub edits: u64,
    /// Faithfulness, modality weights, evidence maps.
    pub extras: super::Extras,
    /// The model that made the analysis (a restored one may differ from the model loaded now).
    pub made_by: Option<MadeBy>,
    undo: Vec<UndoStep>,
    redo: Vec<UndoStep>,
    stroke: Option<UndoStep>,
}

/// A model as an analysis records it: name, version, sha256 of its file.
#[derive(Debug, Clone, PartialEq)]
pub struct MadeBy {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One stroke's slice and what it held before.
struct UndoStep {
    slice: usize,
    plane: Vec<u8>,
}

/// What the left mouse button does in the slice view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Navigate,
    Brush,
    Eraser,
    /// Distance between two points (drag).
    Ruler,
    /// Ellipse region: area, mean ± sd of values and of the heatmap (drag its bounding box).
    Ellipse,
    /// Freehand region, measured as the ellipse (drag its outline).
    Freehand,
}

impl Tool {
    pub fn paints(self) -> bool {
        matches!(self, Tool::Brush | Tool::Eraser)
    }

    pub fn measures(self) -> bool {
        matches!(self, Tool::Ruler | Tool::Ellipse | Tool::Freehand)
    }
}

impl AnalysisView {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        series: String,
        dir: PathBuf,
        [columns, rows, slices]: [usize; 3],
        labels: Vec<u8>,
        attention: Arc<Vec<f32>>,
        provider: (String, Option<String>),
        verified: bool,
        confidence: Vec<(u8, Option<f64>)>,
        voxel_ml: f64,
        review: Option<Review>,
    ) -> AnalysisView {
        AnalysisView {
            series,
            dir,
            columns,
            rows,
            slices,
            labels,
            attention,
            provider_name: provider.0,
            fallback_reason: provider.1,
            verified,
            confidence,
            timing: None,
            voxel_ml,
            review: review.unwrap_or_default(),
            edits: 0,
            extras: Default::default(),
            made_by: None,
            undo: Vec::new(),
            redo: Vec::new(),
            stroke: None,
        }
    }

    fn plane(&mut self, slice: usize) -> Option<&mut [u8]> {
        let n = self.columns * self.rows;
        self.labels.get_mut(slice * n..(slice + 1) * n)
    }

    /// Measures the (corrected) map and refreshes the findings, keeping the reader's verdicts.
    pub fn remeasure(&mut self, names: &[(u8, String)]) {
        let confidence = self.confidence.clone();
        let conf = move |i: u8| confidence.iter().find(|c| c.0 == i).and_then(|c| c.1);
        let measured = measure(&self.labels, self.columns * self.rows, self.voxel_ml, names, &conf);
        self.review.update_findings(measured);
    }

    /// Paints `label` in a disc of `radius_mm` around image point (x, y) on `slice`.
    pub fn paint(&mut self, slice: usize, x: f32, y: f32, radius_mm: f32, spacing: [f64; 2], label: u8) {
        if self.stroke.is_none() {
            let plane = self.plane(slice).map(|p| p.to_vec()).unwrap_or_default();
            self.stroke = Some(UndoStep { slice, plane });
        }
        let (w, h) = (self.columns, self.rows);
        let (sx, sy) = (spacing[0] as f32, spacing[1] as f32);
        let (rx, ry) = (radius_mm / sx, radius_mm / sy);
        let Some(plane) = self.plane(slice) else { return };
        let (x0, x1) = (
            (x - rx).floor().max(0.0) as usize,
            ((x + rx).ceil().max(0.0) as usize).min(w),
        );
        let (y0, y1) = (
            (y - ry).floor().max(0.0) as usize,
            ((y + ry).ceil().max(0.0) as usize).min(h),
        );
        for j in y0..y1 {
            for i in x0..x1 {
                let (dx, dy) = ((i as f32 + 0.5 - x) * sx, (j as f32 + 0.5 - y) * sy);
                if dx * dx + dy * dy <= radius_mm * radius_mm {
                    plane[j * w + i] = label;
                }
            }
        }
        self.edits += 1;
    }

    /// Ends a stroke: it becomes one undo step.
    pub fn end_stroke(&mut self) -> bool {
        match self.stroke.take() {
            Some(edit) => {
                self.undo.push(edit);
                self.redo.clear();
                self.review.edited = true;
                true
            }
            None => false,
        }
    }

    fn swap(&mut self, from_undo: bool) -> bool {
        let edit = if from_undo { self.undo.pop() } else { self.redo.pop() };
        let Some(edit) = edit else { return false };
        let Some(plane) = self.plane(edit.slice) else {
            return false;
        };
        let current = plane.to_vec();
        plane.copy_from_slice(&edit.plane);
        let back = UndoStep {
            slice: edit.slice,
            plane: current,
        };
        if from_undo {
            self.redo.push(back)
        } else {
            self.undo.push(back)
        }
        self.edits += 1;
        self.review.edited = !self.undo.is_empty() || self.review.edited;
        true
    }

    pub fn undo(&mut self) -> bool {
        self.swap(true)
    }

    pub fn redo(&mut self) -> bool {
        self.swap(false)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Writes review.json and, once edited, labels-reviewed.nii (on a thread).
    pub fn save(&self, geometry: Option<crate::study::geometry::StackGeometry>) {
        let dir = self.dir.clone();
        let review = self.review.clone();
        let labels = review.edited.then(|| self.labels.clone());
        let dims = [self.columns, self.rows, self.slices, 1];
        // Saves run on threads; only the newest may write, so an older one finishing late
        // never overwrites it.
        static LATEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let generation = LATEST.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        std::thread::spawn(move || {
            let _guard = WRITING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if LATEST.load(std::sync::atomic::Ordering::SeqCst) != generation {
                return;
            }
            let result = std::fs::create_dir_all(&dir)
                .and_then(|_| review.save(&dir))
                .and_then(|_| match &labels {
                    Some(l) => crate::inference::nifti::write(
                        &dir.join(REVIEWED_LABELS_FILE),
                        dims,
                        geometry.as_ref(),
                        crate::inference::nifti::Data::U8(l),
                    ),
                    None => Ok(()),
                });
            if let Err(e) = result {
                tracing::error!("the review could not be saved: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brush strokes on a label map without a window: a disc of the brush's size in mm on
    /// anisotropic pixels, one undo step per stroke, redo, and a new stroke dropping redo.
    #[test]
    fn strokes_paint_a_disc_and_undo_and_redo_one_stroke_at_a_time() {
        let (w, h) = (20, 10);
        let mut view = AnalysisView::new(
            "1.2".into(),
            PathBuf::from("/nonexistent"),
            [w, h, 2],
            vec![3; w * h * 2],
            Arc::new(vec![0.0; w * h * 2]),
            ("CPU".into(), None),
            true,
            Vec::new(),
            0.001,
            None,
        );
        // 2 mm brush on 1 × 2 mm pixels around (10, 5) of slice 1: ±2 columns, ±1 row.
        view.paint(1, 10.0, 5.0, 2.0, [1.0, 2.0], 1);
        let painted: Vec<usize> = (0..w * h).filter(|&i| view.labels[w * h + i] == 1).collect();
        assert!(painted.iter().all(|&i| (8..=11).contains(&(i % w)) && (4..=5).contains(&(i / w))), "{painted:?}");
        assert!(painted.len() >= 6, "{painted:?}");
        assert!(view.labels[..w * h].iter().all(|&l| l == 3), "the other slice is untouched");
        view.paint(1, 3.0, 5.0, 1.0, [1.0, 2.0], 2); // the same stroke, further on
        assert!(view.end_stroke() && view.can_undo() && !view.can_redo());
        assert!(view.review.edited);
        let after = view.labels.clone();
        assert!(view.undo());
        assert!(view.labels.iter().all(|&l| l == 3), "one undo takes back the whole stroke");
        assert!(!view.undo() && view.can_redo());
        assert!(view.redo());
        assert_eq!(view.labels, after);
        assert!(view.undo());
        view.paint(0, 1.0, 1.0, 1.0, [1.0, 1.0], 2);
        assert!(view.end_stroke());
        assert!(!view.can_redo(), "a new stroke drops what could be redone");
    }
}
