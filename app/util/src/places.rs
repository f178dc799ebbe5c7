//! Where Focal keeps things on this machine: its settings (the DICOM node list with its
//! credentials, the pseudonym key), its data (analyses made in the window) and its cache (the
//! ONNX Runtime library, retrieved studies). Each is its environment variable, else the
//! platform's folder for that kind (on Linux the XDG base directories, through `directories`),
//! else an error: never the temporary folder, which other users of the machine may read.

use std::path::PathBuf;

/// There is no folder of this kind: its variable is not set and there is no home folder
/// (neither HOME nor an entry in the user database).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Focal has no {what} folder: there is no home folder (HOME is not set and the user has none); set {variable}")]
pub struct NoPlace {
    pub what: &'static str,
    pub variable: &'static str,
}

fn place(
    variable: &'static str,
    what: &'static str,
    platform: fn(&directories::BaseDirs) -> PathBuf,
    under: &[&str],
) -> Result<PathBuf, NoPlace> {
    if let Some(d) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let base = directories::BaseDirs::new().ok_or(NoPlace { what, variable })?;
    Ok(under.iter().fold(platform(&base), |p, part| p.join(part)))
}

/// Settings: `$FOCAL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/focal` (`~/.config/focal`).
pub fn config_dir() -> Result<PathBuf, NoPlace> {
    place("FOCAL_CONFIG_DIR", "settings", |b| b.config_dir().to_path_buf(), &["focal"])
}

/// Analyses made in the window: `$FOCAL_DATA_DIR`, else `$XDG_DATA_HOME/focal/analyses`
/// (`~/.local/share/focal/analyses`).
pub fn analyses_dir() -> Result<PathBuf, NoPlace> {
    place("FOCAL_DATA_DIR", "data", |b| b.data_dir().to_path_buf(), &["focal", "analyses"])
}

/// The cache: `$FOCAL_CACHE`, else `$XDG_CACHE_HOME/focal` (`~/.cache/focal`).
pub fn cache_dir() -> Result<PathBuf, NoPlace> {
    place("FOCAL_CACHE", "cache", |b| b.cache_dir().to_path_buf(), &["focal"])
}

/// The window's log files: `$FOCAL_LOG_DIR`, else `$XDG_STATE_HOME/focal/logs`
/// (`~/.local/state/focal/logs`).
pub fn logs_dir() -> Result<PathBuf, NoPlace> {
    place(
        "FOCAL_LOG_DIR",
        "log",
        |b| b.state_dir().unwrap_or_else(|| b.data_local_dir()).to_path_buf(),
        &["focal", "logs"],
    )
}

/// The environment variables Focal reads, with what each does (for `focal --help`).
pub const VARIABLES: &str = "\
Environment: FOCAL_CONFIG_DIR (settings: the DICOM node list, the pseudonym key; default $XDG_CONFIG_HOME/focal, ~/.config/focal), FOCAL_DATA_DIR (analyses made in the window; default $XDG_DATA_HOME/focal/analyses), FOCAL_CACHE (the ONNX Runtime library, retrieved studies; default $XDG_CACHE_HOME/focal), FOCAL_LOG_DIR (the window's log files, rotated daily, a week kept; default $XDG_STATE_HOME/focal/logs), FOCAL_ORT_LIB (the ONNX Runtime library file), RUST_LOG (log filter; logs never hold patient identifiers). Without a home folder and these variables, Focal refuses to store settings or studies rather than use the temporary folder.";

