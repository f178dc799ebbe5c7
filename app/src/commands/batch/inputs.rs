//! What a batch opens: its input paths, the studies a CSV list names (relative paths, or a
//! study on a configured node retrieved into the PACS cache first).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};

/// A study root to open: an input path, or one path of a CSV list (retrieved from a PACS
/// node first when the row names one).
pub(super) struct Input {
    pub(super) shown: String,
    pub(super) path: PathBuf,
    pub(super) retrieve: Option<Retrieve>,
}

/// A CSV row's study on a configured node: retrieved (C-GET) into the PACS cache before it is
/// opened, once (a marker in the study's cache folder says the retrieve finished).
pub(super) struct Retrieve {
    pub(super) node: crate::pacs::Endpoint,
    pub(super) study_uid: String,
    pub(super) series_uid: Option<String>,
}

/// Written into a study's cache folder when its retrieve for a batch finished.
const RETRIEVED_MARKER: &str = ".focal-retrieved";

fn column(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h.trim().eq_ignore_ascii_case(name))
}

/// Expands the inputs: a `.csv` file lists study paths in its `path` column (relative to the
/// file); anything else is a folder, file or DICOMDIR opened as one input.
pub(super) fn inputs(args: &[PathBuf], key: &[u8]) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    let mut config: Option<crate::pacs::Config> = None;
    for a in args {
        if !a.exists() {
            bail!("{} does not exist", a.display());
        }
        let is_csv = a.is_file() && a.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if !is_csv {
            out.push(Input {
                shown: a.display().to_string(),
                path: a.clone(),
                retrieve: None,
            });
            continue;
        }
        let (header, rows) = read_list(a)?;
        let (col, node_col, study_col, series_col) = (
            column(&header, "path"),
            column(&header, "pacs"),
            column(&header, "study_uid"),
            column(&header, "series_uid"),
        );
        if col.is_none() && (node_col.is_none() || study_col.is_none()) {
            bail!(
                "{}: the header needs a `path` column (one study folder, file or DICOMDIR per row), or `pacs` and `study_uid` columns (a configured node and a study on it)",
                a.display()
            );
        }
        let base = a.parent().unwrap_or(Path::new("."));
        let field = |fields: &[String], c: Option<usize>| {
            c.and_then(|c| fields.get(c))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        for (line, fields) in rows {
            if let Some(p) = field(&fields, col) {
                let path = base.join(p);
                out.push(Input {
                    shown: path.display().to_string(),
                    path,
                    retrieve: None,
                });
                continue;
            }
            let (Some(node), Some(study_uid)) = (field(&fields, node_col), field(&fields, study_col)) else {
                bail!(
                    "{} line {line}: neither a path nor a pacs node and study_uid",
                    a.display()
                );
            };
            if config.is_none() {
                config = Some(crate::pacs::Config::load(&crate::pacs::nodes::config_path()?)?);
            }
            let node = config.as_ref().expect("loaded").endpoint(&node)?;
            out.push(Input {
                shown: format!("pacs:{}/study:{}", node.name(), super::shown_uid(&study_uid, false, key)),
                path: crate::pacs::query::study_folder(&super::super::pacs::default_cache()?, &study_uid),
                retrieve: Some(Retrieve {
                    node,
                    study_uid,
                    series_uid: field(&fields, series_col),
                }),
            });
        }
    }
    Ok(out)
}

/// A CSV list as a spreadsheet saves it: UTF-8 with or without a byte-order mark ("CSV
/// UTF-8"), or a single-byte Windows code page; fields separated by `,`, `;` or tabs, whichever
/// the header line uses most outside quotes; quoted fields; blank lines skipped. Returns the
/// header and each row with its line number.
pub(super) fn read_list(path: &Path) -> anyhow::Result<(Vec<String>, Vec<(u64, Vec<String>)>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        // Not UTF-8: a spreadsheet's "CSV" in the Windows code page (Latin-1 for these bytes).
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(text.lines().find(|l| !l.trim().is_empty()).unwrap_or("")))
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .with_context(|| format!("{}: the header line cannot be read", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: a row cannot be read", path.display()))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        // The line a spreadsheet shows it on (the reader's own count skips blank lines).
        let line = record.position().map_or(0, |p| {
            let bytes = text.as_bytes();
            let mut start = usize::try_from(p.byte()).unwrap_or(usize::MAX).min(bytes.len());
            // The record's position is where the blank lines before it begin.
            while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                start += 1;
            }
            1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
        });
        rows.push((line, record.iter().map(str::to_string).collect()));
    }
    Ok((header, rows))
}

/// The separator a header line uses: the most frequent of `,` `;` and tab outside quotes.
fn delimiter(header: &str) -> u8 {
    let mut quoted = false;
    let mut counts = [0usize; 3];
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Retrieves a row's study from its node unless an earlier batch already did.
pub(super) fn retrieve(r: &Retrieve, folder: &Path, cancel: &AtomicBool) -> anyhow::Result<()> {
    let marker = folder.join(RETRIEVED_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let s = r.node.get(
        &r.study_uid,
        r.series_uid.as_deref(),
        &super::super::pacs::default_cache()?,
        &|_, _| {},
        cancel,
    )?;
    if s.failed > 0 || s.warning.is_some() {
        bail!("{} instance(s) not received", s.failed.max(1));
    }
    eprintln!(
        "retrieved {} instance(s) from node {} ({:.1} s)",
        s.received + s.already_had,
        r.node.name(),
        s.seconds
    );
    crate::outdir::write_atomic(&marker, b"retrieved by focal batch\n")?;
    Ok(())
}
