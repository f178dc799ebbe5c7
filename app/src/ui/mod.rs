//! The window: study browser, slice view with GPU overlays, model panel, tag inspector.
//!
//! Panels draw from `FocalApp`'s state and push `Command`s; `FocalApp::apply` is the one place
//! that starts loading or analysis. Long work runs on threads (`loader`, `AnalysisJob`).

mod browser;
pub mod insights;
mod loader;
mod model_panel;
mod overlays;
pub mod presets;
pub mod review;
mod slice_view;
mod tags;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;
use serde::{Deserialize, Serialize};

use crate::inference::{AnalysisJob, Device, Manifest};
use crate::render::{AttentionStyle, Colormap, MaskMode, SlicePixels};
use crate::study::{Progress, Stack, StudySet, Volume};
use loader::{LoadEvent, Task};

pub use insights::Heatmap;
pub use review::{AnalysisView, Tool};
pub use slice_view::ViewState;

/// What the window remembers between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent: Vec<PathBuf>,
    pub show_attention: bool,
    pub attention: AttentionStyle,
    pub show_mask: bool,
    pub mask_mode: MaskMode,
    /// Label values whose mask is hidden.
    pub hidden_labels: Vec<u8>,
    pub fill_opacity: f32,
    pub outline_width: u32,
    pub cine_fps: f32,
    pub device: Device,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recent: Vec::new(),
            show_attention: true,
            attention: AttentionStyle {
                colormap: Colormap::Inferno,
                opacity: 0.5,
                // Below the display range: the range's start is used (see FocalApp::new).
                threshold: 0.0,
                range: [0.0, 1.0],
            },
            show_mask: true,
            mask_mode: MaskMode::Outline,
            hidden_labels: Vec::new(),
            fill_opacity: 0.35,
            outline_width: 1,
            cine_fps: 10.0,
            device: Device::Auto,
        }
    }
}

const SETTINGS_KEY: &str = "focal-settings";
const MAX_RECENT: usize = 8;

/// What panels ask the app to do.
#[derive(Debug, Clone)]
pub enum Command {
    Open(Vec<PathBuf>),
    LoadSeries {
        series: String,
        stack: usize,
    },
    RunAnalysis,
    CancelAnalysis,
    /// Compute the occlusion evidence map of the slice on screen.
    ComputeEvidence,
    CancelEvidence,
    /// Export the report and DICOM objects of the current analysis (asks for a folder).
    Export,
}

/// The series on screen.
pub struct CurrentSeries {
    pub uid: String,
    pub label: String,
    pub modality: Option<String>,
    pub stack: Stack,
    /// Which stack of the series (a series can hold several orientations or sizes).
    pub stack_index: usize,
    pub volume: Option<Arc<Volume>>,
    /// A slice decoded ahead of the volume: (index, values, channels).
    pub early: Option<(usize, Vec<f32>, usize)>,
    pub progress: Option<Progress>,
    pub error: Option<String>,
}

pub struct RunningAnalysis {
    pub series: String,
    pub study_uid: String,
    /// The volume being analysed (the reader may open another series meanwhile).
    pub volume: Arc<Volume>,
    pub job: AnalysisJob,
}

pub struct FocalApp {
    pub settings: Settings,
    pub studies: Option<Arc<StudySet>>,
    pub scan: Option<Task>,
    pub scan_progress: Option<Progress>,
    pub load: Option<Task>,
    pub current: Option<CurrentSeries>,
    pub view: ViewState,
    pub analysis: Option<AnalysisView>,
    pub running: Option<RunningAnalysis>,
    /// Where analyses and reviews made in the window are kept (one folder per series).
    pub analysis_root: PathBuf,
    /// The paths the study was opened from (exports must not land inside them).
    pub opened: Vec<PathBuf>,
    export: Option<std::sync::mpsc::Receiver<Result<crate::report::ExportSummary, String>>>,
    pub manifest: Result<Manifest, String>,
    pub notices: Vec<String>,
    pub thumbnails: HashMap<String, egui::TextureHandle>,
    pub show_tags: bool,
    /// The right panel shows the review instead of overlays and model.
    pub review_tab: bool,
    /// Start the analysis once the next series has loaded (`focal view --analyze`).
    pub analyze_when_loaded: bool,
    tag_cache: Option<(PathBuf, Result<Vec<crate::study::tags::TagRow>, String>)>,
    tag_filter: String,
    pixels: Option<(PixelsKey, Arc<SlicePixels>)>,
    commands: Vec<Command>,
    /// Another series of the study to put in the model's second modality slot.
    pub combine_with: Option<String>,
    pub heatmap: insights::Heatmap,
    /// The label whose region evidence maps explain (None: every label).
    pub evidence_label: Option<u8>,
    evidence: Option<insights::EvidenceJob>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PixelsKey {
    series: String,
    slice: usize,
    full_volume: bool,
    /// Edits of the analysis on screen (None: no analysis).
    analysis: Option<u64>,
    heat: (insights::Heatmap, usize),
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

/// `$FOCAL_DATA_DIR`, else `$XDG_DATA_HOME/focal/analyses`, else `~/.local/share/focal/analyses`.
pub fn default_analysis_root() -> PathBuf {
    if let Some(d) = std::env::var_os("FOCAL_DATA_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("focal").join("analyses")
}

/// The folder for one series' analysis: named by a hash of its UID (no identifiers in paths).
pub fn analysis_dir(root: &std::path::Path, series_uid: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(series_uid.as_bytes());
    let name = crate::inference::manifest::hex(&digest[..8]);
    root.join(name)
}

impl FocalApp {
    /// A window with `settings`, opening `paths` if any.
    pub fn new(ctx: &egui::Context, settings: Settings, paths: Vec<PathBuf>) -> FocalApp {
        let manifest = Manifest::load(&crate::inference::manifest::default_manifest_path())
            .map_err(|e| crate::study::error_chain(&e));
        let mut app = FocalApp {
            settings,
            studies: None,
            scan: None,
            scan_progress: None,
            load: None,
            current: None,
            view: ViewState::default(),
            analysis: None,
            running: None,
            analysis_root: default_analysis_root(),
            opened: Vec::new(),
            export: None,
            manifest,
            notices: Vec::new(),
            thumbnails: HashMap::new(),
            show_tags: false,
            review_tab: false,
            analyze_when_loaded: false,
            tag_cache: None,
            tag_filter: String::new(),
            pixels: None,
            commands: Vec::new(),
            combine_with: None,
            heatmap: insights::Heatmap::default(),
            evidence_label: None,
            evidence: None,
        };
        if let Ok(m) = &app.manifest {
            let [lo, hi] = m.attention_display_range();
            app.settings.attention.range = [lo, hi];
            // A threshold saved for another model may lie outside this one's range.
            app.settings.attention.threshold = app.settings.attention.threshold.clamp(lo, hi);
        }
        if !paths.is_empty() {
            app.apply(ctx, Command::Open(paths));
        }
        app
    }

    fn notice(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!("{text}");
        self.notices.push(text);
        if self.notices.len() > 20 {
            self.notices.remove(0);
        }
    }

    /// Queues a command for the end of the frame (what panels do).
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    pub fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::Open(paths) => {
                for p in paths.iter().rev() {
                    self.settings.recent.retain(|r| r != p);
                    self.settings.recent.insert(0, p.clone());
                }
                self.settings.recent.truncate(MAX_RECENT);
                self.opened = paths.clone();
                self.studies = None;
                self.current = None;
                self.analysis = None;
                self.running = None;
                self.load = None;
                self.pixels = None;
                self.thumbnails.clear();
                self.scan_progress = None;
                self.scan = Some(loader::scan(ctx, paths));
            }
            Command::LoadSeries { series, stack } => self.load_series(ctx, &series, stack),
            Command::RunAnalysis => self.run_analysis(),
            Command::CancelAnalysis => {
                if let Some(r) = &self.running {
                    r.job.cancel();
                }
            }
            Command::Export => self.start_export(),
            Command::ComputeEvidence => self.start_evidence(),
            Command::CancelEvidence => self.cancel_evidence(),
        }
    }

    fn load_series(&mut self, ctx: &egui::Context, uid: &str, stack_index: usize) {
        let Some(set) = &self.studies else { return };
        let Some(series) = set.find_series(uid) else { return };
        let Some(stack) = series.stacks.get(stack_index).cloned() else {
            return;
        };
        let first = stack.slices.len() / 2;
        let label = format!(
            "{} {}",
            series.number.map(|n| format!("#{n}")).unwrap_or_default(),
            series.description.clone().unwrap_or_else(|| "(no description)".into())
        );
        let saved = analysis_dir(&self.analysis_root, uid);
        self.load = Some(loader::load_series(ctx, uid.to_string(), stack.clone(), first, saved));
        self.view = ViewState::for_stack(&stack, first);
        self.current = Some(CurrentSeries {
            uid: uid.to_string(),
            label: label.trim().to_string(),
            modality: series.modality.clone(),
            stack,
            stack_index,
            volume: None,
            early: None,
            progress: None,
            error: None,
        });
        if self.analysis.as_ref().is_some_and(|a| a.series != uid) {
            self.analysis = None;
        }
        self.pixels = None;
        self.tag_cache = None;
    }

    fn run_analysis(&mut self) {
        if self.running.is_some() {
            return;
        }
        let Some(current) = &self.current else { return };
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
        let study_uid = current
            .stack
            .slices
            .first()
            .map_or(String::new(), |s| s.instance.study_uid.clone());
        let Some(set) = self.studies.clone() else { return };
        let others: Vec<String> = self.combine_with.iter().cloned().collect();
        let (uid, stack, primary, m) = (current.uid.clone(), current.stack.clone(), volume.clone(), manifest.clone());
        let total = volume.slices;
        let job = AnalysisJob::open_prepare_and_spawn(manifest, self.settings.device, total, move || {
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
            study_uid,
            volume,
            job,
        });
    }

    /// Takes in what background tasks produced since the last frame.
    fn poll_tasks(&mut self, ctx: &egui::Context) {
        self.poll_evidence(ctx);
        let mut events = drain(&mut self.scan);
        events.extend(drain(&mut self.load));
        for e in events {
            self.on_event(ctx, e);
        }
        if let Some(rx) = &self.export {
            match rx.try_recv() {
                Ok(result) => {
                    self.export = None;
                    match result {
                        Ok(s) => self.notice(format!("exported {} files (de-identified)", s.files.len())),
                        Err(e) => self.notice(format!("export failed: {e}")),
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    ctx.request_repaint_after(std::time::Duration::from_millis(200))
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.export = None,
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
                        self.adopt_analysis(r.series, r.study_uid, r.volume, analysis, engine);
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
                // Open the largest stack, as a reader would first look at the main series.
                let largest = set
                    .series()
                    .flat_map(|s| {
                        s.stacks
                            .iter()
                            .enumerate()
                            .map(move |(i, st)| (s.uid.clone(), i, st.slices.len()))
                    })
                    .max_by_key(|(_, _, n)| *n);
                self.studies = Some(set);
                if let Some((uid, stack, _)) = largest {
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
                if let Some(c) = self.current.as_mut().filter(|c| c.uid == series) {
                    if self.view.window_from_volume {
                        self.view.window = crate::study::volume::percentile_window(&values, channels);
                        self.view.preset = Some(presets::AUTO);
                    }
                    c.early = Some((index, values, channels));
                }
            }
            LoadEvent::VolumeProgress(p) => {
                if let Some(c) = self.current.as_mut() {
                    c.progress = Some(p);
                }
            }
            LoadEvent::SavedAnalysis { series, output } => match *output {
                Ok(mut o) if self.analysis.as_ref().is_none_or(|a| a.series != series) => {
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
                    view.remeasure(&self.label_names());
                    self.notice("restored the saved analysis and review of this series");
                    self.analysis = Some(view);
                    self.pixels = None;
                }
                Ok(_) => {}
                Err(e) => self.notice(format!("a saved analysis of this series could not be read: {e}")),
            },
            LoadEvent::Volume { series, result } => {
                let Some(c) = self.current.as_mut().filter(|c| c.uid == series) else {
                    return;
                };
                c.progress = None;
                match result {
                    Ok(volume) => {
                        let skipped = volume.skipped.len();
                        if self.view.window_from_volume {
                            self.view.window = volume.window;
                            self.view.preset = Some(presets::AUTO);
                        }
                        self.view.invert = volume.inverted;
                        c.volume = Some(volume);
                        c.early = None;
                        self.pixels = None;
                        if skipped > 0 {
                            self.notice(format!("{skipped} slice(s) could not be decoded and show as blank"));
                        }
                        if std::mem::take(&mut self.analyze_when_loaded) {
                            self.run_analysis();
                        }
                    }
                    Err(e) => {
                        c.error = Some(e.clone());
                        self.notice(format!("the series could not be loaded: {e}"));
                    }
                }
            }
        }
    }

    /// Index and name of each label of the model.
    pub fn label_names(&self) -> Vec<(u8, String)> {
        self.manifest
            .as_ref()
            .map(|m| m.labels.iter().map(|l| (l.index, l.name.clone())).collect())
            .unwrap_or_default()
    }

    /// Volume of one voxel of the current series in mL.
    fn voxel_ml(&self) -> f64 {
        self.current
            .as_ref()
            .and_then(|c| c.stack.geometry.as_ref())
            .map_or(0.001, |g| g.spacing.iter().product::<f64>() / 1000.0)
    }

    /// Forces the slice's pixels to be rebuilt (after an edit).
    pub fn pixels_dirty(&mut self) {
        self.pixels = None;
    }

    /// Shows a finished analysis and saves it (maps, summary) beside future reviews.
    fn adopt_analysis(
        &mut self,
        series: String,
        study_uid: String,
        volume: Arc<Volume>,
        analysis: crate::inference::Analysis,
        engine: crate::inference::Engine,
    ) {
        let dir = analysis_dir(&self.analysis_root, &series);
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
        view.timing = Some(format!(
            "{} slices in {:.1} s ({:.1} slices/s)",
            analysis.slices, s.seconds_total, s.slices_per_second
        ));
        view.extras = insights::extras_from_analysis(&analysis, engine.slots());
        view.remeasure(&self.label_names());
        self.analysis = Some(view);
        self.pixels = None;
        std::thread::spawn(move || {
            let timings = crate::inference::output::Timings {
                scan: 0.0,
                load_volume: 0.0,
                load_model: 0.0,
                inference_total: analysis.summary.seconds_total,
                model_only: analysis.summary.seconds_model,
                faithfulness: analysis.summary.seconds_faithfulness,
                slices_per_second: analysis.summary.slices_per_second,
            };
            // A new model run starts a new review: the old corrections were of other labels.
            let _ = std::fs::remove_file(dir.join(crate::report::review::REVIEWED_LABELS_FILE));
            let _ = std::fs::remove_file(dir.join(crate::report::review::REVIEW_FILE));
            if let Err(e) = crate::inference::output::write_analysis_folder(
                &dir, &volume, &analysis, &engine, &series, &study_uid, timings,
            ) {
                tracing::error!("the analysis could not be saved: {e}");
            }
        });
    }

    fn start_export(&mut self) {
        if self.export.is_some() {
            return;
        }
        let (Some(a), Some(set), Ok(manifest)) = (self.current_analysis(), self.studies.clone(), self.manifest.clone())
        else {
            self.notice("nothing to export: run or restore an analysis first");
            return;
        };
        let Some(out) = rfd::FileDialog::new()
            .set_title("Export the report into a folder")
            .pick_folder()
        else {
            return;
        };
        if let Err(e) = crate::outdir::ensure_outside_study(&out, &self.opened) {
            self.notice(format!("{e:#}"));
            return;
        }
        let opts = crate::report::ExportOptions {
            analysis: a.dir.clone(),
            out,
            pdf: true,
            seg: true,
            pmap: true,
            sc: true,
            keep_phi: false,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(crate::report::export(&set, &manifest, &opts).map_err(|e| e.to_string()));
        });
        self.export = Some(rx);
        self.notice("exporting…");
    }

    /// The analysis for the series on screen, if any.
    pub fn current_analysis(&self) -> Option<&AnalysisView> {
        let uid = &self.current.as_ref()?.uid;
        self.analysis.as_ref().filter(|a| a.series == *uid)
    }

    /// Pixels of the slice on screen with its overlays (cached until slice or data change).
    fn slice_pixels(&mut self) -> Option<Arc<SlicePixels>> {
        let current = self.current.as_ref()?;
        let slice = self.view.slice;
        let analysis = self.analysis.as_ref().filter(|a| a.series == current.uid);
        let key = PixelsKey {
            series: current.uid.clone(),
            slice,
            full_volume: current.volume.is_some(),
            analysis: analysis.map(|a| a.edits),
            heat: insights::heat_key(self),
        };
        if let Some((k, p)) = &self.pixels
            && *k == key
        {
            return Some(p.clone());
        }
        let (columns, rows) = (current.stack.columns as usize, current.stack.rows as usize);
        let (image, channels) = match (&current.volume, &current.early) {
            (Some(v), _) => (v.slice(slice)?.to_vec(), v.channels),
            (None, Some((i, values, c))) if *i == slice => (values.clone(), *c),
            _ => return None,
        };
        let n = columns * rows;
        let (attention, labels) = match analysis {
            Some(a) if a.columns == columns && a.rows == rows && slice < a.slices => (
                insights::heat_plane(self, slice, n),
                a.labels.get(slice * n..(slice + 1) * n).map(<[u8]>::to_vec),
            ),
            _ => (None, None),
        };
        let pixels = Arc::new(SlicePixels::new(columns, rows, channels, image, attention, labels)?);
        self.pixels = Some((key, pixels.clone()));
        Some(pixels)
    }

    /// The whole window, as eframe and the kittest harness call it each frame.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_tasks(&ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            self.commands.push(Command::Open(dropped));
        }

        egui::Panel::top("toolbar").show(ui, |ui| browser::toolbar(self, ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("browser")
            .default_size(260.0)
            .resizable(true)
            .show(ui, |ui| browser::browser(self, ui));
        egui::Panel::right("model")
            .default_size(300.0)
            .resizable(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.review_tab, false, "Analysis");
                    ui.selectable_value(&mut self.review_tab, true, "Review");
                });
                ui.separator();
                egui::ScrollArea::vertical().show(ui, |ui| {
                    if self.review_tab {
                        review::review_panel(self, ui);
                    } else {
                        overlays::overlay_panel(self, ui);
                        ui.separator();
                        model_panel::model_panel(self, ui);
                    }
                });
            });
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(egui::Color32::BLACK))
            .show(ui, |ui| {
                let pixels = self.slice_pixels();
                slice_view::slice_view(self, ui, pixels);
            });
        if self.show_tags {
            tags::tag_window(self, &ctx);
        }
        for command in std::mem::take(&mut self.commands) {
            self.apply(&ctx, command);
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(p) = self.scan_progress.filter(|_| self.scan.is_some()) {
                ui.label(format!("Scanning {}/{} files", p.done, p.total));
                ui.add(egui::ProgressBar::new(p.done as f32 / p.total.max(1) as f32).desired_width(160.0));
            }
            if let Some(p) = self.current.as_ref().and_then(|c| c.progress) {
                ui.label(format!("Loading {}/{} slices", p.done, p.total));
                ui.add(egui::ProgressBar::new(p.done as f32 / p.total.max(1) as f32).desired_width(160.0));
            }
            if let Some(last) = self.notices.last() {
                ui.label(egui::RichText::new(last).weak())
                    .on_hover_text(self.notices.join("\n"));
            }
        });
    }
}

impl eframe::App for FocalApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

/// Opens the window (on `paths`, if any) and returns when it is closed.
pub fn run(paths: Vec<PathBuf>, analyze: bool) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Focal")
            .with_inner_size([1280.0, 820.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "focal",
        options,
        Box::new(move |cc| {
            let Some(render_state) = cc.wgpu_render_state.as_ref() else {
                return Err("the window has no wgpu renderer".into());
            };
            crate::render::register(render_state);
            let settings = cc
                .storage
                .and_then(|s| eframe::get_value::<Settings>(s, SETTINGS_KEY))
                .unwrap_or_default();
            let mut app = FocalApp::new(&cc.egui_ctx, settings, paths);
            app.analyze_when_loaded = analyze;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not start: {e}"))
}
