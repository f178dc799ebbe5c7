//! Overlay settings: the heatmap (attention, evidence, weights or a fused series) and label
//! masks.

use eframe::egui::{self, Color32, RichText};

use super::FocalApp;
use crate::render::{Colormap, MAX_OUTLINE_WIDTH, MaskMode};

pub fn overlay_panel(app: &mut FocalApp, ui: &mut egui::Ui) {
    ui.heading("Overlays");
    let has_analysis = app.current_analysis().is_some();
    if !has_analysis {
        ui.label(RichText::new("Run the model to see its attention map and labels.").weak());
    }
    ui.checkbox(&mut app.settings.show_attention, "Heatmap");
    super::insights::heatmap_controls(app, ui);
    let fused = app.heatmap == super::insights::Heatmap::Fusion;
    let s = &mut app.settings;
    // A fused series has its own window, colour map and opacity (below).
    ui.add_enabled_ui(s.show_attention && !fused, |ui| {
        egui::ComboBox::from_label("Colormap")
            .selected_text(s.attention.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut s.attention.colormap, c, c.name());
                }
            });
        ui.add(egui::Slider::new(&mut s.attention.opacity, 0.0..=1.0).text("Opacity"));
        let [lo, hi] = s.attention.range;
        ui.add(
            egui::Slider::new(&mut s.attention.threshold, lo..=hi)
                .max_decimals(3)
                .text("Threshold"),
        )
        .on_hover_text("Attention below this value is transparent (evidence maps use a tenth of their largest value)");
    });
    super::fusion::fusion_controls(app, ui);
    let s = &mut app.settings;
    ui.add_space(6.0);
    ui.checkbox(&mut s.show_mask, "Label mask");
    ui.add_enabled_ui(s.show_mask, |ui| {
        ui.horizontal(|ui| {
            for m in MaskMode::ALL {
                ui.selectable_value(&mut s.mask_mode, m, m.name());
            }
        });
        ui.add(egui::Slider::new(&mut s.fill_opacity, 0.0..=1.0).text("Fill opacity"));
        ui.add(
            egui::Slider::new(&mut s.outline_width, 1..=MAX_OUTLINE_WIDTH)
                .suffix(" px")
                .text("Outline width"),
        );
        if let Ok(m) = &app.manifest {
            for l in m.labels.iter().filter(|l| l.index > 0) {
                ui.horizontal(|ui| {
                    let mut shown = !s.hidden_labels.contains(&l.index);
                    let [r, g, b] = l.color;
                    let (swatch, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().rect_filled(swatch, 2.0, Color32::from_rgb(r, g, b));
                    if ui.checkbox(&mut shown, &l.name).changed() {
                        s.hidden_labels.retain(|x| *x != l.index);
                        if !shown {
                            s.hidden_labels.push(l.index);
                        }
                    }
                });
            }
        }
    });
}
