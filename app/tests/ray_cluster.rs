//! The Ray job (`cluster/focal_ray`) on a real Ray cluster: a head and a worker node started
//! with `ray start` inside a private network namespace, so every server Ray runs listens on
//! 127.0.0.1 only (`cluster/tests/ray_scenario.py` drives the cluster and reports). On an
//! archive of 22 studies made from the sample study's real files, the job's table must equal
//! `focal batch`'s, a task worker SIGKILLed mid-study must be retried to completion, a second
//! run must do no work, and the cluster must be gone at the end.

mod common;

use std::path::Path;

use common::column;

/// Twenty copies of the sample's middle 16 slices, plus the truncated and the partly corrupt
/// study: 22 studies, small enough for two 1-CPU nodes.
const COPIES: usize = 20;
const SLICES: usize = 16;

/// Every path under `dir` whose name ends in `.partial` (a half-written analysis folder).
fn partial_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".partial") {
            out.push(path.display().to_string());
        }
        if path.is_dir() {
            out.extend(partial_paths(&path));
        }
    }
    out
}

/// The rows without the columns that may differ between two runs of the same work.
fn comparable(header: &[String], rows: &[Vec<String>]) -> Vec<Vec<String>> {
    let varying = ["seconds_load", "seconds_analysis", "folder"].map(|c| column(header, c));
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .filter(|(i, _)| !varying.contains(i))
                .map(|(_, f)| f.clone())
                .collect()
        })
        .collect()
}

#[test]
fn the_ray_job_tables_what_focal_batch_does_survives_a_killed_worker_and_redoes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = common::batch_corpus(tmp.path(), COPIES, Some(SLICES));
    let list = archive.join("studies.csv").display().to_string();
    // The network alone: this tests the job around the model, not the model.
    let model_dir = tmp.path().join("model");
    std::fs::create_dir_all(&model_dir).expect("mkdir");
    let model = common::network_only_model(&model_dir);

    // The reference: focal batch on this machine.
    let local = tmp.path().join("local");
    let (code, stdout, stderr) = common::run_focal(&[
        "batch",
        &list,
        "--out",
        &local.display().to_string(),
        "--device",
        "cpu",
        "--model",
        &model.display().to_string(),
    ]);
    assert_eq!(code, 1, "one study is unreadable\n{stdout}\n{stderr}");
    let (header, rows) = common::csv_table(&local.join("results.csv"));
    assert_eq!(rows.len(), COPIES + 2, "{rows:?}");

    // The same archive through Ray.
    let scenario = tmp.path().join("ray");
    std::fs::create_dir_all(&scenario).expect("mkdir");
    let report = common::run_scenario(
        "cluster/tests/ray_scenario.py",
        &[std::ffi::OsStr::new(&list), scenario.as_os_str(), model.as_os_str()],
        &[],
    );
    let first = &report["first"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let detail = format!("{}\n{}", text(&first["stdout"]), text(&first["stderr"]));

    // A worker died mid-study and the job still finished every study.
    let killed = first["killed"].as_array().expect("killed list");
    assert_eq!(killed.len(), 1, "no task worker was killed mid-study\n{detail}");
    assert_eq!(first["code"], 1, "one study is unreadable\n{detail}");
    assert!(text(&first["stdout"]).contains(" 0 task(s) failed"), "{detail}");

    // Its table is focal batch's, row for row, but for timings and where the folders are.
    let (ray_header, ray_rows) = common::csv_table(&scenario.join("first.csv"));
    assert_eq!(ray_header, header);
    assert_eq!(comparable(&header, &ray_rows), comparable(&header, &rows), "{detail}");
    let status = column(&header, "status");
    let folder = column(&header, "folder");
    for r in ray_rows.iter().filter(|r| r[status] == "ok") {
        let dir = scenario.join("job").join(&r[folder]);
        for f in ["labels.nii", "attention.nii", "summary.json", "batch.json"] {
            assert!(dir.join(f).is_file(), "{} missing", dir.join(f).display());
        }
    }
    assert_eq!(partial_paths(&scenario.join("job")), Vec::<String>::new());

    // The second run finds everything done: nothing analysed, the unreadable study tried again.
    let second = &report["second"];
    assert_eq!(second["code"], 1, "{}", text(&second["stderr"]));
    let summary = text(&second["stdout"]);
    assert!(
        summary.contains(" 0 analysed") && summary.contains(&format!("{} cached", COPIES + 1)),
        "{summary}"
    );

    // Ray listened, on loopback only, and nothing of it is left.
    let listening = report["listening"].as_array().expect("listening list");
    assert!(!listening.is_empty(), "Ray listened on nothing?\n{report}");
    assert_eq!(report["non_loopback"], serde_json::json!([]), "{report}");
    assert_eq!(report["after_stop"], serde_json::json!([]), "the cluster was not stopped: {report}");
}
