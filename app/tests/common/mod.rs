//! Helpers shared by the integration tests: locating the real-data corpus, reading .npy,
//! copying the shipped and the candidate model.
#![allow(dead_code)]

use std::path::PathBuf;

/// The pydicom / pydicom-data corpus and its pydicom reference, prepared by `scripts/test.sh`.
pub struct Corpus {
    pub files: PathBuf,
    pub reference: PathBuf,
}

pub fn corpus() -> Corpus {
    let base = std::env::var_os("FOCAL_CORPUS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/focal/corpus")))
        .unwrap_or_default();
    let c = Corpus {
        files: base.join("wheels"),
        reference: base.join("ref"),
    };
    assert!(
        c.reference.join("index.json").is_file(),
        "the test corpus is missing under {}: run scripts/test.sh (it fetches the pydicom wheels and computes the reference)",
        base.display()
    );
    c
}

/// A float array from a little-endian .npy file (f4 or f8), with its shape.
pub fn read_npy(path: &std::path::Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).expect("ascii header");
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .expect("descr");
    assert!(header.contains("'fortran_order': False"));
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("dim"))
        .collect();
    let body = &bytes[start + header_len..];
    let values = match descr {
        "<f4" => body
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "<f8" => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        "<f2" => body
            .chunks_exact(2)
            .map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        other => panic!("unsupported npy dtype {other}"),
    };
    (shape, values)
}

/// IEEE 754 half precision to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1F);
    let frac = u32::from(h & 0x3FF);
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: normalise it.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3FF) << 13)
        }
        31 => sign | 0x7F80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the focal binary; returns exit code, stdout and stderr. `RUST_LOG` is cleared so the
/// verbosity flags decide.
pub fn run_focal(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_focal"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("focal runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The sample study, scanned and organised.
pub fn sample_set() -> focal::study::StudySet {
    focal::study::StudySet::open(
        &[repo().join("assets/sample-study")],
        &|_: focal::study::Progress| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("sample")
}

/// The sample study's stack and its decoded volume.
pub fn sample_volume() -> (focal::study::Stack, focal::study::Volume) {
    let stack = sample_set().series().next().expect("series").stacks[0].clone();
    let volume =
        focal::study::load_volume(&stack, &|_| {}, &std::sync::atomic::AtomicBool::new(false)).expect("volume");
    (stack, volume)
}

/// The sample study's SeriesInstanceUID.
pub fn sample_series_uid() -> String {
    sample_set().series().next().expect("series").uid.clone()
}

/// The identifiers written into the sample study by models/training/make_sample_study.py.
#[allow(dead_code)]
pub const SAMPLE_PHI: [&str; 5] = [
    "Sample^Colin",
    "FOCAL-SAMPLE-0001",
    "19700101",
    "FOCALACC0001",
    "Focal Sample Institution",
];

/// Runs the focal binary under GNU time; returns its output and peak RSS in KiB
/// (u64::MAX when time printed none).
#[allow(dead_code)]
pub fn run_focal_measured(args: &[&std::ffi::OsStr]) -> (std::process::Output, u64) {
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kb %M", env!("CARGO_BIN_EXE_focal")])
        .args(args)
        .output()
        .expect("GNU time (apt package time; scripts/setup.sh installs it)");
    let kb = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    (out, kb)
}

/// An archive made by `app/tests/reference/make_batch_corpus.py` under `dir/archive`: `copies`
/// copies of the sample study under other UIDs (each cut to its middle `slices` slices if
/// given), a study of truncated files and one with two corrupt slices; `studies.csv` lists them.
pub fn batch_corpus(dir: &std::path::Path, copies: usize, slices: Option<usize>) -> PathBuf {
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON: a Python with pydicom (scripts/test.sh sets it)");
    let out = dir.join("archive");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(repo().join("app/tests/reference/make_batch_corpus.py"))
        .arg(repo().join("assets/sample-study"))
        .arg(&out)
        .arg(copies.to_string());
    if let Some(n) = slices {
        cmd.arg(n.to_string());
    }
    let run = cmd.output().expect("python runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    out
}

/// A results table as (header, rows of fields); its fields never hold commas.
pub fn csv_table(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().expect("header");
    (header, lines.collect())
}

/// The index of a table's column.
pub fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

/// Runs a scenario script (the test venv's Python, `$FOCAL_PYTHON`) as
/// `SCRIPT FOCAL ARGS…` with `env` added, and returns the JSON report it prints as the last line
/// of stdout; panics with both outputs when it fails.
pub fn run_scenario(script: &str, args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> serde_json::Value {
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON: the test venv (scripts/setup.sh)");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(repo().join(script))
        .arg(env!("CARGO_BIN_EXE_focal"))
        .args(args)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = cmd.output().expect("python runs");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{script} failed\n{out}\n{err}");
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script}: no report ({e})\n{out}\n{err}"))
}

/// Runs a PACS scenario (`script SAMPLE OUT [extra…]`) against a real Orthanc it starts on
/// loopback, with a private runtime folder; its report.
pub fn run_orthanc_scenario(script: &str, extra: &[&std::ffi::OsStr]) -> serde_json::Value {
    assert!(
        std::process::Command::new("Orthanc").arg("--version").output().is_ok(),
        "Orthanc is not installed (scripts/setup.sh installs Debian's orthanc and orthanc-dicomweb)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let runtime = tempfile::tempdir().expect("runtime dir");
    let sample = repo().join("assets/sample-study");
    let mut args = vec![sample.as_os_str(), tmp.path().as_os_str()];
    args.extend_from_slice(extra);
    run_scenario(script, &args, &[("XDG_RUNTIME_DIR", runtime.path().as_os_str())])
}

/// One step of a scenario's report (`{"steps": {name: {code, stdout, stderr, seconds}}}`).
pub fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &report["steps"][name]
}

/// A report value as text ("" when it is not a string).
pub fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The JSON a step printed, after checking that it succeeded.
pub fn json_out(report: &serde_json::Value, name: &str) -> serde_json::Value {
    let s = step(report, name);
    assert_eq!(s["code"], 0, "{name} failed: {}\n{}", text(&s["stdout"]), text(&s["stderr"]));
    serde_json::from_str(&text(&s["stdout"])).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", s["stdout"]))
}

/// The PACS scenarios' queries of the uploaded sample: all studies (one, the sample's 89
/// instances), by patient with a date range and modality (one), by CT (none), before 1900
/// (none), and the study's series (one, MR). Returns the study row list and the series list.
pub fn assert_finds_the_sample(report: &serde_json::Value, study: &str) -> (serde_json::Value, serde_json::Value) {
    let all = json_out(report, "find_all");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all[0]["StudyInstanceUID"], study);
    assert_eq!(all[0]["NumberOfStudyRelatedInstances"], "89");
    assert_eq!(json_out(report, "find_mr_dated").as_array().map(Vec::len), Some(1));
    assert_eq!(json_out(report, "find_ct").as_array().map(Vec::len), Some(0));
    assert_eq!(json_out(report, "find_old").as_array().map(Vec::len), Some(0));
    let series = json_out(report, "find_series");
    assert_eq!(series.as_array().map(Vec::len), Some(1), "{series}");
    assert_eq!(series[0]["Modality"], "MR");
    (all, series)
}

/// After a retrieve through a link that dropped mid-study: some but not all of the 89 files
/// are there, each whole (a .dcm that pydicom read), and the next retrieve (`get_resumed`)
/// fetched only the rest.
pub fn assert_drop_kept_whole_files_and_resumed(report: &serde_json::Value) {
    let kept = report["after_drop_files"].as_array().expect("files");
    assert!(
        !kept.is_empty() && kept.len() < 89,
        "the drop should land mid-study: {} files",
        kept.len()
    );
    assert!(
        kept.iter().all(|f| text(f).ends_with(".dcm")),
        "a partial file is left: {kept:?}"
    );
    assert_eq!(report["after_drop_readable"].as_u64(), Some(kept.len() as u64));
    let resumed = json_out(report, "get_resumed");
    assert_eq!(resumed["already_had"].as_u64(), Some(kept.len() as u64), "{resumed}");
    assert_eq!(resumed["received"].as_u64(), Some(89 - kept.len() as u64), "{resumed}");
}

/// The PACS scenarios' last act: the retrieved study was analysed and exported, the SEG,
/// Parametric Map and Encapsulated PDF were stored by step `store`, and the node now lists
/// them as series of the same study.
pub fn assert_results_joined_study(report: &serde_json::Value, store: &str) {
    assert_eq!(step(report, "analyze")["code"], 0, "{}", step(report, "analyze"));
    assert_eq!(step(report, "export")["code"], 0, "{}", step(report, "export"));
    let stored = step(report, store);
    assert_eq!(stored["code"], 0, "{stored}");
    assert!(text(&stored["stdout"]).contains("3 of 3 file(s) stored"), "{stored}");
    let after = json_out(report, "find_series_after_store");
    let mut modalities: Vec<String> = after
        .as_array()
        .expect("series")
        .iter()
        .map(|s| text(&s["Modality"]))
        .collect();
    modalities.sort();
    assert_eq!(modalities, ["DOC", "MR", "OT", "SEG"], "{after}");
    assert_eq!(report["orthanc_studies_after_store"], 1, "the results joined the study");
}

/// Runs a script of `app/tests/reference` on the sample study, writing into `out` (with any
/// further arguments); returns what it printed. Fails the test if the script fails.
pub fn from_sample(script: &str, out: &std::path::Path, more: &[&str]) -> Vec<u8> {
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON (scripts/test.sh sets it)");
    let made = std::process::Command::new(python)
        .arg(repo().join("app/tests/reference").join(script))
        .arg(repo().join("assets/sample-study"))
        .arg(out)
        .args(more)
        .output()
        .expect("python runs");
    assert!(made.status.success(), "{script}: {}", String::from_utf8_lossy(&made.stderr));
    made.stdout
}

/// An oblique copy of the sample head under `dir` (reference/make_oblique_series.py): its
/// folder, and the geometry the script wrote into its files, as the script computed it.
pub fn make_oblique_series(dir: &std::path::Path) -> (PathBuf, serde_json::Value) {
    let out = dir.join("oblique");
    let printed = from_sample("make_oblique_series.py", &out, &[]);
    (out, serde_json::from_slice(&printed).expect("geometry json"))
}

/// The shipped model's manifest (parsed, to be edited) and its networks, copied into `tmp`;
/// returns where the manifest is to be written.
pub fn copy_model(tmp: &std::path::Path) -> (PathBuf, serde_json::Value) {
    let src = repo().join("models");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("brain-tissue.json")).expect("read")).expect("json");
    copy_files(&manifest, &[], tmp);
    (tmp.join("brain-tissue.json"), manifest)
}

/// Every file a manifest names (its network, the brain extent's, the tissue model's atlas,
/// the brain extractor's), copied into `tmp` from the first of `first` that holds it, else
/// from models/ (skipped when already copied from there).
fn copy_files(manifest: &serde_json::Value, first: &[PathBuf], tmp: &std::path::Path) {
    let models = repo().join("models");
    let mut files: Vec<&str> = manifest["file"].as_str().into_iter().collect();
    files.extend(manifest["extent"]["file"].as_str());
    files.extend(manifest["tissue_em"]["deep_gm_atlas"]["file"].as_str());
    for stage in ["locate", "segment"] {
        files.extend(manifest["extractor"][stage]["file"].as_str());
    }
    for f in files {
        let to = tmp.join(f);
        let from = match first.iter().map(|d| d.join(f)).find(|p| p.is_file()) {
            Some(from) => from,
            None if to.exists() => continue,
            None => models.join(f),
        };
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh makes models/deepbet)", from.display()));
    }
}

/// The shipped network without its whole-volume steps (deepbet's brain, the scan's tissue
/// model and the key regions found in it): its labels alone, seconds per study instead of tens
/// in a debug build. For tests of what is around the model (batch tables, resuming, Ray), not
/// of the model.
pub fn network_only_model(tmp: &std::path::Path) -> PathBuf {
    let (path, mut manifest) = copy_model(tmp);
    manifest["postprocess"] = serde_json::json!(["largest_component"]);
    let m = manifest.as_object_mut().expect("object");
    m.remove("extractor");
    m.remove("tissue_em");
    m.remove("key_regions");
    write_json(&path, &manifest);
    path
}

/// The Model 3 candidate's manifest (models/candidates/tissue-em.json merged into the shipped
/// one, as models/training/evaluate_tissue.py does) with every file it names, in `tmp`.
#[allow(dead_code)]
pub fn candidate_model(tmp: &std::path::Path) -> PathBuf {
    candidate_from(tmp, "tissue-em.json")
}

/// The key-region candidate's manifest (models/candidates/key-regions.json merged into the
/// shipped one: the tissue model leaving outliers out, and the key regions' settings), in `tmp`.
#[allow(dead_code)]
pub fn key_regions_model(tmp: &std::path::Path) -> PathBuf {
    candidate_from(tmp, "key-regions.json")
}

/// The shipped manifest with a candidate's top-level sections (models/candidates/`file`) in
/// place of its own, and every file it names, in `tmp`.
fn candidate_from(tmp: &std::path::Path, file: &str) -> PathBuf {
    let (path, mut manifest) = copy_model(tmp);
    let models = repo().join("models");
    let candidate: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("candidates").join(file)).expect("read candidate"),
    )
    .expect("candidate json");
    for (k, v) in candidate.as_object().expect("object") {
        manifest[k] = v.clone();
    }
    // The candidate's own files (its network, its atlas) from models/candidates/.
    copy_files(&manifest, &[models.join("candidates")], tmp);
    write_json(&path, &manifest);
    path
}

/// dicom3tools' dciodvfy on one DICOM object: its report (stdout, then stderr), whose lines
/// starting "Error" are what the IOD's rules refuse.
#[allow(dead_code)]
pub fn dciodvfy(path: &std::path::Path) -> String {
    let out = std::process::Command::new("dciodvfy")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("dciodvfy is needed (scripts/setup.sh installs it): {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

pub fn write_json(path: &std::path::Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string(v).expect("json")).expect("write");
}
