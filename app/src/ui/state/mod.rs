//! The window's state, on its own floor below the panels and views: the document (here), the
//! edits that change it (`edit`), the analysis on screen with the reader's corrections
//! (`analysis`) and how the series is looked at (`view`). No panel code.
//!
//! The window's document: what is open, what is on screen and what the reader has done to it
//! (study, series and volume, analysis and review, view and overlay settings). Its fields are
//! private to this module: panels read them through the accessors and change them only by
//! handing an `Edit` to `Document::apply`, the one place where the document changes. The work
//! the window runs (loading, the model, exports) reports back through `Edit`s too.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::Vec2;

use crate::inference::Device;
use crate::inference::evidence::EvidenceInfo;
use crate::render::{Colormap, MaskMode, SliceStyle};
use crate::report::{Decision, KeyImage, Measurement};
use crate::study::geometry::Vec3;
use crate::study::{Progress, Stack, StudySet, Volume, WindowLevel};

mod analysis;
mod edit;
mod layers;
pub mod presets;
mod settings;
mod view;

pub use analysis::{AnalysisView, MadeBy, Tool};
pub use edit::{Applied, Edit, ReviewChange, SettingChange, ViewChange};
pub use layers::{Extras, Fusion, Heatmap, ShownObject};
pub(in crate::ui) use settings::{MAX_RECENT, SETTINGS_KEY};
pub use settings::{Settings, analysis_dir};
pub use view::{Layout, ViewState};

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

/// The document state of one window.
pub struct Document {
    settings: Settings,
    studies: Option<Arc<StudySet>>,
    /// The paths the study was opened from (exports must not land inside them).
    opened: Vec<PathBuf>,
    current: Option<CurrentSeries>,
    view: ViewState,
    analysis: Option<AnalysisView>,
    /// Label indices and names of the model, for measuring findings.
    label_names: Vec<(u8, String)>,
    /// Another series of the study to put in the model's second modality slot.
    combine_with: Option<String>,
    heatmap: Heatmap,
    /// The label whose region evidence maps explain (None: every label).
    evidence_label: Option<u8>,
    /// A second series shown over the one on screen.
    fusion: Option<Fusion>,
    /// Objects other tools wrote, shown over the series on screen.
    objects: Vec<ShownObject>,
    /// Changes whenever `objects` or what they show does (for the caches drawn from them).
    objects_generation: u64,
    show_tags: bool,
    /// The right panel shows the review instead of overlays and model.
    review_tab: bool,
}

impl Document {
    pub fn new(settings: Settings, label_names: Vec<(u8, String)>) -> Document {
        Document {
            settings,
            studies: None,
            opened: Vec::new(),
            current: None,
            view: ViewState::default(),
            analysis: None,
            label_names,
            combine_with: None,
            heatmap: Heatmap::default(),
            evidence_label: None,
            fusion: None,
            objects: Vec::new(),
            objects_generation: 0,
            show_tags: false,
            review_tab: false,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn studies(&self) -> Option<&Arc<StudySet>> {
        self.studies.as_ref()
    }

    pub fn opened(&self) -> &[PathBuf] {
        &self.opened
    }

    pub fn current(&self) -> Option<&CurrentSeries> {
        self.current.as_ref()
    }

    pub fn view(&self) -> &ViewState {
        &self.view
    }

    /// The analysis kept, which may be of another series than the one on screen.
    pub fn analysis(&self) -> Option<&AnalysisView> {
        self.analysis.as_ref()
    }

    /// The analysis of the series on screen, if any.
    pub fn current_analysis(&self) -> Option<&AnalysisView> {
        let uid = &self.current.as_ref()?.uid;
        self.analysis.as_ref().filter(|a| a.series == *uid)
    }

    pub fn label_names(&self) -> &[(u8, String)] {
        &self.label_names
    }

    pub fn combine_with(&self) -> Option<&String> {
        self.combine_with.as_ref()
    }

    pub fn heatmap(&self) -> Heatmap {
        self.heatmap
    }

    pub fn evidence_label(&self) -> Option<u8> {
        self.evidence_label
    }

    /// The fused series kept, which may belong to another series than the one on screen.
    pub fn fusion(&self) -> Option<&Fusion> {
        self.fusion.as_ref()
    }

    /// The fused series over the series on screen, if any.
    pub fn current_fusion(&self) -> Option<&Fusion> {
        let uid = &self.current.as_ref()?.uid;
        self.fusion.as_ref().filter(|f| f.onto == *uid)
    }

    /// The objects placed onto the series on screen.
    pub fn objects(&self) -> impl Iterator<Item = (usize, &ShownObject)> {
        let uid = self.current.as_ref().map(|c| c.uid.clone());
        self.objects.iter().enumerate().filter(move |(_, o)| Some(&o.onto) == uid.as_ref())
    }

    pub fn objects_generation(&self) -> u64 {
        self.objects_generation
    }

    pub fn show_tags(&self) -> bool {
        self.show_tags
    }

    pub fn review_tab(&self) -> bool {
        self.review_tab
    }

    /// Applies one edit; says which caches it made stale.
    pub fn apply(&mut self, edit: Edit) -> Applied {
        const NOTHING: Applied = Applied {
            pixels: false,
            tags: false,
        };
        const PIXELS: Applied = Applied {
            pixels: true,
            tags: false,
        };
        match edit {
            Edit::Opened(paths) => {
                for p in paths.iter().rev() {
                    self.settings.recent.retain(|r| r != p);
                    self.settings.recent.insert(0, p.clone());
                }
                self.settings.recent.truncate(MAX_RECENT);
                self.opened = paths;
                self.studies = None;
                self.current = None;
                self.analysis = None;
                self.unfuse();
                self.objects.clear();
                self.objects_generation += 1;
                PIXELS
            }
            Edit::Scanned(set) => {
                self.studies = Some(set);
                NOTHING
            }
            Edit::ShowSeries { series, first } => {
                self.view = ViewState::for_stack(&series.stack, first);
                if self.analysis.as_ref().is_some_and(|a| a.series != series.uid) {
                    self.analysis = None;
                }
                // A fused series belongs to the series it was resampled onto.
                if self.fusion.as_ref().is_some_and(|f| f.onto != series.uid) {
                    self.unfuse();
                }
                // So do the objects placed onto it.
                self.objects.retain(|o| o.onto == series.uid);
                self.objects_generation += 1;
                self.current = Some(*series);
                Applied {
                    pixels: true,
                    tags: true,
                }
            }
            Edit::FirstSlice { series, slice } => {
                let Some(c) = self.current.as_mut().filter(|c| c.uid == series) else {
                    return NOTHING;
                };
                let window = crate::study::volume::percentile_window(&slice.1, slice.2);
                c.early = Some(slice);
                self.window_from_data(window);
                PIXELS
            }
            Edit::LoadProgress(p) => {
                if let Some(c) = self.current.as_mut() {
                    c.progress = Some(p);
                }
                NOTHING
            }
            Edit::VolumeLoaded { series, result } => {
                let Some(c) = self.current.as_mut().filter(|c| c.uid == series) else {
                    return NOTHING;
                };
                c.progress = None;
                match result {
                    Ok(volume) => {
                        let (window, inverted) = (volume.window, volume.inverted);
                        c.volume = Some(volume);
                        c.early = None;
                        self.window_from_data(window);
                        self.view.invert = inverted;
                    }
                    Err(e) => c.error = Some(e),
                }
                PIXELS
            }
            Edit::ShowAnalysis(mut view) => {
                view.remeasure(&self.label_names);
                self.analysis = Some(*view);
                PIXELS
            }
            Edit::Timing(text) => {
                if let Some(a) = self.analysis.as_mut() {
                    a.timing = Some(text);
                }
                NOTHING
            }
            Edit::Evidence { series, info, values } => {
                if let Some(a) = self.analysis.as_mut().filter(|a| a.series == series) {
                    a.extras.evidence.insert(info.slice, (info, values));
                }
                PIXELS
            }
            Edit::Fused(f) => {
                self.fusion = Some(*f);
                self.heatmap = Heatmap::Fusion;
                self.settings.show_attention = true;
                PIXELS
            }
            Edit::Unfuse => {
                self.unfuse();
                PIXELS
            }
            Edit::ObjectLoaded(o) => {
                // The same file placed again replaces the first.
                self.objects.retain(|x| x.overlay.source != o.overlay.source || x.onto != o.onto);
                self.objects.push(*o);
                self.settings.show_mask = true;
                self.objects_generation += 1;
                PIXELS
            }
            Edit::ObjectShown(i, shown) => {
                if let Some(o) = self.objects.get_mut(i) {
                    o.shown = shown;
                }
                self.objects_generation += 1;
                PIXELS
            }
            Edit::SegmentShown { object, segment, shown } => {
                if let Some(s) = self.objects.get_mut(object).and_then(|o| o.segments.get_mut(segment)) {
                    *s = shown;
                }
                self.objects_generation += 1;
                PIXELS
            }
            Edit::ObjectClosed(i) => {
                if i < self.objects.len() {
                    self.objects.remove(i);
                }
                self.objects_generation += 1;
                PIXELS
            }
            Edit::FusionStyle {
                window,
                colormap,
                opacity,
            } => {
                if let Some(f) = self.fusion.as_mut() {
                    f.window = WindowLevel {
                        center: window.center,
                        width: window.width.max(1e-6),
                    };
                    f.colormap = colormap;
                    f.opacity = opacity.clamp(0.0, 1.0);
                }
                PIXELS
            }
            Edit::CombineWith(series) => {
                self.combine_with = series;
                NOTHING
            }
            Edit::Heatmap(h) => {
                self.heatmap = h;
                PIXELS
            }
            Edit::EvidenceLabel(l) => {
                self.evidence_label = l;
                NOTHING
            }
            Edit::ShowTags(shown) => {
                self.show_tags = shown;
                NOTHING
            }
            Edit::ReviewTab(shown) => {
                self.review_tab = shown;
                NOTHING
            }
            Edit::View(change) => {
                self.change_view(change);
                NOTHING
            }
            Edit::Setting(change) => {
                self.change_setting(change);
                NOTHING
            }
            // The slice's pixels follow the analysis' edit count by themselves.
            Edit::Review(change) => {
                self.change_review(change);
                NOTHING
            }
        }
    }

    /// A window measured from the loaded data, taken until the reader sets one.
    fn window_from_data(&mut self, window: WindowLevel) {
        if self.view.window_from_volume {
            self.view.window = window;
            self.view.preset = Some(presets::AUTO);
        }
    }

    /// Drops the fused series; a heatmap that showed it shows the attention again.
    fn unfuse(&mut self) {
        self.fusion = None;
        if self.heatmap == Heatmap::Fusion {
            self.heatmap = Heatmap::Attention;
        }
    }

    fn slices(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.stack.slices.len())
    }

    fn change_view(&mut self, change: ViewChange) {
        let slices = self.slices();
        let view = &mut self.view;
        match change {
            ViewChange::Step(by) => view.step(by, slices),
            ViewChange::GoTo(slice) => view.slice = slice,
            ViewChange::Window { center, width, preset } => view.set_window(center, width, preset),
            ViewChange::Invert(on) => view.invert = on,
            ViewChange::Fit => view.reset(),
            ViewChange::ZoomAbout { factor, offset } => {
                let zoom = (view.zoom * factor).clamp(0.1, 40.0);
                let k = zoom / view.zoom;
                view.pan = offset - (offset - view.pan) * k;
                view.zoom = zoom;
            }
            ViewChange::ZoomTo(zoom) => {
                view.zoom = zoom;
                view.pan = Vec2::ZERO;
            }
            ViewChange::Pan(by) => view.pan += by,
            ViewChange::Playing(on) => view.playing = on,
            ViewChange::Tool(tool) => view.tool = tool,
            ViewChange::BrushLabel(label) => view.brush_label = label,
            ViewChange::BrushMm(mm) => view.brush_mm = mm,
            ViewChange::Cursor(p) => view.cursor = Some(p),
        }
    }

    fn change_setting(&mut self, change: SettingChange) {
        let s = &mut self.settings;
        match change {
            SettingChange::ShowHeatmap(on) => s.show_attention = on,
            SettingChange::Colormap(c) => s.attention.colormap = c,
            SettingChange::HeatOpacity(o) => s.attention.opacity = o,
            SettingChange::Threshold(t) => s.attention.threshold = t,
            SettingChange::AttentionInsideBrain(on) => s.attention.inside_labels = on,
            SettingChange::ShowMask(on) => s.show_mask = on,
            SettingChange::MaskMode(m) => s.mask_mode = m,
            SettingChange::FillOpacity(o) => s.fill_opacity = o,
            SettingChange::OutlineWidth(w) => s.outline_width = w,
            SettingChange::LabelShown(label, shown) => {
                s.hidden_labels.retain(|x| *x != label);
                if !shown {
                    s.hidden_labels.push(label);
                }
            }
            SettingChange::CineFps(fps) => s.cine_fps = fps,
            SettingChange::Device(d) => s.device = d,
            SettingChange::Layout(l) => s.layout = l,
        }
    }

    /// Sets the model's attention display range, keeping the threshold inside it.
    pub fn set_attention_range(&mut self, [lo, hi]: [f32; 2]) {
        self.settings.attention.range = [lo, hi];
        // A threshold saved for another model may lie outside this one's range.
        self.settings.attention.threshold = self.settings.attention.threshold.clamp(lo, hi);
    }

    /// Changes the review of the analysis on screen (nothing without one). Verdicts, key
    /// images, measurements, signing, finished strokes, undo and redo are saved at once; typed
    /// text and a stroke in progress wait for `Save` and `EndStroke`.
    fn change_review(&mut self, change: ReviewChange) {
        let Some(current) = &self.current else { return };
        let geometry = current.stack.geometry.clone();
        let Some(a) = self.analysis.as_mut().filter(|a| a.series == current.uid) else {
            return;
        };
        let r = &mut a.review;
        let (mut changed, mut remeasure) = (true, true);
        match change {
            ReviewChange::Decision(i, d) => match r.findings.get_mut(i) {
                Some(f) => f.decision = d,
                None => changed = false,
            },
            ReviewChange::Note(i, note) => {
                if let Some(f) = r.findings.get_mut(i) {
                    f.note = note;
                }
                changed = false;
            }
            ReviewChange::RegionDecision(id, d) => {
                r.set_region(id, Some(d), None);
                remeasure = false;
            }
            ReviewChange::RegionNote(id, note) => {
                r.set_region(id, None, Some(note));
                changed = false;
            }
            ReviewChange::Impression(text) => {
                r.impression = text;
                changed = false;
            }
            ReviewChange::Reader(name) => {
                r.reader = name;
                changed = false;
            }
            ReviewChange::Signed(at) => r.signed_at = at,
            ReviewChange::MarkKeyImage(slice, style) => {
                r.key_images.retain(|k| k.slice != slice);
                r.key_images.push(KeyImage { slice, style: *style });
            }
            ReviewChange::UnmarkKeyImage(slice) => r.key_images.retain(|k| k.slice != slice),
            ReviewChange::AddMeasurement(m) => {
                r.measurements.push(*m);
                remeasure = false;
            }
            ReviewChange::RemoveMeasurement(i) => {
                changed = i < r.measurements.len();
                if changed {
                    r.measurements.remove(i);
                }
            }
            ReviewChange::Paint {
                slice,
                at: [x, y],
                radius_mm,
                spacing,
                label,
            } => {
                a.paint(slice, x, y, radius_mm, spacing, label);
                changed = false;
            }
            ReviewChange::EndStroke => changed = a.end_stroke(),
            ReviewChange::Undo => changed = a.undo(),
            ReviewChange::Redo => changed = a.redo(),
            ReviewChange::Save => {}
        }
        if changed {
            if remeasure {
                a.remeasure(&self.label_names);
            }
            a.save(geometry);
        }
    }
}

#[cfg(test)]
mod tests;
