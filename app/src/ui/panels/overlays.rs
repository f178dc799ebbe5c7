//! Overlay settings: the heatmap (attention, evidence, weights or a fused series) and label
//! masks.

use crate::ui::panels::Panel;
use eframe::egui::{self, Color32, RichText};

use crate::ui::{SettingChange, edited};
use crate::render::{Colormap, MAX_OUTLINE_WIDTH, MaskMode};

pub fn overlay_panel(p: &mut Panel, ui: &mut egui::Ui) {
    ui.heading("Overlays");
    let has_analysis = p.app.doc.current_analysis().is_some();
    if !has_analysis {
        ui.label(RichText::new("Run the model to see its attention map and labels.").weak());
    }
    let mut changes = Vec::new();
    let s = p.app.doc.settings();
    if let Some(on) = edited(&s.show_attention, |v| {
        ui.checkbox(v, "Heatmap");
    }) {
        changes.push(SettingChange::ShowHeatmap(on));
    }
    for c in changes.drain(..) {
        p.edit(c);
    }
    crate::ui::insights::heatmap_controls(p, ui);
    let fused = p.app.doc.heatmap() == crate::ui::Heatmap::Fusion;
    let s = p.app.doc.settings();
    // A fused series has its own window, colour map and opacity (below).
    ui.add_enabled_ui(s.show_attention && !fused, |ui| {
        let a = &s.attention;
        egui::ComboBox::from_label("Colormap")
            .selected_text(a.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    if ui.selectable_label(a.colormap == c, c.name()).clicked() {
                        changes.push(SettingChange::Colormap(c));
                    }
                }
            });
        if let Some(o) = edited(&a.opacity, |v| {
            ui.add(egui::Slider::new(v, 0.0..=1.0).text("Opacity"));
        }) {
            changes.push(SettingChange::HeatOpacity(o));
        }
        let [lo, hi] = a.range;
        if let Some(t) = edited(&a.threshold, |v| {
            ui.add(egui::Slider::new(v, lo..=hi).max_decimals(3).text("Threshold")).on_hover_text(
                "Attention below this value is transparent (evidence maps use a tenth of their largest value)",
            );
        }) {
            changes.push(SettingChange::Threshold(t));
        }
        if let Some(on) = edited(&a.inside_labels, |v| {
            ui.checkbox(v, "Attention inside the labelled brain only").on_hover_text(
                "The model's attention drawn only where it labelled brain; off shows all of it, scalp and background included (the Analysis tab says how much of its mass lies outside)",
            );
        }) {
            changes.push(SettingChange::AttentionInsideBrain(on));
        }
    });
    for c in changes.drain(..) {
        p.edit(c);
    }
    crate::ui::fusion::fusion_controls(p, ui);
    crate::ui::objects::object_controls(p, ui);
    let s = p.app.doc.settings();
    ui.add_space(6.0);
    if let Some(on) = edited(&s.show_mask, |v| {
        ui.checkbox(v, "Label mask");
    }) {
        changes.push(SettingChange::ShowMask(on));
    }
    ui.add_enabled_ui(s.show_mask, |ui| {
        ui.horizontal(|ui| {
            for m in MaskMode::ALL {
                if ui.selectable_label(s.mask_mode == m, m.name()).clicked() {
                    changes.push(SettingChange::MaskMode(m));
                }
            }
        });
        if let Some(o) = edited(&s.fill_opacity, |v| {
            ui.add(egui::Slider::new(v, 0.0..=1.0).text("Fill opacity"));
        }) {
            changes.push(SettingChange::FillOpacity(o));
        }
        if let Some(w) = edited(&s.outline_width, |v| {
            ui.add(egui::Slider::new(v, 1..=MAX_OUTLINE_WIDTH).suffix(" px").text("Outline width"));
        }) {
            changes.push(SettingChange::OutlineWidth(w));
        }
        if let Ok(m) = &p.app.manifest {
            for l in m.labels.iter().filter(|l| l.index > 0) {
                ui.horizontal(|ui| {
                    let mut shown = !s.hidden_labels.contains(&l.index);
                    let [r, g, b] = l.color;
                    let (swatch, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().rect_filled(swatch, 2.0, Color32::from_rgb(r, g, b));
                    if ui.checkbox(&mut shown, &l.name).changed() {
                        changes.push(SettingChange::LabelShown(l.index, shown));
                    }
                });
            }
        }
    });
    for c in changes {
        p.edit(c);
    }
}
