//! `focal batch` end to end through the real binary and ONNX Runtime, on an archive made from
//! the sample study's real files (copies under other UIDs, a study of truncated files, one
//! with two corrupt slices): the table, resuming without work, retrying what changed,
//! Ctrl-C leaving no half-written output, and no UIDs or patient identifiers in the table.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::column;

const COPIES: usize = 3;

fn corpus(dir: &Path) -> std::path::PathBuf {
    common::batch_corpus(dir, COPIES, None)
}

fn table(out: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    common::csv_table(&out.join("results.csv"))
}

/// The pseudonym key a test's batch uses: beside its output, not in the user's configuration.
fn key_file(out: &Path) -> std::path::PathBuf {
    out.parent().expect("parent").join("pseudonym.key")
}

/// `focal batch INPUTS… --out OUT --device cpu --pseudonym-key KEY --model MODEL` as
/// arguments. MODEL, beside OUT, is the shipped network without its whole-volume steps: these
/// tests are of the batch around the model, not of the model.
fn batch_args(inputs: &[String], out: &Path) -> Vec<String> {
    let model_dir = out.parent().expect("parent").join("model");
    let model = model_dir.join("brain-tissue.json");
    if !model.exists() {
        std::fs::create_dir_all(&model_dir).expect("mkdir");
        common::network_only_model(&model_dir);
    }
    let mut args = vec!["batch".to_string()];
    args.extend(inputs.iter().cloned());
    args.extend(["--out".into(), out.display().to_string(), "--device".into(), "cpu".into()]);
    args.extend(["--pseudonym-key".into(), key_file(out).display().to_string()]);
    args.extend(["--model".into(), model.display().to_string()]);
    args
}

/// Runs `focal batch` to the end; returns exit code, stdout and stderr.
fn run_batch(inputs: &[String], out: &Path) -> (i32, String, String) {
    let args = batch_args(inputs, out);
    common::run_focal(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_batch_tables_every_series_resumes_without_work_and_survives_bad_studies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = corpus(tmp.path());
    let out = tmp.path().join("batch");
    let list = [archive.join("studies.csv").display().to_string()];
    let (code, stdout, stderr) = run_batch(&list, &out);
    // One study is unreadable: the batch finishes and says so with its exit code.
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let (header, rows) = table(&out);
    let status = column(&header, "status");
    let gm = column(&header, "grey_matter_ml");
    let folder = column(&header, "folder");
    let warnings = column(&header, "warnings");
    let statuses: Vec<&str> = rows.iter().map(|r| r[status].as_str()).collect();
    assert_eq!(statuses.len(), COPIES + 2, "{rows:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == "ok").count(),
        COPIES + 1,
        "{statuses:?}\n{stderr}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == "error").count(), 1, "{statuses:?}");
    let ok: Vec<&Vec<String>> = rows.iter().filter(|r| r[status] == "ok").collect();
    // The copies are the same pixels: the same volumes; the corrupt slices are named.
    let volume = |r: &Vec<String>| r[gm].parse::<f64>().expect("grey matter mL");
    assert!(volume(ok[0]) > 100.0, "{:?}", ok[0]);
    for r in &ok[1..COPIES] {
        assert!((volume(r) - volume(ok[0])).abs() < 1e-6, "{r:?} vs {:?}", ok[0]);
    }
    assert!(
        ok[COPIES][warnings].contains("corrupt slice(s) skipped"),
        "{:?}",
        ok[COPIES]
    );
    for r in &ok {
        let dir = out.join(&r[folder]);
        for f in ["labels.nii", "attention.nii", "summary.json", "batch.json"] {
            assert!(dir.join(f).is_file(), "{} missing", dir.join(f).display());
        }
    }
    // De-identified table: pseudonyms, not UIDs, and no patient identifiers.
    let text = std::fs::read_to_string(out.join("results.csv")).expect("table");
    for secret in common::SAMPLE_PHI
        .iter()
        .chain(["FOCAL-BATCH", "2.25.", "1.2.826"].iter())
    {
        assert!(!text.contains(secret), "{secret} in the table");
    }
    // The pseudonyms are keyed (HMAC-SHA256 under the key the batch made, 0600): the unkeyed
    // sha256 prefix of a UID, which anyone holding the UIDs could compute, is not in the table.
    let key = std::fs::read(key_file(&out)).expect("the batch made its key");
    let series_col = column(&header, "series");
    let set = focal::study::StudySet::open(
        &[archive.clone()],
        &|_: focal::study::Progress| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("archive");
    let uids: Vec<String> = set.series().map(|s| s.uid.clone()).collect();
    for r in &ok {
        let uid = uids.iter().find(|u| focal::uid::pseudonym(u, &key) == r[series_col]);
        assert!(uid.is_some(), "{} is no keyed pseudonym of a series here", r[series_col]);
        assert!(!text.contains(&focal::uid::key(uid.expect("uid"))), "an unkeyed pseudonym in the table");
    }

    // Again: nothing is analysed, the failed study is tried again, the table is the same.
    let (code, stdout, _) = run_batch(&list, &out);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(" 0 analysed") && stdout.contains(&format!("{} cached", COPIES + 1)),
        "{stdout}"
    );
    let (_, again) = table(&out);
    let strip = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != status)
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&rows));

    // A changed file makes its series run again (content hash), and only that one.
    let first = archive.join("study-000");
    let victim = std::fs::read_dir(&first)
        .expect("dir")
        .flatten()
        .next()
        .expect("a file")
        .path();
    let mut bytes = std::fs::read(&victim).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).expect("write");
    let (_, stdout, _) = run_batch(&list, &out);
    assert!(
        stdout.contains(" 1 analysed") && stdout.contains(&format!("{} cached", COPIES)),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_keeps_finished_series_and_leaves_no_half_written_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = corpus(tmp.path());
    let out = tmp.path().join("batch");
    let inputs: Vec<String> = (0..COPIES)
        .map(|k| archive.join(format!("study-{k:03}")).display().to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_focal"))
        .args(batch_args(&inputs, &out))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("focal starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Interrupt while the second series is being analysed.
    for line in lines.by_ref() {
        if line.expect("line").starts_with("[input 1/") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let (header, rows) = table(&out);
    let st = column(&header, "status");
    assert!(!rows.is_empty() && rows.len() < COPIES, "{rows:?}");
    assert!(rows.iter().all(|r| r[st] == "ok"), "{rows:?}");
    let series: Vec<String> = std::fs::read_dir(out.join("series"))
        .expect("series folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(series.len(), rows.len(), "{series:?}");
    assert!(series.iter().all(|s| !s.ends_with(".partial")), "{series:?}");
    // Resuming finishes the rest and redoes none of the finished ones.
    let (code, stdout, stderr) = run_batch(&inputs, &out);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("{} analysed, {} cached", COPIES - rows.len(), rows.len())),
        "{stdout}"
    );
}

/// Four batches started at once on one output (shards on a cluster, or runs started twice by
/// hand): each series is analysed by exactly one of them (the series' lock), the others take
/// its result, nobody removes another's work in progress, and every table that is left lists
/// every series once, whole.
#[test]
fn four_batches_on_one_output_share_the_work_without_doing_it_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = common::batch_corpus(tmp.path(), 4, Some(12));
    let out = tmp.path().join("batch");
    let list = [archive.join("studies.csv").display().to_string()];
    let args = batch_args(&list, &out);
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_focal"))
                .args(&args)
                .env_remove("RUST_LOG")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("focal batch starts")
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().expect("focal batch ends")).collect();
    let mut analysed = std::collections::HashMap::<String, usize>::new();
    for o in &outputs {
        let stderr = String::from_utf8_lossy(&o.stderr);
        // One study of the archive is unreadable: exit code 1, as for one batch alone.
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for line in stderr.lines().filter(|l| l.contains("] ok ")) {
            let series = line.split("series ").nth(1).and_then(|s| s.split(' ').next()).unwrap_or_default();
            *analysed.entry(series.to_string()).or_default() += 1;
        }
    }
    // Every copy of the sample (4) and the study with two corrupt slices: analysed once each.
    assert_eq!(analysed.len(), 5, "{analysed:?}");
    assert!(analysed.values().all(|&n| n == 1), "a series was analysed twice: {analysed:?}");
    let (header, rows) = table(&out);
    let status = column(&header, "status");
    assert_eq!(rows.len(), 4 + 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "a torn row: {rows:?}");
    let finished = rows.iter().filter(|r| r[status] == "ok" || r[status] == "cached").count();
    assert_eq!(finished, 5, "{rows:?}");
    let leftovers: Vec<_> = std::fs::read_dir(out.join("series"))
        .expect("series folder")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
