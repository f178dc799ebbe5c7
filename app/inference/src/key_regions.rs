//! Key regions: where a scan does not look like healthy brain. The score of each brain voxel
//! is its departure from the scan's own tissue model (`tissue::Departure`: its distance, in
//! the model's spreads, from every tissue and every mixture of two); a key region is a
//! connected set of voxels above `grow` holding at least one voxel above `seed` deep enough
//! inside the brain, after thin structures are opened away. It says where the scan departs
//! from the model of healthy tissue, not what is there: it is not a diagnosis.
//!
//! What keeps healthy anatomy out: partial volume between any two tissues scores 0; vessels
//! and other thin bright or dark structures are removed by an in-plane opening; dura, sinuses
//! and the skull's edge lie at the brain's surface, where no region may start. After contrast,
//! thin bright regions in fluid, on the midline or shaped like a vessel are set aside as likely
//! physiological (`PhysiologicalSpec`), listed apart rather than counted; so are thin dark ones
//! there on any scan, where the setting says so (flow voids and dura on T2 and FLAIR).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::study::geometry::StackGeometry;

/// Settings (the manifest's `key_regions` section).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct KeyRegionSpec {
    /// A region holds at least one voxel this far from healthy tissue (spreads; for one
    /// series, × √d over d series)...
    pub seed: f64,
    /// ...and every voxel connected to it at least this far (as `seed`, × √d).
    pub grow: f64,
    /// Smallest region reported (mL).
    pub min_ml: f64,
    /// Each region then keeps only its voxels at least this share of its own peak (and at
    /// least `grow`) that connect to a seed: a strong lesion's score, spread by the smoothing
    /// box, lies above `grow` well beyond the lesion, and its edge is nearer a share of its
    /// peak. 0: `grow` alone.
    #[serde(default)]
    pub grow_share: f64,
    /// Seeds lie at least this deep inside the brain (mm).
    pub surface_mm: f64,
    /// Radius of the in-plane opening that removes thin structures (mm).
    pub opening_mm: f64,
    /// The score is the distance of the mean residual (each voxel's values minus the nearest
    /// healthy point's) over a box this many mm to each side (per axis, at least the voxel
    /// itself): noise averages out, a lesion's departure does not. 0: each voxel alone.
    #[serde(default)]
    pub smooth_mm: f64,
    /// A mixture of tissues is healthy partial volume only where each of them borders the
    /// voxel (false: any mixture anywhere).
    #[serde(default)]
    pub bordering_mixtures: bool,
    /// Regions that look like physiological enhancement or flow voids are set aside (listed
    /// apart, not key regions). None: none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physiological: Option<PhysiologicalSpec>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Where enhancement is physiological. In a healthy brain after contrast, what enhances lies in
/// fluid or outside the brain tissue: vessels in the sulci, fissures and cisterns, dura and the
/// venous sinuses at the surface and along the falx, choroid plexus in the ventricles. A region
/// brighter than healthy tissue on the analysed series is set aside when most of what surrounds
/// it is fluid or outside the brain, or when most of it lies along the midline (falx, superior
/// sagittal and straight sinuses, internal cerebral veins, pericallosal arteries), or when it
/// has the shape of a vessel. An enhancing lesion in brain tissue is surrounded by tissue, and
/// it is bulky: where `thin_mm` is set, a region thicker than that is never set aside. With
/// `dark`, the same tests apply to thin dark regions on any scan: flowing blood and dura.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PhysiologicalSpec {
    /// How far around the region its surroundings reach (mm).
    pub surroundings_mm: f64,
    /// Set aside when at least this share of its surroundings is fluid (the CSF label, the
    /// fluid rim) or outside the brain.
    pub fluid_share: f64,
    /// Half-width of the midline band (mm, patient left-right from the labelled brain's centre)...
    pub midline_mm: f64,
    /// ...and set aside when at least this share of the region lies in it (0: never).
    pub midline_share: f64,
    /// Only on a series acquired with contrast (without contrast nothing enhances).
    pub contrast_only: bool,
    /// Only a region this thin is set aside: none of its voxels lies farther than this from
    /// its edge (mm). Vessels, dura and sinuses are thin; a lesion a centimetre across is not.
    /// 0: any thickness.
    #[serde(default)]
    pub thin_mm: f64,
    /// A thin region at least this many times as long as it is wide (the spread of its voxels
    /// along its longest axis over the next) is set aside wherever it lies: the shape of a
    /// vessel, or of dura seen edge-on. 0: never (needs `thin_mm`).
    #[serde(default)]
    pub elongation: f64,
    /// Also, with or without contrast, a thin region darker than healthy tissue on the series
    /// that carries most of its departure, by the same tests: flowing blood gives no signal on
    /// T2 and FLAIR (a flow void) and dura little, and they lie where enhancement lies. Needs
    /// `thin_mm`, so that a bulky dark lesion (a haematoma) is never set aside.
    #[serde(default)]
    pub dark: bool,
}

impl KeyRegionSpec {
    /// How the tissue model measures the departure these regions are found in.
    pub fn departure(&self) -> crate::tissue::DepartureSpec {
        crate::tissue::DepartureSpec { bordering: self.bordering_mixtures }
    }

    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let ok = |x: f64, lo: f64, hi: f64| x.is_finite() && (lo..=hi).contains(&x);
        if !ok(self.grow, 0.5, 50.0) || !ok(self.seed, self.grow, 100.0) {
            return Some(format!("seed {} and grow {} (0.5 ≤ grow ≤ seed ≤ 100)", self.seed, self.grow));
        }
        if !ok(self.min_ml, 0.0, 100.0) {
            return Some(format!("min_ml {} (0 to 100)", self.min_ml));
        }
        if !ok(self.grow_share, 0.0, 0.9) {
            return Some(format!("grow_share {} (0 to 0.9)", self.grow_share));
        }
        if !ok(self.smooth_mm, 0.0, 10.0) {
            return Some(format!("smooth_mm {} (0 to 10)", self.smooth_mm));
        }
        if let Some(p) = &self.physiological {
            if !ok(p.surroundings_mm, 0.5, 20.0)
                || !ok(p.fluid_share, 0.0, 1.0)
                || !ok(p.midline_mm, 0.0, 30.0)
                || !ok(p.midline_share, 0.0, 1.0)
            {
                return Some(format!(
                    "physiological: surroundings_mm {} (0.5 to 20), fluid_share {} and midline_share {} (0 to 1), midline_mm {} (0 to 30)",
                    p.surroundings_mm, p.fluid_share, p.midline_share, p.midline_mm
                ));
            }
            if !ok(p.thin_mm, 0.0, 30.0)
                || !ok(p.elongation, 0.0, 100.0)
                || ((p.elongation > 0.0 || p.dark) && p.thin_mm <= 0.0)
            {
                return Some(format!(
                    "physiological: thin_mm {} (0 to 30) and elongation {} (0 to 100; above 0 only with thin_mm), dark {} (only with thin_mm)",
                    p.thin_mm, p.elongation, p.dark
                ));
            }
        }
        if !ok(self.surface_mm, 0.0, 30.0) || !ok(self.opening_mm, 0.0, 10.0) {
            return Some(format!(
                "surface_mm {} (0 to 30) and opening_mm {} (0 to 10)",
                self.surface_mm, self.opening_mm
            ));
        }
        None
    }
}

/// One key region, for summary.json, the CLI, the window and the exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRegion {
    /// 1, 2, … by decreasing volume; its value in the region map.
    pub id: u32,
    pub volume_ml: f64,
    /// Centre of mass in patient coordinates (LPS, mm); None without geometry.
    pub centre_lps_mm: Option<[f64; 3]>,
    /// First and last slice it lies on (1-based, as the window counts them).
    pub slices: [usize; 2],
    pub peak_score: f64,
    pub mean_score: f64,
    /// How much each series contributed to the region's departure (the weights sum to 1).
    pub series_weights: Vec<SeriesWeight>,
    /// Where it is: side, depth below the brain's surface, the tissue it is labelled.
    pub location: String,
}

/// One series' share of a region's departure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesWeight {
    /// The model's slot for the series (the summary's `slots` names the series in it).
    pub slot: String,
    pub weight: f64,
    /// "brighter" or "darker" than healthy tissue on this series (or "mixed").
    pub direction: String,
}

impl SeriesWeight {
    /// "primary 55 % brighter", for lists and tables.
    pub fn describe(&self) -> String {
        format!("{} {:.0} % {}", self.slot, self.weight * 100.0, self.direction)
    }
}

impl KeyRegion {
    /// The slice in the middle of the region's range (0-based), where the window goes to show it.
    pub fn middle_slice(&self) -> usize {
        ((self.slices[0] + self.slices[1]) / 2).saturating_sub(1)
    }

    /// Each series' share, "primary 55 % brighter, second 45 % brighter".
    pub fn series_summary(&self) -> String {
        self.series_weights.iter().map(SeriesWeight::describe).collect::<Vec<_>>().join(", ")
    }

    /// "region 1: 2.4 mL, slices 40–52, left, 31 mm from the midline, 14 mm deep, mostly white
    /// matter; peak 9.1, mean 5.2 spreads from healthy tissue; T1 100 % (brighter)".
    pub fn describe(&self) -> String {
        self.describe_named(&|slot| slot.to_string())
    }

    /// As `describe`, each series named by `series` from its slot.
    pub fn describe_named(&self, series: &dyn Fn(&str) -> String) -> String {
        let series: Vec<String> = self
            .series_weights
            .iter()
            .map(|w| format!("{} {:.0} % ({})", series(&w.slot), w.weight * 100.0, w.direction))
            .collect();
        format!(
            "region {}: {:.1} mL, slices {}–{}, {}; peak {:.1}, mean {:.1} spreads from healthy tissue; {}",
            self.id,
            self.volume_ml,
            self.slices[0],
            self.slices[1],
            self.location,
            self.peak_score,
            self.mean_score,
            series.join(", ")
        )
    }
}

/// A region that departs from healthy tissue where vessels, dura and sinuses lie: listed apart
/// from the key regions, with why, so that a reader can still look at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetAside {
    /// Its volume, slices, centre and scores (its `id` is 0: it is not in the region map).
    pub region: KeyRegion,
    pub why: String,
}

impl SetAside {
    /// "3.1 mL, slices 5–7, peak 20.3: brighter, and 62 % of what lies within 3 mm of it is …".
    pub fn describe(&self) -> String {
        let r = &self.region;
        format!("{:.1} mL, slices {}–{}, peak {:.1}: {}", r.volume_ml, r.slices[0], r.slices[1], r.peak_score, self.why)
    }
}

/// What one sentence says of the regions set aside.
pub const SET_ASIDE_MEANING: &str = "thin regions where vessels, dura, venous sinuses and choroid plexus lie, or shaped like a vessel: bright where they enhance after contrast, dark where blood flows on T2 and FLAIR; not key regions, listed so that they can still be looked at";

/// What one sentence says of every analysis with key regions.
pub const MEANING: &str = "Key regions are where the scan departs from this scan's own model of healthy tissue (not a diagnosis).";

/// The score on the grid and the regions found in it.
#[derive(Debug, Clone, Default)]
pub struct KeyRegions {
    /// Departure of each voxel (0 outside the modelled brain), slice-major.
    pub score: Vec<f32>,
    /// Region id of each voxel (0: none).
    pub ids: Vec<u8>,
    pub regions: Vec<KeyRegion>,
    /// Regions set aside as likely physiological (not in `ids`).
    pub set_aside: Vec<SetAside>,
    /// Seconds spent: the departure and the regions.
    pub seconds: f64,
}

/// What the search knows of the scan beyond its values: the label of fluid (CSF) and whether
/// the analysed series was acquired with contrast.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanFacts {
    pub fluid_label: u8,
    pub contrast: bool,
}

/// Finds the key regions in `departure` on a grid of `dims` = [columns, rows, slices] voxels of
/// `spacing` mm; `labels` (the analysis's, after the tissue model) gives the brain and each
/// region's tissue, `label_names` their names by label index, `slots` the series' slot names.
#[allow(clippy::too_many_arguments)]
pub fn find(
    departure: &crate::tissue::Departure,
    labels: &[u8],
    dims: [usize; 3],
    spacing: [f64; 3],
    geometry: Option<&StackGeometry>,
    label_names: &dyn Fn(u8) -> String,
    slots: &[String],
    spec: &KeyRegionSpec,
    facts: ScanFacts,
) -> KeyRegions {
    let start = std::time::Instant::now();
    let [nc, nr, ns] = dims;
    let n = nc * nr * ns;
    let plane = nc * nr;
    let smoothed = (spec.smooth_mm > 0.0).then(|| smooth(departure, dims, spacing, spec.smooth_mm)).flatten();
    let (voxel_score, voxel_shares) = match &smoothed {
        Some((score, shares)) => (score.as_slice(), shares.as_slice()),
        None => (departure.score.as_slice(), departure.shares.as_slice()),
    };
    let mut score = vec![0f32; n];
    for (&v, &s) in departure.voxels.iter().zip(voxel_score) {
        if let Some(x) = score.get_mut(v as usize) {
            *x = s;
        }
    }
    if labels.len() != n {
        return KeyRegions { score, ..KeyRegions::default() };
    }
    // The thresholds are for one series: over d series healthy tissue's distance (noise in d
    // directions) is about √d times larger, and so are they.
    let scale = (departure.channels.max(1) as f64).sqrt();
    let (grow, seed) = (spec.grow * scale, spec.seed * scale);
    let above: Vec<bool> = score.iter().map(|&s| f64::from(s) >= grow).collect();
    let opened = open_in_plane(&above, dims, spacing, spec.opening_mm);
    let depth2 = crate::postprocess::squared_depth_mm(labels, dims, spacing);
    let surface2 = spec.surface_mm * spec.surface_mm;
    let voxel_ml = spacing.iter().product::<f64>() / 1000.0;
    // Each modelled voxel's place in the departure's lists.
    let mut at = vec![u32::MAX; n];
    for (i, &v) in departure.voxels.iter().enumerate() {
        if let Some(a) = at.get_mut(v as usize) {
            *a = i as u32;
        }
    }
    // Brain centre (for the side), from the labelled voxels.
    let (mut sum, mut count) = ([0f64; 3], 0f64);
    for (v, &l) in labels.iter().enumerate() {
        if l != 0 {
            let (x, y, z) = (v % nc, (v / nc) % nr, v / plane);
            sum[0] += x as f64;
            sum[1] += y as f64;
            sum[2] += z as f64;
            count += 1.0;
        }
    }
    let brain_centre = sum.map(|s| s / count.max(1.0));
    let is_seed = |v: usize| f64::from(score[v]) >= seed && depth2[v] >= surface2;
    let big_enough = |m: &Vec<usize>| m.len() as f64 * voxel_ml >= spec.min_ml;
    let mut unvisited = opened;
    let mut kept: Vec<Vec<usize>> = parts(0..n, dims, &mut unvisited, is_seed)
        .into_iter()
        .filter(|(m, seeded)| *seeded && big_enough(m))
        .map(|(m, _)| m)
        .collect();
    if spec.grow_share > 0.0 {
        // Each region down to its voxels at a share of its own peak, the parts holding a seed.
        kept = kept
            .into_iter()
            .flat_map(|members| {
                let peak = members.iter().map(|&v| f64::from(score[v])).fold(0.0, f64::max);
                let level = grow.max(spec.grow_share * peak);
                for &v in &members {
                    unvisited[v] = f64::from(score[v]) >= level;
                }
                let kept = parts(members.iter().copied(), dims, &mut unvisited, is_seed);
                members.iter().for_each(|&v| unvisited[v] = false);
                kept.into_iter().filter(|(m, seeded)| *seeded && big_enough(m)).map(|(m, _)| m)
            })
            .collect();
    }
    for members in &mut kept {
        fill_holes_in_plane(members, labels, dims);
    }
    kept.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let d = departure.channels.max(1);
    let describe = |id: usize, members: &[usize]| {
        let (mut c, mut peak, mut total) = ([0f64; 3], 0f64, 0f64);
        let (mut first, mut last) = (usize::MAX, 0);
        let mut weights = vec![0f64; d];
        let mut brighter = vec![0f64; d];
        let mut tissue = std::collections::BTreeMap::<u8, usize>::new();
        let mut depth = 0f64;
        for &v in members {
            let (x, y, z) = (v % nc, (v / nc) % nr, v / plane);
            c[0] += x as f64;
            c[1] += y as f64;
            c[2] += z as f64;
            first = first.min(z);
            last = last.max(z);
            let s = f64::from(score[v]);
            peak = peak.max(s);
            total += s;
            depth += depth2[v].min(1e6).sqrt();
            *tissue.entry(labels[v]).or_default() += 1;
            if let Some(&i) = at.get(v).filter(|&&i| i != u32::MAX) {
                for ch in 0..d {
                    let share = f64::from(voxel_shares.get(i as usize * d + ch).copied().unwrap_or(0.0));
                    // Weighted by the voxel's squared departure: the series that made it stand out.
                    weights[ch] += share.abs() * s * s;
                    if share > 0.0 {
                        brighter[ch] += share * s * s;
                    }
                }
            }
        }
        let m = members.len() as f64;
        let centre = c.map(|x| x / m);
        let all: f64 = weights.iter().sum();
        let series_weights = (0..d)
            .map(|ch| {
                let b = if weights[ch] > 0.0 { brighter[ch] / weights[ch] } else { 0.5 };
                SeriesWeight {
                    slot: slots.get(ch).cloned().unwrap_or_else(|| format!("series {}", ch + 1)),
                    weight: if all > 0.0 { weights[ch] / all } else { 1.0 / d as f64 },
                    direction: match b {
                        b if b >= 0.8 => "brighter",
                        b if b <= 0.2 => "darker",
                        _ => "mixed",
                    }
                    .to_string(),
                }
            })
            .collect();
        let main_tissue = tissue.iter().max_by_key(|(_, n)| **n).map(|(l, _)| *l).unwrap_or(0);
        let tissue_name = if main_tissue == 0 { "outside the labelled brain".to_string() } else { label_names(main_tissue) };
        let lps = geometry.map(|g| g.voxel_to_patient(centre[0], centre[1], centre[2]));
        let side = match (lps, geometry) {
            (Some(p), Some(g)) => {
                let mid = g.voxel_to_patient(brain_centre[0], brain_centre[1], brain_centre[2]);
                let dx = p[0] - mid[0];
                if dx.abs() < 5.0 {
                    "at the midline".to_string()
                } else {
                    // LPS: +x is the patient's left.
                    format!("{}, {:.0} mm from the brain's centre line", if dx > 0.0 { "left" } else { "right" }, dx.abs())
                }
            }
            _ => "side unknown (no patient geometry)".to_string(),
        };
        KeyRegion {
            id: id as u32,
            volume_ml: m * voxel_ml,
            centre_lps_mm: lps.map(|p| p.map(|x| (x * 10.0).round() / 10.0)),
            slices: [first + 1, last + 1],
            peak_score: peak,
            mean_score: total / m,
            series_weights,
            location: format!("{side}, {:.0} mm below the brain's surface on average, mostly {tissue_name}", depth / m),
        }
    };
    let physiological = spec.physiological.as_ref();
    // Bright regions where the series was acquired with contrast (or the setting says any
    // series); dark ones on any scan where the setting says so.
    let for_bright = physiological.filter(|p| facts.contrast || !p.contrast_only);
    let for_dark = physiological.filter(|p| p.dark);
    let mut ids = vec![0u8; n];
    let (mut regions, mut set_aside) = (Vec::new(), Vec::new());
    let mut marks = vec![0u8; if for_bright.is_some() || for_dark.is_some() { n } else { 0 }];
    let centre_x = geometry.map(|g| g.voxel_to_patient(brain_centre[0], brain_centre[1], brain_centre[2])[0]);
    for members in &kept {
        let region = describe(regions.len() + 1, members);
        let bright = region.series_weights.first().is_some_and(|w| w.direction == "brighter");
        let main = region.series_weights.iter().max_by(|a, b| a.weight.total_cmp(&b.weight));
        let dark = main.is_some_and(|w| w.direction == "darker");
        let (tested, what) = match for_bright.filter(|_| bright) {
            Some(p) => (Some(p), "brighter"),
            None if dark => (for_dark, "darker"),
            None => (None, ""),
        };
        let why = tested.and_then(|p| {
            let midline = |v: usize| {
                let (x, y, z) = (v % nc, (v / nc) % nr, v / plane);
                Some((geometry?.voxel_to_patient(x as f64, y as f64, z as f64)[0] - centre_x?).abs())
            };
            let shape = (p.thin_mm > 0.0).then(|| region_shape(members, dims, spacing));
            if let Some(s) = shape {
                tracing::debug!(ml = region.volume_ml, thickness_mm = s.thickness_mm, elongation = s.elongation, centre = ?region.centre_lps_mm, what, "region's shape");
            }
            physiological_reason(p, what, members, shape, &midline, || {
                fluid_share(members, labels, dims, spacing, p.surroundings_mm, facts.fluid_label, &mut marks)
            })
        });
        match why {
            Some(why) => set_aside.push(SetAside { region: KeyRegion { id: 0, ..region }, why }),
            None if regions.len() < usize::from(u8::MAX) => {
                for &v in members {
                    ids[v] = region.id as u8;
                }
                regions.push(region);
            }
            None => {}
        }
    }
    KeyRegions {
        score,
        ids,
        regions,
        set_aside,
        seconds: departure.seconds + start.elapsed().as_secs_f64(),
    }
}

/// A region's thickness (the farthest any of its voxels lies from a voxel outside it, mm) and
/// elongation (the spread of its voxels along its longest axis over the spread along the next).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    thickness_mm: f64,
    elongation: f64,
}

/// Why a region (`members`, `what`: brighter or darker) looks like a vessel, dura, a sinus or
/// choroid plexus under `p`, if it does:
/// `shape` is the region's (None when `p.thin_mm` is 0), `fluid` gives the share of its
/// surroundings that is fluid or outside the brain, `midline` each voxel's distance from the
/// midline (mm; None without patient geometry).
fn physiological_reason(
    p: &PhysiologicalSpec,
    what: &str,
    members: &[usize],
    shape: Option<Shape>,
    midline: &dyn Fn(usize) -> Option<f64>,
    fluid: impl FnOnce() -> f64,
) -> Option<String> {
    // "brighter, no more than 3.2 mm from its edge anywhere, and …": how thin it is, where
    // thinness is a condition.
    let thin = match shape {
        Some(s) if p.thin_mm > 0.0 => {
            if s.thickness_mm > p.thin_mm {
                return None;
            }
            format!("{what}, no more than {:.1} mm from its edge anywhere, and", s.thickness_mm)
        }
        _ => format!("{what}, and"),
    };
    let fluid = fluid();
    if fluid >= p.fluid_share {
        return Some(format!(
            "{thin} {:.0} % of what lies within {} mm of it is fluid or outside the brain (vessels, dura, sinuses, choroid plexus lie there)",
            fluid * 100.0,
            p.surroundings_mm
        ));
    }
    if p.midline_share > 0.0 {
        let near = members.iter().filter(|&&v| midline(v).is_some_and(|d| d <= p.midline_mm)).count();
        let share = near as f64 / members.len().max(1) as f64;
        if share >= p.midline_share {
            return Some(format!(
                "{thin} {:.0} % of it lies within {} mm of the midline (falx, sinuses, midline veins and arteries lie there)",
                share * 100.0,
                p.midline_mm
            ));
        }
    }
    match shape {
        Some(s) if p.elongation > 0.0 && s.elongation >= p.elongation => Some(format!(
            "{thin} {:.1} times as long as it is wide: the shape of a vessel, or of dura seen edge-on",
            s.elongation
        )),
        _ => None,
    }
}

/// The thickness and elongation of a region (`members`), in mm on the grid's `spacing`.
fn region_shape(members: &[usize], [nc, nr, _]: [usize; 3], spacing: [f64; 3]) -> Shape {
    let plane = nc * nr;
    let at = |v: usize| [v % nc, (v / nc) % nr, v / plane];
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for &v in members {
        let p = at(v);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if members.is_empty() {
        return Shape { thickness_mm: 0.0, elongation: 1.0 };
    }
    // The region in its bounding box with one voxel of outside all round.
    let size = [0, 1, 2].map(|a| hi[a] - lo[a] + 3);
    let mut mask = vec![0u8; size[0] * size[1] * size[2]];
    for &v in members {
        let p = at(v);
        mask[(p[0] - lo[0] + 1) + (p[1] - lo[1] + 1) * size[0] + (p[2] - lo[2] + 1) * size[0] * size[1]] = 1;
    }
    let depth2 = crate::postprocess::squared_depth_mm(&mask, size, spacing);
    let thickness_mm = depth2.iter().zip(&mask).filter(|&(_, &m)| m != 0).map(|(&d, _)| d).fold(0.0, f64::max).sqrt();
    // Covariance of the voxels' positions (mm), and its two largest eigenvalues.
    let n = members.len() as f64;
    let mut mean = [0f64; 3];
    for &v in members {
        let p = at(v);
        for a in 0..3 {
            mean[a] += p[a] as f64 * spacing[a] / n;
        }
    }
    let mut c = [[0f64; 3]; 3];
    for &v in members {
        let p = at(v);
        let d = [0, 1, 2].map(|a| p[a] as f64 * spacing[a] - mean[a]);
        for i in 0..3 {
            for j in 0..3 {
                c[i][j] += d[i] * d[j] / n;
            }
        }
    }
    let [first, second, _] = symmetric_eigenvalues(c);
    let elongation = if second > 1e-9 { (first / second).sqrt() } else if first > 1e-9 { 100.0 } else { 1.0 };
    Shape { thickness_mm, elongation }
}

/// The eigenvalues of a symmetric 3 × 3 matrix, largest first (the trigonometric solution of
/// its characteristic cubic).
fn symmetric_eigenvalues(a: [[f64; 3]; 3]) -> [f64; 3] {
    let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    if off <= f64::EPSILON * (a[0][0].abs() + a[1][1].abs() + a[2][2].abs()).max(1e-300) {
        let mut d = [a[0][0], a[1][1], a[2][2]];
        d.sort_by(|x, y| y.total_cmp(x));
        return d;
    }
    let q = (a[0][0] + a[1][1] + a[2][2]) / 3.0;
    let p = (((a[0][0] - q).powi(2) + (a[1][1] - q).powi(2) + (a[2][2] - q).powi(2) + 2.0 * off) / 6.0).sqrt();
    let b = |i: usize, j: usize| (a[i][j] - if i == j { q } else { 0.0 }) / p;
    let det = b(0, 0) * (b(1, 1) * b(2, 2) - b(1, 2) * b(2, 1)) - b(0, 1) * (b(1, 0) * b(2, 2) - b(1, 2) * b(2, 0))
        + b(0, 2) * (b(1, 0) * b(2, 1) - b(1, 1) * b(2, 0));
    let phi = (det / 2.0).clamp(-1.0, 1.0).acos() / 3.0;
    let largest = q + 2.0 * p * phi.cos();
    let smallest = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    [largest, 3.0 * q - largest - smallest, smallest]
}

/// The share of what lies within `radius_mm` of a region (`members`; the voxels outside it) that
/// is fluid (`fluid_label`) or outside the brain (label 0). `marks` (all 0, one per voxel) is
/// scratch space, left all 0.
fn fluid_share(
    members: &[usize],
    labels: &[u8],
    [nc, nr, ns]: [usize; 3],
    spacing: [f64; 3],
    radius_mm: f64,
    fluid_label: u8,
    marks: &mut [u8],
) -> f64 {
    const MEMBER: u8 = 1;
    const COUNTED: u8 = 2;
    let plane = nc * nr;
    let reach = spacing.map(|s| (radius_mm / s.max(1e-6)).floor() as i64);
    let mut offsets = Vec::new();
    for dz in -reach[2]..=reach[2] {
        for dy in -reach[1]..=reach[1] {
            for dx in -reach[0]..=reach[0] {
                let mm2 = (dx as f64 * spacing[0]).powi(2) + (dy as f64 * spacing[1]).powi(2) + (dz as f64 * spacing[2]).powi(2);
                if mm2 > 0.0 && mm2 <= radius_mm * radius_mm {
                    offsets.push([dx, dy, dz]);
                }
            }
        }
    }
    for &v in members {
        marks[v] = MEMBER;
    }
    let (mut around, mut fluid) = (Vec::new(), 0usize);
    let dims = [nc as i64, nr as i64, ns as i64];
    for &v in members {
        let p = [(v % nc) as i64, ((v / nc) % nr) as i64, (v / plane) as i64];
        for o in &offsets {
            let q = [p[0] + o[0], p[1] + o[1], p[2] + o[2]];
            if (0..3).any(|a| q[a] < 0 || q[a] >= dims[a]) {
                continue;
            }
            let u = q[0] as usize + q[1] as usize * nc + q[2] as usize * plane;
            if marks[u] == 0 {
                marks[u] = COUNTED;
                around.push(u);
                if labels[u] == 0 || labels[u] == fluid_label {
                    fluid += 1;
                }
            }
        }
    }
    for &v in members.iter().chain(&around) {
        marks[v] = 0;
    }
    if around.is_empty() {
        0.0
    } else {
        fluid as f64 / around.len() as f64
    }
}

/// Each modelled voxel's score and shares (as in `Departure`) from the mean residual over a
/// box of `radius_mm` to each side of it (modelled voxels only): None when the departure has
/// no residuals.
fn smooth(departure: &crate::tissue::Departure, dims: [usize; 3], spacing: [f64; 3], radius_mm: f64) -> Option<(Vec<f32>, Vec<f32>)> {
    let d = departure.channels.max(1);
    let m = departure.voxels.len();
    if departure.residual.len() != m * d || departure.metric.len() != d * d {
        return None;
    }
    let half: [usize; 3] = std::array::from_fn(|a| (radius_mm / spacing[a].max(1e-6)).round() as usize);
    // Per voxel: the residual's sums over the box, then how many modelled voxels it holds.
    let sums = box_sums(&departure.voxels, dims, half, d + 1, |i, out| {
        out[..d].copy_from_slice(&departure.residual[i * d..(i + 1) * d]);
        out[d] = 1.0;
    });
    let mut score = vec![0f32; m];
    let mut shares = vec![0f32; m * d];
    let mut mean = vec![0f64; d];
    for i in 0..m {
        let b = &sums[i * (d + 1)..(i + 1) * (d + 1)];
        if b[d] <= 0.0 {
            continue;
        }
        for (c, x) in mean.iter_mut().enumerate() {
            *x = f64::from(b[c]) / f64::from(b[d]);
        }
        score[i] = crate::tissue::departure::of_residual(&mean, &departure.metric, &mut shares[i * d..(i + 1) * d]);
    }
    Some((score, shares))
}

/// Per modelled voxel (`brain`: its index in the grid of `dims`), the sums over a box of
/// `half` voxels to each side (fewer at the grid's edge) of the `k` values `fill` gives each
/// modelled voxel (0 elsewhere).
fn box_sums(brain: &[u32], dims: [usize; 3], half: [usize; 3], k: usize, fill: impl Fn(usize, &mut [f32])) -> Vec<f32> {
    let n = dims.iter().product::<usize>();
    let mut grid = vec![0f32; n * k];
    let mut one = vec![0f32; k];
    for (i, &v) in brain.iter().enumerate() {
        let v = v as usize;
        if v < n {
            one.iter_mut().for_each(|x| *x = 0.0);
            fill(i, &mut one);
            for (c, x) in one.iter().enumerate() {
                grid[c * n + v] = *x;
            }
        }
    }
    let strides = [1, dims[0], dims[0] * dims[1]];
    grid.par_chunks_mut(n).for_each(|channel| {
        for (axis, &h) in half.iter().enumerate() {
            box_sum(channel, dims, strides, axis, h);
        }
    });
    let mut out = vec![0f32; brain.len() * k];
    for (i, &v) in brain.iter().enumerate() {
        let v = v as usize;
        if v < n {
            for c in 0..k {
                out[i * k + c] = grid[c * n + v];
            }
        }
    }
    out
}

/// Replaces each value of `data` (a grid of `dims`) by the sum of the values within `half`
/// steps along `axis`.
fn box_sum(data: &mut [f32], dims: [usize; 3], strides: [usize; 3], axis: usize, half: usize) {
    if half == 0 {
        return;
    }
    let len = dims[axis];
    let step = strides[axis];
    let mut line = vec![0f64; len + 1];
    let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
    for j in 0..dims[others[1]] {
        for i in 0..dims[others[0]] {
            let base = i * strides[others[0]] + j * strides[others[1]];
            for k in 0..len {
                line[k + 1] = line[k] + f64::from(data[base + k * step]);
            }
            for k in 0..len {
                let (lo, hi) = (k.saturating_sub(half), (k + half + 1).min(len));
                data[base + k * step] = (line[hi] - line[lo]) as f32;
            }
        }
    }
}

/// The 6-connected parts of the voxels marked in `unvisited` that `starts` reach (each voxel
/// unmarked as it is reached), each with whether it holds a voxel `is_seed` accepts.
fn parts(
    starts: impl IntoIterator<Item = usize>,
    [nc, nr, ns]: [usize; 3],
    unvisited: &mut [bool],
    is_seed: impl Fn(usize) -> bool,
) -> Vec<(Vec<usize>, bool)> {
    let plane = nc * nr;
    let mut found = Vec::new();
    let mut stack = Vec::new();
    for start in starts {
        if !unvisited[start] {
            continue;
        }
        unvisited[start] = false;
        stack.push(start);
        let (mut members, mut seeded) = (Vec::new(), false);
        while let Some(v) = stack.pop() {
            members.push(v);
            seeded |= is_seed(v);
            let (x, y, z) = (v % nc, (v / nc) % nr, v / plane);
            for (ok, u) in [
                (x > 0, v.wrapping_sub(1)),
                (x + 1 < nc, v + 1),
                (y > 0, v.wrapping_sub(nc)),
                (y + 1 < nr, v + nc),
                (z > 0, v.wrapping_sub(plane)),
                (z + 1 < ns, v + plane),
            ] {
                if ok && unvisited[u] {
                    unvisited[u] = false;
                    stack.push(u);
                }
            }
        }
        found.push((members, seeded));
    }
    found
}

/// Adds to a region (`members`, voxel indices) the brain voxels it encloses in each slice: a
/// lesion's core that looks like another tissue (a ring-enhancing lesion's necrosis, dark like
/// fluid on T1) is part of the lesion.
fn fill_holes_in_plane(members: &mut Vec<usize>, labels: &[u8], [nc, nr, _]: [usize; 3]) {
    let plane = nc * nr;
    let mut by_slice = std::collections::BTreeMap::<usize, Vec<usize>>::new();
    for &v in members.iter() {
        by_slice.entry(v / plane).or_default().push(v % plane);
    }
    for (k, pixels) in by_slice {
        let (x0, x1) = pixels.iter().fold((usize::MAX, 0), |(a, b), &p| (a.min(p % nc), b.max(p % nc)));
        let (y0, y1) = pixels.iter().fold((usize::MAX, 0), |(a, b), &p| (a.min(p / nc), b.max(p / nc)));
        let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
        if w < 3 || h < 3 {
            continue;
        }
        // 0: free, 1: region, 2: reached from the box's edge.
        let mut cell = vec![0u8; w * h];
        for &p in &pixels {
            cell[(p / nc - y0) * w + (p % nc - x0)] = 1;
        }
        let mut stack: Vec<usize> = (0..w * h)
            .filter(|&i| (i % w == 0 || i % w == w - 1 || i / w == 0 || i / w == h - 1) && cell[i] == 0)
            .collect();
        for &i in &stack {
            cell[i] = 2;
        }
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            for (ok, j) in [(x > 0, i.wrapping_sub(1)), (x + 1 < w, i + 1), (y > 0, i.wrapping_sub(w)), (y + 1 < h, i + w)] {
                if ok && cell[j] == 0 {
                    cell[j] = 2;
                    stack.push(j);
                }
            }
        }
        for (i, &c) in cell.iter().enumerate() {
            let v = k * plane + (y0 + i / w) * nc + x0 + i % w;
            if c == 0 && labels[v] != 0 {
                members.push(v);
            }
        }
    }
}

/// Opening of `mask` by a disc of `radius_mm` in each slice (erosion, then dilation of what is
/// left, within the mask): structures thinner than the disc (vessels) go, regions keep their
/// shape. Steps are 4-connected, so the disc is a diamond of that many voxels.
fn open_in_plane(mask: &[bool], [nc, nr, ns]: [usize; 3], spacing: [f64; 3], radius_mm: f64) -> Vec<bool> {
    let steps = (radius_mm / spacing[0].min(spacing[1]).max(1e-3)).round() as usize;
    if steps == 0 {
        return mask.to_vec();
    }
    let plane = nc * nr;
    let neighbours = |v: usize| {
        let (x, y) = (v % nc, (v / nc) % nr);
        [
            (x > 0).then(|| v - 1),
            (x + 1 < nc).then(|| v + 1),
            (y > 0).then(|| v - nc),
            (y + 1 < nr).then(|| v + nc),
        ]
    };
    let mut eroded = mask.to_vec();
    for _ in 0..steps {
        let before = eroded.clone();
        for (v, e) in eroded.iter_mut().enumerate() {
            if *e && neighbours(v).iter().any(|u| u.is_none_or(|u| !before[u])) {
                *e = false;
            }
        }
    }
    for _ in 0..steps {
        let before = eroded.clone();
        for (v, e) in eroded.iter_mut().enumerate() {
            if !*e && mask[v] && neighbours(v).iter().flatten().any(|&u| before[u]) {
                *e = true;
            }
        }
    }
    debug_assert_eq!(eroded.len(), plane * ns);
    eroded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tissue::Departure;

    fn spec() -> KeyRegionSpec {
        KeyRegionSpec {
            seed: 5.0,
            grow: 3.0,
            min_ml: 0.1,
            grow_share: 0.0,
            surface_mm: 3.0,
            opening_mm: 1.0,
            smooth_mm: 0.0,
            bordering_mixtures: false,
            physiological: None,
            description: None,
        }
    }

    /// A 40³ brain of 1 mm voxels (a ball, label 3) with `score` set per voxel.
    fn brain(score: impl Fn(f64, f64, f64) -> f32) -> (Departure, Vec<u8>) {
        let s = 40usize;
        let mut labels = vec![0u8; s * s * s];
        let mut dep = Departure { channels: 2, ..Departure::default() };
        for z in 0..s {
            for y in 0..s {
                for x in 0..s {
                    let (fx, fy, fz) = (x as f64 - 19.5, y as f64 - 19.5, z as f64 - 19.5);
                    if (fx * fx + fy * fy + fz * fz).sqrt() > 18.0 {
                        continue;
                    }
                    let v = (z * s + y) * s + x;
                    labels[v] = 3;
                    dep.voxels.push(v as u32);
                    dep.score.push(score(fx, fy, fz));
                    // The second series sees it, brighter.
                    dep.shares.extend([0.0, 1.0]);
                }
            }
        }
        (dep, labels)
    }

    /// The shipped tests (fluid within 3 mm, the midline's 5 mm, half of either; 2.5 times as long
    /// as wide) with `thin_mm`, and `dark`.
    fn physiological(thin_mm: f64, dark: bool) -> PhysiologicalSpec {
        PhysiologicalSpec {
            surroundings_mm: 3.0,
            fluid_share: 0.5,
            midline_mm: 5.0,
            midline_share: 0.5,
            contrast_only: true,
            thin_mm,
            elongation: 2.5,
            dark,
        }
    }

    fn run(dep: &Departure, labels: &[u8]) -> KeyRegions {
        let slots = ["T1".to_string(), "T2".to_string()];
        find(dep, labels, [40; 3], [1.0; 3], None, &|_| "white matter".into(), &slots, &spec(), ScanFacts::default())
    }

    #[test]
    fn a_blob_far_from_healthy_tissue_is_one_region_with_its_volume_slices_and_series() {
        // A ball of radius 5 mm at (5, 0, 0) from the centre, score 8 inside, 1 outside.
        let (dep, labels) = brain(|x, y, z| if ((x - 5.0).powi(2) + y * y + z * z).sqrt() <= 5.0 { 8.0 } else { 1.0 });
        let found = run(&dep, &labels);
        assert_eq!(found.regions.len(), 1, "{:?}", found.regions);
        let r = &found.regions[0];
        let truth = dep.score.iter().filter(|&&s| s == 8.0).count() as f64 / 1000.0;
        assert!((r.volume_ml - truth).abs() / truth < 0.1, "{} vs {truth}", r.volume_ml);
        assert_eq!((r.peak_score, r.mean_score), (8.0, 8.0));
        assert_eq!(r.slices, [16, 25]);
        assert_eq!(r.series_weights[1].weight, 1.0);
        assert_eq!(r.series_weights[1].direction, "brighter");
        assert!(r.location.contains("white matter"), "{}", r.location);
        let marked = found.ids.iter().filter(|&&i| i == 1).count() as f64 / 1000.0;
        assert_eq!(marked, r.volume_ml);
    }

    /// On a series acquired with contrast, a bright blob lying in fluid (a vessel in a cistern,
    /// choroid plexus in a ventricle) is set aside and listed; one in tissue stays a key region.
    /// Without contrast, or without the setting, both are key regions.
    #[test]
    fn bright_blobs_in_fluid_are_set_aside_on_a_contrast_series() {
        let in_fluid = |x: f64, y: f64, z: f64| ((x + 12.0).powi(2) + y * y + z * z).sqrt() <= 3.5;
        let in_tissue = |x: f64, y: f64, z: f64| ((x - 8.0).powi(2) + y * y + z * z).sqrt() <= 4.0;
        let (mut dep, mut labels) = brain(|x, y, z| if in_fluid(x, y, z) || in_tissue(x, y, z) { 8.0 } else { 0.0 });
        // Fluid (label 1) where x < -7 mm; the primary series sees the blobs, brighter.
        for (i, &v) in dep.voxels.iter().enumerate() {
            if (v as usize % 40) < 12 && dep.score[i] == 0.0 {
                labels[v as usize] = 1;
            }
            dep.shares[2 * i..2 * i + 2].copy_from_slice(&[1.0, 0.0]);
        }
        let slots = ["T1".to_string(), "T2".to_string()];
        let p = PhysiologicalSpec { midline_share: 0.0, elongation: 0.0, ..physiological(0.0, false) };
        let spec = KeyRegionSpec { physiological: Some(p), ..spec() };
        let found = |contrast: bool, spec: &KeyRegionSpec| {
            find(&dep, &labels, [40; 3], [1.0; 3], None, &|_| "tissue".into(), &slots, spec, ScanFacts { fluid_label: 1, contrast })
        };
        let after = found(true, &spec);
        assert_eq!(after.regions.len(), 1, "{:?}", after.regions);
        // The region kept is the one in tissue (x > 0).
        assert!(after.ids.iter().enumerate().all(|(v, &i)| i == 0 || v % 40 > 20), "{:?}", after.regions);
        assert_eq!(after.set_aside.len(), 1, "{:?}", after.set_aside);
        assert!(after.set_aside[0].why.contains("fluid or outside the brain"), "{}", after.set_aside[0].describe());
        assert_eq!(after.ids.iter().filter(|&&i| i != 0).count() as f64 / 1000.0, after.regions[0].volume_ml);
        let plain = KeyRegionSpec { physiological: None, ..spec.clone() };
        for (contrast, spec) in [(false, &spec), (true, &plain)] {
            let both = found(contrast, spec);
            assert_eq!((both.regions.len(), both.set_aside.len()), (2, 0), "{contrast}: {:?}", both.set_aside);
        }
    }

    /// The midline test counts the region's voxels within `midline_mm` of the midline; without
    /// patient geometry it cannot, and only the fluid test applies.
    #[test]
    fn a_region_mostly_on_the_midline_or_in_fluid_is_named_as_such() {
        let p = PhysiologicalSpec { elongation: 0.0, ..physiological(0.0, false) };
        let members: Vec<usize> = (0..10).collect();
        // Voxel v lies v mm from the midline: 6 of 10 within 5 mm.
        let on_line = |v: usize| Some(v as f64);
        let why = physiological_reason(&p, "brighter", &members, None, &on_line, || 0.2).expect("set aside");
        assert!(why.contains("60 % of it lies within 5 mm of the midline"), "{why}");
        let off_line = |v: usize| Some(v as f64 + 2.0);
        assert_eq!(physiological_reason(&p, "brighter", &members, None, &off_line, || 0.2), None, "4 of 10 within 5 mm");
        assert_eq!(physiological_reason(&p, "brighter", &members, None, &|_| None, || 0.2), None, "no geometry");
        let why = physiological_reason(&p, "brighter", &members, None, &|_| None, || 0.6).expect("set aside");
        assert!(why.contains("60 % of what lies within 3 mm of it is fluid or outside the brain"), "{why}");
        let off = PhysiologicalSpec { midline_share: 0.0, ..p };
        assert_eq!(physiological_reason(&off, "brighter", &members, None, &on_line, || 0.2), None, "midline test off");
    }

    /// A ball of radius 6 mm is 6 mm thick and as long as it is wide; a rod 2 voxels across and
    /// 30 long is 1 voxel thick and many times as long as wide, whichever way the grid's
    /// spacing runs; the eigenvalues of a rotated diagonal matrix come back in order.
    #[test]
    fn a_ball_is_thick_and_round_and_a_rod_thin_and_long() {
        let dims = [40usize; 3];
        let index = |x: usize, y: usize, z: usize| x + y * 40 + z * 1600;
        let mut ball = Vec::new();
        for z in 0..40 {
            for y in 0..40 {
                for x in 0..40 {
                    let d2 = [x, y, z].iter().map(|&c| (c as f64 - 20.0).powi(2)).sum::<f64>();
                    if d2 <= 36.0 {
                        ball.push(index(x, y, z));
                    }
                }
            }
        }
        let s = region_shape(&ball, dims, [1.0; 3]);
        assert!((5.5..=7.0).contains(&s.thickness_mm) && s.elongation < 1.05, "{s:?}");
        let rod: Vec<usize> = (5..35).flat_map(|y| [index(20, y, 20), index(21, y, 20), index(20, y, 21), index(21, y, 21)]).collect();
        let s = region_shape(&rod, dims, [1.0; 3]);
        assert!(s.thickness_mm <= 1.0 + 1e-9 && s.elongation > 10.0, "{s:?}");
        // Along the slices on 2 mm slices: the rod is 60 mm long.
        let upright: Vec<usize> = (5..35).flat_map(|z| [index(20, 20, z), index(21, 20, z), index(20, 21, z), index(21, 21, z)]).collect();
        let t = region_shape(&upright, dims, [1.0, 1.0, 2.0]);
        assert!(t.thickness_mm <= 1.0 + 1e-9 && t.elongation > 2.0 * s.elongation * 0.9, "{t:?} vs {s:?}");
        // R diag(9, 4, 1) Rᵀ for a rotation about z by 30°.
        let (c, n) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let m = [[9.0 * c * c + 4.0 * n * n, (9.0 - 4.0) * c * n, 0.0], [(9.0 - 4.0) * c * n, 9.0 * n * n + 4.0 * c * c, 0.0], [0.0, 0.0, 1.0]];
        let e = symmetric_eigenvalues(m);
        assert!(e.iter().zip([9.0, 4.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-9), "{e:?}");
    }

    /// With `thin_mm`, a region thicker than it is kept whatever its place; a thin one by the
    /// midline or in fluid is set aside as before, and a thin, long one anywhere.
    #[test]
    fn only_thin_regions_are_set_aside_and_thin_long_ones_anywhere() {
        let p = physiological(5.0, false);
        let members: Vec<usize> = (0..10).collect();
        let on_line = |_: usize| Some(1.0);
        let off_line = |_: usize| Some(30.0);
        let thick = Shape { thickness_mm: 6.5, elongation: 4.0 };
        let thin = Shape { thickness_mm: 3.2, elongation: 1.5 };
        let long = Shape { thickness_mm: 3.2, elongation: 3.0 };
        assert_eq!(physiological_reason(&p, "brighter", &members, Some(thick), &on_line, || 0.9), None, "thick: kept");
        let why = physiological_reason(&p, "brighter", &members, Some(thin), &on_line, || 0.2).expect("thin, on the midline");
        assert!(why.starts_with("brighter, no more than 3.2 mm from its edge anywhere, and 100 % of it lies within 5 mm"), "{why}");
        let why = physiological_reason(&p, "brighter", &members, Some(thin), &off_line, || 0.6).expect("thin, in fluid");
        assert!(why.contains("60 % of what lies within 3 mm"), "{why}");
        assert_eq!(physiological_reason(&p, "brighter", &members, Some(thin), &off_line, || 0.2), None, "thin, round, in tissue");
        let why = physiological_reason(&p, "brighter", &members, Some(long), &off_line, || 0.2).expect("thin and long");
        assert!(why.contains("3.0 times as long as it is wide"), "{why}");
        let no_length = PhysiologicalSpec { elongation: 0.0, ..p.clone() };
        assert_eq!(physiological_reason(&no_length, "brighter", &members, Some(long), &off_line, || 0.2), None, "elongation off");
        let bad = KeyRegionSpec { physiological: Some(PhysiologicalSpec { thin_mm: 0.0, ..p.clone() }), ..spec() };
        assert!(bad.problem().is_some_and(|e| e.contains("elongation")), "elongation without thin_mm");
        let bad = KeyRegionSpec { physiological: Some(PhysiologicalSpec { thin_mm: 0.0, elongation: 0.0, dark: true, ..p }), ..spec() };
        assert!(bad.problem().is_some_and(|e| e.contains("dark true (only with thin_mm)")), "dark without thin_mm");
    }

    /// A rod 3 mm across and 24 mm long that the second series sees darker (a flow void on a
    /// T2, no contrast anywhere) is set aside with `dark`, named darker, and kept without it; a
    /// ball 12 mm across, darker too (a haematoma), is kept either way; so is the rod when the
    /// second series sees it brighter.
    #[test]
    fn thin_dark_regions_are_set_aside_with_dark_on_any_scan_and_thick_ones_kept() {
        let rod = |x: f64, y: f64, z: f64| x.abs() <= 12.0 && (y - 8.0).abs() <= 1.5 && (z - 8.0).abs() <= 1.5;
        let ball = |x: f64, y: f64, z: f64| (x * x + (y + 6.0).powi(2) + z * z).sqrt() <= 6.0;
        let (mut dep, labels) = brain(|x, y, z| if rod(x, y, z) || ball(x, y, z) { 8.0 } else { 0.0 });
        let slots = ["T1".to_string(), "T2".to_string()];
        let p = physiological(5.5, true);
        let found = |dep: &Departure, p: &PhysiologicalSpec| {
            let spec = KeyRegionSpec { physiological: Some(p.clone()), ..spec() };
            find(dep, &labels, [40; 3], [1.0; 3], None, &|_| "tissue".into(), &slots, &spec, ScanFacts { fluid_label: 1, contrast: false })
        };
        // Darker on the second series, a trace brighter on the first.
        for i in 0..dep.voxels.len() {
            dep.shares[2 * i..2 * i + 2].copy_from_slice(&[0.1, -0.9]);
        }
        let with = found(&dep, &p);
        assert_eq!((with.regions.len(), with.set_aside.len()), (1, 1), "{:?}", with.set_aside);
        assert!(with.regions[0].volume_ml > 0.8, "the ball is kept: {:?}", with.regions);
        let why = &with.set_aside[0].why;
        assert!(why.starts_with("darker, no more than") && why.contains("times as long as it is wide"), "{why}");
        let without = found(&dep, &PhysiologicalSpec { dark: false, ..p.clone() });
        assert_eq!((without.regions.len(), without.set_aside.len()), (2, 0), "{:?}", without.set_aside);
        for i in 0..dep.voxels.len() {
            dep.shares[2 * i..2 * i + 2].copy_from_slice(&[0.1, 0.9]);
        }
        let bright = found(&dep, &p);
        assert_eq!((bright.regions.len(), bright.set_aside.len()), (2, 0), "no contrast: {:?}", bright.set_aside);
    }

    /// A strong blob (score 20 within 4 mm) whose smoothed score spreads above `grow` to 7 mm
    /// (score 5 between): `grow` alone takes the halo, a share of the peak stops at the blob.
    #[test]
    fn a_share_of_the_peak_keeps_a_strong_blob_s_region_to_the_blob() {
        let r = |x: f64, y: f64, z: f64| ((x - 5.0).powi(2) + y * y + z * z).sqrt();
        let (dep, labels) = brain(|x, y, z| match r(x, y, z) {
            d if d <= 4.0 => 20.0,
            d if d <= 7.0 => 5.0,
            _ => 0.0,
        });
        let slots = ["T1".to_string(), "T2".to_string()];
        let volume = |share: f64| {
            let spec = KeyRegionSpec { grow_share: share, ..spec() };
            let found = find(&dep, &labels, [40; 3], [1.0; 3], None, &|_| "white matter".into(), &slots, &spec, ScanFacts::default());
            assert_eq!(found.regions.len(), 1, "{:?}", found.regions);
            found.regions[0].volume_ml
        };
        let blob = dep.score.iter().filter(|&&s| s == 20.0).count() as f64 / 1000.0;
        let halo = dep.score.iter().filter(|&&s| s >= 5.0).count() as f64 / 1000.0;
        assert_eq!(volume(0.0), halo);
        assert_eq!(volume(0.3), blob);
        let problem = KeyRegionSpec { grow_share: 1.5, ..spec() }.problem().expect("refused");
        assert!(problem.contains("grow_share 1.5"), "{problem}");
    }

    #[test]
    fn smoothing_averages_noise_away_and_keeps_a_blob_s_departure() {
        // Residuals on one series: a ball of radius 6 mm 2.5 spreads brighter, elsewhere noise
        // of one spread about healthy tissue (a fixed pseudo-random sequence).
        let mut state = 12345u64;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 3.46 // uniform, variance 1
        };
        let (mut dep, labels) = brain(|_, _, _| 0.0);
        dep.channels = 1;
        dep.metric = vec![1.0];
        dep.score.clear();
        dep.shares.clear();
        for &v in &dep.voxels {
            let v = v as usize;
            let (x, y, z) = ((v % 40) as f64 - 19.5, ((v / 40) % 40) as f64 - 19.5, (v / 1600) as f64 - 19.5);
            let r = noise() + if ((x - 5.0).powi(2) + y * y + z * z).sqrt() <= 6.0 { 2.5 } else { 0.0 };
            dep.residual.push(r as f32);
            dep.score.push(r.abs() as f32);
            dep.shares.push(r.signum() as f32);
        }
        let spec = KeyRegionSpec { seed: 2.0, grow: 1.2, smooth_mm: 1.0, opening_mm: 0.0, ..spec() };
        let names = |_: u8| "white matter".to_string();
        let found = find(&dep, &labels, [40; 3], [1.0; 3], None, &names, &["T1".into()], &spec, ScanFacts::default());
        assert_eq!(found.regions.len(), 1, "{:?}", found.regions);
        let truth = 4.0 / 3.0 * std::f64::consts::PI * 216.0 / 1000.0;
        assert!((found.regions[0].volume_ml - truth).abs() / truth < 0.25, "{} vs {truth}", found.regions[0].volume_ml);
        assert_eq!(found.regions[0].series_weights[0].direction, "brighter");
        // Without smoothing the noise alone crosses the same thresholds in many places.
        let raw = find(&dep, &labels, [40; 3], [1.0; 3], None, &names, &["T1".into()], &KeyRegionSpec { smooth_mm: 0.0, ..spec }, ScanFacts::default());
        assert!(raw.regions.len() != 1 || raw.regions[0].volume_ml > 2.0 * truth, "{:?}", raw.regions);
    }

    #[test]
    fn box_sums_add_up_the_box_of_modelled_voxels_only() {
        // A 5 × 4 × 3 grid; the modelled voxels are all but the first, each giving (1, its index).
        let dims = [5, 4, 3];
        let brain: Vec<u32> = (1..60).collect();
        let sums = box_sums(&brain, dims, [1, 1, 0], 2, |i, out| {
            out[0] = 1.0;
            out[1] = brain[i] as f32;
        });
        // Voxel (1, 1, 0) = 6: its 3 × 3 box in its slice holds 0, 1, 2, 5, 6, 7, 10, 11, 12,
        // of which 0 is not modelled.
        let at = brain.iter().position(|&v| v == 6).unwrap();
        assert_eq!(sums[at * 2], 8.0);
        assert_eq!(sums[at * 2 + 1], (1 + 2 + 5 + 6 + 7 + 10 + 11 + 12) as f32);
        // A corner (4, 3, 2) = 59: a 2 × 2 box.
        assert_eq!(sums[58 * 2], 4.0);
    }

    #[test]
    fn a_ring_s_core_belongs_to_its_region() {
        // A shell from 3 to 6 mm about the centre scores 8; its core is healthy-looking.
        let (dep, labels) = brain(|x, y, z| {
            let r = (x * x + y * y + z * z).sqrt();
            if (3.0..=6.0).contains(&r) { 8.0 } else { 0.0 }
        });
        let found = run(&dep, &labels);
        assert_eq!(found.regions.len(), 1, "{:?}", found.regions);
        let ball = dep.score.iter().zip(&dep.voxels).filter(|(_, v)| {
            let v = **v as usize;
            let (x, y, z) = ((v % 40) as f64 - 19.5, ((v / 40) % 40) as f64 - 19.5, (v / 1600) as f64 - 19.5);
            (x * x + y * y + z * z).sqrt() <= 6.0
        });
        let (ball, marked) = ball.fold((0, 0), |(n, m), (_, &v)| (n + 1, m + usize::from(found.ids[v as usize] == 1)));
        assert!(marked as f64 >= 0.95 * ball as f64, "{marked} of {ball} voxels of the ball marked");
    }

    #[test]
    fn thin_lines_faint_blobs_small_specks_and_the_surface_make_no_region() {
        let (dep, labels) = brain(|x, y, z| {
            let vessel = y.abs() < 0.6 && z.abs() < 0.6; // a line one voxel thick through the brain
            let faint = ((x - 8.0).powi(2) + y * y + (z - 8.0).powi(2)).sqrt() <= 5.0; // under the seed
            let speck = (x + 8.0).abs() < 0.6 && (y + 8.0).abs() < 0.6 && (z + 8.0).abs() < 0.6;
            let surface = (x * x + y * y + z * z).sqrt() > 16.5; // only at the brain's edge
            if vessel || speck || surface {
                20.0
            } else if faint {
                4.0
            } else {
                0.5
            }
        });
        let found = run(&dep, &labels);
        assert!(found.regions.is_empty(), "{:?}", found.regions);
        assert!(found.score.iter().any(|&s| s == 20.0), "the score map keeps every voxel's departure");
    }
}
