//! Toolbar and study browser (patients → studies → series, with thumbnails and warnings).

use eframe::egui::{self, Color32, RichText};

use crate::ui::presets::{Preset, presets_for};
use crate::ui::panels::Panel;
use crate::ui::{Command, Edit, FocalApp, SettingChange, ViewChange, edited};

fn pick_folder() -> Option<Vec<std::path::PathBuf>> {
    rfd::FileDialog::new()
        .set_title("Open a DICOM folder")
        .pick_folder()
        .map(|p| vec![p])
}

fn pick_files() -> Option<Vec<std::path::PathBuf>> {
    rfd::FileDialog::new()
        .set_title("Open DICOM files or a DICOMDIR")
        .pick_files()
}

/// The presets that apply to the series on screen.
pub fn current_presets(app: &FocalApp) -> Vec<Preset> {
    let Some(c) = app.doc.current() else { return Vec::new() };
    let tagged = c.stack.slices.get(app.doc.view().slice).and_then(|s| s.info().window);
    let auto = c.volume.as_ref().map(|v| v.window).unwrap_or(app.doc.view().window);
    let auto = if tagged.is_some() || c.volume.is_none() {
        c.volume
            .as_ref()
            .map(|v| crate::study::volume::percentile_window(&v.data, v.channels))
            .unwrap_or(auto)
    } else {
        auto
    };
    presets_for(c.modality.as_deref(), tagged, auto)
}

pub fn toolbar(app: &mut Panel, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.strong("Focal");
        if ui.button("Open folder…").clicked()
            && let Some(p) = pick_folder()
        {
            app.push(Command::Open(p));
        }
        if ui.button("Open files…").clicked()
            && let Some(p) = pick_files()
        {
            app.push(Command::Open(p));
        }
        if ui
            .selectable_label(app.app.pacs.open, "PACS…")
            .on_hover_text("Query and retrieve from the configured DICOM nodes")
            .clicked()
        {
            app.push(Command::PacsWindow(!app.app.pacs.open));
        }
        ui.menu_button("Recent", |ui| {
            if app.doc().settings().recent.is_empty() {
                ui.label("No recent studies");
            }
            for p in app.doc().settings().recent.clone() {
                if ui.button(p.display().to_string()).clicked() {
                    app.push(Command::Open(vec![p]));
                    ui.close();
                }
            }
        });
        ui.separator();

        let presets = current_presets(app.app);
        let chosen = app.doc().view().preset.unwrap_or("Custom");
        let wl = ui.label("W/L");
        let mut window = None;
        egui::ComboBox::from_id_salt("preset")
            .selected_text(chosen)
            .show_ui(ui, |ui| {
                for p in &presets {
                    let key = p.key.map(|k| format!("  [{k}]")).unwrap_or_default();
                    if ui
                        .selectable_label(app.doc().view().preset == Some(p.name), format!("{}{key}", p.name))
                        .clicked()
                    {
                        window = Some(p);
                    }
                }
            })
            .response
            .labelled_by(wl.id);
        if !ui.ctx().text_edit_focused() {
            let digits = [
                egui::Key::Num0,
                egui::Key::Num1,
                egui::Key::Num2,
                egui::Key::Num3,
                egui::Key::Num4,
                egui::Key::Num5,
                egui::Key::Num6,
            ];
            for (d, key) in digits.iter().enumerate() {
                if ui.input(|i| i.key_pressed(*key))
                    && let Some(p) = presets.iter().find(|p| p.key == Some(d as u8))
                {
                    window = Some(p);
                }
            }
        }
        if let Some(p) = window {
            app.edit(ViewChange::Window {
                center: p.center,
                width: p.width,
                preset: Some(p.name),
            });
        }
        if let Some(on) = edited(&app.doc().view().invert, |v| {
            ui.toggle_value(v, "Invert").on_hover_text("I");
        }) {
            app.edit(ViewChange::Invert(on));
        }
        if ui.button("Fit").on_hover_text("R or double-click").clicked() {
            app.edit(ViewChange::Fit);
        }
        if ui
            .button("1:1")
            .on_hover_text("One image pixel per screen pixel")
            .clicked()
            && let Some(c) = app.doc().current()
        {
            let spacing = c.stack.display_spacing()[0] as f32;
            let ppp = ui.ctx().pixels_per_point();
            app.edit(ViewChange::ZoomTo(1.0 / (app.app.gesture.fit_scale * spacing * ppp).max(1e-6)));
        }
        ui.separator();
        let mut chosen = app.doc().settings().layout;
        for layout in crate::ui::Layout::ALL {
            let hint = match layout {
                crate::ui::Layout::Single => "The acquired slices (L cycles the layouts)",
                crate::ui::Layout::Three => "Axial, coronal and sagittal planes (L)",
                crate::ui::Layout::Four => "The three planes and a coronal maximum-intensity projection (L)",
            };
            ui.selectable_value(&mut chosen, layout, layout.name()).on_hover_text(hint);
        }
        if !ui.ctx().text_edit_focused() && ui.input(|i| i.key_pressed(egui::Key::L) && !i.modifiers.command) {
            chosen = chosen.next();
        }
        if chosen != app.doc().settings().layout {
            app.edit(SettingChange::Layout(chosen));
        }
        ui.separator();
        let play = if app.doc().view().playing { "Pause" } else { "Play cine" };
        if ui.button(play).on_hover_text("Space").clicked() {
            app.edit(ViewChange::Playing(!app.doc().view().playing));
        }
        if let Some(fps) = edited(&app.doc().settings().cine_fps, |v| {
            ui.add(egui::Slider::new(v, 1.0..=60.0).text("fps").integer());
        }) {
            app.edit(SettingChange::CineFps(fps));
        }
        ui.separator();
        if let Some(shown) = edited(&app.doc().show_tags(), |v| {
            ui.toggle_value(v, "Tags");
        }) {
            app.edit(Edit::ShowTags(shown));
        }
    });
}

pub fn browser(app: &mut Panel, ui: &mut egui::Ui) {
    ui.heading("Studies");
    let Some(set) = app.doc().studies().cloned() else {
        ui.label(if app.app.scan.is_some() {
            "Reading…"
        } else {
            "No study open"
        });
        return;
    };
    let current = app.doc().current().map(|c| (c.uid.clone(), c.stack_index));
    egui::ScrollArea::vertical().show(ui, |ui| {
        for patient in &set.patients {
            // Patient identifiers are shown in the window only, never logged.
            let name = patient.info.name.clone().unwrap_or_else(|| "(no name)".into());
            let id = patient.info.id.clone().unwrap_or_default();
            egui::CollapsingHeader::new(RichText::new(format!("{name}  {id}")).strong())
                .default_open(true)
                .show(ui, |ui| {
                    for study in &patient.studies {
                        let title = format!(
                            "{} {}",
                            study.date.clone().unwrap_or_default(),
                            study.description.clone().unwrap_or_else(|| "(study)".into())
                        );
                        egui::CollapsingHeader::new(title).default_open(true).show(ui, |ui| {
                            for series in &study.series {
                                // Objects other tools wrote are listed under the series they
                                // were made over, and shown over it when clicked.
                                if crate::ui::objects::is_object_series(series) {
                                    let over = series.referenced_series();
                                    if over.iter().any(|r| set.find_series(r).is_some_and(|s| !crate::ui::objects::is_object_series(s))) {
                                        continue;
                                    }
                                    ui.label(
                                        RichText::new(format!(
                                            "{}: made over a series that is not open, so it cannot be placed",
                                            series.title()
                                        ))
                                        .color(Color32::from_rgb(230, 160, 60)),
                                    );
                                    continue;
                                }
                                for (k, stack) in series.stacks.iter().enumerate() {
                                    let selected =
                                        current.as_ref().is_some_and(|(uid, i)| uid == &series.uid && *i == k);
                                    ui.horizontal(|ui| {
                                        if let Some(t) = app.app.thumbnails.get(&series.uid) {
                                            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(48.0, 48.0)));
                                        } else {
                                            ui.add_space(52.0);
                                        }
                                        ui.vertical(|ui| {
                                            let mut head = format!(
                                                "{} {}",
                                                series.modality.clone().unwrap_or_else(|| "??".into()),
                                                series.number.map(|n| format!("#{n}")).unwrap_or_default()
                                            );
                                            if series.stacks.len() > 1 {
                                                head.push_str(&format!(" ({})", stack.plane.unwrap_or("stack")));
                                            }
                                            let text = format!(
                                                "{head}\n{}\n{} images",
                                                series.description.clone().unwrap_or_default(),
                                                stack.slices.len()
                                            );
                                            if ui.selectable_label(selected, text).clicked() {
                                                app.push(Command::LoadSeries {
                                                    series: series.uid.clone(),
                                                    stack: k,
                                                });
                                            }
                                            for w in &stack.warnings {
                                                ui.label(
                                                    RichText::new(format!("Warning: {w}"))
                                                        .color(Color32::from_rgb(230, 160, 60)),
                                                );
                                            }
                                        });
                                    });
                                }
                                for object in crate::ui::objects::objects_over(&set, &series.uid) {
                                    ui.horizontal(|ui| {
                                        ui.add_space(52.0);
                                        if ui
                                            .selectable_label(false, format!("over it: {}", object.title()))
                                            .on_hover_text("Show it over this series")
                                            .clicked()
                                        {
                                            app.push(Command::ShowObject(crate::ui::objects::ObjectSource::Series(
                                                object.uid.clone(),
                                            )));
                                        }
                                    });
                                }
                            }
                        });
                    }
                });
        }
        if !set.unreadable.is_empty() {
            egui::CollapsingHeader::new(
                RichText::new(format!("{} unreadable file(s)", set.unreadable.len()))
                    .color(Color32::from_rgb(230, 120, 100)),
            )
            .show(ui, |ui| {
                for u in &set.unreadable {
                    ui.label(format!("{}: {}", u.path.display(), u.reason));
                }
            });
        }
        if let Some(v) = app
            .doc()
            .current()
            .and_then(|c| c.volume.as_ref())
            .filter(|v| !v.skipped.is_empty())
        {
            egui::CollapsingHeader::new(
                RichText::new(format!("{} slice(s) not decoded", v.skipped.len()))
                    .color(Color32::from_rgb(230, 120, 100)),
            )
            .show(ui, |ui| {
                for s in &v.skipped {
                    ui.label(format!("slice {}: {}", s.index + 1, s.reason));
                }
            });
        }
    });
}
