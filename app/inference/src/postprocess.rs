//! Post-processing the manifest asks for, applied to the whole label volume: the brain is one
//! connected object, so labelled islands apart from it (eyes, neck, scalp) are background.

/// Keeps the largest 6-connected component of non-background voxels; returns how many
/// voxels were set to background. `dims` = [columns, rows, slices].
pub fn keep_largest_component(labels: &mut [u8], [c, r, s]: [usize; 3]) -> usize {
    let n = c * r * s;
    if labels.len() != n || n == 0 {
        return 0;
    }
    let mut component = vec![0u32; n];
    let mut sizes = vec![0usize]; // component 0 = background
    let mut stack = Vec::new();
    for start in 0..n {
        if labels[start] == 0 || component[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        let mut size = 0;
        component[start] = id;
        stack.push(start);
        while let Some(v) = stack.pop() {
            size += 1;
            let (x, y, z) = (v % c, (v / c) % r, v / (c * r));
            let mut visit = |u: usize| {
                if labels[u] != 0 && component[u] == 0 {
                    component[u] = id;
                    stack.push(u);
                }
            };
            if x > 0 {
                visit(v - 1);
            }
            if x + 1 < c {
                visit(v + 1);
            }
            if y > 0 {
                visit(v - c);
            }
            if y + 1 < r {
                visit(v + c);
            }
            if z > 0 {
                visit(v - c * r);
            }
            if z + 1 < s {
                visit(v + c * r);
            }
        }
        sizes.push(size);
    }
    let Some(largest) = (1..sizes.len()).max_by_key(|&i| sizes[i]) else {
        return 0;
    };
    let mut removed = 0;
    for (l, &id) in labels.iter_mut().zip(&component) {
        if id != 0 && id as usize != largest {
            *l = 0;
            removed += 1;
        }
    }
    removed
}


/// The manifest's "fluid_rim" step: labelled voxels at the brain's outer surface whose value
/// belongs to the scan's fluid intensity class become background (the extra-axial CSF and
/// dura that a brain mask leaves out, which the tissue model labels as grey matter).
///
/// The labelled voxels' values are split into three classes by 1D k-means (started at their
/// 15th, 50th and 85th percentiles); the fluid class is the one whose centre lies farthest
/// from their median, so the rule needs no contrast: dark CSF on T1 or FLAIR, bright on T2.
/// Fluid-class voxels within `depth_mm` of the labelled region's edge (Euclidean, in mm with
/// the voxel `spacing`) are removed where they connect, through such voxels, to an unlabelled
/// voxel: sulci and ventricles deeper inside stay. Returns the voxels set to background
/// (indices, in order) and which values counted as fluid (None when there were too few
/// labelled voxels to tell). `dims` = [columns, rows, slices], `spacing` = [column step, row step,
/// slice step] in mm.
pub fn trim_fluid_rim(
    labels: &mut [u8],
    values: &[f32],
    dims: [usize; 3],
    spacing: [f64; 3],
    depth_mm: f64,
) -> (Vec<usize>, Option<FluidClass>) {
    let [c, r, s] = dims;
    let n = c * r * s;
    if labels.len() != n || values.len() != n || n == 0 || depth_mm.is_nan() || depth_mm <= 0.0 {
        return (Vec::new(), None);
    }
    let mut inside: Vec<f64> = labels
        .iter()
        .zip(values)
        .filter(|(l, v)| **l != 0 && v.is_finite())
        .map(|(_, v)| f64::from(*v))
        .collect();
    if inside.len() < 64 {
        return (Vec::new(), None);
    }
    inside.sort_unstable_by(f64::total_cmp);
    let classes = FluidClass::of_sorted(&inside);
    let depth2 = squared_depth_mm(labels, dims, spacing);
    let limit = depth_mm * depth_mm;
    let candidate: Vec<bool> = (0..n)
        .map(|i| labels[i] != 0 && depth2[i] <= limit && classes.class_of(f64::from(values[i])) == classes.fluid)
        .collect();
    drop(depth2);
    // Flood from the candidates next to an unlabelled voxel, through 6-connected candidates.
    let plane = c * r;
    let neighbours = |v: usize| {
        let (x, y, z) = (v % c, (v / c) % r, v / plane);
        [
            (x > 0).then(|| v - 1),
            (x + 1 < c).then(|| v + 1),
            (y > 0).then(|| v - c),
            (y + 1 < r).then(|| v + c),
            (z > 0).then(|| v - plane),
            (z + 1 < s).then(|| v + plane),
        ]
    };
    let mut removed = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&v| candidate[v] && neighbours(v).into_iter().flatten().any(|u| labels[u] == 0))
        .collect();
    for &v in &stack {
        removed[v] = true;
    }
    while let Some(v) = stack.pop() {
        for u in neighbours(v).into_iter().flatten() {
            if candidate[u] && !removed[u] {
                removed[u] = true;
                stack.push(u);
            }
        }
    }
    let mut gone = Vec::new();
    for (v, (l, removed)) in labels.iter_mut().zip(removed).enumerate() {
        if removed {
            *l = 0;
            gone.push(v);
        }
    }
    (gone, Some(classes))
}

/// Three intensity classes of a scan's labelled values and which one is fluid, so a reader can
/// see which values were taken for CSF (the fluid rim), and the scan's tissue model knows
/// where its classes start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluidClass {
    pub centres: [f64; 3],
    pub fluid: usize,
    /// Values under this carry no signal (`NO_SIGNAL_SHARE` of the 99th percentile's size).
    pub no_signal: f64,
}

/// Values under this share of the 99th percentile (of the brain's) carry no signal: a
/// skull-stripped or padded scan's zeros inside the brain's outline.
pub const NO_SIGNAL_SHARE: f64 = 0.02;

impl FluidClass {
    /// Three k-means classes of sorted values; the fluid class is the one whose centre lies
    /// farthest from their median (the first on a tie), so no contrast is assumed: dark CSF on
    /// T1 or FLAIR, bright on T2.
    pub fn of_sorted(sorted: &[f64]) -> FluidClass {
        let centres = kmeans3_sorted(sorted);
        let median = percentile_sorted(sorted, 50.0);
        let mut fluid = 0;
        for k in 1..3 {
            if (centres[k] - median).abs() > (centres[fluid] - median).abs() {
                fluid = k;
            }
        }
        let no_signal = percentile_sorted(sorted, 99.0).abs() * NO_SIGNAL_SHARE;
        FluidClass { centres, fluid, no_signal }
    }

    /// The class whose centre is nearest a value (the lower one on a tie).
    pub fn class_of(&self, v: f64) -> usize {
        let mut best = 0;
        for k in 1..3 {
            if (v - self.centres[k]).abs() < (v - self.centres[best]).abs() {
                best = k;
            }
        }
        best
    }

    /// "values below 63.1 (the darkest of three classes: 43.9, 82.2, 108.5)".
    pub fn describe(&self) -> String {
        let [a, b, c] = self.centres;
        let (lo, hi) = ((a + b) / 2.0, (b + c) / 2.0);
        let range = match self.fluid {
            0 => format!("values below {lo:.1} (the darkest"),
            2 => format!("values above {hi:.1} (the brightest"),
            _ => format!("values from {lo:.1} to {hi:.1} (the middle"),
        };
        format!("{range} of three classes: {a:.1}, {b:.1}, {c:.1})")
    }
}

/// The q-th percentile of sorted values, interpolated linearly between neighbours (numpy's
/// default).
pub(crate) fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Three-class 1D k-means of sorted values, started at their 15th, 50th and 85th percentiles,
/// 50 rounds (a value goes to the nearest centre, the lower one on a tie; an empty class keeps
/// its centre). In one dimension each class is a run of the sorted values, so a round is two
/// binary searches and prefix sums.
fn kmeans3_sorted(sorted: &[f64]) -> [f64; 3] {
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    prefix.push(0.0);
    let mut sum = 0.0;
    for v in sorted {
        sum += v;
        prefix.push(sum);
    }
    let mut c = [15.0, 50.0, 85.0].map(|q| percentile_sorted(sorted, q));
    for _ in 0..50 {
        // With c0 <= c1 <= c2 (kept by the means of consecutive runs) the classes split at
        // the first values nearer c1 than c0, and nearer c2 than c1.
        let a = sorted.partition_point(|&v| (v - c[0]).abs() <= (v - c[1]).abs());
        let b = a + sorted[a..].partition_point(|&v| (v - c[1]).abs() <= (v - c[2]).abs());
        let mut next = c;
        for (k, (lo, hi)) in [(0, a), (a, b), (b, sorted.len())].into_iter().enumerate() {
            if hi > lo {
                next[k] = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            }
        }
        if next == c {
            break;
        }
        c = next;
    }
    c
}

/// Squared Euclidean distance (mm²) from each labelled voxel to the nearest unlabelled one
/// (0 for unlabelled voxels, infinite when there is none), by the separable exact transform
/// of Felzenszwalb and Huttenlocher applied along each axis in turn.
pub(crate) fn squared_depth_mm(labels: &[u8], [c, r, s]: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut d: Vec<f64> = labels.iter().map(|&l| if l == 0 { 0.0 } else { f64::INFINITY }).collect();
    let lens = [c, r, s];
    let strides = [1, c, c * r];
    let longest = c.max(r).max(s);
    let (mut f, mut out) = (vec![0.0; longest], vec![0.0; longest]);
    let (mut v, mut z) = (vec![0usize; longest], vec![0.0; longest + 1]);
    for axis in 0..3 {
        let (len, stride, h) = (lens[axis], strides[axis], spacing[axis]);
        let starts: Vec<usize> = (0..c * r * s)
            .filter(|&i| (i / stride) % len == 0)
            .collect();
        for start in starts {
            for (q, slot) in f[..len].iter_mut().enumerate() {
                *slot = d[start + q * stride];
            }
            lower_envelope(&f[..len], h, &mut out[..len], &mut v, &mut z);
            for (q, &value) in out[..len].iter().enumerate() {
                d[start + q * stride] = value;
            }
        }
    }
    d
}

/// One dimension of the distance transform: out[q] = min_p f[p] + (h (q - p))², over the
/// finite f[p] (lower envelope of parabolas).
fn lower_envelope(f: &[f64], h: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let pos = |q: usize| q as f64 * h;
    let mut k: isize = -1;
    for q in 0..f.len() {
        if !f[q].is_finite() {
            continue;
        }
        loop {
            if k < 0 {
                k = 0;
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            let p = v[k as usize];
            let cross = ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if cross <= z[k as usize] {
                k -= 1;
                continue;
            }
            k += 1;
            v[k as usize] = q;
            z[k as usize] = cross;
            z[k as usize + 1] = f64::INFINITY;
            break;
        }
    }
    if k < 0 {
        out.fill(f64::INFINITY);
        return;
    }
    let mut j = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[j + 1] < pos(q) {
            j += 1;
        }
        let dq = pos(q) - pos(v[j]);
        *o = f[v[j]] + dq * dq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn islands_apart_from_the_largest_object_are_removed() {
        // 6 × 4 × 3: a 2 × 2 × 2 cube (8 voxels, two labels) and a lone voxel far from it.
        let (c, r, s) = (6, 4, 3);
        let mut labels = vec![0u8; c * r * s];
        let at = |x: usize, y: usize, z: usize| (z * r + y) * c + x;
        for z in 0..2 {
            for y in 0..2 {
                for x in 0..2 {
                    labels[at(x, y, z)] = 1 + (x as u8 % 2);
                }
            }
        }
        labels[at(5, 3, 2)] = 3;
        // Diagonal neighbours are not 6-connected.
        labels[at(2, 2, 2)] = 2;
        let removed = keep_largest_component(&mut labels, [c, r, s]);
        assert_eq!(removed, 2);
        assert_eq!(labels.iter().filter(|&&l| l != 0).count(), 8);
        assert_eq!(labels[at(1, 1, 1)], 2);
    }

    /// A ball of "parenchyma" (radius 9 voxels: white matter 100 inside radius 6, grey matter
    /// 70 outside) in a rim of "fluid" (radius 9–11) and with a fluid "ventricle" at its
    /// centre, all labelled, in an unlabelled box; spacing 1 × 1 × 2 mm.
    #[allow(clippy::type_complexity)] // a test fixture's five parts
    fn fluid_head(fluid: f32) -> (Vec<u8>, Vec<f32>, [usize; 3], [f64; 3], impl Fn(usize, usize, usize) -> usize) {
        let (c, r, s) = (32, 32, 16);
        let spacing = [1.0, 1.0, 2.0];
        let at = move |x: usize, y: usize, z: usize| (z * r + y) * c + x;
        let (mut labels, mut values) = (vec![0u8; c * r * s], vec![0f32; c * r * s]);
        for z in 0..s {
            for y in 0..r {
                for x in 0..c {
                    let d = ((x as f64 - 16.0).powi(2) + (y as f64 - 16.0).powi(2) + (2.0 * (z as f64 - 8.0)).powi(2)).sqrt();
                    let i = at(x, y, z);
                    // A little texture so the classes are not single values.
                    let jitter = ((x * 7 + y * 3 + z * 5) % 5) as f32 - 2.0;
                    if d <= 2.0 {
                        (labels[i], values[i]) = (3, fluid + jitter);
                    } else if d <= 6.0 {
                        (labels[i], values[i]) = (3, 100.0 + jitter);
                    } else if d <= 9.0 {
                        (labels[i], values[i]) = (2, 70.0 + jitter);
                    } else if d <= 11.0 {
                        (labels[i], values[i]) = (2, fluid + jitter);
                    } else {
                        values[i] = 5.0;
                    }
                }
            }
        }
        (labels, values, [c, r, s], spacing, at)
    }

    #[test]
    fn the_fluid_rim_is_trimmed_and_deep_fluid_kept_whatever_the_contrast() {
        // Dark fluid (T1, FLAIR) and bright fluid (T2): the rule finds the fluid class itself.
        for fluid in [25.0, 160.0] {
            let (mut labels, values, dims, spacing, at) = fluid_head(fluid);
            let before: Vec<u8> = labels.clone();
            let (removed, class) = trim_fluid_rim(&mut labels, &values, dims, spacing, 5.0);
            let class = class.expect("enough labelled voxels");
            let expected = if fluid < 50.0 { 0 } else { 2 };
            assert_eq!(class.fluid, expected, "fluid {fluid}: {class:?}");
            assert!(class.describe().starts_with(if expected == 0 { "values below" } else { "values above" }));
            let rim = (0..labels.len())
                .filter(|&i| before[i] != 0 && (values[i] - fluid).abs() <= 2.0 && labels[i] == 0)
                .count();
            assert_eq!(removed.len(), rim, "fluid {fluid}: only fluid voxels go");
            assert!(removed.iter().all(|&v| labels[v] == 0 && before[v] != 0), "fluid {fluid}: what it names went");
            // The whole outer rim went, the ventricle and every tissue voxel stayed.
            assert_eq!(labels[at(16, 16, 8)], 3, "fluid {fluid}: the ventricle stays");
            assert_eq!(labels[at(16 + 10, 16, 8)], 0, "fluid {fluid}: the rim goes");
            assert_eq!(labels[at(16 + 8, 16, 8)], 2, "fluid {fluid}: grey matter stays");
            let rim_left = (0..labels.len()).filter(|&i| labels[i] != 0 && (values[i] - fluid).abs() <= 2.0).count();
            let ventricle = (0..labels.len()).filter(|&i| before[i] == 3 && (values[i] - fluid).abs() <= 2.0).count();
            assert_eq!(rim_left, ventricle, "fluid {fluid}");
        }
    }

    #[test]
    fn the_fluid_rim_goes_only_as_deep_as_asked() {
        let (mut labels, values, dims, spacing, at) = fluid_head(25.0);
        // 1 mm: only the outermost fluid layer (the rim is 2 voxels thick in-plane).
        trim_fluid_rim(&mut labels, &values, dims, spacing, 1.0);
        assert_eq!(labels[at(16 + 11, 16, 8)], 0);
        assert_eq!(labels[at(16 + 10, 16, 8)], 2);
    }

    #[test]
    fn depth_is_the_euclidean_distance_in_mm_to_the_nearest_unlabelled_voxel() {
        let (c, r, s) = (9, 7, 5);
        let spacing = [0.8, 1.3, 2.5];
        // A pseudo-random label volume.
        let labels: Vec<u8> = (0..c * r * s).map(|i| u8::from(!(i * 2654435761usize).is_multiple_of(7))).collect();
        let d2 = squared_depth_mm(&labels, [c, r, s], spacing);
        let coords = |i: usize| [(i % c) as f64, ((i / c) % r) as f64, (i / (c * r)) as f64];
        for (i, &got) in d2.iter().enumerate() {
            let p = coords(i);
            let brute = (0..labels.len())
                .filter(|&j| labels[j] == 0)
                .map(|j| {
                    let q = coords(j);
                    (0..3).map(|a| ((p[a] - q[a]) * spacing[a]).powi(2)).sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            assert!((got - brute).abs() < 1e-9, "voxel {i}: {got} vs {brute}");
        }
        // No unlabelled voxel at all: infinitely deep, nothing trimmed.
        assert!(squared_depth_mm(&[1, 1, 1], [3, 1, 1], [1.0; 3]).iter().all(|d| d.is_infinite()));
    }

    #[test]
    fn kmeans_finds_three_intensity_classes() {
        let mut v: Vec<f64> = (0..300).map(|i| [20.0, 70.0, 110.0][i % 3] + (i % 7) as f64 - 3.0).collect();
        v.sort_unstable_by(f64::total_cmp);
        let c = kmeans3_sorted(&v);
        for (got, want) in c.iter().zip([20.0, 70.0, 110.0]) {
            assert!((got - want).abs() < 0.5, "{c:?}");
        }
        assert_eq!(percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
    }
}
