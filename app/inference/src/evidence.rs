//! Evidence maps by occlusion: which parts of a slice the model's labels really depend on,
//! measured through the same ONNX session by deleting one patch at a time. Independent of
//! the model's own attention output, and computed on demand for one slice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::preprocess::Preprocessor;
use super::engine::Engine;
use super::faithfulness::argmax_labels;
use super::{InferenceError, Result};
use crate::study::Progress;

/// Occluded patches per model call.
const BATCH: usize = 8;

/// Default side of an occluded patch, in model pixels (1 mm each for Focal's model).
pub const DEFAULT_PATCH: usize = 16;

/// What an evidence map was computed for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvidenceInfo {
    pub slice: usize,
    /// The label whose region was explained; None: every non-background label.
    pub label: Option<u8>,
    pub patch_pixels: usize,
    pub patches: usize,
    /// Largest evidence value on the slice (the display range's top).
    pub max: f32,
    pub seconds: f64,
    pub method: String,
}

/// An evidence map on the volume's slice grid: for each pixel, how much the model's
/// probability of its own labels in the region drops (mean over the region) when the patch
/// around that pixel is deleted. 0 = the labels do not depend on it.
#[derive(Debug, Clone)]
pub struct EvidenceMap {
    pub info: EvidenceInfo,
    pub values: Vec<f32>,
}

/// Computes the evidence map of slice `k` for the pixels labelled `label` (or all labelled
/// pixels), occluding `patch`×`patch` model pixels at a time.
pub fn occlusion(
    engine: &mut Engine,
    pre: &Preprocessor,
    k: usize,
    label: Option<u8>,
    patch: usize,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<EvidenceMap> {
    let start = Instant::now();
    let g = pre.grid;
    if k >= pre.slices() {
        return Err(InferenceError::Input(format!("slice {k} is outside the volume")));
    }
    let patch = patch.clamp(2, 64);
    let (n_pixels, channels, classes) = (g.ph * g.pw, pre.channels(), engine.classes());
    let input = pre.input(k);
    let base = engine.run(input.clone(), 1, g.ph, g.pw)?;
    let base_labels = argmax_labels(&base.probs, classes, n_pixels, 0);
    let class_of = |index: u8| engine.manifest.labels.iter().position(|l| l.index == index);
    let wanted = label.and_then(class_of).map(|c| c as u8);
    if label.is_some() && wanted.is_none() {
        return Err(InferenceError::Input(format!("the model has no label {label:?}")));
    }
    let region: Vec<usize> = (0..g.mh)
        .flat_map(|y| (0..g.mw).map(move |x| y * g.pw + x))
        .filter(|&i| match wanted {
            Some(c) => base_labels[i] == c,
            None => base_labels[i] != 0,
        })
        .collect();
    if region.is_empty() {
        return Err(InferenceError::Input(format!(
            "slice {} has no pixels with that label to explain",
            k + 1
        )));
    }
    let base_p: Vec<f32> = region
        .iter()
        .map(|&i| base.probs[usize::from(base_labels[i]) * n_pixels + i])
        .collect();
    let (ny, nx) = (g.mh.div_ceil(patch), g.mw.div_ceil(patch));
    let patches: Vec<(usize, usize)> = (0..ny).flat_map(|py| (0..nx).map(move |px| (py, px))).collect();
    let mut scores = vec![0f32; patches.len()];
    for (b, chunk) in patches.chunks(BATCH).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(InferenceError::Cancelled);
        }
        let mut batch = Vec::with_capacity(chunk.len() * input.len());
        for &(py, px) in chunk {
            let mut x = input.clone();
            for c in 0..channels {
                for y in py * patch..((py + 1) * patch).min(g.mh) {
                    let row = c * n_pixels + y * g.pw;
                    x[row + px * patch..row + ((px + 1) * patch).min(g.mw)].fill(0.0);
                }
            }
            batch.extend(x);
        }
        let out = engine.run(batch, chunk.len(), g.ph, g.pw)?;
        for (j, _) in chunk.iter().enumerate() {
            let offset = j * classes * n_pixels;
            let drop: f64 = region
                .iter()
                .zip(&base_p)
                .map(|(&i, &p)| f64::from(p - out.probs[offset + usize::from(base_labels[i]) * n_pixels + i]))
                .sum();
            scores[b * BATCH + j] = (drop / region.len() as f64) as f32;
        }
        progress(Progress {
            done: ((b + 1) * BATCH).min(patches.len()),
            total: patches.len(),
        });
    }
    // Patch scores → pixels: bilinear between patch centres, so the map has no block edges.
    let mut model_plane = vec![0f32; n_pixels];
    for y in 0..g.mh {
        for x in 0..g.mw {
            let fy = ((y as f32 + 0.5) / patch as f32 - 0.5).clamp(0.0, (ny - 1) as f32);
            let fx = ((x as f32 + 0.5) / patch as f32 - 0.5).clamp(0.0, (nx - 1) as f32);
            let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(ny - 1), (x0 + 1).min(nx - 1));
            let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
            let s = |py: usize, px: usize| scores[py * nx + px].max(0.0);
            let top = s(y0, x0) * (1.0 - tx) + s(y0, x1) * tx;
            let bottom = s(y1, x0) * (1.0 - tx) + s(y1, x1) * tx;
            model_plane[y * g.pw + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    let values = g.to_volume(&model_plane);
    let max = values.iter().copied().fold(0.0f32, f32::max);
    Ok(EvidenceMap {
        info: EvidenceInfo {
            slice: k,
            label,
            patch_pixels: patch,
            patches: patches.len(),
            max,
            seconds: start.elapsed().as_secs_f64(),
            method: format!(
                "occlusion: each {patch}×{patch} patch set to 0 in every input channel; value = mean drop of the model's probability of its own label over the region"
            ),
        },
        values,
    })
}
