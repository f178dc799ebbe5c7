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

pub mod atlas;
pub(crate) mod departure;
mod field;
mod spec;
mod gaussian;

use field::smooth_field;
use gaussian::Gaussian;
pub use spec::TissueEmSpec;

/// Departure (in the fit's shared spread) beyond which a voxel is left out of the estimate of
/// healthy tissue's own spread.
const OUTLIER_SPREADS: f64 = 3.0;


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
    /// The tail of the primary series' values set aside before the classes were found (see
    /// [`fit_tissue`]).
    pub tail: Option<ValueTail>,
}

/// A tail of a scan's values at the end away from fluid, with its share of the brain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueTail {
    /// Values above this.
    Above(f64, f64),
    /// Values below this.
    Below(f64, f64),
}

impl ValueTail {
    /// Whether a value lies in the tail.
    fn holds(self, value: f64) -> bool {
        match self {
            ValueTail::Above(cut, _) => value > cut,
            ValueTail::Below(cut, _) => value < cut,
        }
    }
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
        let tail = match self.tail {
            Some(ValueTail::Above(v, share)) => {
                format!("; values above {v:.1} ({:.0} % of the brain: enhancement, vessels or tissue next to the brain) started no class and were left out of its statistics", share * 100.0)
            }
            Some(ValueTail::Below(v, share)) => {
                format!("; values below {v:.1} ({:.0} % of the brain) started no class and were left out of its statistics", share * 100.0)
            }
            None => String::new(),
        };
        format!(
            "fitted to this scan{series}: CSF {a:.1}, grey matter {b:.1}{deep}, white matter {c:.1} (primary series' values; {p:.0} %, {q:.0} %, {r:.0} % of the brain), bias field ×{:.2}–{:.2}, {} rounds{tail}",
            self.bias_range[0], self.bias_range[1], self.iterations
        )
    }
}

/// What the steps before the tissue model know of the scan's classes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassHints<'a> {
    /// The classes the fluid rim's step found on the whole brain, its rim included: which end
    /// of the primary series' values fluid is at.
    pub fluid_seen: Option<&'a FluidClass>,
    /// Grey matter is the darker of the two classes that are not fluid, where fluid is dark: a
    /// T1 acquired with contrast, on which the network (trained on unenhanced scans) leans
    /// either way.
    pub grey_darker: bool,
}

/// How the departure is measured (the key regions' settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepartureSpec {
    /// A mixture of tissues is healthy only where each of them borders the voxel (is its own
    /// or a 6-neighbour's tissue); else anywhere.
    pub bordering: bool,
}

/// Where this scan departs from its own model of healthy tissue: each modelled voxel's
/// distance from the tissues and their mixtures, in the model's spreads (see `departure`).
#[derive(Debug, Clone, Default)]
pub struct Departure {
    /// The modelled brain voxels (indices into the grid, slice-major).
    pub voxels: Vec<u32>,
    /// Each one's distance from healthy tissue.
    pub score: Vec<f32>,
    /// Per voxel and series (`channels` values per voxel): the series' signed share of the
    /// squared distance, + where the voxel is brighter there than healthy tissue, − darker.
    pub shares: Vec<f32>,
    /// Per voxel and series (`channels` values per voxel): its values minus the nearest
    /// healthy point's, after bias correction.
    pub residual: Vec<f32>,
    /// The metric the distances are measured in (`channels` × `channels`).
    pub metric: Vec<f64>,
    /// Series modelled: the analysed one first.
    pub channels: usize,
    /// Seconds spent on departures in the fit: leaving its outliers out, and the departure.
    pub seconds: f64,
}

/// Fits the scan's tissue model inside the labelled brain (`labels != 0`) and relabels it:
/// each brain voxel gets the tissue of its highest posterior, and its probabilities
/// (`[slice][class][row][column]`) become that posterior (background 0). `channels` holds
/// each series' values on the label grid (the primary first); `dims` = [columns, rows,
/// slices], `spacing` = [column step, row step, slice step] in mm. `atlas_share`, on the label
/// grid: the deep grey-matter atlas placed on this scan ([`atlas::DeepGmAtlas::shares`]),
/// which then sets the deep component instead of `deep_gm_mm`. Returns None, changing
/// nothing, when the brain is too small to fit a model to (under 1,000 voxels). With the fit,
/// when `departure` asks: where the scan departs from it, measured as it says. `hints`: what
/// the steps before it know of the classes ([`ClassHints`]).
#[allow(clippy::too_many_arguments)]
pub fn fit_tissue(
    labels: &mut [u8],
    probabilities: &mut [f32],
    channels: &[&[f32]],
    dims: [usize; 3],
    spacing: [f64; 3],
    slots: TissueSlots,
    spec: &TissueEmSpec,
    atlas_share: Option<&[f32]>,
    departure: Option<DepartureSpec>,
    hints: ClassHints<'_>,
) -> Option<(TissueFit, Option<Departure>)> {
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
    // Each voxel's share of deep grey matter: placed by the atlas, in grey and white matter's
    // prior; or by depth, in grey matter's: 0 above the depth range's start, 1 below its end
    // (depth from the surface of the brain given to this step).
    let atlas_share = atlas_share.filter(|a| a.len() == n);
    let from_white = atlas_share.is_some();
    let deep: Vec<f32> = match (atlas_share, spec.deep_gm_mm) {
        (Some(share), _) => brain.iter().map(|&v| share[v as usize].clamp(0.0, 1.0)).collect(),
        (None, Some([from, to])) => {
            let depth2 = super::postprocess::squared_depth_mm(labels, dims, spacing);
            brain
                .iter()
                .map(|&v| ((depth2[v as usize].sqrt() - from) / (to - from)).clamp(0.0, 1.0) as f32)
                .collect()
        }
        (None, None) => Vec::new(),
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
                p[DEEP] = (p[1] + if from_white { p[2] } else { 0.0 }) * share;
                p[1] *= 1.0 - share;
                if from_white {
                    p[2] *= 1.0 - share;
                }
            }
            p
        })
        .collect();
    let network_label: Vec<u8> = brain.iter().map(|&v| labels[v as usize]).collect();
    // Which intensity class is which tissue: three k-means classes of the primary series;
    // fluid is the class farthest from the median (dark CSF on T1 and FLAIR, bright on T2);
    // of the other two, grey matter is the one the network calls grey more than white. With the
    // extra-axial fluid gone (the fluid rim, left out of this fit), what remains of fluid can be
    // scarce (the ventricles of a scan with thick slices), and the class farthest from the
    // median may then be the other end's tail: on a contrast-enhanced T1, enhancing vessels and
    // dura and tissue next to the brain. Taken for fluid, or for a tissue, it would pull that
    // class's mean there. Where the rim's step saw fluid at the other end of the whole brain's
    // values, that tail is set aside and the three classes are found again without it (its
    // voxels start in the nearest class).
    let own = FluidClass::of_sorted(&primary_sorted);
    let (classes, tail) = match hints.fluid_seen.map(|seen| seen.fluid) {
        Some(end @ (0 | 2)) if own.fluid != end => {
            let kept = if end == 0 {
                let cut = 0.5 * (own.centres[1] + own.centres[2]);
                &primary_sorted[..primary_sorted.partition_point(|&v| v < cut)]
            } else {
                let cut = 0.5 * (own.centres[0] + own.centres[1]);
                &primary_sorted[primary_sorted.partition_point(|&v| v <= cut)..]
            };
            let mut classes = if kept.len() >= 64 { FluidClass::of_sorted(kept) } else { own };
            classes.fluid = end;
            let (lo, hi) = (kept.first().copied().unwrap_or(0.0), kept.last().copied().unwrap_or(0.0));
            let share = 1.0 - kept.len() as f64 / m as f64;
            (classes, Some(if end == 0 { ValueTail::Above(hi, share) } else { ValueTail::Below(lo, share) }))
        }
        _ => (own, None),
    };
    drop(primary_sorted);
    let cluster: Vec<usize> = (0..m).map(|i| classes.class_of(raw[i * d])).collect();
    let mut lean = [0f64; 3];
    for (i, &k) in cluster.iter().enumerate() {
        lean[k] += f64::from(prior[i][1] + prior[i][DEEP]) - f64::from(prior[i][2]);
    }
    let others: Vec<usize> = (0..3).filter(|&k| k != classes.fluid).collect();
    let grey = if hints.grey_darker && classes.fluid == 0 {
        // k-means centres are ascending: the darker of the two is the first.
        others[0]
    } else if lean[others[0]] >= lean[others[1]] {
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
            let share = deep.get(j).copied().unwrap_or(0.0);
            if k == classes.fluid {
                r[0] = 1.0;
            } else if k == grey {
                r[1] = 1.0 - share;
                r[DEEP] = share;
            } else if from_white {
                r[2] = 1.0 - share;
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
    // Time spent on departures (the outliers left out of the fit, the departure itself): what
    // key regions add to the tissue model.
    let mut outlier_seconds = 0.0;
    for round in 0..spec.iterations {
        // With `exclude_outliers`: voxels far from every tissue and mixture under the last
        // round's model (a lesion, say) are left out of the tissues' statistics and the bias
        // field, once the classes have settled: a bright lesion would otherwise pull white
        // matter's mean and widen the shared spread, and be taken for a bias and corrected away.
        let t = std::time::Instant::now();
        let mut inlier: Vec<f32> = if let (Some(limit), true) = (spec.exclude_outliers, round >= 2 && !gaussians.is_empty()) {
            departure::distances(&corrected, d, &gaussians)
                .into_iter()
                .map(|s| if f64::from(s) <= limit { 1.0 } else { 0.0 })
                .collect()
        } else {
            vec![1.0; m]
        };
        // The tail set aside stays out of the statistics and the bias field in every round.
        if let Some(tail) = tail {
            inlier.iter_mut().enumerate().filter(|(i, _)| tail.holds(raw[i * d])).for_each(|(_, w)| *w = 0.0);
        }
        outlier_seconds += t.elapsed().as_secs_f64();
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
                        let r = f64::from(post[i][t] * inlier[i]);
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
                        let r = f64::from(post[i][t] * inlier[i]);
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
                            let r = f64::from(post[i][t] * inlier[i]) * log_prec[t];
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
    // Departures are measured in the spread of healthy tissue itself: the scatter about their
    // tissue's mean of voxels inside a tissue (all six neighbours of the same component), the
    // fit's outliers left out. The fit's shared spread also holds partial volume, which the
    // healthy set already allows for as mixtures; measured in it, a lesion looks nearer.
    let measured = departure.map(|how| {
        let t = std::time::Instant::now();
        let hard: Vec<u8> = post
            .iter()
            .map(|p| (0..components).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0) as u8)
            .collect();
        let pooled = departure::distances(&corrected, d, &gaussians);
        let healthy = departure::with_own_spread(&corrected, d, &gaussians, &hard, &variance_floor, |i| {
            f64::from(pooled[i]) <= OUTLIER_SPREADS
                && (0..d).all(|c| raw[i * d + c] >= no_signal[c])
                && neighbours(brain[i] as usize).iter().all(|&(j, _)| j != u32::MAX && hard[j as usize] == hard[i])
        });
        // The tissues bordering each voxel: its own and its six neighbours'.
        let present: Option<Vec<u8>> = how.bordering.then(|| {
            (0..m)
                .into_par_iter()
                .map(|i| {
                    neighbours(brain[i] as usize)
                        .iter()
                        .filter(|&&(j, _)| j != u32::MAX)
                        .fold(1u8 << hard[i].min(7), |bits, &(j, _)| bits | 1u8 << hard[j as usize].min(7))
                })
                .collect()
        });
        let mut measured = departure::measure(&corrected, d, &healthy, present.as_deref());
        // A voxel without signal on a series (a skull-stripped scan's zeros, a masked area)
        // says nothing of its tissue there: no departure.
        for i in 0..m {
            if (0..d).any(|c| raw[i * d + c] < no_signal[c]) {
                measured.score[i] = 0.0;
                measured.shares[i * d..(i + 1) * d].iter_mut().for_each(|x| *x = 0.0);
                measured.residual[i * d..(i + 1) * d].iter_mut().for_each(|x| *x = 0.0);
            }
        }
        (measured, outlier_seconds + t.elapsed().as_secs_f64())
    });
    let fit = TissueFit {
        means: std::array::from_fn(|t| gaussians.get(t).map_or(0.0, |g| g.mean[0])),
        deep_gm_mean: (components > DEEP).then(|| gaussians.get(DEEP).map_or(0.0, |g| g.mean[0])),
        shares: counts.map(|c| c as f64 / m as f64),
        bias_range,
        changed,
        iterations: spec.iterations,
        channels: d,
        tail,
    };
    let departure = measured.map(|(measured, seconds)| Departure {
        voxels: brain,
        score: measured.score,
        shares: measured.shares,
        residual: measured.residual,
        metric: measured.metric,
        channels: d,
        seconds,
    });
    Some((fit, departure))
}

#[cfg(test)]
mod tests;
