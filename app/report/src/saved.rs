//! The analyses the window keeps (one folder per series under Focal's data folder, named by a
//! hash of the series UID): listed for `focal analyses`, found by id or as the latest of a
//! study for `focal export`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::ExportError;
use crate::inference::output::{SUMMARY_FILE, Summary, read_summary};
use crate::review::{REVIEW_FILE, Review};

/// One kept analysis.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The folder's name: 16 hex digits (a hash of the series UID, no identifier).
    pub id: String,
    pub dir: PathBuf,
    pub summary: Summary,
    /// When the analysis or its review last changed.
    pub modified: SystemTime,
    pub review: Option<Review>,
}

impl Saved {
    /// "signed by R at T", "reviewed by R, not signed", "not reviewed".
    pub fn review_state(&self) -> String {
        match &self.review {
            Some(r) => match (&r.signed_at, r.reader.trim()) {
                (Some(at), "") => format!("signed {at}"),
                (Some(at), reader) => format!("signed by {reader} {at}"),
                (None, "") => "reviewed, not signed".into(),
                (None, reader) => format!("reviewed by {reader}, not signed"),
            },
            None => "not reviewed".into(),
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The analyses under `root`, newest first; folders that hold no readable analysis are
/// returned apart, with why.
pub fn list(root: &Path) -> (Vec<Saved>, Vec<(PathBuf, String)>) {
    let (mut kept, mut unreadable) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(root) else {
        return (kept, unreadable);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join(SUMMARY_FILE).is_file() {
            continue;
        }
        let summary = match read_summary(&dir) {
            Ok(s) => s,
            Err(e) => {
                unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        let review = Review::load(&dir).ok().flatten();
        let modified = [modified(&dir.join(SUMMARY_FILE)), modified(&dir.join(REVIEW_FILE))]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        kept.push(Saved {
            id: entry.file_name().to_string_lossy().into_owned(),
            dir,
            summary,
            modified,
            review,
        });
    }
    kept.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.id.cmp(&b.id)));
    (kept, unreadable)
}

/// The kept analysis whose id starts with `prefix` (4 hex digits at least); an error names
/// what is wrong (none, or several).
pub fn find(root: &Path, prefix: &str) -> Result<Saved, ExportError> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ExportError::Analysis(format!(
            "{prefix:?} is neither an analysis folder nor an analysis id (4 or more hex digits; `focal analyses` lists them)"
        )));
    }
    let (kept, _) = list(root);
    let mut found: Vec<Saved> = kept.into_iter().filter(|s| s.id.starts_with(&prefix)).collect();
    match found.len() {
        0 => Err(ExportError::Analysis(format!(
            "no kept analysis has the id {prefix} (`focal analyses` lists them, from {})",
            root.display()
        ))),
        1 => Ok(found.remove(0)),
        n => Err(ExportError::Analysis(format!(
            "{n} kept analyses have ids starting with {prefix}: give more digits"
        ))),
    }
}
