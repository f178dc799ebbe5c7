//! Series whose geometry or values are impossible, made in the test run from the real sample
//! study: every slice at one position, PixelSpacing "NaN", spacing of a micrometre, RescaleSlope
//! "NaN". Each used to be analysed with a silent default (1 mm, slope 1) and wrong volumes; now
//! `focal analyze` refuses, naming the problem, `focal info` warns, and the viewer still opens
//! the series.

mod common;

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;

/// The sample study's files, sorted by name.
fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::repo().join("assets/sample-study"))
        .expect("sample")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    assert!(files.len() > 50, "the sample study has {} files", files.len());
    files
}

/// A copy of the sample study with `change` applied to every slice (`k` = its index in
/// [`sample_files`]).
fn altered_sample(dir: &Path, name: &str, change: &dyn Fn(&mut dicom_object::DefaultDicomObject, usize)) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("folder");
    for (k, f) in sample_files().iter().enumerate() {
        let mut obj = dicom_object::open_file(f).expect("sample slice opens");
        change(&mut obj, k);
        obj.write_to_file(out.join(f.file_name().expect("name"))).expect("write");
    }
    out
}

fn text(obj: &mut dicom_object::DefaultDicomObject, tag: dicom_core::Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

#[test]
fn impossible_geometry_and_values_are_refused_by_name_and_the_viewer_still_opens_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "one position",
            altered_sample(tmp.path(), "one-position", &|o, _| {
                text(o, tags::IMAGE_POSITION_PATIENT, VR::DS, "-90\\126\\-72")
            }),
            "slices at one position",
        ),
        (
            "PixelSpacing NaN",
            altered_sample(tmp.path(), "nan-spacing", &|o, _| text(o, tags::PIXEL_SPACING, VR::DS, "NaN\\NaN")),
            "unreadable PixelSpacing",
        ),
        (
            "micrometre spacing",
            altered_sample(tmp.path(), "tiny-spacing", &|o, _| text(o, tags::PIXEL_SPACING, VR::DS, "1e-6\\1e-6")),
            "implausible spacing",
        ),
        (
            "no position",
            altered_sample(tmp.path(), "no-position", &|o, _| {
                o.remove_element(tags::IMAGE_POSITION_PATIENT);
            }),
            "no position/orientation",
        ),
        (
            "RescaleSlope NaN",
            altered_sample(tmp.path(), "nan-slope", &|o, _| {
                text(o, tags::RESCALE_SLOPE, VR::DS, "NaN");
                text(o, tags::RESCALE_INTERCEPT, VR::DS, "0");
            }),
            "unreadable RescaleSlope",
        ),
    ];
    for (what, dir, expected) in &cases {
        let d = dir.to_str().expect("path");
        let out = tmp.path().join(format!("out-{}", what.replace(' ', "-")));
        let (code, stdout, stderr) =
            common::run_focal(&["analyze", d, "--device", "cpu", "--out", out.to_str().expect("path")]);
        assert_ne!(code, 0, "{what}: analysed anyway:\n{stdout}");
        assert!(stderr.contains("cannot be analysed") && stderr.contains(expected), "{what}: {stderr}");
        assert!(!out.join("summary.json").exists(), "{what}: wrote a summary");
        let (code, stdout, stderr) = common::run_focal(&["info", d]);
        assert_eq!(code, 0, "{what}: {stderr}");
        assert!(stdout.contains(expected), "{what}: info does not warn:\n{stdout}");
        // The viewer's path still loads every slice.
        let set = focal::study::StudySet::open(
            &[dir.clone()],
            &|_: focal::study::Progress| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .expect("scan");
        let stack = &set.series().next().expect("series").stacks[0];
        let volume = focal::study::load_volume(stack, &|_| {}, &std::sync::atomic::AtomicBool::new(false))
            .expect("the series still opens");
        assert_eq!(volume.slices, 89, "{what}");
    }
    // The untouched sample raises none of these.
    let set = common::sample_set();
    let stack = &set.series().next().expect("series").stacks[0];
    assert!(stack.warnings.iter().all(|w| !w.blocks_measurement()), "{:?}", stack.warnings);
}

/// A series that stays usable but has something a reader should know (here two slices at one
/// position): the analysis runs and says so in the CLI, summary.json (and from there the window
/// and the PDF), where `focal info` alone used to say it.
#[test]
fn a_usable_series_with_a_duplicate_position_is_analysed_with_a_warning() {
    let tmp = tempfile::tempdir().expect("tmp");
    let first = dicom_object::open_file(&sample_files()[0]).expect("open");
    let position = first
        .element(tags::IMAGE_POSITION_PATIENT)
        .expect("position")
        .to_str()
        .expect("text")
        .to_string();
    let dir = altered_sample(tmp.path(), "duplicate", &|o, k| {
        if k == 1 {
            text(o, tags::IMAGE_POSITION_PATIENT, VR::DS, &position);
        }
    });
    let out = tmp.path().join("out");
    let (code, stdout, stderr) = common::run_focal(&[
        "analyze",
        dir.to_str().expect("path"),
        "--device",
        "cpu",
        "--out",
        out.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("WARNING: series") && stdout.contains("duplicate slice position"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    let warnings = summary["slots"][0]["warnings"].as_array().expect("the series' warnings in the summary");
    assert!(warnings.iter().any(|w| w.as_str().is_some_and(|w| w.contains("duplicate"))), "{warnings:?}");
}
