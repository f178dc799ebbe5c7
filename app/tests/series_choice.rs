//! Which series Focal analyses, on a study folder as other tools leave it: the sample series
//! beside a highdicom SEG with more frames than the sample has images, a CT copy and a
//! secondary-capture reformat copy with more slices, and a colour screenshot
//! (reference/make_other_objects.py). Also the CLI's exit codes and its behaviour in a pipe.

mod common;

use std::path::{Path, PathBuf};

use focal::study::{ChoiceError, StudySet, Unsuitable};

/// The sample study and the other objects, in one folder under `dir`.
fn crowded_study(dir: &Path) -> PathBuf {
    let out = dir.join("study");
    common::from_sample("make_other_objects.py", &out, &[]);
    let mr = out.join("mr");
    std::fs::create_dir_all(&mr).expect("mkdir");
    for f in std::fs::read_dir(common::repo().join("assets/sample-study")).expect("sample") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, mr.join(f.file_name().expect("name"))).expect("copy");
    }
    out
}

fn open(path: &Path) -> StudySet {
    StudySet::open(&[path.to_path_buf()], &|_| {}, &std::sync::atomic::AtomicBool::new(false)).expect("opens")
}

#[test]
fn the_rule_takes_the_acquired_series_and_names_find_the_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = open(&crowded_study(tmp.path()));
    let sample = common::sample_series_uid();
    let mr = ["MR".to_string()];

    // Unnamed: the sample (89 images), not the SEG (178 frames), the CT copy (90) or the
    // reformat (91); each passed over with what it is.
    let c = set.choose_series(None, &mr).expect("a series");
    assert_eq!(c.series.uid, sample);
    assert_eq!((c.how.as_str(), c.warning.clone()), ("the largest greyscale MR stack", None));
    let why = |n: i64| {
        let title = set.series().find(|s| s.number == Some(n)).expect("series").title();
        c.passed_over.iter().find(|(t, _)| *t == title).map(|(_, w)| w.clone()).expect("passed over")
    };
    assert_eq!(why(90), Unsuitable::Object("a segmentation (SEG)"));
    assert_eq!(why(91), Unsuitable::Modality("CT".into(), mr.to_vec()));
    assert!(matches!(why(92), Unsuitable::Derived(t) if t.contains("SECONDARY")), "{:?}", why(92));
    assert!(matches!(why(93), Unsuitable::Object(w) if w.contains("secondary capture")), "{:?}", why(93));
    // A model that takes any modality would still never take the SEG, the reformat or the
    // screenshot, so the CT copy (90 slices, the largest left) is its choice.
    let any = set.choose_series(None, &[]).expect("a series");
    assert_eq!(any.series.number, Some(91));

    // Names: number, UID, UID prefix, description (whole or a unique part, any case).
    for selector in ["3", "#3", sample.as_str(), &sample[..sample.len() - 3], "colin27", "T1 3D (COLIN27 AVERAGE), AXIAL"] {
        let c = set.choose_series(Some(selector), &mr).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(c.series.uid, sample, "{selector}");
    }
    // Naming overrides the modality and the reformat rule, with a warning; never an object's.
    let ct = set.choose_series(Some("91"), &mr).expect("named CT");
    assert!(matches!(ct.warning, Some(Unsuitable::Modality(..))));
    assert!(set.choose_series(Some("reformat"), &mr).expect("named reformat").warning.is_some());
    match set.choose_series(Some("90"), &mr) {
        Err(ChoiceError::Refused { why: Unsuitable::Object(_), .. }) => {}
        other => panic!("the SEG was not refused: {other:?}"),
    }
    match set.choose_series(Some("copy"), &mr) {
        Err(ChoiceError::Ambiguous { count: 2, matches, .. }) => {
            assert!(matches.contains("CT copy") && matches.contains("reformat copy"), "{matches}")
        }
        other => panic!("two descriptions matched without complaint: {other:?}"),
    }
    let none = set.choose_series(Some("FLAIR"), &mr).expect_err("no FLAIR");
    assert!(none.to_string().contains("T1 3D") && none.to_string().contains("#90"), "{none}");
}

#[test]
fn info_marks_the_default_and_analyze_runs_on_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let study = crowded_study(tmp.path());
    let s = study.to_str().expect("path");
    let sample = common::sample_series_uid();

    let (code, stdout, stderr) = common::run_focal(&["info", s]);
    assert_eq!(code, 0, "{stderr}");
    let line = |needle: &str| stdout.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}:\n{stdout}"));
    let star = line("*3  MR");
    assert!(stdout.lines().nth(star + 1).is_some_and(|l| l.contains(&format!("uid {sample}"))), "{stdout}");
    let seg = line("90  SEG");
    assert!(stdout.lines().nth(seg + 2).is_some_and(|l| l.contains("never analysed: it is a segmentation (SEG)")), "{stdout}");
    assert!(stdout.contains("not analysed unless named: it is CT; the model takes MR"), "{stdout}");
    // The SEG says which series it was made over; the screenshot (made from one of its images)
    // too; acquired series say nothing.
    assert!(stdout.lines().nth(seg + 3).is_some_and(|l| l.contains("made over series #3 MR \"T1 3D")), "{stdout}");
    assert_eq!(stdout.matches("made over series").count(), 1, "{stdout}");
    let (_, json, _) = common::run_focal(&["info", s, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let series = report["patients"][0]["studies"][0]["series"].as_array().expect("series").clone();
    let defaults: Vec<&str> = series.iter().filter(|x| x["analysed_by_default"] == true).filter_map(|x| x["uid"].as_str()).collect();
    assert_eq!(defaults, [sample.as_str()]);
    let seg_json = series.iter().find(|x| x["modality"] == "SEG").expect("the SEG");
    assert_eq!(seg_json["refers_to"], serde_json::json!([sample]));

    // Naming the SEG is refused before the model runs, as an input error (exit 5).
    let out = tmp.path().join("seg-analysis");
    let (code, _, stderr) = common::run_focal(&["analyze", s, "--series", "90", "--device", "cpu", "--out", out.to_str().expect("path")]);
    assert_eq!(code, focal::exit::INPUT, "{stderr}");
    assert!(stderr.contains("cannot be analysed: it is a segmentation (SEG)"), "{stderr}");
    assert!(!out.join("summary.json").exists());

    // Unnamed: the MR series, said and recorded; the objects passed over are listed. The
    // analysis goes where the window keeps its analyses (FOCAL_DATA_DIR, a folder per series
    // named by a hash of its UID), for `focal analyses` and `export --latest` below.
    let data = tmp.path().join("kept");
    let out = data.join(focal::uid::key(&sample));
    let (code, stdout, stderr) = common::run_focal(&["analyze", s, "--device", "cpu", "--out", out.to_str().expect("path")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("series: #3 MR \"T1 3D (Colin27 average), axial\" {sample} (the largest greyscale MR stack, 89 images)")),
        "{stdout}"
    );
    assert!(stdout.contains("passed over: #90 SEG: it is a segmentation (SEG)"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.trim_start().starts_with("background:")) && stdout.contains("white matter:"),
        "volumes of the model's labels only (background is not a finding):\n{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["series_uid"], sample.as_str());
    assert_eq!(summary["series"]["number"], 3);
    assert_eq!(summary["series"]["chosen"], "the largest greyscale MR stack");

    // The kept analyses, listed; exported by id and as the study's latest.
    let with_data = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_focal"))
            .args(args)
            .env("FOCAL_DATA_DIR", &data)
            .env_remove("RUST_LOG")
            .output()
            .expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let id = focal::uid::key(&sample);
    let (code, stdout, stderr) = with_data(&["analyses"]);
    assert_eq!(code, Some(0), "{stderr}");
    let row = stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not listed:\n{stdout}"));
    assert!(row.contains("#3 MR T1 3D") && row.contains("brain-tissue") && row.contains("not reviewed"), "{row}");
    let (_, json, _) = with_data(&["analyses", s, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    let (_, json, _) = with_data(&["analyses", common::repo().join("app/tests/fuzz-regressions").to_str().expect("path"), "--json"]);
    assert_eq!(json.trim(), "[]", "an analysis listed for a study without its series");
    for (how, args) in [("id", vec!["--analysis", &id[..6]]), ("latest", vec!["--latest"])] {
        let export = tmp.path().join(format!("export-{how}"));
        let mut all = vec!["export", s, "--pdf", "--out", export.to_str().expect("path")];
        all.extend(args);
        let (code, _, stderr) = with_data(&all);
        assert_eq!(code, Some(0), "{how}: {stderr}");
        assert!(export.join("report.pdf").exists(), "{how}");
    }
    let (code, _, stderr) = with_data(&["export", s, "--analysis", "abcdef99", "--out", tmp.path().join("x").to_str().expect("path")]);
    assert_eq!(code, Some(focal::exit::INPUT), "{stderr}");
    assert!(stderr.contains("no kept analysis has the id abcdef99"), "{stderr}");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = common::run_focal(&["info", "/no/such/folder"]);
    assert_eq!(code, focal::exit::INPUT, "{stderr}");
    let (code, _, _) = common::run_focal(&["info", "--no-such-flag"]);
    assert_eq!(code, focal::exit::USAGE);
    let sample = common::repo().join("assets/sample-study");
    let out = tmp.path().join("out");
    let (code, _, stderr) = common::run_focal(&[
        "analyze",
        sample.to_str().expect("path"),
        "--series",
        "no such series",
        "--out",
        out.to_str().expect("path"),
    ]);
    assert_eq!(code, focal::exit::INPUT, "{stderr}");
    assert!(stderr.contains("no series matches \"no such series\""), "{stderr}");
    // An export into a folder that holds files is refused as an output problem.
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).expect("mkdir");
    std::fs::write(busy.join("keep.txt"), "mine").expect("write");
    let (code, _, stderr) = common::run_focal(&[
        "export",
        sample.to_str().expect("path"),
        "--out",
        busy.to_str().expect("path"),
    ]);
    assert_eq!(code, focal::exit::OUTPUT, "{stderr}");
    assert_eq!(std::fs::read_to_string(busy.join("keep.txt")).expect("kept"), "mine");

    // Help says how to open the window and lists the codes.
    let (code, help, _) = common::run_focal(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("opens the viewer window") && help.contains(focal::exit::HELP), "{help}");
    assert!(help.contains(focal::places::VARIABLES), "{help}");

    // Where the node list (credentials) goes: FOCAL_CONFIG_DIR, else XDG_CONFIG_HOME/focal,
    // with HOME unset too (then the home folder comes from the user database); never the
    // temporary folder.
    let before: Vec<_> = std::fs::read_dir(std::env::temp_dir()).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    let add = |env: &[(&str, &Path)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_focal"));
        command
            .args(["pacs", "add", "hospital", "--host", "127.0.0.1", "--port", "11112", "--ae", "PACS"])
            .env_remove("HOME")
            .env_remove("FOCAL_CONFIG_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (focal_dir, xdg) = (tmp.path().join("focal-config"), tmp.path().join("xdg"));
    add(&[("FOCAL_CONFIG_DIR", &focal_dir), ("XDG_CONFIG_HOME", &xdg)]);
    assert!(focal_dir.join("pacs.json").exists() && !xdg.exists());
    add(&[("XDG_CONFIG_HOME", &xdg)]);
    assert!(xdg.join("focal").join("pacs.json").exists());
    let after: Vec<_> = std::fs::read_dir(std::env::temp_dir()).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(after.iter().all(|f| before.contains(f) || !f.to_string_lossy().contains("focal")), "{after:?}");

    // No display: one sentence, no winit internals.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_focal"))
        .arg("view")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(focal::exit::FAILED), "{stderr}");
    assert!(stderr.contains("there is no display to open the window on") && !stderr.contains(".cargo"), "{stderr}");
}

#[test]
fn a_reader_that_stops_reading_ends_focal_quietly() {
    // `focal info | head -0`: the pipe is closed before Focal writes its first line.
    let sample = common::repo().join("assets/sample-study");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_focal"))
        .args(["info", sample.to_str().expect("path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// `focal analyze` shows a bar with the time left to a person at a terminal (a pseudo-terminal
/// made by util-linux's `script`), and nothing of it when its stderr goes to a pipe or a file.
#[test]
fn progress_shows_at_a_terminal_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = common::network_only_model(tmp.path());
    let sample = common::repo().join("assets/sample-study");
    let args = |out: &str| {
        vec![
            "analyze".to_string(),
            sample.display().to_string(),
            "--device".into(),
            "cpu".into(),
            "--model".into(),
            model.display().to_string(),
            "--out".into(),
            tmp.path().join(out).display().to_string(),
        ]
    };
    let piped = args("piped");
    let (code, _, stderr) = common::run_focal(&piped.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}') && !stderr.contains("ETA"), "{stderr:?}");

    let command = std::iter::once(env!("CARGO_BIN_EXE_focal").to_string())
        .chain(args("terminal"))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("COLUMNS", "120")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("slices") && shown.contains("ETA") && shown.contains("/89"), "{shown:?}");
}
