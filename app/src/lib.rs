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

/// The log filter for a verbosity: `RUST_LOG` if set, else the flag's level; the DICOMweb
/// client's wire-level trace capped whatever they say (it is not redacted: it would hold a
/// server's credentials).
fn log_filter(verbose: u8) -> tracing_subscriber::EnvFilter {
    // -vvv turns everything to trace, ONNX Runtime's and dicom-rs's messages included.
    let directives = match verbose {
        0 => "focal=warn,warn",
        1 => "focal=info,warn",
        2 => "focal=debug,info",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    for capped in pacs::CLIENT_LOG_CAPS {
        if let Ok(d) = capped.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Sends log records to stderr, and for the window (`window`) also to a log file of its own,
/// rotated daily and kept for a week (`places::logs_dir()`), at least at the info level. `RUST_LOG`
/// overrides the verbosity flag. No module logs patient identifiers, at any level.
pub fn init_logging(verbose: u8, window: bool) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(log_filter(verbose));
    // Written as each record comes (no buffer a killed window would lose).
    let file = window
        .then(places::logs_dir)
        .and_then(Result::ok)
        .filter(|dir| std::fs::create_dir_all(dir).is_ok())
        .and_then(|dir| {
            tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("focal")
                .filename_suffix("log")
                .max_log_files(7)
                .build(dir)
                .ok()
        })
        .map(|appender| {
            tracing_subscriber::fmt::layer()
                .with_writer(appender)
                .with_ansi(false)
                .with_filter(log_filter(verbose.max(1)))
        });
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
}
