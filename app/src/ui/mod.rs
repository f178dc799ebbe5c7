//! The window: study browser, slice view with GPU overlays, model panel, tag inspector.
//!
//! Three floors. `state/`: what the window shows, one `Document` (study, series and volume,
//! analysis and review, view and overlay settings) and every type it holds, changed only by
//! `Document::apply` with an `Edit`; no egui widgets. `panels/`: functions that read the document
//! and ask for changes (`Edit`s, applied at once by `FocalApp::edit`) or work (`Command`s,
//! queued to the end of the frame and started by `FocalApp::apply`). `views/`: the slice view
//! with its input and measuring tools, and the reformatted planes. Long work is a `job::Job` on
//! its own thread (scan and load in `loader`, evidence maps, fusion, exports, the PACS window's
//! network work; the model's run is the inference layer's `AnalysisJob`), taken in by `work`,
//! reporting back as `Edit`s. Beside the document the app keeps only work in flight, caches
//! (slice pixels, volume layers, thumbnails, tags) and gestures in progress (`Gesture`).

mod bench;
mod job;
mod loader;
mod panels;
mod state;
mod views;
mod work;

use panels::{browser, insights, model_panel, overlays, pacs_form, tags};
use views::{frame, measure, mpr_layers, slice_input, slice_view};
pub use panels::{fusion, objects, pacs_panel, review};
pub use views::mpr;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use crate::inference::Manifest;
use crate::render::SlicePixels;
use crate::study::Progress;
use loader::Task;
use state::SETTINGS_KEY;

pub use state::{Applied, Document, Edit, ReviewChange, SettingChange, ViewChange};
pub use state::presets;
pub use state::{AnalysisView, CurrentSeries, Extras, Fusion, Heatmap, Layout, Settings, ShownObject, Tool, analysis_dir};
pub use slice_input::Gesture;
pub use state::ViewState;
pub use work::RunningAnalysis;

/// Work panels ask the app to start (threads, dialogs), queued to the end of the frame. Changes
/// of the document are `Edit`s instead, applied at once by `FocalApp::edit` (the rest of the
/// frame draws the new state).
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
    /// Load another series of the study and fuse it over the one on screen.
    Fuse(String),
    /// Read an object another tool wrote (a segmentation, parametric or NIfTI map) and show it
    /// over the series it was made over (an object series) or the one on screen (a file).
    ShowObject(objects::ObjectSource),
    /// Compare an object shown over the series (by its place in the list) with the analysis.
    CompareObject(usize),
    /// Export the report and DICOM objects of the current analysis (asks for a folder).
    Export,
    /// Export a picture report of the series on screen, without an analysis (asks for a folder).
    ExportPictures,
    /// Open (and re-read the nodes) or close the PACS window.
    PacsWindow(bool),
}

/// The window: its document, and the work, caches and gestures around it.
pub struct FocalApp {
    /// What is open and on screen; changed only through `FocalApp::apply` / `edit`.
    pub doc: Document,
    pub scan: Option<Task>,
    pub scan_progress: Option<Progress>,
    pub load: Option<Task>,
    pub running: Option<RunningAnalysis>,
    /// Where analyses and reviews made in the window are kept (one folder per series).
    /// Without one (no home folder, no FOCAL_DATA_DIR), the window does not run the model:
    /// there is nowhere to keep what it makes but the temporary folder.
    pub analysis_root: Result<PathBuf, crate::places::NoPlace>,
    export: Option<job::Job<Result<crate::report::ExportSummary, String>>>,
    pub manifest: Result<Manifest, String>,
    pub notices: Vec<String>,
    pub thumbnails: HashMap<String, egui::TextureHandle>,
    /// Start the analysis once the next series has loaded (`focal view --analyze`).
    pub analyze_when_loaded: bool,
    /// Files to show over the series once it has loaded (`focal view --overlay`).
    pub overlays_when_loaded: Vec<PathBuf>,
    tags: tags::TagInspector,
    pixels: Option<(PixelsKey, Arc<SlicePixels>)>,
    commands: Vec<Command>,
    evidence: Option<insights::EvidenceJob>,
    /// The PACS window (nodes, query, retrieve).
    pub pacs: pacs_panel::PacsPanel,
    /// A series being loaded to fuse over the one on screen.
    fusion_job: Option<fusion::FusionJob>,
    /// An object another tool wrote being read and placed onto the series on screen.
    object_jobs: Vec<objects::ObjectJob>,
    /// An object series to show once the series it was made over is on screen.
    pending_object: Option<objects::ObjectSource>,
    /// The analysis's labels and the shown objects' segments as one drawn map.
    object_labels: Option<objects::ObjectLabels>,
    /// An object being compared with the analysis, and the last comparison (by the object's file).
    compare_job: Option<objects::CompareJob>,
    pub object_comparison: Option<(PathBuf, objects::Comparison)>,
    /// The series on screen as GPU volume layers, for the reformatted views.
    mpr: mpr_layers::MprCache,
    /// Where the last frame drew each reformatted view (empty in 1×1).
    pub mpr_views: Vec<(egui::Rect, mpr::ViewKind)>,
    /// What the mouse is in the middle of (wheel remainder, cine clock, a shape being drawn).
    pub gesture: Gesture,
    /// `focal view --bench-frames`: the window times its own frames.
    frame_bench: Option<bench::FrameBench>,
    /// Physical pixels per point in the last frame.
    pixels_per_point: f32,
}

/// Shows a widget over a copy of `value`; the new value when the reader changed it (panels
/// turn it into an `Edit`).
pub(crate) fn edited<T: Clone + PartialEq>(value: &T, show: impl FnOnce(&mut T)) -> Option<T> {
    let mut v = value.clone();
    show(&mut v);
    (v != *value).then_some(v)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PixelsKey {
    series: String,
    slice: usize,
    full_volume: bool,
    /// Edits of the analysis on screen (None: no analysis).
    analysis: Option<u64>,
    heat: (Heatmap, usize),
    /// What the objects shown over the series last changed.
    objects: u64,
}

impl FocalApp {
    /// A window with `settings`, opening `paths` if any.
    pub fn new(ctx: &egui::Context, settings: Settings, paths: Vec<PathBuf>) -> FocalApp {
        let manifest = Manifest::load(&crate::inference::manifest::default_manifest_path())
            .map_err(|e| crate::study::error_chain(&e));
        let names = manifest
            .as_ref()
            .map(|m| m.labels.iter().map(|l| (l.index, l.name.clone())).collect())
            .unwrap_or_default();
        let mut doc = Document::new(settings, names);
        if let Ok(m) = &manifest {
            doc.set_attention_range(m.attention_display_range());
        }
        let mut app = FocalApp {
            doc,
            scan: None,
            scan_progress: None,
            load: None,
            running: None,
            analysis_root: crate::places::analyses_dir(),
            export: None,
            manifest,
            notices: Vec::new(),
            thumbnails: HashMap::new(),
            analyze_when_loaded: false,
            tags: tags::TagInspector::default(),
            pixels: None,
            commands: Vec::new(),
            evidence: None,
            pacs: pacs_panel::PacsPanel::new(
                crate::pacs::nodes::config_path().map_err(|e| e.to_string()),
                crate::pacs::default_cache().map_err(|e| e.to_string()),
            ),
            fusion_job: None,
            object_jobs: Vec::new(),
            overlays_when_loaded: Vec::new(),
            pending_object: None,
            object_labels: None,
            compare_job: None,
            object_comparison: None,
            mpr: mpr_layers::MprCache::default(),
            mpr_views: Vec::new(),
            gesture: Gesture::default(),
            frame_bench: None,
            pixels_per_point: 1.0,
        };
        if !paths.is_empty() {
            app.apply(ctx, Command::Open(paths));
        }
        app
    }

    /// A notice naming files or series descriptions (which may hold patient names): shown in
    /// the window, logged only at debug level.
    fn notice_named(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::debug!("{text}");
        self.keep_notice(text);
    }

    fn notice(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!("{text}");
        self.keep_notice(text);
    }

    /// The last 20 notices are shown.
    fn keep_notice(&mut self, text: String) {
        self.notices.push(text);
        if self.notices.len() > 20 {
            self.notices.remove(0);
        }
    }

    /// Queues a command for the end of the frame (what panels do for work).
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Changes the document now, and drops what the change made stale.
    pub fn edit(&mut self, edit: impl Into<Edit>) {
        let applied = self.doc.apply(edit.into());
        if applied.pixels {
            self.pixels = None;
        }
        if applied.tags {
            self.tags = tags::TagInspector::default();
        }
    }

    /// The one place where panels' commands take effect.
    pub fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::Open(paths) => {
                self.load = None;
                self.running = None;
                self.fusion_job = None;
                self.thumbnails.clear();
                self.scan_progress = None;
                self.scan = Some(loader::scan(ctx, paths.clone()));
                self.edit(Edit::Opened(paths));
            }
            Command::LoadSeries { series, stack } => self.load_series(ctx, &series, stack),
            Command::RunAnalysis => self.run_analysis(),
            Command::PacsWindow(open) => {
                self.pacs.open = open;
                if open {
                    self.pacs.reload();
                }
                ctx.request_repaint();
            }
            Command::CancelAnalysis => {
                if let Some(r) = &self.running {
                    r.job.cancel();
                }
            }
            Command::Export => self.start_export(),
            Command::ExportPictures => self.start_picture_export(),
            Command::ComputeEvidence => self.start_evidence(),
            Command::CancelEvidence => self.cancel_evidence(),
            Command::Fuse(series) => self.start_fusion(&series),
            Command::ShowObject(source) => self.start_object(source, true),
            Command::CompareObject(i) => self.start_comparison(i),
        }
        ctx.request_repaint();
    }

    fn load_series(&mut self, ctx: &egui::Context, uid: &str, stack_index: usize) {
        let Some(set) = self.doc.studies() else { return };
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
        let modality = series.modality.clone();
        let saved = self.analysis_root.as_ref().ok().map(|root| analysis_dir(root, uid));
        self.load = Some(loader::load_series(ctx, uid.to_string(), stack.clone(), first, saved));
        let series = Box::new(CurrentSeries {
            uid: uid.to_string(),
            label: label.trim().to_string(),
            modality,
            stack,
            stack_index,
            volume: None,
            early: None,
            progress: None,
            error: None,
        });
        self.edit(Edit::ShowSeries { series, first });
    }

    /// Volume of one voxel of the current series in mL.
    fn voxel_ml(&self) -> f64 {
        self.doc
            .current()
            .and_then(|c| c.stack.geometry.as_ref())
            .map_or(0.001, |g| g.spacing.iter().product::<f64>() / 1000.0)
    }

    /// Pixels of the slice on screen with its overlays (cached until slice or data change).
    fn slice_pixels(&mut self) -> Option<Arc<SlicePixels>> {
        let current = self.doc.current()?;
        let slice = self.doc.view().slice;
        let analysis = self.doc.analysis().filter(|a| a.series == current.uid);
        let key = PixelsKey {
            series: current.uid.clone(),
            slice,
            full_volume: current.volume.is_some(),
            analysis: analysis.map(|a| a.edits),
            heat: insights::heat_key(self),
            objects: self.doc.objects_generation(),
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
            // A fused series shows without an analysis.
            _ if self.doc.heatmap() == Heatmap::Fusion => (insights::heat_plane(self, slice, n), None),
            _ => (None, None),
        };
        // Objects shown over the series are drawn with the analysis's labels, as one map.
        let labels = match self.object_composite() {
            Some(c) => c.labels.get(slice * n..(slice + 1) * n).map(<[u8]>::to_vec),
            None => labels,
        };
        let pixels = Arc::new(SlicePixels::new(columns, rows, channels, image, attention, labels)?);
        self.pixels = Some((key, pixels.clone()));
        Some(pixels)
    }

    /// The whole window, as eframe and the kittest harness call it each frame.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_tasks(&ctx);
        self.pixels_per_point = ctx.pixels_per_point();
        bench::tick(self, &ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            self.push(Command::Open(dropped));
        }

        egui::Panel::top("toolbar").show(ui, |ui| self.with_panel(|p| browser::toolbar(p, ui)));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("browser")
            .default_size(260.0)
            .resizable(true)
            .show(ui, |ui| self.with_panel(|p| browser::browser(p, ui)));
        egui::Panel::right("model")
            .default_size(300.0)
            .resizable(true)
            .show(ui, |ui| {
                let tab = ui.horizontal(|ui| {
                    edited(&self.doc.review_tab(), |t| {
                        ui.selectable_value(t, false, "Analysis");
                        ui.selectable_value(t, true, "Review");
                    })
                });
                if let Some(review) = tab.inner {
                    self.edit(Edit::ReviewTab(review));
                }
                ui.separator();
                egui::ScrollArea::vertical().show(ui, |ui| {
                    if self.doc.review_tab() {
                        self.with_panel(|p| review::review_panel(p, ui));
                    } else {
                        // What the analysis says to look at comes first.
                        if self.with_panel(|p| insights::key_regions_section(p, ui)) {
                            ui.separator();
                        }
                        self.with_panel(|p| overlays::overlay_panel(p, ui));
                        ui.separator();
                        self.with_panel(|p| model_panel::model_panel(p, ui));
                    }
                });
            });
        self.refresh_object_labels();
        // Black where the views leave it bare (their pictures paint the rest; see slice_view).
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            let backdrop = ui.painter().add(egui::Shape::Noop);
            self.mpr_views.clear();
            let bare = if self.doc.settings().layout == Layout::Single || self.doc.current().is_none() {
                let pixels = self.slice_pixels();
                slice_view::slice_view(self, ui, pixels)
            } else {
                mpr::mpr_views(self, ui)
            };
            let fills = bare.into_iter().map(|r| egui::Shape::rect_filled(r, 0.0, egui::Color32::BLACK));
            ui.painter().set(backdrop, egui::Shape::Vec(fills.collect()));
        });
        if self.doc.show_tags() {
            let mut inspector = std::mem::take(&mut self.tags);
            self.with_panel(|p| tags::tag_window(p, &mut inspector, &ctx));
            self.tags = inspector;
        }
        if let Some(command) = pacs_panel::pacs_window(&mut self.pacs, &ctx) {
            self.push(command);
        }
        for command in std::mem::take(&mut self.commands) {
            self.apply(&ctx, command);
        }
        bench::end_of_frame(self);
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(p) = self.scan_progress.filter(|_| self.scan.is_some()) {
                ui.label(format!("Scanning {}/{} files", p.done, p.total));
                ui.add(egui::ProgressBar::new(p.done as f32 / p.total.max(1) as f32).desired_width(160.0));
            }
            if let Some(p) = self.doc.current().and_then(|c| c.progress) {
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
        eframe::set_value(storage, SETTINGS_KEY, self.doc.settings());
    }
}

/// Opens the window (on `paths`, if any) and returns when it is closed.
/// How `focal view` starts the window.
#[derive(Debug, Clone, Default)]
pub struct WindowOptions {
    pub analyze: bool,
    pub layout: Option<Layout>,
    /// Time this many frames, write them as JSON to the path, and close (bench/frame_time.py).
    pub bench_frames: Option<(usize, PathBuf)>,
    /// Segmentations and maps to show over the series once it has loaded.
    pub overlays: Vec<PathBuf>,
}

pub fn run(paths: Vec<PathBuf>, opts: WindowOptions) -> anyhow::Result<()> {
    let mut wgpu_options = eframe::egui_wgpu::WgpuConfiguration::default();
    if opts.bench_frames.is_some() {
        // Frames as fast as they can be drawn, not as the display refreshes.
        wgpu_options.surface.present_mode = eframe::wgpu::PresentMode::AutoNoVsync;
    }
    let options = eframe::NativeOptions {
        wgpu_options,
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
            let mut settings = cc
                .storage
                .and_then(|s| eframe::get_value::<Settings>(s, SETTINGS_KEY))
                .unwrap_or_default();
            if let Some(layout) = opts.layout {
                settings.layout = layout;
            }
            let mut app = FocalApp::new(&cc.egui_ctx, settings, paths);
            app.analyze_when_loaded = opts.analyze;
            app.overlays_when_loaded = opts.overlays;
            app.frame_bench = opts.bench_frames.map(|(n, out)| bench::FrameBench::new(n, out));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not start: {e}"))
}
