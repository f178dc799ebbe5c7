//! `focal batch`: every analysable series under many studies, one analysis folder each and
//! one results table. Resumable (a series whose files and model are unchanged is not run
//! again; failed ones are retried), interruptible (Ctrl-C finishes nothing half-way: a
//! series' folder appears whole or not at all), and one bad study is one error row.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inference::manifest::hex;
use crate::inference::{self, Engine};
use crate::study::{self, Progress, Stack, StudySet};

mod inputs;
mod table;

use inputs::{Input, inputs, retrieve};
pub use table::table;

#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// Study folders, files or DICOMDIRs, or CSV files listing them (a `path` column, relative
    /// to the CSV). Each is opened on its own: a broken one is an error row, not the end.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: results.csv and series/<study>-<series>/ (the analysis, as `focal analyze` writes it).
    #[arg(long)]
    pub out: PathBuf,
    /// Series with fewer slices (localizers, single images) are listed as skipped.
    #[arg(long, default_value_t = 3)]
    pub min_slices: usize,
    /// Put study and series UIDs in the table (default: a pseudonym, HMAC-SHA256 of the UID
    /// under the pseudonym key).
    #[arg(long)]
    pub keep_uids: bool,
    /// The pseudonym key file (default: pseudonym.key beside the PACS node list, made on first
    /// use, 0600). Give the same file on every machine for pseudonyms that agree across them.
    #[arg(long)]
    pub pseudonym_key: Option<PathBuf>,
    /// Execution provider: auto (CUDA if it works, else CPU, saying why), cpu, or cuda (CUDA or fail).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: crate::inference::Device,
    /// Model manifest (default: the bundled models/brain-tissue.json).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads for the model on the CPU (default: one per core). A task sharing a node (the
    /// Ray job) asks for its share.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// Exit code when Ctrl-C stopped the batch (what was finished is kept).
pub use crate::exit::INTERRUPTED as EXIT_INTERRUPTED;
/// The results table, rewritten whole (atomically) as series finish.
pub const RESULTS: &str = "results.csv";
/// Beside each finished series' analysis: what it was computed from, and its table row.
const DONE: &str = "batch.json";

/// One row of the results table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// Where the study was found (the input as given).
    pub input: String,
    /// Study and series: pseudonyms (keyed, 16 hex digits) unless --keep-uids.
    pub study: String,
    pub series: String,
    pub modality: String,
    pub slices: usize,
    /// ok, cached (finished by an earlier run, unchanged), skipped (not analysable), error.
    pub status: String,
    pub error: String,
    /// mL per non-background label, in the manifest's order.
    pub volumes_ml: Vec<f64>,
    pub mean_confidence: Option<f64>,
    pub faithfulness_score: Option<f64>,
    pub faithfulness_passed: Option<bool>,
    /// Key regions found and their total volume (None: the model does not look for them).
    #[serde(default)]
    pub key_regions: Option<usize>,
    #[serde(default)]
    pub key_regions_ml: Option<f64>,
    pub warnings: String,
    pub provider: String,
    pub model_sha256: String,
    /// sha256 over the series' files (in slice order) and the model: what "unchanged" means.
    pub content_sha256: String,
    pub seconds_load: f64,
    pub seconds_analysis: f64,
    /// The analysis folder, relative to --out.
    pub folder: String,
}

#[derive(Serialize, Deserialize)]
struct Done {
    content_sha256: String,
    row: Row,
}

/// A UID as the table shows it: itself with --keep-uids, else its pseudonym under `key`.
fn shown_uid(uid: &str, keep: bool, key: &[u8]) -> String {
    if keep { uid.to_string() } else { crate::uid::pseudonym(uid, key) }
}

/// The key of the batch's pseudonyms: --pseudonym-key, else pseudonym.key beside the PACS
/// node list (made on first use).
fn pseudonym_key(args: &BatchArgs) -> anyhow::Result<Vec<u8>> {
    let path = match &args.pseudonym_key {
        Some(p) => p.clone(),
        None => crate::pacs::nodes::config_path()?.with_file_name("pseudonym.key"),
    };
    crate::uid::load_or_create_key(&path).with_context(|| format!("the pseudonym key {}", path.display()))
}

/// sha256 over the model's and then each slice file's bytes, in slice order.
fn content_hash(stack: &Stack, model_sha256: &str) -> std::io::Result<String> {
    let mut h = Sha256::new();
    h.update(model_sha256.as_bytes());
    let mut last: Option<&Path> = None;
    for s in &stack.slices {
        let p = s.instance.path.as_path();
        if last == Some(p) {
            continue; // frames of one multi-frame file
        }
        last = Some(p);
        let mut f = std::fs::File::open(p)?;
        std::io::copy(&mut f, &mut h)?;
    }
    Ok(hex(&h.finalize()))
}

/// Why a stack is not analysed, if it is not.
fn not_analysable(series: &crate::study::Series, stack: &Stack, min_slices: usize, modalities: &[String]) -> Option<String> {
    if let Some(why) = series.unsuitable(modalities) {
        return Some(format!("the series {why}"));
    }
    if stack.slices.len() < min_slices {
        return Some(format!(
            "{} slice(s), fewer than --min-slices {min_slices}",
            stack.slices.len()
        ));
    }
    None
}

/// Another `focal batch` on the same output holds the series' lock (it is analysing it).
#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another batch on this output is analysing the series")
    }
}

impl std::error::Error for Busy {}

/// The lock a batch holds on one series while it analyses it, so that several batches may
/// share an output (shards on a cluster, or two runs started by hand): `.locks/<key>`, an
/// advisory lock the system drops when the process ends, however it ends.
fn series_lock(out: &Path, key: &str) -> std::io::Result<std::fs::File> {
    let dir = out.join(".locks");
    std::fs::create_dir_all(&dir)?;
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(key))
}

/// Marks the row failed and removes what the series left half written.
fn failed(row: &mut Row, e: &anyhow::Error, out: &Path) {
    row.status = "error".into();
    row.error = format!("{e:#}");
    let _ = std::fs::remove_dir_all(out.join(&row.folder).with_extension("partial"));
}

/// A series put off because another batch held it, taken up again at the end.
struct Deferred {
    stack: Stack,
    source: inference::output::Source,
    row: usize,
}

struct Batch<'a> {
    args: &'a BatchArgs,
    engine: Engine,
    label_names: Vec<String>,
    rows: Vec<Row>,
    cancel: Arc<AtomicBool>,
    last_table: Instant,
    /// The pseudonym key.
    key: Vec<u8>,
}

impl Batch<'_> {
    fn write_table(&mut self) -> std::io::Result<()> {
        self.last_table = Instant::now();
        crate::outdir::write_atomic(
            &self.args.out.join(RESULTS),
            table(&self.label_names, &self.rows)?.as_bytes(),
        )
    }

    fn blank_row(&self, input: &Input) -> Row {
        Row {
            input: input.shown.clone(),
            study: String::new(),
            series: String::new(),
            modality: String::new(),
            slices: 0,
            status: "error".into(),
            error: String::new(),
            volumes_ml: Vec::new(),
            mean_confidence: None,
            faithfulness_score: None,
            faithfulness_passed: None,
            key_regions: None,
            key_regions_ml: None,
            warnings: String::new(),
            provider: self.engine.provider.name.to_string(),
            model_sha256: self.engine.sha256.clone(),
            content_sha256: String::new(),
            seconds_load: 0.0,
            seconds_analysis: 0.0,
            folder: String::new(),
        }
    }

    /// Analyses one series into `series/<key>` (written as `<key>.partial`, then renamed),
    /// under the series' lock. When another batch holds it: `Busy`, or with `wait` its result
    /// once it lets go.
    fn run_series(
        &mut self,
        row: &mut Row,
        stack: &Stack,
        source: &inference::output::Source,
        wait: bool,
    ) -> anyhow::Result<()> {
        let key = format!(
            "{}-{}",
            shown_uid(&source.study_uid, false, &self.key),
            shown_uid(&source.series_uid, false, &self.key)
        );
        let dir = self.args.out.join("series").join(&key);
        row.folder = format!("series/{key}");
        let lock = series_lock(&self.args.out, &key).context("opening the series' lock file")?;
        let waited = match lock.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) if !wait => return Err(Busy.into()),
            Err(std::fs::TryLockError::WouldBlock) => {
                lock.lock().context("waiting for another batch's lock on the series")?;
                true
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking the series"),
        };
        let t = Instant::now();
        row.content_sha256 = content_hash(stack, &self.engine.sha256).context("reading the series' files")?;
        if let Ok(text) = std::fs::read_to_string(dir.join(DONE))
            && let Ok(done) = serde_json::from_str::<Done>(&text)
            && done.content_sha256 == row.content_sha256
        {
            *row = Row {
                input: row.input.clone(),
                status: "cached".into(),
                error: if waited { "analysed by another batch on this output".into() } else { done.row.error.clone() },
                ..done.row
            };
            return Ok(());
        }
        inference::inputs::check_measurable(stack, &row.series)?;
        let volume =
            study::load_volume(stack, &|_: Progress| {}, &self.cancel).context("decoding the series failed")?;
        row.seconds_load = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let analysis = inference::analyze_volumes(&mut self.engine, &[&volume], &|_: Progress| {}, &self.cancel)?;
        row.seconds_analysis = t.elapsed().as_secs_f64();
        let s = &analysis.summary;
        row.volumes_ml = s.labels.iter().filter(|l| l.index != 0).map(|l| l.volume_ml).collect();
        row.mean_confidence = s.mean_confidence;
        row.faithfulness_score = s.insights.faithfulness.as_ref().map(|f| f.score);
        row.faithfulness_passed = s.insights.faithfulness.as_ref().map(|f| f.passed);
        row.key_regions = s.insights.key_regions.as_ref().map(Vec::len);
        row.key_regions_ml = s.insights.key_regions.as_ref().map(|k| k.iter().map(|r| r.volume_ml).sum());
        let mut warnings = s.insights.volume_warnings.clone();
        if !volume.skipped.is_empty() {
            warnings.push(format!("{} corrupt slice(s) skipped", volume.skipped.len()));
        }
        warnings.extend(stack.warnings.iter().map(ToString::to_string));
        row.warnings = warnings.join("; ");
        row.status = "ok".into();
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        let timings = inference::output::Timings::of(&analysis, 0.0, row.seconds_load, 0.0);
        inference::output::write_analysis_folder(&partial, &volume, &analysis, &self.engine, source, timings)
        .context("writing the analysis folder failed")?;
        let done = Done {
            content_sha256: row.content_sha256.clone(),
            row: row.clone(),
        };
        crate::outdir::write_atomic(&partial.join(DONE), serde_json::to_string_pretty(&done)?.as_bytes())?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&partial, &dir).context("moving the finished analysis into place failed")?;
        Ok(())
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

pub fn batch(args: &BatchArgs) -> anyhow::Result<i32> {
    let key = pseudonym_key(args)?;
    let inputs = inputs(&args.inputs, &key)?;
    let paths: Vec<PathBuf> = inputs.iter().map(|i| i.path.clone()).collect();
    crate::outdir::ensure_outside_study(&args.out, &paths)?;
    std::fs::create_dir_all(args.out.join("series")).with_context(|| format!("creating {}", args.out.display()))?;
    // Leftovers of an interrupted run are never results; a partial folder whose series another
    // batch holds locked is that batch's work in progress, and stays.
    if let Ok(entries) = std::fs::read_dir(args.out.join("series")) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "partial") {
                let key = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if let Ok(lock) = series_lock(&args.out, &key)
                    && lock.try_lock().is_ok()
                {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
    }
    let engine = super::analyze::open_engine(args.model.clone(), args.device, false, args.threads.map(usize::from))?;
    eprintln!("execution provider: {}", engine.provider.describe());
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        // A second Ctrl-C while the current series finishes its cleanup ends at once.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!("\ninterrupted: stopping after cleaning up the current series (Ctrl-C again to quit now)");
        });
    }
    let label_names = engine
        .manifest
        .labels
        .iter()
        .filter(|l| l.index != 0)
        .map(|l| l.name.clone())
        .collect();
    let mut b = Batch {
        args,
        engine,
        label_names,
        rows: Vec::new(),
        cancel,
        last_table: Instant::now(),
        key,
    };
    let started = Instant::now();
    // Over the inputs, with the time left; the per-series lines print above it.
    let bar = crate::commands::progress::Bar::new("inputs", Some(inputs.len() as u64));
    let mut seen = std::collections::HashSet::new();
    let mut deferred: Vec<Deferred> = Vec::new();
    let (mut slices_done, mut slices_seen) = (0usize, 0usize);
    for (n, input) in inputs.iter().enumerate() {
        bar.set(n as u64, None);
        if b.cancel.load(Ordering::SeqCst) {
            break;
        }
        if let Some(r) = &input.retrieve
            && let Err(e) = retrieve(r, &input.path, &b.cancel)
        {
            let mut row = b.blank_row(input);
            row.error = format!("retrieve from node {} failed: {e:#}", r.node.name());
            bar.line(&format!("[input {}/{}] error: {}", n + 1, inputs.len(), row.error));
            b.rows.push(row);
            continue;
        }
        let set = match StudySet::open(std::slice::from_ref(&input.path), &|_: Progress| {}, &b.cancel) {
            Ok(set) => set,
            Err(_) if b.cancel.load(Ordering::SeqCst) => break,
            Err(e) => {
                let mut row = b.blank_row(input);
                row.error = format!("scanning failed: {e}");
                bar.line(&format!("[input {}/{}] error: {}", n + 1, inputs.len(), row.error));
                b.rows.push(row);
                continue;
            }
        };
        let mut found = 0;
        for series in set.series() {
            let Some((_, stack)) = series.largest_stack() else {
                continue;
            };
            let source = inference::output::Source::of(series, stack, "every series of the input (batch)");
            let study_uid = source.study_uid.clone();
            found += 1;
            let mut row = b.blank_row(input);
            row.study = shown_uid(&study_uid, args.keep_uids, &b.key);
            row.series = shown_uid(&series.uid, args.keep_uids, &b.key);
            row.modality = series.modality.clone().unwrap_or_default();
            row.slices = stack.slices.len();
            if !seen.insert((study_uid.clone(), series.uid.clone())) {
                row.status = "skipped".into();
                row.error = "the same series again (already in this batch)".into();
                b.rows.push(row);
                continue;
            }
            if let Some(why) = not_analysable(series, stack, args.min_slices, &b.engine.manifest.input.modalities) {
                row.status = "skipped".into();
                row.error = why;
                b.rows.push(row);
                continue;
            }
            let t = Instant::now();
            match b.run_series(&mut row, stack, &source, false) {
                Err(e) if e.is::<Busy>() => {
                    row.status = "pending".into();
                    row.error = e.to_string();
                    deferred.push(Deferred {
                        stack: stack.clone(),
                        source: source.clone(),
                        row: b.rows.len(),
                    });
                    b.rows.push(row);
                    continue;
                }
                Err(e) => failed(&mut row, &e, &args.out),
                Ok(()) => {}
            }
            if b.cancel.load(Ordering::SeqCst) && row.status == "error" {
                break; // the interrupted series is not a result
            }
            slices_seen += row.slices;
            if row.status == "ok" {
                slices_done += row.slices;
            }
            let per_input = started.elapsed().as_secs_f64() / (n as f64 + 1.0);
            let eta = per_input * (inputs.len() - n - 1) as f64;
            bar.line(&format!(
                "[input {}/{}] {:<7} series {} ({} slices) {:.1} s{}  ETA {}",
                n + 1,
                inputs.len(),
                row.status,
                row.series,
                row.slices,
                t.elapsed().as_secs_f64(),
                if row.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", row.error)
                },
                duration(eta)
            ));
            b.rows.push(row);
            if b.last_table.elapsed().as_secs_f64() > 2.0 {
                b.write_table().context("writing the results table failed")?;
            }
        }
        if found == 0 {
            let mut row = b.blank_row(input);
            row.error = match set.unreadable.len() {
                0 => "no image series found".into(),
                k => format!("no image series found ({k} unreadable file(s))"),
            };
            bar.line(&format!("[input {}/{}] error: {}", n + 1, inputs.len(), row.error));
            b.rows.push(row);
        }
    }
    bar.done();
    // The series another batch held: by now usually finished (their result is read), else
    // waited for.
    for d in deferred {
        if b.cancel.load(Ordering::SeqCst) {
            break;
        }
        let mut row = b.rows[d.row].clone();
        if let Err(e) = b.run_series(&mut row, &d.stack, &d.source, true) {
            failed(&mut row, &e, &args.out);
        }
        if row.status == "ok" {
            slices_done += row.slices;
        }
        eprintln!("[deferred] {:<7} series {} {}", row.status, row.series, row.error);
        b.rows[d.row] = row;
    }
    b.write_table().context("writing the results table failed")?;
    let count = |s: &str| b.rows.iter().filter(|r| r.status == s).count();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "{} series: {} analysed, {} cached, {} skipped, {} failed in {} ({:.1} analysed/min, {} of {} slices run); table in {}",
        b.rows.len(),
        count("ok"),
        count("cached"),
        count("skipped"),
        count("error"),
        duration(minutes * 60.0),
        count("ok") as f64 / minutes.max(1e-9),
        slices_done,
        slices_seen,
        args.out.join(RESULTS).display()
    )?;
    if b.cancel.load(Ordering::SeqCst) {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if count("error") > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::inputs::read_list;
    use super::*;

    /// Lists as spreadsheets save them read alike: comma or semicolon separated, with a
    /// byte-order mark ("CSV UTF-8"), in the Windows code page, quoted fields with separators,
    /// quotes and line breaks, blank lines; and the results table reads back field for field.
    #[test]
    fn lists_read_as_spreadsheets_save_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let read = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            read_list(&path).expect("reads")
        };
        let expected_header = vec!["path".to_string(), "note".to_string()];
        let comma = read("comma.csv", b"path,note\nstudies/a,first\n\n\"studies/b, c\",\"said \"\"hi\"\"\"\n");
        assert_eq!(comma.0, expected_header);
        assert_eq!(comma.1.iter().map(|(_, f)| f[0].as_str()).collect::<Vec<_>>(), ["studies/a", "studies/b, c"]);
        assert_eq!(comma.1[1].1[1], "said \"hi\"");
        assert_eq!(comma.1[1].0, 4, "line numbers count the blank line");
        let excel = read("excel.csv", b"\xEF\xBB\xBFpath;note\r\nstudies/a;x,y\r\nstudies/\xC3\xA9t\xC3\xA9;\r\n");
        assert_eq!(excel.0, expected_header, "the byte-order mark is not part of the first column");
        assert_eq!(excel.1[0].1, ["studies/a", "x,y"]);
        assert_eq!(excel.1[1].1[0], "studies/\u{e9}t\u{e9}");
        let cp1252 = read("latin.csv", b"path;note\nstudies/\xE9t\xE9;\n");
        assert_eq!(cp1252.1[0].1[0], "studies/\u{e9}t\u{e9}");
        let tabs = read("tabs.csv", b"path\tnote\nstudies/a\tb;c\n");
        assert_eq!(tabs.1[0].1, ["studies/a", "b;c"]);

        let row = Row {
            input: "in, \"quoted\"\nfolder".into(),
            error: "a; b".into(),
            ..Row::default()
        };
        let text = table(&["CSF".to_string()], std::slice::from_ref(&row)).expect("table");
        let back = read("results.csv", text.as_bytes());
        assert_eq!(back.1[0].1[0], row.input);
        assert_eq!(back.1[0].1[6], row.error);
    }

    #[test]
    fn pseudonyms_are_stable_and_hide_the_uid() {
        let uid = "1.2.826.0.1.3680043.8.498.1";
        let key = [3u8; 32];
        assert_eq!(shown_uid(uid, false, &key), shown_uid(uid, false, &key));
        assert_eq!(shown_uid(uid, false, &key).len(), 16);
        assert!(!shown_uid(uid, false, &key).contains("1.2.826"));
        assert_eq!(shown_uid(uid, true, &key), uid);
    }

    #[test]
    fn the_table_has_one_volume_column_per_label() {
        let names = vec!["CSF".to_string(), "grey matter".to_string()];
        let text = table(&names, &[]).expect("table");
        assert!(
            text.starts_with("input,study,series,modality,slices,status,error,csf_ml,grey_matter_ml,mean_confidence")
        );
        assert!(text.contains(",faithfulness_passed,key_regions,key_regions_ml,warnings,"), "{text}");
    }
}
