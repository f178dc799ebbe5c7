//! Key regions end to end, through the real binary and the real ONNX Runtime, with the
//! key-region settings of models/candidates/key-regions.json (shipped in 3.4.0 after round 4 of
//! the model card, their set-aside in 3.4.1 after round 5 and 3.4.2 after round 7; the candidate file is where a
//! next round changes them): a synthetic lesion
//! pasted into the sample head (app/tests/reference/make_lesion_study.py) is found as a key
//! region where it is, with its size, on T1 alone and on T1 + a T2-like series (each series'
//! share named in the CLI, summary.json and the PDF); the maps are written in the series'
//! geometry; on a series acquired with contrast thin bright structures (a midline strip, a
//! vessel-like tube) are set aside, and without contrast so are the same structures dark on a
//! T2-like series (flow voids).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The key-region candidate's settings are accepted; without the tissue model (their score is
/// its departure), or with settings out of range, they are refused by name.
#[test]
fn key_region_settings_are_checked_when_the_model_is_loaded() {
    use focal::inference::Manifest;
    // Key regions: the candidate's settings are accepted; without the tissue model (their
    // score is its departure), or with settings out of range, refused by name.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, mut m) = common::copy_model(tmp.path());
    let candidate: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("models/candidates/key-regions.json")).expect("candidate"),
    )
    .expect("json");
    m["key_regions"] = candidate["key_regions"].clone();
    m["tissue_em"] = candidate["tissue_em"].clone();
    common::write_json(&path, &m);
    Manifest::load(&path).expect("the key-region candidate's settings are accepted");
    m["key_regions"]["seed"] = serde_json::json!(1.0);
    common::write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("key_regions: seed 1 and grow 1.5"), "{err}");
    m["tissue_em"]["exclude_outliers"] = serde_json::json!(0.5);
    m["key_regions"] = candidate["key_regions"].clone();
    common::write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("exclude_outliers 0.5"), "{err}");
    m["postprocess"] = serde_json::json!(["brain_extractor", "fluid_rim", "largest_component"]);
    common::write_json(&path, &m);
    let err = Manifest::load(&path).err().expect("refused").to_string();
    assert!(err.contains("\"key_regions\" needs the \"tissue_em\""), "{err}");
}

/// The sample with a lesion (and, with "--t2", a T2-like series; with "--contrast", acquired with
/// contrast, with a bright strip on the midline and a bright tube in the white matter), and the
/// lesion's truth.
fn lesion_study(dir: &Path, options: &[&str]) -> (PathBuf, serde_json::Value) {
    let out = dir.join("lesion-study");
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON: a Python with pydicom (scripts/test.sh sets it)");
    let mut cmd = Command::new(python);
    cmd.arg(common::repo().join("app/tests/reference/make_lesion_study.py"))
        .arg(common::repo().join("assets/sample-study"))
        .arg(&out)
        .args(options);
    let run = cmd.output().expect("python runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let truth = serde_json::from_slice(&run.stdout).expect("the lesion's truth as JSON");
    (out, truth)
}

/// The study's series UIDs by series number.
fn series_by_number(dir: &Path) -> Vec<String> {
    let set = focal::study::StudySet::open(
        &[dir.to_path_buf()],
        &|_: focal::study::Progress| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("scan");
    let mut series: Vec<(i64, String)> = set.series().map(|s| (s.number.unwrap_or(0), s.uid.clone())).collect();
    series.sort();
    series.into_iter().map(|(_, uid)| uid).collect()
}

fn analyze(study: &Path, series: &[String], out: &Path, model: &Path) -> (String, serde_json::Value) {
    let mut args = vec![
        "analyze",
        study.to_str().expect("path"),
        "--device",
        "cpu",
        "--model",
        model.to_str().expect("path"),
        "--out",
        out.to_str().expect("path"),
    ];
    for s in series {
        args.extend(["--series", s.as_str()]);
    }
    let (code, stdout, stderr) = common::run_focal(&args);
    assert_eq!(code, 0, "{stderr}");
    let summary = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    (stdout, summary)
}

/// The key region at the lesion: its centre within 6 mm of the lesion's, its volume from 0.7 to
/// 2.5 times the lesion's (the score is smoothed over 2 mm to each side, which widens a strong
/// lesion's region by about that: a 2 mL ball of radius 8 mm grows to about 10 mm, twice the
/// volume; round 3 of the model card), on the lesion's slices give or take two; at most
/// `others` other regions.
fn region_at_lesion<'a>(summary: &'a serde_json::Value, truth: &serde_json::Value, others: usize) -> &'a serde_json::Value {
    let regions = summary["key_regions"].as_array().expect("key_regions in summary.json");
    let centre: Vec<f64> = truth["centre_lps_mm"].as_array().expect("centre").iter().map(|v| v.as_f64().expect("mm")).collect();
    let near = |r: &serde_json::Value| {
        let c: Vec<f64> = r["centre_lps_mm"].as_array().expect("centre").iter().map(|v| v.as_f64().expect("mm")).collect();
        c.iter().zip(&centre).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() < 6.0
    };
    let found: Vec<&serde_json::Value> = regions.iter().filter(|r| near(r)).collect();
    assert_eq!(found.len(), 1, "one region at the lesion {centre:?}: {regions:?}");
    assert!(regions.len() <= 1 + others, "{regions:?}");
    let r = found[0];
    let (ml, truth_ml) = (r["volume_ml"].as_f64().expect("mL"), truth["volume_ml"].as_f64().expect("mL"));
    assert!((0.7..2.5).contains(&(ml / truth_ml)), "region {ml} mL, lesion {truth_ml} mL");
    let (first, last) = (r["slices"][0].as_u64().expect("slice"), r["slices"][1].as_u64().expect("slice"));
    let (t0, t1) = (truth["slices"][0].as_u64().expect("slice"), truth["slices"][1].as_u64().expect("slice"));
    assert!(first <= t0 + 1 && last + 1 >= t1 && first + 2 >= t0 && last <= t1 + 2, "{first}-{last} vs {t0}-{t1}");
    // Well above the seed (2 spreads, × √2 over two series): the lesion stands out.
    assert!(r["peak_score"].as_f64().expect("peak") >= 4.0, "{r}");
    r
}

/// The set-aside region whose centre lies nearest `at` (LPS mm): how far, and why it was set aside.
fn nearest_set_aside(summary: &serde_json::Value, at: [f64; 3]) -> (f64, String) {
    summary["key_regions_set_aside"]
        .as_array()
        .expect("key_regions_set_aside in summary.json")
        .iter()
        .map(|a| {
            let c: Vec<f64> = a["region"]["centre_lps_mm"].as_array().expect("centre").iter().map(|v| v.as_f64().expect("mm")).collect();
            let d = (0..3).map(|i| (c[i] - at[i]).powi(2)).sum::<f64>().sqrt();
            (d, a["why"].as_str().expect("why").to_string())
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("one")
}

fn nifti_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len()
}

/// On a series acquired with contrast, thin bright structures where healthy anatomy enhances
/// are set aside as likely physiological and listed apart with why, in the CLI and
/// summary.json: a strip on the midline (the falx) for where it lies, a tube in the white
/// matter (a vessel) for its shape. The lesion in the white matter, thicker than either, stays
/// the one key region, and the region map holds it alone.
#[test]
fn on_a_contrast_series_thin_bright_structures_are_set_aside_and_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (study, truth) = lesion_study(tmp.path(), &["--contrast"]);
    let uids = series_by_number(&study);
    let model_dir = tmp.path().join("model");
    std::fs::create_dir_all(&model_dir).expect("model dir");
    let model = common::key_regions_model(&model_dir);
    let out = tmp.path().join("t1");
    let (stdout, summary) = analyze(&study, &uids[..1], &out, &model);
    assert!(stdout.contains("acquired with contrast"), "{stdout}");
    let r = region_at_lesion(&summary, &truth, 0);
    let aside = summary["key_regions_set_aside"].as_array().expect("key_regions_set_aside in summary.json");
    assert_eq!(aside.len(), 2, "{aside:?}");
    let nearest = |at: [f64; 3]| nearest_set_aside(&summary, at);
    let (off, why) = nearest([0.0, 10.0, 20.0]);
    assert!(off < 4.0 && why.contains("of it lies within 5 mm of the midline"), "the strip at (0, 10, 20): {off} mm, {why}");
    assert!(why.contains("no more than") && why.contains("from its edge"), "{why}");
    let (off, why) = nearest([24.0, 10.0, 30.0]);
    assert!(off < 6.0 && why.contains("times as long as it is wide"), "the tube at (24, 10, 30): {off} mm, {why}");
    assert!(stdout.contains("set aside as likely physiological: 2"), "{stdout}");
    let ids = std::fs::read(out.join("key_region_ids.nii")).expect("ids");
    let marked = ids[352..].iter().filter(|&&v| v != 0).count() as f64 * 2.0 / 1000.0;
    assert!((marked - r["volume_ml"].as_f64().expect("mL")).abs() < 1e-6, "{marked} mL marked");
}

/// Without contrast, the same strip and tube dark on the T2-like series (dura, and a vessel's
/// flowing blood: a flow void) are set aside on T1 + T2 as darker and thin, the tube for its
/// shape; the lesion stays the one key region. Without the `dark` setting (as 3.4.1 shipped)
/// they are key regions too.
#[test]
fn without_contrast_thin_dark_structures_on_t2_are_set_aside() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (study, truth) = lesion_study(tmp.path(), &["--t2", "--flow-void"]);
    let uids = series_by_number(&study);
    let model_dir = tmp.path().join("model");
    std::fs::create_dir_all(&model_dir).expect("model dir");
    let model = common::key_regions_model(&model_dir);
    let out = tmp.path().join("t1-t2");
    let (stdout, summary) = analyze(&study, &uids, &out, &model);
    assert!(!stdout.contains("acquired with contrast"), "{stdout}");
    region_at_lesion(&summary, &truth, 0);
    let aside = summary["key_regions_set_aside"].as_array().expect("key_regions_set_aside in summary.json");
    assert_eq!(aside.len(), 2, "{aside:?}");
    let (off, why) = nearest_set_aside(&summary, [0.0, 10.0, 20.0]);
    assert!(off < 4.0 && why.starts_with("darker, no more than"), "the strip at (0, 10, 20): {off} mm, {why}");
    let (off, why) = nearest_set_aside(&summary, [24.0, 10.0, 30.0]);
    assert!(off < 6.0 && why.starts_with("darker") && why.contains("times as long as it is wide"), "the tube: {off} mm, {why}");

    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&model).expect("model")).expect("json");
    manifest["key_regions"]["physiological"]["dark"] = serde_json::Value::Bool(false);
    common::write_json(&model, &manifest);
    let (_, summary) = analyze(&study, &uids, &tmp.path().join("no-dark"), &model);
    assert!(summary["key_regions"].as_array().expect("regions").len() >= 2, "{}", summary["key_regions"]);
    assert!(summary["key_regions_set_aside"].as_array().is_none_or(|a| a.is_empty()), "{}", summary["key_regions_set_aside"]);
}

#[test]
fn a_synthetic_lesion_is_one_key_region_on_t1_and_on_t1_with_a_t2_like_series() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (study, truth) = lesion_study(tmp.path(), &["--t2"]);
    let uids = series_by_number(&study);
    assert_eq!(uids.len(), 2, "T1 and T2-like series");
    let model_dir = tmp.path().join("model");
    std::fs::create_dir_all(&model_dir).expect("model dir");
    let model = common::key_regions_model(&model_dir);

    // T1 alone: the lesion is brighter than white matter there.
    let out = tmp.path().join("t1");
    let (stdout, summary) = analyze(&study, &uids[..1], &out, &model);
    // On T1 the rest of the sample head departs nowhere (no other region).
    let r = region_at_lesion(&summary, &truth, 0);
    let weights = r["series_weights"].as_array().expect("weights");
    assert_eq!(weights.len(), 1, "{r}");
    assert_eq!((weights[0]["slot"].as_str(), weights[0]["direction"].as_str()), (Some("primary"), Some("brighter")));
    assert!(stdout.contains("key regions: ") && stdout.contains("not a diagnosis"), "{stdout}");
    assert!(stdout.contains(&format!("region {}: ", r["id"])), "{stdout}");
    // The score and the region map, in the series' geometry (352-byte header).
    let voxels = 181 * 217 * 89u64;
    assert_eq!(nifti_len(&out.join("key_regions.nii")), 352 + 4 * voxels);
    assert_eq!(nifti_len(&out.join("key_region_ids.nii")), 352 + voxels);
    let ids = std::fs::read(out.join("key_region_ids.nii")).expect("ids");
    let id = r["id"].as_u64().expect("id") as u8;
    let marked = ids[352..].iter().filter(|&&v| v == id).count() as f64 * 2.0 / 1000.0;
    assert!((marked - r["volume_ml"].as_f64().expect("mL")).abs() < 1e-6, "{marked} mL marked");

    // T1 + T2-like: both series see it, each named with its share and direction.
    let out2 = tmp.path().join("t1-t2");
    let (stdout, summary) = analyze(&study, &uids, &out2, &model);
    // Nothing else departs either: the T2-like series' noise is additive, as MR noise is (with
    // noise proportional to the value, as round 2 made it, the ventricles came out).
    let r = region_at_lesion(&summary, &truth, 0);
    let weights = r["series_weights"].as_array().expect("weights");
    assert_eq!(weights.len(), 2, "{r}");
    let second = weights[1]["weight"].as_f64().expect("weight");
    assert!(second > 0.1 && weights[0]["weight"].as_f64().expect("weight") > 0.1, "{r}");
    assert_eq!(weights[1]["direction"], "brighter", "{r}");
    assert!(stdout.contains("second (series \"T2-like with a synthetic lesion (test copy)\")"), "{stdout}");

    // `focal export` of the two-series analysis into `out` with the candidate model.
    let export = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "export",
            study.to_str().expect("path"),
            "--analysis",
            out2.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
            "--model",
            model.to_str().expect("path"),
        ];
        args.extend_from_slice(extra);
        common::run_focal(&args)
    };

    // The PDF lists the regions with each series' share, and says what they are.
    let report = tmp.path().join("report");
    let (code, _, stderr) = export(&report, &["--pdf"]);
    assert_eq!(code, 0, "{stderr}");
    let text = Command::new("pdftotext").args(["-layout"]).arg(report.join("report.pdf")).arg("-").output().expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout).replace('\n', " ");
    for needle in ["Key regions", &format!("Region {}", r["id"]), "not a diagnosis", "second", "brighter"] {
        assert!(text.contains(needle), "{needle:?} not in the report: {text}");
    }
    assert!(text.contains(&format!("Key region {} on slice", r["id"])), "the region's key image: {text}");

    // A region accepted (here from the CLI, as a reader would in the Review tab) goes out as a
    // segment of its own SEG, the score as a Parametric Map; dciodvfy finds no error in them.
    let id = r["id"].as_u64().expect("id").to_string();
    let dicom = tmp.path().join("dicom");
    let (code, _, stderr) = export(&dicom, &["--seg", "--pmap", "--accept-region", &id]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["key-regions-seg.dcm", "key-region-score.dcm"] {
        let report = common::dciodvfy(&dicom.join(name));
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "dciodvfy on {name}: {errors:#?}");
    }
    let seg = dicom_object::open_file(dicom.join("key-regions-seg.dcm")).expect("SEG");
    let segments = seg.element(dicom_dictionary_std::tags::SEGMENT_SEQUENCE).expect("segments").items().expect("items");
    assert_eq!(segments.len(), 1, "one accepted region, one segment");
    let label = segments[0]
        .element(dicom_dictionary_std::tags::SEGMENT_LABEL)
        .expect("label")
        .to_str()
        .expect("text")
        .to_string();
    assert_eq!(label.trim(), format!("Key region {id}"));
    // A region the analysis does not have is refused, naming the ones it has.
    let (code, _, stderr) = export(&tmp.path().join("refused"), &["--seg", "--accept-region", "99"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no key region 99"), "{stderr}");
}
