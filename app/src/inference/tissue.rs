//! The manifest's "tissue_em" step: the scan's own tissue model. Inside the brain the
//! network found, each voxel's class (CSF, grey matter, white matter) is decided by a model
//! fitted to *this* scan, in the spirit of SPM's unified segmentation (Ashburner & Friston
//! 2005) and FreeSurfer's SAMSEG (Puonti et al. 2016):
//!
//! - a Gaussian per class over the voxel's values in every series given (multivariate: a
//!   second contrast sharpens the split), fitted by expectation–maximisation;
//! - the network's class probabilities as a spatial prior, tempered by `prior_weight`
//!   (0 ignores them, 1 takes them as they are), times one mixing weight per class;
//! - a smooth multiplicative bias field per series (a polynomial of `bias_degree` in the
//!   patient-space position, fitted in the log domain to what the classes leave over);
//! - a Potts Markov random field, `mrf_beta` per neighbour (weighted by 1 / distance in
//!   mm), applied as one mean-field sweep in each E step: a voxel leans towards its
//!   neighbours' classes, which removes salt-and-pepper labels without blurring folds.
//!
//! The individual's folding comes from the image; the network supplies the brain's extent
//! (which voxels are modelled at all), which intensity class is which tissue on any contrast,
//! and a weak pull where intensity alone cannot tell.

use rayon::prelude::*;

use super::postprocess::{FluidClass, percentile_sorted};

/// Settings of the "tissue_em" step (the manifest's `tissue_em` section).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct TissueEmSpec {
    /// Exponent on the network's probabilities used as the spatial prior (0–1).
    pub prior_weight: f64,
    /// Potts MRF strength per neighbour at 1 mm (0 = none).
    pub mrf_beta: f64,
    /// Degree of the polynomial bias field (0 = none, at most 4).
    pub bias_degree: usize,
    /// EM rounds.
    pub iterations: usize,
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
        if self.bias_degree > 4 {
            return Some(format!("bias_degree {} (at most 4)", self.bias_degree));
        }
        if !(1..=200).contains(&self.iterations) {
            return Some(format!("iterations {} (1 to 200)", self.iterations));
        }
        None
    }
}

/// The three tissue classes, in this order everywhere in this module.
pub const TISSUES: [&str; 3] = ["CSF", "grey matter", "white matter"];

/// The partial-volume mixtures modelled: tissues that meet at a voxel's scale (CSF/GM in sulci
/// and at the surface, GM/WM at the cortex's base), as FSL FAST and Atropos model them.
const MIXTURES: [(usize, usize); 2] = [(0, 1), (1, 2)];

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
    /// Mean of each tissue in the primary series' values (bias-corrected).
    pub means: [f64; 3],
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
        format!(
            "fitted to this scan{series}: CSF {a:.1}, grey matter {b:.1}, white matter {c:.1} (primary series' values; {p:.0} %, {q:.0} %, {r:.0} % of the brain), bias field ×{:.2}–{:.2}, {} rounds",
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

/// Monomials x^a y^b z^c with 1 <= a+b+c <= degree of a position in [-1, 1]^3.
fn monomials(degree: usize) -> Vec<[u8; 3]> {
    let mut out = Vec::new();
    for total in 1..=degree {
        for a in 0..=total {
            for b in 0..=(total - a) {
                out.push([a as u8, b as u8, (total - a - b) as u8]);
            }
        }
    }
    out
}

fn basis(terms: &[[u8; 3]], p: [f64; 3], out: &mut [f64]) {
    for (o, t) in out.iter_mut().zip(terms) {
        *o = p[0].powi(i32::from(t[0])) * p[1].powi(i32::from(t[1])) * p[2].powi(i32::from(t[2]));
    }
}

/// Solves the symmetric system `a x = b` (n×n) by Cholesky with a small ridge.
fn solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let ridge = (0..n).map(|i| a[i * n + i]).fold(0.0, f64::max) * 1e-6 + 1e-12;
    for i in 0..n {
        a[i * n + i] += ridge;
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
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
    for (c, ch) in channels.iter().enumerate() {
        let mut sorted: Vec<f64> = brain.iter().map(|&v| f64::from(ch[v as usize])).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let floor = (percentile_sorted(&sorted, 99.0).abs() * 1e-3).max(1e-6);
        for (i, &v) in brain.iter().enumerate() {
            raw[i * d + c] = f64::from(ch[v as usize]).max(floor);
        }
        if c == 0 {
            sorted.iter_mut().for_each(|x| *x = x.max(floor));
            primary_sorted = sorted;
        }
    }
    // The network's tempered probabilities of each tissue (a floor keeps every class possible).
    let prior: Vec<[f32; 3]> = brain
        .par_iter()
        .map(|&v| {
            let (k, i) = (v as usize / plane, v as usize % plane);
            let mut p = [0f32; 3];
            for t in 0..3 {
                let net = probabilities[(k * slots.classes + slots.channel[t]) * plane + i];
                p[t] = (net.max(0.0) + 0.02).powf(spec.prior_weight as f32);
            }
            let s: f32 = p.iter().sum();
            p.map(|x| x / s)
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
        lean[k] += f64::from(prior[i][1]) - f64::from(prior[i][2]);
    }
    let others: Vec<usize> = (0..3).filter(|&k| k != classes.fluid).collect();
    let grey = if lean[others[0]] >= lean[others[1]] {
        others[0]
    } else {
        others[1]
    };
    // `pure`: responsibilities of the three pure-tissue Gaussians (what the M step fits);
    // `q`: each voxel's tissue probabilities, its partial-volume share split between the two
    // tissues it mixes (what the MRF, the labels and the probabilities use).
    let mut pure: Vec<[f32; 3]> = cluster
        .iter()
        .map(|&k| {
            let mut r = [0f32; 3];
            r[if k == classes.fluid {
                0
            } else if k == grey {
                1
            } else {
                2
            }] = 1.0;
            r
        })
        .collect();
    let mut q = pure.clone();
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
    // Positions in [-1, 1] over the brain's bounding box, for the bias field.
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for &v in &brain {
        let p = [v as usize % nc, (v as usize / nc) % nr, v as usize / plane];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let position = |v: usize| -> [f64; 3] {
        let p = [v % nc, (v / nc) % nr, v / plane];
        std::array::from_fn(|a| {
            let span = (hi[a] - lo[a]).max(1) as f64;
            2.0 * (p[a] - lo[a]) as f64 / span - 1.0
        })
    };
    let terms = monomials(spec.bias_degree);
    let mut log_bias = vec![0f64; m * d]; // log of each voxel's bias, per channel
    let mut corrected = raw.clone();
    // Mixing weights of the five components: CSF, GM, WM, CSF/GM and GM/WM mixtures.
    let mut mix: [f64; 5] = [0.8 / 3.0, 0.8 / 3.0, 0.8 / 3.0, 0.1, 0.1];
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
        // between the class means, as in the classical classifiers (k-means, Atropos from its
        // k-means start), moved by the prior, the mixing weights and the MRF. (The mixing
        // weights are updated after the E step.)
        let mut scatter = vec![0f64; d * d];
        let mut total = 0f64;
        let means: Vec<Vec<f64>> = (0..3)
            .map(|t| {
                let (mut w, mut mean) = (0f64, vec![0f64; d]);
                for i in 0..m {
                    let r = f64::from(pure[i][t]);
                    w += r;
                    for c in 0..d {
                        mean[c] += r * corrected[i * d + c];
                    }
                }
                mean.iter_mut().for_each(|x| *x /= w.max(1e-9));
                for i in 0..m {
                    let r = f64::from(pure[i][t]);
                    if r == 0.0 {
                        continue;
                    }
                    for a in 0..d {
                        let da = corrected[i * d + a] - mean[a];
                        for b in 0..d {
                            scatter[a * d + b] += r * da * (corrected[i * d + b] - mean[b]);
                        }
                    }
                }
                total += w;
                mean
            })
            .collect();
        let shared: Vec<f64> = scatter.iter().map(|x| x / total.max(1e-9)).collect();
        gaussians = means
            .into_iter()
            .map(|mean| Gaussian::new(mean, shared.clone(), &variance_floor))
            .collect();
        // Partial-volume mixtures of neighbouring tissues (CSF/GM, GM/WM): a voxel holding a
        // uniformly distributed fraction of each; their mean and spread follow from the pure
        // classes', so they add no free parameters but their weights.
        let mixtures: Vec<Gaussian> = MIXTURES
            .iter()
            .map(|&(a, b)| {
                let (ga, gb) = (&gaussians[a], &gaussians[b]);
                let mean: Vec<f64> = (0..d).map(|c| 0.5 * (ga.mean[c] + gb.mean[c])).collect();
                let cov: Vec<f64> = (0..d * d)
                    .map(|k| {
                        let (x, y) = (k / d, k % d);
                        0.5 * (ga.cov[k] + gb.cov[k]) + (gb.mean[x] - ga.mean[x]) * (gb.mean[y] - ga.mean[y]) / 12.0
                    })
                    .collect();
                Gaussian::new(mean, cov, &variance_floor)
            })
            .collect();
        // Bias field (after two rounds, once the classes have settled): per channel, the
        // log residual of each voxel from its expected class mean, weighted by the classes'
        // log-domain precisions, fitted by the polynomial.
        if !terms.is_empty() && round >= 2 {
            let nt = terms.len() + 1;
            for c in 0..d {
                let log_mean: Vec<f64> = gaussians.iter().map(|g| g.mean[c].max(1e-9).ln()).collect();
                let log_prec: Vec<f64> = gaussians
                    .iter()
                    .map(|g| g.mean[c].max(1e-9).powi(2) / g.cov[c * d + c].max(1e-12))
                    .collect();
                let (ata, atb) = (0..m)
                    .into_par_iter()
                    .step_by(3)
                    .fold(
                        || (vec![0f64; nt * nt], vec![0f64; nt], vec![0f64; nt]),
                        |(mut ata, mut atb, mut phi), i| {
                            let (mut w, mut e) = (0.0, 0.0);
                            for t in 0..3 {
                                let r = f64::from(pure[i][t]) * log_prec[t];
                                w += r;
                                e += r * log_mean[t];
                            }
                            if w > 0.0 {
                                let residual = raw[i * d + c].ln() - e / w;
                                phi[0] = 1.0;
                                basis(&terms, position(brain[i] as usize), &mut phi[1..]);
                                for a in 0..nt {
                                    atb[a] += w * phi[a] * residual;
                                    for b in 0..=a {
                                        ata[a * nt + b] += w * phi[a] * phi[b];
                                    }
                                }
                            }
                            (ata, atb, phi)
                        },
                    )
                    .map(|(a, b, _)| (a, b))
                    .reduce(
                        || (vec![0f64; nt * nt], vec![0f64; nt]),
                        |(mut a, mut b), (x, y)| {
                            a.iter_mut().zip(x).for_each(|(p, q)| *p += q);
                            b.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                            (a, b)
                        },
                    );
                let mut full = ata;
                for a in 0..nt {
                    for b in 0..a {
                        full[b * nt + a] = full[a * nt + b];
                    }
                }
                let Some(coef) = solve(&mut full, &atb, nt) else {
                    continue;
                };
                // The constant goes to the class means: the field keeps the brain's mean level.
                let fitted: Vec<f64> = (0..m)
                    .into_par_iter()
                    .map_init(
                        || vec![0f64; nt - 1],
                        |phi, i| {
                            basis(&terms, position(brain[i] as usize), phi);
                            phi.iter().zip(&coef[1..]).map(|(p, k)| p * k).sum::<f64>()
                        },
                    )
                    .collect();
                let mean = fitted.iter().sum::<f64>() / m as f64;
                for i in 0..m {
                    log_bias[i * d + c] = fitted[i] - mean;
                    corrected[i * d + c] = raw[i * d + c] * (-log_bias[i * d + c]).exp();
                }
            }
        }
        // E step with one mean-field sweep of the MRF over the previous tissue probabilities.
        let previous = &q;
        let next: Vec<([f32; 3], [f64; 5])> = (0..m)
            .into_par_iter()
            .map(|i| {
                let mut field = [0f64; 3];
                if spec.mrf_beta > 0.0 {
                    for (j, w) in neighbours(brain[i] as usize) {
                        if j != u32::MAX {
                            for t in 0..3 {
                                field[t] += f64::from(w) * f64::from(previous[j as usize][t]);
                            }
                        }
                    }
                }
                let y = &corrected[i * d..(i + 1) * d];
                let p = prior[i].map(|x| f64::from(x).max(1e-12));
                let mut log_p = [0f64; 5];
                for t in 0..3 {
                    log_p[t] =
                        mix[t].max(1e-12).ln() + p[t].ln() + gaussians[t].log_density(y) + spec.mrf_beta * field[t];
                }
                for (k, &(a, b)) in MIXTURES.iter().enumerate() {
                    log_p[3 + k] = mix[3 + k].max(1e-12).ln()
                        + (0.5 * (p[a] + p[b])).ln()
                        + mixtures[k].log_density(y)
                        + spec.mrf_beta * 0.5 * (field[a] + field[b]);
                }
                let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e = log_p.map(|l| (l - top).exp());
                let sum: f64 = e.iter().sum();
                let post = e.map(|x| x / sum);
                let mut tissue = [post[0], post[1], post[2]];
                for (k, &(a, b)) in MIXTURES.iter().enumerate() {
                    // The fraction of tissue b: where the value lies between the two means.
                    let (ga, gb) = (&gaussians[a].mean, &gaussians[b].mean);
                    let (mut num, mut den) = (0.0, 0.0);
                    for c in 0..d {
                        num += (y[c] - ga[c]) * (gb[c] - ga[c]);
                        den += (gb[c] - ga[c]).powi(2);
                    }
                    let share = if den > 0.0 { (num / den).clamp(0.0, 1.0) } else { 0.5 };
                    tissue[a] += post[3 + k] * (1.0 - share);
                    tissue[b] += post[3 + k] * share;
                }
                (tissue.map(|x| x as f32), post)
            })
            .collect();
        let mut weights_sum = [0f64; 5];
        for (_, post) in &next {
            for k in 0..5 {
                weights_sum[k] += post[k];
            }
        }
        mix = weights_sum.map(|w| w / m as f64);
        pure = next
            .iter()
            .map(|(_, post)| [post[0] as f32, post[1] as f32, post[2] as f32])
            .collect();
        q = next.into_iter().map(|(tissue, _)| tissue).collect();
    }
    // Labels and probabilities from the posterior.
    let mut changed = 0;
    let mut counts = [0usize; 3];
    for (i, &v) in brain.iter().enumerate() {
        let t = (0..3).max_by(|&a, &b| q[i][a].total_cmp(&q[i][b])).unwrap_or(0);
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
            probabilities[(k * slots.classes + slots.channel[t]) * plane + p] = q[i][t];
        }
    }
    let bias_range = if terms.is_empty() {
        [1.0, 1.0]
    } else {
        let (lo, hi) = (0..m)
            .map(|i| log_bias[i * d])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        [lo.exp(), hi.exp()]
    };
    Some(TissueFit {
        means: std::array::from_fn(|t| gaussians.get(t).map_or(0.0, |g| g.mean[0])),
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
            bias_degree: 2,
            iterations: 15,
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
        none.bias_degree = 0;
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
        s.bias_degree = 9;
        assert!(s.problem().expect("problem").contains("bias_degree"));
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
    fn small_matrices_are_inverted_and_solved() {
        let m = [4.0, 1.0, 1.0, 3.0];
        let (inv, det) = invert(&m, 2);
        assert!((det - 11.0).abs() < 1e-9);
        assert!((inv[0] - 3.0 / 11.0).abs() < 1e-12 && (inv[1] + 1.0 / 11.0).abs() < 1e-12);
        let mut a = m.to_vec();
        let x = solve(&mut a, &[1.0, 2.0], 2).expect("solve");
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-4 && (x[0] + 3.0 * x[1] - 2.0).abs() < 1e-4);
    }
}
