use std::path::PathBuf;

/// Why a file, series or volume could not be read. Messages name what failed and what to do;
/// the file's path is attached by the caller (paths may contain patient names, so they go last
/// and never into logs above debug level).
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid DICOM file: {0}")]
    Parse(String),
    #[error("the file has no pixel data")]
    NoPixelData,
    #[error("transfer syntax {uid} is not supported ({detail})")]
    UnsupportedTransferSyntax { uid: String, detail: String },
    #[error("pixel data is {actual} bytes but the header claims {expected} (truncated or lying file)")]
    PixelDataTooShort { expected: u64, actual: u64 },
    #[error(
        "the header claims {frames} frame(s) of {rows}×{columns} pixels of {bits} bits ({bytes} bytes), which cannot be real for a {file_size}-byte file; refusing to allocate"
    )]
    ImplausibleSize {
        rows: u32,
        columns: u32,
        frames: u32,
        bits: u16,
        bytes: u64,
        file_size: u64,
    },
    #[error("unsupported pixel layout: {0}")]
    UnsupportedLayout(String),
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("frame {frame} decoded to {actual} bytes, expected {expected}")]
    WrongFrameSize { frame: u32, expected: usize, actual: usize },
    #[error("the series has no decodable images")]
    EmptySeries,
    #[error("cancelled")]
    Cancelled,
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
}

pub type Result<T, E = StudyError> = std::result::Result<T, E>;
