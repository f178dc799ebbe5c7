//! The window's document: what is open, what is on screen and what the reader has done to it
//! (study, series and volume, analysis and review, view and overlay settings). Its fields are
//! private to this module: panels read them through the accessors and change them only by
//! handing an `Edit` to `Document::apply`, the one place where the document changes. The work
//! the window runs (loading, the model, exports) reports back through `Edit`s too.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::Vec2;

use super::fusion::Fusion;
use super::insights::Heatmap;
use super::mpr::Layout;
use super::settings::{MAX_RECENT, Settings};
use super::{AnalysisView, CurrentSeries, Tool, ViewState, presets};
use crate::inference::Device;
use crate::inference::evidence::EvidenceInfo;
use crate::render::{Colormap, MaskMode, SliceStyle};
use crate::report::{Decision, KeyImage, Measurement};
use crate::study::geometry::Vec3;
use crate::study::{Progress, StudySet, Volume, WindowLevel};

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
    show_tags: bool,
    /// The right panel shows the review instead of overlays and model.
    review_tab: bool,
}

/// A change of the document.
pub enum Edit {
    /// A study is being opened from these paths: everything of the last one is closed.
    Opened(Vec<PathBuf>),
    /// The opened study has been read.
    Scanned(Arc<StudySet>),
    /// A series goes on screen (its volume loads meanwhile), showing slice `first`.
    ShowSeries {
        series: Box<CurrentSeries>,
        first: usize,
    },
    /// A slice of the series loading, decoded ahead of the rest: (index, values, channels).
    FirstSlice {
        series: String,
        slice: (usize, Vec<f32>, usize),
    },
    LoadProgress(Progress),
    /// The series' volume has loaded, or could not be.
    VolumeLoaded {
        series: String,
        result: Result<Arc<Volume>, String>,
    },
    /// An analysis (new or restored) goes on screen.
    ShowAnalysis(Box<AnalysisView>),
    /// The run-time line of the analysis on screen ("89 slices in 4.0 s"; snapshot tests pin it).
    Timing(String),
    /// An occlusion evidence map of one slice arrived.
    Evidence {
        series: String,
        info: EvidenceInfo,
        values: Arc<Vec<f32>>,
    },
    Fused(Box<Fusion>),
    Unfuse,
    /// The fused series' window, colour map and opacity.
    FusionStyle {
        window: WindowLevel,
        colormap: Colormap,
        opacity: f32,
    },
    CombineWith(Option<String>),
    Heatmap(Heatmap),
    EvidenceLabel(Option<u8>),
    ShowTags(bool),
    ReviewTab(bool),
    View(ViewChange),
    Setting(SettingChange),
    Review(ReviewChange),
}

/// A change of how the series is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewChange {
    /// Move by this many slices, inside the stack.
    Step(i64),
    GoTo(usize),
    Window {
        center: f64,
        width: f64,
        preset: Option<&'static str>,
    },
    Invert(bool),
    /// Back to "fit to view", centred.
    Fit,
    /// Zoom by `factor` about a point `offset` from the view's centre (points).
    ZoomAbout {
        factor: f32,
        offset: Vec2,
    },
    /// This zoom, centred.
    ZoomTo(f32),
    Pan(Vec2),
    Playing(bool),
    Tool(Tool),
    BrushLabel(u8),
    BrushMm(f32),
    /// The crosshair point of the reformatted views (patient mm).
    Cursor(Vec3),
}

/// A change of the overlay and layout settings the window remembers.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingChange {
    ShowHeatmap(bool),
    Colormap(Colormap),
    HeatOpacity(f32),
    Threshold(f32),
    /// The model's attention drawn only inside the labelled brain.
    AttentionInsideBrain(bool),
    ShowMask(bool),
    MaskMode(MaskMode),
    FillOpacity(f32),
    OutlineWidth(u32),
    LabelShown(u8, bool),
    CineFps(f32),
    Device(Device),
    Layout(Layout),
}

/// A change of the review of the analysis on screen.
pub enum ReviewChange {
    Decision(usize, Decision),
    /// A finding's note as typed (kept on `Save`).
    Note(usize, String),
    /// The impression as typed (kept on `Save`).
    Impression(String),
    /// The reader's name as typed (kept on `Save`).
    Reader(String),
    /// Sign (with the time) or unsign.
    Signed(Option<String>),
    MarkKeyImage(usize, Box<SliceStyle>),
    UnmarkKeyImage(usize),
    AddMeasurement(Box<Measurement>),
    RemoveMeasurement(usize),
    /// Paint `label` in a disc of `radius_mm` around pixel (x, y) of `slice`.
    Paint {
        slice: usize,
        at: [f32; 2],
        radius_mm: f32,
        spacing: [f64; 2],
        label: u8,
    },
    /// The brush was lifted: the stroke becomes one undo step.
    EndStroke,
    Undo,
    Redo,
    /// Measure the findings again and save the review.
    Save,
}

impl From<ViewChange> for Edit {
    fn from(c: ViewChange) -> Edit {
        Edit::View(c)
    }
}

impl From<SettingChange> for Edit {
    fn from(c: SettingChange) -> Edit {
        Edit::Setting(c)
    }
}

impl From<ReviewChange> for Edit {
    fn from(c: ReviewChange) -> Edit {
        Edit::Review(c)
    }
}

/// What an applied edit asks of the window's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The slice's pixels (image, labels or heatmap) must be rebuilt.
    pub pixels: bool,
    /// The tag inspector must read the series again.
    pub tags: bool,
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
            Edit::FusionStyle {
                window,
                colormap,
                opacity,
            } => {
                if let Some(f) = self.fusion.as_mut() {
                    f.window = WindowLevel {
                        center: window.center,
                        width: window.width.max(1.0),
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
mod tests {
    use super::*;

    /// The bundled sample study, opened as the window opens it, with its series on screen.
    fn sample() -> Document {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample-study");
        let set = StudySet::open(
            std::slice::from_ref(&root),
            &|_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .expect("sample");
        let series = set.series().next().expect("a series");
        let current = CurrentSeries {
            uid: series.uid.clone(),
            label: "sample".into(),
            modality: series.modality.clone(),
            stack: series.stacks[0].clone(),
            stack_index: 0,
            volume: None,
            early: None,
            progress: None,
            error: None,
        };
        let mut doc = Document::new(Settings::default(), vec![(0, "background".into()), (1, "CSF".into())]);
        doc.apply(Edit::Opened(vec![root]));
        doc.apply(Edit::Scanned(Arc::new(set)));
        let first = current.stack.slices.len() / 2;
        doc.apply(Edit::ShowSeries {
            series: Box::new(current),
            first,
        });
        doc
    }

    #[test]
    fn a_series_opens_on_its_middle_slice_and_steps_stay_inside_it() {
        let mut doc = sample();
        let slices = doc.current().expect("series").stack.slices.len();
        assert!(slices > 10);
        assert_eq!(doc.view().slice, slices / 2);
        doc.apply(ViewChange::Step(-1).into());
        assert_eq!(doc.view().slice, slices / 2 - 1);
        doc.apply(ViewChange::Step(10_000).into());
        assert_eq!(doc.view().slice, slices - 1);
        doc.apply(ViewChange::Step(-10_000).into());
        assert_eq!(doc.view().slice, 0);
        // A reader's window is kept; the one from the data no longer replaces it.
        doc.apply(
            ViewChange::Window {
                center: 40.0,
                width: 0.5,
                preset: None,
            }
            .into(),
        );
        assert_eq!(doc.view().window.width, 1.0, "a window is at least one unit wide");
        assert!(!doc.view().window_from_volume);
    }

    #[test]
    fn zooming_about_a_point_keeps_that_point_still() {
        let mut doc = sample();
        let offset = Vec2::new(120.0, -40.0);
        doc.apply(ViewChange::Pan(Vec2::new(10.0, 5.0)).into());
        // The image point under `offset`, in fit-to-view points from the image centre.
        let under = |v: &ViewState| (offset - v.pan) / v.zoom;
        let before = under(doc.view());
        doc.apply(ViewChange::ZoomAbout { factor: 2.5, offset }.into());
        assert_eq!(doc.view().zoom, 2.5);
        assert!((under(doc.view()) - before).length() < 1e-4);
        doc.apply(ViewChange::ZoomAbout { factor: 100.0, offset }.into());
        assert_eq!(doc.view().zoom, 40.0, "zoom is bounded");
        doc.apply(ViewChange::Fit.into());
        assert_eq!((doc.view().zoom, doc.view().pan), (1.0, Vec2::ZERO));
    }

    #[test]
    fn opening_again_closes_the_last_study_and_keeps_it_first_in_recent() {
        let mut doc = sample();
        doc.apply(Edit::Heatmap(Heatmap::Fusion));
        let other = PathBuf::from("/elsewhere");
        doc.apply(Edit::Opened(vec![other.clone()]));
        assert!(doc.current().is_none() && doc.studies().is_none() && doc.analysis().is_none());
        assert_eq!(doc.heatmap(), Heatmap::Attention, "no fused series is left to show");
        assert_eq!(doc.settings().recent[0], other);
        assert_eq!(doc.opened(), [other]);
        for i in 0..20 {
            doc.apply(Edit::Opened(vec![PathBuf::from(format!("/s{i}"))]));
        }
        assert_eq!(doc.settings().recent.len(), MAX_RECENT);
    }

    #[test]
    fn a_volume_of_another_series_is_not_taken_in() {
        let mut doc = sample();
        let applied = doc.apply(Edit::VolumeLoaded {
            series: "1.2.3".into(),
            result: Err("not this one".into()),
        });
        assert_eq!(applied, Applied::default());
        assert!(doc.current().expect("series").error.is_none());
        let uid = doc.current().expect("series").uid.clone();
        doc.apply(Edit::VolumeLoaded {
            series: uid,
            result: Err("unreadable".into()),
        });
        assert_eq!(doc.current().expect("series").error.as_deref(), Some("unreadable"));
    }

    #[test]
    fn settings_change_one_at_a_time() {
        let mut doc = sample();
        doc.apply(SettingChange::LabelShown(1, false).into());
        doc.apply(SettingChange::LabelShown(1, false).into());
        assert_eq!(doc.settings().hidden_labels, [1]);
        doc.apply(SettingChange::LabelShown(1, true).into());
        assert!(doc.settings().hidden_labels.is_empty());
        doc.apply(SettingChange::Layout(Layout::Four).into());
        doc.apply(SettingChange::OutlineWidth(3).into());
        assert_eq!((doc.settings().layout, doc.settings().outline_width), (Layout::Four, 3));
        doc.set_attention_range([0.2, 0.6]);
        assert_eq!(
            doc.settings().attention.threshold,
            0.2,
            "a threshold outside the range is moved into it"
        );
    }

    #[test]
    fn review_changes_without_an_analysis_change_nothing() {
        let mut doc = sample();
        for change in [
            ReviewChange::Reader("Dr Reader".into()),
            ReviewChange::Undo,
            ReviewChange::RemoveMeasurement(3),
            ReviewChange::Save,
        ] {
            assert_eq!(doc.apply(change.into()), Applied::default());
        }
        assert!(doc.analysis().is_none());
    }

    #[test]
    fn strokes_undo_redo_and_verdicts_change_the_analysis_on_screen() {
        let mut doc = sample();
        let dir = tempfile::tempdir().expect("tmp");
        let c = doc.current().expect("series");
        let (columns, rows, slices) = (c.stack.columns as usize, c.stack.rows as usize, c.stack.slices.len());
        let view = AnalysisView::new(
            c.uid.clone(),
            dir.path().to_path_buf(),
            [columns, rows, slices],
            vec![0; columns * rows * slices],
            Arc::new(vec![0.0; columns * rows * slices]),
            ("CPU".into(), None),
            true,
            vec![(1, Some(0.9))],
            0.001,
            None,
        );
        doc.apply(Edit::ShowAnalysis(Box::new(view)));
        let csf = |d: &Document| {
            d.analysis()
                .expect("analysis")
                .review
                .findings
                .iter()
                .find(|f| f.label == 1)
                .map_or(0.0, |f| f.volume_ml)
        };
        assert_eq!(csf(&doc), 0.0);
        let paint = ReviewChange::Paint {
            slice: 3,
            at: [20.0, 20.0],
            radius_mm: 5.0,
            spacing: [1.0, 1.0],
            label: 1,
        };
        doc.apply(paint.into());
        assert_eq!(csf(&doc), 0.0, "findings are measured when the stroke ends");
        doc.apply(ReviewChange::EndStroke.into());
        let painted = csf(&doc);
        assert!(painted > 0.05, "{painted} mL");
        assert!(doc.analysis().expect("analysis").review.edited);
        doc.apply(ReviewChange::Undo.into());
        assert_eq!(csf(&doc), 0.0);
        doc.apply(ReviewChange::Redo.into());
        assert_eq!(csf(&doc), painted);
        let i = doc
            .analysis()
            .expect("analysis")
            .review
            .findings
            .iter()
            .position(|f| f.label == 1)
            .expect("CSF");
        doc.apply(ReviewChange::Decision(i, Decision::Rejected).into());
        let style = SliceStyle {
            window_center: 40.0,
            window_width: 400.0,
            invert: false,
            attention: None,
            mask: None,
        };
        doc.apply(ReviewChange::MarkKeyImage(3, Box::new(style.clone())).into());
        doc.apply(ReviewChange::MarkKeyImage(3, Box::new(style)).into());
        let r = &doc.analysis().expect("analysis").review;
        assert_eq!(r.findings[i].decision, Decision::Rejected);
        assert_eq!(r.key_images.len(), 1, "a slice is a key image once");
    }
}
