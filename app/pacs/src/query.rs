//! What a query or retrieve asks and answers, whichever protocol carries it (DIMSE in `scu`,
//! DICOMweb in `dicomweb`): the query levels and keys, the attributes asked back, and the
//! summaries of a retrieve and a store.

use std::path::{Path, PathBuf};

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

/// What a C-FIND asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindLevel {
    Study,
    Series,
}

/// Matching keys (empty: any). Dates as DICOM ranges (`20240101-20241231`, `20240101-`).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub study_date: Option<String>,
    pub modality: Option<String>,
    pub accession: Option<String>,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
}

/// Attributes Focal asks back, per level (keyword, tag, VR).
pub fn return_keys(level: FindLevel) -> Vec<(&'static str, Tag, VR)> {
    let mut keys = vec![
        ("PatientName", tags::PATIENT_NAME, VR::PN),
        ("PatientID", tags::PATIENT_ID, VR::LO),
        ("StudyDate", tags::STUDY_DATE, VR::DA),
        ("AccessionNumber", tags::ACCESSION_NUMBER, VR::SH),
        ("StudyDescription", tags::STUDY_DESCRIPTION, VR::LO),
        ("StudyInstanceUID", tags::STUDY_INSTANCE_UID, VR::UI),
    ];
    match level {
        FindLevel::Study => keys.extend([
            ("ModalitiesInStudy", tags::MODALITIES_IN_STUDY, VR::CS),
            (
                "NumberOfStudyRelatedSeries",
                tags::NUMBER_OF_STUDY_RELATED_SERIES,
                VR::IS,
            ),
            (
                "NumberOfStudyRelatedInstances",
                tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                VR::IS,
            ),
        ]),
        FindLevel::Series => keys.extend([
            ("SeriesInstanceUID", tags::SERIES_INSTANCE_UID, VR::UI),
            ("Modality", tags::MODALITY, VR::CS),
            ("SeriesNumber", tags::SERIES_NUMBER, VR::IS),
            ("SeriesDescription", tags::SERIES_DESCRIPTION, VR::LO),
            (
                "NumberOfSeriesRelatedInstances",
                tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                VR::IS,
            ),
        ]),
    }
    keys
}

/// What a retrieve brought.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GetSummary {
    /// The folder the instances are in (open it as any study).
    pub folder: PathBuf,
    pub received: usize,
    /// Already in the folder from an earlier, interrupted retrieve (not written again).
    pub already_had: usize,
    pub failed: usize,
    pub warning: Option<String>,
    pub bytes: u64,
    pub seconds: f64,
}

/// The folder for one study's retrieved files under the cache: named by a hash of the UID.
pub fn study_folder(cache: &Path, study_uid: &str) -> PathBuf {
    cache.join(crate::uid::key(study_uid))
}

/// What a store sent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreSummary {
    pub stored: usize,
    /// (file, why) for each file the node did not take.
    pub failed: Vec<(PathBuf, String)>,
    pub seconds: f64,
}
