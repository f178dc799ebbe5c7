//! Reviewing an analysis in the window: findings accepted or rejected with notes, key images,
//! impression and sign-off, and brush/eraser corrections of the label map with undo/redo.
//! Everything is saved beside the analysis output (review.json, labels-reviewed.nii).

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, Color32, RichText};

use super::{Command, Edit, FocalApp, ReviewChange, SettingChange, ViewChange, edited};
use crate::report::review::{REVIEWED_LABELS_FILE, measure};
use crate::report::{Decision, Review};

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
    pub extras: super::insights::Extras,
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

/// Now (UTC) for a sign-off, "YYYY-MM-DD HH:MM UTC".
fn now_text() -> String {
    let (d, t) = crate::report::export::now_dicom();
    format!("{}-{}-{} {}:{} UTC", &d[..4], &d[4..6], &d[6..], &t[..2], &t[2..4])
}

pub fn review_panel(app: &mut FocalApp, ui: &mut egui::Ui) {
    ui.heading("Review");
    let style = super::frame::slice_style(app);
    let view = app.doc.view();
    let (slice, tool) = (view.slice, view.tool);
    let unit = if app.doc.current().and_then(|c| c.modality.as_deref()) == Some("CT") {
        " HU"
    } else {
        ""
    };
    let Some(a) = app.doc.current_analysis() else {
        ui.label(RichText::new("Run the model to review its findings.").weak());
        return;
    };
    let names = app.doc.label_names();
    let mut edits: Vec<Edit> = Vec::new();

    // Correction tools.
    ui.horizontal(|ui| {
        for (t, name, key) in [
            (Tool::Navigate, "Navigate", "N"),
            (Tool::Brush, "Brush", "B"),
            (Tool::Eraser, "Eraser", "E"),
            (Tool::Ruler, "Ruler", "M"),
            (Tool::Ellipse, "Ellipse", "O"),
            (Tool::Freehand, "Freehand", "F"),
        ] {
            if ui.selectable_label(tool == t, name).on_hover_text(key).clicked() {
                edits.push(ViewChange::Tool(t).into());
            }
        }
    });
    if tool.paints() {
        ui.horizontal(|ui| {
            if tool == Tool::Brush {
                egui::ComboBox::from_label("label")
                    .selected_text(names.iter().find(|n| n.0 == view.brush_label).map_or("?", |n| n.1.as_str()))
                    .show_ui(ui, |ui| {
                        for (i, n) in names.iter().filter(|n| n.0 > 0) {
                            if ui.selectable_label(view.brush_label == *i, n).clicked() {
                                edits.push(ViewChange::BrushLabel(*i).into());
                            }
                        }
                    });
            }
            if let Some(mm) = edited(&view.brush_mm, |v| {
                ui.add(egui::Slider::new(v, 0.5..=15.0).text("radius mm"));
            }) {
                edits.push(ViewChange::BrushMm(mm).into());
            }
        });
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(a.can_undo(), egui::Button::new("Undo"))
            .on_hover_text("Ctrl+Z")
            .clicked()
        {
            edits.push(ReviewChange::Undo.into());
        }
        if ui
            .add_enabled(a.can_redo(), egui::Button::new("Redo"))
            .on_hover_text("Ctrl+Shift+Z")
            .clicked()
        {
            edits.push(ReviewChange::Redo.into());
        }
        if a.review.edited {
            ui.label(RichText::new("labels corrected").color(Color32::from_rgb(240, 200, 120)));
        }
    });

    // Findings.
    egui::Grid::new("findings").striped(true).num_columns(3).show(ui, |ui| {
        for (i, f) in a.review.findings.iter().enumerate() {
            ui.label(&f.name);
            ui.label(format!("{:.1} mL", f.volume_ml));
            ui.horizontal(|ui| {
                for d in [Decision::Accepted, Decision::Rejected] {
                    let label = if d == Decision::Accepted { "Accept" } else { "Reject" };
                    if ui.selectable_label(f.decision == d, label).clicked() && f.decision != d {
                        edits.push(ReviewChange::Decision(i, d).into());
                    }
                }
            });
            ui.end_row();
            ui.label("");
            let mut note = f.note.clone();
            let r = ui.add(egui::TextEdit::singleline(&mut note).hint_text("note").desired_width(150.0));
            typed(&mut edits, &r, note != f.note, ReviewChange::Note(i, note));
            ui.label(
                f.slice_range
                    .map_or(String::new(), |[s, e]| format!("slices {}–{}", s + 1, e + 1)),
            );
            ui.end_row();
        }
    });

    // Key images.
    ui.horizontal(|ui| {
        if ui.button("Mark key image").on_hover_text("K").clicked() {
            edits.push(ReviewChange::MarkKeyImage(slice, Box::new(style.clone())).into());
        }
        let list: Vec<String> = a.review.key_images.iter().map(|k| format!("{}", k.slice + 1)).collect();
        ui.label(if list.is_empty() {
            "no key images".to_string()
        } else {
            format!("slices {}", list.join(", "))
        });
    });
    if a.review.key_images.iter().any(|k| k.slice == slice) && ui.small_button("Unmark this slice").clicked() {
        edits.push(ReviewChange::UnmarkKeyImage(slice).into());
    }

    // Measurements (drawn with the Ruler and Ellipse tools).
    if a.review.measurements.is_empty() {
        if tool.measures() {
            ui.label(RichText::new("Drag on the image to measure.").weak());
        }
    } else {
        ui.label("Measurements");
        for (i, m) in a.review.measurements.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button("×").on_hover_text("Remove").clicked() {
                    edits.push(ReviewChange::RemoveMeasurement(i).into());
                }
                let line = egui::Label::new(RichText::new(m.describe(unit)).small()).wrap();
                if ui.add(line.sense(egui::Sense::click())).on_hover_text("Go to its slice").clicked() {
                    edits.push(ViewChange::GoTo(m.slice).into());
                    // One drawn on a reformatted plane: that plane, through the shape's centre.
                    if let Some(p) = &m.plane {
                        let [x0, y0, x1, y1] = m.shape.bounds();
                        edits.push(ViewChange::Cursor(p.to_patient((x0 + x1) / 2.0, (y0 + y1) / 2.0)).into());
                        if app.doc.settings().layout == super::mpr::Layout::Single {
                            edits.push(SettingChange::Layout(super::mpr::Layout::Three).into());
                        }
                    }
                }
            });
        }
    }

    ui.label("Impression");
    let mut impression = a.review.impression.clone();
    let r = ui.add(
        egui::TextEdit::multiline(&mut impression)
            .desired_rows(3)
            .desired_width(f32::INFINITY),
    );
    typed(&mut edits, &r, impression != a.review.impression, ReviewChange::Impression(impression));
    ui.horizontal(|ui| {
        ui.label("Reader");
        let mut reader = a.review.reader.clone();
        let r = ui.text_edit_singleline(&mut reader);
        typed(&mut edits, &r, reader != a.review.reader, ReviewChange::Reader(reader));
    });
    ui.horizontal(|ui| {
        match &a.review.signed_at {
            Some(t) => {
                ui.label(format!("Signed {t}"));
                if ui.small_button("Unsign").clicked() {
                    edits.push(ReviewChange::Signed(None).into());
                }
            }
            None => {
                let can = !a.review.reader.trim().is_empty();
                if ui
                    .add_enabled(can, egui::Button::new("Sign"))
                    .on_disabled_hover_text("Enter the reader's name first")
                    .clicked()
                {
                    edits.push(ReviewChange::Signed(Some(now_text())).into());
                }
            }
        }
        if ui.button("Export report…").clicked() {
            app.commands.push(Command::Export);
        }
    });
    for e in edits {
        app.edit(e);
    }
}

/// A text field of the review: what was typed goes into the review at once, and is saved when
/// the field loses focus.
fn typed(edits: &mut Vec<Edit>, response: &egui::Response, changed: bool, change: ReviewChange) {
    if changed {
        edits.push(change.into());
    }
    if response.lost_focus() {
        edits.push(ReviewChange::Save.into());
    }
}
