//! What changes the document: every change a panel or a background job hands to
//! `Document::apply`.

use super::*;

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
    /// An object another tool wrote was placed onto the series on screen.
    ObjectLoaded(Box<super::layers::ShownObject>),
    /// An object (by its place in the list) shown or hidden.
    ObjectShown(usize, bool),
    /// One segment of an object shown or hidden.
    SegmentShown { object: usize, segment: usize, shown: bool },
    ObjectClosed(usize),
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
    /// The verdict on key region `id`.
    RegionDecision(u32, Decision),
    /// A key region's note as typed (kept on `Save`).
    RegionNote(u32, String),
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
