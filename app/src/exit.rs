//! The exit codes of every command, named once (`focal --help` lists them; `tests/cli_info.rs`
//! checks them).

use crate::inference::InferenceError;
use crate::pacs::PacsError;
use crate::study::{ChoiceError, StudyError};

/// Done.
pub const OK: i32 = 0;
/// Done in part, or failed for a reason not listed below (`info`: nothing readable; `batch`: a
/// study or series failed while the others were analysed).
pub const FAILED: i32 = 1;
/// The command line is wrong (clap's own code).
pub const USAGE: i32 = 2;
/// `--device cuda` was demanded and CUDA cannot run.
pub const CUDA_UNAVAILABLE: i32 = 3;
/// The model or ONNX Runtime is unusable (manifest, hash, runtime library, a failed run).
pub const MODEL: i32 = 4;
/// The input cannot be used: a path not found, no series to analyse or one refused, series that
/// do not pair, an analysis folder that cannot be read.
pub const INPUT: i32 = 5;
/// Results could not be written (disk full, permissions, an output folder not empty).
pub const OUTPUT: i32 = 6;
/// A DICOM node could not be reached, refused, or broke off.
pub const NETWORK: i32 = 7;
/// Interrupted (Ctrl-C) or cancelled.
pub const INTERRUPTED: i32 = 130;

/// The table `focal --help` ends with.
pub const HELP: &str = "\
Exit codes: 0 done; 1 failed in part or for another reason; 2 wrong command line; 3 CUDA demanded but unavailable; 4 model or ONNX Runtime unusable; 5 input unusable (path, series, analysis folder); 6 results not written; 7 DICOM node unreachable or refusing; 130 interrupted.";

/// The code for an error, from the first cause in its chain whose kind says.
pub fn of(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<InferenceError>() {
            return match e {
                InferenceError::CudaUnavailable(_) => CUDA_UNAVAILABLE,
                InferenceError::Input(_) | InferenceError::AnalysisFolder { .. } => INPUT,
                InferenceError::Cancelled => INTERRUPTED,
                InferenceError::Io(_) => OUTPUT,
                _ => MODEL,
            };
        }
        if cause.is::<ChoiceError>() || cause.is::<crate::study::pairing::PairingError>() || cause.is::<crate::places::NoPlace>() {
            return INPUT;
        }
        if let Some(e) = cause.downcast_ref::<StudyError>() {
            return if matches!(e, StudyError::Cancelled) { INTERRUPTED } else { INPUT };
        }
        if let Some(e) = cause.downcast_ref::<PacsError>() {
            return match e {
                PacsError::Cancelled => INTERRUPTED,
                PacsError::Config(_) => INPUT,
                PacsError::Io(_) => OUTPUT,
                _ => NETWORK,
            };
        }
        #[cfg(feature = "desktop")]
        if let Some(e) = cause.downcast_ref::<crate::report::ExportError>() {
            return match e {
                crate::report::ExportError::Source(_) | crate::report::ExportError::Analysis(_) => INPUT,
                _ => OUTPUT,
            };
        }
        if cause.is::<std::io::Error>() {
            return OUTPUT;
        }
    }
    FAILED
}
