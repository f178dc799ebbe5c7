//! Fusion: a second series of the same head (same patient and frame of reference) shown over
//! the one on screen, resampled onto its grid in patient coordinates once when chosen, then
//! drawn by the slice pipeline's heatmap layer with its own window, colour map and opacity
//! (e.g. T2 over T1, PET over CT).

use crate::ui::panels::Panel;
use std::sync::Arc;

use eframe::egui;

use crate::ui::job::{Job, Outcome, Reporter};
use crate::ui::{Command, Edit, FocalApp, Fusion};
use crate::render::{AttentionStyle, Colormap};
use crate::study::{self, Progress};

/// A fused series being loaded and resampled on its own thread.
pub struct FusionJob {
    pub series: String,
    job: Job<Result<Fusion, String>>,
}

/// The other series of the open study, as (UID, "#n description"), that could be combined with
/// or fused over the one on screen.
pub fn other_series(app: &FocalApp) -> Vec<(String, String)> {
    let (Some(set), Some(current)) = (app.doc.studies(), app.doc.current()) else {
        return Vec::new();
    };
    let study = current.stack.slices.first().map(|s| s.instance.study_uid.clone());
    set.patients
        .iter()
        .flat_map(|p| &p.studies)
        .filter(|s| Some(&s.uid) == study.as_ref())
        .flat_map(|s| &s.series)
        .filter(|s| s.uid != current.uid && s.stacks.iter().any(|st| st.slices.len() > 1))
        .map(|s| {
            let name = format!(
                "{} {}",
                s.number.map(|n| format!("#{n}")).unwrap_or_default(),
                s.description.clone().unwrap_or_else(|| "(no description)".into())
            );
            (s.uid.clone(), name.trim().to_string())
        })
        .collect()
}

impl FocalApp {
    /// Loads `series` and resamples it onto the series on screen, on a thread; refused with a
    /// message when it is another patient, frame of reference or place.
    pub fn start_fusion(&mut self, series: &str) {
        let (Some(set), Some(current)) = (self.doc.studies().cloned(), self.doc.current()) else {
            return;
        };
        let Some(primary) = current.volume.clone() else {
            self.notice("Wait for the series to load before fusing another over it");
            return;
        };
        let (primary_stack, onto) = (current.stack.clone(), current.uid.clone());
        let label = other_series(self)
            .into_iter()
            .find(|(u, _)| u == series)
            .map_or_else(|| series.to_string(), |(_, l)| l);
        let uid = series.to_string();
        let job = Job::spawn(None, move |r: &Reporter<Result<Fusion, String>>| {
            let result = (|| -> Result<Fusion, String> {
                let s = set.find_series(&uid).ok_or("the series is no longer open")?;
                let stack = s.largest_stack().map(|(_, st)| st).ok_or("the series has no images")?;
                study::pairing::check_same_head(&primary_stack, stack, &uid).map_err(|e| e.to_string())?;
                let raw = study::load_volume(stack, &|p: Progress| r.progress(p.done, Some(p.total)), r.cancelled())
                    .map_err(|e| study::error_chain(&e))?;
                let window = raw.window;
                let (volume, coverage) = study::pairing::resample_onto(&primary, &raw, &uid).map_err(|e| e.to_string())?;
                Ok(Fusion {
                    onto,
                    series: uid,
                    label,
                    volume: Arc::new(volume),
                    coverage,
                    window,
                    colormap: Colormap::Inferno,
                    opacity: 0.5,
                })
            })();
            r.send(result);
        });
        self.fusion_job = Some(FusionJob {
            series: series.to_string(),
            job,
        });
    }

    /// Takes in a finished fusion load; it is shown at once.
    pub(in crate::ui) fn poll_fusion(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.fusion_job else { return };
        match job.job.outcome() {
            Outcome::Running => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
            Outcome::Done(Ok(f)) => {
                self.notice(format!("Fused {} over the series ({:.0}% covered)", f.label, f.coverage * 100.0));
                self.fusion_job = None;
                self.edit(Edit::Fused(Box::new(f)));
            }
            Outcome::Done(Err(e)) => {
                self.notice(format!("Cannot fuse that series: {e}"));
                self.fusion_job = None;
            }
            Outcome::Ended => self.fusion_job = None,
        }
    }
}

/// The fused series' display as a heatmap style: its window's range, transparent below it.
pub fn fusion_style(f: &Fusion) -> AttentionStyle {
    let lo = (f.window.center - f.window.width / 2.0) as f32;
    let hi = (f.window.center + f.window.width / 2.0) as f32;
    AttentionStyle {
        colormap: f.colormap,
        opacity: f.opacity,
        threshold: lo,
        range: [lo, hi.max(lo + 1e-3)],
        inside_labels: false,
    }
}

/// The fusion controls of the Overlays panel.
pub fn fusion_controls(p: &mut Panel, ui: &mut egui::Ui) {
    let candidates = other_series(p.app);
    // A map another tool wrote (a Parametric Map) is fused too, without a series to choose.
    let map = p.app.doc.current_fusion().filter(|f| !candidates.iter().any(|(u, _)| *u == f.series)).map(|f| f.label.clone());
    if candidates.is_empty() && map.is_none() {
        return;
    }
    ui.add_space(6.0);
    let shown = p.app.doc.current_fusion().map(|f| f.series.clone());
    let busy = p.app.fusion_job.as_ref().map(|j| j.series.clone());
    ui.horizontal(|ui| {
        ui.label("Fuse");
        let text = match (&busy, &shown) {
            (Some(_), _) => "loading…".to_string(),
            (None, Some(uid)) => candidates.iter().find(|(u, _)| u == uid).map_or_else(|| map.clone().unwrap_or_else(|| "?".into()), |c| c.1.clone()),
            (None, None) => "none".to_string(),
        };
        let mut chosen = None;
        egui::ComboBox::from_id_salt("fuse")
            .selected_text(text)
            .show_ui(ui, |ui| {
                if ui.selectable_label(shown.is_none(), "none").clicked() {
                    chosen = Some(None);
                }
                for (uid, name) in &candidates {
                    if ui.selectable_label(shown.as_ref() == Some(uid), name).clicked() {
                        chosen = Some(Some(uid.clone()));
                    }
                }
            });
        match chosen {
            Some(None) => p.edit(Edit::Unfuse),
            Some(Some(uid)) if busy.is_none() => p.push(Command::Fuse(uid)),
            _ => {}
        }
    })
    .response
    .on_hover_text("Show another series of this head over this one (resampled in patient coordinates)");
    let Some(f) = p.app.doc.fusion().filter(|f| shown.as_ref() == Some(&f.series)) else { return };
    let (mut window, mut colormap, mut opacity) = (f.window, f.colormap, f.opacity);
    ui.horizontal(|ui| {
        // Maps other tools wrote may span a fraction of a unit (mm²/s, ratios).
        let speed = window.width.max(1e-6) * 0.01;
        ui.label("W");
        ui.add(egui::DragValue::new(&mut window.width).speed(speed).range(1e-6..=f64::MAX));
        ui.label("L");
        ui.add(egui::DragValue::new(&mut window.center).speed(speed));
        egui::ComboBox::from_id_salt("fuse_colormap")
            .selected_text(colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut colormap, c, c.name());
                }
            });
    });
    ui.add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("Fusion opacity"));
    if (window, colormap, opacity) != (f.window, f.colormap, f.opacity) {
        p.edit(Edit::FusionStyle {
            window,
            colormap,
            opacity,
        });
    }
}
