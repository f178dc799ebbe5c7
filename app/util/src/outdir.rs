//! Where exports may be written: never into a study folder, never over a source file, and
//! always whole files (temporary name, then rename).

use std::path::{Path, PathBuf};

use anyhow::bail;

/// An absolute path with its existing ancestors' symlinks resolved.
pub fn absolute_resolved(path: &Path) -> std::path::PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        resolved.push(part);
    }
    resolved
}

/// Refuses an output folder that is, or lies inside, a folder of the study.
pub fn ensure_outside_study(out: &Path, study: &[PathBuf]) -> anyhow::Result<()> {
    let out_abs = absolute_resolved(out);
    for s in study {
        if let Ok(study_dir) = std::fs::canonicalize(s) {
            let dir = if study_dir.is_dir() {
                Some(study_dir)
            } else {
                study_dir.parent().map(Path::to_path_buf)
            };
            if let Some(dir) = dir
                && out_abs.starts_with(&dir)
            {
                bail!(
                    "the output folder must not be inside the study folder (nothing is ever written among source files): {}",
                    out.display()
                );
            }
        }
    }
    Ok(())
}

/// Writes a whole file: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A temporary name of this writer's own (process and count): two writers of one file (two
    // batches sharing an output) each rename their own whole file, and the last one stays.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}-{count}.partial", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
