//! The Review tab: findings accepted or rejected with notes, key images, impression and
//! sign-off, and the brush and eraser. The analysis on screen and its editing (strokes, undo,
//! saving review.json and labels-reviewed.nii) are the document's (`state/analysis.rs`).

use crate::ui::panels::Panel;
use eframe::egui::{self, Color32, RichText};

use crate::ui::{Command, Edit, ReviewChange, SettingChange, Tool, ViewChange, edited};
use crate::report::Decision;

/// Now (UTC) for a sign-off, "YYYY-MM-DD HH:MM UTC".
fn now_text() -> String {
    crate::report::export::utc_text(std::time::SystemTime::now())
}

pub fn review_panel(p: &mut Panel, ui: &mut egui::Ui) {
    ui.heading("Review");
    let style = crate::ui::frame::slice_style(p.app);
    let view = p.app.doc.view();
    let (slice, tool) = (view.slice, view.tool);
    let unit = if p.app.doc.current().and_then(|c| c.modality.as_deref()) == Some("CT") {
        " HU"
    } else {
        ""
    };
    let Some(a) = p.app.doc.current_analysis() else {
        let pictures_only = p.app.doc.current().is_some_and(|c| c.stack.geometry.is_none());
        if pictures_only {
            ui.label(
                RichText::new("These images carry no patient position, so the model cannot analyse them; their pictures can still go into a report.")
                    .weak(),
            );
            if ui.button("Export picture report…").clicked() {
                p.push(Command::ExportPictures);
            }
        } else {
            ui.label(RichText::new("Run the model to review its findings.").weak());
        }
        return;
    };
    let names = p.app.doc.label_names();
    let mut edits: Vec<Edit> = Vec::new();
    let mut export = false;

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
            let r = note_field(ui, &mut note);
            typed(&mut edits, &r, note != f.note, ReviewChange::Note(i, note));
            ui.label(
                f.slice_range
                    .map_or(String::new(), |[s, e]| format!("slices {}–{}", s + 1, e + 1)),
            );
            ui.end_row();
        }
    });

    // Key regions: each a finding of its own, accepted or rejected with a note.
    if let Some(regions) = a.extras.insights.key_regions.as_ref().filter(|r| !r.is_empty()) {
        ui.add_space(4.0);
        ui.label(RichText::new("Key regions").strong()).on_hover_text(crate::inference::key_regions::MEANING);
        egui::Grid::new("region-verdicts").striped(true).num_columns(3).show(ui, |ui| {
            for region in regions {
                let verdict = a.review.region(region.id);
                if ui
                    .link(format!("Region {}", region.id))
                    .on_hover_text(region.describe_named(&|slot| a.extras.insights.series_name(slot)))
                    .clicked()
                {
                    edits.extend(crate::ui::insights::show_region(region));
                }
                ui.label(format!("{:.1} mL", region.volume_ml));
                ui.horizontal(|ui| {
                    for d in [Decision::Accepted, Decision::Rejected] {
                        let label = if d == Decision::Accepted { "Accept" } else { "Reject" };
                        if ui.selectable_label(verdict.decision == d, label).clicked() && verdict.decision != d {
                            edits.push(ReviewChange::RegionDecision(region.id, d).into());
                        }
                    }
                });
                ui.end_row();
                ui.label("");
                let mut note = verdict.note.clone();
                let r = note_field(ui, &mut note);
                typed(&mut edits, &r, note != verdict.note, ReviewChange::RegionNote(region.id, note));
                ui.label(format!("slices {}–{}", region.slices[0], region.slices[1]));
                ui.end_row();
            }
        });
    }

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
                    if let Some(plane) = &m.plane {
                        let [x0, y0, x1, y1] = m.shape.bounds();
                        edits.push(ViewChange::Cursor(plane.to_patient((x0 + x1) / 2.0, (y0 + y1) / 2.0)).into());
                        if p.app.doc.settings().layout == crate::ui::Layout::Single {
                            edits.push(SettingChange::Layout(crate::ui::Layout::Three).into());
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
            export = true;
        }
    });
    for e in edits {
        p.edit(e);
    }
    if export {
        p.push(Command::Export);
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

/// A finding's or a region's note: a fixed width, so that the grid's column grows to hold it
/// (a grid cell otherwise narrows a text field to its column, the width of "822.6 mL").
fn note_field(ui: &mut egui::Ui, note: &mut String) -> egui::Response {
    ui.add_sized([180.0, 20.0], egui::TextEdit::singleline(note).hint_text("note"))
}
