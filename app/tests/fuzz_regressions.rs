//! Every input the fuzzers (fuzz/) found a crash, hang or memory blow-up with, kept in
//! app/tests/fuzz-regressions and run through the real binary: it must end with a clear
//! result or error, within bounded memory. Files named dicomdir-* are opened as a DICOMDIR.

mod common;

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
        let (out, kb) = common::run_focal_measured(&["info".as_ref(), "--decode".as_ref(), target.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        eprintln!("{name}: exit {code:?}, peak RSS {} MiB", kb / 1024);
        // Done, nothing readable, or the input refused (exit codes: focal --help).
        assert!(
            code.is_some_and(|c| [focal::exit::OK, focal::exit::FAILED, focal::exit::INPUT].contains(&c)),
            "{name}: focal ended with {:?}\n{err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{name}: panic\n{err}");
        assert!(kb < 512 * 1024, "{name}: peak RSS {kb} KiB");
        ran += 1;
    }
    assert!(ran >= 2, "only {ran} regression inputs");
}
