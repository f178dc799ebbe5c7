//! Window/level presets a radiologist expects, by modality.

use crate::study::WindowLevel;

/// A named window (centre, width in modality units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub center: f64,
    pub width: f64,
    /// Keyboard shortcut digit, as in common viewers.
    pub key: Option<u8>,
}

/// The window from the 0.5th–99.5th percentiles of the values.
pub const AUTO: &str = "Auto (0.5–99.5%)";
/// The window the image's own tags give.
pub const FROM_IMAGE: &str = "From image";

/// CT presets in HU.
pub const CT_PRESETS: [Preset; 6] = [
    Preset {
        name: "Brain",
        center: 40.0,
        width: 80.0,
        key: Some(1),
    },
    Preset {
        name: "Subdural",
        center: 75.0,
        width: 215.0,
        key: Some(2),
    },
    Preset {
        name: "Lung",
        center: -600.0,
        width: 1500.0,
        key: Some(3),
    },
    Preset {
        name: "Bone",
        center: 400.0,
        width: 1800.0,
        key: Some(4),
    },
    Preset {
        name: "Soft tissue",
        center: 50.0,
        width: 400.0,
        key: Some(5),
    },
    Preset {
        name: "Abdomen",
        center: 60.0,
        width: 400.0,
        key: Some(6),
    },
];

/// Presets for a series: the CT set for CT, otherwise the windows from the image's own tags and
/// from its value distribution.
pub fn presets_for(modality: Option<&str>, from_tags: Option<WindowLevel>, from_values: WindowLevel) -> Vec<Preset> {
    let mut list = Vec::new();
    if let Some(w) = from_tags {
        list.push(Preset {
            name: FROM_IMAGE,
            center: w.center,
            width: w.width,
            key: Some(0),
        });
    }
    list.push(Preset {
        name: AUTO,
        center: from_values.center,
        width: from_values.width,
        key: if list.is_empty() { Some(0) } else { None },
    });
    if modality == Some("CT") {
        list.extend(CT_PRESETS);
    }
    list
}
