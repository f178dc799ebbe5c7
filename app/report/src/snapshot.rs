//! `focal snapshot`: one view of a series drawn as the window draws it — an acquired slice or
//! a plane reformatted through the volume — with an analysis's labels and attention and what
//! other tools wrote (SEG, Parametric Map, NIfTI), into a PNG for papers and scripted quality
//! control. The GPU draws it where there is one, the CPU twin of its shaders otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ExportError;
use super::output::AnalysisOutput;
use crate::inference::manifest::Manifest;
use crate::inference::overlays::{self, Content, LabelSource, Overlay};
use crate::render::{
    AttentionStyle, Colormap, MaskMode, MaskStyle, OffscreenRenderer, ReslicePlane, RgbaImage, SlicePixels, SliceStyle,
    SliceUniforms, VolumeLayer, VolumePixels, render_reference, reslice_reference,
};
use crate::study::reformat::{Plane, Reformat};
use crate::study::{Stack, Volume, WindowLevel};

/// Which view to draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// An acquired slice (0-based); the middle one when None.
    Slice(Option<usize>),
    /// A plane through the volume at `at` mm along its normal (patient LPS: axial at z,
    /// coronal at y, sagittal at x); through the volume's centre when None.
    Plane(Plane, Option<f64>),
}

/// What to draw and how.
pub struct SnapshotOptions {
    pub view: View,
    pub window: Option<WindowLevel>,
    /// Longest side of the picture in pixels.
    pub size: u32,
    pub mask_mode: MaskMode,
    pub fill_opacity: f32,
    pub out: PathBuf,
}

/// What was drawn, for the command to say.
#[derive(Debug)]
pub struct SnapshotSummary {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub view: String,
    pub renderer: String,
    /// What each overlay left out or how it was placed.
    pub notes: Vec<String>,
}

/// The analysis's labels (manifest names and colours) and each overlay's segments as one label
/// source list, in drawing order.
fn label_sources<'a>(analysis: Option<&'a AnalysisOutput>, manifest: Option<&Manifest>, overlays: &'a [Overlay]) -> Vec<LabelSource<'a>> {
    let mut sources = Vec::new();
    if let (Some(a), Some(m)) = (analysis, manifest) {
        sources.push(LabelSource::of_model(&a.labels, &m.labels, &[]));
    }
    sources.extend(overlays.iter().filter_map(|o| o.label_source(&[])));
    sources
}

/// Colour of the regions reports measured, in the window and in snapshots.
pub const REPORT_COLOUR: [u8; 3] = [255, 220, 0];

/// Draws the snapshot of `stack` (loaded as `volume`) and writes it to `opts.out` atomically.
pub fn snapshot(
    stack: &Stack,
    volume: Arc<Volume>,
    analysis: Option<&AnalysisOutput>,
    manifest: Option<&Manifest>,
    overlays: &[Overlay],
    opts: &SnapshotOptions,
) -> Result<SnapshotSummary, ExportError> {
    let dims = [volume.columns, volume.rows, volume.slices];
    let n = volume.columns * volume.rows;
    let len = n * volume.slices;
    if let Some(a) = analysis
        && a.labels.len() != len
    {
        return Err(ExportError::Analysis(format!(
            "it was made on a {}×{}×{} grid, the series is {}×{}×{}",
            a.summary.grid[0], a.summary.grid[1], a.summary.grid[2], dims[0], dims[1], dims[2]
        )));
    }
    let mut notes: Vec<String> = overlays.iter().flat_map(|o| o.notes.iter().map(move |m| format!("{}: {m}", o.name))).collect();
    let sources = label_sources(analysis, manifest, overlays);
    let (composite, left_out) = overlays::compose(len, &sources);
    if !left_out.is_empty() {
        notes.push(format!("past 255 labels, {} left out: {}", left_out.len(), left_out.join(", ")));
    }
    let has_labels = !sources.is_empty();
    // The heatmap: the analysis's attention, else the first map among the overlays.
    let map = overlays.iter().find_map(|o| match &o.content {
        Content::Map { values, range, .. } => Some((values.clone(), *range)),
        Content::Labels { .. } | Content::Report(_) => None,
    });
    let (heat, attention): (Option<Arc<Vec<f32>>>, Option<AttentionStyle>) = match (analysis, manifest, map) {
        (Some(a), Some(m), _) if a.attention.len() == len => (
            Some(Arc::new(a.attention.clone())),
            Some(AttentionStyle {
                colormap: Colormap::Inferno,
                opacity: 0.5,
                threshold: m.attention_display_range()[0],
                range: m.attention_display_range(),
                inside_labels: true,
            }),
        ),
        (_, _, Some((values, range))) => (
            Some(values),
            Some(AttentionStyle {
                colormap: Colormap::Viridis,
                opacity: 0.6,
                threshold: range[0],
                range,
                inside_labels: false,
            }),
        ),
        _ => (None, None),
    };
    // The window asked for, else a presentation state's, else the series' own.
    let state_window = overlays.iter().find_map(|o| match &o.content {
        Content::Report(r) => r.window.map(|[center, width]| WindowLevel { center, width }),
        _ => None,
    });
    let window = opts.window.or(state_window).unwrap_or(volume.window);
    let style = SliceStyle {
        window_center: window.center,
        window_width: window.width,
        invert: volume.inverted,
        attention,
        mask: has_labels.then(|| MaskStyle {
            mode: opts.mask_mode,
            fill_opacity: opts.fill_opacity,
            outline_width: 1,
            colors: composite.table.iter().map(|(_, c, _)| *c).collect(),
            visible: composite.table.iter().enumerate().map(|(i, (_, _, s))| i > 0 && *s).collect(),
        }),
    };
    let renderer = OffscreenRenderer::new().ok();
    let renderer_name = renderer
        .as_ref()
        .map(|r| r.adapter.clone())
        .unwrap_or_else(|| "CPU reference renderer (no graphics adapter)".into());
    let fit = |wmm: f64, hmm: f64| {
        let scale = f64::from(opts.size.max(16)) / wmm.max(hmm);
        (((wmm * scale).round() as u32).max(1), ((hmm * scale).round() as u32).max(1))
    };
    let (image, view) = match opts.view {
        View::Slice(k) => {
            let k = k.unwrap_or(volume.slices / 2);
            if k >= volume.slices {
                return Err(ExportError::Source(format!("slice {} asked of {}", k + 1, volume.slices)));
            }
            let slice = |v: &[f32]| v[k * n..(k + 1) * n].to_vec();
            let pixels = SlicePixels::new(
                volume.columns,
                volume.rows,
                volume.channels,
                volume.slice(k).ok_or_else(|| ExportError::Source("the slice has no values".into()))?.to_vec(),
                heat.as_ref().map(|h| slice(h)),
                has_labels.then(|| composite.labels[k * n..(k + 1) * n].to_vec()),
            )
            .ok_or_else(|| ExportError::Build("the layers do not agree in size".into()))?;
            let spacing = stack.display_spacing();
            let (w, h) = fit(volume.columns as f64 * spacing[0], volume.rows as f64 * spacing[1]);
            let mut picture = draw_slice(&renderer, &Arc::new(pixels), &style, w, h)?;
            // Regions reports measured on this slice, in the picture's pixels.
            let (sx, sy) = (f64::from(w) / volume.columns as f64, f64::from(h) / volume.rows as f64);
            for region in overlays::report_regions(overlays, stack, k) {
                let points: Vec<[f64; 2]> = region.outline(0.5).iter().map(|p| [p[0] * sx, p[1] * sy]).collect();
                picture.dots(&points, 1.0, REPORT_COLOUR);
            }
            // The reader's measurements of the analysis, as the report's key images show them.
            if let Some(review) = analysis.and_then(|a| a.review.as_ref()) {
                super::export::burn_measurements(&mut picture, &review.measurements, k, [volume.columns, volume.rows]);
            }
            (picture, format!("slice {} of {}", k + 1, volume.slices))
        }
        View::Plane(plane, at) => {
            let g = volume.geometry.as_ref().ok_or_else(|| ExportError::Source("the series has no geometry to reformat".into()))?;
            let centre = g.voxel_to_patient((dims[0] as f64 - 1.0) / 2.0, (dims[1] as f64 - 1.0) / 2.0, (dims[2] as f64 - 1.0) / 2.0);
            let mut r = Reformat::new(g, dims, plane, &centre).ok_or_else(|| ExportError::Source("the series' geometry cannot be reformatted".into()))?;
            if let Some(mm) = at {
                let [lo, hi] = r.depth_range;
                if mm < lo || mm > hi {
                    return Err(ExportError::Source(format!(
                        "{} plane at {mm:.1} mm lies outside the series ({lo:.1} to {hi:.1} mm)",
                        plane.name()
                    )));
                }
                r.set_depth(mm);
            }
            let plane_pixels = ReslicePlane::of(&r);
            let image: crate::render::Shared<f32> = volume.clone();
            let heat_layer = heat.map(|h| {
                let d: crate::render::Shared<f32> = h;
                Arc::new(VolumeLayer::new(d))
            });
            let label_layer = has_labels.then(|| {
                let d: crate::render::Shared<u8> = Arc::new(composite.labels.clone());
                Arc::new(VolumeLayer::new(d))
            });
            let size = dims.map(|d| d as u32);
            let volume_pixels = VolumePixels::new(size, Arc::new(VolumeLayer::new(image)), heat_layer, label_layer)
                .ok_or_else(|| ExportError::Build("the layers do not agree in size".into()))?;
            let (w, h) = fit(r.columns as f64 * r.spacing, r.rows as f64 * r.spacing);
            let dest = [0.0, 0.0, w as f32, h as f32];
            let picture = match renderer {
                Some(mut gpu) => gpu
                    .render_resliced(&volume_pixels, &plane_pixels, &style, w, h, dest)
                    .map_err(|e| ExportError::Build(e.to_string()))?,
                None => {
                    let px = reslice_reference(&volume_pixels, &plane_pixels)
                        .ok_or_else(|| ExportError::Build("the reformatted plane could not be made".into()))?;
                    let u = SliceUniforms::new(
                        &style,
                        px.columns,
                        px.rows,
                        false,
                        crate::render::image_to_clip(px.columns, px.rows, [w as f32, h as f32], dest),
                        px.attention.is_some(),
                        px.labels.is_some(),
                    );
                    render_reference(&px, &u, style.colormap(), w, h)
                }
            };
            (picture, format!("{} plane at {:.1} mm", plane.name().to_lowercase(), r.depth))
        }
    };
    write_png(&opts.out, &image)?;
    Ok(SnapshotSummary {
        path: opts.out.clone(),
        width: image.width,
        height: image.height,
        view,
        renderer: renderer_name,
        notes,
    })
}

fn draw_slice(renderer: &Option<OffscreenRenderer>, pixels: &Arc<SlicePixels>, style: &SliceStyle, w: u32, h: u32) -> Result<RgbaImage, ExportError> {
    let dest = [0.0, 0.0, w as f32, h as f32];
    match renderer {
        Some(r) => r.render(pixels, style, w, h, dest).map_err(|e| ExportError::Build(e.to_string())),
        None => {
            let u = SliceUniforms::for_pixels(style, pixels, [w as f32, h as f32], dest);
            Ok(render_reference(pixels, &u, style.colormap(), w, h))
        }
    }
}

/// Writes an RGBA picture as PNG beside its final name, then renames it into place.
pub fn write_png(path: &Path, image: &RgbaImage) -> Result<(), ExportError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width, image.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| ExportError::Build(e.to_string()))?;
        writer.write_image_data(&image.data).map_err(|e| ExportError::Build(e.to_string()))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot.png".into());
    let staged = path.with_file_name(format!(".{name}.partial"));
    let fail = |e: std::io::Error| ExportError::Write(format!("{}: {e}", path.display()));
    std::fs::write(&staged, &bytes).map_err(fail)?;
    std::fs::rename(&staged, path).map_err(fail)
}
