//! Two label maps of one head compared label by label: Dice, volumes and their difference, and
//! the 95th percentile Hausdorff distance between the labels' surfaces (in mm). The second map
//! is taken onto the first one's grid by world coordinates (nearest voxel), so a map written by
//! another tool on another grid of the same scan can be compared.

use crate::nifti::Affine;

/// A label map and where its voxels lie.
pub struct LabelMap {
    pub dims: [usize; 3],
    pub labels: Vec<u32>,
    pub affine: Affine,
}

/// One label's agreement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Agreement {
    pub label: u32,
    pub volume_a_ml: f64,
    pub volume_b_ml: f64,
    /// (B − A) / A, in %; None when A is empty.
    pub volume_difference_percent: Option<f64>,
    /// None when both are empty.
    pub dice: Option<f64>,
    /// None unless both hold the label.
    pub hausdorff95_mm: Option<f64>,
}

fn invert(a: &Affine) -> Option<Affine> {
    let m = [[a[0][0], a[0][1], a[0][2]], [a[1][0], a[1][1], a[1][2]], [a[2][0], a[2][1], a[2][2]]];
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let c = |r: usize, k: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (k1, k2) = ((k + 1) % 3, (k + 2) % 3);
        (m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]) / det
    };
    let inv = [[c(0, 0), c(1, 0), c(2, 0)], [c(0, 1), c(1, 1), c(2, 1)], [c(0, 2), c(1, 2), c(2, 2)]];
    let t = [a[0][3], a[1][3], a[2][3]];
    Some([0, 1, 2].map(|r| {
        let shift = -(inv[r][0] * t[0] + inv[r][1] * t[1] + inv[r][2] * t[2]);
        [inv[r][0], inv[r][1], inv[r][2], shift]
    }))
}

fn apply(a: &Affine, p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
}

/// Voxel spacing (mm) along each axis of a placement.
pub fn spacing(a: &Affine) -> [f64; 3] {
    [0, 1, 2].map(|c| (a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]).sqrt())
}

/// `b` on `a`'s grid: each voxel of `a` takes the label of `b`'s voxel nearest its centre (0
/// outside `b`). Returns the share of `a`'s voxels that `b` covers, or an error when `b`'s
/// placement cannot be inverted.
pub fn onto_grid(a: &LabelMap, b: &LabelMap) -> Result<(Vec<u32>, f64), String> {
    nearest_onto(a.dims, &a.affine, b.dims, &b.affine, &b.labels, 0)
}

/// Values `b` (of `b_dims`, placed by `b_affine`) on the grid `a_dims` placed by `a_affine`:
/// each voxel takes the value of `b`'s voxel nearest its centre, `outside` where none. Returns
/// the share of the grid that `b` covers.
pub fn nearest_onto<T: Copy>(
    a_dims: [usize; 3],
    a_affine: &Affine,
    b_dims: [usize; 3],
    b_affine: &Affine,
    b: &[T],
    outside: T,
) -> Result<(Vec<T>, f64), String> {
    let same = a_dims == b_dims && a_affine.iter().flatten().zip(b_affine.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-3);
    if same && b.len() >= a_dims.iter().product::<usize>() {
        return Ok((b[..a_dims.iter().product::<usize>()].to_vec(), 1.0));
    }
    if b.len() < b_dims.iter().product::<usize>() {
        return Err("fewer voxels than its dimensions say".into());
    }
    let to_b = invert(b_affine).ok_or("its placement (sform) cannot be inverted")?;
    let [nx, ny, nz] = a_dims;
    let mut out = vec![outside; nx * ny * nz];
    let mut inside = 0usize;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let w = apply(a_affine, [i as f64, j as f64, k as f64]);
                let v = apply(&to_b, w).map(f64::round);
                if v.iter().zip(b_dims).all(|(x, n)| *x >= 0.0 && *x < n as f64) {
                    let [bi, bj, bk] = v.map(|x| x as usize);
                    out[i + nx * (j + ny * k)] = b[bi + b_dims[0] * (bj + b_dims[1] * bk)];
                    inside += 1;
                }
            }
        }
    }
    Ok((out, inside as f64 / (nx * ny * nz).max(1) as f64))
}

/// Squared Euclidean distance transform along one line (Felzenszwalb and Huttenlocher): `f`
/// holds 0 at feature points and infinity elsewhere, in units of the step squared.
fn edt_line(f: &[f64], step: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let w = step * step;
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let first = (0..n).find(|&q| f[q].is_finite());
    let Some(first) = first else {
        out.fill(f64::INFINITY);
        return;
    };
    v[0] = first;
    for q in first + 1..n {
        if !f[q].is_finite() {
            continue;
        }
        loop {
            let p = v[k];
            let s = ((f[q] + w * (q * q) as f64) - (f[p] + w * (p * p) as f64)) / (2.0 * w * (q as f64 - p as f64));
            if s <= z[k] && k > 0 {
                k -= 1;
                continue;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
            break;
        }
    }
    let mut j = 0usize;
    for (q, o) in out.iter_mut().enumerate() {
        while z[j + 1] < q as f64 {
            j += 1;
        }
        let d = q as f64 - v[j] as f64;
        *o = w * d * d + f[v[j]];
    }
}

/// Distance (mm) from every voxel to the nearest voxel where `mask` is set.
fn distance_to(mask: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let [nx, ny, nz] = dims;
    let mut d: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { f64::INFINITY }).collect();
    let longest = nx.max(ny).max(nz);
    let (mut line, mut out) = (vec![0.0; longest], vec![0.0; longest]);
    let (mut v, mut z) = (vec![0usize; longest], vec![0.0; longest + 1]);
    let index = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    for axis in 0..3 {
        let n = dims[axis];
        let (o1, o2) = match axis {
            0 => (ny, nz),
            1 => (nx, nz),
            _ => (nx, ny),
        };
        for b in 0..o2 {
            for a in 0..o1 {
                let at = |t: usize| match axis {
                    0 => index(t, a, b),
                    1 => index(a, t, b),
                    _ => index(a, b, t),
                };
                for t in 0..n {
                    line[t] = d[at(t)];
                }
                edt_line(&line[..n], spacing[axis], &mut out[..n], &mut v[..n], &mut z[..=n]);
                for t in 0..n {
                    d[at(t)] = out[t];
                }
            }
        }
    }
    d.iter().map(|x| x.sqrt()).collect()
}

/// Voxels of `mask` with a 6-neighbour outside it (or at the grid's edge).
fn surface(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [nx, ny, nz] = dims;
    let mut s = vec![false; mask.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let at = i + nx * (j + ny * k);
                if !mask[at] {
                    continue;
                }
                let off = |di: isize, dj: isize, dk: isize| {
                    let (a, b, c) = (i as isize + di, j as isize + dj, k as isize + dk);
                    a < 0 || b < 0 || c < 0 || a >= nx as isize || b >= ny as isize || c >= nz as isize
                        || !mask[a as usize + nx * (b as usize + ny * c as usize)]
                };
                s[at] = off(-1, 0, 0) || off(1, 0, 0) || off(0, -1, 0) || off(0, 1, 0) || off(0, 0, -1) || off(0, 0, 1);
            }
        }
    }
    s
}

/// 95th percentile of the distances from each surface to the other (both directions pooled).
fn hausdorff95(a: &[bool], b: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> f64 {
    let (sa, sb) = (surface(a, dims), surface(b, dims));
    let (to_a, to_b) = (distance_to(&sa, dims, spacing), distance_to(&sb, dims, spacing));
    let mut d: Vec<f64> = sa
        .iter()
        .zip(&to_b)
        .filter(|(s, _)| **s)
        .map(|(_, d)| *d)
        .chain(sb.iter().zip(&to_a).filter(|(s, _)| **s).map(|(_, d)| *d))
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f64::total_cmp);
    // The nearest-rank percentile.
    let rank = ((0.95 * d.len() as f64).ceil() as usize).clamp(1, d.len());
    d[rank - 1]
}

/// Every label present in either map (0, background, left out), compared on `dims`.
pub fn compare(a: &[u32], b: &[u32], dims: [usize; 3], spacing: [f64; 3]) -> Vec<Agreement> {
    let voxel_ml = spacing.iter().product::<f64>() / 1000.0;
    let mut labels: Vec<u32> = a.iter().chain(b).copied().filter(|&l| l != 0).collect();
    labels.sort_unstable();
    labels.dedup();
    labels
        .into_iter()
        .map(|label| {
            let ma: Vec<bool> = a.iter().map(|&l| l == label).collect();
            let mb: Vec<bool> = b.iter().map(|&l| l == label).collect();
            let (na, nb) = (ma.iter().filter(|x| **x).count(), mb.iter().filter(|x| **x).count());
            let both = ma.iter().zip(&mb).filter(|(x, y)| **x && **y).count();
            Agreement {
                label,
                volume_a_ml: na as f64 * voxel_ml,
                volume_b_ml: nb as f64 * voxel_ml,
                volume_difference_percent: (na > 0).then(|| (nb as f64 - na as f64) / na as f64 * 100.0),
                dice: (na + nb > 0).then(|| 2.0 * both as f64 / (na + nb) as f64),
                hausdorff95_mm: (na > 0 && nb > 0).then(|| hausdorff95(&ma, &mb, dims, spacing)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_euclidean_in_mm() {
        let dims = [7, 5, 3];
        let mut mask = vec![false; 7 * 5 * 3];
        mask[0] = true; // voxel (0, 0, 0)
        let d = distance_to(&mask, dims, [1.0, 2.0, 3.0]);
        let at = |i: usize, j: usize, k: usize| d[i + 7 * (j + 5 * k)];
        assert!((at(3, 0, 0) - 3.0).abs() < 1e-9);
        assert!((at(0, 2, 0) - 4.0).abs() < 1e-9);
        assert!((at(6, 4, 2) - (36.0f64 + 64.0 + 36.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn a_map_agrees_with_itself_and_a_shifted_copy_by_its_shift() {
        let dims = [20, 20, 10];
        let cube = |shift: usize| -> Vec<u32> {
            let mut v = vec![0u32; 20 * 20 * 10];
            for k in 2..8 {
                for j in 5..15 {
                    for i in 5 + shift..15 + shift {
                        v[i + 20 * (j + 20 * k)] = 3;
                    }
                }
            }
            v
        };
        let same = compare(&cube(0), &cube(0), dims, [1.0; 3]);
        assert_eq!(same.len(), 1);
        assert_eq!((same[0].dice, same[0].hausdorff95_mm), (Some(1.0), Some(0.0)));
        let shifted = compare(&cube(0), &cube(2), dims, [1.0; 3]);
        assert!((shifted[0].dice.expect("dice") - 0.8).abs() < 1e-9);
        assert!((shifted[0].hausdorff95_mm.expect("hd95") - 2.0).abs() < 1e-9, "{shifted:?}");
        assert_eq!(shifted[0].volume_difference_percent, Some(0.0));
    }

    #[test]
    fn a_map_on_another_grid_is_taken_by_world_coordinates() {
        // b: the same 4 x 4 x 4 labels at half the resolution of a, placed on the same origin.
        let a = LabelMap { dims: [4, 4, 4], labels: (0..64).map(|x| x % 3).collect(), affine: [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]] };
        let b = LabelMap { dims: [8, 8, 8], labels: (0..512).map(|n: u32| { let (i, j, k) = (n % 8 / 2, n / 8 % 8 / 2, n / 64 / 2); (i + 4 * (j + 4 * k)) % 3 }).collect(), affine: [[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]] };
        let (on_a, covered) = onto_grid(&a, &b).expect("placed");
        assert_eq!(covered, 1.0);
        assert_eq!(on_a, a.labels);
    }
}
