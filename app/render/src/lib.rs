//! focal-render: GPU drawing of slices with their overlays, shared by the window and by exports.
//!
//! This module knows textures, uniforms and WGSL (shaders/). It does not know what a study or a
//! finding is: callers hand it pixels ([`SlicePixels`]) and numbers ([`SliceStyle`]).

// The study layer's reslicing arithmetic, named as Focal names it.
pub(crate) use focal_study as study;

mod callback;
mod colormap;
mod gpu;
mod offscreen;
mod params;
mod picture;
mod pipeline;
mod pixels;
mod reference;
mod reslice;

pub use callback::{ResliceCallback, SliceCallback, picture_counts, register};
pub use colormap::{Colormap, Lut, lut_entry};
pub use gpu::{SliceRenderer, SliceTarget};
pub use offscreen::{OFFSCREEN_FORMAT, OffscreenRenderer, quiet_headless_graphics};
pub use params::{
    AttentionStyle, MAX_LABELS, MAX_OUTLINE_WIDTH, MaskMode, MaskStyle, SliceStyle, SliceUniforms, image_to_clip,
};
pub use pixels::{RgbaImage, SlicePixels};
pub use reference::{render_reference, reslice_reference};
pub use reslice::{OUTSIDE, ReslicePlane, Reslicer, Shared, VolumeLayer, VolumePixels};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no graphics adapter found ({0}); install a GPU driver or Mesa's software renderer (mesa-vulkan-drivers)")]
    NoAdapter(String),
    #[error("the graphics device could not be opened: {0}")]
    Device(String),
    #[error("the {what} is {size} pixels across; this graphics device draws at most {limit}")]
    TooLarge { what: &'static str, size: u32, limit: u32 },
    #[error("drawing failed on the graphics device: {0}")]
    Gpu(String),
}
