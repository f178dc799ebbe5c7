//! Grouping headers into Patient → Study → Series → Stack, and ordering each stack in space.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::geometry::{self, StackGeometry};
use super::header::{InstanceHeader, PatientInfo};

/// One image plane: a frame of a file.
#[derive(Debug, Clone)]
pub struct SliceRef {
    pub instance: Arc<InstanceHeader>,
    pub frame: u32,
}

impl SliceRef {
    pub fn info(&self) -> &super::header::FrameInfo {
        // `frames` always has one entry per frame (see InstanceHeader::from_object).
        &self.instance.frames[self.frame as usize]
    }
}

/// Something about a stack that a reader should know before trusting measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeriesWarning {
    IrregularSpacing { min_mm: f64, max_mm: f64 },
    DuplicatePositions { count: usize },
    MissingSlices { count: usize },
    GantryTilt { degrees: f64 },
    NoGeometry,
    MixedPixelSpacing,
    /// Every slice at one position: there is no distance between slices to measure with.
    AllAtOnePosition { slices: usize },
    /// No PixelSpacing (absent or unreadable): 1 mm is assumed for drawing.
    AssumedPixelSpacing,
    /// Pixel or slice spacing outside anything a scanner writes (mm: column, row, slice).
    ImplausibleSpacing { spacing_mm: [f64; 3] },
    /// Geometry or value elements present but unreadable (e.g. "NaN"); nothing was read from them.
    UnreadableValues { elements: Vec<&'static str> },
    /// Acquired after a contrast agent: enhancing vessels, dura, choroid plexus and lesions are
    /// bright, which tissue models built on unenhanced scans do not expect.
    Contrast { evidence: ContrastEvidence },
}

/// What says a series was acquired with contrast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContrastEvidence {
    /// ContrastBolusAgent (0018,0010) is set on its images.
    BolusAgent,
    /// Its series description says so ("+C", "post-contrast", "Gd+"…), with no agent given.
    Description,
}

/// Whether a series description names a contrast-enhanced acquisition: "T1 +C", "T1 C+",
/// "MPRAGE post-contrast", "T1 Gd+", "T1 post Gad", "with contrast", and the research names
/// "T1c", "T1ce", "T1Gd" (BraTS and its converters). Only positive forms: "pre contrast",
/// "non-contrast" and "w/o contrast" do not count, nor "post" alone ("T1 post fossa").
pub fn description_says_contrast(description: &str) -> bool {
    let d = description.to_ascii_uppercase();
    let words: Vec<&str> = d.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+')).filter(|w| !w.is_empty()).collect();
    const WORDS: [&str; 16] = [
        "+C", "C+", "+GD", "GD+", "+GAD", "GAD+", "POSTCONTRAST", "POSTGAD", "POSTGD", "GADO", "T1C", "T1CE", "T1GD", "T1+C",
        "T1C+", "T1+GD",
    ];
    const PHRASES: [&str; 9] = [
        "POST-CONTRAST", "POST CONTRAST", "POST GAD", "POST-GAD", "POST GD", "POST-GD", "WITH CONTRAST", "W/ CONTRAST",
        "W/CONTRAST",
    ];
    WORDS.iter().any(|w| words.contains(w)) || PHRASES.iter().any(|p| d.contains(p))
}

impl SeriesWarning {
    /// Whether sizes and volumes measured on the series would rest on a value Focal had to
    /// assume: analysis refuses such a series (naming the problem) rather than report them.
    pub fn blocks_measurement(&self) -> bool {
        matches!(
            self,
            SeriesWarning::AllAtOnePosition { .. }
                | SeriesWarning::AssumedPixelSpacing
                | SeriesWarning::ImplausibleSpacing { .. }
                | SeriesWarning::UnreadableValues { .. }
        )
    }
}

impl std::fmt::Display for SeriesWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeriesWarning::IrregularSpacing { min_mm, max_mm } => {
                write!(f, "irregular slice spacing ({min_mm:.3}–{max_mm:.3} mm)")
            }
            SeriesWarning::DuplicatePositions { count } => write!(f, "{count} duplicate slice position(s)"),
            SeriesWarning::MissingSlices { count } => write!(f, "about {count} missing slice(s)"),
            SeriesWarning::GantryTilt { degrees } => write!(f, "gantry tilt {degrees:.1}°"),
            SeriesWarning::NoGeometry => write!(f, "no position/orientation: ordered by instance number"),
            SeriesWarning::MixedPixelSpacing => write!(f, "pixel spacing differs between slices"),
            SeriesWarning::AllAtOnePosition { slices } => {
                write!(f, "all {slices} slices at one position: no slice spacing")
            }
            SeriesWarning::AssumedPixelSpacing => write!(f, "no usable PixelSpacing: 1 mm assumed for display"),
            SeriesWarning::ImplausibleSpacing { spacing_mm: [c, r, s] } => {
                write!(f, "implausible spacing {c} x {r} x {s} mm (column x row x slice)")
            }
            SeriesWarning::UnreadableValues { elements } => {
                write!(f, "unreadable {} (present, but not finite numbers)", elements.join(", "))
            }
            SeriesWarning::Contrast { evidence } => {
                let why = match evidence {
                    ContrastEvidence::BolusAgent => "ContrastBolusAgent is set",
                    ContrastEvidence::Description => "its series description says so",
                };
                write!(
                    f,
                    "acquired with contrast ({why}): enhancing vessels, dura, choroid plexus and lesions are bright, and a tissue model built on unenhanced scans can take them for another tissue"
                )
            }
        }
    }
}

/// Slices of one series that share orientation and size, ordered along the slice normal.
#[derive(Debug, Clone)]
pub struct Stack {
    pub slices: Vec<SliceRef>,
    pub rows: u32,
    pub columns: u32,
    pub samples_per_pixel: u16,
    pub plane: Option<&'static str>,
    pub geometry: Option<StackGeometry>,
    pub warnings: Vec<SeriesWarning>,
}

impl Stack {
    pub fn transfer_syntaxes(&self) -> Vec<String> {
        let mut ts: Vec<String> = self.slices.iter().map(|s| s.instance.transfer_syntax.clone()).collect();
        ts.sort();
        ts.dedup();
        ts
    }

    /// Column and row spacing (mm) for drawing a slice at its true aspect: the geometry's, else
    /// Pixel Spacing's where finite, positive and under 20:1, else square pixels (1 mm).
    pub fn display_spacing(&self) -> [f64; 2] {
        if let Some(g) = &self.geometry {
            return [g.spacing[0], g.spacing[1]];
        }
        self.slices
            .first()
            .and_then(|s| s.info().pixel_spacing)
            .map(|ps| [ps[1], ps[0]])
            .filter(|s| s.iter().all(|v| v.is_finite() && *v > 0.0) && s[0] / s[1] < 20.0 && s[1] / s[0] < 20.0)
            .unwrap_or([1.0, 1.0])
    }

    /// Number of distinct files the stack's slices come from.
    pub fn file_count(&self) -> usize {
        let mut paths: Vec<_> = self.slices.iter().map(|s| &s.instance.path).collect();
        paths.sort();
        paths.dedup();
        paths.len()
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub uid: String,
    pub number: Option<i64>,
    pub modality: Option<String>,
    pub description: Option<String>,
    /// Image stacks (more than one for localizers with several planes).
    pub stacks: Vec<Stack>,
    /// Objects of this series without images (reports, plans, structure sets).
    pub non_image: Vec<Arc<InstanceHeader>>,
}

impl Series {
    /// The stack an analysis, a thumbnail or the window uses: the one with the most slices
    /// (the last of equals), with its index. Chosen here only.
    pub fn largest_stack(&self) -> Option<(usize, &Stack)> {
        self.stacks.iter().enumerate().max_by_key(|(_, st)| st.slices.len())
    }
}

#[derive(Debug, Clone)]
pub struct Study {
    pub uid: String,
    pub date: Option<String>,
    pub description: Option<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub info: PatientInfo,
    pub studies: Vec<Study>,
}

/// Groups headers into the patient/study/series tree, splitting and sorting stacks.
pub fn organize(instances: Vec<InstanceHeader>) -> Vec<Patient> {
    // BTreeMaps keep the output order stable whatever order the files were read in.
    let mut patients: BTreeMap<
        (Option<String>, Option<String>),
        BTreeMap<String, BTreeMap<String, Vec<Arc<InstanceHeader>>>>,
    > = BTreeMap::new();
    let mut infos: BTreeMap<(Option<String>, Option<String>), PatientInfo> = BTreeMap::new();
    for header in instances {
        let key = (header.patient.id.clone(), header.patient.name.clone());
        infos.entry(key.clone()).or_insert_with(|| header.patient.clone());
        patients
            .entry(key)
            .or_default()
            .entry(header.study_uid.clone())
            .or_default()
            .entry(header.series_uid.clone())
            .or_default()
            .push(Arc::new(header));
    }
    patients
        .into_iter()
        .map(|(key, studies)| Patient {
            info: infos.remove(&key).unwrap_or_default(),
            studies: studies
                .into_iter()
                .map(|(uid, series)| {
                    let mut series: Vec<Series> = series
                        .into_iter()
                        .map(|(uid, members)| build_series(uid, members))
                        .collect();
                    series.sort_by(|a, b| a.number.cmp(&b.number).then_with(|| a.uid.cmp(&b.uid)));
                    let first = series
                        .iter()
                        .flat_map(|s| s.stacks.iter().flat_map(|st| st.slices.first()))
                        .next();
                    let (date, description) = first
                        .map(|s| (s.instance.study_date.clone(), s.instance.study_description.clone()))
                        .unwrap_or_default();
                    Study {
                        uid,
                        date,
                        description,
                        series,
                    }
                })
                .collect(),
        })
        .collect()
}

fn build_series(uid: String, members: Vec<Arc<InstanceHeader>>) -> Series {
    let first = members.first().cloned();
    let (images, non_image): (Vec<_>, Vec<_>) = members.into_iter().partition(|h| h.pixels.is_some());
    // Split by orientation and image size: a 3-plane localizer becomes three stacks.
    let mut groups: BTreeMap<(Option<[i32; 6]>, u32, u32, u16), Vec<SliceRef>> = BTreeMap::new();
    for header in images {
        let Some(pixels) = header.pixels.as_ref() else { continue };
        for frame in 0..pixels.frames {
            let orientation = header.frames.get(frame as usize).and_then(|f| f.orientation);
            let key = (
                orientation.as_ref().map(geometry::orientation_key),
                pixels.rows,
                pixels.columns,
                pixels.samples_per_pixel,
            );
            groups.entry(key).or_default().push(SliceRef {
                instance: header.clone(),
                frame,
            });
        }
    }
    let mut stacks: Vec<Stack> = groups
        .into_iter()
        .map(|((_, rows, columns, samples_per_pixel), slices)| build_stack(slices, rows, columns, samples_per_pixel))
        .collect();
    stacks.sort_by(|a, b| b.slices.len().cmp(&a.slices.len()));
    Series {
        uid,
        number: first.as_ref().and_then(|h| h.series_number),
        modality: first.as_ref().and_then(|h| h.modality.clone()),
        description: first.as_ref().and_then(|h| h.series_description.clone()),
        stacks,
        non_image,
    }
}

fn build_stack(mut slices: Vec<SliceRef>, rows: u32, columns: u32, samples_per_pixel: u16) -> Stack {
    let first = slices[0].clone();
    let orientation = first.info().orientation;
    let all_positioned = slices.iter().all(|s| s.info().position.is_some());
    let mut warnings = Vec::new();
    let mut geometry = None;
    match (orientation, all_positioned) {
        (Some(iop), true) => {
            let normal = geometry::normal(&iop);
            let distance = |s: &SliceRef| s.info().position.map_or(0.0, |p| geometry::dot(&p, &normal));
            // Sort by distance along the normal; ties (duplicates) keep instance/frame order.
            slices.sort_by(|a, b| {
                distance(a)
                    .total_cmp(&distance(b))
                    .then_with(|| a.instance.instance_number.cmp(&b.instance.instance_number))
                    .then_with(|| a.frame.cmp(&b.frame))
            });
            let distances: Vec<f64> = slices.iter().map(distance).collect();
            let report = geometry::spacing_report(&distances);
            if slices.len() > 1 && report.duplicates + 1 >= slices.len() {
                warnings.push(SeriesWarning::AllAtOnePosition { slices: slices.len() });
            } else if report.duplicates > 0 {
                warnings.push(SeriesWarning::DuplicatePositions {
                    count: report.duplicates,
                });
            }
            if report.missing > 0 {
                warnings.push(SeriesWarning::MissingSlices { count: report.missing });
            }
            if report.irregular {
                warnings.push(SeriesWarning::IrregularSpacing {
                    min_mm: report.min_gap.unwrap_or(0.0),
                    max_mm: report.max_gap.unwrap_or(0.0),
                });
            }
            let first_pos = slices[0].info().position.unwrap_or([0.0; 3]);
            let last_pos = slices[slices.len() - 1].info().position.unwrap_or([0.0; 3]);
            let tilt =
                geometry::tilt_degrees(&normal, &first_pos, &last_pos).filter(|_| report.duplicates + 1 < slices.len());
            let tilt = tilt.or(first.instance.gantry_tilt.map(f64::abs));
            if let Some(t) = tilt.filter(|t| *t > 0.5) {
                warnings.push(SeriesWarning::GantryTilt { degrees: t });
            }
            let spacings: Vec<[f64; 2]> = slices.iter().filter_map(|s| s.info().pixel_spacing).collect();
            if spacings
                .windows(2)
                .any(|w| (w[0][0] - w[1][0]).abs() > 1e-4 || (w[0][1] - w[1][1]).abs() > 1e-4)
            {
                warnings.push(SeriesWarning::MixedPixelSpacing);
            }
            // PixelSpacing is (row spacing, column spacing) = (between rows, between columns).
            if first.info().pixel_spacing.is_none() {
                warnings.push(SeriesWarning::AssumedPixelSpacing);
            }
            let ps = first.info().pixel_spacing.unwrap_or([1.0, 1.0]);
            let slice_spacing = report.spacing.or(first.info().slice_thickness).unwrap_or(1.0);
            // Pixels from 10 µm (microscopy-like) to 50 mm, slices up to 100 mm apart.
            let plausible = |v: f64, hi: f64| v.is_finite() && (0.01..=hi).contains(&v);
            if !(plausible(ps[0], 50.0) && plausible(ps[1], 50.0) && (slices.len() < 2 || plausible(slice_spacing, 100.0)))
            {
                warnings.push(SeriesWarning::ImplausibleSpacing {
                    spacing_mm: [ps[1], ps[0], slice_spacing],
                });
            }
            geometry = Some(StackGeometry {
                origin: first_pos,
                row_direction: geometry::normalize(&[iop[0], iop[1], iop[2]]),
                column_direction: geometry::normalize(&[iop[3], iop[4], iop[5]]),
                slice_direction: normal,
                spacing: [ps[1], ps[0], slice_spacing],
            });
        }
        _ => {
            slices.sort_by(|a, b| {
                a.instance
                    .instance_number
                    .cmp(&b.instance.instance_number)
                    .then_with(|| a.instance.path.cmp(&b.instance.path))
                    .then_with(|| a.frame.cmp(&b.frame))
            });
            if slices.len() > 1 {
                warnings.push(SeriesWarning::NoGeometry);
            }
        }
    }
    let mut unreadable: Vec<&'static str> = Vec::new();
    for s in &slices {
        super::header::add_names(&mut unreadable, &s.info().unreadable);
    }
    if !unreadable.is_empty() {
        warnings.push(SeriesWarning::UnreadableValues { elements: unreadable });
    }
    if slices.iter().any(|s| s.instance.contrast_agent) {
        warnings.push(SeriesWarning::Contrast { evidence: ContrastEvidence::BolusAgent });
    } else if first.instance.series_description.as_deref().is_some_and(description_says_contrast) {
        warnings.push(SeriesWarning::Contrast { evidence: ContrastEvidence::Description });
    }
    Stack {
        rows,
        columns,
        samples_per_pixel,
        plane: orientation.as_ref().map(geometry::plane_name),
        geometry,
        warnings,
        slices,
    }
}

#[cfg(test)]
mod tests {
    use super::description_says_contrast;

    #[test]
    fn contrast_is_read_from_a_description_only_in_its_positive_forms() {
        for yes in [
            "T1 +C AX",
            "AX T1 C+",
            "MPRAGE post-contrast",
            "T1_MPRAGE POST CONTRAST",
            "T1 SE Gd+",
            "t1 +gd",
            "T1 post Gad",
            "Brain with contrast",
            "T1 W/ CONTRAST",
            "T1 FS GADO",
            "t1ce",
            "BraTS T1c",
            "T1Gd 3D",
            "AX T1+C",
            "T1 post-Gd",
        ] {
            assert!(description_says_contrast(yes), "{yes}");
        }
        for no in [
            "T1 3D axial",
            "T1 pre contrast",
            "T1 non-contrast",
            "T1 W/O CONTRAST",
            "Brain without contrast",
            "T2 FLAIR",
            "T1 thick slices 4 mm (test copy)",
            "CT head C1-C2",
            "Gadolinium-free protocol",
            "T1 post fossa",
            "T1 SPACE sag",
            "T1 CSF flow",
        ] {
            assert!(!description_says_contrast(no), "{no}");
        }
    }
}
