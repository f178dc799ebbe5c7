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
        let text = std::fs::read_to_string(a).with_context(|| format!("reading {}", a.display()))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = split_csv_line(lines.next().unwrap_or_default());
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
        for (i, line) in lines.enumerate() {
            let fields = split_csv_line(line);
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
                    "{} row {}: neither a path nor a pacs node and study_uid",
                    a.display(),
                    i + 2
                );
            };
            if config.is_none() {
                config = Some(crate::pacs::Config::load(&crate::pacs::nodes::config_path())?);
            }
            let node = config.as_ref().expect("loaded").endpoint(&node)?;
            out.push(Input {
                shown: format!("pacs:{}/study:{}", node.name(), super::shown_uid(&study_uid, false, key)),
                path: crate::pacs::query::study_folder(&super::super::pacs::default_cache(), &study_uid),
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

pub(super) fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().map(|f| f.push('"'));
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
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
        &super::super::pacs::default_cache(),
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
