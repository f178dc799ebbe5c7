//! What other tools wrote over a series, on that series' grid: a DICOM Segmentation or a NIfTI
//! label map as segments (names, colours, volumes), a Parametric Map or a NIfTI probability
//! map as values with their units. The window, `focal snapshot` and `focal compare` show and
//! use them alike; nothing here draws.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::study::geometry::StackGeometry;
use crate::study::objects::{self, Grid, PARAMETRIC_MAP_STORAGE, RT_STRUCTURE_SET_STORAGE, SEGMENTATION_STORAGE, Segment};
use crate::study::{InstanceHeader, Stack};

/// One object shown over a series.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// How it is named to the reader: "SEG #300 Focal tissue labels", a file's name.
    pub name: String,
    pub source: PathBuf,
    pub content: Content,
    /// What was left out of it and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// Per voxel 1 + the index of its segment in `segments`, 0 none.
    Labels { kind: String, labels: Arc<Vec<u8>>, segments: Vec<Segment> },
    /// A structured report or key object selection: its groups of values and the image
    /// regions they were measured on.
    Report(objects::Report),
    /// Per voxel a value (NaN outside the map), with the range of its finite values.
    Map { values: Arc<Vec<f32>>, quantity: String, units: String, range: [f32; 2], coverage: f64 },
}

/// Colours for segments that bring none: distinct hues around the wheel.
pub fn default_color(index: usize) -> [u8; 3] {
    const COLORS: [[u8; 3]; 12] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [170, 110, 40],
    ];
    COLORS[index % COLORS.len()]
}

impl Overlay {
    /// The segments' display colours, from the object where it gives them.
    pub fn colors(&self) -> Vec<[u8; 3]> {
        match &self.content {
            Content::Labels { segments, .. } => {
                segments.iter().enumerate().map(|(i, s)| s.color.unwrap_or_else(|| default_color(i))).collect()
            }
            Content::Map { .. } | Content::Report(_) => Vec::new(),
        }
    }
}

fn range_of(values: &[f32]) -> [f32; 2] {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo.is_finite() { [lo, if hi > lo { hi } else { lo + 1.0 }] } else { [0.0, 1.0] }
}

/// The slice (0-based) of `stack` a report's region lies on: the image it names (and frame).
pub fn slice_of(stack: &Stack, region: &objects::ReportRegion) -> Option<usize> {
    stack.slices.iter().position(|s| {
        s.instance.sop_instance_uid == region.image && region.frame.is_none_or(|f| s.frame + 1 == f)
    })
}

/// The regions with points that the reports among `overlays` measured on slice `k` of `stack`
/// (what the window and snapshots draw there).
pub fn report_regions<'a>(
    overlays: impl IntoIterator<Item = &'a Overlay>,
    stack: &'a Stack,
    k: usize,
) -> impl Iterator<Item = &'a objects::ReportRegion> {
    overlays
        .into_iter()
        .filter_map(|o| match &o.content {
            Content::Report(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| r.groups.iter().flat_map(|g| g.regions.iter()))
        .filter(move |region| !region.points.is_empty() && slice_of(stack, region) == Some(k))
}

/// Whether a file is a NIfTI image (by its name).
pub fn is_nifti(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Whether a DICOM object is one Focal shows over a series (a Segmentation, Parametric Map or
/// RT Structure Set).
pub fn is_overlay_object(header: &InstanceHeader) -> bool {
    [SEGMENTATION_STORAGE, PARAMETRIC_MAP_STORAGE, RT_STRUCTURE_SET_STORAGE].contains(&header.sop_class_uid.as_str())
        || objects::REPORT_CLASSES.contains(&header.sop_class_uid.as_str())
        || header.sop_class_uid == objects::GRAYSCALE_PRESENTATION_STATE
}

/// A DICOM Segmentation or Parametric Map over `stack`, placed on its grid.
pub fn from_dicom(header: &InstanceHeader, stack: &Stack) -> Result<Overlay, String> {
    let grid = Grid::of(stack).ok_or("the series has no geometry to place it on")?;
    objects::check_frame_of_reference(header, stack)?;
    let what = header.modality.clone().unwrap_or_else(|| "object".into());
    let name = format!(
        "{what} {} {}",
        header.series_number.map(|n| format!("#{n}")).unwrap_or_default(),
        header.series_description.clone().unwrap_or_default()
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    let (content, notes) = match header.sop_class_uid.as_str() {
        SEGMENTATION_STORAGE | RT_STRUCTURE_SET_STORAGE => {
            let s = if header.sop_class_uid == SEGMENTATION_STORAGE {
                objects::read_segmentation(header, &grid)?
            } else {
                objects::read_structure_set(header, &grid)?
            };
            (
                Content::Labels {
                    kind: s.kind,
                    labels: Arc::new(s.labels),
                    segments: s.segments,
                },
                s.notes,
            )
        }
        PARAMETRIC_MAP_STORAGE => {
            let m = objects::read_parametric_map(header, &grid)?;
            let range = range_of(&m.values);
            (
                Content::Map {
                    values: Arc::new(m.values),
                    quantity: m.quantity,
                    units: m.units,
                    range,
                    coverage: m.coverage,
                },
                m.notes,
            )
        }
        class if objects::REPORT_CLASSES.contains(&class) || class == objects::GRAYSCALE_PRESENTATION_STATE => {
            let r = if class == objects::GRAYSCALE_PRESENTATION_STATE {
                objects::read_presentation_state(header)?
            } else {
                objects::read_report(header)?
            };
            let notes = r.notes.clone();
            (Content::Report(r), notes)
        }
        other => return Err(format!("SOP class {other} is not a segmentation, parametric map, structure set or report")),
    };
    Ok(Overlay {
        name,
        source: header.path.clone(),
        content,
        notes,
    })
}

/// A NIfTI label map (integral values) or probability / parametric map (any other) over a
/// series of `geometry` and `dims`, placed on its grid by world coordinates.
pub fn from_nifti(path: &Path, geometry: &StackGeometry, dims: [usize; 3]) -> Result<Overlay, String> {
    let (their_dims, values, affine) = crate::nifti::read_values(path).map_err(|e| e.to_string())?;
    let ours = crate::nifti::affine_of(geometry);
    let integral = values.iter().all(|v| !v.is_finite() || (v.fract() == 0.0 && *v >= 0.0));
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut notes = Vec::new();
    let content = if integral {
        let (on, coverage) = crate::compare::nearest_onto(dims, &ours, their_dims, &affine, &values, 0.0)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut present: Vec<u32> = on.iter().filter(|v| v.is_finite() && **v > 0.0).map(|v| *v as u32).collect();
        present.sort_unstable();
        present.dedup();
        if present.len() > objects::MAX_SEGMENTS {
            notes.push(format!(
                "{} labels: the first {} are drawn, the rest left out",
                present.len(),
                objects::MAX_SEGMENTS
            ));
            present.truncate(objects::MAX_SEGMENTS);
        }
        let mut segments: Vec<Segment> = present
            .iter()
            .map(|&l| Segment {
                number: u16::try_from(l).unwrap_or(u16::MAX),
                label: format!("Label {l}"),
                property: None,
                color: None,
                voxels: 0,
            })
            .collect();
        let labels: Vec<u8> = on
            .iter()
            .map(|v| match present.binary_search(&(if v.is_finite() && *v > 0.0 { *v as u32 } else { 0 })) {
                Ok(i) => {
                    segments[i].voxels += 1;
                    (i + 1) as u8
                }
                Err(_) => 0,
            })
            .collect();
        if coverage < 1.0 {
            notes.push(format!("it covers {:.0}% of the series", coverage * 100.0));
        }
        Content::Labels {
            kind: "LABELMAP".into(),
            labels: Arc::new(labels),
            segments,
        }
    } else {
        let (on, coverage) = crate::compare::nearest_onto(dims, &ours, their_dims, &affine, &values, f32::NAN)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let range = range_of(&on);
        Content::Map {
            values: Arc::new(on),
            quantity: "Map".into(),
            units: String::new(),
            range,
            coverage,
        }
    };
    Ok(Overlay {
        name,
        source: path.to_path_buf(),
        content,
        notes,
    })
}

/// A file over `stack`: NIfTI by its name, else DICOM (a Segmentation or Parametric Map).
pub fn load(path: &Path, stack: &Stack) -> Result<Overlay, String> {
    let grid = Grid::of(stack).ok_or("the series has no geometry to place it on")?;
    if is_nifti(path) {
        return from_nifti(path, grid.geometry, grid.dims);
    }
    let header = crate::study::read_header(path)
        .map_err(|e| crate::study::error_chain(&e))?
        .ok_or("neither NIfTI (.nii, .nii.gz) nor DICOM")?;
    if !is_overlay_object(&header) {
        return Err(format!(
            "a {} object, not a segmentation, parametric map, structure set or report",
            header.modality.as_deref().unwrap_or("DICOM")
        ));
    }
    from_dicom(&header, stack)
}

/// One source of labels drawn in a composite: its labels per voxel (0 none) and, per value,
/// the name, colour and whether it is shown.
pub struct LabelSource<'a> {
    pub labels: &'a [u8],
    pub entries: Vec<LabelEntry>,
}

impl<'a> LabelSource<'a> {
    /// A model's label map, its labels named and coloured as its manifest says; those in
    /// `hidden` are not drawn.
    pub fn of_model(labels: &'a [u8], model: &[crate::manifest::Label], hidden: &[u8]) -> LabelSource<'a> {
        LabelSource {
            labels,
            entries: model
                .iter()
                .filter(|l| l.index > 0)
                .map(|l| LabelEntry {
                    value: l.index,
                    name: l.name.clone(),
                    color: l.color,
                    shown: !hidden.contains(&l.index),
                })
                .collect(),
        }
    }
}

/// A label value of a source as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEntry {
    pub value: u8,
    pub name: String,
    pub color: [u8; 3],
    pub shown: bool,
}

/// Several label sources as one map (the GPU draws one): the first keeps its values, each
/// later one's are moved past those before it and drawn over them. Values past 255 are left
/// out (named in the second value returned).
pub struct Composite {
    pub labels: Vec<u8>,
    /// Per value: (name, colour, shown); value 0 is background.
    pub table: Vec<(String, [u8; 3], bool)>,
}

/// The labels, for sharing the drawn map without a copy (the GPU upload of reformatting).
impl AsRef<[u8]> for Composite {
    fn as_ref(&self) -> &[u8] {
        &self.labels
    }
}

impl Overlay {
    /// This overlay as a label source with its segments shown as `shown` says (all when empty);
    /// None for a map.
    pub fn label_source(&self, shown: &[bool]) -> Option<LabelSource<'_>> {
        let Content::Labels { labels, segments, .. } = &self.content else {
            return None;
        };
        let colors = self.colors();
        Some(LabelSource {
            labels,
            entries: segments
                .iter()
                .enumerate()
                .map(|(i, s)| LabelEntry {
                    value: (i + 1) as u8,
                    name: s.label.clone(),
                    color: colors[i],
                    shown: shown.get(i).copied().unwrap_or(shown.is_empty()),
                })
                .collect(),
        })
    }
}

/// The sources (all of `len` voxels; others are skipped) as one label map.
pub fn compose(len: usize, sources: &[LabelSource]) -> (Composite, Vec<String>) {
    let mut out = Composite {
        labels: vec![0u8; len],
        table: vec![(String::new(), [0, 0, 0], false)],
    };
    let mut left_out = Vec::new();
    let mut offset = 0usize;
    for source in sources {
        if source.labels.len() != len {
            continue;
        }
        let top = source.entries.iter().map(|e| usize::from(e.value)).max().unwrap_or(0);
        // The first source keeps its values; later ones start after everything before them.
        let base = offset;
        let mut map = [0u8; 256];
        for e in &source.entries {
            let v = base + usize::from(e.value);
            if v > 255 {
                left_out.push(e.name.clone());
                continue;
            }
            if out.table.len() <= v {
                out.table.resize(v + 1, (String::new(), [0, 0, 0], false));
            }
            out.table[v] = (e.name.clone(), e.color, e.shown);
            map[usize::from(e.value)] = v as u8;
        }
        for (o, &l) in out.labels.iter_mut().zip(source.labels) {
            let v = map[usize::from(l)];
            // Hidden segments do not hide what lies under them.
            if v != 0 && out.table[usize::from(v)].2 {
                *o = v;
            }
        }
        offset = offset.max(base + top);
    }
    (out, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: u8, name: &str, shown: bool) -> LabelEntry {
        LabelEntry {
            value,
            name: name.into(),
            color: [value, 0, 0],
            shown,
        }
    }

    #[test]
    fn later_sources_are_drawn_over_earlier_ones_past_their_values() {
        let a = [0u8, 1, 2, 2];
        let b = [1u8, 1, 0, 2];
        let sources = [
            LabelSource {
                labels: &a,
                entries: vec![entry(1, "csf", true), entry(2, "grey", true)],
            },
            LabelSource {
                labels: &b,
                entries: vec![entry(1, "tumour", true), entry(2, "oedema", false)],
            },
        ];
        let (c, left_out) = compose(4, &sources);
        assert!(left_out.is_empty());
        // b's 1 becomes 3 and wins; b's hidden 2 (4) leaves a's 2 showing.
        assert_eq!(c.labels, vec![3, 3, 2, 2]);
        assert_eq!(c.table[3].0, "tumour");
        assert_eq!(c.table[4], ("oedema".into(), [2, 0, 0], false));
    }

    #[test]
    fn values_past_255_are_named_and_left_out() {
        let a = vec![200u8; 2];
        let b = vec![100u8; 2];
        let sources = [
            LabelSource {
                labels: &a,
                entries: vec![entry(200, "a", true)],
            },
            LabelSource {
                labels: &b,
                entries: vec![entry(50, "b50", true), entry(100, "b100", true)],
            },
        ];
        let (c, left_out) = compose(2, &sources);
        assert_eq!(left_out, vec!["b100".to_string()]);
        assert_eq!(c.labels, vec![200, 200]);
    }
}
