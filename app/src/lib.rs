//! Focal: review DICOM studies with an attention segmentation model.
//!
//! Data flows one way: `study` (files → series → volume) → inference → render → ui / report.

pub mod cli;
pub mod commands;
pub mod exit;
#[cfg(feature = "desktop")]
pub mod ui;

/// The layers below the window and the exports are crates of their own (`focal-study`,
/// `focal-inference`, `focal-pacs`, `focal-render`, `focal-util`), each importing only those
/// below it: the one-way flow is Cargo's to enforce.
pub use focal_study as study;
pub use focal_inference as inference;
pub use focal_pacs as pacs;
#[cfg(feature = "desktop")]
pub use focal_render as render;
#[cfg(feature = "desktop")]
pub use focal_report as report;
pub use focal_util::{cache_dir, outdir, places, uid};

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
        // Colour only for a person at a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
