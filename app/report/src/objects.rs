//! The three DICOM exports: Segmentation (BINARY), Parametric Map (attention, float) and
//! Secondary Capture (a key image as rendered). Each references the source series.

use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use smallvec::SmallVec;

use super::ExportError;
use super::dcm::{Ds, UidSource, code, implementation_class_uid};
use super::deid::deidentify;
use super::source::SourceSeries;
use crate::inference::manifest::Label;
use crate::render::RgbaImage;

/// Settings shared by every object of one export.
pub struct ExportContext<'a> {
    pub source: &'a SourceSeries,
    pub uids: UidSource,
    pub deidentify: bool,
    /// ContentDate / ContentTime (YYYYMMDD, HHMMSS).
    pub date: String,
    pub time: String,
    pub model_name: String,
    pub model_version: String,
    /// Who made or checked the content (Content Creator's Name), may be empty.
    pub creator: String,
    /// True when a reader corrected the model's labels.
    pub edited: bool,
}

const SEGMENTATION_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const PARAMETRIC_MAP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.30";
const SECONDARY_CAPTURE_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";
const ENCAPSULATED_PDF_CLASS: &str = "1.2.840.10008.5.1.4.1.1.104.1";

/// SNOMED CT codes for the labels Focal's models produce (CID 7153 CNS Segmentation Types);
/// anything else gets a code in Focal's private scheme.
/// The series an export object goes in, and what its content is called.
pub struct SeriesKind {
    /// Which of the export's series (its UID is derived from this key).
    pub key: &'static str,
    pub number: i64,
    pub description: &'static str,
    pub content_label: &'static str,
    pub content_description: &'static str,
}

/// What a Parametric Map's values are.
pub struct MapKind {
    pub series: SeriesKind,
    pub lut_explanation: &'static str,
    pub lut_label: &'static str,
    /// The range its display window and value mapping cover at least.
    pub range: [f64; 2],
}

/// The tissue labels' SEG.
pub const LABEL_SEG: SeriesKind = SeriesKind {
    key: "seg-series",
    number: 901,
    description: "Focal segmentation",
    content_label: "FOCAL_SEG",
    content_description: "Tissue labels from the model, as reviewed",
};

/// The SEG of the key regions the reader accepted.
pub const KEY_REGION_SEG: SeriesKind = SeriesKind {
    key: "key-region-seg-series",
    number: 903,
    description: "Focal key regions (accepted)",
    content_label: "FOCAL_REGIONS",
    content_description: "Departures from healthy tissue accepted by a reader",
};

/// The attention's Parametric Map.
pub const ATTENTION_MAP: MapKind = MapKind {
    series: SeriesKind {
        key: "pmap-series",
        number: 902,
        description: "Focal attention map",
        content_label: "FOCAL_ATTENTION",
        content_description: "Where the model looked; not a finding",
    },
    lut_explanation: "Attention coefficient of the model's finest gate",
    lut_label: "ATTENTION",
    range: [0.0, 1.0],
};

/// The key regions' score as a Parametric Map.
pub const KEY_REGION_MAP: MapKind = MapKind {
    series: SeriesKind {
        key: "key-region-pmap-series",
        number: 904,
        description: "Focal key-region score",
        content_label: "FOCAL_DEPARTURE",
        content_description: "Departure from this scan's healthy tissue; not a diagnosis",
    },
    lut_explanation: "Mahalanobis distance from healthy tissue, in spreads",
    lut_label: "DEPARTURE",
    range: [0.0, 12.0],
};

fn label_codes(label: &Label) -> ((&'static str, &'static str, &'static str), (String, String, String)) {
    let anatomical = ("91723000", "SCT", "Anatomical Structure");
    let substance = ("91720002", "SCT", "Body Substance");
    let name = label.name.to_lowercase();
    let typed = |v: &str, m: &str| (v.to_string(), "SCT".to_string(), m.to_string());
    if name.contains("csf") || name.contains("cerebrospinal") {
        (substance, typed("65216001", "Cerebrospinal Fluid"))
    } else if name.contains("grey matter") || name.contains("gray matter") {
        (anatomical, typed("389081007", "Gray Matter"))
    } else if name.contains("white matter") {
        (anatomical, typed("389080008", "White Matter"))
    } else if name.starts_with("key region") {
        // A departure from healthy tissue, not a named lesion.
        let abnormal = ("49755003", "SCT", "Morphologically Abnormal Structure");
        (abnormal, (format!("FOCALKR{}", label.index), "99FOCAL".to_string(), label.name.clone()))
    } else {
        let value = format!("FOCAL{}", label.index);
        (anatomical, (value, "99FOCAL".to_string(), label.name.clone()))
    }
}

/// The SNOMED CT (or Focal) code of what a label is, as its SEG segment and SR finding say.
pub(crate) fn label_type_code(label: &Label) -> (String, String, String) {
    label_codes(label).1
}

impl ExportContext<'_> {
    /// Modules every export shares: patient, study, series, equipment, SOP common.
    pub(crate) fn base(&self, class: &str, modality: &str, series_key: &str, series_number: i64, description: &str) -> Ds {
        let mut d = Ds::new();
        self.source.put_patient_and_study(&mut d);
        d.str(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
            .str(tags::SOP_CLASS_UID, VR::UI, class)
            .str(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                self.uids.uid(&format!("{series_key} instance")),
            )
            .str(tags::MODALITY, VR::CS, modality)
            .str(tags::SERIES_INSTANCE_UID, VR::UI, self.uids.uid(series_key))
            .int(tags::SERIES_NUMBER, series_number)
            .str(tags::SERIES_DESCRIPTION, VR::LO, description)
            .int(tags::INSTANCE_NUMBER, 1)
            .str(tags::CONTENT_DATE, VR::DA, &self.date)
            .str(tags::CONTENT_TIME, VR::TM, &self.time)
            .str(tags::MANUFACTURER, VR::LO, "Focal")
            .str(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Focal")
            .str(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0")
            .str(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"))
            .seq(tags::REFERENCED_SERIES_SEQUENCE, vec![self.source.referenced_series()]);
        d
    }

    /// Content identification for enhanced objects.
    fn content(&self, d: &mut Ds, label: &str, description: &str) {
        d.str(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY")
            .str(tags::CONTENT_LABEL, VR::CS, label)
            .str(tags::CONTENT_DESCRIPTION, VR::LO, description)
            .str(tags::CONTENT_CREATOR_NAME, VR::PN, &self.creator)
            .str(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    }

    /// Shared functional groups: pixel measures and plane orientation (plus `extra`).
    fn shared_groups(&self, extra: impl FnOnce(&mut Ds)) -> Ds {
        let mut orientation = Ds::new();
        orientation.decimals(tags::IMAGE_ORIENTATION_PATIENT, &self.source.orientation());
        let mut shared = Ds::new();
        shared
            .seq(tags::PIXEL_MEASURES_SEQUENCE, vec![self.source.pixel_measures()])
            .seq(tags::PLANE_ORIENTATION_SEQUENCE, vec![orientation]);
        extra(&mut shared);
        shared
    }

    fn plane_position(&self, k: usize) -> Ds {
        let mut p = Ds::new();
        p.decimals(tags::IMAGE_POSITION_PATIENT, &self.source.position(k));
        p
    }

    fn dimensions(&self, d: &mut Ds, key: &str, index: &[(Tag, Tag, &str)]) {
        let organisation = self.uids.uid(&format!("{key} dimensions"));
        let mut org = Ds::new();
        org.str(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &organisation);
        let items = index
            .iter()
            .map(|(pointer, group, label)| {
                let mut i = Ds::new();
                i.str(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &organisation)
                    .at(tags::DIMENSION_INDEX_POINTER, *pointer)
                    .at(tags::FUNCTIONAL_GROUP_POINTER, *group)
                    .str(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, *label);
                i
            })
            .collect();
        d.seq(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org])
            .str(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D")
            .seq(tags::DIMENSION_INDEX_SEQUENCE, items);
    }

    /// De-identifies when asked and adds the file meta group.
    pub(crate) fn finish(&self, d: Ds, class: &str) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let mut obj = d.0;
        if self.deidentify {
            deidentify(&mut obj, &self.uids);
        }
        let instance = obj
            .element(tags::SOP_INSTANCE_UID)
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.to_string()))
            .unwrap_or_default();
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(instance)
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid(implementation_class_uid())
            .implementation_version_name("FOCAL_0_1");
        obj.with_meta(meta).map_err(|e| ExportError::Build(e.to_string()))
    }

    /// DICOM SEG (BINARY) of `labels` (one value per source voxel, column fastest). Only frames
    /// with at least one pixel of their segment are stored; each is indexed by segment number
    /// and by the rank of its plane position.
    pub fn segmentation(
        &self,
        labels: &[u8],
        segments: &[Label],
        kind: &SeriesKind,
    ) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let src = self.source;
        let n = src.columns * src.rows;
        let slices = src.slices.len();
        if labels.len() != n * slices {
            return Err(ExportError::Build(format!(
                "the label map has {} voxels, the series {}",
                labels.len(),
                n * slices
            )));
        }
        let segments: Vec<&Label> = segments.iter().filter(|l| l.index > 0).collect();
        // (segment number, slice) of each stored frame.
        let mut frames: Vec<(u16, usize)> = Vec::new();
        for (s, label) in segments.iter().enumerate() {
            for k in 0..slices {
                if labels[k * n..(k + 1) * n].contains(&label.index) {
                    frames.push((s as u16 + 1, k));
                }
            }
        }
        if frames.is_empty() && !segments.is_empty() {
            frames.push((1, 0)); // an IOD needs one frame; this one is empty
        }
        let mut used: Vec<usize> = frames.iter().map(|f| f.1).collect();
        used.sort_unstable();
        used.dedup();
        let rank = |k: usize| used.binary_search(&k).map_or(1, |r| r + 1) as u32;

        let mut bits = vec![0u8; (frames.len() * n).div_ceil(8)];
        let mut per_frame = Vec::with_capacity(frames.len());
        for (f, &(segment, k)) in frames.iter().enumerate() {
            let value = segments[usize::from(segment) - 1].index;
            for (p, &l) in labels[k * n..(k + 1) * n].iter().enumerate() {
                if l == value {
                    let bit = f * n + p;
                    bits[bit / 8] |= 1 << (bit % 8);
                }
            }
            let mut content = Ds::new();
            content.ul(tags::DIMENSION_INDEX_VALUES, &[u32::from(segment), rank(k)]);
            let mut ident = Ds::new();
            ident.us(tags::REFERENCED_SEGMENT_NUMBER, segment);
            let mut item = Ds::new();
            item.seq(
                tags::DERIVATION_IMAGE_SEQUENCE,
                vec![src.derivation(k, ("113076", "DCM", "Segmentation"))],
            )
            .seq(tags::FRAME_CONTENT_SEQUENCE, vec![content])
            .seq(tags::PLANE_POSITION_SEQUENCE, vec![self.plane_position(k)])
            .seq(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![ident]);
            per_frame.push(item);
        }
        if bits.len() % 2 == 1 {
            bits.push(0);
        }

        let algorithm = if self.edited { "SEMIAUTOMATIC" } else { "AUTOMATIC" };
        let segment_items = segments
            .iter()
            .enumerate()
            .map(|(s, label)| {
                let (category, kind) = label_codes(label);
                let mut item = Ds::new();
                item.us(tags::SEGMENT_NUMBER, s as u16 + 1)
                    .str(tags::SEGMENT_LABEL, VR::LO, &label.name)
                    .str(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, algorithm)
                    .str(
                        tags::SEGMENT_ALGORITHM_NAME,
                        VR::LO,
                        format!("{} {}", self.model_name, self.model_version),
                    )
                    .seq(
                        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                        vec![code(category.0, category.1, category.2)],
                    )
                    .seq(
                        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                        vec![code(&kind.0, &kind.1, &kind.2)],
                    );
                item
            })
            .collect();

        let mut d = self.base(SEGMENTATION_CLASS, "SEG", kind.key, kind.number, kind.description);
        self.content(&mut d, kind.content_label, kind.content_description);
        d.str(tags::SEGMENTATION_TYPE, VR::CS, "BINARY")
            .us(tags::SAMPLES_PER_PIXEL, 1)
            .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
            .us(tags::ROWS, src.rows as u16)
            .us(tags::COLUMNS, src.columns as u16)
            .us(tags::BITS_ALLOCATED, 1)
            .us(tags::BITS_STORED, 1)
            .us(tags::HIGH_BIT, 0)
            .us(tags::PIXEL_REPRESENTATION, 0)
            .int(tags::NUMBER_OF_FRAMES, frames.len() as i64)
            .seq(tags::SEGMENT_SEQUENCE, segment_items)
            .seq(
                tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
                vec![self.shared_groups(|_| {})],
            )
            .seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame)
            .put(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(SmallVec::from_vec(bits)));
        self.dimensions(
            &mut d,
            "seg",
            &[
                (
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    "Segment Number",
                ),
                (
                    tags::IMAGE_POSITION_PATIENT,
                    tags::PLANE_POSITION_SEQUENCE,
                    "Image Position Patient",
                ),
            ],
        );
        self.finish(d, SEGMENTATION_CLASS)
    }

    /// Parametric Map of a map's values (32-bit float, one frame per source slice), with a
    /// Real World Value Mapping that says what they are (`kind`: the attention's unitless
    /// coefficients, or the key regions' departure from healthy tissue).
    pub fn parametric_map(&self, attention: &[f32], kind: &MapKind) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let src = self.source;
        let n = src.columns * src.rows;
        let slices = src.slices.len();
        if attention.len() != n * slices {
            return Err(ExportError::Build(format!(
                "the attention map has {} values, the series {} voxels",
                attention.len(),
                n * slices
            )));
        }
        let (lo, hi) = attention.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(f64::from(v)), b.max(f64::from(v)))
        });
        let per_frame = (0..slices)
            .map(|k| {
                let mut content = Ds::new();
                content.ul(tags::DIMENSION_INDEX_VALUES, &[k as u32 + 1]);
                let mut item = Ds::new();
                item.seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![src.derivation(k, ("113076", "DCM", "Segmentation"))],
                )
                .seq(tags::FRAME_CONTENT_SEQUENCE, vec![content])
                .seq(tags::PLANE_POSITION_SEQUENCE, vec![self.plane_position(k)]);
                item
            })
            .collect();
        let shared = self.shared_groups(|s| {
            let mut mapping = Ds::new();
            mapping
                .str(tags::LUT_EXPLANATION, VR::LO, kind.lut_explanation)
                .str(tags::LUT_LABEL, VR::SH, kind.lut_label)
                .seq(
                    tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
                    vec![code("1", "UCUM", "no units")],
                )
                .fd(tags::DOUBLE_FLOAT_REAL_WORLD_VALUE_FIRST_VALUE_MAPPED, &[lo.min(kind.range[0])])
                .fd(tags::DOUBLE_FLOAT_REAL_WORLD_VALUE_LAST_VALUE_MAPPED, &[hi.max(kind.range[1])])
                .fd(tags::REAL_WORLD_VALUE_INTERCEPT, &[0.0])
                .fd(tags::REAL_WORLD_VALUE_SLOPE, &[1.0]);
            let mut frame_type = Ds::new();
            frame_type.str(tags::FRAME_TYPE, VR::CS, "DERIVED\\PRIMARY\\VOLUME\\RESAMPLED");
            let mut identity = Ds::new();
            identity
                .decimals(tags::RESCALE_INTERCEPT, &[0.0])
                .decimals(tags::RESCALE_SLOPE, &[1.0])
                .str(tags::RESCALE_TYPE, VR::LO, "US");
            let mut anatomy = Ds::new();
            anatomy
                .seq(tags::ANATOMIC_REGION_SEQUENCE, vec![code("12738006", "SCT", "Brain")])
                .str(tags::FRAME_LATERALITY, VR::CS, "U");
            let mut voi = Ds::new();
            voi.decimals(tags::WINDOW_CENTER, &[0.5 * (kind.range[0] + kind.range[1])])
                .decimals(tags::WINDOW_WIDTH, &[kind.range[1] - kind.range[0]]);
            s.seq(tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE, vec![mapping])
                .seq(tags::PARAMETRIC_MAP_FRAME_TYPE_SEQUENCE, vec![frame_type])
                .seq(tags::FRAME_ANATOMY_SEQUENCE, vec![anatomy])
                .seq(tags::FRAME_VOILUT_SEQUENCE, vec![voi])
                .seq(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, vec![identity]);
        });

        let mut d = self.base(PARAMETRIC_MAP_CLASS, "OT", kind.series.key, kind.series.number, kind.series.description);
        self.content(&mut d, kind.series.content_label, kind.series.content_description);
        d.str(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY\\VOLUME\\RESAMPLED")
            .str(tags::RECOGNIZABLE_VISUAL_FEATURES, VR::CS, "NO");
        d.us(tags::SAMPLES_PER_PIXEL, 1)
            .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
            .us(tags::ROWS, src.rows as u16)
            .us(tags::COLUMNS, src.columns as u16)
            .us(tags::BITS_ALLOCATED, 32)
            .int(tags::NUMBER_OF_FRAMES, slices as i64)
            .str(tags::PIXEL_PRESENTATION, VR::CS, "MONOCHROME")
            .seq(tags::ACQUISITION_CONTEXT_SEQUENCE, Vec::new())
            .str(tags::PRESENTATION_LUT_SHAPE, VR::CS, "IDENTITY")
            .str(tags::CONTENT_QUALIFICATION, VR::CS, "RESEARCH")
            .str(tags::BURNED_IN_ANNOTATION, VR::CS, "NO")
            .seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared])
            .seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame)
            .put(
                tags::FLOAT_PIXEL_DATA,
                VR::OF,
                PrimitiveValue::F32(SmallVec::from_slice(attention)),
            );
        self.dimensions(
            &mut d,
            "pmap",
            &[(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "Image Position Patient",
            )],
        );
        self.finish(d, PARAMETRIC_MAP_CLASS)
    }

    /// Secondary Capture of a key image as rendered (RGB, overlays burned in).
    pub fn secondary_capture(
        &self,
        image: &RgbaImage,
        slice: usize,
        number: i64,
    ) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let rgb: Vec<u8> = image.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let mut rgb = rgb;
        if rgb.len() % 2 == 1 {
            rgb.push(0);
        }
        let s = self
            .source
            .slices
            .get(slice)
            .ok_or(ExportError::Build(format!("no slice {slice}")))?;
        let mut source = Ds::new();
        source
            .str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid)
            .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &s.sop_instance_uid);
        let mut d = self.base(SECONDARY_CAPTURE_CLASS, "OT", "sc-series", 903, "Focal key images");
        d.str(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            self.uids.uid(&format!("sc-series instance {number}")),
        )
        .int(tags::INSTANCE_NUMBER, number)
        .str(tags::CONVERSION_TYPE, VR::CS, "WSD")
        .str(tags::BODY_PART_EXAMINED, VR::CS, "BRAIN")
        .str(tags::PATIENT_ORIENTATION, VR::CS, {
            let g = &self.source.geometry;
            format!(
                "{}\\{}",
                crate::study::geometry::direction_letters(&g.row_direction),
                crate::study::geometry::direction_letters(&g.column_direction)
            )
        })
        .str(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY")
        .str(tags::BURNED_IN_ANNOTATION, VR::CS, "NO")
        .str(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            "Focal key image: slice with model overlays",
        )
        .seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source])
        .us(tags::SAMPLES_PER_PIXEL, 3)
        .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB")
        .us(tags::PLANAR_CONFIGURATION, 0)
        .us(tags::ROWS, image.height as u16)
        .us(tags::COLUMNS, image.width as u16)
        .us(tags::BITS_ALLOCATED, 8)
        .us(tags::BITS_STORED, 8)
        .us(tags::HIGH_BIT, 7)
        .us(tags::PIXEL_REPRESENTATION, 0)
        .str(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00")
        .put(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(SmallVec::from_vec(rgb)));
        // The SC IOD has no frame of reference; leave it out.
        d.0.remove_element(tags::FRAME_OF_REFERENCE_UID);
        d.0.remove_element(tags::POSITION_REFERENCE_INDICATOR);
        self.finish(d, SECONDARY_CAPTURE_CLASS)
    }

    /// The PDF report as an Encapsulated PDF object of the same study (to store it in a PACS).
    pub fn encapsulated_pdf(&self, pdf: &[u8], title: &str) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let mut document = pdf.to_vec();
        if document.len() % 2 == 1 {
            document.push(0);
        }
        let mut d = self.base(ENCAPSULATED_PDF_CLASS, "DOC", "pdf-series", 904, "Focal report");
        d.str(tags::CONVERSION_TYPE, VR::CS, "WSD")
            .str(tags::ACQUISITION_DATE_TIME, VR::DT, format!("{}{}", self.date, self.time))
            // De-identified reports carry pseudonyms only; identified ones name the patient.
            .str(tags::BURNED_IN_ANNOTATION, VR::CS, if self.deidentify { "NO" } else { "YES" })
            .str(tags::DOCUMENT_TITLE, VR::ST, title)
            .seq(tags::CONCEPT_NAME_CODE_SEQUENCE, Vec::new())
            .str(tags::MIME_TYPE_OF_ENCAPSULATED_DOCUMENT, VR::LO, "application/pdf")
            .ul(tags::ENCAPSULATED_DOCUMENT_LENGTH, &[pdf.len() as u32])
            .put(tags::ENCAPSULATED_DOCUMENT, VR::OB, PrimitiveValue::U8(SmallVec::from_vec(document)));
        // The Encapsulated PDF IOD has no frame of reference or referenced series module.
        d.0.remove_element(tags::FRAME_OF_REFERENCE_UID);
        d.0.remove_element(tags::POSITION_REFERENCE_INDICATOR);
        d.0.remove_element(tags::REFERENCED_SERIES_SEQUENCE);
        let mut obj = self.finish(d, ENCAPSULATED_PDF_CLASS)?;
        // Type 2: de-identification removes the date-time, the module still needs the element.
        if obj.element(tags::ACQUISITION_DATE_TIME).is_err() {
            obj.put(dicom_core::DataElement::new(
                tags::ACQUISITION_DATE_TIME,
                VR::DT,
                PrimitiveValue::Empty,
            ));
        }
        Ok(obj)
    }
}
