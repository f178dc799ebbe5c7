//! The brain extractor (the "brain_extractor" step): two 3D networks trained on real scans say
//! which voxels are brain, in place of the slice model's own idea of the brain's edge. Focal
//! runs deepbet's (Fisch et al. 2024, MIT licence), converted to ONNX from its PyPI wheel by
//! `scripts/fetch-deepbet.sh`, with the steps its own code takes:
//!
//! 1. the volume in RAS axis order at its own voxel grid (each volume axis taken as the patient
//!    axis nearest its direction), negative values set to 0;
//! 2. resized to `locate_size`³ by nearest neighbour ("nearest-exact": output o takes input
//!    ⌊(o + ½)·n/m⌋); its 0.5th and 99.5th percentiles (linear between ranks) are `lo`, `hi`;
//! 3. normalised: (v − lo)/(hi − lo) clipped to [0, 1], standardised by its own mean and
//!    standard deviation, then × 0.226 + 0.449;
//! 4. the locate model's p(brain) > 0.5, its largest 6-connected object; along each axis the
//!    planes holding more than 2 % brain give the box, scaled to the full grid, grown by
//!    `margin` of its size on each side (centre and size rounded half to even) and clipped;
//! 5. the box resized to `segment_size`³ the same way, normalised with the same `lo`, `hi`
//!    (and its own mean and deviation), the segment model run, its output brought back to the
//!    box by nearest neighbour;
//! 6. p(brain) > `threshold`, the largest 6-connected object, holes (background not reached
//!    from the box's faces) filled.

use super::engine::Engine;
use super::extent::RasVolume;
use super::{InferenceError, Result};
use crate::study::Volume;

/// Nearest-neighbour resize of a C-order 3D array from `dims` to `out`.
fn resize_nearest<T: Copy>(data: &[T], dims: [usize; 3], out: [usize; 3]) -> Vec<T> {
    let index: Vec<Vec<usize>> = (0..3)
        .map(|a| {
            let scale = dims[a] as f64 / out[a] as f64;
            (0..out[a])
                .map(|o| (((o as f64 + 0.5) * scale).floor() as usize).min(dims[a] - 1))
                .collect()
        })
        .collect();
    let mut values = Vec::with_capacity(out.iter().product());
    for &x in &index[0] {
        for &y in &index[1] {
            let row = (x * dims[1] + y) * dims[2];
            values.extend(index[2].iter().map(|&z| data[row + z]));
        }
    }
    values
}

/// The q-quantile (0–1) of values, linear between ranks.
fn quantile(values: &[f32], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    f64::from(sorted[i]) + frac * (f64::from(next) - f64::from(sorted[i]))
}

/// Step 3 of the module's description, in place.
fn normalise(values: &mut [f32], lo: f64, hi: f64) -> Result<()> {
    let n = values.len() as f64;
    let mut sum = 0f64;
    for v in values.iter_mut() {
        let x = ((f64::from(*v) - lo) / (hi - lo)).clamp(0.0, 1.0);
        *v = x as f32;
        sum += x;
    }
    let mean = sum / n;
    let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    if !(var > 0.0) {
        return Err(InferenceError::Input(
            "the volume has no contrast for the brain extractor".into(),
        ));
    }
    let sd = var.sqrt();
    for v in values.iter_mut() {
        *v = (0.226 * (f64::from(*v) - mean) / sd + 0.449) as f32;
    }
    Ok(())
}

/// p > threshold, keeping its largest 6-connected object, as 0/1 (C order, `dims`).
fn largest_object(p: &[f32], threshold: f32, [x, y, z]: [usize; 3]) -> Vec<u8> {
    let mut mask: Vec<u8> = p.iter().map(|&v| u8::from(v > threshold)).collect();
    // keep_largest_component indexes column-fastest: C order [x, y, z] is its [z, y, x].
    super::postprocess::keep_largest_component(&mut mask, [z, y, x]);
    mask
}

/// Sets to 1 the background voxels that 6-connected background cannot reach from a face.
fn fill_holes(mask: &mut [u8], [nx, ny, nz]: [usize; 3]) {
    const OUTSIDE: u8 = 2;
    let mut stack = Vec::new();
    let index = |x: usize, y: usize, z: usize| (x * ny + y) * nz + z;
    for x in 0..nx {
        for y in 0..ny {
            for z in 0..nz {
                let face = x == 0 || y == 0 || z == 0 || x + 1 == nx || y + 1 == ny || z + 1 == nz;
                let i = index(x, y, z);
                if face && mask[i] == 0 {
                    mask[i] = OUTSIDE;
                    stack.push((x, y, z));
                }
            }
        }
    }
    while let Some((x, y, z)) = stack.pop() {
        let mut visit = |x: usize, y: usize, z: usize| {
            let i = index(x, y, z);
            if mask[i] == 0 {
                mask[i] = OUTSIDE;
                stack.push((x, y, z));
            }
        };
        if x > 0 {
            visit(x - 1, y, z);
        }
        if x + 1 < nx {
            visit(x + 1, y, z);
        }
        if y > 0 {
            visit(x, y - 1, z);
        }
        if y + 1 < ny {
            visit(x, y + 1, z);
        }
        if z > 0 {
            visit(x, y, z - 1);
        }
        if z + 1 < nz {
            visit(x, y, z + 1);
        }
    }
    for v in mask.iter_mut() {
        *v = u8::from(*v != OUTSIDE);
    }
}

/// Step 4: the box [start, end) per axis of the full grid `dims` around the brain found on the
/// `small` grid.
fn bounding_box(mask: &[u8], small: [usize; 3], dims: [usize; 3], margin: f64) -> Option<[[usize; 2]; 3]> {
    let mut boxed = [[0usize; 2]; 3];
    for a in 0..3 {
        let plane: usize = small.iter().product::<usize>() / small[a];
        let mut counts = vec![0usize; small[a]];
        for x in 0..small[0] {
            for y in 0..small[1] {
                for z in 0..small[2] {
                    if mask[(x * small[1] + y) * small[2] + z] != 0 {
                        counts[[x, y, z][a]] += 1;
                    }
                }
            }
        }
        let kept: Vec<usize> =
            (0..small[a]).filter(|&i| counts[i] as f64 / plane as f64 > 0.02).collect();
        let (&first, &last) = (kept.first()?, kept.last()?);
        let scale = dims[a] as f64 / small[a] as f64;
        let centre = ((last + 1 + first) as f64 / 2.0 * scale).round_ties_even();
        let size = ((last + 1 - first) as f64 * scale * (1.0 + 2.0 * margin)).round_ties_even();
        let start = ((centre - size / 2.0) as i64).max(0) as usize;
        let end = ((centre + size / 2.0) as i64).clamp(0, dims[a] as i64) as usize;
        if end <= start {
            return None;
        }
        boxed[a] = [start, end];
    }
    Some(boxed)
}

/// The brain per voxel of `volume` (slice-major), or None when the model has no extractor.
pub fn brain_mask(engine: &mut Engine, volume: &Volume) -> Result<Option<Vec<bool>>> {
    let Some(spec) = engine.manifest.extractor.clone() else {
        return Ok(None);
    };
    let ras = RasVolume::of(volume, "brain extractor")?;
    let dims = ras.dims;
    let small_dims = [spec.locate_size; 3];
    let mut small = resize_nearest(&ras.values, dims, small_dims);
    let (lo, hi) = (quantile(&small, 0.005), quantile(&small, 0.995));
    if !(hi > lo) {
        return Err(InferenceError::Input(
            "the volume has no contrast for the brain extractor".into(),
        ));
    }
    normalise(&mut small, lo, hi)?;
    let located = engine.run_extractor(0, small, small_dims)?;
    let located = largest_object(&located, 0.5, small_dims);
    let Some(boxed) = bounding_box(&located, small_dims, dims, spec.margin) else {
        return Err(InferenceError::Input(
            "the brain extractor found no brain in this volume".into(),
        ));
    };
    let crop = [0, 1, 2].map(|a| boxed[a][1] - boxed[a][0]);
    let mut cropped = Vec::with_capacity(crop.iter().product());
    for x in boxed[0][0]..boxed[0][1] {
        for y in boxed[1][0]..boxed[1][1] {
            let row = (x * dims[1] + y) * dims[2];
            cropped.extend_from_slice(&ras.values[row + boxed[2][0]..row + boxed[2][1]]);
        }
    }
    let seg_dims = [spec.segment_size; 3];
    let mut input = resize_nearest(&cropped, crop, seg_dims);
    drop(cropped);
    normalise(&mut input, lo, hi)?;
    let p = engine.run_extractor(1, input, seg_dims)?;
    let p = resize_nearest(&p, seg_dims, crop);
    let mut inside = largest_object(&p, spec.threshold, crop);
    fill_holes(&mut inside, crop);
    let mut mask = vec![false; dims.iter().product()];
    for (i, x) in (boxed[0][0]..boxed[0][1]).enumerate() {
        for (j, y) in (boxed[1][0]..boxed[1][1]).enumerate() {
            let from = (i * crop[1] + j) * crop[2];
            let to = (x * dims[1] + y) * dims[2] + boxed[2][0];
            for k in 0..crop[2] {
                mask[to + k] = inside[from + k] != 0;
            }
        }
    }
    Ok(Some(ras.to_volume(&mask)))
}

/// Makes the labels follow the extracted brain: labelled voxels outside it become background,
/// and background voxels inside it take the tissue class the network gave most probability
/// (`probabilities` [slice][class][row][column], `label_of` each class channel's label index,
/// background 0). Returns (voxels set to background, voxels labelled).
pub fn apply(labels: &mut [u8], brain: &[bool], probabilities: &[f32], label_of: &[u8], plane: usize) -> (usize, usize) {
    let classes = label_of.len();
    let (mut removed, mut added) = (0, 0);
    for (v, (l, &b)) in labels.iter_mut().zip(brain).enumerate() {
        if *l != 0 && !b {
            *l = 0;
            removed += 1;
        } else if *l == 0 && b {
            let (k, i) = (v / plane, v % plane);
            let best = (0..classes)
                .filter(|&c| label_of[c] != 0)
                .max_by(|&x, &y| {
                    probabilities[(k * classes + x) * plane + i].total_cmp(&probabilities[(k * classes + y) * plane + i])
                });
            if let Some(c) = best {
                *l = label_of[c];
                added += 1;
            }
        }
    }
    (removed, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_exact_picks_the_centre_sample() {
        let line: Vec<u32> = (0..4).collect();
        assert_eq!(resize_nearest(&line, [1, 1, 4], [1, 1, 8]), [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(resize_nearest(&line, [1, 1, 4], [1, 1, 2]), [1, 3]);
        assert_eq!(resize_nearest(&line, [1, 1, 4], [1, 1, 3]), [0, 2, 3]);
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v: Vec<f32> = (0..=10).rev().map(|x| x as f32).collect();
        assert!((quantile(&v, 0.5) - 5.0).abs() < 1e-9);
        assert!((quantile(&v, 0.05) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn holes_are_filled_and_the_box_is_grown() {
        // A hollow 3x3x3 cube inside a 5x5x5 grid: its centre is a hole.
        let dims = [5, 5, 5];
        let mut mask = vec![0u8; 125];
        for x in 1..4 {
            for y in 1..4 {
                for z in 1..4 {
                    mask[(x * 5 + y) * 5 + z] = u8::from((x, y, z) != (2, 2, 2));
                }
            }
        }
        fill_holes(&mut mask, dims);
        assert_eq!(mask.iter().filter(|&&v| v == 1).count(), 27);
        // Brain in planes 1..4 of a 5-grid, scaled to 10 with 10% margin: centre 5, size 7.2 → 7.
        let b = bounding_box(&mask, dims, [10, 10, 10], 0.1).unwrap();
        assert_eq!(b, [[1, 8]; 3]);
    }

    #[test]
    fn labels_follow_the_brain() {
        // Two voxels, two classes (background, tissue): one labelled outside, one unlabelled inside.
        let mut labels = vec![2u8, 0];
        let probs = [0.9f32, 0.8, 0.1, 0.2];
        assert_eq!(apply(&mut labels, &[false, true], &probs, &[0, 2], 2), (1, 1));
        assert_eq!(labels, [0, 2]);
    }
}
