//! Patient-space geometry: slice normals, stack ordering and spacing checks.

use serde::Serialize;

pub type Vec3 = [f64; 3];

pub fn dot(a: &Vec3, b: &Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: &Vec3, b: &Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn sub(a: &Vec3, b: &Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn norm(a: &Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn normalize(a: &Vec3) -> Vec3 {
    let n = norm(a);
    if n > 0.0 { [a[0] / n, a[1] / n, a[2] / n] } else { *a }
}

/// Unit slice normal (row direction × column direction) of an ImageOrientationPatient.
pub fn normal(iop: &[f64; 6]) -> Vec3 {
    let row = [iop[0], iop[1], iop[2]];
    let col = [iop[3], iop[4], iop[5]];
    normalize(&cross(&row, &col))
}

/// Key that groups frames of the same orientation (cosines rounded to ~0.6°).
pub fn orientation_key(iop: &[f64; 6]) -> [i32; 6] {
    iop.map(|v| (v * 100.0).round() as i32)
}

/// The anatomical plane an orientation is closest to.
pub fn plane_name(iop: &[f64; 6]) -> &'static str {
    let n = normal(iop);
    let axis = (0..3).max_by(|&a, &b| n[a].abs().total_cmp(&n[b].abs())).unwrap_or(2);
    match axis {
        0 => "sagittal",
        1 => "coronal",
        _ => "axial",
    }
}

/// Anatomical letters for a direction in patient space (LPS): up to two, strongest first.
pub fn direction_letters(d: &Vec3) -> String {
    let mut axes: Vec<(f64, char)> = vec![
        (d[0], if d[0] > 0.0 { 'L' } else { 'R' }),
        (d[1], if d[1] > 0.0 { 'P' } else { 'A' }),
        (d[2], if d[2] > 0.0 { 'S' } else { 'I' }),
    ];
    axes.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    axes.iter()
        .take(2)
        .filter(|(v, _)| v.abs() > 0.3)
        .map(|(_, c)| *c)
        .collect()
}

/// Whether the point (x, y) lies inside the closed polygon through `points` (even-odd rule:
/// edges crossed by a ray towards +x), in the polygon's own plane.
pub fn inside_polygon(points: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    for (k, a) in points.iter().enumerate() {
        let b = points[(k + 1) % points.len()];
        if (a[1] > y) != (b[1] > y) && x < a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]) {
            inside = !inside;
        }
    }
    inside
}

/// Orientation and placement of a sorted stack of slices in patient space (LPS, mm).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackGeometry {
    /// Position of the centre of the first voxel of the first slice.
    pub origin: Vec3,
    /// Unit vectors of increasing column index, increasing row index, increasing slice index.
    pub row_direction: Vec3,
    pub column_direction: Vec3,
    pub slice_direction: Vec3,
    /// Spacing between columns, between rows, between slices (mm).
    pub spacing: Vec3,
}

impl StackGeometry {
    /// Patient-space position (mm) of a voxel index (column, row, slice).
    pub fn voxel_to_patient(&self, i: f64, j: f64, k: f64) -> Vec3 {
        let mut p = self.origin;
        for a in 0..3 {
            p[a] += self.row_direction[a] * self.spacing[0] * i
                + self.column_direction[a] * self.spacing[1] * j
                + self.slice_direction[a] * self.spacing[2] * k;
        }
        p
    }
}

/// Findings about the regularity of a stack's slice positions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpacingReport {
    /// Median distance between consecutive distinct positions along the normal.
    pub spacing: Option<f64>,
    pub duplicates: usize,
    pub irregular: bool,
    /// Number of slices that look missing (gaps of about a whole multiple of the spacing).
    pub missing: usize,
    pub min_gap: Option<f64>,
    pub max_gap: Option<f64>,
}

/// Examines sorted distances along the normal.
pub fn spacing_report(sorted_distances: &[f64]) -> SpacingReport {
    const SAME: f64 = 1e-3; // mm: positions closer than this are the same slice
    let gaps: Vec<f64> = sorted_distances.windows(2).map(|w| w[1] - w[0]).collect();
    let duplicates = gaps.iter().filter(|g| g.abs() < SAME).count();
    let mut distinct: Vec<f64> = gaps.iter().copied().filter(|g| g.abs() >= SAME).collect();
    if distinct.is_empty() {
        return SpacingReport {
            spacing: None,
            duplicates,
            irregular: false,
            missing: 0,
            min_gap: None,
            max_gap: None,
        };
    }
    let min_gap = distinct.iter().copied().fold(f64::INFINITY, f64::min);
    let max_gap = distinct.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    distinct.sort_by(f64::total_cmp);
    let median = distinct[distinct.len() / 2];
    // Tolerance: 1% of the spacing, at least 0.01 mm (scanners round positions).
    let tolerance = (median * 0.01).max(0.01);
    let mut missing = 0;
    let mut irregular = false;
    for g in &distinct {
        if (g - median).abs() <= tolerance {
            continue;
        }
        let multiple = (g / median).round();
        if multiple >= 2.0 && (g - multiple * median).abs() <= tolerance * multiple {
            missing += multiple as usize - 1;
        } else {
            irregular = true;
        }
    }
    SpacingReport {
        spacing: Some(median),
        duplicates,
        irregular,
        missing,
        min_gap: Some(min_gap),
        max_gap: Some(max_gap),
    }
}

/// Angle (degrees) between the slice normal and the line through the first and last slice
/// positions: non-zero for gantry-tilted CT acquisitions.
pub fn tilt_degrees(normal: &Vec3, first: &Vec3, last: &Vec3) -> Option<f64> {
    let d = sub(last, first);
    let len = norm(&d);
    if len < 1e-6 {
        return None;
    }
    let cos = (dot(&d, normal) / len).abs().clamp(0.0, 1.0);
    Some(cos.acos().to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axial_normal_points_superior() {
        let n = normal(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(n, [0.0, 0.0, 1.0]);
        assert_eq!(plane_name(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), "axial");
        assert_eq!(plane_name(&[0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), "sagittal");
        assert_eq!(plane_name(&[1.0, 0.0, 0.0, 0.0, 0.0, -1.0]), "coronal");
    }

    #[test]
    fn regular_spacing_is_clean() {
        let r = spacing_report(&[0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(r.spacing, Some(2.5));
        assert!(!r.irregular);
        assert_eq!((r.duplicates, r.missing), (0, 0));
    }

    #[test]
    fn gaps_duplicates_and_irregularity_are_found() {
        let r = spacing_report(&[0.0, 1.0, 2.0, 2.0, 5.0, 6.0, 7.0]);
        assert_eq!(r.spacing, Some(1.0));
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.missing, 2);
        assert!(!r.irregular);
        let r = spacing_report(&[0.0, 1.0, 2.0, 3.4, 4.4]);
        assert!(r.irregular);
    }

    #[test]
    fn tilt_is_measured() {
        let n = [0.0, 0.0, 1.0];
        let t = tilt_degrees(&n, &[0.0, 0.0, 0.0], &[0.0, 1.0, 10.0]).unwrap_or(0.0);
        assert!((t - (0.1f64).atan().to_degrees()).abs() < 1e-9);
        assert_eq!(tilt_degrees(&n, &[0.0; 3], &[0.0, 0.0, 5.0]), Some(0.0));
    }
}
