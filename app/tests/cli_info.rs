//! `focal info` end to end on the bundled sample study: the table, JSON, exit codes and PHI.

mod common;

use std::path::PathBuf;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/sample-study")
}

fn focal(args: &[&str]) -> (i32, String, String) {
    common::run_focal(args)
}

const PHI: [&str; 5] = common::SAMPLE_PHI;

#[test]
fn sample_study_is_one_sorted_axial_series() {
    let (code, stdout, stderr) = focal(&["info", sample().to_str().unwrap_or_default(), "--json", "--decode"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let series = &v["patients"][0]["studies"][0]["series"];
    assert_eq!(series.as_array().map(Vec::len), Some(1));
    let stack = &series[0]["stacks"][0];
    assert_eq!(stack["images"], 89);
    assert_eq!(
        (stack["columns"].as_u64(), stack["rows"].as_u64()),
        (Some(181), Some(217))
    );
    assert_eq!(stack["plane"], "axial");
    assert_eq!(stack["spacing_mm"], serde_json::json!([1.0, 1.0, 2.0]));
    assert_eq!(stack["warnings"].as_array().map(Vec::len), Some(0));
    assert!(stack["decode"]["error"].is_null());
    assert_eq!(v["unreadable"].as_array().map(Vec::len), Some(0));
}

#[test]
fn patient_identifiers_only_with_show_phi() {
    let path = sample();
    let path = path.to_str().unwrap_or_default();
    for args in [
        vec!["info", path],
        vec!["info", path, "--json"],
        vec!["-vvv", "info", path, "--decode"],
    ] {
        let (code, stdout, stderr) = focal(&args);
        assert_eq!(code, 0);
        for secret in PHI {
            assert!(!stdout.contains(secret), "{secret} in stdout of {args:?}");
            assert!(!stderr.contains(secret), "{secret} in logs of {args:?}");
        }
    }
    let (_, stdout, _) = focal(&["info", path, "--show-phi"]);
    assert!(
        stdout.contains("Sample^Colin") && stdout.contains("FOCAL-SAMPLE-0001"),
        "{stdout}"
    );
}

#[test]
fn nothing_readable_exits_non_zero_and_missing_paths_are_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("notes.txt"), "not DICOM").expect("write");
    let (code, stdout, _) = focal(&["info", tmp.path().to_str().unwrap_or_default()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("1 non-DICOM file(s) skipped"), "{stdout}");
    let (code, _, stderr) = focal(&["info", "/no/such/folder"]);
    assert_eq!(code, focal::exit::INPUT);
    assert!(stderr.contains("not found"), "{stderr}");
}
