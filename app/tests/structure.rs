//! The one-way flow between Focal's layers is Cargo's to enforce: each layer is a crate that
//! depends only on the crates below it. This reads the workspace's crate graph (`cargo
//! metadata`) and fails on any edge that runs upward or sideways.

mod common;

use std::process::Command;

/// The layers from the bottom up, and the Focal crates each may depend on.
const ALLOWED: [(&str, &[&str]); 6] = [
    ("focal-util", &[]),
    ("focal-study", &["focal-util"]),
    ("focal-inference", &["focal-study", "focal-util"]),
    ("focal-pacs", &["focal-study", "focal-util"]),
    ("focal-render", &["focal-study"]),
    ("focal", &["focal-inference", "focal-pacs", "focal-render", "focal-study", "focal-util"]),
];

#[test]
fn the_crate_graph_has_no_upward_edge() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(common::repo().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let mut seen = Vec::new();
    for p in packages {
        let name = p["name"].as_str().expect("name");
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            panic!("workspace crate {name} has no place in the layers: add it to ALLOWED");
        };
        let focal_deps: Vec<&str> = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null()) // normal dependencies; tests may reach further
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("focal"))
            .collect();
        for d in &focal_deps {
            assert!(allowed.contains(d), "{name} depends on {d}: an edge against the flow");
        }
        eprintln!("{name} → {focal_deps:?}");
        seen.push(name);
    }
    for (name, _) in ALLOWED {
        assert!(seen.contains(&name), "the workspace has no crate {name}");
    }
}

#[test]
fn the_fuzz_build_leaves_the_window_and_exports_out() {
    let text = std::fs::read_to_string(common::repo().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    let deps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
        .filter(|k| k.starts_with("focal"))
        .collect();
    assert!(!deps.is_empty(), "fuzz/Cargo.toml names no Focal crate");
    assert!(!deps.contains(&"focal"), "the fuzz targets depend on the focal crate (window, exports): {deps:?}");
}
