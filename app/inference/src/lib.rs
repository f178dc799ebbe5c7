//! focal-inference: volume → label maps and attention maps, through ONNX Runtime. Imports the
//! study layer and the utilities, nothing else of Focal.

// Paths inside this crate name the layers below as Focal does (crate::study, crate::outdir).
pub(crate) use focal_study as study;
#[cfg(feature = "runtime")]
pub(crate) use focal_util::{cache_dir, outdir};

#[cfg(feature = "runtime")]
pub mod analysis;
pub mod compare;
#[cfg(feature = "runtime")]
pub mod engine;
#[cfg(feature = "runtime")]
pub mod evidence;
#[cfg(feature = "runtime")]
pub mod extent;
#[cfg(feature = "runtime")]
pub mod extractor;
#[cfg(feature = "runtime")]
pub mod faithfulness;
#[cfg(feature = "runtime")]
pub mod inputs;
#[cfg(feature = "runtime")]
pub mod job;
pub mod key_regions;
pub mod manifest;
pub mod nifti;
pub mod overlays;
#[cfg(feature = "runtime")]
pub mod output;
pub mod postprocess;
#[cfg(feature = "runtime")]
pub mod preprocess;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "runtime")]
mod steps;
pub mod tissue;

#[cfg(feature = "runtime")]
pub use analysis::{Analysis, analyze_volume, analyze_volumes};
#[cfg(feature = "runtime")]
pub use engine::{Device, Engine, ModelOutput, Provider};
#[cfg(feature = "runtime")]
pub use job::{AnalysisJob, JobStatus};
pub use manifest::Manifest;

use std::path::PathBuf;

/// Why the model could not be loaded or run. Each message names what is wrong and the fix.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "ONNX Runtime library not found (tried: {}). Run scripts/fetch-onnxruntime.sh, or set FOCAL_ORT_LIB to libonnxruntime.so.1.31.1",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RuntimeMissing { tried: Vec<PathBuf> },
    #[error("ONNX Runtime library could not be loaded ({reason}); Focal needs version 1.31 (API 31): {path}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model manifest is invalid: {reason}: {path}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "model file {file} does not match its manifest: sha256 is {actual}, the manifest says {expected}; refusing it (--allow-unverified-model overrides)"
    )]
    ModelHash {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the model could not be loaded: {0}")]
    ModelLoad(String),
    #[error("the model disagrees with its manifest: {0}")]
    ModelMismatch(String),
    #[error("CUDA was requested but cannot be used: {0}")]
    CudaUnavailable(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("the volume cannot be analysed: {0}")]
    Input(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{}: {reason}", path.display())]
    AnalysisFolder { path: PathBuf, reason: String },
    #[error("cannot write results: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;
