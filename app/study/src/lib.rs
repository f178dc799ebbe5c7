//! focal-study: DICOM files → series → volumes. Imports nothing of Focal; no UI or model code.

mod attrs;
pub mod choice;
mod codec;
pub mod decode;
pub mod error;
pub mod geometry;
pub mod header;
#[doc(hidden)] // the DIMSE data-set walk in focal shares the length rules
pub mod lengths;
pub mod objects;
pub mod open;
pub mod pairing;
pub mod reformat;
mod palette;
pub mod scan;
pub mod series;
pub mod tags;
pub mod volume;

pub use choice::{Choice, ChoiceError, Unsuitable};
pub use error::{Result, StudyError};
pub use focal_util::error_chain;
pub use header::{FrameInfo, InstanceHeader, ModalityLut, PatientInfo, PixelLayout, Rescale, WindowLevel};
pub use scan::{ScanReport, Unreadable, read_header, scan};
pub use series::{Patient, Series, SeriesWarning, SliceRef, Stack, Study, organize};
pub use volume::{SkippedSlice, Volume, load_slice, load_volume};

/// Work done so far out of a total (files scanned, slices decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}


/// A scanned and organised set of studies, with the files that could not be read.
#[derive(Debug)]
pub struct StudySet {
    pub patients: Vec<Patient>,
    pub unreadable: Vec<Unreadable>,
    pub non_dicom: usize,
}

impl StudySet {
    /// Scans paths (files, folders, DICOMDIRs) and organises what it finds.
    pub fn open(
        paths: &[std::path::PathBuf],
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Self> {
        let report = scan(paths, progress, cancel)?;
        Ok(StudySet {
            patients: organize(report.instances),
            unreadable: report.unreadable,
            non_dicom: report.non_dicom,
        })
    }

    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.patients
            .iter()
            .flat_map(|p| p.studies.iter().flat_map(|s| s.series.iter()))
    }

    pub fn find_series(&self, uid: &str) -> Option<&Series> {
        self.series().find(|s| s.uid == uid)
    }

    /// The stack Focal opens or analyses when none is named: the one with the most slices
    /// of the whole set (the last of equals), with its series and its index there.
    pub fn largest_stack(&self) -> Option<(&Series, usize, &Stack)> {
        self.series()
            .flat_map(|s| s.stacks.iter().enumerate().map(move |(i, st)| (s, i, st)))
            .max_by_key(|(_, _, st)| st.slices.len())
    }
}
