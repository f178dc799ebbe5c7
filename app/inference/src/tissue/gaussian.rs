//! The mixture's Gaussians: multivariate over the series given, one covariance shared.

/// A Gaussian over `d` channels: mean, the inverse of its covariance and its log normaliser.
#[derive(Debug, Clone)]
pub(super) struct Gaussian {
    pub(super) mean: Vec<f64>,
    pub(super) cov: Vec<f64>,
    pub(super) inv: Vec<f64>,
    pub(super) log_norm: f64,
}

impl Gaussian {
    pub(super) fn new(mean: Vec<f64>, mut cov: Vec<f64>, floor: &[f64]) -> Gaussian {
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

    pub(super) fn log_density(&self, y: &[f64]) -> f64 {
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
pub(super) fn invert(m: &[f64], d: usize) -> (Vec<f64>, f64) {
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
