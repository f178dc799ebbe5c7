//! Finding DICOM files under a path and reading their headers (never their pixel data).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dicom_dictionary_std::tags;
use rayon::prelude::*;
use serde::Serialize;

use super::error::{Result, StudyError};
use super::header::InstanceHeader;
use super::open::{Extent, open_object};
use super::{Progress, attrs};

/// A file that looked like DICOM but could not be read, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// Result of scanning paths: readable headers and the files that were not.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub instances: Vec<InstanceHeader>,
    pub unreadable: Vec<Unreadable>,
    /// Files that were not DICOM at all (skipped silently, only counted).
    pub non_dicom: usize,
}

/// Opens a file's header, stopping before the pixel data. `Ok(None)` for non-DICOM files.
pub fn read_header(path: &Path) -> Result<Option<InstanceHeader>> {
    let Some(obj) = open_object(path, Extent::Header)? else {
        return Ok(None);
    };
    let file_size = std::fs::metadata(path)?.len();
    let meta = obj.meta();
    let claimed = attrs::int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u64;
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_some() || claimed > 1 {
        if claimed > super::header::max_frames(file_size) {
            let rows = attrs::int(&obj, tags::ROWS).unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
            let columns = attrs::int(&obj, tags::COLUMNS)
                .unwrap_or(0)
                .clamp(0, i64::from(u32::MAX)) as u32;
            let bits = attrs::int(&obj, tags::BITS_ALLOCATED).unwrap_or(0).clamp(0, 64) as u16;
            return Err(StudyError::ImplausibleSize {
                rows,
                columns,
                frames: u32::try_from(claimed).unwrap_or(u32::MAX),
                bits,
                bytes: (u64::from(rows) * u64::from(columns))
                    .saturating_mul(claimed)
                    .saturating_mul(u64::from(bits))
                    .div_ceil(8),
                file_size,
            });
        }
    }
    Ok(Some(InstanceHeader::from_object(
        path,
        file_size,
        meta.transfer_syntax(),
        meta.media_storage_sop_class_uid(),
        &obj,
    )))
}

/// Lists the files a DICOMDIR references, resolving each path case-insensitively.
pub fn dicomdir_files(path: &Path) -> Result<Vec<PathBuf>> {
    // Through the length walk like every other file: a DICOMDIR is read whole, so a lying
    // length in it would otherwise make the parser allocate what it claims.
    let obj = open_object(path, Extent::Header)?.ok_or_else(|| StudyError::Parse("not a DICOM file".into()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for record in attrs::items(&obj, tags::DIRECTORY_RECORD_SEQUENCE) {
        let Some(id) = attrs::string(record, tags::REFERENCED_FILE_ID) else {
            continue;
        };
        let components: Vec<&str> = id.split('\\').map(str::trim).filter(|c| !c.is_empty()).collect();
        if components.iter().any(|c| *c == ".." || c.contains('/')) {
            continue; // a record must not point outside the medium
        }
        if let Some(found) = resolve_case_insensitive(base, &components) {
            files.push(found);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn resolve_case_insensitive(base: &Path, components: &[&str]) -> Option<PathBuf> {
    let mut current = base.to_path_buf();
    for component in components {
        let exact = current.join(component);
        if exact.exists() {
            current = exact;
            continue;
        }
        let entry = std::fs::read_dir(&current)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(component))?;
        current = entry.path();
    }
    current.is_file().then_some(current)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 64 {
        return; // symlink loops or absurd nesting
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out, depth + 1);
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
}

fn is_dicomdir_name(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR"))
}

/// Expands the given paths (files, folders, DICOMDIRs) into the files to read.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, 0);
        } else if path.is_file() {
            if is_dicomdir_name(path) {
                files.extend(dicomdir_files(path)?);
            } else {
                files.push(path.clone());
            }
        } else {
            return Err(StudyError::NotFound { path: path.clone() });
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads the headers of every DICOM file under `paths`, in parallel.
pub fn scan(paths: &[PathBuf], progress: &(dyn Fn(Progress) + Sync), cancel: &AtomicBool) -> Result<ScanReport> {
    let files = collect_files(paths)?;
    let total = files.len();
    let done = AtomicUsize::new(0);
    let results: Vec<(PathBuf, Result<Option<InstanceHeader>>)> = files
        .into_par_iter()
        .map(|path| {
            if cancel.load(Ordering::Relaxed) {
                return (path, Err(StudyError::Cancelled));
            }
            let header = read_header(&path);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(Progress { done: n, total });
            (path, header)
        })
        .collect();
    if cancel.load(Ordering::Relaxed) {
        return Err(StudyError::Cancelled);
    }
    let mut report = ScanReport::default();
    for (path, result) in results {
        match result {
            Ok(Some(header)) if header.is_dicomdir() => {}
            Ok(Some(header)) => report.instances.push(header),
            Ok(None) => report.non_dicom += 1,
            Err(e) => report.unreadable.push(Unreadable {
                path,
                reason: e.to_string(),
            }),
        }
    }
    Ok(report)
}
