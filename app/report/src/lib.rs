//! focal-report: review and export — the reader's review, DICOM SEG / Parametric Map /
//! Secondary Capture, the PDF report and de-identification. Imports the study, inference and
//! render layers and the utilities; no window code.

// Paths inside this crate name the layers below as Focal does (crate::study, crate::render).
pub(crate) use focal_inference as inference;
pub(crate) use focal_render as render;
pub(crate) use focal_study as study;
pub(crate) use focal_util::{outdir, uid};

pub mod content;
pub mod dcm;
pub mod deid;
pub mod export;
pub mod objects;
pub mod output;
pub mod pdf;
pub mod pdf_text;
pub mod pictures;
pub mod review;
pub mod saved;
pub mod snapshot;
pub mod source;
pub mod sr;

pub use content::{KEY_REGION_OUTLINE, evidence_style, key_region_style};
pub use export::{ExportOptions, ExportSummary, export, held_entries};
pub use pictures::{PictureOptions, export_pictures};
pub use review::{Decision, Finding, KeyImage, Measurement, Review, Shape, ShapeStats, measure_shape};

/// Said in every report and export.
pub const NOT_FOR_DIAGNOSIS: &str = "Research use only. Not for diagnostic use.";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the source series cannot be exported from: {0}")]
    Source(String),
    #[error("the analysis output cannot be used: {0}")]
    Analysis(String),
    #[error("building the export failed: {0}")]
    Build(String),
    #[error("writing the export failed: {0}")]
    Write(String),
    #[error(
        "the output folder {folder} is not empty (it holds {first}{more}): choose an empty folder, or pass --force to replace files of the same names"
    )]
    NotEmpty { folder: String, first: String, more: String },
}
