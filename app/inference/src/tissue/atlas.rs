//! The deep grey-matter atlas (the manifest's `tissue_em.deep_gm_atlas`): where the deep grey
//! matter (caudate, putamen, pallidum, thalamus) lies on the MNI ICBM152 template, placed on a
//! scan by the brain's centre and extent along each patient axis. The slice network does not
//! learn these nuclei and their T1 intensity lies between grey and white matter, so neither
//! the network nor the scan's own intensities find them; SAMSEG places each deep structure with
//! an atlas, and this is the smallest form of that. `make_deep_gm_atlas.py` writes the file and
//! the template's brain centre and spread, measured as [`brain_moments`] measures a scan's.

use std::path::Path;

use crate::study::geometry::StackGeometry;

use crate::{InferenceError, Result};

/// The manifest's description of the atlas file.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct DeepGmAtlasSpec {
    /// A NIfTI-1 file of u8 (0–255 = probability 0–1) beside the manifest, its voxels on a grid
    /// of patient axes (index i toward the patient's left, j posterior, k superior).
    pub file: String,
    pub sha256: String,
    /// Patient position (LPS, mm) of the grid's first voxel, and the grid step (mm).
    pub origin_lps_mm: [f64; 3],
    pub spacing_mm: f64,
    /// The template brain's centre and standard deviation along each patient axis (mm).
    pub brain_centre_lps_mm: [f64; 3],
    pub brain_sd_lps_mm: [f64; 3],
    /// The atlas probability's weight as the deep component's share of the grey- and
    /// white-matter prior (0–1).
    pub weight: f64,
    #[serde(default)]
    pub description: Option<String>,
}

impl DeepGmAtlasSpec {
    pub fn problem(&self) -> Option<String> {
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(finite(&self.origin_lps_mm) && finite(&self.brain_centre_lps_mm)) {
            return Some("deep_gm_atlas: origin and brain centre must be finite".into());
        }
        if !(self.spacing_mm.is_finite() && (0.25..=10.0).contains(&self.spacing_mm)) {
            return Some(format!("deep_gm_atlas: spacing_mm {} (0.25 to 10)", self.spacing_mm));
        }
        if !self.brain_sd_lps_mm.iter().all(|s| s.is_finite() && (5.0..=200.0).contains(s)) {
            return Some(format!("deep_gm_atlas: brain_sd_lps_mm {:?} (5 to 200 mm each)", self.brain_sd_lps_mm));
        }
        if !(self.weight.is_finite() && (0.0..=1.0).contains(&self.weight)) {
            return Some(format!("deep_gm_atlas: weight {} (0 to 1)", self.weight));
        }
        None
    }
}

/// The atlas, loaded.
#[derive(Debug, Clone)]
pub struct DeepGmAtlas {
    pub spec: DeepGmAtlasSpec,
    dims: [usize; 3],
    values: Vec<u8>,
    /// The file's sha256 as read.
    pub sha256: String,
}

/// How far a scan's brain spread may differ from the template's along an axis (ratio) before
/// the atlas is not placed: a partial-coverage slab or a brain the extractor cut.
const SPREAD_RATIO: [f64; 2] = [0.6, 1.6];

impl DeepGmAtlas {
    /// Reads the atlas file beside the manifest (`dir`) with its sha256, which the engine checks
    /// against the manifest with the model files (`Manifest::check_digests`).
    pub fn load(dir: &Path, spec: &DeepGmAtlasSpec) -> Result<DeepGmAtlas> {
        let path = dir.join(&spec.file);
        let sha256 = crate::manifest::file_digest(&path)?;
        let bad = |why: String| InferenceError::ModelLoad(format!("deep grey-matter atlas {}: {why}", path.display()));
        let (dims, voxels) = crate::nifti::read(&path).map_err(|e| bad(e.to_string()))?;
        let crate::nifti::Voxels::U8(values) = voxels else {
            return Err(bad("its voxels are not 8-bit".into()));
        };
        if dims[3] != 1 || dims[..3].iter().any(|&d| d < 2) {
            return Err(bad(format!("dimensions {dims:?} are not one 3D grid")));
        }
        Ok(DeepGmAtlas {
            spec: spec.clone(),
            dims: [dims[0], dims[1], dims[2]],
            values,
            sha256,
        })
    }

    /// The atlas probability (0–1) at a template position (LPS, mm), trilinear, 0 outside.
    fn at(&self, p: [f64; 3]) -> f32 {
        let mut base = [0usize; 3];
        let mut frac = [0f64; 3];
        for a in 0..3 {
            let u = (p[a] - self.spec.origin_lps_mm[a]) / self.spec.spacing_mm;
            if !(u >= 0.0 && u <= (self.dims[a] - 1) as f64) {
                return 0.0;
            }
            base[a] = (u.floor() as usize).min(self.dims[a] - 2);
            frac[a] = u - base[a] as f64;
        }
        let [nx, ny, _] = self.dims;
        let mut sum = 0.0;
        for corner in 0..8 {
            let mut w = 1.0;
            let mut at = [0usize; 3];
            for a in 0..3 {
                let up = corner >> a & 1 == 1;
                w *= if up { frac[a] } else { 1.0 - frac[a] };
                at[a] = base[a] + usize::from(up);
            }
            sum += w * f64::from(self.values[(at[2] * ny + at[1]) * nx + at[0]]);
        }
        (sum / 255.0) as f32
    }

    /// Each voxel's share of the deep component in the grey- and white-matter prior: the
    /// atlas, placed by the labelled brain's centre and spread along each patient axis, times
    /// the spec's weight (0 outside the brain). `Err` says why the atlas could not be placed.
    pub fn shares(&self, labels: &[u8], dims: [usize; 3], geometry: &StackGeometry) -> Result<Vec<f32>, String> {
        let (centre, sd) = brain_moments(labels, dims, geometry).ok_or("no labelled brain")?;
        let mut scale = [0f64; 3];
        for a in 0..3 {
            let ratio = self.spec.brain_sd_lps_mm[a] / sd[a].max(1e-6);
            let spread = 1.0 / ratio;
            if !(SPREAD_RATIO[0]..=SPREAD_RATIO[1]).contains(&spread) {
                return Err(format!(
                    "the labelled brain's spread along the {} axis is {:.2} of the template's (placed only within {:.1}–{:.1})",
                    ["left–right", "front–back", "head–foot"][a],
                    spread,
                    SPREAD_RATIO[0],
                    SPREAD_RATIO[1]
                ));
            }
            scale[a] = ratio;
        }
        let [nc, nr, _] = dims;
        let weight = self.spec.weight as f32;
        Ok(labels
            .iter()
            .enumerate()
            .map(|(v, &l)| {
                if l == 0 {
                    return 0.0;
                }
                let p = geometry.voxel_to_patient((v % nc) as f64, ((v / nc) % nr) as f64, (v / (nc * nr)) as f64);
                let t = std::array::from_fn(|a| self.spec.brain_centre_lps_mm[a] + (p[a] - centre[a]) * scale[a]);
                weight * self.at(t)
            })
            .collect())
    }
}

/// The labelled brain's centre and standard deviation along each patient axis (mm).
pub fn brain_moments(labels: &[u8], [nc, nr, _]: [usize; 3], geometry: &StackGeometry) -> Option<([f64; 3], [f64; 3])> {
    let (mut n, mut sum, mut sq) = (0f64, [0f64; 3], [0f64; 3]);
    for (v, _) in labels.iter().enumerate().filter(|(_, l)| **l != 0) {
        let p = geometry.voxel_to_patient((v % nc) as f64, ((v / nc) % nr) as f64, (v / (nc * nr)) as f64);
        n += 1.0;
        for a in 0..3 {
            sum[a] += p[a];
            sq[a] += p[a] * p[a];
        }
    }
    if n < 1.0 {
        return None;
    }
    let centre = sum.map(|s| s / n);
    let sd = std::array::from_fn(|a| (sq[a] / n - centre[a] * centre[a]).max(0.0).sqrt());
    Some((centre, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(origin: [f64; 3], spacing: f64) -> StackGeometry {
        StackGeometry {
            origin,
            row_direction: [1.0, 0.0, 0.0],
            column_direction: [0.0, 1.0, 0.0],
            slice_direction: [0.0, 0.0, 1.0],
            spacing: [spacing; 3],
        }
    }

    /// A template "brain" (a box) with an atlas blob at its centre; a scan whose brain is the
    /// same box moved and 20 % larger gets the blob at its own centre, scaled with it.
    #[test]
    fn the_atlas_follows_the_brain_s_centre_and_spread() {
        // Template brain: a box of 40 × 40 × 40 mm centred on the origin (sd = 40 / √12).
        let sd = 40.0 / 12f64.sqrt();
        // A Gaussian blob (sd 3 mm) at (0, 0, 0): the grid is -10..10 mm in 2 mm steps.
        let values: Vec<u8> = (0..11 * 11 * 11)
            .map(|v: usize| {
                let r2: f64 = [v % 11, (v / 11) % 11, v / 121].iter().map(|&i| (2.0 * i as f64 - 10.0).powi(2)).sum();
                (255.0 * (-r2 / 18.0).exp()).round() as u8
            })
            .collect();
        let atlas = DeepGmAtlas {
            spec: DeepGmAtlasSpec {
                file: String::new(),
                sha256: String::new(),
                origin_lps_mm: [-10.0; 3],
                spacing_mm: 2.0,
                brain_centre_lps_mm: [0.0; 3],
                brain_sd_lps_mm: [sd; 3],
                weight: 0.5,
                description: None,
            },
            dims: [11; 3],
            values,
            sha256: String::new(),
        };
        assert_eq!(atlas.spec.problem(), None);
        // The scan: 1 mm voxels, a 48³ mm brain (1.2 × the template's) centred at (100, 50, -20).
        let n = 60usize;
        let g = geometry([100.0 - 30.0, 50.0 - 30.0, -20.0 - 30.0], 1.0);
        let labels: Vec<u8> = (0..n * n * n)
            .map(|v| {
                let (x, y, z) = (v % n, (v / n) % n, v / (n * n));
                u8::from([x, y, z].iter().all(|&c| (6..54).contains(&c)))
            })
            .collect();
        let shares = atlas.shares(&labels, [n; 3], &g).expect("placed");
        let (top, &best) = shares.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("voxels");
        let p = g.voxel_to_patient((top % n) as f64, ((top / n) % n) as f64, (top / (n * n)) as f64);
        for (a, c) in [100.0, 50.0, -20.0].iter().enumerate() {
            assert!((p[a] - c).abs() <= 1.0, "peak at {p:?}");
        }
        assert!(best > 0.4 && best <= 0.5, "weighted peak {best}");
        // Along x from the brain's centre (x = 99.5 mm), the scan's 1.2 mm are the template's 1.
        let at = |dx: usize| shares[(30 * n + 30) * n + 30 + dx];
        let [t0, t6] = [0.5f32, 6.5].map(|d| d / 1.2);
        let expected = (-(t6 * t6 - t0 * t0) / 18.0).exp();
        let ratio = at(6) / at(0);
        assert!((ratio - expected).abs() < 0.05, "falls off as the scaled blob: {ratio} (expected {expected})");
        assert_eq!(shares[0], 0.0, "outside the brain");
        // A slab covering a third of the brain's height is not placed.
        let slab: Vec<u8> = labels.iter().enumerate().map(|(v, &l)| l * u8::from((24..40).contains(&(v / (n * n))))).collect();
        let why = atlas.shares(&slab, [n; 3], &g).expect_err("a slab");
        assert!(why.contains("head–foot"), "{why}");
    }
}
