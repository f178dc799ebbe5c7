//! The bias field's smoothing: a linear trend plus a normalised convolution on a coarse grid.

use rayon::prelude::*;

use super::gaussian::invert;

/// Where each grid index along one axis falls on a coarse grid of `size` cells `cell` mm wide:
/// the lower of its two neighbouring cell centres and the weight of the upper one (a table, so
/// that spreading onto the grid and reading back cost a lookup per axis).
fn axis_cells(len: usize, spacing: f64, cell: f64, size: usize) -> Vec<(usize, f64)> {
    (0..len)
        .map(|i| {
            let c = ((i as f64 + 0.5) * spacing / cell - 0.5).clamp(0.0, (size - 1) as f64);
            let base = (c.floor() as usize).min(size.saturating_sub(2));
            (base, (c - base as f64).clamp(0.0, 1.0))
        })
        .collect()
}

/// The eight coarse cells around a voxel at `p` (grid index per axis) and their trilinear
/// weights, from the axes' tables.
fn corners(p: [usize; 3], tables: &[Vec<(usize, f64)>; 3], size: [usize; 3]) -> [(usize, f64); 8] {
    let cells = [tables[0][p[0]], tables[1][p[1]], tables[2][p[2]]];
    std::array::from_fn(|k| {
        let mut idx = 0;
        let mut w = 1.0;
        for (a, &(base, frac)) in cells.iter().enumerate() {
            let up = (k >> a) & 1 == 1;
            idx = idx * size[a] + (base + usize::from(up)).min(size[a] - 1);
            w *= if up { frac } else { 1.0 - frac };
        }
        (idx, w)
    })
}

/// A smooth field through weighted values at the brain's voxels: a linear trend (weighted
/// least squares), plus what it leaves smoothed by a Gaussian of `sigma` mm. The smoothing is
/// a normalised convolution on a coarse grid (cells sigma/2 mm wide; values and weights spread
/// onto it, each smoothed, their ratio read back at every voxel), so the field is not pulled
/// towards zero at the brain's edge; the trend keeps a ramp whole up to the edge, where a
/// one-sided average alone would flatten it.
pub(super) fn smooth_field(
    brain: &[u32],
    dims: [usize; 3],
    spacing: [f64; 3],
    sigma: f64,
    value: &[f64],
    weight: &[f64],
) -> Vec<f64> {
    let cell = sigma / 2.0;
    let size: [usize; 3] = std::array::from_fn(|a| ((dims[a] as f64 * spacing[a] / cell).ceil() as usize).max(2));
    let (nc, plane) = (dims[0], dims[0] * dims[1]);
    let at = |v: u32| {
        let v = v as usize;
        [v % nc, (v / nc) % dims[1], v / plane]
    };
    // The trend: [1, x, y, z] in mm about the grid's centre.
    let basis = |v: u32| -> [f64; 4] {
        let p = at(v);
        let mut b = [1.0; 4];
        for a in 0..3 {
            b[a + 1] = (p[a] as f64 - 0.5 * dims[a] as f64) * spacing[a] / 100.0;
        }
        b
    };
    // The field is fitted to every `step`-th brain voxel, about eight per coarse cell: a field
    // this smooth does not need more, and at 1 mm the full brain would cost most of the fit.
    let per_cell = (0..3).map(|a| cell / spacing[a].max(1e-3)).product::<f64>();
    let step = ((per_cell / 8.0).floor() as usize).max(1);
    let sample: Vec<usize> = (0..brain.len()).step_by(step).collect();
    let (mut ata, mut atb) = ([0f64; 16], [0f64; 4]);
    for &i in &sample {
        let b = basis(brain[i]);
        for r in 0..4 {
            atb[r] += weight[i] * b[r] * value[i];
            for c in 0..4 {
                ata[r * 4 + c] += weight[i] * b[r] * b[c];
            }
        }
    }
    let (inv, _) = invert(&ata, 4);
    let coef: [f64; 4] = std::array::from_fn(|r| (0..4).map(|c| inv[r * 4 + c] * atb[c]).sum());
    let trend = |v: u32| basis(v).iter().zip(&coef).map(|(b, k)| b * k).sum::<f64>();
    let tables: [Vec<(usize, f64)>; 3] = std::array::from_fn(|a| axis_cells(dims[a], spacing[a], cell, size[a]));
    let len = size[0] * size[1] * size[2];
    // Spread onto the grid, one part of the sample per thread.
    let parts = rayon::current_num_threads().max(1);
    let (mut num, mut den) = sample
        .par_chunks(sample.len().div_ceil(parts).max(1))
        .map(|part| {
            let (mut num, mut den) = (vec![0f64; len], vec![0f64; len]);
            for &i in part {
                let v = brain[i];
                let rest = value[i] - trend(v);
                for (idx, w) in corners(at(v), &tables, size) {
                    num[idx] += w * weight[i] * rest;
                    den[idx] += w * weight[i];
                }
            }
            (num, den)
        })
        .reduce(
            || (vec![0f64; len], vec![0f64; len]),
            |(mut a, mut b), (x, y)| {
                a.iter_mut().zip(x).for_each(|(p, q)| *p += q);
                b.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                (a, b)
            },
        );
    // Gaussian of sigma = 2 cells, cut at 3 sigma, along each axis in turn (zero outside).
    let kernel: Vec<f64> = (-6i32..=6)
        .map(|k| (-(f64::from(k) * f64::from(k)) / 8.0).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    for grid in [&mut num, &mut den] {
        for axis in 0..3 {
            let stride = match axis {
                2 => 1,
                1 => size[2],
                _ => size[1] * size[2],
            };
            let n = size[axis];
            let src = grid.clone();
            for (idx, out) in grid.iter_mut().enumerate() {
                let pos = (idx / stride) % n;
                let mut s = 0.0;
                for (k, w) in kernel.iter().enumerate() {
                    let q = pos as i64 + k as i64 - 6;
                    if (0..n as i64).contains(&q) {
                        s += w * src[(idx as i64 + (q - pos as i64) * stride as i64) as usize];
                    }
                }
                *out = s / total;
            }
        }
    }
    brain
        .par_iter()
        .map(|&v| {
            let (mut a, mut b) = (0.0, 0.0);
            for (idx, w) in corners(at(v), &tables, size) {
                a += w * num[idx];
                b += w * den[idx];
            }
            trend(v) + if b > 1e-12 { a / b } else { 0.0 }
        })
        .collect()
}
