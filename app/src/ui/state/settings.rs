//! What the window keeps between runs (settings in eframe's storage) and where it keeps
//! analyses and reviews on disk.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inference::Device;
use crate::render::{AttentionStyle, Colormap, MaskMode};

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
    /// 1×1 (acquired slices), 1×3 or 2×2 (reformatted planes).
    pub layout: super::Layout,
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
                // The model's attention inside the labelled brain (the overlay panel says so and
                // turns it off).
                inside_labels: true,
            },
            show_mask: true,
            mask_mode: MaskMode::Outline,
            hidden_labels: Vec::new(),
            fill_opacity: 0.35,
            outline_width: 1,
            cine_fps: 10.0,
            device: Device::Auto,
            layout: super::Layout::Single,
        }
    }
}

pub(in crate::ui) const SETTINGS_KEY: &str = "focal-settings";
pub(in crate::ui) const MAX_RECENT: usize = 8;

/// The folder for one series' analysis: named by a hash of its UID (no identifiers in paths).
pub fn analysis_dir(root: &std::path::Path, series_uid: &str) -> PathBuf {
    root.join(crate::uid::key(series_uid))
}
