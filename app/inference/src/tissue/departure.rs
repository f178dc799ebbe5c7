//! How far each brain voxel's values lie from healthy tissue as this scan's own tissue model
//! sees it: the key regions' score.
//!
//! Healthy tissue on a scan is one of the model's tissues or a mixture of two of them (a
//! voxel at a boundary holds some of each: partial volume). In the space of the series'
//! values, the tissues are points (their means) and their mixtures the segments between
//! them. A voxel's departure is its Mahalanobis distance, under the model's shared
//! covariance, from the nearest point of that set: 0 for a pure tissue or any mixture, 3 for
//! a voxel three spreads brighter than white matter on T1 or off the T1–T2 curve of healthy
//! tissue. The share of each series in the squared distance says which series saw it, and
//! its sign whether the voxel is brighter (+) or darker (−) there than healthy tissue.

use rayon::prelude::*;

use super::gaussian::Gaussian;

/// Series the departure can be measured over (the model's slots are fewer), and tissues (the
/// fit's components).
const MAX_SERIES: usize = 4;
const MAX_TISSUES: usize = 4;

/// The healthy set in the series' values: each tissue and each mixture of two as a segment
/// between their means. Fluid (the first tissue, CSF) is open beyond its mean: a voxel purer
/// than the CSF class's mean (which partial volume pulls towards the other tissues) is still
/// fluid, on any contrast.
struct Healthy {
    d: usize,
    inv: [[f64; MAX_SERIES]; MAX_SERIES],
    means: Vec<[f64; MAX_SERIES]>,
    /// Start and end (tissues), direction e, inv·e, e·inv·e, and whether it runs on beyond its
    /// start.
    segments: Vec<(usize, usize, [f64; MAX_SERIES], [f64; MAX_SERIES], f64, bool)>,
    /// Triangles of three points (mixtures of three tissues).
    faces: Vec<Face>,
}

/// A triangle of healthy points: corners[0] + a e[0] + b e[1], a, b ≥ 0, a + b ≤ 1.
struct Face {
    corners: [usize; 3],
    e: [[f64; MAX_SERIES]; 2],
    /// inv·e for each edge.
    m: [[f64; MAX_SERIES]; 2],
    /// The edges' Gram matrix in the metric (e0·e0, e0·e1, e1·e1) and its determinant.
    g: [f64; 3],
    det: f64,
}

impl Healthy {
    /// None without tissues, or over more than `MAX_SERIES` series or `MAX_TISSUES` tissues.
    fn new(d: usize, gaussians: &[Gaussian]) -> Option<Healthy> {
        if d > MAX_SERIES || gaussians.len() > MAX_TISSUES {
            return None;
        }
        let first = gaussians.first()?;
        let mut inv = [[0f64; MAX_SERIES]; MAX_SERIES];
        for (a, row) in inv.iter_mut().enumerate().take(d) {
            for (b, x) in row.iter_mut().enumerate().take(d) {
                *x = first.inv[a * d + b];
            }
        }
        let means: Vec<[f64; MAX_SERIES]> =
            gaussians.iter().map(|g| std::array::from_fn(|c| if c < d { g.mean[c] } else { 0.0 })).collect();
        let mut h = Healthy { d, inv, means, segments: Vec::new(), faces: Vec::new() };
        for i in 0..h.means.len() {
            for j in i..h.means.len() {
                let e: [f64; MAX_SERIES] = std::array::from_fn(|c| h.means[j][c] - h.means[i][c]);
                let me = h.times(&e);
                h.segments.push((i, j, e, me, dot(&e, &me), i == 0 && j > 0));
            }
        }
        // Mixtures of three: over two or more series the triangle between their means (over
        // one it is the segments again: no face).
        let n = h.means.len();
        for i in 0..n {
            for j in i + 1..n {
                for k in j + 1..n {
                    let e1: [f64; MAX_SERIES] = std::array::from_fn(|c| h.means[j][c] - h.means[i][c]);
                    let e2: [f64; MAX_SERIES] = std::array::from_fn(|c| h.means[k][c] - h.means[i][c]);
                    let (m1, m2) = (h.times(&e1), h.times(&e2));
                    let g = [dot(&e1, &m1), dot(&e1, &m2), dot(&e2, &m2)];
                    let det = g[0] * g[2] - g[1] * g[1];
                    if d >= 2 && det > 1e-9 * g[0] * g[2] {
                        h.faces.push(Face { corners: [i, j, k], e: [e1, e2], m: [m1, m2], g, det });
                    }
                }
            }
        }
        Some(h)
    }

    fn times(&self, v: &[f64; MAX_SERIES]) -> [f64; MAX_SERIES] {
        std::array::from_fn(|a| (0..self.d).map(|b| self.inv[a][b] * v[b]).sum())
    }

    /// The squared distance from `y` to the nearest healthy point, and `y` minus that point.
    /// `present`: the tissues (bit t for tissue t) that border the voxel; a mixture of two or
    /// three tissues is healthy only where all of them are present (each tissue alone, and
    /// fluid purer than the CSF class, always are). `ANY` allows every mixture everywhere.
    fn nearest(&self, y: &[f64], present: u8) -> (f64, [f64; MAX_SERIES]) {
        let d = self.d;
        // From each tissue's mean: y − mean, and its squared length.
        let mut from = [([0f64; MAX_SERIES], 0f64); MAX_TISSUES];
        for (f, m) in from.iter_mut().zip(&self.means) {
            let u: [f64; MAX_SERIES] = std::array::from_fn(|c| if c < d { y[c] - m[c] } else { 0.0 });
            *f = (u, dot(&u, &self.times(&u)));
        }
        let mut best = (f64::INFINITY, [0f64; MAX_SERIES]);
        for (a, b, e, me, ee, open) in &self.segments {
            let (u, uu) = &from[*a];
            let ue = dot(u, me);
            let mixed = present >> a & 1 == 1 && present >> b & 1 == 1;
            let t = if *ee > 0.0 {
                let t = ue / ee;
                let hi = if mixed { 1.0 } else { 0.0 };
                if *open { t.min(hi) } else { t.clamp(0.0, hi) }
            } else {
                0.0
            };
            // |u − t e|² = u·u − 2t u·e + t² e·e (in the metric inv).
            let q = uu - 2.0 * t * ue + t * t * ee;
            if q < best.0 {
                best = (q, std::array::from_fn(|c| u[c] - t * e[c]));
            }
        }
        // Inside a triangle: the projection onto its plane, where it falls inside (on its
        // edges the segments above already measured it).
        for f in &self.faces {
            if f.corners.iter().any(|&t| present >> t & 1 == 0) {
                continue;
            }
            let (u, uu) = &from[f.corners[0]];
            let (b1, b2) = (dot(u, &f.m[0]), dot(u, &f.m[1]));
            let a = (f.g[2] * b1 - f.g[1] * b2) / f.det;
            let b = (f.g[0] * b2 - f.g[1] * b1) / f.det;
            if a >= 0.0 && b >= 0.0 && a + b <= 1.0 {
                let q = uu - (a * b1 + b * b2);
                if q < best.0 {
                    best = (q, std::array::from_fn(|c| u[c] - a * f.e[0][c] - b * f.e[1][c]));
                }
            }
        }
        (best.0.max(0.0), best.1)
    }
}

/// Every tissue present: every mixture is healthy everywhere.
pub(super) const ANY: u8 = u8::MAX;

fn dot(a: &[f64; MAX_SERIES], b: &[f64; MAX_SERIES]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// What `measure` finds per voxel.
pub(super) struct Measured {
    pub score: Vec<f32>,
    pub shares: Vec<f32>,
    /// Per voxel and series: the voxel's values minus the nearest healthy point's.
    pub residual: Vec<f32>,
    /// The metric the distances are measured in (`d` × `d`, the spread's inverse).
    pub metric: Vec<f64>,
}

/// Each voxel's departure (`values`: `d` bias-corrected values per voxel) from the tissues
/// `gaussians` (one covariance shared, CSF first) and their pairwise mixtures (`present`: per
/// voxel, the tissues bordering it, see `Healthy::nearest`; None: every mixture everywhere);
/// and per voxel and series, the signed share of its squared distance (brighter +, darker −;
/// the shares' magnitudes sum to 1, all 0 at distance 0).
pub(super) fn measure(values: &[f64], d: usize, gaussians: &[Gaussian], present: Option<&[u8]>) -> Measured {
    let m = values.len() / d.max(1);
    let Some(healthy) = Healthy::new(d, gaussians) else {
        // Nothing to measure against: no departure anywhere.
        return Measured { score: vec![0.0; m], shares: vec![0.0; values.len()], residual: vec![0.0; values.len()], metric: Vec::new() };
    };
    let mut shares = vec![0f32; values.len()];
    let mut residual = vec![0f32; values.len()];
    let score = values
        .par_chunks(d)
        .zip(shares.par_chunks_mut(d))
        .zip(residual.par_chunks_mut(d))
        .enumerate()
        .map(|(i, ((y, share), res))| {
            let (q, delta) = healthy.nearest(y, present.map_or(ANY, |p| p[i]));
            for (r, x) in res.iter_mut().zip(&delta) {
                *r = *x as f32;
            }
            write_shares(&healthy.times(&delta), &delta, share);
            q.sqrt() as f32
        })
        .collect();
    // Healthy's metric is the first tissue's inverse covariance (shared by all).
    let metric = gaussians[0].inv.clone();
    Measured { score, shares, residual, metric }
}

/// The distance and signed shares (into `share`) of a residual of `d` values under `metric`
/// (see `Measured`): how far a neighbourhood's mean residual lies from healthy tissue.
pub(crate) fn of_residual(residual: &[f64], metric: &[f64], share: &mut [f32]) -> f32 {
    let d = residual.len();
    if d > MAX_SERIES || metric.len() != d * d {
        return 0.0;
    }
    let delta: [f64; MAX_SERIES] = std::array::from_fn(|c| residual.get(c).copied().unwrap_or(0.0));
    let weighted: [f64; MAX_SERIES] =
        std::array::from_fn(|a| if a < d { (0..d).map(|b| metric[a * d + b] * delta[b]).sum() } else { 0.0 });
    write_shares(&weighted, &delta, share);
    dot(&delta, &weighted).max(0.0).sqrt() as f32
}

/// Each series' signed share of the squared distance `delta`·`weighted` (`weighted`: the
/// metric times `delta`), into `share`.
fn write_shares(weighted: &[f64; MAX_SERIES], delta: &[f64; MAX_SERIES], share: &mut [f32]) {
    let parts: [f64; MAX_SERIES] = std::array::from_fn(|c| (delta[c] * weighted[c]).max(0.0));
    let sum: f64 = parts.iter().sum();
    share.iter_mut().for_each(|x| *x = 0.0);
    if sum > 0.0 {
        for (c, x) in share.iter_mut().enumerate() {
            *x = (parts[c] / sum * delta[c].signum()) as f32;
        }
    }
}

/// Only the departure of each voxel (see `measure`): what the fit leaves out of its tissue
/// statistics and bias field, so that a lesion neither moves the tissues' means nor is taken
/// for a bias.
pub(super) fn distances(values: &[f64], d: usize, gaussians: &[Gaussian]) -> Vec<f32> {
    match Healthy::new(d, gaussians) {
        Some(healthy) => values.par_chunks(d).map(|y| healthy.nearest(y, ANY).0.sqrt() as f32).collect(),
        None => vec![0.0; values.len() / d.max(1)],
    }
}

/// Voxels inside a tissue needed to measure healthy tissue's own spread (fewer: the fit's
/// shared spread is used).
const MIN_INTERIOR_VOXELS: usize = 500;

/// The tissues (`gaussians`, their means kept) with healthy tissue's own spread: the scatter
/// of the voxels `inside` says are inside one tissue (`hard`: each voxel's component) about
/// that tissue's mean; the fit's own shared spread when too few are.
pub(super) fn with_own_spread(
    values: &[f64],
    d: usize,
    gaussians: &[Gaussian],
    hard: &[u8],
    floor: &[f64],
    inside: impl Fn(usize) -> bool + Sync,
) -> Vec<Gaussian> {
    let (count, scatter) = (0..hard.len())
        .into_par_iter()
        .filter(|&i| inside(i))
        .fold(
            || (0usize, vec![0f64; d * d]),
            |(n, mut acc), i| {
                let mean = &gaussians[usize::from(hard[i])].mean;
                for a in 0..d {
                    for b in 0..d {
                        acc[a * d + b] += (values[i * d + a] - mean[a]) * (values[i * d + b] - mean[b]);
                    }
                }
                (n + 1, acc)
            },
        )
        .reduce(
            || (0usize, vec![0f64; d * d]),
            |(n, mut a), (k, b)| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                (n + k, a)
            },
        );
    if count < MIN_INTERIOR_VOXELS {
        return gaussians.to_vec();
    }
    let cov: Vec<f64> = scatter.iter().map(|x| x / count as f64).collect();
    gaussians.iter().map(|g| Gaussian::new(g.mean.clone(), cov.clone(), floor)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tissues(means: &[[f64; 2]], var: [f64; 2]) -> Vec<Gaussian> {
        let cov = vec![var[0], 0.0, 0.0, var[1]];
        means.iter().map(|m| Gaussian::new(m.to_vec(), cov.clone(), &[0.0, 0.0])).collect()
    }

    #[test]
    fn tissues_and_their_mixtures_are_healthy_and_what_lies_off_them_is_measured_in_spreads() {
        // T1-like and T2-like: CSF (20, 100), grey (60, 60), white (100, 30); spread 5 in both.
        let g = tissues(&[[20.0, 100.0], [60.0, 60.0], [100.0, 30.0]], [25.0, 25.0]);
        let values = [
            60.0, 60.0, // grey matter
            40.0, 80.0, // half CSF, half grey: partial volume
            115.0, 30.0, // three spreads brighter than white matter on the first series
            20.0, 130.0, // CSF on T1, but 30 brighter than CSF on T2
        ];
        let Measured { score, shares, .. } = measure(&values, 2, &g, None);
        assert!(score[0] < 1e-6 && score[1] < 1e-6, "{score:?}");
        assert!((score[2] - 3.0).abs() < 1e-5, "{score:?}");
        assert_eq!(&shares[4..6], &[1.0, 0.0], "all of it on the first series, brighter");
        // (20, 130): 30 brighter than CSF on T2 alone. Purer fluid than the CSF class's mean
        // lies on the grey-to-CSF line beyond CSF (5, 115), which is healthy; the voxel is 15
        // brighter than that point on both series: 15√2 / 5 = 4.24 spreads, half each.
        assert!((score[3] - 4.2426).abs() < 1e-3, "{score:?}");
        assert!((shares[6] - 0.5).abs() < 1e-5 && (shares[7] - 0.5).abs() < 1e-5, "{shares:?}");
    }

    #[test]
    fn one_series_sees_only_values_beyond_its_brightest_tissue_fluid_being_open_ended() {
        let cov = vec![16.0];
        let g: Vec<Gaussian> = [40.0, 80.0, 110.0].iter().map(|&m| Gaussian::new(vec![m], cov.clone(), &[0.0])).collect();
        let Measured { score, shares, .. } = measure(&[70.0, 10.0, 130.0], 1, &g, None);
        assert_eq!(&score[..2], &[0.0, 0.0], "mixtures and fluid purer than the CSF mean are healthy");
        assert!((score[2] - 5.0).abs() < 1e-6, "{score:?}");
        assert_eq!(shares, vec![0.0, 0.0, 1.0]);
        assert_eq!(distances(&[70.0, 10.0, 130.0], 1, &g), score);
    }

    #[test]
    fn a_mixture_is_healthy_only_where_both_of_its_tissues_border_the_voxel() {
        let g = tissues(&[[20.0, 100.0], [60.0, 60.0], [100.0, 30.0]], [25.0, 25.0]);
        // Half CSF, half white matter: on the CSF–white line, about a spread from grey
        // matter's lines.
        let y = [60.0, 65.0];
        let (csf, white) = (1u8, 4u8);
        let both = measure(&y, 2, &g, Some(&[csf | white]));
        let white_only = measure(&y, 2, &g, Some(&[white]));
        assert!(both.score[0] < 1e-6, "{:?}", both.score);
        assert!(white_only.score[0] > 0.9, "{:?}", white_only.score);
        // Fluid purer than the CSF class stays healthy with no other tissue near (a ventricle).
        assert!(measure(&[5.0, 115.0], 2, &g, Some(&[csf])).score[0] < 1e-6);
        // A mixture of all three inside the triangle: healthy where all three are near.
        let three = [60.0, 62.0];
        assert!(measure(&three, 2, &g, Some(&[7])).score[0] < 1e-6);
        assert!(measure(&three, 2, &g, Some(&[csf | white])).score[0] > 0.3);
        // The residual under the metric gives the same distance and shares.
        let mut share = [0f32; 2];
        let r: Vec<f64> = white_only.residual.iter().map(|&x| f64::from(x)).collect();
        assert!((of_residual(&r, &white_only.metric, &mut share) - white_only.score[0]).abs() < 1e-4);
        assert_eq!(share.to_vec(), white_only.shares);
    }
}
