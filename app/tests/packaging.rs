//! Focal as a desktop program: the desktop entry, icon and DICOM file type pass their
//! validators (desktop-file-validate, xmllint, update-mime-database), the manual page renders
//! without groff warnings, the completion scripts parse, and the Debian package built by
//! app/packaging/linux/build-deb.sh (cargo-deb) unpacks onto a clean root where its `focal` runs
//! the model with the runtime and model it carries.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn packaging() -> std::path::PathBuf {
    common::repo().join("app/packaging/linux")
}

#[test]
fn desktop_entry_icon_and_file_type_pass_their_validators() {
    let desktop = packaging().join("focal.desktop");
    let (ok, out, err) = run("desktop-file-validate", &[desktop.to_str().expect("path")]);
    assert!(ok && out.trim().is_empty() && err.trim().is_empty(), "{out}{err}");
    let text = std::fs::read_to_string(&desktop).expect("desktop entry");
    assert!(text.contains("MimeType=application/dicom;") && text.contains("Exec=focal view %F"), "{text}");
    for f in ["focal-dicom.xml", "focal.svg"] {
        let (ok, _, err) = run("xmllint", &["--noout", packaging().join(f).to_str().expect("path")]);
        assert!(ok, "{f}: {err}");
    }
    // The file type, installed into a MIME database of its own, says a DICOM file is one by
    // its "DICM" magic, whatever its name.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mime = tmp.path().join("mime");
    std::fs::create_dir_all(mime.join("packages")).expect("mkdir");
    std::fs::copy(packaging().join("focal-dicom.xml"), mime.join("packages/focal-dicom.xml")).expect("copy");
    let (ok, _, err) = run("update-mime-database", &[mime.to_str().expect("path")]);
    assert!(ok, "{err}");
    let magic = std::fs::read(mime.join("magic")).expect("magic");
    assert!(magic.windows(4).any(|w| w == b"DICM") && String::from_utf8_lossy(&magic).contains("application/dicom"));
}

#[test]
fn manual_page_and_completions_come_from_the_command_line() {
    let (code, man, err) = common::run_focal(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(man.contains(".TH focal") && man.contains("analyses") && man.contains("Exit codes"), "{man}");
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff");
    std::io::Write::write_all(&mut groff.stdin.take().expect("stdin"), man.as_bytes()).expect("write");
    let rendered = groff.wait_with_output().expect("groff ends");
    assert!(rendered.status.success() && rendered.stderr.is_empty(), "{}", String::from_utf8_lossy(&rendered.stderr));

    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, bash, _) = common::run_focal(&["completions", "bash"]);
    assert_eq!(code, 0);
    let script = tmp.path().join("focal.bash");
    std::fs::write(&script, &bash).expect("write");
    let (ok, _, err) = run("bash", &["-n", script.to_str().expect("path")]);
    assert!(ok, "{err}");
    for word in ["analyze", "analyses", "--series", "--latest"] {
        assert!(bash.contains(word), "{word} not completed");
    }
    for shell in ["zsh", "fish"] {
        let (code, text, _) = common::run_focal(&["completions", shell]);
        assert!(code == 0 && text.contains("analyze"), "{shell}");
    }
}

#[test]
fn the_debian_package_unpacks_and_runs_the_model_it_carries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The test's own binary: the dev profile, in the target folder it was built in.
    let target = Path::new(env!("CARGO_BIN_EXE_focal")).parent().and_then(Path::parent).expect("target folder");
    let out = Command::new(common::repo().join("app/packaging/linux/build-deb.sh"))
        .args(["dev", tmp.path().join("deb").to_str().expect("path")])
        .env("CARGO_TARGET_DIR", target)
        .env("FOCAL_DEB_FAST", "1")
        .output()
        .expect("build-deb.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deb = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    let (ok, info, err) = run("dpkg-deb", &["--field", &deb, "Package", "Version", "Depends"]);
    assert!(ok, "{err}");
    assert!(info.contains("Package: focal") && info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{info}");
    let (ok, contents, _) = run("dpkg-deb", &["--contents", &deb]);
    assert!(ok);
    for path in [
        "./usr/bin/focal -> ../lib/focal/focal",
        "./usr/lib/focal/models/brain-tissue.json",
        "./usr/lib/focal/models/deepbet/segment.onnx",
        "./usr/lib/focal/libonnxruntime.so",
        "./usr/share/applications/focal.desktop",
        "./usr/share/icons/hicolor/scalable/apps/focal.svg",
        "./usr/share/mime/packages/focal-dicom.xml",
        "./usr/share/man/man1/focal.1.gz",
        "./usr/share/bash-completion/completions/focal",
        "./usr/share/doc/focal/copyright",
    ] {
        assert!(contents.contains(path), "{path} not in the package:\n{contents}");
    }

    // Unpacked onto a clean root (what dpkg -i writes, without touching this machine), its focal
    // runs from there: the runtime and the model it carries, not the checkout's.
    let root = tmp.path().join("root");
    let (ok, _, err) = run("dpkg-deb", &["-x", &deb, root.to_str().expect("path")]);
    assert!(ok, "{err}");
    let focal = root.join("usr/bin/focal");
    let installed = |args: &[&str]| {
        Command::new(&focal)
            .args(args)
            .env_remove("FOCAL_ORT_LIB")
            .env_remove("RUST_LOG")
            .output()
            .expect("the installed focal runs")
    };
    let version = installed(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("focal {}", env!("CARGO_PKG_VERSION")));
    let results = tmp.path().join("analysis");
    let sample = common::repo().join("assets/sample-study");
    let analysed = installed(&["-v", "analyze", sample.to_str().expect("path"), "--device", "cpu", "--out", results.to_str().expect("path")]);
    let log = String::from_utf8_lossy(&analysed.stderr);
    assert!(analysed.status.success(), "{log}");
    let lib = root.join("usr/lib/focal");
    let from_package = |what: &str| log.lines().any(|l| l.contains(what) && l.contains(lib.to_str().expect("path")));
    assert!(from_package("loading the ONNX Runtime library") && from_package("reading the model manifest"), "{log}");
    assert!(Path::new(&results.join("summary.json")).exists());
}
