//! The GPU volume behind the reformatted views: the series on screen, its heatmap and its
//! labels as volume layers, each rebuilt only when its source changes (a new volume, another
//! heatmap, an edit of the labels), and the display ranges of the projection view.

use std::sync::Arc;

use crate::ui::FocalApp;
use crate::render::{VolumeLayer, VolumePixels};

#[derive(Debug, Clone, PartialEq, Eq)]
struct LayerKey {
    series: String,
    source: usize,
    detail: (crate::ui::Heatmap, usize, u64),
}

/// The GPU volume of the series on screen, rebuilt layer by layer as its parts change.
#[derive(Default)]
pub struct MprCache {
    image: Option<(LayerKey, Arc<VolumeLayer<f32>>)>,
    heat: Option<(LayerKey, Option<Arc<VolumeLayer<f32>>>)>,
    labels: Option<(LayerKey, Option<Arc<VolumeLayer<u8>>>)>,
    pixels: Option<([usize; 3], Arc<VolumePixels>)>,
    /// The projection's display ranges: image values and heatmap values (see `projection_ranges`).
    pub(in crate::ui) ranges: ([f32; 2], Option<[f32; 2]>),
}

/// Value at quantile `q` of about 200,000 evenly spaced values of `data` (None when empty).
fn sampled_quantile(data: &[f32], q: f64) -> Option<f32> {
    let step = (data.len() / 200_000).max(1);
    let mut v: Vec<f32> = data.iter().step_by(step).copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    Some(*x)
}

/// Maxima along a ray are brighter than the slices' values: the projection's window spans the
/// volume's 60th percentile to its maximum, and its heatmap shows only what is above the top
/// of the slices' display range (up to the map's maximum).
fn projection_ranges(image: &[f32], heat: Option<&[f32]>, slice_top: f32) -> ([f32; 2], Option<[f32; 2]>) {
    let lo = sampled_quantile(image, 0.6).unwrap_or(0.0);
    let hi = image.iter().copied().filter(|x| x.is_finite()).fold(lo + 1.0, f32::max);
    let heat = heat.map(|h| {
        let top = h.iter().copied().fold(slice_top, f32::max);
        [slice_top, top.max(slice_top + 1e-3)]
    });
    ([lo, hi], heat)
}

/// Why the series on screen cannot be reformatted (None: it can).
pub(in crate::ui) fn unavailable(app: &FocalApp) -> Option<String> {
    let Some(current) = app.doc.current() else {
        return Some("Open a study to see its planes".into());
    };
    let Some(volume) = &current.volume else {
        return Some("Loading the volume…".into());
    };
    if volume.geometry.is_none() {
        return Some("This series has no usable patient geometry (ImagePositionPatient / ImageOrientationPatient), so it cannot be reformatted".into());
    }
    if volume.channels != 1 {
        return Some("Colour series are shown in 1×1 only".into());
    }
    // wgpu's default 3D texture limit, which every desktop adapter and lavapipe meet.
    const LIMIT: usize = 2048;
    if [volume.columns, volume.rows, volume.slices].iter().any(|&n| n > LIMIT) {
        return Some(format!("The volume is larger than {LIMIT} voxels along an axis; reformatting needs it to fit"));
    }
    None
}

/// The image, heatmap and labels of the series on screen as one GPU volume (cached).
pub(in crate::ui) fn volume_pixels(app: &mut FocalApp) -> Option<Arc<VolumePixels>> {
    let current = app.doc.current()?;
    let volume = current.volume.clone()?;
    let series = current.uid.clone();
    let n = volume.columns * volume.rows;
    let slices = volume.slices;
    let fits = |a: &&crate::ui::AnalysisView| a.columns == volume.columns && a.rows == volume.rows && a.slices == slices;
    // What the layers are made from: (attention, edits) of an analysis of this grid.
    let analysis = app.doc.current_analysis().filter(fits).map(|a| (a.attention.clone(), a.edits));
    let heat_key = crate::ui::insights::heat_key(app);
    let key = |source: usize, detail| LayerKey {
        series: series.clone(),
        source,
        detail,
    };
    let image_key = key(Arc::as_ptr(&volume) as usize, (crate::ui::Heatmap::Attention, 0, 0));
    let attention_ptr = analysis.as_ref().map_or(0, |(a, _)| Arc::as_ptr(a) as usize);
    let edits = analysis.as_ref().map_or(u64::MAX, |(_, e)| *e);
    // The model's attention cut to the labelled brain (the overlay panel's setting) is cut here,
    // in the volume, so that a maximum-intensity projection, which has no labels, shows what the
    // planes show; it follows the labels' edits.
    let inside_brain = app.doc.heatmap() == crate::ui::Heatmap::Attention && app.doc.settings().attention.inside_labels;
    let heat = key(attention_ptr, (heat_key.0, heat_key.1, if inside_brain { edits.wrapping_add(1) } else { 0 }));
    let composite = app.object_composite().cloned();
    let labels = match &composite {
        Some(c) => key(Arc::as_ptr(c) as usize, (crate::ui::Heatmap::Attention, 1, 0)),
        None => key(attention_ptr, (crate::ui::Heatmap::Attention, 0, edits)),
    };

    let mut changed = false;
    if app.mpr.image.as_ref().is_none_or(|(k, _)| *k != image_key) {
        let data: crate::render::Shared<f32> = volume.clone();
        app.mpr.image = Some((image_key, Arc::new(VolumeLayer::new(data))));
        changed = true;
    }
    if app.mpr.heat.as_ref().is_none_or(|(k, _)| *k != heat) {
        let layer = if app.doc.heatmap() == crate::ui::Heatmap::Attention {
            let labels = app.doc.current_analysis().filter(fits).map(|a| &a.labels);
            analysis.as_ref().map(|(a, _)| {
                let data: crate::render::Shared<f32> = match labels.filter(|l| inside_brain && l.len() == a.len()) {
                    Some(l) => Arc::new(a.iter().zip(l.iter()).map(|(&h, &k)| if k == 0 { 0.0 } else { h }).collect::<Vec<f32>>()),
                    None => a.clone(),
                };
                data
            })
        } else {
            let planes: Vec<Option<Vec<f32>>> = (0..slices).map(|k| crate::ui::insights::heat_plane(app, k, n)).collect();
            planes.iter().any(Option::is_some).then(|| {
                let mut all = vec![0f32; n * slices];
                for (k, p) in planes.into_iter().enumerate() {
                    if let Some(p) = p {
                        all[k * n..(k + 1) * n].copy_from_slice(&p);
                    }
                }
                let data: crate::render::Shared<f32> = Arc::new(all);
                data
            })
        };
        let layer = layer.filter(|d| (**d).as_ref().len() == n * slices);
        app.mpr.heat = Some((heat, layer.map(|d| Arc::new(VolumeLayer::new(d)))));
        changed = true;
    }
    if app.mpr.labels.as_ref().is_none_or(|(k, _)| *k != labels) {
        let layer = match &composite {
            Some(c) => {
                let data: crate::render::Shared<u8> = c.clone();
                Some(Arc::new(VolumeLayer::new(data)))
            }
            None => app.doc.current_analysis().filter(fits).map(|a| {
                let data: crate::render::Shared<u8> = Arc::new(a.labels.clone());
                Arc::new(VolumeLayer::new(data))
            }),
        };
        app.mpr.labels = Some((labels, layer));
        changed = true;
    }
    if changed || app.mpr.pixels.is_none() {
        let image = app.mpr.image.as_ref()?.1.clone();
        let heat = app.mpr.heat.as_ref().and_then(|(_, l)| l.clone());
        let labels = app.mpr.labels.as_ref().and_then(|(_, l)| l.clone());
        let size = [volume.columns as u32, volume.rows as u32, slices as u32];
        let slice_top = app.doc.settings().attention.range[1];
        app.mpr.ranges = projection_ranges((*image.data).as_ref(), heat.as_ref().map(|h| (*h.data).as_ref()), slice_top);
        let pixels = VolumePixels::new(size, image, heat, labels)?;
        app.mpr.pixels = Some(([volume.columns, volume.rows, slices], Arc::new(pixels)));
    }
    app.mpr.pixels.as_ref().map(|(_, p)| p.clone())
}

