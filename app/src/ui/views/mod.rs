//! The window's image views: the acquired slices (`slice_view`, with the mouse and keys in
//! `slice_input` and the measuring tools in `measure`) and the multi-planar reformats (`mpr`,
//! their GPU volume layers in `mpr_layers`); `frame` maps between image pixels and the screen.

pub mod frame;
pub mod measure;
pub mod mpr;
pub mod mpr_layers;
pub mod slice_input;
pub mod slice_view;
