//! What one DICOM file says about itself, read without touching its pixel data.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::{tags, uids};
use serde::Serialize;

use super::attrs::{self, Object};

/// Patient identifiers: protected health information, never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PatientInfo {
    pub name: Option<String>,
    pub id: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// Linear modality transform: stored value × slope + intercept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    pub const IDENTITY: Rescale = Rescale {
        slope: 1.0,
        intercept: 0.0,
    };
}

/// A Modality LUT Sequence table: stored values are clamped to the table's range and looked up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalityTable {
    pub first_mapped: i64,
    #[serde(skip)]
    pub data: Vec<u16>,
}

/// How stored values become modality values (HU for CT).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ModalityLut {
    /// No modality transform in the file: stored values are the modality values.
    None,
    Rescale(Rescale),
    Table(ModalityTable),
}

impl ModalityLut {
    pub fn apply(&self, stored: f64) -> f64 {
        match self {
            ModalityLut::None => stored,
            ModalityLut::Rescale(r) => stored * r.slope + r.intercept,
            ModalityLut::Table(t) => {
                let last = t.data.len() as i64 - 1;
                let index = ((stored as i64) - t.first_mapped).clamp(0, last.max(0));
                t.data.get(index as usize).map_or(stored, |&v| f64::from(v))
            }
        }
    }
}

/// A display window in modality units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowLevel {
    pub center: f64,
    pub width: f64,
}

/// Geometry and value transform of one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameInfo {
    pub position: Option<[f64; 3]>,
    pub orientation: Option<[f64; 6]>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub modality_lut: ModalityLut,
    pub window: Option<WindowLevel>,
    /// Geometry or value elements present but unusable (non-finite, wrong count), for which
    /// nothing was read: e.g. "PixelSpacing".
    pub unreadable: Vec<&'static str>,
}

/// The Image Pixel module: how the pixel data is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PixelLayout {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub planar_configuration: u16,
    pub photometric: String,
}

impl PixelLayout {
    /// Bytes the decoded pixel data needs, or `None` if that does not fit in a u64.
    pub fn decoded_bytes(&self) -> Option<u64> {
        let bytes_per_sample = u64::from(self.bits_allocated.max(8)).div_ceil(8);
        u64::from(self.rows)
            .checked_mul(u64::from(self.columns))?
            .checked_mul(u64::from(self.frames))?
            .checked_mul(u64::from(self.samples_per_pixel))?
            .checked_mul(bytes_per_sample)
    }

    /// Bytes the native (uncompressed) encoding of this layout occupies.
    pub fn native_bytes(&self) -> Option<u64> {
        let samples = u64::from(self.rows)
            .checked_mul(u64::from(self.columns))?
            .checked_mul(u64::from(self.frames))?
            .checked_mul(u64::from(self.samples_per_pixel))?;
        if self.bits_allocated == 1 {
            Some(samples.div_ceil(8))
        } else {
            samples.checked_mul(u64::from(self.bits_allocated).div_ceil(8))
        }
    }

    pub fn is_color(&self) -> bool {
        self.samples_per_pixel == 3 || self.photometric == "PALETTE COLOR"
    }
}

/// Everything Focal needs from one file, read before its pixel data.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceHeader {
    pub path: PathBuf,
    pub file_size: u64,
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    #[serde(skip)]
    pub patient: PatientInfo,
    pub study_uid: String,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    #[serde(skip)]
    pub accession_number: Option<String>,
    pub series_uid: String,
    /// Series that share it share patient coordinates (FrameOfReferenceUID).
    pub frame_of_reference_uid: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub modality: Option<String>,
    /// Image Type as written (`ORIGINAL\PRIMARY\M`, `DERIVED\SECONDARY`…).
    pub image_type: Option<String>,
    /// The series an object written over images refers to (a SEG's, Parametric Map's or
    /// presentation state's Referenced Series, an SR's or KO's evidence, an RTSTRUCT's
    /// referenced series), in first-seen order.
    pub referenced_series: Vec<String>,
    pub instance_number: Option<i64>,
    pub body_part: Option<String>,
    pub gantry_tilt: Option<f64>,
    /// Whether ContrastBolusAgent (0018,0010) names an agent (the value itself is free text
    /// that de-identification blanks, so it is not kept).
    pub contrast_agent: bool,
    /// `None` for objects without an image (reports, plans, structure sets).
    pub pixels: Option<PixelLayout>,
    /// One entry per frame.
    pub frames: Vec<FrameInfo>,
}

impl InstanceHeader {
    /// Reads the header of a parsed object (pixel data, if present, is ignored).
    pub fn from_object(path: &Path, file_size: u64, transfer_syntax: &str, sop_class: &str, obj: &Object) -> Self {
        let s = |tag| attrs::string(obj, tag);
        let pixels = pixel_layout(obj);
        // Every stored frame takes at least 8 bytes (an item header, or its own pixels), so a
        // larger NumberOfFrames is a lie: never allocate per-frame records beyond that.
        let frame_count = (pixels.as_ref().map_or(0, |p| p.frames) as usize).min(max_frames(file_size) as usize);
        let frames = frame_infos(obj, frame_count);
        let study_uid = s(tags::STUDY_INSTANCE_UID).unwrap_or_default();
        let series_uid = s(tags::SERIES_INSTANCE_UID).unwrap_or_default();
        InstanceHeader {
            path: path.to_path_buf(),
            file_size,
            transfer_syntax: transfer_syntax.trim_end_matches('\0').to_string(),
            sop_class_uid: sop_class.trim_end_matches('\0').to_string(),
            sop_instance_uid: s(tags::SOP_INSTANCE_UID).unwrap_or_default(),
            patient: PatientInfo {
                name: s(tags::PATIENT_NAME),
                id: s(tags::PATIENT_ID),
                birth_date: s(tags::PATIENT_BIRTH_DATE),
                sex: s(tags::PATIENT_SEX),
            },
            study_uid,
            study_date: s(tags::STUDY_DATE),
            study_description: s(tags::STUDY_DESCRIPTION),
            accession_number: s(tags::ACCESSION_NUMBER),
            series_uid,
            frame_of_reference_uid: s(tags::FRAME_OF_REFERENCE_UID),
            series_number: attrs::int(obj, tags::SERIES_NUMBER),
            series_description: s(tags::SERIES_DESCRIPTION),
            modality: s(tags::MODALITY),
            image_type: s(tags::IMAGE_TYPE),
            referenced_series: referenced_series(obj),
            instance_number: attrs::int(obj, tags::INSTANCE_NUMBER),
            body_part: s(tags::BODY_PART_EXAMINED),
            gantry_tilt: attrs::float(obj, tags::GANTRY_DETECTOR_TILT),
            contrast_agent: s(tags::CONTRAST_BOLUS_AGENT)
                .is_some_and(|a| !matches!(a.trim().to_ascii_uppercase().as_str(), "" | "NONE" | "NO" | "N/A")),
            pixels,
            frames,
        }
    }

    pub fn is_dicomdir(&self) -> bool {
        self.sop_class_uid == uids::MEDIA_STORAGE_DIRECTORY_STORAGE
    }
}

/// Every SeriesInstanceUID under the sequences through which objects name the series they were
/// made over (at most four levels deep: RTSTRUCT's frame of reference → study → series).
fn referenced_series(obj: &Object) -> Vec<String> {
    fn walk(items: &[Object], depth: u32, out: &mut Vec<String>) {
        for item in items {
            if let Some(uid) = attrs::string(item, tags::SERIES_INSTANCE_UID)
                && !out.contains(&uid)
            {
                out.push(uid);
            }
            if depth < 4 {
                for tag in [
                    tags::REFERENCED_SERIES_SEQUENCE,
                    tags::RT_REFERENCED_STUDY_SEQUENCE,
                    tags::RT_REFERENCED_SERIES_SEQUENCE,
                ] {
                    walk(attrs::items(item, tag), depth + 1, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    for tag in [
        tags::REFERENCED_SERIES_SEQUENCE,
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
    ] {
        walk(attrs::items(obj, tag), 1, &mut out);
    }
    out
}

fn pixel_layout(obj: &Object) -> Option<PixelLayout> {
    let rows = attrs::u16(obj, tags::ROWS)?;
    let columns = attrs::u16(obj, tags::COLUMNS)?;
    let bits_allocated = attrs::u16(obj, tags::BITS_ALLOCATED)?;
    let frames = attrs::int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    Some(PixelLayout {
        rows: rows.into(),
        columns: columns.into(),
        frames: u32::try_from(frames).ok()?,
        samples_per_pixel: attrs::u16(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1),
        bits_allocated,
        bits_stored: attrs::u16(obj, tags::BITS_STORED).unwrap_or(bits_allocated),
        signed: attrs::u16(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        planar_configuration: attrs::u16(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0),
        photometric: attrs::string(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into()),
    })
}

/// Geometry and value transform as found in one data set (the root, or a functional group item).
#[derive(Default, Clone)]
struct Partial {
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    slice_thickness: Option<f64>,
    modality_lut: Option<ModalityLut>,
    window: Option<WindowLevel>,
    unreadable: Vec<&'static str>,
}

/// Adds to `names` those of `more` it does not hold yet (element names, in first-seen order).
pub(crate) fn add_names(names: &mut Vec<&'static str>, more: &[&'static str]) {
    for name in more {
        if !names.contains(name) {
            names.push(name);
        }
    }
}

/// The names of `tags` present in `obj` whose values could not be read as `count` finite numbers.
fn unreadable(obj: &Object, elements: &[(dicom_core::Tag, &'static str, usize)]) -> Vec<&'static str> {
    elements
        .iter()
        .filter(|(tag, _, count)| {
            // An empty element is absent, not unreadable.
            let has_value = obj.get(*tag).and_then(|e| e.to_bytes().ok()).is_some_and(|b| {
                b.iter().any(|c| !c.is_ascii_whitespace() && *c != 0 && *c != b'\\')
            });
            has_value && attrs::floats(obj, *tag).is_none_or(|v| v.len() < *count)
        })
        .map(|(_, name, _)| *name)
        .collect()
}

impl Partial {
    /// From the root data set (classic single-frame objects).
    fn from_root(obj: &Object) -> Self {
        Partial {
            position: attrs::vector(obj, tags::IMAGE_POSITION_PATIENT),
            orientation: attrs::vector(obj, tags::IMAGE_ORIENTATION_PATIENT),
            pixel_spacing: attrs::vector(obj, tags::PIXEL_SPACING)
                .or_else(|| attrs::vector(obj, tags::IMAGER_PIXEL_SPACING)),
            slice_thickness: attrs::float(obj, tags::SLICE_THICKNESS),
            modality_lut: modality_lut(obj),
            window: window(obj),
            unreadable: unreadable(
                obj,
                &[
                    (tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3),
                    (tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient", 6),
                    (tags::PIXEL_SPACING, "PixelSpacing", 2),
                    (tags::RESCALE_SLOPE, "RescaleSlope", 1),
                    (tags::RESCALE_INTERCEPT, "RescaleIntercept", 1),
                ],
            ),
        }
    }

    /// From a functional groups item (shared or per-frame) of an Enhanced object.
    fn from_functional_groups(group: &Object) -> Self {
        let inner = |seq| attrs::item(group, seq);
        let measures = inner(tags::PIXEL_MEASURES_SEQUENCE);
        Partial {
            position: inner(tags::PLANE_POSITION_SEQUENCE).and_then(|i| attrs::vector(i, tags::IMAGE_POSITION_PATIENT)),
            orientation: inner(tags::PLANE_ORIENTATION_SEQUENCE)
                .and_then(|i| attrs::vector(i, tags::IMAGE_ORIENTATION_PATIENT)),
            pixel_spacing: measures.and_then(|i| attrs::vector(i, tags::PIXEL_SPACING)),
            slice_thickness: measures.and_then(|i| attrs::float(i, tags::SLICE_THICKNESS)),
            modality_lut: inner(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE).and_then(modality_lut),
            window: inner(tags::FRAME_VOILUT_SEQUENCE).and_then(window),
            unreadable: [
                (tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient", 3),
                (tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient", 6),
                (tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING, "PixelSpacing", 2),
                (tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tags::RESCALE_SLOPE, "RescaleSlope", 1),
                (tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tags::RESCALE_INTERCEPT, "RescaleIntercept", 1),
            ]
            .into_iter()
            .filter_map(|(seq, tag, name, count)| inner(seq).map(|i| unreadable(i, &[(tag, name, count)])))
            .flatten()
            .collect(),
        }
    }

    /// Fields of `self`, falling back to `base` where absent.
    fn over(self, base: &Partial) -> Partial {
        Partial {
            position: self.position.or(base.position),
            orientation: self.orientation.or(base.orientation),
            pixel_spacing: self.pixel_spacing.or(base.pixel_spacing),
            slice_thickness: self.slice_thickness.or(base.slice_thickness),
            modality_lut: self.modality_lut.or_else(|| base.modality_lut.clone()),
            window: self.window.or(base.window),
            unreadable: {
                let mut names = self.unreadable;
                add_names(&mut names, &base.unreadable);
                names
            },
        }
    }

    fn finish(self) -> FrameInfo {
        FrameInfo {
            position: self.position,
            orientation: self.orientation,
            pixel_spacing: self.pixel_spacing,
            slice_thickness: self.slice_thickness,
            // What was read in the end (a per-frame value over an unreadable shared one) is
            // not unreadable.
            unreadable: self
                .unreadable
                .into_iter()
                .filter(|name| match *name {
                    "ImagePositionPatient" => self.position.is_none(),
                    "ImageOrientationPatient" => self.orientation.is_none(),
                    "PixelSpacing" => self.pixel_spacing.is_none(),
                    _ => self.modality_lut.is_none(),
                })
                .collect(),
            modality_lut: self.modality_lut.unwrap_or(ModalityLut::None),
            window: self.window,
        }
    }
}

/// Most frames a file of `file_size` bytes can hold.
pub fn max_frames(file_size: u64) -> u64 {
    file_size / 8 + 1
}

fn frame_infos(obj: &Object, frames: usize) -> Vec<FrameInfo> {
    let root = Partial::from_root(obj);
    let shared = attrs::item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .map(Partial::from_functional_groups)
        .unwrap_or_default()
        .over(&root);
    let per_frame = attrs::items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    // RT Dose and similar legacy multi-frame objects place frames along the normal.
    let offsets = attrs::floats(obj, tags::GRID_FRAME_OFFSET_VECTOR).unwrap_or_default();
    (0..frames.max(1))
        .map(|i| {
            let mut partial = match per_frame.get(i) {
                Some(group) => Partial::from_functional_groups(group).over(&shared),
                None => shared.clone(),
            };
            if per_frame.is_empty() && frames > 1 && offsets.len() == frames {
                if let (Some(p), Some(o)) = (partial.position, partial.orientation) {
                    let n = super::geometry::normal(&o);
                    let d = offsets[i];
                    partial.position = Some([p[0] + n[0] * d, p[1] + n[1] * d, p[2] + n[2] * d]);
                }
            }
            partial.finish()
        })
        .take(frames)
        .collect()
}

fn modality_lut(obj: &Object) -> Option<ModalityLut> {
    if let Some(table) = attrs::item(obj, tags::MODALITY_LUT_SEQUENCE).and_then(modality_table) {
        return Some(ModalityLut::Table(table));
    }
    let slope = attrs::float(obj, tags::RESCALE_SLOPE);
    let intercept = attrs::float(obj, tags::RESCALE_INTERCEPT);
    match (slope, intercept) {
        (Some(slope), Some(intercept)) => Some(ModalityLut::Rescale(Rescale { slope, intercept })),
        _ => None,
    }
}

fn modality_table(item: &Object) -> Option<ModalityTable> {
    let descriptor = attrs::floats(item, tags::LUT_DESCRIPTOR)?;
    let (&entries, &first, &bits) = (descriptor.first()?, descriptor.get(1)?, descriptor.get(2)?);
    let entries = if entries == 0.0 { 65536 } else { entries as usize };
    let first = first as i64;
    let raw = attrs::bytes(item, tags::LUT_DATA)?;
    let data: Vec<u16> = if bits <= 8.0 && raw.len() == entries {
        raw.iter().map(|&b| u16::from(b)).collect()
    } else {
        raw.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take(entries)
            .collect()
    };
    (!data.is_empty()).then_some(ModalityTable {
        first_mapped: first,
        data,
    })
}

fn window(obj: &Object) -> Option<WindowLevel> {
    let center = attrs::float(obj, tags::WINDOW_CENTER)?;
    let width = attrs::float(obj, tags::WINDOW_WIDTH)?;
    (width > 0.0).then_some(WindowLevel { center, width })
}
