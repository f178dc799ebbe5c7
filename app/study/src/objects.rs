//! Objects other tools write over a series' images — DICOM Segmentations and Parametric Maps —
//! read and placed onto that series' grid by patient coordinates: each voxel of the series
//! takes the nearest pixel of the nearest frame (of its segment) lying within half a frame
//! spacing of it, never a frame's place in the file. Memory stays bounded by one segment's
//! frames and the series' grid, whatever the object claims.

use dicom_dictionary_std::tags;

use super::attrs::{self, Object};
use super::geometry::{Vec3, dot, normal, sub};
use super::header::InstanceHeader;
use super::open::{Extent, open_object};
use super::series::Stack;

/// Most segments a segmentation draws (display values 1..=255 of an 8-bit label map); the
/// rest are listed and left out.
pub const MAX_SEGMENTS: usize = 255;

/// SOP classes read here.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
pub const PARAMETRIC_MAP_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.30";
pub const RT_STRUCTURE_SET_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.3";
pub const GRAYSCALE_PRESENTATION_STATE: &str = "1.2.840.10008.5.1.4.1.1.11.1";
/// Structured reports (Basic Text, Enhanced, Comprehensive, Comprehensive 3D) and Key Object
/// Selection documents.
pub const REPORT_CLASSES: [&str; 5] = [
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.88.59",
];

/// One segment as the object describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub number: u16,
    pub label: String,
    /// What it is (Segmented Property Type's code meaning), e.g. "Grey matter".
    pub property: Option<String>,
    /// Recommended display colour, converted from CIELab to sRGB.
    pub color: Option<[u8; 3]>,
    /// Voxels of the series it covers (overlaps included).
    pub voxels: usize,
}

/// A segmentation on a series' grid.
#[derive(Debug, Clone)]
pub struct PlacedSegmentation {
    /// "BINARY", "FRACTIONAL" (drawn where its value is at least half the maximum) or "LABELMAP".
    pub kind: String,
    /// Per voxel of the series: 1 + the index into `segments` of the segment drawn there, 0 none.
    /// Where segments overlap, the later one is drawn.
    pub labels: Vec<u8>,
    pub segments: Vec<Segment>,
    /// Voxels covered by more than one segment.
    pub overlap_voxels: usize,
    /// What was left out and why, for the reader.
    pub notes: Vec<String>,
}

/// A parametric map on a series' grid.
#[derive(Debug, Clone)]
pub struct PlacedMap {
    /// Real-world values per voxel of the series (NaN outside the map).
    pub values: Vec<f32>,
    /// What the values are and their units, e.g. "ADC (um2/s)".
    pub quantity: String,
    pub units: String,
    /// Share of the series' voxels the map covers.
    pub coverage: f64,
    pub notes: Vec<String>,
}

/// Where one frame lies: the centre of its first pixel, its row and column directions (unit)
/// and pixel spacing (between columns, between rows), in patient mm.
#[derive(Debug, Clone, Copy)]
struct Plane {
    position: Vec3,
    row: Vec3,
    column: Vec3,
    spacing: [f64; 2],
}

/// The grid a series' volume has: its geometry and size (columns, rows, slices).
pub struct Grid<'a> {
    pub geometry: &'a super::geometry::StackGeometry,
    pub dims: [usize; 3],
}

impl<'a> Grid<'a> {
    /// The grid of `stack` (one without a geometry has none).
    pub fn of(stack: &'a Stack) -> Option<Grid<'a>> {
        Some(Grid {
            geometry: stack.geometry.as_ref()?,
            dims: [stack.columns as usize, stack.rows as usize, stack.slices.len()],
        })
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

fn plane_of(header: &InstanceHeader, frame: usize) -> Result<Plane, String> {
    let info = header.frames.get(frame).ok_or_else(|| format!("frame {} has no functional groups", frame + 1))?;
    let (Some(position), Some(o), Some(s)) = (info.position, info.orientation, info.pixel_spacing) else {
        return Err(format!("frame {} has no plane position, orientation or pixel spacing", frame + 1));
    };
    if !position.iter().chain(&o).chain(&s).all(|v| v.is_finite()) || s[0] <= 0.0 || s[1] <= 0.0 {
        return Err(format!("frame {} has an unusable position, orientation or spacing", frame + 1));
    }
    // PixelSpacing is (between rows, between columns).
    Ok(Plane {
        position,
        row: [o[0], o[1], o[2]],
        column: [o[3], o[4], o[5]],
        spacing: [s[1], s[0]],
    })
}

/// Frames of one object that share an orientation, sorted along their normal, with the
/// tolerance within which a voxel belongs to a frame.
struct Frames {
    normal: Vec3,
    planes: Vec<Plane>,
    half_thickness: f64,
    columns: usize,
    rows: usize,
}

impl Frames {
    /// The planes of `frames` of `header`; refused when they do not share one orientation.
    fn new(header: &InstanceHeader, all: &[usize], grid: &Grid) -> Result<Frames, String> {
        let layout = header.pixels.as_ref().ok_or("it has no pixel data")?;
        let planes: Vec<Plane> = all.iter().map(|&f| plane_of(header, f)).collect::<Result<_, _>>()?;
        let first = planes.first().ok_or("it has no frames")?;
        let n = normal(&[first.row[0], first.row[1], first.row[2], first.column[0], first.column[1], first.column[2]]);
        if planes.iter().any(|p| dot(&p.row, &first.row) < 0.9999 || dot(&p.column, &first.column) < 0.9999) {
            return Err("its frames do not share one orientation".into());
        }
        let mut ds: Vec<f64> = planes.iter().map(|p| dot(&p.position, &n)).collect();
        ds.sort_by(f64::total_cmp);
        ds.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
        let gaps: Vec<f64> = ds.windows(2).map(|w| w[1] - w[0]).collect();
        let thickness = header.frames.first().and_then(|f| f.slice_thickness).filter(|t| *t > 0.0);
        let spacing = if gaps.is_empty() {
            thickness.unwrap_or(grid.geometry.spacing[2])
        } else {
            let mut g = gaps.clone();
            g.sort_by(f64::total_cmp);
            g[g.len() / 2]
        };
        Ok(Frames {
            normal: n,
            planes,
            half_thickness: spacing / 2.0 + 1e-3,
            columns: layout.columns as usize,
            rows: layout.rows as usize,
        })
    }

    /// Calls `visit(voxel, frame, pixel)` for each voxel of `grid` that a frame among `group`
    /// (indices into the planes) covers: the nearest such frame along the normal, the nearest
    /// pixel in it. Marks in `hit` the frames that covered a voxel.
    fn sample(&self, grid: &Grid, group: &[usize], hit: &mut [bool], mut visit: impl FnMut(usize, usize, usize)) {
        let mut along: Vec<(f64, usize)> = group.iter().map(|&f| (dot(&self.planes[f].position, &self.normal), f)).collect();
        along.sort_by(|a, b| a.0.total_cmp(&b.0));
        if along.is_empty() {
            return;
        }
        let g = grid.geometry;
        let [nx, ny, nz] = grid.dims;
        let step: Vec3 = std::array::from_fn(|a| g.row_direction[a] * g.spacing[0]);
        let d_step = dot(&step, &self.normal);
        let nearest = |d: f64| -> Option<usize> {
            let at = along.partition_point(|(x, _)| *x < d);
            let mut best: Option<(f64, usize)> = None;
            for c in [at.wrapping_sub(1), at] {
                if let Some(&(x, f)) = along.get(c) {
                    let off = (x - d).abs();
                    if off <= self.half_thickness && best.is_none_or(|(b, _)| off < b) {
                        best = Some((off, f));
                    }
                }
            }
            best.map(|(_, f)| f)
        };
        for k in 0..nz {
            for j in 0..ny {
                let p0 = g.voxel_to_patient(0.0, j as f64, k as f64);
                let d0 = dot(&p0, &self.normal);
                // In the common case the series' rows lie in the frames' planes: one frame a row.
                let row_frame = (d_step.abs() < 1e-6).then(|| nearest(d0));
                if row_frame == Some(None) {
                    continue;
                }
                if let Some(Some(f)) = row_frame {
                    // One frame for the whole row: its pixel coordinates change by a fixed
                    // step along the row.
                    let plane = &self.planes[f];
                    let rel = sub(&p0, &plane.position);
                    let (u0, v0) = (dot(&rel, &plane.row) / plane.spacing[0], dot(&rel, &plane.column) / plane.spacing[1]);
                    let (du, dv) = (dot(&step, &plane.row) / plane.spacing[0], dot(&step, &plane.column) / plane.spacing[1]);
                    let base = nx * (j + ny * k);
                    // Nearest pixel: + 0.5 then truncation (a call to round() per voxel costs
                    // as much as the rest of the loop).
                    let (u0, v0) = (u0 + 0.5, v0 + 0.5);
                    for i in 0..nx {
                        let (u, v) = (u0 + du * i as f64, v0 + dv * i as f64);
                        if u >= 0.0 && v >= 0.0 {
                            let (u, v) = (u as usize, v as usize);
                            if u < self.columns && v < self.rows {
                                hit[f] = true;
                                visit(base + i, f, u + self.columns * v);
                            }
                        }
                    }
                    continue;
                }
                for i in 0..nx {
                    let Some(f) = nearest(d0 + d_step * i as f64) else { continue };
                    let plane = &self.planes[f];
                    let p: Vec3 = std::array::from_fn(|a| p0[a] + step[a] * i as f64);
                    let rel = sub(&p, &plane.position);
                    let u = (dot(&rel, &plane.row) / plane.spacing[0]).round();
                    let v = (dot(&rel, &plane.column) / plane.spacing[1]).round();
                    if u >= 0.0 && v >= 0.0 && (u as usize) < self.columns && (v as usize) < self.rows {
                        hit[f] = true;
                        visit(i + nx * (j + ny * k), f, u as usize + self.columns * v as usize);
                    }
                }
            }
        }
    }
}

/// DICOM's scaled CIELab (PS3.3 C.10.7.1.1: L 0..100, a and b −128..127, each over 0..65535)
/// to sRGB, D65 white.
pub fn cielab_to_srgb(lab: [u16; 3]) -> [u8; 3] {
    let l = f64::from(lab[0]) * 100.0 / 65535.0;
    let a = f64::from(lab[1]) * 255.0 / 65535.0 - 128.0;
    let b = f64::from(lab[2]) * 255.0 / 65535.0 - 128.0;
    let fy = (l + 16.0) / 116.0;
    let (fx, fz) = (fy + a / 500.0, fy - b / 200.0);
    let delta: f64 = 6.0 / 29.0;
    let inv = |t: f64| if t > delta { t * t * t } else { 3.0 * delta * delta * (t - 4.0 / 29.0) };
    let (x, y, z) = (0.950_456 * inv(fx), inv(fy), 1.088_754 * inv(fz));
    let linear = [
        3.240_454_2 * x - 1.537_138_5 * y - 0.498_531_4 * z,
        -0.969_266_0 * x + 1.876_010_8 * y + 0.041_556_0 * z,
        0.055_643_4 * x - 0.204_025_9 * y + 1.057_225_2 * z,
    ];
    linear.map(|c| {
        let c = c.clamp(0.0, 1.0);
        let s = if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 };
        (s * 255.0).round() as u8
    })
}

fn code_meaning(obj: &Object, sequence: dicom_core::Tag) -> Option<String> {
    attrs::item(obj, sequence).and_then(|c| attrs::string(c, tags::CODE_MEANING))
}

/// The segment each frame belongs to (Segment Identification in its functional groups).
fn frame_segments(obj: &Object, frames: usize) -> Vec<Option<u16>> {
    let shared = attrs::item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|g| attrs::item(g, tags::SEGMENT_IDENTIFICATION_SEQUENCE))
        .and_then(|s| attrs::u16(s, tags::REFERENCED_SEGMENT_NUMBER));
    let per_frame = attrs::items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    (0..frames)
        .map(|i| {
            per_frame
                .get(i)
                .and_then(|g| attrs::item(g, tags::SEGMENT_IDENTIFICATION_SEQUENCE))
                .and_then(|s| attrs::u16(s, tags::REFERENCED_SEGMENT_NUMBER))
                .or(shared)
        })
        .collect()
}

fn opened(header: &InstanceHeader) -> Result<dicom_object::DefaultDicomObject, String> {
    open_object(&header.path, Extent::WithPixels)
        .map_err(|e| super::error_chain(&e))?
        .ok_or_else(|| "not a DICOM file".to_string())
}

/// Checks what the header says of its frames against the pixel data before anything is
/// allocated for them (a lying NumberOfFrames is named).
fn checked_frames(header: &InstanceHeader) -> Result<usize, String> {
    let layout = header.pixels.as_ref().ok_or("it has no pixel data")?;
    super::decode::check_plausible(header).map_err(|e| format!("it says it holds {} frames: {e}", layout.frames))?;
    Ok(layout.frames as usize)
}

/// The values of `frames` (in that order, `pixels` each) made `T` by `convert(frame, value)`,
/// decoded 64 frames at a time so that only the converted values are kept.
fn frames_as<T: Clone>(
    obj: &dicom_object::DefaultDicomObject,
    header: &InstanceHeader,
    frames: &[usize],
    pixels: usize,
    convert: impl Fn(usize, f32) -> T,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(frames.len() * pixels);
    for chunk in frames.chunks(64) {
        let wanted: Vec<u32> = chunk.iter().map(|&f| f as u32).collect();
        let decoded = super::decode::decode_frames_of(obj, header, &wanted).map_err(|e| e.to_string())?;
        for (&f, frame) in chunk.iter().zip(decoded) {
            let before = out.len();
            out.extend(frame.values.iter().take(pixels).map(|&v| convert(f, v)));
            // A short frame keeps the others in their places.
            out.resize(before + pixels, convert(f, 0.0));
        }
    }
    Ok(out)
}

/// Reads a DICOM Segmentation and places it onto `grid`.
pub fn read_segmentation(header: &InstanceHeader, grid: &Grid) -> Result<PlacedSegmentation, String> {
    let frames = checked_frames(header)?;
    let obj = opened(header)?;
    let kind = attrs::string(&obj, tags::SEGMENTATION_TYPE).unwrap_or_else(|| "BINARY".into()).to_uppercase();
    let max = match kind.as_str() {
        "FRACTIONAL" => attrs::float(&obj, tags::MAXIMUM_FRACTIONAL_VALUE).filter(|m| *m > 0.0).unwrap_or(255.0),
        "BINARY" | "LABELMAP" => 1.0,
        other => return Err(format!("segmentation type {other} is not one Focal reads")),
    };
    let mut notes = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let listed = attrs::items(&obj, tags::SEGMENT_SEQUENCE);
    for item in listed {
        let Some(number) = attrs::u16(item, tags::SEGMENT_NUMBER) else {
            notes.push("a segment without a number was left out".into());
            continue;
        };
        if segments.len() == MAX_SEGMENTS {
            notes.push(format!(
                "{} segments: the first {MAX_SEGMENTS} are drawn, the rest left out",
                listed.len()
            ));
            break;
        }
        let color = attrs::floats(item, tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE)
            .filter(|v| v.len() == 3)
            .map(|v| cielab_to_srgb([0, 1, 2].map(|i| v[i].clamp(0.0, 65535.0) as u16)));
        segments.push(Segment {
            number,
            label: attrs::string(item, tags::SEGMENT_LABEL).unwrap_or_else(|| format!("Segment {number}")),
            property: code_meaning(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE),
            color,
            voxels: 0,
        });
    }
    if segments.is_empty() {
        return Err("it lists no segments".into());
    }
    let of_frame = frame_segments(&obj, frames);
    let all: Vec<usize> = (0..frames).collect();
    let planes = Frames::new(header, &all, grid)?;
    let mut labels = vec![0u8; grid.len()];
    let mut hit = vec![false; frames];
    let mut overlap_voxels = 0usize;
    let unknown = if kind == "LABELMAP" { 0 } else { of_frame.iter().filter(|s| s.is_none_or(|n| !segments.iter().any(|x| x.number == n))).count() };
    if unknown > 0 {
        notes.push(format!("{unknown} frame(s) name no listed segment and were left out"));
    }
    let pixels = planes.columns * planes.rows;
    if kind == "LABELMAP" {
        // One set of frames whose pixel values are segment numbers.
        let index_of: std::collections::HashMap<u16, u8> =
            segments.iter().enumerate().map(|(i, s)| (s.number, (i + 1) as u8)).collect();
        let stored = frames_as(&obj, header, &all, pixels, |_, v| index_of.get(&(v.max(0.0) as u16)).copied().unwrap_or(0))?;
        let mut counts = vec![0usize; segments.len() + 1];
        planes.sample(grid, &all, &mut hit, |voxel, frame, pixel| {
            let v = stored[frame * pixels + pixel];
            labels[voxel] = v;
            counts[usize::from(v)] += 1;
        });
        for (i, s) in segments.iter_mut().enumerate() {
            s.voxels = counts[i + 1];
        }
    }
    for (index, segment) in segments.iter_mut().enumerate().filter(|_| kind != "LABELMAP") {
        let group: Vec<usize> = (0..frames).filter(|&f| of_frame[f] == Some(segment.number)).collect();
        if group.is_empty() {
            continue;
        }
        // One segment's frames at a time, a bit a pixel, so memory stays bounded.
        let bits = frames_as(&obj, header, &group, pixels, |_, v| f64::from(v) >= max * 0.5)
            .map_err(|e| format!("segment {} ({}): {e}", segment.number, segment.label))?;
        // Each frame's place among the segment's (usize::MAX: not the segment's).
        let mut slot = vec![usize::MAX; frames];
        for (s, &f) in group.iter().enumerate() {
            slot[f] = s;
        }
        let value = (index + 1) as u8;
        let mut voxels = 0usize;
        planes.sample(grid, &group, &mut hit, |voxel, frame, pixel| {
            if bits[slot[frame] * pixels + pixel] {
                voxels += 1;
                if labels[voxel] != 0 && labels[voxel] != value {
                    overlap_voxels += 1;
                }
                labels[voxel] = value;
            }
        });
        segment.voxels = voxels;
    }
    let outside = (0..frames).filter(|&f| !hit[f] && (kind == "LABELMAP" || of_frame[f].is_some())).count();
    if outside > 0 {
        notes.push(format!("{outside} frame(s) lie outside the series and are not shown"));
    }
    if overlap_voxels > 0 {
        notes.push(format!("segments overlap in {overlap_voxels} voxel(s); the later segment is drawn there"));
    }
    Ok(PlacedSegmentation {
        kind,
        labels,
        segments,
        overlap_voxels,
        notes,
    })
}

/// Reads a Parametric Map (float or integer pixels, through its Real World Value Mapping) and
/// places it onto `grid`.
pub fn read_parametric_map(header: &InstanceHeader, grid: &Grid) -> Result<PlacedMap, String> {
    let frames = checked_frames(header)?;
    let obj = opened(header)?;
    let mapping_of = |group: &Object| {
        attrs::item(group, tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE).map(|m| {
            let slope = attrs::float(m, tags::REAL_WORLD_VALUE_SLOPE).unwrap_or(1.0);
            let intercept = attrs::float(m, tags::REAL_WORLD_VALUE_INTERCEPT).unwrap_or(0.0);
            // UCUM's code is the unit as written ("mm2/s"); "1" is no unit at all.
            let units = attrs::item(m, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)
                .and_then(|c| attrs::string(c, tags::CODE_VALUE).or_else(|| attrs::string(c, tags::CODE_MEANING)))
                .filter(|u| u != "1")
                .unwrap_or_default();
            let label = attrs::string(m, tags::LUT_EXPLANATION).or_else(|| attrs::string(m, tags::LUT_LABEL));
            (slope, intercept, units, label)
        })
    };
    let shared = attrs::item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|g| mapping_of(g));
    let per_frame = attrs::items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let mappings: Vec<_> = (0..frames)
        .map(|i| per_frame.get(i).and_then(|g| mapping_of(g)).or_else(|| shared.clone()))
        .collect();
    let first = mappings.iter().flatten().next().cloned();
    let (units, quantity) = match &first {
        Some((_, _, u, l)) => (u.clone(), l.clone()),
        None => (String::new(), None),
    };
    let quantity = quantity
        .or_else(|| attrs::string(&obj, tags::SERIES_DESCRIPTION))
        .unwrap_or_else(|| "Parametric map".into());
    let mut notes = Vec::new();
    if first.is_none() {
        notes.push("it has no Real World Value Mapping; stored values are shown".into());
    }
    let all: Vec<usize> = (0..frames).collect();
    let planes = Frames::new(header, &all, grid)?;
    let pixels = planes.columns * planes.rows;
    let mut values = vec![f32::NAN; grid.len()];
    let mut hit = vec![false; frames];
    let stored = frames_as(&obj, header, &all, pixels, |f, v| {
        let (slope, intercept) = mappings[f].as_ref().map_or((1.0, 0.0), |(s, i, _, _)| (*s, *i));
        (f64::from(v) * slope + intercept) as f32
    })?;
    let mut covered = 0usize;
    planes.sample(grid, &all, &mut hit, |voxel, frame, pixel| {
        values[voxel] = stored[frame * pixels + pixel];
        covered += 1;
    });
    let outside = hit.iter().filter(|h| !**h).count();
    if outside > 0 {
        notes.push(format!("{outside} frame(s) lie outside the series and are not shown"));
    }
    Ok(PlacedMap {
        values,
        quantity,
        units,
        coverage: covered as f64 / grid.len().max(1) as f64,
        notes,
    })
}

/// Reads an RT Structure Set and rasterises its ROIs' closed planar contours onto `grid`: each
/// contour lies on the slice nearest its points, and a voxel is inside when its centre is
/// (contours of one ROI on one slice combine by the even-odd rule, so an inner contour is a
/// hole). Each ROI becomes a segment, in its display colour.
pub fn read_structure_set(header: &InstanceHeader, grid: &Grid) -> Result<PlacedSegmentation, String> {
    let obj = open_object(&header.path, Extent::Header)
        .map_err(|e| super::error_chain(&e))?
        .ok_or_else(|| "not a DICOM file".to_string())?;
    let to_voxel = super::reformat::PatientToVoxel::new(grid.geometry).ok_or("the series' geometry cannot be inverted")?;
    let [nx, ny, nz] = grid.dims;
    let mut notes = Vec::new();
    let rois = attrs::items(&obj, tags::STRUCTURE_SET_ROI_SEQUENCE);
    let contours = attrs::items(&obj, tags::ROI_CONTOUR_SEQUENCE);
    if rois.is_empty() {
        return Err("it lists no ROIs".into());
    }
    let mut segments = Vec::new();
    let mut labels = vec![0u8; grid.len()];
    let mut overlap_voxels = 0usize;
    let (mut bad_points, mut off_plane, mut outside, mut not_closed) = (0usize, 0usize, 0usize, 0usize);
    for roi in rois {
        let Some(number) = attrs::int(roi, tags::ROI_NUMBER) else {
            notes.push("an ROI without a number was left out".into());
            continue;
        };
        if segments.len() == MAX_SEGMENTS {
            notes.push(format!("{} ROIs: the first {MAX_SEGMENTS} are drawn, the rest left out", rois.len()));
            break;
        }
        let name = attrs::string(roi, tags::ROI_NAME).unwrap_or_else(|| format!("ROI {number}"));
        let mine = contours.iter().find(|c| attrs::int(c, tags::REFERENCED_ROI_NUMBER) == Some(number));
        let color = mine
            .and_then(|c| attrs::floats(c, tags::ROI_DISPLAY_COLOR))
            .filter(|v| v.len() == 3)
            .map(|v| [0, 1, 2].map(|i| v[i].clamp(0.0, 255.0) as u8));
        let value = (segments.len() + 1) as u8;
        // Per slice, the ROI's inside by the even-odd rule over all its contours there.
        let mut mask: std::collections::HashMap<usize, Vec<bool>> = std::collections::HashMap::new();
        for c in mine.map(|c| attrs::items(c, tags::CONTOUR_SEQUENCE)).unwrap_or(&[]) {
            let kind = attrs::string(c, tags::CONTOUR_GEOMETRIC_TYPE).unwrap_or_default();
            if kind != "CLOSED_PLANAR" {
                not_closed += 1;
                continue;
            }
            // Non-finite coordinates make the whole list unreadable (attrs refuses them).
            let Some(data) = attrs::floats(c, tags::CONTOUR_DATA).filter(|d| d.len() >= 9 && d.len() % 3 == 0) else {
                bad_points += 1;
                continue;
            };
            let voxels: Vec<Vec3> = data.chunks(3).map(|p| to_voxel.apply(&[p[0], p[1], p[2]])).collect();
            let mean_k = voxels.iter().map(|v| v[2]).sum::<f64>() / voxels.len() as f64;
            if voxels.iter().any(|v| (v[2] - mean_k).abs() > 0.5) {
                off_plane += 1;
            }
            let k = mean_k.round();
            if k < 0.0 || k >= nz as f64 {
                outside += 1;
                continue;
            }
            let polygon: Vec<[f64; 2]> = voxels.iter().map(|v| [v[0], v[1]]).collect();
            let (lo_x, hi_x) = polygon.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p[0]), b.max(p[0])));
            let (lo_y, hi_y) = polygon.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p[1]), b.max(p[1])));
            let plane = mask.entry(k as usize).or_insert_with(|| vec![false; nx * ny]);
            let (i0, i1) = (lo_x.ceil().max(0.0) as usize, (hi_x.floor().min(nx as f64 - 1.0)).max(-1.0));
            let (j0, j1) = (lo_y.ceil().max(0.0) as usize, (hi_y.floor().min(ny as f64 - 1.0)).max(-1.0));
            if i1 < 0.0 || j1 < 0.0 {
                continue;
            }
            for j in j0..=j1 as usize {
                for i in i0..=i1 as usize {
                    if super::geometry::inside_polygon(&polygon, i as f64, j as f64) {
                        plane[i + nx * j] ^= true;
                    }
                }
            }
        }
        let mut voxels = 0usize;
        for (k, plane) in mask {
            for (p, _) in plane.iter().enumerate().filter(|(_, inside)| **inside) {
                let at = k * nx * ny + p;
                if labels[at] != 0 {
                    overlap_voxels += 1;
                }
                labels[at] = value;
                voxels += 1;
            }
        }
        segments.push(Segment {
            number: u16::try_from(number).unwrap_or(u16::MAX),
            label: name,
            property: None,
            color,
            voxels,
        });
    }
    if bad_points > 0 {
        notes.push(format!("{bad_points} contour(s) with missing or non-finite points left out"));
    }
    if not_closed > 0 {
        notes.push(format!("{not_closed} contour(s) not closed and planar (points, open lines) not drawn"));
    }
    if outside > 0 {
        notes.push(format!("{outside} contour(s) lie outside the series and are not shown"));
    }
    if off_plane > 0 {
        notes.push(format!("{off_plane} contour(s) do not lie in the series' slices; each is drawn on its nearest slice"));
    }
    if overlap_voxels > 0 {
        notes.push(format!("ROIs overlap in {overlap_voxels} voxel(s); the later ROI is drawn there"));
    }
    Ok(PlacedSegmentation {
        kind: "RTSTRUCT".into(),
        labels,
        segments,
        overlap_voxels,
        notes,
    })
}

/// A region of an image a report points at: the image (SOP instance, frame) and the SCOORD
/// graphic there, in its pixel coordinates (top left corner of the first pixel at 0, 0).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRegion {
    pub image: String,
    pub frame: Option<u32>,
    pub graphic_type: String,
    pub points: Vec<[f64; 2]>,
}

impl ReportRegion {
    /// Points along what the region draws, at most `step` pixels apart: a polyline's segments,
    /// an ellipse's or circle's outline, a point or points as themselves.
    pub fn outline(&self, step: f64) -> Vec<[f64; 2]> {
        let step = step.max(0.05);
        let p = &self.points;
        let along = |a: [f64; 2], b: [f64; 2], out: &mut Vec<[f64; 2]>| {
            let n = ((b[0] - a[0]).hypot(b[1] - a[1]) / step).ceil().clamp(1.0, 100_000.0) as usize;
            out.extend((0..=n).map(|i| {
                let t = i as f64 / n as f64;
                [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
            }));
        };
        let round = |c: [f64; 2], u: [f64; 2], v: [f64; 2]| -> Vec<[f64; 2]> {
            // u and v are the semi-axes as vectors.
            let perimeter = 2.0 * std::f64::consts::PI * u[0].hypot(u[1]).max(v[0].hypot(v[1]));
            let n = (perimeter / step).ceil().clamp(8.0, 100_000.0) as usize;
            (0..=n)
                .map(|i| {
                    let t = i as f64 / n as f64 * std::f64::consts::TAU;
                    [c[0] + u[0] * t.cos() + v[0] * t.sin(), c[1] + u[1] * t.cos() + v[1] * t.sin()]
                })
                .collect()
        };
        match self.graphic_type.as_str() {
            "POLYLINE" | "POLYGON" => {
                let mut out = Vec::new();
                for w in p.windows(2) {
                    along(w[0], w[1], &mut out);
                }
                if self.graphic_type == "POLYGON" && p.len() > 2 {
                    along(p[p.len() - 1], p[0], &mut out);
                }
                out
            }
            "ELLIPSE" if p.len() == 4 => {
                let c = [(p[0][0] + p[1][0]) / 2.0, (p[0][1] + p[1][1]) / 2.0];
                let u = [(p[1][0] - p[0][0]) / 2.0, (p[1][1] - p[0][1]) / 2.0];
                let v = [(p[3][0] - p[2][0]) / 2.0, (p[3][1] - p[2][1]) / 2.0];
                round(c, u, v)
            }
            "CIRCLE" if p.len() == 2 => {
                let r = (p[1][0] - p[0][0]).hypot(p[1][1] - p[0][1]);
                round(p[0], [r, 0.0], [0.0, r])
            }
            _ => p.clone(),
        }
    }
}

/// One group of a report: a measurement group's tracking identifier (or what it is), its
/// values as text ("Area 754 mm2", "Finding: Gray Matter"), and the image region it was
/// measured on, where it gives one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportGroup {
    pub title: String,
    pub values: Vec<String>,
    pub regions: Vec<ReportRegion>,
}

/// A structured report or key object selection, as a reader lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The document's title (its root concept), e.g. "Imaging Measurement Report".
    pub title: String,
    pub groups: Vec<ReportGroup>,
    pub notes: Vec<String>,
    /// The display window it asks for (a presentation state's VOI), centre and width.
    pub window: Option<[f64; 2]>,
}

/// Most content items read from one report, whatever it holds.
const MAX_REPORT_ITEMS: usize = 100_000;

fn concept(item: &Object) -> String {
    code_meaning(item, tags::CONCEPT_NAME_CODE_SEQUENCE).unwrap_or_else(|| "(unnamed)".into())
}

/// One content item's value as text, when it has one worth listing.
fn item_text(item: &Object) -> Option<String> {
    let name = concept(item);
    match attrs::string(item, tags::VALUE_TYPE)?.as_str() {
        "NUM" => {
            let measured = attrs::item(item, tags::MEASURED_VALUE_SEQUENCE)?;
            let value = attrs::float(measured, tags::NUMERIC_VALUE)
                .or_else(|| attrs::float(measured, tags::FLOATING_POINT_VALUE))?;
            let unit = attrs::item(measured, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)
                .and_then(|c| attrs::string(c, tags::CODE_VALUE))
                .filter(|u| u != "1")
                .unwrap_or_default();
            Some(format!("{name} {} {unit}", short(value)).trim_end().to_string())
        }
        "CODE" => Some(format!("{name}: {}", code_meaning(item, tags::CONCEPT_CODE_SEQUENCE)?)),
        "TEXT" => Some(format!("{name}: {}", attrs::string(item, tags::TEXT_VALUE)?)),
        _ => None,
    }
}

/// A number as a reader reads it: at most 4 significant decimals, no trailing zeros.
fn short(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn region_of(item: &Object, notes: &mut Vec<String>) -> Option<ReportRegion> {
    let graphic_type = attrs::string(item, tags::GRAPHIC_TYPE)?;
    let Some(data) = attrs::floats(item, tags::GRAPHIC_DATA).filter(|d| d.len() >= 2 && d.len() % 2 == 0) else {
        notes.push(format!("a {graphic_type} region with missing or non-finite points is not drawn"));
        return None;
    };
    let image = attrs::items(item, tags::CONTENT_SEQUENCE)
        .iter()
        .filter_map(|c| attrs::item(c, tags::REFERENCED_SOP_SEQUENCE))
        .next()?;
    Some(ReportRegion {
        image: attrs::string(image, tags::REFERENCED_SOP_INSTANCE_UID)?,
        frame: attrs::int(image, tags::REFERENCED_FRAME_NUMBER).and_then(|f| u32::try_from(f).ok()),
        graphic_type,
        points: data.chunks(2).map(|p| [p[0], p[1]]).collect(),
    })
}

/// Reads a structured report: each measurement group (TID 1500's, or any container holding
/// values) with its values and image regions; a Key Object Selection as the images it names.
pub fn read_report(header: &InstanceHeader) -> Result<Report, String> {
    let obj = open_object(&header.path, Extent::Header)
        .map_err(|e| super::error_chain(&e))?
        .ok_or_else(|| "not a DICOM file".to_string())?;
    let title = concept(&obj);
    let mut notes = Vec::new();
    let mut groups = Vec::new();
    let mut seen = 0usize;
    // Depth-first over containers; a container's own values (not its sub-containers') are one
    // group.
    fn walk(container: &Object, depth: usize, seen: &mut usize, groups: &mut Vec<ReportGroup>, notes: &mut Vec<String>) {
        let items = attrs::items(container, tags::CONTENT_SEQUENCE);
        let mut group = ReportGroup { title: String::new(), values: Vec::new(), regions: Vec::new() };
        for item in items {
            *seen += 1;
            if *seen > MAX_REPORT_ITEMS {
                return;
            }
            match attrs::string(item, tags::VALUE_TYPE).as_deref() {
                Some("CONTAINER") if depth < 8 => walk(item, depth + 1, seen, groups, notes),
                Some("SCOORD") => group.regions.extend(region_of(item, notes)),
                Some("SCOORD3D") => notes.push("a region in patient coordinates (SCOORD3D) is listed, not drawn".into()),
                // An image named whole (a key image, a referenced segment's SEG): a region
                // without points.
                Some("IMAGE") => {
                    if let Some(r) = attrs::item(item, tags::REFERENCED_SOP_SEQUENCE)
                        && let Some(image) = attrs::string(r, tags::REFERENCED_SOP_INSTANCE_UID)
                    {
                        group.regions.push(ReportRegion {
                            image,
                            frame: attrs::int(r, tags::REFERENCED_FRAME_NUMBER).and_then(|f| u32::try_from(f).ok()),
                            graphic_type: "IMAGE".into(),
                            points: Vec::new(),
                        });
                    }
                }
                Some(_) => {
                    let relationship = attrs::string(item, tags::RELATIONSHIP_TYPE).unwrap_or_default();
                    if concept(item) == "Tracking Identifier" {
                        group.title = attrs::string(item, tags::TEXT_VALUE).unwrap_or_default();
                    } else if relationship == "CONTAINS"
                        && let Some(text) = item_text(item)
                    {
                        // What the document says, not its context (language, observer).
                        group.values.push(text);
                    }
                }
                None => {}
            }
        }
        if !group.values.is_empty() || !group.regions.is_empty() {
            if group.title.is_empty() {
                group.title = concept(container);
            }
            groups.push(group);
        }
    }
    walk(&obj, 0, &mut seen, &mut groups, &mut notes);
    if seen > MAX_REPORT_ITEMS {
        notes.push(format!("more than {MAX_REPORT_ITEMS} content items: the rest are not listed"));
    }
    notes.sort();
    notes.dedup();
    Ok(Report { title, groups, notes, window: None })
}

/// Reads a Grayscale Softcopy Presentation State: its graphic annotations by layer (graphics in
/// image pixels as regions on the images they name, text as values), the window it sets; what
/// Focal's views do not apply (rotation, flip, a displayed area, display-relative annotations)
/// is named.
pub fn read_presentation_state(header: &InstanceHeader) -> Result<Report, String> {
    let obj = open_object(&header.path, Extent::Header)
        .map_err(|e| super::error_chain(&e))?
        .ok_or_else(|| "not a DICOM file".to_string())?;
    let mut notes = Vec::new();
    let mut groups: Vec<ReportGroup> = Vec::new();
    let images_of = |item: &Object| -> Vec<(String, Option<u32>)> {
        attrs::items(item, tags::REFERENCED_IMAGE_SEQUENCE)
            .iter()
            .filter_map(|r| {
                let uid = attrs::string(r, tags::REFERENCED_SOP_INSTANCE_UID)?;
                Some((uid, attrs::int(r, tags::REFERENCED_FRAME_NUMBER).and_then(|f| u32::try_from(f).ok())))
            })
            .collect()
    };
    let (mut display_units, mut bad) = (0usize, 0usize);
    for annotation in attrs::items(&obj, tags::GRAPHIC_ANNOTATION_SEQUENCE).iter().take(MAX_REPORT_ITEMS) {
        let layer = attrs::string(annotation, tags::GRAPHIC_LAYER).unwrap_or_else(|| "annotations".into());
        let images = images_of(annotation);
        let at = match groups.iter().position(|g| g.title == layer) {
            Some(i) => i,
            None => {
                groups.push(ReportGroup { title: layer.clone(), values: Vec::new(), regions: Vec::new() });
                groups.len() - 1
            }
        };
        for g in attrs::items(annotation, tags::GRAPHIC_OBJECT_SEQUENCE) {
            if attrs::string(g, tags::GRAPHIC_ANNOTATION_UNITS).as_deref() != Some("PIXEL") {
                display_units += 1;
                continue;
            }
            let Some(data) = attrs::floats(g, tags::GRAPHIC_DATA).filter(|d| d.len() >= 2 && d.len() % 2 == 0) else {
                bad += 1;
                continue;
            };
            let graphic_type = attrs::string(g, tags::GRAPHIC_TYPE).unwrap_or_else(|| "POLYLINE".into());
            for (image, frame) in &images {
                groups[at].regions.push(ReportRegion {
                    image: image.clone(),
                    frame: *frame,
                    graphic_type: graphic_type.clone(),
                    points: data.chunks(2).map(|p| [p[0], p[1]]).collect(),
                });
            }
        }
        for t in attrs::items(annotation, tags::TEXT_OBJECT_SEQUENCE) {
            if let Some(text) = attrs::string(t, tags::UNFORMATTED_TEXT_VALUE) {
                groups[at].values.push(text);
            }
        }
    }
    if display_units > 0 {
        notes.push(format!("{display_units} graphic(s) placed relative to the display, not the image, are not drawn"));
    }
    if bad > 0 {
        notes.push(format!("{bad} graphic(s) with missing or non-finite points are not drawn"));
    }
    if attrs::string(&obj, tags::IMAGE_ROTATION).is_some_and(|r| r != "0") {
        notes.push(format!("it rotates the images by {}°, which Focal's views do not", attrs::string(&obj, tags::IMAGE_ROTATION).unwrap_or_default()));
    }
    if attrs::string(&obj, tags::IMAGE_HORIZONTAL_FLIP).as_deref() == Some("Y") {
        notes.push("it flips the images left to right, which Focal's views do not".into());
    }
    let voi = attrs::item(&obj, tags::SOFTCOPY_VOILUT_SEQUENCE);
    let window = voi.and_then(|v| Some([attrs::float(v, tags::WINDOW_CENTER)?, attrs::float(v, tags::WINDOW_WIDTH)?]));
    let title = attrs::string(&obj, tags::CONTENT_LABEL).unwrap_or_else(|| "Presentation state".into());
    groups.retain(|g| !g.values.is_empty() || !g.regions.is_empty());
    Ok(Report { title, groups, notes, window })
}

/// Refuses an object made in another frame of reference than the series (its patient
/// coordinates would mean another place).
pub fn check_frame_of_reference(object: &InstanceHeader, series: &Stack) -> Result<(), String> {
    let theirs = series.slices.first().and_then(|s| s.instance.frame_of_reference_uid.as_deref());
    match (object.frame_of_reference_uid.as_deref(), theirs) {
        (Some(a), Some(b)) if a != b => Err(
            "it lies in another frame of reference than the series (a de-identified copy has new UIDs: export with identifiers kept to show it over the original)".into(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cielab_colours_become_srgb() {
        // sRGB red is L* 53.24, a* 80.09, b* 67.20 under D65; white is L* 100, a* = b* = 0.
        let scale = |l: f64, a: f64, b: f64| {
            [
                (l / 100.0 * 65535.0).round() as u16,
                ((a + 128.0) / 255.0 * 65535.0).round() as u16,
                ((b + 128.0) / 255.0 * 65535.0).round() as u16,
            ]
        };
        let red = cielab_to_srgb(scale(53.24, 80.09, 67.20));
        assert!(red[0] >= 253 && red[1] <= 3 && red[2] <= 3, "{red:?}");
        assert_eq!(cielab_to_srgb(scale(100.0, 0.0, 0.0)), [255, 255, 255]);
        assert_eq!(cielab_to_srgb(scale(0.0, 0.0, 0.0)), [0, 0, 0]);
    }
}
