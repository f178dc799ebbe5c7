//! The one-way flow between Focal's layers is Cargo's to enforce: each layer is a crate that
//! depends only on the crates below it. This reads the workspace's crate graph (`cargo
//! metadata`) and fails on any edge that runs upward or sideways.

mod common;

use std::process::Command;

/// The layers from the bottom up, and the Focal crates each may depend on.
const ALLOWED: [(&str, &[&str]); 7] = [
    ("focal-util", &[]),
    ("focal-study", &["focal-util"]),
    ("focal-inference", &["focal-study", "focal-util"]),
    ("focal-pacs", &["focal-study", "focal-util"]),
    ("focal-render", &["focal-study"]),
    ("focal-report", &["focal-inference", "focal-render", "focal-study", "focal-util"]),
    ("focal", &["focal-inference", "focal-pacs", "focal-render", "focal-report", "focal-study", "focal-util"]),
];

#[test]
fn the_crate_graph_has_no_upward_edge() {
    let meta = metadata();
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

/// Crates the fuzz build must not compile: the model runtime and the network clients. Each is
/// an optional dependency of its layer, behind that layer's default feature.
const HEAVY: [(&str, &str, &str); 3] = [
    ("focal-inference", "ort", "runtime"),
    ("focal-pacs", "ureq", "network"),
    ("focal-pacs", "dicom-ul", "network"),
];

#[test]
fn the_fuzz_build_leaves_the_window_exports_runtime_and_network_out() {
    let text = std::fs::read_to_string(common::repo().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    // Its dependencies, one per line (`name = "version"` or `name = { ... }`).
    let deps: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim(), v.trim())))
        .collect();
    let dep = |name: &str| deps.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let focal: Vec<&str> = deps.iter().map(|(k, _)| *k).filter(|k| k.starts_with("focal")).collect();
    assert!(!focal.is_empty(), "fuzz/Cargo.toml names no Focal crate");
    assert!(dep("focal").is_none(), "the fuzz targets depend on the focal crate (window, exports): {focal:?}");
    for (_, heavy, _) in HEAVY {
        assert!(dep(heavy).is_none(), "the fuzz targets depend on {heavy} directly");
    }
    // Each layer that holds a heavy crate: the fuzz build takes it without default features and
    // without the feature that enables it, and in the layer's own manifest that crate is
    // optional and enabled by that feature alone.
    let meta = metadata();
    for (layer, heavy, feature) in HEAVY {
        if let Some(spec) = dep(layer) {
            let off = spec.replace(' ', "").contains("default-features=false");
            assert!(off, "the fuzz build takes {layer} with its default features ({feature}, which compiles {heavy})");
            assert!(!spec.contains(&format!("\"{feature}\"")), "the fuzz build asks {layer} for {feature}");
        }
        let package = meta["packages"].as_array().expect("packages").iter().find(|p| p["name"] == layer).expect(layer);
        let dependency = package["dependencies"].as_array().expect("dependencies").iter().find(|d| d["name"] == heavy && d["kind"].is_null());
        let dependency = dependency.unwrap_or_else(|| panic!("{layer} no longer depends on {heavy}: update HEAVY"));
        assert_eq!(dependency["optional"], true, "{layer}'s {heavy} is not optional: every build of {layer} compiles it");
        let features = package["features"].as_object().expect("features");
        for (name, enables) in features {
            let enables: Vec<&str> = enables.as_array().expect("feature list").iter().filter_map(|v| v.as_str()).collect();
            let turns_on = enables.iter().any(|e| *e == format!("dep:{heavy}") || e.starts_with(&format!("{heavy}/")));
            assert!(!turns_on || name == feature || name == "default" && enables.contains(&feature),
                "{layer}'s feature {name} enables {heavy}; only {feature} should");
        }
        let default: Vec<&str> = features["default"].as_array().expect("default").iter().filter_map(|v| v.as_str()).collect();
        assert!(default.contains(&feature), "{layer} without {feature} by default: the app's build would lose it");
    }
}

/// The window is built for the desktops people use: X11 and Wayland (tests/wayland.rs runs it
/// under Weston), and AccessKit, which hands its widgets to screen readers.
#[test]
fn the_window_is_built_for_x11_wayland_and_screen_readers() {
    let metadata = metadata();
    let focal = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "focal")
        .expect("the focal crate");
    let eframe = focal["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["name"] == "eframe")
        .expect("eframe");
    let features: Vec<&str> = eframe["features"].as_array().expect("features").iter().filter_map(|f| f.as_str()).collect();
    for wanted in ["x11", "wayland", "accesskit"] {
        assert!(features.contains(&wanted), "eframe without {wanted}: {features:?}");
    }
}

/// The workspace's own crates as `cargo metadata` sees them (no registry access).
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(common::repo().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}
