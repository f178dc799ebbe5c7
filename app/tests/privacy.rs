//! Privacy guarantees: no dependency can talk to the network but DICOM's own (dicom-ul) and the
//! one DICOMweb client (ureq over rustls), both for the nodes a user configures, and only the
//! `pacs` module may use them or open a socket; the binary
//! makes no network system calls during a full analyze and export (strace), and no command
//! prints or logs a patient identifier at trace level unless asked to show them.

mod common;

use std::path::Path;
use std::process::Command;

const PHI: [&str; 5] = common::SAMPLE_PHI;

/// Crates whose only purpose is talking to a network.
const NETWORK_CRATES: [&str; 14] = [
    "reqwest",
    "hyper",
    "ureq",
    "curl",
    "curl-sys",
    "isahc",
    "attohttpc",
    "native-tls",
    "openssl",
    "rustls",
    "tokio-rustls",
    "h2",
    "tungstenite",
    "surf",
];

/// Of those, the DICOMweb client Focal keeps (used only in app/pacs, checked below).
const KEPT_HTTP_CLIENT: [&str; 2] = ["ureq", "rustls"];

/// Words that open network connections in Rust source.
const NETWORK_CODE: [&str; 7] = ["std::net", "TcpStream", "UdpSocket", "dicom_ul", "socket2", "ureq", "rustls"];

#[test]
fn only_the_pacs_crate_opens_connections() {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                for word in NETWORK_CODE {
                    if text.contains(word) {
                        out.push((path.display().to_string(), word.to_string()));
                    }
                }
            }
        }
    }
    // Every crate's sources: app/src (focal) and app/<crate>/src.
    let app = common::repo().join("app");
    let mut found = Vec::new();
    walk(&app.join("src"), &mut found);
    for entry in std::fs::read_dir(&app).expect("read_dir").flatten() {
        if entry.path().join("Cargo.toml").is_file() && entry.path().join("src").is_dir() {
            walk(&entry.path().join("src"), &mut found);
        }
    }
    let pacs = app.join("pacs/src").display().to_string();
    let outside: Vec<_> = found.iter().filter(|(p, _)| !p.starts_with(&pacs)).collect();
    assert!(outside.is_empty(), "network code outside app/pacs (the focal-pacs crate): {outside:?}");
    for own in ["dicom_ul", "ureq"] {
        assert!(
            found.iter().any(|(_, w)| w == own),
            "the check must see the PACS module's own use of {own}"
        );
    }
}

#[test]
fn no_dependency_can_talk_to_the_network() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = common::repo().join("Cargo.toml");
    let tree = Command::new(&cargo)
        .args([
            "tree",
            "-p",
            "focal",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo tree");
    assert!(tree.status.success(), "{}", String::from_utf8_lossy(&tree.stderr));
    let text = String::from_utf8_lossy(&tree.stdout);
    let crates: std::collections::BTreeSet<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    let found: Vec<&&str> = NETWORK_CRATES
        .iter()
        .filter(|c| crates.contains(**c) && !KEPT_HTTP_CLIENT.contains(c))
        .collect();
    assert!(found.is_empty(), "network crates in focal's dependencies: {found:?}");
    for kept in KEPT_HTTP_CLIENT {
        assert!(crates.contains(kept), "the DICOMweb client {kept} is gone: update KEPT_HTTP_CLIENT");
    }
    // ONNX Runtime's crate can download binaries and models; neither feature may be on.
    let features = Command::new(&cargo)
        .args([
            "tree",
            "-p",
            "focal",
            "-e",
            "features",
            "-i",
            "ort",
            "--prefix",
            "none",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo tree");
    let text = String::from_utf8_lossy(&features.stdout);
    for banned in ["download-binaries", "fetch-models", "tls-native", "tls-rustls"] {
        assert!(
            !text.contains(&format!("\"{banned}\"")),
            "ort feature {banned} is enabled"
        );
    }
    eprintln!(
        "{} crates checked: of {NETWORK_CRATES:?} only the DICOMweb client {KEPT_HTTP_CLIENT:?}",
        crates.len()
    );
}

/// Network system calls of one run of focal (`strace -f -e trace=network`).
fn network_calls(args: &[&str], log: &Path) -> Vec<String> {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=network", "-o"])
        .arg(log)
        .arg(env!("CARGO_BIN_EXE_focal"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace (apt package strace; scripts/setup.sh installs it)");
    assert!(status.success(), "focal {args:?} failed under strace");
    std::fs::read_to_string(log)
        .expect("strace log")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn analyze_and_export_make_no_network_calls() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sample = common::repo().join("assets/sample-study");
    let analysis = tmp.path().join("analysis");
    let out = tmp.path().join("export");
    let runs: [(&str, Vec<&str>); 2] = [
        (
            "analyze",
            vec![
                "analyze",
                sample.to_str().expect("utf8"),
                "--out",
                analysis.to_str().expect("utf8"),
            ],
        ),
        (
            "export",
            vec![
                "export",
                sample.to_str().expect("utf8"),
                "--analysis",
                analysis.to_str().expect("utf8"),
                "--out",
                out.to_str().expect("utf8"),
            ],
        ),
    ];
    for (name, args) in runs {
        let calls = network_calls(&args, &tmp.path().join(format!("{name}.strace")));
        // Local sockets only (e.g. glibc asking nscd for the user's home folder).
        let remote: Vec<&String> = calls
            .iter()
            .filter(|l| {
                l.contains("AF_INET") || l.contains("AF_INET6") || l.contains("sin_port") || l.contains("AF_PACKET")
            })
            .collect();
        eprintln!(
            "{name}: {} network system calls, all local: {:?}",
            calls.len(),
            calls.iter().take(4).collect::<Vec<_>>()
        );
        assert!(remote.is_empty(), "{name} made network calls: {remote:#?}");
        let connects = calls
            .iter()
            .filter(|l| l.contains("connect(") || l.contains("sendto(") || l.contains("sendmsg("));
        for c in connects {
            assert!(c.contains("AF_UNIX") || !c.contains("sa_family"), "{name}: {c}");
        }
    }
}

#[test]
fn export_never_logs_identifiers_even_with_keep_phi() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sample = common::repo().join("assets/sample-study");
    let analysis = tmp.path().join("analysis");
    let (code, _, err) = common::run_focal(&[
        "analyze",
        sample.to_str().expect("utf8"),
        "--out",
        analysis.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    for keep in [false, true] {
        let out = tmp.path().join(format!("export-{keep}"));
        let mut args = vec![
            "-vvv",
            "export",
            sample.to_str().expect("utf8"),
            "--analysis",
            analysis.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ];
        if keep {
            args.push("--keep-phi");
        }
        let (code, stdout, stderr) = common::run_focal(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("TRACE"), "trace logging was not on");
        for phi in PHI {
            assert!(
                !stdout.contains(phi) && !stderr.contains(phi),
                "{phi} in export's output (keep-phi {keep})"
            );
        }
    }
}
