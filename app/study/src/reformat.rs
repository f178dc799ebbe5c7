//! Reformatting a stack in patient coordinates: the voxel ↔ patient mapping (also for tilted
//! and sheared stacks), trilinear sampling, and the axial, coronal and sagittal planes of the
//! multi-planar view, whatever orientation the stack was acquired in.

use serde::{Deserialize, Serialize};

use super::geometry::{StackGeometry, Vec3, dot};

/// The inverse of a stack's voxel → patient mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatientToVoxel {
    origin: Vec3,
    inverse: [[f64; 3]; 3],
}

impl PatientToVoxel {
    /// None when the stack's axes are degenerate (parallel or zero spacing).
    pub fn new(g: &StackGeometry) -> Option<PatientToVoxel> {
        let cols = [g.row_direction, g.column_direction, g.slice_direction];
        // m's columns are the voxel steps in patient space.
        let m: [[f64; 3]; 3] = std::array::from_fn(|row| std::array::from_fn(|col| cols[col][row] * g.spacing[col]));
        invert(&m).map(|inverse| PatientToVoxel { origin: g.origin, inverse })
    }

    /// Continuous voxel index (column, row, slice) of a patient position.
    pub fn apply(&self, p: &Vec3) -> Vec3 {
        let d = [p[0] - self.origin[0], p[1] - self.origin[1], p[2] - self.origin[2]];
        self.linear(&d)
    }

    /// The voxel-index step of a patient-space displacement `d` (mm).
    pub fn linear(&self, d: &Vec3) -> Vec3 {
        std::array::from_fn(|row| (0..3).map(|col| self.inverse[row][col] * d[col]).sum())
    }
}

fn invert(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    let cof = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    Some([
        [cof(1, 2, 1, 2) / det, -cof(0, 2, 1, 2) / det, cof(0, 1, 1, 2) / det],
        [-cof(1, 2, 0, 2) / det, cof(0, 2, 0, 2) / det, -cof(0, 1, 0, 2) / det],
        [cof(1, 2, 0, 1) / det, -cof(0, 2, 0, 1) / det, cof(0, 1, 0, 1) / det],
    ])
}

/// Whether a continuous voxel index lies in the volume (half a voxel beyond the outer voxel
/// centres still counts as inside).
pub fn inside(dims: [usize; 3], pos: Vec3) -> bool {
    (0..3).all(|a| pos[a] >= -0.5 && pos[a] <= dims[a] as f64 - 0.5)
}

/// Trilinear value of `data` (columns fastest, then rows, then slices) at a continuous voxel
/// index; None outside the volume. The reslice shader (shaders/reslice.wgsl) does the same.
pub fn trilinear(data: &[f32], dims: [usize; 3], pos: Vec3) -> Option<f32> {
    if !inside(dims, pos) || dims.contains(&0) || data.len() < dims.iter().product() {
        return None;
    }
    let mut lo = [0usize; 3];
    let mut t = [0f32; 3];
    for a in 0..3 {
        let p = pos[a].clamp(0.0, dims[a] as f64 - 1.0);
        lo[a] = (p.floor() as usize).min(dims[a].saturating_sub(2));
        t[a] = (p - lo[a] as f64) as f32;
    }
    let at = |i: usize, j: usize, k: usize| {
        let (i, j, k) = (i.min(dims[0] - 1), j.min(dims[1] - 1), k.min(dims[2] - 1));
        data[(k * dims[1] + j) * dims[0] + i]
    };
    let mut value = 0f32;
    for (dk, wk) in [(0, 1.0 - t[2]), (1, t[2])] {
        for (dj, wj) in [(0, 1.0 - t[1]), (1, t[1])] {
            for (di, wi) in [(0, 1.0 - t[0]), (1, t[0])] {
                value += wi * wj * wk * at(lo[0] + di, lo[1] + dj, lo[2] + dk);
            }
        }
    }
    Some(value)
}

/// Flat index of the voxel nearest a continuous voxel index; None outside the volume.
pub fn nearest(dims: [usize; 3], pos: Vec3) -> Option<usize> {
    if !inside(dims, pos) || dims.contains(&0) {
        return None;
    }
    let i: [usize; 3] = std::array::from_fn(|a| ((pos[a] + 0.5).floor().max(0.0) as usize).min(dims[a] - 1));
    Some((i[2] * dims[1] + i[1]) * dims[0] + i[0])
}

/// One of the three patient planes of the multi-planar view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "Axial",
            Plane::Coronal => "Coronal",
            Plane::Sagittal => "Sagittal",
        }
    }

    /// Screen right, screen down and the plane normal, in LPS patient axes, as radiology
    /// shows them: axial seen from the feet (the patient's right on the screen's left),
    /// coronal from the front, sagittal from the patient's left (anterior on the left).
    pub fn axes(self) -> [Vec3; 3] {
        match self {
            Plane::Axial => [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            Plane::Coronal => [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
            Plane::Sagittal => [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]],
        }
    }
}

/// Where a reformatted picture's coordinates lie in patient space: enough to put a shape drawn
/// on it back (kept with measurements made on the planes of the multi-planar views).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub plane: Plane,
    /// mm along the plane's normal.
    pub depth: f64,
    /// In-plane coordinates (mm along right and down) of picture coordinate (0, 0).
    pub corner: [f64; 2],
    /// mm per picture pixel.
    pub spacing: f64,
}

impl Placement {
    pub fn to_patient(&self, x: f64, y: f64) -> Vec3 {
        let [right, down, normal] = self.plane.axes();
        let (u, v) = (self.corner[0] + x * self.spacing, self.corner[1] + y * self.spacing);
        std::array::from_fn(|a| right[a] * u + down[a] * v + normal[a] * self.depth)
    }

    /// "Coronal P 51.1 mm": the plane and its position, with the patient direction.
    pub fn describe(&self) -> String {
        let normal = self.plane.axes()[2];
        let toward = if self.depth >= 0.0 { normal } else { normal.map(|v| -v) };
        format!(
            "{} {} {:.1} mm",
            self.plane.name(),
            super::geometry::direction_letters(&toward),
            self.depth.abs()
        )
    }
}

/// Largest side of a reformatted picture, in pixels.
pub const MAX_REFORMAT_SIDE: usize = 1024;

/// One plane through a stack: a `columns` × `rows` picture of square `spacing` mm pixels
/// covering the whole stack as seen in that plane, at `depth` mm along the plane's normal.
#[derive(Debug, Clone, PartialEq)]
pub struct Reformat {
    pub plane: Plane,
    pub columns: usize,
    pub rows: usize,
    pub spacing: f64,
    pub depth: f64,
    /// The depths the stack spans along the normal (outer voxel faces).
    pub depth_range: [f64; 2],
    /// How far one step of the scroll wheel moves along the normal: one voxel of the stack.
    pub step: f64,
    /// In-plane coordinates (mm along right and down) of the picture's top-left corner.
    corner: [f64; 2],
    to_voxel: PatientToVoxel,
}

impl Reformat {
    /// The `plane` through `point` (patient mm) of a stack of `dims` voxels; None when the
    /// stack's geometry is degenerate.
    pub fn new(g: &StackGeometry, dims: [usize; 3], plane: Plane, point: &Vec3) -> Option<Reformat> {
        let to_voxel = PatientToVoxel::new(g)?;
        if dims.contains(&0) {
            return None;
        }
        let [right, down, normal] = plane.axes();
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for c in 0..8 {
            let v: [f64; 3] = std::array::from_fn(|a| if c >> a & 1 == 1 { dims[a] as f64 - 0.5 } else { -0.5 });
            let p = g.voxel_to_patient(v[0], v[1], v[2]);
            for (a, axis) in [right, down, normal].iter().enumerate() {
                let d = dot(&p, axis);
                lo[a] = lo[a].min(d);
                hi[a] = hi[a].max(d);
            }
        }
        let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]);
        let finest = g.spacing.iter().copied().fold(f64::INFINITY, f64::min);
        let spacing = finest.max(extent / MAX_REFORMAT_SIDE as f64);
        if !(spacing.is_finite() && spacing > 0.0) {
            return None;
        }
        let side = |a: usize| (((hi[a] - lo[a]) / spacing).round() as usize).clamp(1, MAX_REFORMAT_SIDE);
        let along = to_voxel.linear(&normal);
        let step = 1.0 / along.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-9);
        let mut r = Reformat {
            plane,
            columns: side(0),
            rows: side(1),
            spacing,
            depth: 0.0,
            depth_range: [lo[2], hi[2]],
            step,
            corner: [lo[0], lo[1]],
            to_voxel,
        };
        r.set_depth(dot(point, &normal));
        Some(r)
    }

    /// Moves the plane along its normal, kept inside the stack.
    pub fn set_depth(&mut self, depth: f64) {
        let [a, b] = self.depth_range;
        self.depth = depth.clamp(a + self.step / 2.0, b - self.step / 2.0).clamp(a, b);
    }

    /// The part of this picture between picture coordinates `from` and `to`, sampled every
    /// `spacing` mm (a view draws only what it shows, at about its own resolution).
    pub fn window(&self, from: [f64; 2], to: [f64; 2], spacing: f64) -> Reformat {
        let spacing = if spacing.is_finite() && spacing > 0.0 { spacing } else { self.spacing };
        let side = |a: usize| ((((to[a] - from[a]) * self.spacing) / spacing).ceil().max(1.0) as usize).min(MAX_REFORMAT_SIDE * 2);
        Reformat {
            columns: side(0),
            rows: side(1),
            spacing,
            corner: [self.corner[0] + from[0] * self.spacing, self.corner[1] + from[1] * self.spacing],
            ..self.clone()
        }
    }

    /// The same plane at `depth` mm along its normal, inside the stack or not.
    pub fn at_depth(&self, depth: f64) -> Reformat {
        Reformat { depth, ..self.clone() }
    }

    /// Patient position (mm) of a picture coordinate (x along columns, y along rows; pixel
    /// (i, j) covers [i, i+1) × [j, j+1), so its centre is at i + 0.5).
    pub fn to_patient(&self, x: f64, y: f64) -> Vec3 {
        self.placement().to_patient(x, y)
    }

    pub fn placement(&self) -> Placement {
        Placement {
            plane: self.plane,
            depth: self.depth,
            corner: self.corner,
            spacing: self.spacing,
        }
    }

    /// Picture coordinate (in this picture) of a coordinate of a picture placed at `p` in the
    /// same plane.
    pub fn from_placement(&self, p: &Placement, xy: [f64; 2]) -> [f64; 2] {
        self.to_picture(&p.to_patient(xy[0], xy[1]))
    }

    /// Picture coordinate of a patient position projected onto the plane.
    pub fn to_picture(&self, p: &Vec3) -> [f64; 2] {
        let [right, down, _] = self.plane.axes();
        [
            (dot(p, &right) - self.corner[0]) / self.spacing,
            (dot(p, &down) - self.corner[1]) / self.spacing,
        ]
    }

    /// Continuous voxel index of a patient position.
    pub fn to_voxel(&self, p: &Vec3) -> Vec3 {
        self.to_voxel.apply(p)
    }

    /// The affine map from picture coordinates to voxel indices: the voxel index at picture
    /// (0, 0), and the steps per picture column, per picture row and per mm along the normal.
    pub fn voxel_map(&self) -> [Vec3; 4] {
        let [right, down, normal] = self.plane.axes();
        let scaled = |v: Vec3| v.map(|c| c * self.spacing);
        [
            self.to_voxel(&self.to_patient(0.0, 0.0)),
            self.to_voxel.linear(&scaled(right)),
            self.to_voxel.linear(&scaled(down)),
            self.to_voxel.linear(&normal),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tilted() -> StackGeometry {
        // 20° about the left-right axis, 10° about the anterior-posterior axis, 1 × 1.2 × 3 mm.
        let (a, b) = (20f64.to_radians(), 10f64.to_radians());
        let row = [b.cos(), 0.0, b.sin()];
        let col = [0.0, a.cos(), -a.sin()];
        let n = crate::geometry::normalize(&crate::geometry::cross(&row, &col));
        StackGeometry {
            origin: [-90.0, -110.0, -40.0],
            row_direction: row,
            column_direction: col,
            slice_direction: n,
            spacing: [1.0, 1.2, 3.0],
        }
    }

    #[test]
    fn picture_and_patient_coordinates_round_trip_on_a_tilted_stack() {
        let g = tilted();
        let dims = [180, 200, 50];
        let centre = g.voxel_to_patient(90.0, 100.0, 25.0);
        for plane in Plane::ALL {
            let r = Reformat::new(&g, dims, plane, &centre).expect("plane");
            assert_eq!(r.spacing, 1.0);
            assert!((r.depth - dot(&centre, &plane.axes()[2])).abs() < 1e-9);
            let [x, y] = r.to_picture(&centre);
            let back = r.to_patient(x, y);
            for a in 0..3 {
                assert!((back[a] - centre[a]).abs() < 1e-9, "{plane:?} {back:?} {centre:?}");
            }
            // The voxel map agrees with mapping each pixel on its own.
            let [o, du, dv, _] = r.voxel_map();
            let v = r.to_voxel(&r.to_patient(17.5, 33.5));
            for a in 0..3 {
                assert!((o[a] + du[a] * 17.5 + dv[a] * 33.5 - v[a]).abs() < 1e-9);
            }
            // The picture covers the whole stack: every corner voxel lands inside it.
            for c in [[0.0, 0.0, 0.0], [179.0, 199.0, 49.0], [0.0, 199.0, 49.0], [179.0, 0.0, 0.0]] {
                let [x, y] = r.to_picture(&g.voxel_to_patient(c[0], c[1], c[2]));
                assert!(x >= 0.0 && y >= 0.0 && x <= r.columns as f64 && y <= r.rows as f64, "{plane:?} {x} {y}");
            }
        }
    }

    #[test]
    fn planes_follow_radiological_orientation() {
        let [r, d, n] = Plane::Axial.axes();
        assert_eq!((r, d, n), ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]));
        // Coronal and sagittal: superior at the top.
        assert_eq!(Plane::Coronal.axes()[1], [0.0, 0.0, -1.0]);
        assert_eq!(Plane::Sagittal.axes()[0], [0.0, 1.0, 0.0]);
    }

    #[test]
    fn depth_stays_in_the_stack_and_steps_by_a_voxel() {
        let g = tilted();
        let mut r = Reformat::new(&g, [180, 200, 50], Plane::Axial, &[0.0, 0.0, 1e6]).expect("plane");
        assert!(r.depth <= r.depth_range[1]);
        r.set_depth(-1e6);
        assert!(r.depth >= r.depth_range[0]);
        // The step is the shortest move along the normal that changes a voxel index by one.
        assert!(r.step > 0.5 && r.step < 4.0, "{}", r.step);
    }

    #[test]
    fn trilinear_and_nearest_agree_on_voxel_centres() {
        let dims = [3, 2, 2];
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(trilinear(&data, dims, [1.0, 1.0, 1.0]), Some(10.0));
        assert_eq!(trilinear(&data, dims, [0.5, 0.0, 0.0]), Some(0.5));
        assert_eq!(trilinear(&data, dims, [2.4, 1.4, 1.4]), Some(11.0));
        assert_eq!(trilinear(&data, dims, [-0.6, 0.0, 0.0]), None);
        assert_eq!(nearest(dims, [1.4, 0.6, 0.2]), Some(4));
        assert_eq!(nearest(dims, [2.6, 0.0, 0.0]), None);
    }
}
