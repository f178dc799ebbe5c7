//! What export objects take from the source series: patient, study and frame of reference
//! attributes, slice positions, and references to each source image.

use std::path::PathBuf;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::ExportError;
use super::dcm::{Ds, code};
use crate::study::geometry::StackGeometry;
use crate::study::open::{Extent, open_object};
use crate::study::{PatientInfo, Stack};

/// One source slice as export objects reference it.
#[derive(Debug, Clone)]
pub struct SourceSlice {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// 1-based frame number when the source file holds several frames.
    pub frame: Option<u32>,
    pub path: PathBuf,
}

/// The series an analysis was made from.
pub struct SourceSeries {
    /// The first slice's attributes (no pixel data).
    pub header: InMemDicomObject,
    pub series_uid: String,
    pub study_uid: String,
    pub modality: Option<String>,
    pub patient: PatientInfo,
    pub accession: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub slices: Vec<SourceSlice>,
    pub geometry: StackGeometry,
    pub columns: usize,
    pub rows: usize,
    pub slice_thickness: Option<f64>,
}

impl SourceSeries {
    pub fn from_stack(series_uid: &str, stack: &Stack) -> Result<SourceSeries, ExportError> {
        let first = stack
            .slices
            .first()
            .ok_or(ExportError::Source("the series has no images".into()))?;
        let geometry = stack.geometry.clone().ok_or(ExportError::Source(
            "the series has no position/orientation; DICOM exports need it".into(),
        ))?;
        let header = open_object(&first.instance.path, Extent::Header)
            .map_err(|e| ExportError::Source(crate::study::error_chain(&e)))?
            .ok_or(ExportError::Source("the first image is not DICOM".into()))?
            .into_inner();
        let slices = stack
            .slices
            .iter()
            .map(|s| SourceSlice {
                sop_class_uid: s.instance.sop_class_uid.clone(),
                sop_instance_uid: s.instance.sop_instance_uid.clone(),
                frame: (s.instance.frames.len() > 1).then_some(s.frame + 1),
                path: s.instance.path.clone(),
            })
            .collect();
        let i = &first.instance;
        Ok(SourceSeries {
            header,
            series_uid: series_uid.to_string(),
            study_uid: i.study_uid.clone(),
            modality: i.modality.clone(),
            patient: i.patient.clone(),
            accession: i.accession_number.clone(),
            study_date: i.study_date.clone(),
            study_description: i.study_description.clone(),
            slices,
            geometry,
            columns: stack.columns as usize,
            rows: stack.rows as usize,
            slice_thickness: first.info().slice_thickness,
        })
    }

    /// Patient, General Study and Frame of Reference attributes (type 2 ones present, maybe empty).
    pub fn put_patient_and_study(&self, d: &mut Ds) {
        let h = &self.header;
        for (tag, vr) in [
            (tags::PATIENT_NAME, VR::PN),
            (tags::PATIENT_ID, VR::LO),
            (tags::PATIENT_BIRTH_DATE, VR::DA),
            (tags::PATIENT_SEX, VR::CS),
            (tags::STUDY_DATE, VR::DA),
            (tags::STUDY_TIME, VR::TM),
            (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
            (tags::STUDY_ID, VR::SH),
            (tags::ACCESSION_NUMBER, VR::SH),
            (tags::POSITION_REFERENCE_INDICATOR, VR::LO),
        ] {
            d.empty(tag, vr).copy_from(h, tag);
        }
        for tag in [
            tags::STUDY_DESCRIPTION,
            tags::INSTITUTION_NAME,
            tags::SPECIFIC_CHARACTER_SET,
        ] {
            d.copy_from(h, tag);
        }
        d.str(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid);
        let frame_of_reference = h
            .element_opt(tags::FRAME_OF_REFERENCE_UID)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches('\0').to_string()))
            .unwrap_or_else(|| {
                super::dcm::uid_from_bytes(format!("frame of reference {}", self.series_uid).as_bytes())
            });
        d.str(tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference);
    }

    /// Image Position (Patient) of slice `k`.
    pub fn position(&self, k: usize) -> [f64; 3] {
        self.geometry.voxel_to_patient(0.0, 0.0, k as f64)
    }

    pub fn orientation(&self) -> [f64; 6] {
        let (r, c) = (self.geometry.row_direction, self.geometry.column_direction);
        [r[0], r[1], r[2], c[0], c[1], c[2]]
    }

    /// Pixel Measures: PixelSpacing is row spacing \ column spacing.
    pub fn pixel_measures(&self) -> Ds {
        let s = self.geometry.spacing;
        let mut d = Ds::new();
        d.decimals(tags::PIXEL_SPACING, &[s[1], s[0]])
            .decimals(tags::SLICE_THICKNESS, &[self.slice_thickness.unwrap_or(s[2])])
            .decimals(tags::SPACING_BETWEEN_SLICES, &[s[2]]);
        d
    }

    /// Derivation Image functional group item for slice `k`.
    pub fn derivation(&self, k: usize, derivation: (&str, &str, &str)) -> Ds {
        let s = &self.slices[k];
        let mut source = Ds::new();
        source
            .str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid)
            .str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &s.sop_instance_uid)
            .seq(
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![code("121322", "DCM", "Source image for image processing operation")],
            )
            .str(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
        if let Some(f) = s.frame {
            source.int(tags::REFERENCED_FRAME_NUMBER, i64::from(f));
        }
        let mut item = Ds::new();
        item.seq(
            tags::DERIVATION_CODE_SEQUENCE,
            vec![code(derivation.0, derivation.1, derivation.2)],
        )
        .seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source]);
        item
    }

    /// Common Instance Reference: the source series and all its instances.
    pub fn referenced_series(&self) -> Ds {
        let mut instances: Vec<Ds> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in &self.slices {
            if seen.insert(s.sop_instance_uid.clone()) {
                let mut i = Ds::new();
                i.str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &s.sop_class_uid).str(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    &s.sop_instance_uid,
                );
                instances.push(i);
            }
        }
        let mut series = Ds::new();
        series
            .str(tags::SERIES_INSTANCE_UID, VR::UI, &self.series_uid)
            .seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances);
        series
    }
}
