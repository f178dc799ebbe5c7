//! The manifest's "tissue_em" step: the scan's own tissue model. Inside the brain the
//! network found, each voxel's class (CSF, grey matter, white matter) is decided by a model
//! fitted to *this* scan, in the spirit of SPM's unified segmentation (Ashburner & Friston
//! 2005) and FreeSurfer's SAMSEG (Puonti et al. 2016):
//!
//! - a Gaussian per class over the voxel's values in every series given (multivariate: a
//!   second contrast sharpens the split), fitted by expectation–maximisation;
//! - the network's class probabilities as a spatial prior, tempered by `prior_weight`
//!   (0 ignores them, 1 takes them as they are); no learnt mixing weights, so that, as in
//!   k-means and the k-means start of Atropos, the boundaries lie between the class means (a
//!   learnt weight lets the largest class grow at the others' expense);
//! - a smooth multiplicative bias field per series, fitted in the log domain to what the
//!   classes leave over and smoothed by a Gaussian of `bias_sigma_mm` (as N4 does with its
//!   B-spline mesh: a field about as flexible as N4's, which a low-degree polynomial is not);
//! - a Potts Markov random field, `mrf_beta` per neighbour (weighted by 1 / distance in
//!   mm), applied as one mean-field sweep in each E step: a voxel leans towards its
//!   neighbours' classes, which removes salt-and-pepper labels without blurring folds.
//!
//! The individual's folding comes from the image; the network supplies the brain's extent
//! (which voxels are modelled at all), which intensity class is which tissue on any contrast,
//! and a weak pull where intensity alone cannot tell.

use rayon::prelude::*;

use super::postprocess::{FluidClass, NO_SIGNAL_SHARE, percentile_sorted};

/// Settings of the "tissue_em" step (the manifest's `tissue_em` section).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct TissueEmSpec {
    /// Exponent on the network's probabilities used as the spatial prior (0–1).
    pub prior_weight: f64,
    /// Potts MRF strength per neighbour at 1 mm (0 = none).
    pub mrf_beta: f64,
    /// Smoothness of the bias field: the Gaussian's sigma in mm (0 = no bias field).
    pub bias_sigma_mm: f64,
    /// EM rounds.
    pub iterations: usize,
    /// Deep grey matter as its own Gaussian (SAMSEG models each deep structure apart): the
    /// depth range (mm from the brain's surface) over which the grey-matter prior moves from
    /// the cortical component to the deep one. Deep grey matter (thalamus, basal ganglia) is
    /// brighter than cortex on T1, between grey and white matter, and a single grey-matter
    /// Gaussian leaves it to white matter. None: one grey-matter component.
    #[serde(default)]
    pub deep_gm_mm: Option<[f64; 2]>,
    #[serde(default)]
    pub description: Option<String>,
}

impl TissueEmSpec {
    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(self.prior_weight.is_finite() && (0.0..=1.0).contains(&self.prior_weight)) {
            return Some(format!("prior_weight {} (0 to 1)", self.prior_weight));
        }
        if !(self.mrf_beta.is_finite() && (0.0..=2.0).contains(&self.mrf_beta)) {
            return Some(format!("mrf_beta {} (0 to 2)", self.mrf_beta));
        }
        if !(self.bias_sigma_mm.is_finite()
            && (self.bias_sigma_mm == 0.0 || (5.0..=200.0).contains(&self.bias_sigma_mm)))
        {
            return Some(format!(
                "bias_sigma_mm {} (0 for none, or 5 to 200)",
                self.bias_sigma_mm
            ));
        }
        if !(1..=200).contains(&self.iterations) {
            return Some(format!("iterations {} (1 to 200)", self.iterations));
        }
        if let Some([a, b]) = self.deep_gm_mm
            && !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b && b <= 100.0)
        {
            return Some(format!("deep_gm_mm [{a}, {b}] (0 ≤ from < to ≤ 100 mm)"));
        }
        None
    }
}

/// The three tissue classes, in this order everywhere in this module.
pub const TISSUES: [&str; 3] = ["CSF", "grey matter", "white matter"];

/// The mixture's components: the three tissues, then deep grey matter (used when the spec
/// asks for it), which is grey matter.
const COMPONENTS: usize = 4;
const TISSUE_OF: [usize; COMPONENTS] = [0, 1, 2, 1];
const DEEP: usize = 3;

/// Where each tissue lives in the label map and in the network's probabilities.
#[derive(Debug, Clone, Copy)]
pub struct TissueSlots {
    /// Label index of CSF, grey matter, white matter.
    pub label: [u8; 3],
    /// Their channel in the probability volume ([slice][class][row][column]).
    pub channel: [usize; 3],
    /// Channels in the probability volume.
    pub classes: usize,
}

impl TissueSlots {
    /// Where CSF, grey and white matter are among a manifest's labels, whose order is the
    /// order of the model's `classes` output channels; the tissue names missing (or beyond the
    /// model's channels) when they cannot all be found.
    pub fn find(labels: &[super::manifest::Label], classes: usize) -> Result<TissueSlots, Vec<&'static str>> {
        let mut found = TissueSlots {
            label: [0; 3],
            channel: [0; 3],
            classes,
        };
        let mut missing = Vec::new();
        for (t, name) in TISSUES.into_iter().enumerate() {
            match labels.iter().position(|l| l.name == name).filter(|&c| c < classes) {
                Some(c) => {
                    found.label[t] = labels[c].index;
                    found.channel[t] = c;
                }
                None => missing.push(name),
            }
        }
        if missing.is_empty() { Ok(found) } else { Err(missing) }
    }
}

/// What the fit found on this scan, for the summary, the CLI, the window and the PDF.
#[derive(Debug, Clone, PartialEq)]
pub struct TissueFit {
    /// Mean of each tissue in the primary series' values (bias-corrected; grey matter's is
    /// the cortical component's).
    pub means: [f64; 3],
    /// Mean of the deep grey-matter component, when the spec has one.
    pub deep_gm_mean: Option<f64>,
    /// Share of the brain in each tissue.
    pub shares: [f64; 3],
    /// Range of the primary series' bias field (multiplicative), 1 when none was fitted.
    pub bias_range: [f64; 2],
    /// Brain voxels whose class differs from the network's own.
    pub changed: usize,
    pub iterations: usize,
    pub channels: usize,
}

impl TissueFit {
    /// "fitted to this scan (2 series): CSF 41.2, grey matter 79.9, white matter 107.5 (primary
    /// series' values; 12 %, 47 %, 41 % of the brain), bias field ×0.95–1.06, 20 rounds".
    pub fn describe(&self) -> String {
        let [a, b, c] = self.means;
        let [p, q, r] = self.shares.map(|s| s * 100.0);
        let series = if self.channels > 1 {
            format!(" ({} series)", self.channels)
        } else {
            String::new()
        };
        let deep = self.deep_gm_mean.map(|m| format!(" (deep grey matter {m:.1})")).unwrap_or_default();
        format!(
            "fitted to this scan{series}: CSF {a:.1}, grey matter {b:.1}{deep}, white matter {c:.1} (primary series' values; {p:.0} %, {q:.0} %, {r:.0} % of the brain), bias field ×{:.2}–{:.2}, {} rounds",
            self.bias_range[0], self.bias_range[1], self.iterations
        )
    }
}

/// A Gaussian over `d` channels: mean, the inverse of its covariance and its log normaliser.
#[derive(Debug, Clone)]
struct Gaussian {
    mean: Vec<f64>,
    cov: Vec<f64>,
    inv: Vec<f64>,
    log_norm: f64,
}

impl Gaussian {
    fn new(mean: Vec<f64>, mut cov: Vec<f64>, floor: &[f64]) -> Gaussian {
        let d = mean.len();
        for (c, f) in floor.iter().enumerate() {
            cov[c * d + c] = cov[c * d + c].max(*f);
        }
        let (inv, det) = invert(&cov, d);
        Gaussian {
            log_norm: -0.5 * (det.max(1e-300).ln() + d as f64 * (2.0 * std::f64::consts::PI).ln()),
            mean,
            cov,
            inv,
        }
    }

    fn log_density(&self, y: &[f64]) -> f64 {
        let d = self.mean.len();
        let mut q = 0.0;
        for a in 0..d {
            let da = y[a] - self.mean[a];
            for b in 0..d {
                q += da * self.inv[a * d + b] * (y[b] - self.mean[b]);
            }
        }
        self.log_norm - 0.5 * q
    }
}

/// Inverse and determinant of a small symmetric positive matrix (Gauss–Jordan with pivoting;
/// a singular matrix gets a ridge).
fn invert(m: &[f64], d: usize) -> (Vec<f64>, f64) {
    let mut a = m.to_vec();
    let scale = (0..d).map(|i| m[i * d + i].abs()).fold(0.0, f64::max).max(1e-12);
    let mut inv: Vec<f64> = (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let mut det = 1.0;
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&x, &y| a[x * d + col].abs().total_cmp(&a[y * d + col].abs()))
            .unwrap_or(col);
        if a[pivot * d + col].abs() < 1e-12 * scale {
            a[pivot * d + col] += 1e-9 * scale;
        }
        if pivot != col {
            for k in 0..d {
                a.swap(pivot * d + k, col * d + k);
                inv.swap(pivot * d + k, col * d + k);
            }
            det = -det;
        }
        let p = a[col * d + col];
        det *= p;
        for k in 0..d {
            a[col * d + k] /= p;
            inv[col * d + k] /= p;
        }
        for row in 0..d {
            if row != col {
                let f = a[row * d + col];
                for k in 0..d {
                    a[row * d + k] -= f * a[col * d + k];
                    inv[row * d + k] -= f * inv[col * d + k];
                }
            }
        }
    }
    (inv, det)
}

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
fn smooth_field(
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

/// Fits the scan's tissue model inside the labelled brain (`labels != 0`) and relabels it:
/// each brain voxel gets the tissue of its highest posterior, and its probabilities
/// (`[slice][class][row][column]`) become that posterior (background 0). `channels` holds
/// each series' values on the label grid (the primary first); `dims` = [columns, rows,
/// slices], `spacing` = [column step, row step, slice step] in mm. Returns None, changing
/// nothing, when the brain is too small to fit a model to (under 1,000 voxels).
pub fn fit_tissue(
    labels: &mut [u8],
    probabilities: &mut [f32],
    channels: &[&[f32]],
    dims: [usize; 3],
    spacing: [f64; 3],
    slots: TissueSlots,
    spec: &TissueEmSpec,
) -> Option<TissueFit> {
    let [nc, nr, ns] = dims;
    let n = nc * nr * ns;
    let plane = nc * nr;
    let d = channels.len();
    if d == 0 || labels.len() != n || channels.iter().any(|c| c.len() != n) || probabilities.len() != n * slots.classes
    {
        return None;
    }
    let brain: Vec<u32> = (0..n)
        .filter(|&v| labels[v] != 0 && channels.iter().all(|c| c[v].is_finite()))
        .map(|v| v as u32)
        .collect();
    let m = brain.len();
    if m < 1000 {
        return None;
    }
    // Raw values, floored just above zero so that the bias field can work in logs; the
    // primary series' floored values are also kept sorted, for its k-means classes below.
    let mut raw = vec![0f64; m * d];
    let mut primary_sorted = Vec::new();
    // Values without signal (a skull-stripped or padded scan's zeros inside the brain's
    // outline) say nothing of the bias field.
    let mut no_signal = vec![0f64; d];
    for (c, ch) in channels.iter().enumerate() {
        let mut sorted: Vec<f64> = brain.iter().map(|&v| f64::from(ch[v as usize])).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let p99 = percentile_sorted(&sorted, 99.0).abs();
        no_signal[c] = p99 * NO_SIGNAL_SHARE;
        let floor = (p99 * 1e-3).max(1e-6);
        for (i, &v) in brain.iter().enumerate() {
            raw[i * d + c] = f64::from(ch[v as usize]).max(floor);
        }
        if c == 0 {
            sorted.iter_mut().for_each(|x| *x = x.max(floor));
            primary_sorted = sorted;
        }
    }
    // Each voxel's share of deep grey matter in grey matter's prior: 0 above the depth range's
    // start, 1 below its end (depth from the surface of the brain given to this step).
    let deep: Vec<f32> = match spec.deep_gm_mm {
        Some([from, to]) => {
            let depth2 = super::postprocess::squared_depth_mm(labels, dims, spacing);
            brain
                .iter()
                .map(|&v| ((depth2[v as usize].sqrt() - from) / (to - from)).clamp(0.0, 1.0) as f32)
                .collect()
        }
        None => Vec::new(),
    };
    let components = if deep.is_empty() { 3 } else { COMPONENTS };
    // The network's tempered probabilities of each tissue (a floor keeps every class possible),
    // grey matter's split between its cortical and deep components.
    let prior: Vec<[f32; COMPONENTS]> = brain
        .par_iter()
        .enumerate()
        .map(|(j, &v)| {
            let (k, i) = (v as usize / plane, v as usize % plane);
            let mut p = [0f32; COMPONENTS];
            for t in 0..3 {
                let net = probabilities[(k * slots.classes + slots.channel[t]) * plane + i];
                p[t] = (net.max(0.0) + 0.02).powf(spec.prior_weight as f32);
            }
            let s: f32 = p.iter().sum();
            let mut p = p.map(|x| x / s);
            if let Some(&share) = deep.get(j) {
                p[DEEP] = p[1] * share;
                p[1] *= 1.0 - share;
            }
            p
        })
        .collect();
    let network_label: Vec<u8> = brain.iter().map(|&v| labels[v as usize]).collect();
    // Which intensity class is which tissue: three k-means classes of the primary series;
    // fluid is the class farthest from the median (dark CSF on T1 and FLAIR, bright on T2);
    // of the other two, grey matter is the one the network calls grey more than white.
    let classes = FluidClass::of_sorted(&primary_sorted);
    drop(primary_sorted);
    let cluster: Vec<usize> = (0..m).map(|i| classes.class_of(raw[i * d])).collect();
    let mut lean = [0f64; 3];
    for (i, &k) in cluster.iter().enumerate() {
        lean[k] += f64::from(prior[i][1] + prior[i][DEEP]) - f64::from(prior[i][2]);
    }
    let others: Vec<usize> = (0..3).filter(|&k| k != classes.fluid).collect();
    let grey = if lean[others[0]] >= lean[others[1]] {
        others[0]
    } else {
        others[1]
    };
    // `post`: each voxel's component probabilities (the E step's posterior), started from the
    // k-means classes (grey matter split by depth as its prior is).
    let mut post: Vec<[f32; COMPONENTS]> = cluster
        .iter()
        .enumerate()
        .map(|(j, &k)| {
            let mut r = [0f32; COMPONENTS];
            if k == classes.fluid {
                r[0] = 1.0;
            } else if k == grey {
                let share = deep.get(j).copied().unwrap_or(0.0);
                r[1] = 1.0 - share;
                r[DEEP] = share;
            } else {
                r[2] = 1.0;
            }
            r
        })
        .collect();
    // Neighbours in the brain (6-connected) with their weights 1 / distance in mm.
    let mut slot = vec![u32::MAX; n];
    for (i, &v) in brain.iter().enumerate() {
        slot[v as usize] = i as u32;
    }
    let weights = [
        1.0 / spacing[0].max(1e-3),
        1.0 / spacing[1].max(1e-3),
        1.0 / spacing[2].max(1e-3),
    ];
    let neighbours = |v: usize| -> [(u32, f32); 6] {
        let (x, y, z) = (v % nc, (v / nc) % nr, v / plane);
        let at = |ok: bool, u: usize, w: f64| if ok { (slot[u], w as f32) } else { (u32::MAX, 0.0) };
        [
            at(x > 0, v.wrapping_sub(1), weights[0]),
            at(x + 1 < nc, v + 1, weights[0]),
            at(y > 0, v.wrapping_sub(nc), weights[1]),
            at(y + 1 < nr, v + nc, weights[1]),
            at(z > 0, v.wrapping_sub(plane), weights[2]),
            at(z + 1 < ns, v + plane, weights[2]),
        ]
    };
    let mut log_bias = vec![0f64; m * d]; // log of each voxel's bias, per channel
    let mut corrected = raw.clone();
    let log_raw: Vec<f64> = if spec.bias_sigma_mm > 0.0 {
        raw.par_iter().map(|x| x.ln()).collect()
    } else {
        Vec::new()
    };
    let mut gaussians: Vec<Gaussian> = Vec::new();
    let mut variance_floor = vec![0f64; d];
    for c in 0..d {
        let mean = (0..m).map(|i| raw[i * d + c]).sum::<f64>() / m as f64;
        let var = (0..m).map(|i| (raw[i * d + c] - mean).powi(2)).sum::<f64>() / m as f64;
        variance_floor[c] = (var * 1e-4).max(1e-12);
    }
    for round in 0..spec.iterations {
        // M step: each tissue's mean from its responsibilities, and one covariance shared by
        // the three (their pooled scatter): a class's own spread on a real scan is mostly
        // partial volume and smoothing, which lets a broad grey-matter Gaussian swallow the
        // edges of narrow white matter and CSF; with one shared spread the boundaries lie
        // between the class means, as in the classical classifiers, moved by the prior and
        // the MRF.
        // Weights and weighted sums per tissue, then the scatter about the means (two parallel
        // passes over the brain).
        let (weight, sums) = (0..m)
            .into_par_iter()
            .fold(
                || ([0f64; COMPONENTS], vec![0f64; COMPONENTS * d]),
                |(mut w, mut sum), i| {
                    for t in 0..components {
                        let r = f64::from(post[i][t]);
                        w[t] += r;
                        for c in 0..d {
                            sum[t * d + c] += r * corrected[i * d + c];
                        }
                    }
                    (w, sum)
                },
            )
            .reduce(
                || ([0f64; COMPONENTS], vec![0f64; COMPONENTS * d]),
                |(mut w, mut sum), (x, y)| {
                    (0..components).for_each(|t| w[t] += x[t]);
                    sum.iter_mut().zip(y).for_each(|(a, b)| *a += b);
                    (w, sum)
                },
            );
        let mut means: Vec<Vec<f64>> = (0..components)
            .map(|t| (0..d).map(|c| sums[t * d + c] / weight[t].max(1e-9)).collect())
            .collect();
        if components > DEEP && weight[DEEP] < 1.0 {
            // No voxel is deep enough (a thin slab): the deep component waits between grey and
            // white matter instead of sitting at zero.
            means[DEEP] = (0..d).map(|c| 0.5 * (means[1][c] + means[2][c])).collect();
        }
        let scatter = (0..m)
            .into_par_iter()
            .fold(
                || vec![0f64; d * d],
                |mut acc, i| {
                    for (t, mean) in means.iter().enumerate() {
                        let r = f64::from(post[i][t]);
                        if r == 0.0 {
                            continue;
                        }
                        for a in 0..d {
                            let da = corrected[i * d + a] - mean[a];
                            for b in 0..d {
                                acc[a * d + b] += r * da * (corrected[i * d + b] - mean[b]);
                            }
                        }
                    }
                    acc
                },
            )
            .reduce(
                || vec![0f64; d * d],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let total: f64 = weight.iter().sum();
        let shared: Vec<f64> = scatter.iter().map(|x| x / total.max(1e-9)).collect();
        gaussians = means
            .into_iter()
            .map(|mean| Gaussian::new(mean, shared.clone(), &variance_floor))
            .collect();
        // Bias field (after two rounds, once the classes have settled): per channel, the log
        // residual of each voxel from its expected class mean, weighted by the classes'
        // log-domain precisions, smoothed.
        if spec.bias_sigma_mm > 0.0 && round >= 2 {
            for c in 0..d {
                let log_mean: Vec<f64> = gaussians.iter().map(|g| g.mean[c].max(1e-9).ln()).collect();
                let log_prec: Vec<f64> = gaussians
                    .iter()
                    .map(|g| g.mean[c].max(1e-9).powi(2) / g.cov[c * d + c].max(1e-12))
                    .collect();
                let (residual, weight): (Vec<f64>, Vec<f64>) = (0..m)
                    .into_par_iter()
                    .map(|i| {
                        let (mut w, mut e) = (0.0, 0.0);
                        for t in 0..components {
                            let r = f64::from(post[i][t]) * log_prec[t];
                            w += r;
                            e += r * log_mean[t];
                        }
                        if w > 0.0 && raw[i * d + c] >= no_signal[c] {
                            (log_raw[i * d + c] - e / w, w)
                        } else {
                            (0.0, 0.0)
                        }
                    })
                    .unzip();
                let fitted = smooth_field(&brain, dims, spacing, spec.bias_sigma_mm, &residual, &weight);
                // The field keeps the brain's mean level (the class means carry it).
                let mean = fitted.iter().sum::<f64>() / m as f64;
                log_bias.par_chunks_mut(d).zip(corrected.par_chunks_mut(d)).enumerate().for_each(|(i, (b, y))| {
                    b[c] = fitted[i] - mean;
                    y[c] = (log_raw[i * d + c] - b[c]).exp();
                });
            }
        }
        // E step with one mean-field sweep of the MRF over the previous posterior.
        let previous = &post;
        post = (0..m)
            .into_par_iter()
            .map(|i| {
                let mut field = [0f64; COMPONENTS];
                if spec.mrf_beta > 0.0 {
                    for (j, w) in neighbours(brain[i] as usize) {
                        if j != u32::MAX {
                            for t in 0..components {
                                field[t] += f64::from(w) * f64::from(previous[j as usize][t]);
                            }
                        }
                    }
                }
                let y = &corrected[i * d..(i + 1) * d];
                let log_p: [f64; COMPONENTS] = std::array::from_fn(|t| {
                    if t < components {
                        f64::from(prior[i][t]).max(1e-12).ln() + gaussians[t].log_density(y) + spec.mrf_beta * field[t]
                    } else {
                        f64::NEG_INFINITY
                    }
                });
                let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // f32 exponentials: the posterior is stored in f32 anyway.
                let e = log_p.map(|l| f64::from(((l - top) as f32).exp()));
                let sum: f64 = e.iter().sum();
                e.map(|x| (x / sum) as f32)
            })
            .collect();
    }
    // Labels and probabilities from the posterior.
    let mut changed = 0;
    let mut counts = [0usize; 3];
    for (i, &v) in brain.iter().enumerate() {
        // Each tissue's probability: the sum of its components'.
        let mut tissue = [0f32; 3];
        for (t, &p) in post[i].iter().enumerate() {
            tissue[TISSUE_OF[t]] += p;
        }
        let t = (0..3).max_by(|&a, &b| tissue[a].total_cmp(&tissue[b])).unwrap_or(0);
        counts[t] += 1;
        let label = slots.label[t];
        if label != network_label[i] {
            changed += 1;
        }
        labels[v as usize] = label;
        let (k, p) = (v as usize / plane, v as usize % plane);
        for c in 0..slots.classes {
            probabilities[(k * slots.classes + c) * plane + p] = 0.0;
        }
        for t in 0..3 {
            probabilities[(k * slots.classes + slots.channel[t]) * plane + p] = tissue[t];
        }
    }
    let bias_range = if spec.bias_sigma_mm == 0.0 {
        [1.0, 1.0]
    } else {
        let (lo, hi) = (0..m)
            .map(|i| log_bias[i * d])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        [lo.exp(), hi.exp()]
    };
    Some(TissueFit {
        means: std::array::from_fn(|t| gaussians.get(t).map_or(0.0, |g| g.mean[0])),
        deep_gm_mean: (components > DEEP).then(|| gaussians.get(DEEP).map_or(0.0, |g| g.mean[0])),
        shares: counts.map(|c| c as f64 / m as f64),
        bias_range,
        changed,
        iterations: spec.iterations,
        channels: d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TissueEmSpec {
        TissueEmSpec {
            prior_weight: 0.25,
            mrf_beta: 0.3,
            bias_sigma_mm: 8.0,
            iterations: 15,
            deep_gm_mm: None,
            description: None,
        }
    }

    const SLOTS: TissueSlots = TissueSlots {
        label: [1, 2, 3],
        channel: [1, 2, 3],
        classes: 4,
    };

    /// A 40³ "head": a ball of brain with white matter inside, folded grey matter (a
    /// wavy shell) and CSF in a central ventricle and at the surface, under a 30 % bias
    /// ramp and noise; the network's probabilities are a wrong rim prior (grey outside,
    /// white inside, no CSF), as Model 2's were.
    fn phantom(contrast: [f32; 3]) -> (Vec<u8>, Vec<f32>, Vec<f32>, Vec<u8>) {
        let s = 40usize;
        let n = s * s * s;
        let (mut labels, mut values, mut probs, mut truth) =
            (vec![0u8; n], vec![0f32; n], vec![0f32; 4 * n], vec![0u8; n]);
        let mut seed = 12345u64;
        let mut noise = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for z in 0..s {
            for y in 0..s {
                for x in 0..s {
                    let v = (z * s + y) * s + x;
                    let (fx, fy, fz) = (x as f32 - 19.5, y as f32 - 19.5, z as f32 - 19.5);
                    let r = (fx * fx + fy * fy + fz * fz).sqrt();
                    if r > 17.0 {
                        continue;
                    }
                    let angle = fy.atan2(fx);
                    let fold = 12.0 + 2.5 * (5.0 * angle).sin();
                    let t = if r < 3.5 || r > 15.5 {
                        0
                    } else if r > fold {
                        1
                    } else {
                        2
                    };
                    truth[v] = t as u8 + 1;
                    labels[v] = 3;
                    let bias = 0.85 + 0.3 * x as f32 / s as f32;
                    values[v] = (contrast[t] + 6.0 * noise()) * bias;
                    let k = z;
                    let i = y * s + x;
                    let plane = s * s;
                    let rim = if r > 13.0 { 0.8 } else { 0.2 };
                    probs[(k * 4 + 2) * plane + i] = rim;
                    probs[(k * 4 + 3) * plane + i] = 1.0 - rim;
                }
            }
        }
        (labels, values, probs, truth)
    }

    /// The step on a phantom's 40³ grid of 1 mm voxels.
    fn fit_phantom(
        labels: &mut [u8],
        probs: &mut [f32],
        channels: &[&[f32]],
        spec: &TissueEmSpec,
    ) -> Option<TissueFit> {
        fit_tissue(labels, probs, channels, [40, 40, 40], [1.0; 3], SLOTS, spec)
    }

    fn agreement(labels: &[u8], truth: &[u8]) -> f64 {
        let (mut same, mut all) = (0, 0);
        for (a, b) in labels.iter().zip(truth) {
            if *b != 0 {
                all += 1;
                same += usize::from(a == b);
            }
        }
        same as f64 / all as f64
    }

    #[test]
    fn tissues_follow_the_image_not_the_rim_prior_on_t1_and_t2_contrast() {
        for contrast in [[30.0, 80.0, 110.0], [200.0, 110.0, 70.0]] {
            let (mut labels, values, mut probs, truth) = phantom(contrast);
            let before = agreement(&labels, &truth);
            let fit = fit_phantom(&mut labels, &mut probs, &[&values], &spec()).expect("fit");
            let after = agreement(&labels, &truth);
            assert!(
                after > 0.93,
                "{contrast:?}: {after:.3} of voxels right after the fit (before {before:.3}); {fit:?}"
            );
            // The tissue order follows the contrast: CSF darkest on T1, brightest on T2.
            assert!((fit.means[0] < fit.means[2]) == (contrast[0] < contrast[2]), "{fit:?}");
            // Probabilities are the posterior: they sum to one and agree with the labels.
            for v in 0..labels.len() {
                if labels[v] != 0 {
                    let (k, i) = (v / 1600, v % 1600);
                    let p: Vec<f32> = (0..4).map(|c| probs[(k * 4 + c) * 1600 + i]).collect();
                    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
                    let best = (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                    assert_eq!(best as u8, labels[v]);
                }
            }
        }
    }

    #[test]
    fn the_bias_field_is_found_and_removed() {
        let (mut labels, values, mut probs, truth) = phantom([30.0, 80.0, 110.0]);
        let mut none = spec();
        none.bias_sigma_mm = 0.0;
        let mut flat = labels.clone();
        let mut flat_probs = probs.clone();
        fit_phantom(&mut flat, &mut flat_probs, &[&values], &none).expect("fit");
        let fit = fit_phantom(&mut labels, &mut probs, &[&values], &spec()).expect("fit");
        // The phantom's ramp spans x0.85-1.15 over the volume (x0.89-1.11 over the brain).
        assert!(fit.bias_range[0] < 0.94 && fit.bias_range[1] > 1.06, "{fit:?}");
        assert!(agreement(&labels, &truth) >= agreement(&flat, &truth), "{fit:?}");
    }

    #[test]
    fn a_second_series_is_used_and_tiny_brains_are_left_alone() {
        let (mut labels, values, mut probs, truth) = phantom([30.0, 80.0, 110.0]);
        let (_, second, _, _) = phantom([200.0, 110.0, 70.0]);
        let fit = fit_phantom(&mut labels, &mut probs, &[&values, &second], &spec()).expect("fit");
        assert_eq!(fit.channels, 2);
        assert!(agreement(&labels, &truth) > 0.95, "{fit:?}");
        assert!(fit.describe().contains("(2 series)"), "{}", fit.describe());
        let mut few = vec![0u8; 1000];
        few[..10].fill(3);
        let mut p = vec![0f32; 4000];
        let v = vec![1f32; 1000];
        assert!(fit_tissue(&mut few, &mut p, &[&v], [10, 10, 10], [1.0; 3], SLOTS, &spec()).is_none());
        assert_eq!(few.iter().filter(|&&l| l == 3).count(), 10);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let mut s = spec();
        assert!(s.problem().is_none());
        s.prior_weight = 1.5;
        assert!(s.problem().expect("problem").contains("prior_weight"));
        s = spec();
        s.bias_sigma_mm = 2.0;
        assert!(s.problem().expect("problem").contains("bias_sigma_mm"));
        s = spec();
        s.deep_gm_mm = Some([12.0, 8.0]);
        assert!(s.problem().expect("problem").contains("deep_gm_mm"));
        s.deep_gm_mm = Some([8.0, 12.0]);
        assert!(s.problem().is_none());
    }

    #[test]
    fn tissues_are_found_among_the_labels_by_name_or_named_as_missing() {
        let label = |index: u8, name: &str| super::super::manifest::Label {
            index,
            name: name.into(),
            color: [0; 3],
            expected_ml: None,
        };
        let labels = vec![
            label(0, "background"),
            label(5, "white matter"),
            label(1, "CSF"),
            label(2, "grey matter"),
        ];
        let found = TissueSlots::find(&labels, 4).expect("all three");
        assert_eq!((found.label, found.channel, found.classes), ([1, 2, 5], [2, 3, 1], 4));
        // A model with fewer output channels than the labels reach, and a missing tissue.
        assert_eq!(TissueSlots::find(&labels, 3).err(), Some(vec!["grey matter"]));
        assert_eq!(TissueSlots::find(&labels[..3], 4).err(), Some(vec!["grey matter"]));
    }

    #[test]
    fn the_smoothed_field_keeps_smooth_fields_and_ignores_unweighted_values() {
        // A 60 x 60 x 40 brick of 2 x 2 x 3 mm voxels; every 7th voxel holds an outlier of
        // weight zero, which must not count.
        let dims = [60, 60, 40];
        let spacing = [2.0, 2.0, 3.0];
        let brain: Vec<u32> = (0..(60 * 60 * 40) as u32).collect();
        let weight: Vec<f64> = brain.iter().map(|&v| if v % 7 == 0 { 0.0 } else { 1.0 }).collect();
        let with_outliers = |f: &dyn Fn(u32) -> f64| -> Vec<f64> {
            brain.iter().map(|&v| if v % 7 == 0 { 5.0 } else { f(v) }).collect()
        };
        // A constant comes back everywhere, up to the edges (normalised convolution).
        let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&|_| 0.3), &weight);
        assert!(field.iter().all(|f| (f - 0.3).abs() < 1e-9));
        // A ramp comes back up to the edges (the trend), and a bump of 40 mm on it inside.
        let x_mm = |v: u32| (v % 60) as f64 * 2.0 + 1.0;
        let ramp = |v: u32| 0.1 * (x_mm(v) - 60.0) / 60.0;
        let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&ramp), &weight);
        let worst = brain
            .iter()
            .map(|&v| (field[v as usize] - ramp(v)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "largest error {worst}");
        let bump = |v: u32| ramp(v) + 0.05 * (-((x_mm(v) - 60.0) / 40.0).powi(2)).exp();
        let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&bump), &weight);
        let centre = brain.iter().filter(|&&v| (58.0..=62.0).contains(&x_mm(v)));
        let worst = centre.map(|&v| (field[v as usize] - bump(v)).abs()).fold(0.0, f64::max);
        assert!(worst < 0.01, "largest error at the bump's peak {worst}");
    }

    #[test]
    fn small_matrices_are_inverted() {
        let m = [4.0, 1.0, 1.0, 3.0];
        let (inv, det) = invert(&m, 2);
        assert!((det - 11.0).abs() < 1e-9);
        assert!((inv[0] - 3.0 / 11.0).abs() < 1e-12 && (inv[1] + 1.0 / 11.0).abs() < 1e-12);
    }

    /// Deep grey matter brighter than cortex (between grey and white matter, as the thalamus
    /// and basal ganglia are on T1) with a network unsure there: one grey-matter Gaussian
    /// leaves most of it to white matter; the deep component gives it to grey matter and keeps
    /// the cortex and white matter as they were.
    #[test]
    fn a_deep_component_takes_deep_grey_matter_brighter_than_cortex() {
        let (labels, mut values, mut probs, truth) = phantom([30.0, 70.0, 110.0]);
        let (s, plane) = (40usize, 1600usize);
        let mut nucleus = vec![false; s * s * s];
        let mut seed = 99u64;
        for z in 0..s {
            for y in 0..s {
                for x in 0..s {
                    let v = (z * s + y) * s + x;
                    let (fx, fy, fz) = (x as f32 - 26.5, y as f32 - 19.5, z as f32 - 19.5);
                    if truth[v] == 3 && (fx * fx + fy * fy + fz * fz).sqrt() < 3.5 {
                        nucleus[v] = true;
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let noise = ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
                        values[v] = (92.0 + 6.0 * noise) * (0.85 + 0.3 * x as f32 / s as f32);
                        probs[(z * 4 + 2) * plane + y * s + x] = 0.5;
                        probs[(z * 4 + 3) * plane + y * s + x] = 0.5;
                    }
                }
            }
        }
        let n_nucleus = nucleus.iter().filter(|&&b| b).count();
        assert!(n_nucleus > 100, "{n_nucleus}");
        let grey_share = |deep: Option<[f64; 2]>| {
            let (mut l, mut p) = (labels.clone(), probs.clone());
            let spec = TissueEmSpec { deep_gm_mm: deep, ..spec() };
            let fit = fit_phantom(&mut l, &mut p, &[&values], &spec).expect("fitted");
            let grey = (0..l.len()).filter(|&v| nucleus[v] && l[v] == 2).count() as f64 / n_nucleus as f64;
            let rest = (0..l.len()).filter(|&v| truth[v] != 0 && !nucleus[v]);
            let (agree, total) = rest.fold((0, 0), |(a, t), v| (a + usize::from(l[v] == truth[v]), t + 1));
            (grey, agree as f64 / total as f64, fit)
        };
        let (without, rest_without, fit) = grey_share(None);
        assert!(fit.deep_gm_mean.is_none());
        let (with, rest_with, fit) = grey_share(Some([5.0, 9.0]));
        let deep_mean = fit.deep_gm_mean.expect("a deep component");
        assert!(fit.means[1] < deep_mean && deep_mean < fit.means[2], "{:?} deep {deep_mean}", fit.means);
        assert!(without < 0.4, "one grey-matter Gaussian: {without:.2} of the nucleus grey");
        assert!(with > 0.8, "with the deep component: {with:.2} of the nucleus grey");
        assert!(rest_with > rest_without - 0.02, "elsewhere {rest_with:.3} against {rest_without:.3}");
        assert!(fit.describe().contains("deep grey matter"), "{}", fit.describe());
    }
}
