//! Pre-processing: a volume's slices (and those of further series on its grid) to the
//! model's input, as the manifest says; and model-grid planes back to the slice grid.

use super::engine::Engine;
use super::{InferenceError, Result};
use crate::study::Volume;

/// Bilinear resampling of a (h, w) plane to (nh, nw), pixel centres aligned.
pub fn resample(src: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    if (h, w) == (nh, nw) {
        return src.to_vec();
    }
    let mut out = vec![0f32; nh * nw];
    let (sy, sx) = (h as f64 / nh as f64, w as f64 / nw as f64);
    for y in 0..nh {
        let fy = ((y as f64 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f64);
        let (y0, ty) = (fy.floor() as usize, (fy - fy.floor()) as f32);
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..nw {
            let fx = ((x as f64 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f64);
            let (x0, tx) = (fx.floor() as usize, (fx - fx.floor()) as f32);
            let x1 = (x0 + 1).min(w - 1);
            let top = src[y0 * w + x0] * (1.0 - tx) + src[y0 * w + x1] * tx;
            let bottom = src[y1 * w + x0] * (1.0 - tx) + src[y1 * w + x1] * tx;
            out[y * nw + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    out
}

/// Divides by the given percentile (linear interpolation, as numpy) of the values > 0 and
/// clips to [lo, hi]; negative values count as 0.
pub fn normalise(plane: &[f32], percentile: f64, clip: [f32; 2]) -> Vec<f32> {
    scale_and_clip(plane, percentile_of_positive(plane.iter().copied(), percentile), clip)
}

/// Zero-pads a plane at the bottom and right to multiples of `m`.
pub fn pad(plane: &[f32], h: usize, w: usize, m: usize) -> (Vec<f32>, usize, usize) {
    let (ph, pw) = (round_up(h, m), round_up(w, m));
    (pad_to(plane, h, w, ph, pw), ph, pw)
}

/// `n` rounded up to a multiple of `m`.
pub(super) fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// Crops the top-left (h, w) of a (ph, pw) plane.
pub fn crop(plane: &[f32], pw: usize, h: usize, w: usize) -> Vec<f32> {
    (0..h).flat_map(|y| plane[y * pw..y * pw + w].iter().copied()).collect()
}

/// The model's pixel grid for a volume: the slice's physical extent at the model's spacing,
/// padded to the model's size multiple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelGrid {
    pub rows: usize,
    pub columns: usize,
    /// Model grid before padding.
    pub mh: usize,
    pub mw: usize,
    /// Padded model grid (what the model sees).
    pub ph: usize,
    pub pw: usize,
}

impl ModelGrid {
    /// A padded model-grid plane cropped and resampled back to the volume's slice grid.
    pub fn to_volume(&self, padded: &[f32]) -> Vec<f32> {
        resample(&crop(padded, self.pw, self.mh, self.mw), self.mh, self.mw, self.rows, self.columns)
    }
}

/// Makes the model's input for a slice: for each modality slot, the slice and its
/// neighbours (clamped at the ends of the volume), resampled to the model grid, normalised
/// as the manifest says and padded. A slot without a series is zeros.
pub struct Preprocessor<'a> {
    slots: Vec<Option<&'a Volume>>,
    context: usize,
    percentile: f64,
    clip: [f32; 2],
    per_slab: bool,
    pub grid: ModelGrid,
}

impl<'a> Preprocessor<'a> {
    /// `volumes[0]` is the analysed series; the others must already be on its grid.
    pub fn new(engine: &Engine, volumes: &[&'a Volume]) -> Result<Preprocessor<'a>> {
        let m = &engine.manifest;
        let Some(primary) = volumes.first() else {
            return Err(InferenceError::Input("no series to analyse".into()));
        };
        if volumes.iter().any(|v| v.channels != 1) {
            return Err(InferenceError::Input(
                "colour images cannot be segmented by a grey-level MR model".into(),
            ));
        }
        if volumes.len() > m.input.slots.len() {
            return Err(InferenceError::Input(format!(
                "{} series given, but the model takes at most {} ({})",
                volumes.len(),
                m.input.slots.len(),
                m.input.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        if volumes
            .iter()
            .any(|v| (v.rows, v.columns, v.slices) != (primary.rows, primary.columns, primary.slices))
        {
            return Err(InferenceError::Input(
                "every series must be resampled onto the analysed series' grid first".into(),
            ));
        }
        let (rows, columns) = (primary.rows, primary.columns);
        let spacing = primary.geometry.as_ref().map_or([1.0, 1.0, 1.0], |g| g.spacing);
        let target = m.input.pixel_spacing_mm;
        let mh = ((rows as f64 * spacing[1] / target[0]).round() as usize).max(1);
        let mw = ((columns as f64 * spacing[0] / target[1]).round() as usize).max(1);
        if mh > 4096 || mw > 4096 {
            return Err(InferenceError::Input(format!(
                "slices of {mw}×{mh} at the model's spacing are too large"
            )));
        }
        let multiple = m.input.size_multiple;
        let mut slots: Vec<Option<&Volume>> = volumes.iter().copied().map(Some).collect();
        slots.resize(m.input.slots.len(), None);
        Ok(Preprocessor {
            slots,
            context: m.input.context_slices,
            percentile: m.input.normalisation.percentile,
            clip: m.input.normalisation.clip,
            per_slab: m.input.normalisation.scope == "each slot's slab",
            grid: ModelGrid {
                rows,
                columns,
                mh,
                mw,
                ph: round_up(mh, multiple),
                pw: round_up(mw, multiple),
            },
        })
    }

    pub fn channels(&self) -> usize {
        self.slots.len() * (2 * self.context + 1)
    }

    pub fn slices(&self) -> usize {
        self.slots[0].map_or(0, |v| v.slices)
    }

    /// Which slots hold a series.
    pub fn present(&self) -> Vec<bool> {
        self.slots.iter().map(Option::is_some).collect()
    }

    /// The model input for slice `k`: [channels, ph, pw].
    pub fn input(&self, k: usize) -> Vec<f32> {
        let g = self.grid;
        let mut out = Vec::with_capacity(self.channels() * g.ph * g.pw);
        let ctx = self.context as isize;
        for slot in &self.slots {
            let Some(v) = slot else {
                out.resize(out.len() + (2 * self.context + 1) * g.ph * g.pw, 0.0);
                continue;
            };
            let last = v.slices.saturating_sub(1) as isize;
            let planes: Vec<Vec<f32>> = (-ctx..=ctx)
                .map(|d| {
                    let j = (k as isize + d).clamp(0, last) as usize;
                    resample(v.slice(j).unwrap_or(&[]), g.rows, g.columns, g.mh, g.mw)
                })
                .collect();
            let scale = self.per_slab.then(|| percentile_of_positive(planes.iter().flatten().copied(), self.percentile));
            for plane in &planes {
                let normalised = match scale {
                    Some(s) => scale_and_clip(plane, s, self.clip),
                    None => normalise(plane, self.percentile, self.clip),
                };
                out.extend(pad_to(&normalised, g.mh, g.mw, g.ph, g.pw));
            }
        }
        out
    }
}

/// The given percentile (linear interpolation, as numpy) of the values > 0; None if none.
pub(super) fn percentile_of_positive(values: impl Iterator<Item = f32>, percentile: f64) -> Option<f32> {
    let mut positive: Vec<f32> = values.filter(|v| *v > 0.0).collect();
    if positive.is_empty() {
        return None;
    }
    positive.sort_by(f32::total_cmp);
    let pos = percentile / 100.0 * (positive.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(positive.len() - 1);
    let scale = f64::from(positive[lo]) + (f64::from(positive[hi]) - f64::from(positive[lo])) * frac;
    Some(scale.max(1e-6) as f32)
}

fn scale_and_clip(plane: &[f32], scale: Option<f32>, clip: [f32; 2]) -> Vec<f32> {
    match scale {
        Some(s) => plane.iter().map(|v| (v.max(0.0) / s).clamp(clip[0], clip[1])).collect(),
        None => vec![0.0; plane.len()],
    }
}

/// Zero-pads a (h, w) plane at the bottom and right to (ph, pw).
fn pad_to(plane: &[f32], h: usize, w: usize, ph: usize, pw: usize) -> Vec<f32> {
    let mut out = vec![0f32; ph * pw];
    for y in 0..h {
        out[y * pw..y * pw + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1..=10], 99.5) = 9.955
        let v: Vec<f32> = (1..=10).map(|x| x as f32).collect();
        let n = normalise(&v, 99.5, [0.0, 1.0]);
        assert!((n[8] - 9.0 / 9.955).abs() < 1e-6);
        assert_eq!(n[9], 1.0);
    }

    #[test]
    fn resample_identity_and_halving() {
        let v = vec![1.0, 2.0, 3.0, 4.0];
        assert_eq!(resample(&v, 2, 2, 2, 2), v);
        let half = resample(&[0.0, 2.0, 0.0, 2.0], 2, 2, 1, 1);
        assert_eq!(half, vec![1.0]);
    }

    #[test]
    fn pad_to_multiple() {
        let (p, h, w) = pad(&[1.0; 6], 2, 3, 8);
        assert_eq!((h, w), (8, 8));
        assert_eq!(p[0..3], [1.0; 3]);
        assert_eq!(p[3], 0.0);
        assert_eq!(p[8..11], [1.0; 3]);
    }
}
