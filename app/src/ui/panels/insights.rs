//! What the model relied on, in the window: the series combined in its modality slots, the
//! attention's faithfulness score, per-label modality weights, volumes outside adult norms,
//! and occlusion evidence maps computed on demand for the slice on screen.

use crate::ui::panels::Panel;
use std::collections::BTreeMap;
use std::sync::Arc;

use eframe::egui::{self, Color32, RichText};

use crate::ui::job::{Job, Outcome, Reporter};
use crate::ui::{Command, Edit, Extras, FocalApp, Heatmap, edited};
use crate::inference::analysis::Preprocessor;
use crate::inference::evidence::{self, EvidenceMap};
use crate::inference::{Engine, Manifest};
use crate::render::AttentionStyle;
use crate::study::{Progress, Volume};

const WARN: Color32 = Color32::from_rgb(230, 120, 100);

/// An evidence map being computed on its own thread.
pub struct EvidenceJob {
    pub series: String,
    pub slice: usize,
    job: Job<Result<EvidenceMap, String>>,
}

/// The heatmap's display: the reader's colour map and opacity, with the range and threshold
/// of the map shown.
pub fn heat_style(app: &FocalApp) -> (AttentionStyle, String) {
    let base = app.doc.settings().attention;
    match app.doc.heatmap() {
        Heatmap::Attention => (base, "attention".into()),
        Heatmap::Evidence => {
            let max = app
                .doc
                .current_analysis()
                .and_then(|a| a.extras.evidence.get(&app.doc.view().slice))
                .map_or(1.0, |(info, _)| info.max);
            let e = crate::report::evidence_style(max);
            (
                AttentionStyle {
                    colormap: base.colormap,
                    opacity: base.opacity.max(0.4),
                    inside_labels: false,
                    ..e
                },
                "evidence".into(),
            )
        }
        Heatmap::Modality(slot) => (
            AttentionStyle {
                threshold: 0.02,
                range: [0.0, 1.0],
                inside_labels: false,
                ..base
            },
            format!("weight of {}", slot_name(app, slot)),
        ),
        Heatmap::Fusion => match app.doc.current_fusion() {
            Some(f) => (crate::ui::fusion::fusion_style(f), f.label.clone()),
            None => (base, "fusion".into()),
        },
        Heatmap::KeyRegions => (
            AttentionStyle {
                colormap: base.colormap,
                opacity: base.opacity.max(0.5),
                ..crate::report::key_region_style()
            },
            "departure from healthy tissue (spreads)".into(),
        ),
    }
}

fn slot_name(app: &FocalApp, slot: usize) -> String {
    app.manifest
        .as_ref()
        .map_or_else(|_| format!("slot {slot}"), |m| m.slot_name(slot))
}

/// The heatmap plane of `slice` for the map chosen, when there is one.
pub fn heat_plane(app: &FocalApp, slice: usize, n: usize) -> Option<Vec<f32>> {
    if app.doc.heatmap() == Heatmap::Fusion {
        let f = app.doc.current_fusion()?;
        return f.volume.slice(slice).filter(|p| p.len() == n).map(<[f32]>::to_vec);
    }
    let a = app.doc.current_analysis()?;
    match app.doc.heatmap() {
        Heatmap::Fusion => None,
        Heatmap::Attention => a.attention.get(slice * n..(slice + 1) * n).map(<[f32]>::to_vec),
        Heatmap::Evidence => a.extras.evidence.get(&slice).map(|(_, v)| v.as_ref().clone()),
        Heatmap::Modality(slot) => {
            let (slots, m) = a.extras.modality.as_ref()?;
            let at = (slice * slots + slot) * n;
            m.get(at..at + n).map(<[f32]>::to_vec)
        }
        Heatmap::KeyRegions => a.extras.key_regions.as_ref()?.0.get(slice * n..(slice + 1) * n).map(<[f32]>::to_vec),
    }
}

/// A number that changes whenever the heatmap on screen must be rebuilt.
pub fn heat_key(app: &FocalApp) -> (Heatmap, usize) {
    let changes = match app.doc.heatmap() {
        // A new fused volume is a new allocation.
        Heatmap::Fusion => app.doc.current_fusion().map_or(0, |f| Arc::as_ptr(&f.volume) as usize),
        _ => app.doc.current_analysis().map_or(0, |a| a.extras.evidence.len()),
    };
    (app.doc.heatmap(), changes)
}

/// The other series of the open study that can be combined with the one on screen.
pub fn combine_picker(p: &mut Panel, ui: &mut egui::Ui, manifest: &Manifest) {
    if manifest.input.slots.len() < 2 || p.app.doc.studies().is_none() || p.app.doc.current().is_none() {
        return;
    }
    let candidates = crate::ui::fusion::other_series(p.app);
    if p.app.doc.combine_with().is_some_and(|u| !candidates.iter().any(|(c, _)| c == u)) {
        p.edit(Edit::CombineWith(None));
    }
    let slot = &manifest.input.slots[1];
    let selected = p
        .app
        .doc
        .combine_with()
        .and_then(|u| candidates.iter().find(|(c, _)| c == u))
        .map_or("none".to_string(), |(_, n)| n.clone());
    let chosen = p.app.doc.combine_with().cloned();
    let mut choice = None;
    ui.horizontal(|ui| {
        ui.label("Combine with");
        egui::ComboBox::from_id_salt("combine-with")
            .selected_text(selected)
            .show_ui(ui, |ui| {
                if ui.selectable_label(chosen.is_none(), "none").clicked() {
                    choice = Some(None);
                }
                for (uid, name) in &candidates {
                    if ui.selectable_label(chosen.as_ref() == Some(uid), name).clicked() {
                        choice = Some(Some(uid.clone()));
                    }
                }
            })
            .response
            .on_hover_text(format!(
                "{}: {}. It is resampled onto this series in patient coordinates; series of another patient or frame of reference are refused.",
                slot.name, slot.description
            ));
    });
    if let Some(series) = choice {
        p.edit(Edit::CombineWith(series));
    }
}

/// Beside the heatmap switch in the overlay panel: which map it shows, and how faithful the
/// attention map is on this series.
pub fn heatmap_controls(p: &mut Panel, ui: &mut egui::Ui) {
    let fused = p.app.doc.current_fusion().map(|f| f.label.clone());
    let shown = p.app.doc.heatmap();
    let Some(a) = p.app.doc.current_analysis() else {
        if let Some(label) = fused {
            ui.horizontal_wrapped(|ui| {
                ui.label("Show");
                if ui.selectable_label(shown == Heatmap::Fusion, format!("Fusion: {label}")).clicked() {
                    p.edit(Edit::Heatmap(Heatmap::Fusion));
                }
            });
        }
        return;
    };
    let slots: Vec<String> = a.extras.insights.slots.iter().map(|s| s.slot.clone()).collect();
    let has_modality = a.extras.modality.is_some() && slots.len() > 1;
    let has_key_regions = a.extras.key_regions.is_some();
    let faithfulness = a.extras.insights.faithfulness.clone();
    let in_brain = a.extras.insights.attention_in_brain;
    let chosen = ui.horizontal_wrapped(|ui| {
        edited(&shown, |h| {
            ui.label("Show");
            ui.selectable_value(h, Heatmap::Attention, "Attention");
            ui.selectable_value(h, Heatmap::Evidence, "Evidence")
                .on_hover_text("The occlusion evidence map of this slice (Model panel: Evidence for this slice)");
            if has_modality {
                for (slot, name) in slots.iter().enumerate().skip(1) {
                    ui.selectable_value(h, Heatmap::Modality(slot), format!("{name} weight"))
                        .on_hover_text("How much the model relied on this series at each pixel (0-1)");
                }
            }
            if has_key_regions {
                ui.selectable_value(h, Heatmap::KeyRegions, "Key regions").on_hover_text(
                    "Each voxel's departure from this scan's own model of healthy tissue, in spreads (3 and above shown); not a diagnosis",
                );
            }
            if let Some(label) = &fused {
                ui.selectable_value(h, Heatmap::Fusion, format!("Fusion: {label}"));
            }
        })
    });
    if let Some(h) = chosen.inner {
        p.edit(Edit::Heatmap(h));
    }
    match faithfulness {
        Some(f) => {
            let verdict = if f.passed { "passed" } else { "FAILED" };
            let colour = if f.passed { Color32::from_rgb(140, 210, 140) } else { WARN };
            ui.label(RichText::new(format!("Attention faithfulness {:.2} ({verdict})", f.score)).color(colour))
                .on_hover_text(f.describe());
        }
        None => {
            ui.label(RichText::new("Attention faithfulness not measured").weak());
        }
    }
    if let Some(share) = in_brain {
        let colour = if share >= 0.8 { Color32::from_rgb(140, 210, 140) } else { WARN };
        ui.label(RichText::new(format!("Attention inside the brain {:.0} %", share * 100.0)).color(colour))
            .on_hover_text(crate::inference::analysis::describe_attention_in_brain(share));
    }
}

/// Below the volumes in the model panel: warnings, per-label series weights, evidence maps.
pub fn insights_panel(p: &mut Panel, ui: &mut egui::Ui) {
    let Some(a) = p.app.doc.current_analysis() else { return };
    let insights = a.extras.insights.clone();
    let evidence_here = a.extras.evidence.get(&p.app.doc.view().slice).map(|(i, _)| i.clone());
    let volumes: Vec<(u8, f64)> = a.review.findings.iter().map(|f| (f.label, f.volume_ml)).collect();
    let manifest = p.app.manifest.clone().ok();
    if let Some(m) = &manifest {
        for w in crate::inference::analysis::volume_warnings(m, &volumes) {
            ui.colored_label(WARN, format!("Warning: {w}"));
        }
    }
    for p in &insights.postprocess {
        ui.label(RichText::new(format!("Post-processing: {}", p.describe())).weak());
    }
    for (s, w) in insights.slots.iter().flat_map(|s| s.warnings.iter().map(move |w| (s, w))) {
        ui.colored_label(WARN, format!("Series warning ({}): {w}", s.slot));
    }
    if insights.slots.len() > 1 {
        ui.add_space(4.0);
        ui.label(RichText::new("Series the labels relied on").strong());
        egui::Grid::new("modality-weights").striped(true).show(ui, |ui| {
            ui.strong("Label");
            for s in &insights.slots {
                ui.strong(&s.slot).on_hover_text(format!(
                    "{} ({:.0}% of this series covered)",
                    s.description.clone().unwrap_or_default(),
                    s.coverage * 100.0
                ));
            }
            ui.end_row();
            for r in &insights.modality_reliance {
                ui.label(&r.label);
                for w in r.slots.iter().take(insights.slots.len()) {
                    ui.label(w.mean_weight.map_or("–".into(), |v| format!("{:.0}%", v * 100.0)));
                }
                ui.end_row();
            }
        });
    }
    ui.add_space(4.0);
    let mut cancel = false;
    if let Some(job) = &p.app.evidence {
        let (done, total) = job.job.progress().map_or((0, 0), |(d, t)| (d, t.unwrap_or(0)));
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("evidence, slice {}: {done}/{total} patches", job.slice + 1))
                    .desired_width(200.0),
            );
            if ui.button("Cancel").clicked() {
                cancel = true;
            }
        });
    } else {
        ui.horizontal(|ui| {
            let labels: Vec<(u8, String)> = p.app.doc.label_names().iter().filter(|l| l.0 > 0).cloned().collect();
            let current = p
                .app
                .doc
                .evidence_label()
                .and_then(|i| labels.iter().find(|l| l.0 == i))
                .map_or("all labels".to_string(), |l| l.1.clone());
            if ui
                .button("Evidence for this slice")
                .on_hover_text("Deletes one 16 mm patch at a time through the model and maps how much the labels depend on it (a few seconds on CPU)")
                .clicked()
            {
                p.push(Command::ComputeEvidence);
            }
            let chosen = egui::ComboBox::from_id_salt("evidence-label")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    edited(&p.app.doc.evidence_label(), |l| {
                        ui.selectable_value(l, None, "all labels");
                        for (i, name) in &labels {
                            ui.selectable_value(l, Some(*i), name);
                        }
                    })
                });
            if let Some(label) = chosen.inner.flatten() {
                p.edit(Edit::EvidenceLabel(label));
            }
        });
    }
    if cancel {
        p.push(Command::CancelEvidence);
    }
    if let Some(info) = evidence_here {
        ui.label(
            RichText::new(format!(
                "Evidence of this slice: {} patches in {:.1} s, largest probability drop {:.3}",
                info.patches, info.seconds, info.max
            ))
            .small(),
        );
    }
}

impl FocalApp {
    /// Starts the occlusion evidence map of the slice on screen.
    pub(in crate::ui) fn start_evidence(&mut self) {
        if self.evidence.is_some() {
            return;
        }
        let (Some(current), Some(set), Ok(manifest)) = (self.doc.current(), self.doc.studies().cloned(), self.manifest.clone())
        else {
            return;
        };
        let (Some(volume), Some(a)) = (current.volume.clone(), self.doc.current_analysis()) else {
            self.notice("run or restore an analysis of this series first");
            return;
        };
        let others: Vec<String> = a.extras.insights.slots.iter().skip(1).map(|s| s.series_uid.clone()).collect();
        let (dir, slice, label, device) = (a.dir.clone(), self.doc.view().slice, self.doc.evidence_label(), self.doc.settings().device);
        let (uid, stack) = (current.uid.clone(), current.stack.clone());
        let series = uid.clone();
        let job = Job::spawn(None, move |r: &Reporter<Result<EvidenceMap, String>>| {
            let c = r.cancelled();
            let run = || -> Result<EvidenceMap, String> {
                let fail = |e: crate::inference::InferenceError| crate::study::error_chain(&e);
                let (volumes, _) =
                    crate::inference::inputs::paired_volumes(&manifest, &set, &uid, &stack, volume.clone(), &others, c)
                        .map_err(fail)?;
                let mut engine = Engine::open(manifest, device, false).map_err(fail)?;
                let refs: Vec<&Volume> = volumes.iter().map(|v| v.as_ref()).collect();
                let pre = Preprocessor::new(&engine, &refs).map_err(fail)?;
                let progress = |p: Progress| r.progress(p.done, Some(p.total));
                let map = evidence::occlusion(&mut engine, &pre, slice, label, evidence::DEFAULT_PATCH, &progress, c)
                    .map_err(fail)?;
                if let Err(e) = crate::inference::output::write_evidence(&dir, &volume, &map) {
                    tracing::error!("the evidence map could not be saved: {e}");
                }
                Ok(map)
            };
            r.send(run());
        });
        self.edit(Edit::Heatmap(Heatmap::Evidence));
        self.evidence = Some(EvidenceJob { series, slice, job });
    }

    pub(in crate::ui) fn cancel_evidence(&mut self) {
        if let Some(job) = &self.evidence {
            job.job.cancel();
        }
    }

    /// Takes in a finished evidence map.
    pub(in crate::ui) fn poll_evidence(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.evidence else { return };
        match job.job.outcome() {
            Outcome::Running => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
            Outcome::Done(Ok(map)) => {
                let series = job.series.clone();
                self.evidence = None;
                self.notice(format!(
                    "evidence map of slice {} in {:.1} s",
                    map.info.slice + 1,
                    map.info.seconds
                ));
                self.edit(Edit::Evidence {
                    series,
                    info: map.info,
                    values: Arc::new(map.values),
                });
            }
            Outcome::Done(Err(e)) => {
                self.evidence = None;
                self.notice(format!("evidence map: {e}"));
            }
            Outcome::Ended => self.evidence = None,
        }
    }
}

/// At the top of the Analysis tab, when the analysis looked for key regions: their list.
/// Whether it showed anything.
pub fn key_regions_section(p: &mut Panel, ui: &mut egui::Ui) -> bool {
    let Some(a) = p.app.doc.current_analysis() else { return false };
    let insights = a.extras.insights.clone();
    let Some(regions) = &insights.key_regions else { return false };
    key_regions_list(p, ui, regions, &insights);
    true
}

/// The key regions of the analysis on screen: one row each; a click shows the region (its
/// centre slice, the crosshair on its centre in the reformatted views, the score as heatmap).
fn key_regions_list(
    p: &mut Panel,
    ui: &mut egui::Ui,
    regions: &[crate::inference::key_regions::KeyRegion],
    insights: &crate::inference::analysis::Insights,
) {
    ui.heading(format!("Key regions ({})", regions.len()))
        .on_hover_text(crate::inference::key_regions::MEANING);
    if regions.is_empty() {
        ui.label(RichText::new("None: no region departs from this scan's healthy tissue.").weak());
        return;
    }
    let mut chosen = None;
    egui::Grid::new("key-regions").striped(true).show(ui, |ui| {
        for h in ["", "mL", "slices", "peak", "series"] {
            ui.strong(h);
        }
        ui.end_row();
        for r in regions {
            if ui
                .button(format!("Region {}", r.id))
                .on_hover_text(r.describe_named(&|slot| insights.series_name(slot)))
                .clicked()
            {
                chosen = Some(r.clone());
            }
            ui.label(format!("{:.1}", r.volume_ml));
            ui.label(format!("{}–{}", r.slices[0], r.slices[1]));
            ui.label(format!("{:.1}", r.peak_score));
            ui.label(r.series_summary());
            ui.end_row();
        }
    });
    ui.label(RichText::new(crate::inference::key_regions::MEANING).weak().small());
    set_aside_list(ui, &insights.key_regions_set_aside, &mut chosen);
    if let Some(r) = chosen {
        p.edit(Edit::Heatmap(Heatmap::KeyRegions));
        for e in show_region(&r) {
            p.edit(e);
        }
    }
}

/// The regions set aside as likely physiological, under the key regions: one row
/// each with why; a click shows it as a key region's does.
fn set_aside_list(
    ui: &mut egui::Ui,
    set_aside: &[crate::inference::key_regions::SetAside],
    chosen: &mut Option<crate::inference::key_regions::KeyRegion>,
) {
    if set_aside.is_empty() {
        return;
    }
    egui::CollapsingHeader::new(format!("Set aside as likely physiological ({})", set_aside.len()))
        .id_salt("key-regions-set-aside")
        .show(ui, |ui| {
            ui.label(RichText::new(crate::inference::key_regions::SET_ASIDE_MEANING).weak().small());
            for (i, r) in set_aside.iter().enumerate() {
                ui.horizontal_wrapped(|ui| {
                    if ui.button(format!("Set aside {}", i + 1)).on_hover_text(&r.why).clicked() {
                        *chosen = Some(r.region.clone());
                    }
                    ui.label(RichText::new(r.describe()).small());
                });
            }
        });
}

/// What showing a key region takes: its middle slice, and the reformatted views' crosshair on
/// its centre (from the Analysis tab's list and the Review tab's).
pub fn show_region(r: &crate::inference::key_regions::KeyRegion) -> Vec<Edit> {
    let mut edits = vec![crate::ui::ViewChange::GoTo(r.middle_slice()).into()];
    edits.extend(r.centre_lps_mm.map(|c| crate::ui::ViewChange::Cursor(c).into()));
    edits
}

/// Builds the window's extras from a saved analysis folder.
pub fn extras_from_output(o: &mut crate::report::output::AnalysisOutput) -> Extras {
    let plane = o.summary.grid[0] * o.summary.grid[1];
    let evidence = match &o.evidence_values {
        Some(values) => o
            .evidence
            .iter()
            .filter_map(|info| {
                let at = info.slice * plane;
                values
                    .get(at..at + plane)
                    .map(|v| (info.slice, (info.clone(), Arc::new(v.to_vec()))))
            })
            .collect(),
        None => BTreeMap::new(),
    };
    Extras {
        insights: o.summary.insights.clone(),
        modality: o.modality.take().map(|(n, v)| (n, Arc::new(v))),
        evidence,
        key_regions: o.key_regions.take().map(|(s, i)| (Arc::new(s), Arc::new(i))),
    }
}

/// The window's extras for an analysis made in this session.
pub fn extras_from_analysis(analysis: &crate::inference::Analysis, slots: usize) -> Extras {
    Extras {
        insights: analysis.summary.insights.clone(),
        modality: analysis
            .modality_attention
            .as_ref()
            .map(|m| (slots, Arc::new(m.clone()))),
        evidence: BTreeMap::new(),
        key_regions: analysis.key_regions.as_ref().map(|k| (Arc::new(k.score.clone()), Arc::new(k.ids.clone()))),
    }
}
