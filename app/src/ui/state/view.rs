//! How the current series is being looked at: slice, window, zoom and pan, the tool.

use eframe::egui::Vec2;
use serde::{Deserialize, Serialize};

use crate::study::{Stack, WindowLevel};

/// How the current series is being looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    pub slice: usize,
    pub window: WindowLevel,
    /// Until the reader sets a window, take it from the loaded data.
    pub window_from_volume: bool,
    pub invert: bool,
    /// Magnification relative to "fit to view".
    pub zoom: f32,
    /// Offset of the image centre from the view centre, in points.
    pub pan: Vec2,
    pub playing: bool,
    pub preset: Option<&'static str>,
    pub tool: super::analysis::Tool,
    /// Label the brush paints.
    pub brush_label: u8,
    pub brush_mm: f32,
    /// The crosshair point of the reformatted views (patient mm, LPS).
    pub cursor: Option<crate::study::geometry::Vec3>,
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            slice: 0,
            window: WindowLevel {
                center: 0.5,
                width: 1.0,
            },
            window_from_volume: true,
            invert: false,
            zoom: 1.0,
            pan: Vec2::ZERO,
            playing: false,
            preset: None,
            tool: super::analysis::Tool::Navigate,
            brush_label: 1,
            brush_mm: 3.0,
            cursor: None,
        }
    }
}

impl ViewState {
    /// The view a newly opened stack starts with: its middle slice, its own window if it has one.
    pub fn for_stack(stack: &Stack, slice: usize) -> ViewState {
        let tagged = stack.slices.get(slice).and_then(|s| s.info().window);
        ViewState {
            slice,
            window: tagged.unwrap_or(WindowLevel {
                center: 0.5,
                width: 1.0,
            }),
            window_from_volume: tagged.is_none(),
            preset: tagged.map(|_| super::presets::FROM_IMAGE),
            ..ViewState::default()
        }
    }

    pub fn set_window(&mut self, center: f64, width: f64, preset: Option<&'static str>) {
        self.window = WindowLevel {
            center,
            width: width.max(1.0),
        };
        self.window_from_volume = false;
        self.preset = preset;
    }

    pub fn reset(&mut self) {
        self.zoom = 1.0;
        self.pan = Vec2::ZERO;
    }

    pub(super) fn step(&mut self, by: i64, slices: usize) {
        let last = slices.saturating_sub(1) as i64;
        self.slice = (self.slice as i64 + by).clamp(0, last) as usize;
    }
}

/// How the central area is divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layout {
    /// The acquired slices, with every tool.
    #[default]
    Single,
    /// Axial, coronal and sagittal side by side.
    Three,
    /// The three planes and a coronal maximum-intensity projection.
    Four,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Single, Layout::Three, Layout::Four];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Single => "1×1",
            Layout::Three => "1×3",
            Layout::Four => "2×2",
        }
    }

    /// From the command line: "1x1", "1x3" or "2x2".
    pub fn parse(s: &str) -> Option<Layout> {
        match s.replace('×', "x").as_str() {
            "1x1" => Some(Layout::Single),
            "1x3" => Some(Layout::Three),
            "2x2" => Some(Layout::Four),
            _ => None,
        }
    }

    pub fn next(self) -> Layout {
        match self {
            Layout::Single => Layout::Three,
            Layout::Three => Layout::Four,
            Layout::Four => Layout::Single,
        }
    }
}
