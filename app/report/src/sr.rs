//! The measurement report as DICOM Comprehensive 3D SR, TID 1500 (Measurement Report): the
//! reader's measurements as planar ROI groups (TID 1410: the region drawn, its length or area,
//! the mean ± sd of the values inside), each label's volume as a volumetric ROI group (TID
//! 1411) referencing its segment in the exported SEG, and the reader's verdicts on them. Other
//! tools (OHIF, Slicer, highdicom) read measurements from here rather than from the PDF.

use dicom_core::value::PrimitiveValue;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use smallvec::SmallVec;

use super::ExportError;
use super::dcm::{Ds, code};
use super::objects::ExportContext;
use super::review::{Decision, Measurement, Review, Shape};
use crate::inference::manifest::Label;

pub const COMPREHENSIVE_3D_SR_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.34";
pub const SEGMENTATION_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// The SEG the volumes refer to: its series and instance UID, and the segment number of each
/// label index.
pub struct SegReference {
    pub series_uid: String,
    pub instance_uid: String,
    pub segments: Vec<(u8, u16)>,
}

/// One content item: relationship, value type and concept name, then what `fill` adds.
fn item(relationship: &str, value_type: &str, concept: (&str, &str, &str)) -> Ds {
    let mut d = Ds::new();
    d.str(tags::RELATIONSHIP_TYPE, VR::CS, relationship)
        .str(tags::VALUE_TYPE, VR::CS, value_type)
        .seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(concept.0, concept.1, concept.2)]);
    d
}

fn code_item(relationship: &str, concept: (&str, &str, &str), value: (&str, &str, &str)) -> Ds {
    let mut d = item(relationship, "CODE", concept);
    d.seq(tags::CONCEPT_CODE_SEQUENCE, vec![code(value.0, value.1, value.2)]);
    d
}

fn text_item(relationship: &str, concept: (&str, &str, &str), text: &str) -> Ds {
    let mut d = item(relationship, "TEXT", concept);
    d.str(tags::TEXT_VALUE, VR::UT, text);
    d
}

fn uid_item(relationship: &str, concept: (&str, &str, &str), uid: &str) -> Ds {
    let mut d = item(relationship, "UIDREF", concept);
    d.str(tags::UID, VR::UI, uid);
    d
}

fn num_item(concept: (&str, &str, &str), value: f64, unit: (&str, &str, &str)) -> Ds {
    let mut measured = Ds::new();
    measured
        .seq(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code(unit.0, unit.1, unit.2)])
        .decimals(tags::NUMERIC_VALUE, &[value])
        .fd(tags::FLOATING_POINT_VALUE, &[value]);
    let mut d = item("CONTAINS", "NUM", concept);
    d.seq(tags::MEASURED_VALUE_SEQUENCE, vec![measured]);
    d
}

fn container(relationship: Option<&str>, concept: (&str, &str, &str), template: Option<&str>, children: Vec<Ds>) -> Ds {
    let mut d = Ds::new();
    if let Some(r) = relationship {
        d.str(tags::RELATIONSHIP_TYPE, VR::CS, r);
    }
    d.str(tags::VALUE_TYPE, VR::CS, "CONTAINER")
        .seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code(concept.0, concept.1, concept.2)])
        .str(tags::CONTINUITY_OF_CONTENT, VR::CS, if relationship.is_none() { "SEPARATE" } else { "CONTINUOUS" });
    if let Some(t) = template {
        let mut tid = Ds::new();
        tid.str(tags::MAPPING_RESOURCE, VR::CS, "DCMR").str(tags::TEMPLATE_IDENTIFIER, VR::CS, t);
        d.seq(tags::CONTENT_TEMPLATE_SEQUENCE, vec![tid]);
    }
    d.seq(tags::CONTENT_SEQUENCE, children);
    d
}

fn floats(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::F32(SmallVec::from_vec(values.iter().map(|&v| v as f32).collect()))
}

/// The region a shape covers as SCOORD graphic data (image pixel coordinates, the top left
/// corner of the first pixel at 0, 0, as the review keeps them): (graphic type, points).
pub fn graphic(shape: &Shape) -> (&'static str, Vec<[f64; 2]>) {
    match shape {
        Shape::Line { from, to } => ("POLYLINE", vec![*from, *to]),
        Shape::Ellipse { center, radii } => {
            let [cx, cy] = *center;
            let [rx, ry] = *radii;
            let horizontal = [[cx - rx, cy], [cx + rx, cy]];
            let vertical = [[cx, cy - ry], [cx, cy + ry]];
            // Major axis first.
            let (major, minor) = if rx >= ry { (horizontal, vertical) } else { (vertical, horizontal) };
            ("ELLIPSE", vec![major[0], major[1], minor[0], minor[1]])
        }
        Shape::Polygon { points } => {
            let mut closed = points.clone();
            if let (Some(first), Some(last)) = (points.first(), points.last())
                && first != last
            {
                closed.push(*first);
            }
            ("POLYLINE", closed)
        }
    }
}

const LENGTH: (&str, &str, &str) = ("410668003", "SCT", "Length");
const AREA: (&str, &str, &str) = ("42798000", "SCT", "Area");
const MEAN: (&str, &str, &str) = ("373098007", "SCT", "Mean");
const SD: (&str, &str, &str) = ("386136009", "SCT", "Standard Deviation");
const VOLUME: (&str, &str, &str) = ("118565006", "SCT", "Volume");
const FINDING: (&str, &str, &str) = ("121071", "DCM", "Finding");
const TRACKING_ID: (&str, &str, &str) = ("112039", "DCM", "Tracking Identifier");
const TRACKING_UID: (&str, &str, &str) = ("112040", "DCM", "Tracking Unique Identifier");
const IMAGE_REGION: (&str, &str, &str) = ("111030", "DCM", "Image Region");
const MEASUREMENT_GROUP: (&str, &str, &str) = ("125007", "DCM", "Measurement Group");
const VERDICT: (&str, &str, &str) = ("FOCALVERDICT", "99FOCAL", "Reader verdict");
const COMMENT: (&str, &str, &str) = ("121106", "DCM", "Comment");

/// A verdict as a code of Focal's private scheme.
fn verdict(d: Decision) -> (&'static str, &'static str, &'static str) {
    match d {
        Decision::Pending => ("FOCALPENDING", "99FOCAL", "Not reviewed"),
        Decision::Accepted => ("FOCALACCEPTED", "99FOCAL", "Accepted"),
        Decision::Rejected => ("FOCALREJECTED", "99FOCAL", "Rejected"),
    }
}

impl ExportContext<'_> {
    /// Units of the series' values: Hounsfield units for CT, none otherwise.
    fn value_unit(&self) -> (&'static str, &'static str, &'static str) {
        match self.source.modality.as_deref() {
            Some("CT") => ("[hnsf'U]", "UCUM", "Hounsfield unit"),
            _ => ("1", "UCUM", "no units"),
        }
    }

    /// The planar ROI group of one reader measurement (TID 1410), and the source image it was
    /// drawn on (None for one drawn on a reformatted plane, placed in patient coordinates).
    fn measurement_group(&self, n: usize, m: &Measurement, frame_of_reference: &str) -> (Ds, Option<usize>) {
        let (kind, points) = graphic(&m.shape);
        let mut region = item("CONTAINS", if m.plane.is_some() { "SCOORD3D" } else { "SCOORD" }, IMAGE_REGION);
        let image = match &m.plane {
            None => {
                let flat: Vec<f64> = points.iter().flat_map(|p| [p[0], p[1]]).collect();
                region.put(tags::GRAPHIC_DATA, VR::FL, floats(&flat)).str(tags::GRAPHIC_TYPE, VR::CS, kind);
                let s = &self.source.slices[m.slice.min(self.source.slices.len() - 1)];
                let mut sop = Ds::new();
                sop.str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid)
                    .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &s.sop_instance_uid);
                if let Some(f) = s.frame {
                    sop.int(tags::REFERENCED_FRAME_NUMBER, i64::from(f));
                }
                let mut source = item("SELECTED FROM", "IMAGE", ("260753009", "SCT", "Source"));
                source.seq(tags::REFERENCED_SOP_SEQUENCE, vec![sop]);
                region.seq(tags::CONTENT_SEQUENCE, vec![source]);
                Some(m.slice.min(self.source.slices.len() - 1))
            }
            Some(p) => {
                // Picture coordinates of a reformatted plane into patient mm; an ellipse in 3D
                // is written as its outline.
                let outline = match &m.shape {
                    Shape::Ellipse { .. } => m.shape.outline(1.0),
                    _ => points.clone(),
                };
                let kind3 = match &m.shape {
                    Shape::Line { .. } => "POLYLINE",
                    _ => "POLYGON",
                };
                let flat: Vec<f64> = outline.iter().flat_map(|q| p.to_patient(q[0], q[1])).collect();
                region
                    .put(tags::GRAPHIC_DATA, VR::FL, floats(&flat))
                    .str(tags::GRAPHIC_TYPE, VR::CS, kind3)
                    .str(tags::REFERENCED_FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference);
                None
            }
        };
        let mut children = vec![
            text_item("HAS OBS CONTEXT", TRACKING_ID, &format!("Measurement {n}")),
            uid_item("HAS OBS CONTEXT", TRACKING_UID, &self.uids.uid(&format!("sr measurement {n}"))),
            region,
        ];
        let s = &m.stats;
        if let Some(l) = s.length_mm {
            children.push(num_item(LENGTH, l, ("mm", "UCUM", "millimeter")));
        }
        if let Some(a) = s.area_mm2 {
            children.push(num_item(AREA, a, ("mm2", "UCUM", "square millimeter")));
        }
        if let Some(mean) = s.mean {
            children.push(num_item(MEAN, mean, self.value_unit()));
        }
        if let Some(sd) = s.sd {
            children.push(num_item(SD, sd, self.value_unit()));
        }
        (container(Some("CONTAINS"), MEASUREMENT_GROUP, Some("1410"), children), image)
    }

    /// The Measurement Report (TID 1500) of `review`: its measurements, the volumes of
    /// `labels` (the findings' volumes, as reviewed) referencing `seg`, and the verdicts.
    pub fn measurement_report(
        &self,
        review: &Review,
        labels: &[Label],
        seg: Option<&SegReference>,
    ) -> Result<FileDicomObject<InMemDicomObject>, ExportError> {
        let src = self.source;
        if src.slices.is_empty() {
            return Err(ExportError::Build("the source series has no images to refer to".into()));
        }
        let frame_of_reference = src
            .header
            .element(tags::FRAME_OF_REFERENCE_UID)
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches('\0').to_string()))
            .unwrap_or_default();
        let mut groups = Vec::new();
        let mut images: Vec<usize> = Vec::new();
        for (i, m) in review.measurements.iter().enumerate() {
            let (group, image) = self.measurement_group(i + 1, m, &frame_of_reference);
            groups.push(group);
            images.extend(image);
        }
        for f in review.findings.iter().filter(|f| f.label > 0 && f.voxels > 0) {
            let label = labels.iter().find(|l| l.index == f.label);
            let typed = label.map(|l| super::objects::label_type_code(l));
            let mut children = vec![
                text_item("HAS OBS CONTEXT", TRACKING_ID, &f.name),
                uid_item("HAS OBS CONTEXT", TRACKING_UID, &self.uids.uid(&format!("sr label {}", f.label))),
            ];
            if let Some((v, s, m)) = &typed {
                children.push(code_item("CONTAINS", FINDING, (v, s, m)));
            }
            if let Some(seg) = seg
                && let Some((_, number)) = seg.segments.iter().find(|(l, _)| *l == f.label)
            {
                let mut sop = Ds::new();
                sop.str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, SEGMENTATION_CLASS)
                    .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &seg.instance_uid)
                    .us(tags::REFERENCED_SEGMENT_NUMBER, *number);
                let mut segment = item("CONTAINS", "IMAGE", ("121191", "DCM", "Referenced Segment"));
                segment.seq(tags::REFERENCED_SOP_SEQUENCE, vec![sop]);
                children.push(segment);
                children.push(uid_item("CONTAINS", ("121232", "DCM", "Source series for segmentation"), &src.series_uid));
            }
            children.push(num_item(VOLUME, f.volume_ml, ("ml", "UCUM", "milliliter")));
            children.push(code_item("CONTAINS", VERDICT, verdict(f.decision)));
            if !f.note.trim().is_empty() {
                children.push(text_item("CONTAINS", COMMENT, f.note.trim()));
            }
            groups.push(container(Some("CONTAINS"), MEASUREMENT_GROUP, Some("1411"), children));
        }
        let mut root_children = vec![
            code_item(
                "HAS CONCEPT MOD",
                ("121049", "DCM", "Language of Content Item and Descendants"),
                ("en-US", "RFC5646", "English (United States)"),
            ),
            code_item("HAS OBS CONTEXT", ("121005", "DCM", "Observer Type"), ("121007", "DCM", "Device")),
            uid_item("HAS OBS CONTEXT", ("121012", "DCM", "Device Observer UID"), &self.uids.uid("focal device")),
            text_item("HAS OBS CONTEXT", ("121013", "DCM", "Device Observer Name"), "Focal"),
            code_item(
                "HAS CONCEPT MOD",
                ("121058", "DCM", "Procedure reported"),
                ("363679005", "SCT", "Imaging procedure"),
            ),
            container(Some("CONTAINS"), ("126010", "DCM", "Imaging Measurements"), None, groups),
        ];
        // Verdicts on key regions and the impression, as the PDF report gives them (the
        // reader's text is kept when identifiers are not, as there).
        let mut regions: Vec<Ds> = Vec::new();
        for r in &review.regions {
            let note = if !r.note.trim().is_empty() { format!(" ({})", r.note.trim()) } else { String::new() };
            regions.push(text_item("CONTAINS", COMMENT, &format!("Key region {}: {}{note}", r.id, r.decision.name())));
        }
        if !review.impression.trim().is_empty() {
            regions.push(text_item("CONTAINS", ("121073", "DCM", "Impression"), review.impression.trim()));
        }
        if !regions.is_empty() {
            root_children.push(container(Some("CONTAINS"), ("C0034375", "UMLS", "Qualitative Evaluations"), None, regions));
        }

        let mut d = self.base(COMPREHENSIVE_3D_SR_CLASS, "SR", "sr-series", 905, "Focal measurements");
        // The SR IODs have neither a frame of reference module nor a referenced series.
        for tag in [tags::FRAME_OF_REFERENCE_UID, tags::POSITION_REFERENCE_INDICATOR, tags::REFERENCED_SERIES_SEQUENCE] {
            d.0.remove_element(tag);
        }
        images.sort_unstable();
        images.dedup();
        let mut evidence_series = Vec::new();
        let image_refs: Vec<Ds> = images
            .iter()
            .map(|&k| {
                let s = &src.slices[k];
                let mut i = Ds::new();
                i.str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid)
                    .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &s.sop_instance_uid);
                i
            })
            .collect();
        if !image_refs.is_empty() {
            let mut series = Ds::new();
            series.str(tags::SERIES_INSTANCE_UID, VR::UI, &src.series_uid).seq(tags::REFERENCED_SOP_SEQUENCE, image_refs);
            evidence_series.push(series);
        }
        if let Some(seg) = seg {
            let mut i = Ds::new();
            i.str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, SEGMENTATION_CLASS)
                .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &seg.instance_uid);
            let mut series = Ds::new();
            series.str(tags::SERIES_INSTANCE_UID, VR::UI, &seg.series_uid).seq(tags::REFERENCED_SOP_SEQUENCE, vec![i]);
            evidence_series.push(series);
        }
        let mut study = Ds::new();
        study.str(tags::STUDY_INSTANCE_UID, VR::UI, &src.study_uid).seq(tags::REFERENCED_SERIES_SEQUENCE, evidence_series);
        d.seq(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, Vec::new())
            .str(tags::COMPLETION_FLAG, VR::CS, "COMPLETE")
            .str(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED")
            .seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new());
        if seg.is_some() || !images.is_empty() {
            d.seq(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![study]);
        }
        // Focal's private codes (verdicts, labels without a SNOMED CT code) name their scheme.
        let mut scheme = Ds::new();
        scheme
            .str(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "99FOCAL")
            .str(tags::CODING_SCHEME_NAME, VR::ST, "Focal codes")
            .str(tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION, VR::ST, "Focal");
        d.seq(tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE, vec![scheme]);
        let root = container(None, ("126000", "DCM", "Imaging Measurement Report"), Some("1500"), root_children);
        for e in root.0.into_iter() {
            d.0.put(e);
        }
        self.finish(d, COMPREHENSIVE_3D_SR_CLASS)
    }
}
