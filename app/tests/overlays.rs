//! What other tools write over a series, read back by Focal: SEGs (binary with CIELab
//! colours, fractional with shuffled frames, over the sample and over an oblique copy),
//! Parametric Maps and NIfTI label maps, made by highdicom and nibabel
//! (reference/make_overlays.py), and the bad objects a reader meets. Placement is checked
//! against the truth the writer placed independently (nibabel, from the DICOM geometry), with
//! `focal compare`; drawing with `focal snapshot`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The objects and the facts the script printed, made once for all tests here.
fn made() -> &'static (PathBuf, serde_json::Value) {
    static MADE: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp").keep();
        let (oblique, _) = common::make_oblique_series(&dir);
        let out = dir.join("objects");
        let printed = common::from_sample("make_overlays.py", &out, &[oblique.to_str().expect("utf8")]);
        let facts = serde_json::from_slice(&printed).expect("facts json");
        (dir, facts)
    })
}

fn objects() -> PathBuf {
    made().0.join("objects")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// `focal compare --json` of two label sources.
fn compare(a: &Path, b: &Path) -> serde_json::Value {
    let (code, out, err) = common::run_focal(&["compare", s(a), s(b), "--json"]);
    assert_eq!(code, 0, "compare {} {}: {err}", a.display(), b.display());
    serde_json::from_str(&out).expect("json")
}

/// Every label agrees voxel for voxel (Dice 1, equal volumes), and there are `count` of them.
fn assert_identical(result: &serde_json::Value, count: usize) {
    let labels = result["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), count, "{result}");
    for l in labels {
        assert_eq!(l["dice"].as_f64(), Some(1.0), "{l}");
        assert_eq!(l["volume_a_ml"], l["volume_b_ml"], "{l}");
        assert!(l["volume_a_ml"].as_f64().expect("volume") > 1.0, "{l}");
    }
}

#[test]
fn segmentations_are_placed_by_their_plane_positions() {
    let o = objects();
    // Binary, three segments, empty frames left out: the writer's own labels, voxel for voxel.
    assert_identical(&compare(&o.join("seg3-truth.nii.gz"), &o.join("seg3/seg.dcm")), 3);
    // Fractional, frames shuffled in the file: placed by position, thresholded at half.
    assert_identical(&compare(&o.join("fractional-truth.nii.gz"), &o.join("fractional/seg.dcm")), 1);
    // Over an oblique series (20° and 10° tilts): on its own grid, voxel for voxel.
    assert_identical(&compare(&o.join("oblique-truth.nii.gz"), &o.join("oblique-seg/seg.dcm")), 3);
}

/// A snapshot of the middle slice with `more` arguments: (exit code, stdout, stderr, PNG).
fn snapshot(name: &str, more: &[&str]) -> (i32, String, String, PathBuf) {
    let out = made().0.join("pictures");
    std::fs::create_dir_all(&out).expect("mkdir");
    let png = out.join(format!("{name}.png"));
    let sample = common::repo().join("assets/sample-study");
    let mut args = vec!["snapshot", s(&sample), "--out", s(&png), "--size", "256"];
    args.extend_from_slice(more);
    let (code, stdout, stderr) = common::run_focal(&args);
    (code, stdout, stderr, png)
}

fn rgb(png: &Path) -> image::RgbImage {
    image::open(png).expect("png").to_rgb8()
}

/// Pixels whose one channel stands clearly above the other two, per channel.
fn dominant(img: &image::RgbImage) -> [usize; 3] {
    let mut n = [0usize; 3];
    for p in img.pixels() {
        let [r, g, b] = p.0.map(i32::from);
        for (c, (x, y, z)) in [(r, g, b), (g, r, b), (b, r, g)].into_iter().enumerate() {
            if x > y + 60 && x > z + 60 {
                n[c] += 1;
            }
        }
    }
    n
}

#[test]
fn snapshots_draw_each_kind_of_object_in_its_colours() {
    let o = objects();
    let (code, plain_out, err, plain) = snapshot("plain", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(plain_out.contains("wrote"), "{plain_out}");
    let seg = o.join("seg3/seg.dcm");
    let (code, out, err, png) = snapshot("seg3", &["--overlay", s(&seg), "--labels", "fill"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("binary segments: bright, middle, dark"), "{out}");
    // The SEG's CIELab colours are red, green and blue: each covers part of the picture.
    let colours = dominant(&rgb(&png));
    assert!(colours.iter().all(|&n| n > 500), "red, green, blue pixels: {colours:?}");
    assert!(dominant(&rgb(&plain)).iter().all(|&n| n < 50), "the plain slice is grey");

    // The same in a reformatted plane (coronal through the middle) and on the oblique series.
    let (code, out, err, coronal) = snapshot("seg3_coronal", &["--overlay", s(&seg), "--plane", "coronal"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("coronal plane at"), "{out}");
    assert!(dominant(&rgb(&coronal)).iter().all(|&n| n > 200), "{coronal:?}");

    // A NIfTI label map (nibabel, int16, gzipped) draws in the default colours.
    let nifti = o.join("seg3-truth.nii.gz");
    let (code, out, err, _) = snapshot("nifti", &["--overlay", s(&nifti)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("labelmap segments: Label 1, Label 2, Label 3"), "{out}");

    // A Parametric Map: its units and real-world range, as the writer put them.
    let (code, out, err, pmap) = snapshot("pmap", &["--overlay", s(&o.join("pmap/pmap.dcm"))]);
    assert_eq!(code, 0, "{err}");
    let [lo, hi] = [0, 1].map(|i| made().1["pmap_range"][i].as_f64().expect("range"));
    // Its unit is UCUM's "1" (no unit): shown as none.
    assert!(out.contains("Intensity ratio, "), "{out}");
    assert!(out.contains(&format!("{lo:.4} to {hi:.4}")), "{out} (range {lo} to {hi})");
    assert!(out.contains("covering 100%"), "{out}");
    assert_ne!(rgb(&pmap), rgb(&plain), "the map changed nothing");
}

#[test]
fn bad_objects_are_named_and_the_rest_still_shows() {
    let o = objects();
    let facts = &made().1;
    let seg = o.join("seg3/seg.dcm");
    let lying = o.join("lying/seg.dcm");
    let elsewhere = o.join("elsewhere/seg.dcm");
    let (code, out, err, png) = snapshot(
        "bad",
        &["--overlay", s(&lying), "--overlay", s(&elsewhere), "--overlay", s(&seg), "--labels", "fill"],
    );
    assert_eq!(code, 0, "{err}");
    let said = format!("{out}{err}");
    let claimed = facts["lying_frames"].as_u64().expect("frames");
    assert!(said.contains("lying") && said.contains(&format!("{claimed} frame(s)")), "the lying NumberOfFrames is not named: {said}");
    assert!(said.contains("another frame of reference"), "{said}");
    assert!(out.contains("binary segments: bright, middle, dark"), "the good SEG is not shown: {out}");
    assert!(dominant(&rgb(&png)).iter().all(|&n| n > 500));

    let (code, out, err, _) = snapshot("overlap", &["--overlay", s(&o.join("overlap/seg.dcm"))]);
    assert_eq!(code, 0, "{err}");
    let overlap = facts["overlap_voxels"].as_u64().expect("overlap");
    assert!(out.contains(&format!("segments overlap in {overlap} voxel(s)")), "{out}");

    let (code, out, err, _) = snapshot("many", &["--overlay", s(&o.join("many/seg.dcm"))]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10000 segments: the first 255 are drawn"), "{out}");

    let (code, out, err, _) = snapshot("outside", &["--overlay", s(&o.join("outside/seg.dcm"))]);
    assert_eq!(code, 0, "{err}");
    let moved = facts["outside_frames"].as_u64().expect("moved");
    assert!(out.contains(&format!("{moved} frame(s) lie outside the series")), "{out}");
}

/// An RT Structure Set (pydicom): its closed planar contours rasterised onto the series — a
/// sphere, and a ring whose inner contour is a hole — match the writer's rasterisation voxel
/// for voxel; the contour with a NaN point is named and left out, the other ROIs drawn in
/// their display colours.
#[test]
fn structure_set_contours_are_rasterised_and_a_broken_contour_is_named() {
    let o = objects();
    assert_identical(&compare(&o.join("rtstruct-truth.nii.gz"), &o.join("rtstruct/rtstruct.dcm")), 2);
    let rtstruct = o.join("rtstruct/rtstruct.dcm");
    let (code, out, err, png) =
        snapshot("rtstruct", &["--overlay", s(&rtstruct), "--plane", "axial", "--labels", "outline"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rtstruct segments: sphere, ring, broken"), "{out}");
    assert!(out.contains("1 contour(s) with missing or non-finite points left out"), "{out}");
    // The sphere's outline, in its red, through the middle of the head.
    assert!(dominant(&rgb(&png))[0] > 50, "no red outline: {png:?}");
}

/// Yellow pixels (red and green high, blue low): the colour report regions are drawn in.
fn yellow(img: &image::RgbImage) -> usize {
    img.pixels().filter(|p| p.0[0] > 200 && p.0[1] > 180 && p.0[2] < 80).count()
}

/// A TID 1500 measurement report (highdicom) lists its groups with their values and the slice
/// each was measured on, and its regions are drawn there; a Key Object Selection lists the
/// slices it names.
#[test]
fn reports_list_their_measurements_and_draw_their_regions() {
    let o = objects();
    let k = made().1["sr_slice"].as_u64().expect("slice").to_string();
    let (code, out, err, png) = snapshot("sr", &["--overlay", s(&o.join("sr/sr.dcm")), "--slice", &k]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Imaging Measurement Report, 2 group(s)"), "{out}");
    assert!(out.contains(&format!("lesion: Area 706.9 mm2 (slice {k})")), "{out}");
    assert!(out.contains(&format!("width: Length 100 mm (slice {k})")), "{out}");
    let (_, _, _, plain) = snapshot("sr_plain", &["--slice", &k]);
    assert!(yellow(&rgb(&png)) > 100 && yellow(&rgb(&plain)) < 10, "regions not drawn");

    let (code, out, err, _) = snapshot("ko", &["--overlay", s(&o.join("ko/ko.dcm"))]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(slice 11, 21)"), "{out}");
}

/// A presentation state (highdicom): its layer's text listed, its square drawn on the slice it
/// names, its window used, and the rotation Focal does not apply named.
#[test]
fn a_presentation_state_draws_its_annotations_in_its_window() {
    let o = objects();
    let k = made().1["sr_slice"].as_u64().expect("slice").to_string();
    let (code, out, err, png) = snapshot("gsps", &["--overlay", s(&o.join("gsps/gsps.dcm")), "--slice", &k]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("READING, 1 group(s)"), "{out}");
    assert!(out.contains(&format!("FINDINGS: look here (slice {k})")), "{out}");
    assert!(out.contains("it rotates the images by 90°, which Focal's views do not"), "{out}");
    assert!(yellow(&rgb(&png)) > 100, "the square is not drawn");
    // Window 40/80 instead of the series' own: a brighter picture.
    let (_, _, _, plain) = snapshot("gsps_plain", &["--slice", &k]);
    let mean = |img: &image::RgbImage| img.pixels().map(|p| f64::from(p.0[1])).sum::<f64>() / f64::from(img.width() * img.height());
    assert!(mean(&rgb(&png)) > mean(&rgb(&plain)) + 10.0, "the state's window is not used");
}
