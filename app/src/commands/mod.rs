//! The CLI's subcommands, one module each with its arguments; `cli` parses and dispatches to
//! them, and none of them imports `cli`.

#[cfg(feature = "desktop")]
pub mod analyses;
pub mod analyze;
pub mod batch;
pub mod compare;
#[cfg(feature = "desktop")]
pub mod export;
pub mod info;
pub mod pacs;
pub mod progress;
#[cfg(feature = "desktop")]
pub mod snapshot;
#[cfg(feature = "desktop")]
pub mod view;
