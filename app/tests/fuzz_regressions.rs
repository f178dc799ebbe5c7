//! Every input the fuzzers (fuzz/) found a crash, hang or memory blow-up with, kept in
//! app/tests/fuzz-regressions and run through the real binary: it must end with a clear
//! result or error, within bounded memory. Files named dicomdir-* are opened as a DICOMDIR.

mod common;

use std::process::Command;

#[test]
fn fuzzer_findings_stay_fixed() {
    let dir = common::repo().join("app/tests/fuzz-regressions");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let tmp = tempfile::tempdir().expect("tmp");
        let target = if name.starts_with("dicomdir-") {
            let d = tmp.path().join("DICOMDIR");
            std::fs::copy(&path, &d).expect("copy");
            d
        } else {
            path.clone()
        };
        let out = Command::new("/usr/bin/time")
            .args(["-f", "peak-rss-kb %M", env!("CARGO_BIN_EXE_focal"), "info", "--decode"])
            .arg(&target)
            .output()
            .expect("GNU time");
        let err = String::from_utf8_lossy(&out.stderr);
        let kb: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("peak-rss-kb "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX);
        let code = out.status.code();
        eprintln!("{name}: exit {code:?}, peak RSS {} MiB", kb / 1024);
        assert!(
            matches!(code, Some(0..=2)),
            "{name}: focal ended with {:?}\n{err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{name}: panic\n{err}");
        assert!(kb < 512 * 1024, "{name}: peak RSS {kb} KiB");
        ran += 1;
    }
    assert!(ran >= 2, "only {ran} regression inputs");
}
