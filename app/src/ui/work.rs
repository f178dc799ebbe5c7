//! Background work the window starts and takes in: scanning and loading (`loader`), the model
//! run, saving its folder, and exports. Started by `FocalApp::apply`, polled once a frame.

use std::sync::Arc;

use eframe::egui;

use super::job::{Job, Outcome, Reporter};
use super::loader::{LoadEvent, Task};
use super::analysis_dir;
use super::{AnalysisView, Edit, FocalApp, insights};
use crate::inference::AnalysisJob;
use crate::study::Volume;

pub struct RunningAnalysis {
    pub series: String,
    /// What summary.json will say was analysed.
    pub source: crate::inference::output::Source,
    /// The volume being analysed (the reader may open another series meanwhile).
    pub volume: Arc<Volume>,
    pub job: AnalysisJob,
}

/// Events a task produced since the last frame; the task is dropped once it has ended.
fn drain(task: &mut Option<Task>) -> Vec<LoadEvent> {
    let Some(t) = task else { return Vec::new() };
    let (events, finished) = t.poll();
    if finished {
        *task = None;
    }
    events
}

impl FocalApp {
    pub(super) fn run_analysis(&mut self) {
        if self.running.is_some() {
            return;
        }
        if let Err(e) = &self.analysis_root {
            let e = e.clone();
            self.notice(format!("the model does not run: {e} (to keep its results and the review)"));
            return;
        }
        let Some(current) = self.doc.current() else { return };
        let Some(volume) = current.volume.clone() else {
            self.notice("the series is still loading; analysis starts once it has loaded");
            return;
        };
        let manifest = match &self.manifest {
            Ok(m) => m.clone(),
            Err(e) => {
                let e = e.clone();
                self.notice(format!("no model to run: {e}"));
                return;
            }
        };
        let Some(set) = self.doc.studies().cloned() else { return };
        let source = match set.find_series(&current.uid) {
            Some(series) => crate::inference::output::Source::of(series, &current.stack, "shown in the window"),
            None => return,
        };
        let others: Vec<String> = self.doc.combine_with().into_iter().cloned().collect();
        let (uid, stack, primary, m) = (
            current.uid.clone(),
            current.stack.clone(),
            volume.clone(),
            manifest.clone(),
        );
        let total = volume.slices;
        let job = AnalysisJob::open_prepare_and_spawn(manifest, self.doc.settings().device, total, move || {
            crate::inference::inputs::paired_volumes(
                &m,
                &set,
                &uid,
                &stack,
                primary,
                &others,
                &std::sync::atomic::AtomicBool::new(false),
            )
        });
        self.running = Some(RunningAnalysis {
            series: current.uid.clone(),
            source,
            volume,
            job,
        });
    }

    /// Takes in what background tasks produced since the last frame.
    pub(super) fn poll_tasks(&mut self, ctx: &egui::Context) {
        self.poll_evidence(ctx);
        self.poll_fusion(ctx);
        self.poll_object(ctx);
        self.poll_comparison(ctx);
        let mut events = drain(&mut self.scan);
        events.extend(drain(&mut self.load));
        for e in events {
            self.on_event(ctx, e);
        }
        if let Some(job) = &self.export {
            match job.outcome() {
                Outcome::Running => ctx.request_repaint_after(std::time::Duration::from_millis(200)),
                Outcome::Done(result) => {
                    self.export = None;
                    match result {
                        Ok(s) => self.notice(format!("exported {} files (de-identified)", s.files.len())),
                        Err(e) => self.notice(format!("export failed: {e}")),
                    }
                }
                Outcome::Ended => self.export = None,
            }
        }
        if self.running.as_ref().is_some_and(|r| r.job.is_finished()) {
            if let Some(r) = self.running.take() {
                let (engine, result) = r.job.join();
                match (engine, result) {
                    (Some(engine), Ok(analysis)) => {
                        self.notice(format!(
                            "analysis finished in {:.1} s on {}",
                            analysis.summary.seconds_total, engine.provider.name
                        ));
                        self.adopt_analysis(r.series, r.source, r.volume, analysis, engine);
                    }
                    (_, Err(e)) => self.notice(format!("analysis failed: {}", crate::study::error_chain(&e))),
                    (None, Ok(_)) => {}
                }
            }
        } else if self.running.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    fn on_event(&mut self, ctx: &egui::Context, event: LoadEvent) {
        match event {
            LoadEvent::ScanProgress(p) => self.scan_progress = Some(p),
            LoadEvent::Scanned(Err(e)) => self.notice(format!("could not open the study: {e}")),
            LoadEvent::Scanned(Ok(set)) => {
                let images: usize = set.series().flat_map(|s| &s.stacks).map(|s| s.slices.len()).sum();
                self.notice(format!(
                    "found {} series, {images} images; {} unreadable file(s)",
                    set.series().count(),
                    set.unreadable.len()
                ));
                // Open the series an analysis would run on (the largest stack of greyscale
                // images the model takes), else the largest stack: the main series.
                let modalities = self.manifest.as_ref().map(|m| m.input.modalities.clone()).unwrap_or_default();
                let first = match set.choose_series(None, &modalities) {
                    Ok(c) => Some((c.series.uid.clone(), c.stack_index)),
                    Err(_) => set.largest_stack().map(|(s, i, _)| (s.uid.clone(), i)),
                };
                self.edit(Edit::Scanned(set));
                if let Some((uid, stack)) = first {
                    self.load_series(ctx, &uid, stack);
                }
            }
            LoadEvent::Thumbnail { series, image } => {
                let handle = ctx.load_texture(format!("thumb-{series}"), image, egui::TextureOptions::LINEAR);
                self.thumbnails.insert(series, handle);
            }
            LoadEvent::FirstSlice {
                series,
                index,
                values,
                channels,
            } => {
                self.edit(Edit::FirstSlice {
                    series,
                    slice: (index, values, channels),
                });
            }
            LoadEvent::VolumeProgress(p) => {
                self.edit(Edit::LoadProgress(p));
            }
            LoadEvent::SavedAnalysis { series, output } => match *output {
                Ok(mut o) if self.doc.analysis().is_none_or(|a| a.series != series) => {
                    let voxel_ml = self.voxel_ml();
                    let extras = insights::extras_from_output(&mut o);
                    let mut view = AnalysisView::new(
                        series,
                        o.dir.clone(),
                        o.summary.grid,
                        o.labels,
                        Arc::new(o.attention),
                        (
                            o.summary.provider.name.clone(),
                            o.summary.provider.fallback_reason.clone(),
                        ),
                        o.summary.model.verified_against_manifest,
                        o.summary.labels.iter().map(|l| (l.index, l.mean_probability)).collect(),
                        voxel_ml,
                        o.review,
                    );
                    view.extras = extras;
                    view.made_by = Some(super::state::MadeBy {
                        name: o.summary.model.name.clone(),
                        version: o.summary.model.version.clone(),
                        sha256: o.summary.model.sha256.clone(),
                    });
                    self.notice("restored the saved analysis and review of this series");
                    self.edit(Edit::ShowAnalysis(Box::new(view)));
                }
                Ok(_) => {}
                Err(e) => self.notice(format!("a saved analysis of this series could not be read: {e}")),
            },
            LoadEvent::Volume { series, result } => {
                if self.doc.current().is_none_or(|c| c.uid != series) {
                    return;
                }
                match &result {
                    Ok(volume) if !volume.skipped.is_empty() => self.notice(format!(
                        "{} slice(s) could not be decoded and show as blank",
                        volume.skipped.len()
                    )),
                    Ok(_) => {}
                    Err(e) => self.notice(format!("the series could not be loaded: {e}")),
                }
                let loaded = result.is_ok();
                self.edit(Edit::VolumeLoaded { series, result });
                if loaded {
                    for path in std::mem::take(&mut self.overlays_when_loaded) {
                        self.start_object(crate::ui::objects::ObjectSource::File(path), false);
                    }
                }
                if loaded && std::mem::take(&mut self.analyze_when_loaded) {
                    self.run_analysis();
                }
            }
        }
    }

    /// Shows a finished analysis and saves it (maps, summary) beside future reviews.
    fn adopt_analysis(
        &mut self,
        series: String,
        source: crate::inference::output::Source,
        volume: Arc<Volume>,
        analysis: crate::inference::Analysis,
        engine: crate::inference::Engine,
    ) {
        let Ok(root) = &self.analysis_root else { return };
        let dir = analysis_dir(root, &series);
        let s = &analysis.summary;
        let mut view = AnalysisView::new(
            series.clone(),
            dir.clone(),
            [analysis.columns, analysis.rows, analysis.slices],
            analysis.labels.clone(),
            Arc::new(analysis.attention.clone()),
            (
                engine.provider.name.to_string(),
                engine.provider.fallback_reason.clone(),
            ),
            engine.verified,
            s.labels.iter().map(|l| (l.index, l.mean_probability)).collect(),
            volume
                .geometry
                .as_ref()
                .map_or(0.001, |g| g.spacing.iter().product::<f64>() / 1000.0),
            None,
        );
        view.made_by = Some(super::state::MadeBy {
            name: engine.manifest.name.clone(),
            version: engine.manifest.version.clone(),
            sha256: engine.sha256.clone(),
        });
        view.timing = Some(format!(
            "{} slices in {:.1} s ({:.1} slices/s)",
            analysis.slices, s.seconds_total, s.slices_per_second
        ));
        view.extras = insights::extras_from_analysis(&analysis, engine.slots());
        self.edit(Edit::ShowAnalysis(Box::new(view)));
        std::thread::spawn(move || {
            let timings = crate::inference::output::Timings::of(&analysis, 0.0, 0.0, 0.0);
            // A new model run starts a new review: the old corrections were of other labels.
            let _ = std::fs::remove_file(dir.join(crate::report::review::REVIEWED_LABELS_FILE));
            let _ = std::fs::remove_file(dir.join(crate::report::review::REVIEW_FILE));
            if let Err(e) = crate::inference::output::write_analysis_folder(
                &dir, &volume, &analysis, &engine, &source, timings,
            ) {
                tracing::error!("the analysis could not be saved: {e}");
            }
        });
    }

    pub(super) fn start_export(&mut self) {
        if self.export.is_some() {
            return;
        }
        let (Some(a), Some(set), Ok(manifest)) = (self.doc.current_analysis(), self.doc.studies().cloned(), self.manifest.clone())
        else {
            self.notice("nothing to export: run or restore an analysis first");
            return;
        };
        let analysis = a.dir.clone();
        let Some((out, force)) = self.ask_export_folder() else {
            return;
        };
        let opts = crate::report::ExportOptions {
            analysis,
            out,
            pdf: true,
            seg: true,
            pmap: true,
            sc: true,
            sr: true,
            keep_phi: false,
            force,
            accept_regions: Vec::new(),
        };
        self.export = Some(Job::spawn(None, move |r: &Reporter<_>| {
            r.send(crate::report::export(&set, &manifest, &opts).map_err(|e| e.to_string()))
        }));
        self.notice("exporting…");
    }

    /// The picture report of the series on screen (no analysis: images without a patient
    /// position, which the model cannot analyse).
    pub(super) fn start_picture_export(&mut self) {
        if self.export.is_some() {
            return;
        }
        let (Some(current), Some(set)) = (self.doc.current(), self.doc.studies().cloned()) else {
            self.notice("nothing to export: open a series first");
            return;
        };
        let series = current.uid.clone();
        let Some((out, force)) = self.ask_export_folder() else {
            return;
        };
        let opts = crate::report::PictureOptions {
            out,
            series: Some(series),
            keep_phi: false,
            force,
        };
        self.export = Some(Job::spawn(None, move |r: &Reporter<_>| {
            r.send(crate::report::export_pictures(&set, &opts).map_err(|e| e.to_string()))
        }));
        self.notice("exporting the picture report…");
    }

    /// Asks for the export's folder: outside the study, and where it already holds files, the
    /// reader's yes to replacing those of the same names (then `force`).
    fn ask_export_folder(&mut self) -> Option<(std::path::PathBuf, bool)> {
        let out = rfd::FileDialog::new()
            .set_title("Export the report into a folder")
            .pick_folder()?;
        if let Err(e) = crate::outdir::ensure_outside_study(&out, self.doc.opened()) {
            self.notice(format!("{e:#}"));
            return None;
        }
        let held = crate::report::held_entries(&out).len();
        let force = held > 0;
        if force
            && rfd::MessageDialog::new()
                .set_level(rfd::MessageLevel::Warning)
                .set_title("The folder is not empty")
                .set_description(format!(
                    "{} holds {held} item(s). Export into it anyway, replacing files of the same names?",
                    out.display()
                ))
                .set_buttons(rfd::MessageButtons::YesNo)
                .show()
                != rfd::MessageDialogResult::Yes
        {
            return None;
        }
        Some((out, force))
    }
}
