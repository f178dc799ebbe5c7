//! Focal: review DICOM studies with an attention segmentation model.
//!
//! Data flows one way: `study` (files → series → volume) → inference → render → ui / report.

pub mod cli;
pub mod commands;
pub mod inference;
pub mod outdir;
pub mod pacs;
#[cfg(feature = "desktop")]
pub mod render;
#[cfg(feature = "desktop")]
pub mod report;
pub mod study;
#[cfg(feature = "desktop")]
pub mod ui;
pub mod uid;

/// Focal's cache folder: `$FOCAL_CACHE`, else `~/.cache/focal` (the ONNX Runtime library,
/// retrieved studies).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("FOCAL_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/focal")))
}

/// Sends log records to stderr. `RUST_LOG` overrides the verbosity flag.
/// No module logs patient identifiers, at any level.
pub fn init_logging(verbose: u8) {
    // -vvv turns everything to trace, ONNX Runtime's and dicom-rs's messages included.
    let directives = match verbose {
        0 => "focal=warn,warn",
        1 => "focal=info,warn",
        2 => "focal=debug,info",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    // The DICOMweb client's wire-level trace is not redacted (it would hold a server's
    // credentials); nothing, RUST_LOG included, turns it on.
    for capped in pacs::CLIENT_LOG_CAPS {
        if let Ok(d) = capped.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
