//! What the window shows over the series besides its labels: the analysis's further maps
//! (`Extras`), which map the heatmap overlay shows (`Heatmap`) and a fused second series
//! (`Fusion`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::inference::analysis::Insights;
use crate::inference::evidence::EvidenceInfo;
use crate::render::Colormap;
use crate::study::{Volume, WindowLevel};

/// What the analysis on screen says beyond its labels and attention.
#[derive(Default)]
pub struct Extras {
    pub insights: Insights,
    /// Weights over the modality slots, [slice][slot][plane], and the slot count.
    pub modality: Option<(usize, Arc<Vec<f32>>)>,
    /// Evidence maps by slice.
    pub evidence: BTreeMap<usize, (EvidenceInfo, Arc<Vec<f32>>)>,
    /// The key regions' score and region ids, slice-major (analyses whose model looks for them).
    pub key_regions: Option<(Arc<Vec<f32>>, Arc<Vec<u8>>)>,
}

/// Which map the heatmap overlay shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heatmap {
    #[default]
    Attention,
    /// The occlusion evidence map of the slice on screen (blank where none was computed).
    Evidence,
    /// The weight the model gave one modality slot.
    Modality(usize),
    /// Another series of the head, fused over this one (`fusion`).
    Fusion,
    /// The key regions' score: each voxel's departure from the scan's healthy tissue.
    KeyRegions,
}

/// The fused series, resampled onto the grid of the series on screen.
pub struct Fusion {
    /// The series on screen it was resampled for.
    pub onto: String,
    pub series: String,
    pub label: String,
    pub volume: Arc<Volume>,
    /// Share of the series on screen that the fused series covers.
    pub coverage: f64,
    pub window: WindowLevel,
    pub colormap: Colormap,
    pub opacity: f32,
}

/// An object another tool wrote (a segmentation, a NIfTI label map) shown over the series on
/// screen: its labels drawn with the analysis's, each segment on or off.
pub struct ShownObject {
    /// The series on screen it was placed onto.
    pub onto: String,
    pub overlay: Arc<crate::inference::overlays::Overlay>,
    pub shown: bool,
    /// Per segment, whether it is drawn.
    pub segments: Vec<bool>,
}
