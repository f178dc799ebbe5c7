//! The inference path on the real model and the real ONNX Runtime library (scripts/test.sh
//! fetches it and sets FOCAL_ORT_LIB): golden outputs, provider honesty, model integrity.

mod common;

use common::{candidate_model, copy_model, write_json};

use std::path::{Path, PathBuf};
use std::process::Command;

use focal::inference::{Device, Engine, InferenceError, Manifest};

fn manifest_path() -> PathBuf {
    common::repo().join("models/brain-tissue.json")
}

fn require_runtime() {
    assert!(
        focal::inference::runtime::candidates().iter().any(|p| p.is_file()),
        "ONNX Runtime library missing: run scripts/fetch-onnxruntime.sh (scripts/test.sh does)"
    );
}

fn cpu_engine(manifest: Manifest) -> Result<Engine, InferenceError> {
    require_runtime();
    Engine::open(manifest, Device::Cpu, false)
}

struct Golden {
    name: String,
    input: Vec<f32>,
    shape: [usize; 4],
    /// How many modality slots hold the sample series (the rest are zeros).
    slots_filled: usize,
}

fn goldens() -> Vec<Golden> {
    let dir = common::repo().join("models/golden");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index")).expect("json");
    index["slices"]
        .as_array()
        .expect("slices")
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("name").to_string();
            let (shape, values) = common::read_npy(&dir.join(format!("{name}_input.npy")));
            Golden {
                input: values.iter().map(|&v| v as f32).collect(),
                shape: [shape[0], shape[1], shape[2], shape[3]],
                slots_filled: s["slots_filled"].as_u64().unwrap_or(1) as usize,
                name,
            }
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).abs())
        .fold(0.0, f64::max)
}

/// Focal's ONNX Runtime path equals Python onnxruntime on the golden inputs: within 1e-4 of
/// the float32 outputs Python computed in this test run, and within float16 rounding of the
/// committed golden files, for all three outputs.
#[test]
fn golden_outputs_are_reproduced() {
    let mut engine = cpu_engine(Manifest::load(&manifest_path()).expect("manifest")).expect("engine");
    assert_eq!(engine.provider.name, "CPU");
    let f32_dir = std::env::var_os("FOCAL_GOLDEN_F32").map(PathBuf::from);
    let dir = common::repo().join("models/golden");
    let goldens = goldens();
    assert!(goldens.iter().any(|g| g.slots_filled > 1), "no golden slice exercises the second slot");
    for g in goldens {
        let [n, _, h, w] = g.shape;
        let out = engine.run(g.input.clone(), n, h, w).expect("run");
        let modality = out.modality.expect("the model has modality attention");
        for (what, values) in [("probs", &out.probs), ("attention", &out.attention), ("modality_attention", &modality)] {
            let (_, committed) = common::read_npy(&dir.join(format!("{}_{what}.npy", g.name)));
            assert!(
                max_diff(values, &committed) <= 1e-3,
                "{}: {what} differs from the committed golden",
                g.name
            );
            if let Some(d) = &f32_dir {
                let (_, exact) = common::read_npy(&d.join(format!("{}_{what}.npy", g.name)));
                let diff = max_diff(values, &exact);
                assert!(diff <= 1e-4, "{}: {what} differs from Python onnxruntime by {diff}", g.name);
            }
        }
        // Weights over the slots sum to 1 at every pixel; an empty slot gets none.
        let plane = h * w;
        for i in 0..plane {
            let sum = modality[i] + modality[plane + i];
            assert!((sum - 1.0).abs() < 1e-4, "{}: weights sum to {sum}", g.name);
            if g.slots_filled == 1 {
                assert!(modality[plane + i] < 1e-3, "{}: the empty slot got weight", g.name);
            }
        }
    }
    assert!(
        f32_dir.is_some() || std::env::var_os("CI").is_none(),
        "FOCAL_GOLDEN_F32 must be set in CI"
    );
}

/// From DICOM to model input: Focal's preprocessing of the sample study (each slot's slice
/// and neighbours, normalised together, padded) gives the golden inputs Python made from the
/// same DICOM files, within float16 rounding.
#[test]
fn preprocessing_of_the_sample_matches_the_golden_inputs() {
    let (stack, volume) = common::sample_volume();
    let engine = cpu_engine(Manifest::load(&manifest_path()).expect("manifest")).expect("engine");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo().join("models/golden/index.json")).expect("index"))
            .expect("json");
    for (g, meta) in goldens().iter().zip(index["slices"].as_array().expect("slices")) {
        let number = meta["instance_number"].as_i64().expect("instance number");
        let k = stack
            .slices
            .iter()
            .position(|s| s.instance.instance_number == Some(number))
            .expect("slice");
        let volumes = vec![&volume; g.slots_filled];
        let pre = focal::inference::analysis::Preprocessor::new(&engine, &volumes).expect("preprocessor");
        let input = pre.input(k);
        assert_eq!([1, pre.channels(), pre.grid.ph, pre.grid.pw], g.shape);
        let diff = input
            .iter()
            .zip(&g.input)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= 5e-4, "{}: input differs by {diff}", g.name);
    }
}

/// From DICOM to p(brain): Focal's brain-extent input of the whole sample volume (RAS order,
/// 3 mm, normalised, padded) equals the golden input Python made from the same files, and
/// Focal's run of the extent model on it equals Python onnxruntime's output.
#[test]
fn the_brain_extent_of_the_sample_matches_python() {
    let mut manifest = Manifest::load(&manifest_path()).expect("manifest");
    // Model 3 keeps model 2's brain extent (section and file) without its step, so that
    // manifests can still use it: the step is put back here to test it.
    if !manifest.uses_extent() {
        manifest.postprocess.insert(0, "brain_extent".into());
    }
    let spec = manifest.extent.clone().expect("the shipped manifest keeps the brain extent's section");
    let dir = common::repo().join("models/golden");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index")).expect("json");
    let name = |k: &str| index["extent"][k].as_str().expect("golden extent names").to_string();
    let (shape, golden_input) = common::read_npy(&dir.join(format!("{}.npy", name("input"))));
    let (_, volume) = common::sample_volume();
    let input = focal::inference::extent::ExtentInput::new(&volume, &spec).expect("extent input");
    assert_eq!(shape, [1, 1, input.padded[0], input.padded[1], input.padded[2]]);
    let diff = max_diff(&input.values, &golden_input);
    assert!(diff <= 2e-3, "extent input differs from Python's by {diff}");

    let mut engine = cpu_engine(manifest).expect("engine");
    let golden: Vec<f32> = golden_input.iter().map(|&v| v as f32).collect();
    let brain = engine.run_extent(golden, input.padded).expect("run extent");
    let (_, committed) = common::read_npy(&dir.join(format!("{}.npy", name("output"))));
    let diff = max_diff(&brain, &committed);
    assert!(diff <= 1e-3, "extent output differs from the committed golden by {diff}");
    if let Some(d) = std::env::var_os("FOCAL_GOLDEN_F32").map(PathBuf::from) {
        let (_, exact) = common::read_npy(&d.join(format!("{}.npy", name("output"))));
        let diff = max_diff(&brain, &exact);
        assert!(diff <= 1e-4, "extent output differs from Python onnxruntime by {diff}");
    }
    // Back on the volume's grid, the brain is a plausible adult brain (the sample's mask is 1,737 mL).
    let p = input.to_volume(&brain);
    let voxel_ml = volume.geometry.as_ref().map_or(1.0, |g| g.spacing.iter().product::<f64>()) / 1000.0;
    let ml = p.iter().filter(|&&v| v >= spec.threshold).count() as f64 * voxel_ml;
    assert!((1300.0..2300.0).contains(&ml), "the extent holds {ml:.0} mL");
}

/// From DICOM to the brain: Focal's port of deepbet (app/inference/src/extractor.rs) finds the
/// same brain in the sample as deepbet's steps in numpy, SciPy and Python onnxruntime
/// (models/training/deepbet_reference.py) on the same files. They differ only where the
/// objects are told apart (6- against 26-connected) and in float rounding at p = 0.5.
#[test]
fn the_brain_extractor_of_the_sample_matches_python() {
    let tmp = tempfile::tempdir().expect("tmp");
    let manifest = Manifest::load(&candidate_model(tmp.path())).expect("candidate manifest");
    let mut engine = cpu_engine(manifest).expect("engine with the brain extractor");
    let (_, volume) = common::sample_volume();
    let brain = focal::inference::extractor::brain_mask(&mut engine, &volume)
        .expect("extractor runs")
        .expect("the candidate has an extractor");
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON: a Python with onnxruntime (scripts/test.sh sets it)");
    let out = tmp.path().join("deepbet.npy");
    let run = Command::new(python)
        .arg(common::repo().join("models/training/deepbet_reference.py"))
        .arg("--series")
        .arg(common::repo().join("assets/sample-study"))
        .arg(&out)
        .output()
        .expect("run python");
    assert!(run.status.success(), "deepbet_reference.py: {}", String::from_utf8_lossy(&run.stderr));
    let (shape, reference) = common::read_npy(&out);
    assert_eq!(shape, [volume.slices, volume.rows, volume.columns]);
    let reference: Vec<bool> = reference.iter().map(|&v| v > 0.5).collect();
    let both = brain.iter().zip(&reference).filter(|(a, b)| **a && **b).count();
    let (ours, theirs) = (brain.iter().filter(|&&b| b).count(), reference.iter().filter(|&&b| b).count());
    let dice = 2.0 * both as f64 / (ours + theirs) as f64;
    assert!(dice >= 0.995, "Focal's brain and deepbet's differ: Dice {dice:.4} ({ours} and {theirs} voxels)");
    // An adult brain: deepbet's outline of Colin27 holds about 1,950 mL.
    let voxel_ml = volume.geometry.as_ref().map_or(1.0, |g| g.spacing.iter().product::<f64>()) / 1000.0;
    let ml = ours as f64 * voxel_ml;
    assert!((1500.0..2300.0).contains(&ml), "the extracted brain holds {ml:.0} mL");
}

/// Without the extractor's converted files (scripts/setup.sh not run), the model is refused
/// with the file and the fix named, before anything runs.
#[test]
fn a_missing_brain_extractor_is_refused_naming_the_fix() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = candidate_model(tmp.path());
    std::fs::remove_file(tmp.path().join("deepbet/segment.onnx")).expect("remove");
    require_runtime();
    let err = Engine::open(Manifest::load(&path).expect("manifest"), Device::Cpu, false)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("segment.onnx") && err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn a_wrong_brain_extent_model_is_refused_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Model 2's steps: the brain extent first (Model 3 keeps its section without the step), and
    // no key regions (they need Model 3's tissue model).
    let copy_model = |dir: &Path| {
        let (path, mut m) = copy_model(dir);
        m["postprocess"] = serde_json::json!(["brain_extent", "fluid_rim", "largest_component"]);
        m.as_object_mut().expect("object").remove("key_regions");
        (path, m)
    };
    let (path, mut m) = copy_model(tmp.path());
    m["extent"]["sha256"] = serde_json::json!("f".repeat(64));
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(err.contains("brain-extent.onnx") && err.contains(&"f".repeat(64)), "{err}");

    let (path, mut m) = copy_model(tmp.path());
    m["extent"]["output"] = serde_json::json!("mask");
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(err.contains("brain extent") && err.contains("\"mask\"") && err.contains("\"brain\""), "{err}");

    let (path, mut m) = copy_model(tmp.path());
    m.as_object_mut().expect("object").remove("extent");
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("brain_extent") && err.contains("extent"), "{err}");

    // The fluid-rim step without its setting, or with a depth that is no depth.
    let (path, mut m) = copy_model(tmp.path());
    m.as_object_mut().expect("object").remove("fluid_rim");
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("fluid_rim") && err.contains("section"), "{err}");
    let (path, mut m) = copy_model(tmp.path());
    m["fluid_rim"]["depth_mm"] = serde_json::json!(-3.0);
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("depth_mm -3"), "{err}");
    let (path, mut m) = copy_model(tmp.path());
    m["fluid_rim"]["label_as"] = serde_json::json!("dura");
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("label_as \"dura\"") && err.contains("CSF"), "{err}");
    // The scan's own tissue model without its settings, or with a prior weight out of range.
    let (path, mut m) = copy_model(tmp.path());
    m["postprocess"] = serde_json::json!(["brain_extent", "fluid_rim", "largest_component", "tissue_em"]);
    m.as_object_mut().expect("object").remove("tissue_em");
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("tissue_em") && err.contains("section"), "{err}");
    let candidate: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("models/candidates/tissue-em.json")).expect("candidate"),
    )
    .expect("json");
    m["tissue_em"] = candidate["tissue_em"].clone();
    write_json(&path, &m);
    Manifest::load(&path).expect("the candidate's settings are accepted");
    m["tissue_em"]["prior_weight"] = serde_json::json!(2.0);
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("prior_weight 2"), "{err}");
    // A step this build does not know is named.
    let (path, mut m) = copy_model(tmp.path());
    m["postprocess"] = serde_json::json!(["brain_extent", "skull_strip"]);
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("\"skull_strip\""), "{err}");
}

/// The error message of a model that must be refused.
fn refusal(manifest: &Path) -> String {
    cpu_engine(Manifest::load(manifest).expect("manifest"))
        .err()
        .expect("refused")
        .to_string()
}

#[test]
fn a_sha256_mismatch_is_refused_unless_overridden() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, mut m) = copy_model(tmp.path());
    m["sha256"] = serde_json::json!("0".repeat(64));
    write_json(&path, &m);
    let err = cpu_engine(Manifest::load(&path).expect("manifest"))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, InferenceError::ModelHash { .. }), "{text}");
    assert!(
        text.contains(&"0".repeat(64)) && text.contains("--allow-unverified-model"),
        "{text}"
    );
    let engine = Engine::open(Manifest::load(&path).expect("manifest"), Device::Cpu, true).expect("override works");
    assert!(!engine.verified);
    // The tissue model's deep grey-matter atlas is checked with the model files: refused,
    // named, and under the override used but not called verified.
    let (path, mut m) = copy_model(tmp.path());
    m["tissue_em"]["deep_gm_atlas"]["sha256"] = serde_json::json!("a".repeat(64));
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(err.contains("deep-gm-atlas.nii") && err.contains(&"a".repeat(64)), "{err}");
    let engine = Engine::open(Manifest::load(&path).expect("manifest"), Device::Cpu, true).expect("override works");
    assert!(!engine.verified && engine.deep_gm_atlas.is_some());
}

#[test]
fn a_corrupt_model_gives_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, mut m) = copy_model(tmp.path());
    let model = tmp.path().join("brain-tissue.onnx");
    let bytes = std::fs::read(&model).expect("read");
    std::fs::write(&model, &bytes[..bytes.len() / 2]).expect("truncate");
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes[..bytes.len() / 2])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    m["sha256"] = serde_json::json!(digest);
    write_json(&path, &m);
    let err = cpu_engine(Manifest::load(&path).expect("manifest"))
        .err()
        .expect("refused");
    assert!(matches!(err, InferenceError::ModelLoad(_)), "{err}");
}

#[test]
fn a_manifest_that_disagrees_with_the_model_is_refused_naming_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, mut m) = copy_model(tmp.path());
    let mut labels = m["labels"].as_array().expect("labels").clone();
    labels.push(serde_json::json!({"index": 4, "name": "lesion", "color": [255, 0, 0]}));
    m["labels"] = serde_json::json!(labels);
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(
        err.contains("probs") && err.contains("[N, 5, H, W]") && err.contains("4"),
        "{err}"
    );

    let (path, mut m) = copy_model(tmp.path());
    m["input"]["name"] = serde_json::json!("pixels");
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(err.contains("\"image\"") && err.contains("\"pixels\""), "{err}");
}

/// A manifest cannot point Focal at files outside its folder (and have it print their digest),
/// nor at a device that never ends (issue 32, item 5).
#[test]
fn model_files_must_be_regular_files_inside_the_manifest_s_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for outside in ["/etc/passwd", "../brain-tissue.onnx", "models/../../x.onnx", ""] {
        let (path, mut m) = copy_model(tmp.path());
        m["file"] = serde_json::json!(outside);
        write_json(&path, &m);
        let err = Manifest::load(&path).err().expect("refused").to_string();
        assert!(err.contains("not a path inside the manifest's folder"), "{outside:?}: {err}");
        assert!(!err.contains("root:"), "{err}");
    }
    let (path, mut m) = copy_model(tmp.path());
    m["extent"]["file"] = serde_json::json!("/dev/zero");
    write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("\"/dev/zero\""), "{err}");
    // A device reached through a link inside the folder is refused before it is read.
    let (path, mut m) = copy_model(tmp.path());
    std::os::unix::fs::symlink("/dev/zero", tmp.path().join("zero.onnx")).expect("link");
    m["file"] = serde_json::json!("zero.onnx");
    write_json(&path, &m);
    let manifest = Manifest::load(&path).expect("a relative name loads");
    let err = manifest.digests().err().expect("refused").to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

/// Runs `focal analyze` on the sample study with extra arguments, into a fresh folder.
fn analyze_sample(extra: &[&str]) -> (i32, String, String, tempfile::TempDir, PathBuf) {
    require_runtime();
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = common::repo().join("assets/sample-study");
    let out = tmp.path().join("out");
    let mut args = vec![
        "analyze",
        sample.to_str().expect("path"),
        "--out",
        out.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = common::run_focal(&args);
    (code, stdout, stderr, tmp, out)
}

#[test]
fn cuda_on_a_cpu_only_runtime_is_refused_with_the_reason() {
    let (code, _, stderr, _tmp, out) = analyze_sample(&["--device", "cuda"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("CUDA was requested but cannot be used") && stderr.contains("no CUDA provider"),
        "{stderr}"
    );
    assert!(!out.join("summary.json").exists());
}

#[test]
fn analyze_the_sample_study_end_to_end() {
    let (code, stdout, stderr, _tmp, out) = analyze_sample(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("execution provider: CPU (CUDA not used:"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["provider"]["name"], "CPU");
    assert_eq!(summary["slices"], 89);
    assert_eq!(summary["model"]["verified_against_manifest"], true);
    assert_eq!(summary["model"]["version"], "3.4.2");
    // Model 3 keeps model 2's brain-extent section without its step: neither loaded nor recorded.
    assert!(summary["model"]["extent_sha256"].is_null(), "{}", summary["model"]);
    // The shipped model looks for key regions (since 3.4.0): the healthy sample has none, and nothing
    // is set aside (its series was not acquired with contrast); the score map is written.
    assert_eq!(summary["key_regions"], serde_json::json!([]), "{}", summary["key_regions"]);
    assert!(summary["key_regions_set_aside"].is_null(), "{}", summary["key_regions_set_aside"]);
    assert!(out.join("key_regions.nii").exists() && out.join("key_region_ids.nii").exists());
    assert!(stdout.contains("key regions: 0 ("), "{stdout}");
    let labels = summary["labels"].as_array().expect("labels");
    let ml = |name: &str| {
        labels
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["volume_ml"].as_f64())
            .expect("volume")
    };
    // A whole head at 1×1×2 mm: tissue volumes must be plausible for an adult head, not zero.
    assert!((300.0..3000.0).contains(&ml("grey matter")), "GM {}", ml("grey matter"));
    assert!(
        (300.0..2000.0).contains(&ml("white matter")),
        "WM {}",
        ml("white matter")
    );
    let voxels = 181 * 217 * 89;
    assert_eq!(
        std::fs::metadata(out.join("labels.nii")).expect("labels").len(),
        352 + voxels as u64
    );
    assert_eq!(
        std::fs::metadata(out.join("attention.nii")).expect("attention").len(),
        352 + 4 * voxels as u64
    );
    assert_eq!(
        std::fs::metadata(out.join("probabilities.nii")).expect("probs").len(),
        352 + 16 * voxels as u64
    );
    // deepbet's brain removed the false brain of the skull base and face, and says so.
    let steps = summary["postprocess"].as_array().expect("post-processing steps");
    assert_eq!(steps[0]["step"], "brain_extractor", "{steps:?}");
    assert!(steps[0]["removed_ml"].as_f64().expect("removed") > 100.0, "{steps:?}");
    assert!(steps[0]["detail"].as_str().is_some_and(|d| d.starts_with("deepbet 1.0.2")), "{steps:?}");
    // Then the fluid rim (extra-axial CSF at the brain's surface) is set apart and labelled CSF.
    assert_eq!(steps[1]["step"], "fluid_rim", "{steps:?}");
    let rim = steps[1]["labelled"][0].as_f64().expect("the rim's volume, labelled");
    assert_eq!(steps[1]["labelled"][1], "CSF", "{steps:?}");
    assert!((20.0..400.0).contains(&rim), "fluid rim {rim:.0} mL: {steps:?}");
    assert!(stdout.contains("fluid rim:"), "{stdout}");
    // The scan's own tissue model decided the classes, with the deep grey matter placed.
    let em = steps.iter().find(|s| s["step"] == "tissue_em").expect("tissue_em step");
    let detail = em["detail"].as_str().expect("detail");
    assert!(detail.contains("fitted to this scan") && detail.contains("deep grey matter placed by the atlas"), "{detail}");
    assert!((150.0..600.0).contains(&ml("CSF")), "CSF {} mL (classical consensus 192)", ml("CSF"));
    // It says which values it took for fluid: on this T1 head, the darkest class.
    let detail = steps[1]["detail"].as_str().expect("fluid class");
    assert!(detail.starts_with("values below") && detail.contains("the darkest of three classes"), "{detail}");
    assert!(stdout.contains("; fluid = values below"), "{stdout}");
    let brain: f64 = ["CSF", "grey matter", "white matter"].iter().map(|n| ml(n)).sum();
    assert!((1400.0..2100.0).contains(&brain), "labelled brain {brain:.0} mL (mask 1,737 mL)");
    let conf = summary["mean_confidence"].as_f64().expect("confidence");
    assert!((0.25..=1.0).contains(&conf), "confidence {conf}");
    // Output inside the study folder is refused.
    let sample = common::repo().join("assets/sample-study");
    let (code, _, stderr) = common::run_focal(&[
        "analyze",
        sample.to_str().expect("path"),
        "--out",
        sample.join("results").to_str().expect("path"),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("must not be inside the study folder"), "{stderr}");
}

#[test]
fn a_background_job_reports_progress_and_can_be_cancelled() {
    let volume = std::sync::Arc::new(common::sample_volume().1);
    let engine = cpu_engine(Manifest::load(&manifest_path()).expect("manifest")).expect("engine");
    let job = focal::inference::AnalysisJob::spawn(engine, volume.clone());
    job.cancel();
    let (engine, result) = job.join();
    assert!(
        matches!(result, Err(InferenceError::Cancelled)),
        "{:?}",
        result.map(|a| a.slices)
    );
    let job = focal::inference::AnalysisJob::spawn(engine.expect("engine back"), volume);
    let (_, result) = {
        let mut last = 0;
        while !job.is_finished() {
            let s = job.status();
            assert!(s.done >= last && s.done <= s.total && s.total == 89);
            last = s.done;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(job.status().done, 89);
        job.join()
    };
    assert_eq!(result.expect("analysis").slices, 89);
}

#[test]
fn an_input_shape_that_disagrees_with_the_manifest_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, mut m) = copy_model(tmp.path());
    m["input"]["shape"] = serde_json::json!(["N", 3, 256, 256]);
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(
        err.contains("model input shape [-1, 6, -1, -1]") && err.contains("Number(3)") && err.contains("2 slots"),
        "{err}"
    );
    // A manifest that names one slot fewer than the model takes.
    let (path, mut m) = copy_model(tmp.path());
    m["input"]["slots"] = serde_json::json!([m["input"]["slots"][0].clone()]);
    m["input"]["shape"] = serde_json::json!(["N", 3, "H", "W"]);
    write_json(&path, &m);
    let err = refusal(&path);
    assert!(err.contains("[-1, 6, -1, -1]") && err.contains("1 slots × 3 slices = 3 channels"), "{err}");
}

#[test]
fn a_missing_or_wrong_runtime_library_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = common::repo().join("assets/sample-study");
    let out = tmp.path().join("out");
    let run = |lib: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_focal"))
            .args([
                "analyze",
                sample.to_str().expect("path"),
                "--device",
                "cpu",
                "--out",
                out.to_str().expect("path"),
            ])
            .env("FOCAL_ORT_LIB", lib)
            .env("FOCAL_CACHE", tmp.path())
            .output()
            .expect("runs");
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (code, stderr) = run(&tmp.path().join("libonnxruntime.so.1.31.1"));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("ONNX Runtime library not found") && stderr.contains("scripts/fetch-onnxruntime.sh"),
        "{stderr}"
    );
    // A shared library that is not ONNX Runtime.
    let not_ort = tmp.path().join("libnot-ort.so");
    std::fs::write(&not_ort, b"\x7fELF not really a library").expect("write");
    let (code, stderr) = run(&not_ort);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("could not be loaded") && stderr.contains("libnot-ort.so"),
        "{stderr}"
    );
}

/// Patient identifiers written into the sample study (models/training/make_sample_study.py)
/// never reach analyze's output, logs at trace level, or its files.
#[test]
fn analyze_never_outputs_patient_identifiers() {
    let (code, stdout, stderr, _tmp, out) = analyze_sample(&["-vvv", "--device", "cpu"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("TRACE"), "trace logging was not on");
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary");
    for secret in common::SAMPLE_PHI {
        for (what, text) in [("stdout", &stdout), ("logs", &stderr), ("summary.json", &summary)] {
            assert!(!text.contains(secret), "{secret} in {what}");
        }
    }
}
