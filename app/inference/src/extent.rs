//! The brain extent (model 2.1's `brain_extent` step): a small 3D model that sees the whole
//! volume at a coarse grid and says where the brain is, so that tissue labels the slice model
//! puts on the skull base, orbits, face or neck are dropped.
//!
//! The volume is put in RAS axis order (each volume axis mapped to the patient axis nearest
//! its direction), resampled to the manifest's grid with a separable triangle filter, scaled
//! by a percentile of its values > 0 and padded; the model's p(brain) comes back the same way.
//! `models/training/mask3d.py` implements the same steps for training and the golden outputs.

use super::engine::Engine;
use super::manifest::ExtentSpec;
use super::preprocess::{percentile_of_positive, round_up};
use super::{InferenceError, Result};
use crate::study::Volume;

/// Resamples a C-order 3D array (`dims`, last axis fastest) along `axis` from sample spacing
/// `src` to `dst` (mm), both grids starting at the first sample: output j lies at j × dst.
/// Weights are a triangle of half-width max(src, dst), normalised to sum 1: linear
/// interpolation when upsampling, an anti-aliasing average when downsampling. `n_out` is
/// the output length (by default every output position within the input's extent).
pub fn resample_axis(
    data: &[f32],
    dims: [usize; 3],
    axis: usize,
    src: f64,
    dst: f64,
    n_out: Option<usize>,
) -> (Vec<f32>, [usize; 3]) {
    let n = dims[axis];
    let n_out = n_out.unwrap_or_else(|| ((n.saturating_sub(1)) as f64 * src / dst + 1e-6).floor() as usize + 1);
    let half = src.max(dst);
    let weights: Vec<Vec<(usize, f32)>> = (0..n_out)
        .map(|j| {
            let y = j as f64 * dst;
            let lo = ((y - half) / src - 1e-9).ceil().max(0.0) as usize;
            let hi = (((y + half) / src + 1e-9).floor() as usize).min(n.saturating_sub(1));
            let mut w: Vec<(usize, f64)> = (lo..=hi)
                .map(|i| (i, 1.0 - (i as f64 * src - y).abs() / half))
                .filter(|(_, w)| *w > 0.0)
                .collect();
            if w.is_empty() {
                // Past the last sample (upsampling only): the nearest one.
                w.push((((y / src).round() as usize).min(n.saturating_sub(1)), 1.0));
            }
            let total: f64 = w.iter().map(|(_, w)| w).sum();
            w.into_iter().map(|(i, v)| (i, (v / total) as f32)).collect()
        })
        .collect();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out_dims = dims;
    out_dims[axis] = n_out;
    let mut out = vec![0f32; outer * n_out * inner];
    for o in 0..outer {
        for (j, w) in weights.iter().enumerate() {
            let dst_row = &mut out[(o * n_out + j) * inner..(o * n_out + j + 1) * inner];
            for &(i, wi) in w {
                let src_row = &data[(o * n + i) * inner..(o * n + i + 1) * inner];
                for (d, s) in dst_row.iter_mut().zip(src_row) {
                    *d += wi * s;
                }
            }
        }
    }
    (out, out_dims)
}

/// How the volume's axes (column, row, slice) map to RAS: `axis[r]` is the volume axis along
/// patient axis r (0 right, 1 anterior, 2 superior) and `flip[r]` whether its index runs the
/// other way. Each volume axis goes to the patient axis nearest its direction; without a
/// geometry a DICOM axial stack is assumed (columns to the left, rows to the back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RasAxes {
    pub axis: [usize; 3],
    pub flip: [bool; 3],
}

impl RasAxes {
    pub fn of(volume: &Volume) -> RasAxes {
        let Some(g) = volume.geometry.as_ref() else {
            return RasAxes {
                axis: [0, 1, 2],
                flip: [true, true, false],
            };
        };
        // DICOM patient coordinates are LPS: RAS components are (-x, -y, z).
        let ras = |d: [f64; 3]| [-d[0], -d[1], d[2]];
        let dirs = [ras(g.row_direction), ras(g.column_direction), ras(g.slice_direction)];
        // Assign the largest |component| first, so that each patient axis gets one volume axis.
        let mut pairs: Vec<(f64, usize, usize)> = (0..3)
            .flat_map(|v| (0..3).map(move |r| (v, r)))
            .map(|(v, r)| (dirs[v][r].abs(), v, r))
            .collect();
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut axis, mut flip) = ([usize::MAX; 3], [false; 3]);
        let mut used = [false; 3];
        for (_, v, r) in pairs {
            if axis[r] == usize::MAX && !used[v] {
                axis[r] = v;
                flip[r] = dirs[v][r] < 0.0;
                used[v] = true;
            }
        }
        RasAxes { axis, flip }
    }
}

/// A grey-level volume in RAS axis order at its own voxel spacing, C order [x, y, z], and how
/// to bring arrays on that grid back to the volume's (slice-major) order.
pub struct RasVolume {
    pub values: Vec<f32>,
    pub dims: [usize; 3],
    /// Voxel spacing along x, y, z (mm).
    pub spacing: [f64; 3],
    axes: RasAxes,
    volume_dims: [usize; 3],
}

impl RasVolume {
    /// The volume's values (negative ones set to 0) in RAS order; `what` names the step that
    /// needs it in errors.
    pub fn of(volume: &Volume, what: &str) -> Result<RasVolume> {
        if volume.channels != 1 {
            return Err(InferenceError::Input(format!("the {what} needs a grey-level volume")));
        }
        let vdims = [volume.columns, volume.rows, volume.slices];
        if vdims.contains(&0) || volume.data.len() != vdims.iter().product::<usize>() {
            return Err(InferenceError::Input("the volume has no voxels".into()));
        }
        let spacing = volume.geometry.as_ref().map_or([1.0, 1.0, 1.0], |g| g.spacing);
        if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(InferenceError::Input(format!(
                "voxel spacing {spacing:?} mm is not usable"
            )));
        }
        let axes = RasAxes::of(volume);
        let dims = [vdims[axes.axis[0]], vdims[axes.axis[1]], vdims[axes.axis[2]]];
        let mut values = vec![0f32; dims.iter().product()];
        for x in 0..dims[0] {
            for y in 0..dims[1] {
                let row = (x * dims[1] + y) * dims[2];
                for z in 0..dims[2] {
                    values[row + z] = volume.data[volume_index(&axes, vdims, dims, [x, y, z])].max(0.0);
                }
            }
        }
        Ok(RasVolume {
            values,
            dims,
            spacing: [spacing[axes.axis[0]], spacing[axes.axis[1]], spacing[axes.axis[2]]],
            axes,
            volume_dims: vdims,
        })
    }

    /// An array on the RAS grid (C order, `self.dims`) in the volume's slice-major order.
    pub fn to_volume<T: Copy + Default>(&self, ras: &[T]) -> Vec<T> {
        let dims = self.dims;
        let mut out = vec![T::default(); self.volume_dims.iter().product()];
        for x in 0..dims[0] {
            for y in 0..dims[1] {
                for z in 0..dims[2] {
                    out[volume_index(&self.axes, self.volume_dims, dims, [x, y, z])] =
                        ras[(x * dims[1] + y) * dims[2] + z];
                }
            }
        }
        out
    }
}

/// The extent model's input for a volume and how to bring its output back.
pub struct ExtentInput {
    /// Normalised, padded input, C order [px, py, pz] (the model's [1, 1, X, Y, Z]).
    pub values: Vec<f32>,
    /// Padded dimensions.
    pub padded: [usize; 3],
    /// The grid before padding.
    pub coarse: [usize; 3],
    /// The volume in RAS order (its values taken out once resampled).
    ras: RasVolume,
    grid_mm: f64,
}

/// Index into a slice-major volume of the RAS voxel (x, y, z).
fn volume_index(axes: &RasAxes, vdims: [usize; 3], ras_dims: [usize; 3], xyz: [usize; 3]) -> usize {
    let mut v = [0usize; 3]; // column, row, slice
    for r in 0..3 {
        let i = if axes.flip[r] { ras_dims[r] - 1 - xyz[r] } else { xyz[r] };
        v[axes.axis[r]] = i;
    }
    (v[2] * vdims[1] + v[1]) * vdims[0] + v[0]
}

impl ExtentInput {
    pub fn new(volume: &Volume, spec: &ExtentSpec) -> Result<ExtentInput> {
        let mut ras = RasVolume::of(volume, "brain extent")?;
        let grid_mm = spec.spacing_mm;
        let coarse_len: f64 = (0..3)
            .map(|r| ras.dims[r] as f64 * ras.spacing[r] / grid_mm + 1.0)
            .product();
        if coarse_len > 64e6 {
            return Err(InferenceError::Input(
                "the volume is too large for the brain extent".into(),
            ));
        }
        let (mut values, mut dims) = (std::mem::take(&mut ras.values), ras.dims);
        for (axis, &s) in ras.spacing.iter().enumerate() {
            (values, dims) = resample_axis(&values, dims, axis, s, grid_mm, None);
        }
        let coarse = dims;
        let scale = percentile_of_positive(values.iter().copied(), spec.percentile);
        for v in &mut values {
            let x = *v;
            *v = scale.map_or(0.0, |s| (x / s).clamp(0.0, 1.0));
        }
        let m = spec.size_multiple.max(1);
        let padded = [round_up(coarse[0], m), round_up(coarse[1], m), round_up(coarse[2], m)];
        let mut out = vec![0f32; padded.iter().product()];
        for x in 0..coarse[0] {
            for y in 0..coarse[1] {
                let from = (x * coarse[1] + y) * coarse[2];
                let to = (x * padded[1] + y) * padded[2];
                out[to..to + coarse[2]].copy_from_slice(&values[from..from + coarse[2]]);
            }
        }
        Ok(ExtentInput {
            values: out,
            padded,
            coarse,
            ras,
            grid_mm,
        })
    }

    /// The model's padded output brought back to the volume's grid (slice-major).
    pub fn to_volume(&self, output: &[f32]) -> Vec<f32> {
        let (c, p) = (self.coarse, self.padded);
        let mut values = Vec::with_capacity(c.iter().product());
        for x in 0..c[0] {
            for y in 0..c[1] {
                let from = (x * p[1] + y) * p[2];
                values.extend_from_slice(&output[from..from + c[2]]);
            }
        }
        let mut dims = c;
        for axis in 0..3 {
            (values, dims) = resample_axis(
                &values,
                dims,
                axis,
                self.grid_mm,
                self.ras.spacing[axis],
                Some(self.ras.dims[axis]),
            );
        }
        self.ras.to_volume(&values)
    }
}

/// p(brain) per voxel of `volume` (slice-major), or None when the model has no extent.
pub fn brain_probability(engine: &mut Engine, volume: &Volume) -> Result<Option<Vec<f32>>> {
    let Some(spec) = engine.manifest.extent.clone() else {
        return Ok(None);
    };
    let mut input = ExtentInput::new(volume, &spec)?;
    // The way back needs only the grids, not the input values.
    let output = engine.run_extent(std::mem::take(&mut input.values), input.padded)?;
    Ok(Some(input.to_volume(&output)))
}

/// Sets labels where p(brain) is below `threshold` to background; returns how many changed.
pub fn apply(labels: &mut [u8], brain: &[f32], threshold: f32) -> usize {
    let mut removed = 0;
    for (l, &p) in labels.iter_mut().zip(brain) {
        if *l != 0 && p < threshold {
            *l = 0;
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_averages_and_upsampling_interpolates() {
        let line: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let (coarse, dims) = resample_axis(&line, [1, 1, 10], 2, 1.0, 3.0, None);
        assert_eq!(dims, [1, 1, 4]);
        // A ramp stays a ramp inside (the triangle is symmetric); the ends average one side.
        assert!(
            (coarse[1] - 3.0).abs() < 1e-5 && (coarse[2] - 6.0).abs() < 1e-5,
            "{coarse:?}"
        );
        assert!((coarse[0] - 2.0 / 3.0).abs() < 1e-5, "{coarse:?}");
        let (fine, dims) = resample_axis(&coarse, dims, 2, 3.0, 1.0, Some(10));
        assert_eq!(dims, [1, 1, 10]);
        assert!(
            (fine[4] - 4.0).abs() < 1e-5 && (fine[9] - coarse[3]).abs() < 1e-5,
            "{fine:?}"
        );
        // Along the first axis of a 3D block, every column is treated alike.
        let block: Vec<f32> = (0..4 * 2 * 3).map(|v| (v / 6) as f32).collect();
        let (down, d) = resample_axis(&block, [4, 2, 3], 0, 1.0, 2.0, None);
        assert_eq!(d, [2, 2, 3]);
        assert!(down[6..].iter().all(|v| (v - 2.0).abs() < 1e-5), "{down:?}");
    }

    #[test]
    fn an_axial_stack_maps_to_ras_and_back() {
        use crate::study::geometry::StackGeometry;
        // 4 columns (to the patient's left), 3 rows (to the back), 2 slices (upwards).
        let data: Vec<f32> = (0..24).map(|v| v as f32 + 1.0).collect();
        let volume = Volume {
            columns: 4,
            rows: 3,
            slices: 2,
            channels: 1,
            data: data.clone(),
            geometry: Some(StackGeometry {
                origin: [0.0; 3],
                row_direction: [1.0, 0.0, 0.0],
                column_direction: [0.0, 1.0, 0.0],
                slice_direction: [0.0, 0.0, 1.0],
                spacing: [1.0, 1.0, 1.0],
            }),
            window: crate::study::WindowLevel {
                center: 12.0,
                width: 24.0,
            },
            inverted: false,
            modality: None,
            skipped: Vec::new(),
            contrast: false,
            resampled_from_mm: None,
        };
        let axes = RasAxes::of(&volume);
        assert_eq!(
            axes,
            RasAxes {
                axis: [0, 1, 2],
                flip: [true, true, false]
            }
        );
        let spec = ExtentSpec {
            spacing_mm: 1.0,
            size_multiple: 4,
            percentile: 100.0,
            ..ExtentSpec::for_tests()
        };
        let input = ExtentInput::new(&volume, &spec).unwrap();
        assert_eq!(input.coarse, [4, 3, 2]);
        assert_eq!(input.padded, [4, 4, 4]);
        // RAS (0, 0, 0) is the rightmost column, the front row, the lowest slice: voxel (3, 2, 0).
        assert!((input.values[0] - data[2 * 4 + 3] / 24.0).abs() < 1e-6);
        // Back to the volume: the same values, in the volume's order.
        let back = input.to_volume(&input.values);
        for (b, d) in back.iter().zip(&data) {
            assert!((b - d / 24.0).abs() < 1e-6);
        }
        let mut labels = vec![2u8; 24];
        assert_eq!(apply(&mut labels, &back, 12.5 / 24.0), 12);
    }
}
