//! The model panel: run the analysis, watch it, read its results and its limits.

use crate::ui::panels::Panel;
use eframe::egui::{self, Color32, RichText};

use crate::ui::{Command, SettingChange, edited};
use crate::inference::Device;

/// Said wherever the model's output is shown.
pub const ATTENTION_DISCLAIMER: &str = "The attention map shows which pixels the model let through to its segmentation; \
its faithfulness score says how much the labels depend on them, and an evidence map shows it by deleting patches. \
Neither is a finding nor a diagnosis. Research use only; not for diagnostic use.";

pub fn model_panel(p: &mut Panel, ui: &mut egui::Ui) {
    ui.heading("Model");
    let manifest = match &p.app.manifest {
        Ok(m) => m.clone(),
        Err(e) => {
            ui.colored_label(Color32::from_rgb(230, 120, 100), format!("No model: {e}"));
            return;
        }
    };
    ui.label(RichText::new(manifest.title.clone().unwrap_or_else(|| manifest.name.clone())).strong());
    let short = |sha: &str| sha[..12.min(sha.len())].to_string();
    ui.label(format!("{} {} · sha256 {}…", manifest.name, manifest.version, short(&manifest.sha256)));
    // A restored analysis may come from another model than the one loaded now: say which.
    if let Some(m) = p.app.doc.current_analysis().and_then(|a| a.made_by.as_ref())
        && (m.sha256 != manifest.sha256 || m.version != manifest.version || m.name != manifest.name)
    {
        ui.colored_label(
            Color32::from_rgb(230, 180, 80),
            format!(
                "This series' analysis was made by {} {} · sha256 {}…; Analyze series runs the model above",
                m.name,
                m.version,
                short(&m.sha256)
            ),
        );
    }
    let device = ui.horizontal(|ui| {
        ui.label("Device");
        edited(&p.app.doc.settings().device, |device| {
            for (d, name) in [(Device::Auto, "Auto"), (Device::Cpu, "CPU"), (Device::Cuda, "CUDA")] {
                ui.selectable_value(device, d, name);
            }
        })
    });
    if let Some(d) = device.inner {
        p.edit(SettingChange::Device(d));
    }

    let loaded = p.app.doc.current().is_some_and(|c| c.volume.is_some());
    let mut cancel = false;
    if let Some(r) = &p.app.running {
        let s = r.job.status();
        ui.horizontal(|ui| {
            let eta = s
                .eta
                .map(|e| format!(", about {:.0} s left", e.as_secs_f64()))
                .unwrap_or_default();
            ui.add(
                egui::ProgressBar::new(s.done as f32 / s.total.max(1) as f32)
                    .text(format!("{}/{} slices{eta}", s.done, s.total))
                    .desired_width(200.0),
            );
            if ui.button("Cancel").clicked() {
                cancel = true;
            }
        });
        match r.job.provider() {
            Some(p) => {
                ui.label(format!("Running on {}", p.name));
            }
            None => {
                ui.label("Opening the model…");
            }
        }
    } else {
        crate::ui::insights::combine_picker(p, ui, &manifest);
        let button = ui.add_enabled(loaded, egui::Button::new("Analyze series"));
        if !loaded {
            button.on_disabled_hover_text("Open a series and wait for it to load");
        } else if button.clicked() {
            p.push(Command::RunAnalysis);
        }
    }
    if cancel {
        p.push(Command::CancelAnalysis);
    }

    if let Some(a) = p.app.doc.current_analysis() {
        ui.add_space(6.0);
        let provider = match &a.fallback_reason {
            Some(why) => format!("Ran on {} (CUDA not used: {why})", a.provider_name),
            None => format!("Ran on {}", a.provider_name),
        };
        ui.label(provider);
        if !a.verified {
            ui.colored_label(
                Color32::from_rgb(230, 120, 100),
                "Model file NOT verified against its manifest",
            );
        }
        if let Some(t) = &a.timing {
            ui.label(t);
        }
        egui::Grid::new("volumes").striped(true).num_columns(3).show(ui, |ui| {
            ui.strong("Label");
            ui.strong("Volume");
            ui.strong("Confidence");
            ui.end_row();
            for f in &a.review.findings {
                let colour = manifest
                    .labels
                    .iter()
                    .find(|x| x.index == f.label)
                    .map(|x| x.color)
                    .unwrap_or([255; 3]);
                ui.label(RichText::new(&f.name).color(Color32::from_rgb(colour[0], colour[1], colour[2])));
                ui.label(format!("{:.1} mL", f.volume_ml));
                ui.label(
                    f.mean_confidence
                        .map(|p| format!("{:.0}%", p * 100.0))
                        .unwrap_or_else(|| "–".into()),
                );
                ui.end_row();
            }
        });
    }
    crate::ui::insights::insights_panel(p, ui);

    ui.add_space(8.0);
    ui.label(RichText::new(ATTENTION_DISCLAIMER).color(Color32::from_rgb(240, 200, 120)));
    egui::CollapsingHeader::new("Model card").show(ui, |ui| {
        if let Some(t) = &manifest.architecture {
            ui.label(t);
        }
        if let Some(t) = &manifest.intended_use {
            ui.label(format!("Intended use: {t}"));
        }
        for l in &manifest.limits {
            ui.label(RichText::new(format!("• {l}")).small());
        }
        let labels: Vec<&str> = manifest.labels.iter().map(|l| l.name.as_str()).collect();
        ui.label(format!("Labels: {}", labels.join(", ")));
        ui.label(format!(
            "Input: {} mm pixels, {} normalisation",
            manifest.input.pixel_spacing_mm[0], manifest.input.normalisation.method
        ));
        if let Some(metrics) = &manifest.metrics {
            ui.label("Held-out results (Colin27, weak references; see MODEL_CARD.md):");
            metric_lines(metrics, "", ui);
        }
    });
}

fn metric_lines(v: &serde_json::Value, prefix: &str, ui: &mut egui::Ui) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix} · {k}")
                };
                metric_lines(v, &name, ui);
            }
        }
        serde_json::Value::Number(n) => {
            ui.label(RichText::new(format!("{prefix}: {:.3}", n.as_f64().unwrap_or(f64::NAN))).small());
        }
        _ => {}
    }
}
