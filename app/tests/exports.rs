//! `focal export` end to end on the sample study, checked by third-party tools: dciodvfy
//! (dicom3tools) on every DICOM object, highdicom and pydicom on the SEG / Parametric Map
//! contents and positions, poppler on the PDF; de-identification, --keep-phi and write safety.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_dictionary_std::tags;

const PHI: [&str; 5] = common::SAMPLE_PHI;

fn sample() -> PathBuf {
    common::repo().join("assets/sample-study")
}

/// Analyses the sample once per test binary run (shared by the tests below).
fn analysis() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("analysis");
        let (code, _, err) = common::run_focal(&[
            "analyze",
            sample().to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ]);
        assert_eq!(code, 0, "analyze failed: {err}");
        dir
    })
    .path()
}

fn export(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let analysis = analysis().join("analysis");
    let study = sample();
    let mut args = vec![
        "export",
        study.to_str().expect("utf8"),
        "--analysis",
        analysis.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    common::run_focal(&args)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is needed (scripts/setup.sh installs it): {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn text_of(obj: &dicom_object::DefaultDicomObject, path: &[dicom_core::Tag]) -> String {
    let mut current = obj.clone().into_inner();
    for (i, tag) in path.iter().enumerate() {
        let e = current.element(*tag).expect("element").clone();
        if i + 1 == path.len() {
            return e.to_str().expect("text").trim_end_matches('\0').to_string();
        }
        current = e.items().expect("sequence")[0].clone();
    }
    String::new()
}

#[test]
fn exports_pass_dciodvfy_highdicom_pydicom_and_hold_no_identifiers() {
    let out = tempfile::tempdir().expect("tmp");
    let (code, stdout, stderr) = export(out.path(), &[]);
    assert_eq!(code, 0, "export failed: {stderr}");
    assert!(stdout.contains("de-identified"), "{stdout}");
    let written = files(out.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "attention-map.dcm",
            "export.json",
            "key-image-1.dcm",
            "key-region-score.dcm",
            "measurements-sr.dcm",
            "report-pdf.dcm",
            "report.pdf",
            "segmentation.dcm"
        ],
        "no staging folder or partial file is left behind (the key-region score: the shipped model looks for them)"
    );

    // dciodvfy: no errors on any object.
    for dcm in written.iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")) {
        let report = common::dciodvfy(dcm);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
        let warnings: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("Warning") && !l.contains("DICOMDIR"))
            .collect();
        eprintln!(
            "dciodvfy {}: {} errors, {} warnings {warnings:?}",
            dcm.display(),
            errors.len(),
            warnings.len()
        );
        assert!(errors.is_empty(), "dciodvfy on {}: {errors:#?}", dcm.display());
    }

    // highdicom / pydicom: contents and positions.
    let python = std::env::var("FOCAL_PYTHON")
        .expect("FOCAL_PYTHON: a Python with pydicom and highdicom (scripts/test.sh sets it)");
    let check = Command::new(&python)
        .arg(common::repo().join("app/tests/reference/validate_exports.py"))
        .arg(sample())
        .arg(analysis().join("analysis"))
        .arg(out.path())
        .output()
        .expect("python runs");
    let said = String::from_utf8_lossy(&check.stdout);
    eprintln!("validate_exports.py: {said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "highdicom/pydicom checks failed");
    let result: serde_json::Value = serde_json::from_str(said.trim()).expect("json line");
    assert!(result["seg_slices_checked"].as_u64().unwrap_or(0) > 100);
    assert_eq!(result["pmap_frames"].as_u64(), Some(89));

    // De-identification: no identifier bytes anywhere, PDF included.
    for f in &written {
        let bytes = std::fs::read(f).expect("read");
        for phi in PHI {
            assert!(
                !bytes.windows(phi.len()).any(|w| w == phi.as_bytes()),
                "{} contains {phi}",
                f.display()
            );
        }
    }
    // UIDs remapped, consistently: both objects reference the same new series UID.
    let seg = dicom_object::open_file(out.path().join("segmentation.dcm")).expect("seg");
    let pmap = dicom_object::open_file(out.path().join("attention-map.dcm")).expect("pmap");
    let referenced = [tags::REFERENCED_SERIES_SEQUENCE, tags::SERIES_INSTANCE_UID];
    let (a, b) = (text_of(&seg, &referenced), text_of(&pmap, &referenced));
    let source_series = common::sample_series_uid();
    assert_eq!(a, b, "one export maps a UID to one new UID");
    assert_ne!(a, source_series, "source UIDs are remapped");
    assert_eq!(text_of(&seg, &[tags::PATIENT_IDENTITY_REMOVED]), "YES");

    // The PDF: real text with the findings and the disclaimer; every page renders.
    let pdf = out.path().join("report.pdf");
    let text = tool("pdftotext", &[pdf.to_str().expect("utf8"), "-"]);
    assert!(text.contains("Not for diagnostic use"), "{text}");
    assert!(text.contains("Patient identifiers removed"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(analysis().join("analysis/summary.json")).expect("summary"))
            .expect("json");
    for label in summary["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .filter(|l| l["index"] != 0)
    {
        let name = label["name"].as_str().expect("name");
        let ml = format!("{:.1}", label["volume_ml"].as_f64().expect("ml"));
        assert!(
            text.contains(name) && text.contains(&ml),
            "the report lacks {name} {ml} mL"
        );
    }
    // The key image is what the offscreen renderer (the window's shader) draws for that slice.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("export.json")).expect("export.json"))
            .expect("json");
    let k = record["key_image_slices"][0].as_u64().expect("key slice") as usize;
    let sc = dicom_object::open_file(out.path().join("key-image-1.dcm")).expect("sc");
    let (w, h) = (
        u32::from(sc.element(tags::COLUMNS).expect("cols").to_int::<u16>().expect("int")),
        u32::from(sc.element(tags::ROWS).expect("rows").to_int::<u16>().expect("int")),
    );
    let sc_rgb = sc
        .element(tags::PIXEL_DATA)
        .expect("pixels")
        .to_bytes()
        .expect("bytes")
        .into_owned();
    let (stack, _) = common::sample_volume();
    let values = focal::study::load_slice(&stack, k).expect("slice");
    let n = (stack.columns * stack.rows) as usize;
    let dir = analysis().join("analysis");
    let labels = match focal::inference::nifti::read(&dir.join("labels.nii"))
        .expect("labels")
        .1
    {
        focal::inference::nifti::Voxels::U8(v) => v[k * n..(k + 1) * n].to_vec(),
        _ => panic!("labels are u8"),
    };
    let attention = match focal::inference::nifti::read(&dir.join("attention.nii"))
        .expect("attention")
        .1
    {
        focal::inference::nifti::Voxels::F32(v) => v[k * n..(k + 1) * n].to_vec(),
        _ => panic!("attention is f32"),
    };
    let manifest =
        focal::inference::Manifest::load(&common::repo().join("models/brain-tissue.json")).expect("manifest");
    let window = stack.slices[k]
        .info()
        .window
        .expect("the sample has a window in its tags");
    let style = focal::report::export::default_style(&manifest, window);
    let pixels = focal::render::SlicePixels::new(
        stack.columns as usize,
        stack.rows as usize,
        1,
        values.values,
        Some(attention),
        Some(labels),
    )
    .expect("planes");
    let renderer = focal::render::OffscreenRenderer::new().expect("adapter");
    let drawn = renderer
        .render(
            &std::sync::Arc::new(pixels),
            &style,
            w,
            h,
            [0.0, 0.0, w as f32, h as f32],
        )
        .expect("render");
    let drawn_rgb: Vec<u8> = drawn.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    assert_eq!(
        &sc_rgb[..drawn_rgb.len()],
        &drawn_rgb[..],
        "the key image is the offscreen render"
    );

    let pages_dir = tempfile::tempdir().expect("tmp");
    tool(
        "pdftoppm",
        &[
            "-r",
            "50",
            "-png",
            pdf.to_str().expect("utf8"),
            pages_dir.path().join("p").to_str().expect("utf8"),
        ],
    );
    let pages = files(pages_dir.path());
    assert!(pages.len() >= 2, "report pages rendered: {}", pages.len());
    for p in &pages {
        assert!(
            std::fs::metadata(p).expect("page").len() > 2000,
            "{} is blank",
            p.display()
        );
    }
}

#[test]
fn keep_phi_keeps_identifiers_and_says_so() {
    let out = tempfile::tempdir().expect("tmp");
    let (code, stdout, stderr) = export(out.path(), &["--keep-phi", "--seg", "--pdf"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("KEPT"));
    let seg = dicom_object::open_file(out.path().join("segmentation.dcm")).expect("seg");
    assert_eq!(text_of(&seg, &[tags::PATIENT_NAME]), "Sample^Colin");
    assert!(!text_of(&seg, &[tags::SERIES_INSTANCE_UID]).is_empty());
    let text = tool(
        "pdftotext",
        &[out.path().join("report.pdf").to_str().expect("utf8"), "-"],
    );
    assert!(text.contains("KEPT") && text.contains("FOCAL-SAMPLE-0001"), "{text}");
    assert!(
        !out.path().join("attention-map.dcm").exists(),
        "only the asked-for exports"
    );
}

#[test]
fn exports_never_land_in_the_study_and_failures_leave_nothing() {
    // Into the study folder: refused before anything is written.
    let inside = sample().join("focal-out");
    let (code, _, stderr) = export(&inside, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("must not be inside the study folder"), "{stderr}");
    assert!(!inside.exists());

    // A broken analysis folder: a specific error, and the output folder holds no files.
    let broken = tempfile::tempdir().expect("tmp");
    for f in ["summary.json", "labels.nii"] {
        std::fs::copy(analysis().join("analysis").join(f), broken.path().join(f)).expect("copy");
    }
    let out = tempfile::tempdir().expect("tmp");
    let (code, _, stderr) = common::run_focal(&[
        "export",
        sample().to_str().expect("utf8"),
        "--analysis",
        broken.path().to_str().expect("utf8"),
        "--out",
        out.path().to_str().expect("utf8"),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("attention.nii"), "{stderr}");
    assert!(
        files(out.path()).is_empty(),
        "a failed export left {:?}",
        files(out.path())
    );
}

/// Without a desktop session (no XDG_RUNTIME_DIR, as on a server or in a batch job) a
/// successful export prints no graphics-stack noise that reads like a failure (issue 32, item 9:
/// libwayland's "error: XDG_RUNTIME_DIR is invalid…" twice, EGL's driver error).
#[test]
fn a_headless_export_is_quiet() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("pdf");
    let analysis = analysis().join("analysis");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_focal"))
        .args(["export", sample().to_str().expect("utf8"), "--analysis"])
        .arg(&analysis)
        .arg("--out")
        .arg(&out)
        .arg("--pdf")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("WGPU_BACKEND")
        .output()
        .expect("focal runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(out.join("report.pdf").is_file());
    assert!(!stderr.contains("XDG_RUNTIME_DIR") && !stderr.contains("ERROR") && !stderr.contains("error:"), "{stderr}");
    assert!(stdout.contains("key images drawn by"), "{stdout}");
}

/// An export does not overwrite what is already in its folder unless asked (--force), and the
/// staging folder an export killed midway left behind is removed by the next one (issue 32,
/// item 6).
#[test]
fn a_non_empty_folder_is_refused_without_force_and_stale_staging_is_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("report");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("report.pdf"), b"the reader's own file").expect("write");
    // A staging folder of a process that no longer exists (no pid is this large), with a
    // truncated file, and one of a live process (this test's), which must be left alone.
    let dead = out.join(".focal-export-4294967295-20260101120000");
    let live = out.join(format!(".focal-export-{}-20260101120000", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(d.join("report.pdf"), b"%PDF-1.7 trunc").expect("write");
    }
    let (code, _, stderr) = export(&out, &["--pdf"]);
    assert_ne!(code, 0, "exported into a non-empty folder");
    assert!(stderr.contains("not empty") && stderr.contains("report.pdf") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(out.join("report.pdf")).expect("read"), b"the reader's own file");
    assert!(!dead.exists(), "the dead export's staging folder is still there");
    assert!(live.exists(), "a live export's staging folder was removed");
    std::fs::remove_dir_all(&live).expect("cleanup");
    let (code, stdout, stderr) = export(&out, &["--pdf", "--force"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let pdf = std::fs::read(out.join("report.pdf")).expect("read");
    assert!(pdf.starts_with(b"%PDF-"), "not replaced by the report");
}

/// Real images without a patient position (pydicom-data's ultrasound, RGB, and computed
/// radiograph, MONOCHROME1) get a picture report: a de-identified PDF of their pixels, no DICOM
/// objects; the objects that need an analysis are refused with the reason.
#[test]
fn images_without_geometry_get_a_de_identified_picture_report() {
    let corpus = common::corpus();
    for (file, modality, name) in [
        ("US1_UNCR.dcm", "US", "CompressedSamples^US1"),
        ("RG3_UNCR.dcm", "CR", "CompressedSamples^RG3"),
    ] {
        let study = tempfile::tempdir().expect("tmp");
        std::fs::copy(corpus.files.join("data_store/data").join(file), study.path().join(file)).expect("copy");
        let study_arg = study.path().to_str().expect("utf8");
        let out = tempfile::tempdir().expect("tmp");
        let target = out.path().join("report");
        let target_arg = target.to_str().expect("utf8");

        let (code, _, stderr) = common::run_focal(&["export", study_arg, "--out", target_arg, "--seg"]);
        assert_ne!(code, 0, "{file}: a SEG without an analysis must be refused");
        assert!(stderr.contains("need an analysis"), "{file}: {stderr}");
        assert!(!target.exists(), "{file}: nothing is written when refused");

        let (code, stdout, stderr) = common::run_focal(&["export", study_arg, "--out", target_arg]);
        assert_eq!(code, 0, "{file}: {stderr}");
        assert!(stdout.contains("picture report of 1 image"), "{file}: {stdout}");
        let names: Vec<String> = files(&target)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["export.json", "report.pdf"], "{file}");
        let pdf = target.join("report.pdf");
        let text = tool("pdftotext", &[pdf.to_str().expect("utf8"), "-"]);
        assert!(text.contains("Focal picture report"), "{file}: {text}");
        assert!(text.contains(&format!("{modality} series, 1 image of")), "{file}: {text}");
        assert!(text.contains("no patient position and orientation"), "{file}: {text}");
        assert!(!text.contains("Findings") && !text.contains("Limits of the model"), "{file}: {text}");
        for part in name.split('^') {
            assert!(!text.contains(part), "{file}: the report names the patient ({part}): {text}");
        }
        // One embedded picture, of the image's aspect (square pixels: none are given).
        let images = tool("pdfimages", &["-list", pdf.to_str().expect("utf8")]);
        let rows: Vec<&str> = images.lines().skip(2).filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(rows.len(), 1, "{file}: {images}");
        let cols: Vec<&str> = rows[0].split_whitespace().collect();
        let (w, h): (f64, f64) = (cols[3].parse().expect("width"), cols[4].parse().expect("height"));
        let expected = if modality == "US" { 640.0 / 480.0 } else { 1.0 };
        assert!((w / h - expected).abs() < 0.01, "{file}: {w}×{h}");

        // With --keep-phi the identifiers stay, and the report says so.
        let kept = out.path().join("kept");
        let (code, _, stderr) =
            common::run_focal(&["export", study_arg, "--out", kept.to_str().expect("utf8"), "--keep-phi"]);
        assert_eq!(code, 0, "{file}: {stderr}");
        let text = tool("pdftotext", &[kept.join("report.pdf").to_str().expect("utf8"), "-"]);
        assert!(text.contains("KEPT") && text.contains("CompressedSamples"), "{file}: {text}");
    }
}

/// A patient named in Chinese, a study described in Cyrillic, a reader who writes in Greek:
/// the PDF prints every script (embedded subset fonts with a ToUnicode map: pdftotext reads
/// the text back, pdffonts lists the fonts as embedded subsets); de-identified, the name is
/// gone and the reader's text stays.
#[test]
fn the_report_prints_names_and_notes_in_any_script() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The sample with UTF-8 identifiers (same UIDs, so the sample's analysis applies).
    let study = tmp.path().join("study");
    std::fs::create_dir_all(&study).expect("mkdir");
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON (scripts/test.sh sets it)");
    let script = r#"
import glob, os, sys
import pydicom
src, out = sys.argv[1], sys.argv[2]
for f in glob.glob(os.path.join(src, "*.dcm")):
    ds = pydicom.dcmread(f)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "王^小明"
    ds.StudyDescription = "Исследование головного мозга"
    ds.save_as(os.path.join(out, os.path.basename(f)), enforce_file_format=True)
"#;
    let made = Command::new(python)
        .args(["-c", script, sample().to_str().expect("utf8"), study.to_str().expect("utf8")])
        .output()
        .expect("python runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let reviewed = tmp.path().join("analysis");
    std::fs::create_dir_all(&reviewed).expect("mkdir");
    for f in files(&analysis().join("analysis")) {
        std::fs::copy(&f, reviewed.join(f.file_name().expect("name"))).expect("copy");
    }
    let review = serde_json::json!({
        "findings": [], "key_images": [], "edited": false,
        "impression": "Αθηνά: χωρίς ευρήματα. Врач: норма. 印象：未见异常。",
        "reader": "Αθηνά Παππά", "signed_at": "2026-12-06 10:00 UTC"
    });
    common::write_json(&reviewed.join("review.json"), &review);

    let pdf_text = |keep_phi: bool| {
        let out = tmp.path().join(format!("out-{keep_phi}"));
        let mut args = vec![
            "export",
            study.to_str().expect("utf8"),
            "--analysis",
            reviewed.to_str().expect("utf8"),
            "--pdf",
            "--out",
            out.to_str().expect("utf8"),
        ];
        if keep_phi {
            args.push("--keep-phi");
        }
        let (code, _, err) = common::run_focal(&args);
        assert_eq!(code, 0, "{err}");
        let pdf = out.join("report.pdf");
        let fonts = tool("pdffonts", &[pdf.to_str().expect("utf8")]);
        for face in ["DejaVuSans", "DroidSansFallback"] {
            let line = fonts.lines().find(|l| l.contains(face)).unwrap_or_else(|| panic!("{face} not in the PDF:\n{fonts}"));
            assert!(line.contains("CID TrueType") && line.contains("yes yes yes"), "not an embedded subset with a ToUnicode map: {line}");
        }
        tool("pdftotext", &[pdf.to_str().expect("utf8"), "-"])
    };
    let kept = pdf_text(true);
    for expected in ["王^小明", "Исследование головного мозга", "Αθηνά Παππά", "χωρίς ευρήματα", "норма", "未见异常"] {
        assert!(kept.contains(expected), "{expected:?} not in the report's text:\n{kept}");
    }
    assert!(!kept.contains('?'), "a character printed as '?':\n{kept}");
    let plain = pdf_text(false);
    assert!(!plain.contains("王") && !plain.contains("小明"), "the patient's name in a de-identified report:\n{plain}");
    assert!(plain.contains("Αθηνά Παππά") && plain.contains("未见异常"), "{plain}");
}

/// `focal compare`: the analysis with itself agrees perfectly; with a label map another tool
/// wrote (nibabel: int16, gzipped, grey matter shifted one voxel) the Dice, volumes and
/// Hausdorff-95 match scipy's on the same maps.
#[test]
fn compare_matches_scipy_on_a_third_party_label_map() {
    let analysis = analysis().join("analysis");
    let a = analysis.to_str().expect("utf8");
    let (code, out, err) = common::run_focal(&["compare", a, a, "--json"]);
    assert_eq!(code, 0, "{err}");
    let same: serde_json::Value = serde_json::from_str(&out).expect("json");
    for l in same["labels"].as_array().expect("labels") {
        assert_eq!((l["dice"].as_f64(), l["hausdorff95_mm"].as_f64()), (Some(1.0), Some(0.0)), "{l}");
    }

    let tmp = tempfile::tempdir().expect("tmp");
    let other = tmp.path().join("other.nii.gz");
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON (scripts/test.sh sets it)");
    let script = r#"
import json, sys
import nibabel as nib
import numpy as np
from scipy import ndimage
src, out = sys.argv[1], sys.argv[2]
img = nib.load(src)
a = np.asarray(img.dataobj).astype(np.int16)
b = a.copy()
grey = a == 2
b[grey] = 0
b[np.roll(grey, 1, axis=0) & (b == 0)] = 2
nib.save(nib.Nifti1Image(b, img.affine), out)
spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
six = ndimage.generate_binary_structure(3, 1)
def surface(m):
    return m & ~ndimage.binary_erosion(m, structure=six, border_value=0)
ref = {}
for label in sorted((set(np.unique(a)) | set(np.unique(b))) - {0}):
    ma, mb = a == label, b == label
    na, nb = int(ma.sum()), int(mb.sum())
    dice = 2 * int((ma & mb).sum()) / (na + nb)
    sa, sb = surface(ma), surface(mb)
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    d = np.sort(np.concatenate([to_b[sa], to_a[sb]]))
    hd95 = float(d[int(np.ceil(0.95 * len(d))) - 1])
    ref[int(label)] = {"dice": dice, "hd95": hd95, "ml_a": na * float(np.prod(spacing)) / 1000, "ml_b": nb * float(np.prod(spacing)) / 1000}
print(json.dumps(ref))
"#;
    let made = Command::new(python)
        .args(["-c", script, analysis.join("labels.nii").to_str().expect("utf8"), other.to_str().expect("utf8")])
        .output()
        .expect("python runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&made.stdout).expect("reference json");
    let (code, out, err) = common::run_focal(&["compare", a, other.to_str().expect("utf8"), "--json"]);
    assert_eq!(code, 0, "{err}");
    let ours: serde_json::Value = serde_json::from_str(&out).expect("json");
    let labels = ours["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), reference.as_object().expect("object").len(), "{out}");
    for l in labels {
        let r = &reference[l["label"].as_u64().expect("label").to_string()];
        for (ours_key, ref_key, tolerance) in [("dice", "dice", 1e-9), ("hausdorff95_mm", "hd95", 1e-4), ("volume_a_ml", "ml_a", 1e-6), ("volume_b_ml", "ml_b", 1e-6)] {
            let (x, y) = (l[ours_key].as_f64().expect("ours"), r[ref_key].as_f64().expect("reference"));
            assert!((x - y).abs() <= tolerance, "{} {ours_key}: {x} against scipy's {y}", l["name"]);
        }
    }
    let grey = labels.iter().find(|l| l["name"] == "grey matter").expect("grey matter");
    assert!(grey["dice"].as_f64().expect("dice") < 0.99, "the shift changed nothing: {grey}");
}

/// The round trip: the SEG Focal exports, read back by Focal over the series, is the
/// analysis's labels voxel for voxel (every label's Dice 1 and volumes equal), and the
/// snapshot of the export folder's SEG over the study draws it.
#[test]
fn the_exported_seg_reads_back_as_the_analysis_labels() {
    let out = tempfile::tempdir().expect("tmp");
    let (code, _, stderr) = export(out.path(), &["--seg"]);
    assert_eq!(code, 0, "{stderr}");
    let seg = out.path().join("segmentation.dcm");
    let analysis = analysis().join("analysis");
    let (code, stdout, stderr) =
        common::run_focal(&["compare", analysis.to_str().expect("utf8"), seg.to_str().expect("utf8"), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let labels = result["labels"].as_array().expect("labels");
    assert!(labels.len() >= 3, "{stdout}");
    for l in labels {
        assert_eq!(l["dice"].as_f64(), Some(1.0), "{l}");
        assert_eq!(l["volume_a_ml"], l["volume_b_ml"], "{l}");
    }
}

/// The measurement report as DICOM SR (TID 1500): a reader's line, ellipse and freehand
/// region and the label volumes with their verdicts, exported with the SEG; dciodvfy finds
/// no error in it, and highdicom reads back the same values, the regions on the slices they
/// were drawn on, and each volume's reference to its segment of the SEG beside it.
#[test]
fn the_measurement_report_sr_reads_back_in_highdicom() {
    let tmp = tempfile::tempdir().expect("tmp");
    let reviewed = tmp.path().join("analysis");
    std::fs::create_dir_all(&reviewed).expect("mkdir");
    for f in files(&analysis().join("analysis")) {
        std::fs::copy(&f, reviewed.join(f.file_name().expect("name"))).expect("copy");
    }
    let review = serde_json::json!({
        "findings": [], "key_images": [], "edited": false, "impression": "", "reader": "", "signed_at": null,
        "measurements": [
            {"slice": 80, "shape": {"Line": {"from": [60.5, 100.5], "to": [180.5, 100.5]}},
             "stats": {"length_mm": 123.4, "area_mm2": null, "pixels": 0, "mean": null, "sd": null, "heat_mean": null, "heat_sd": null}},
            {"slice": 81, "shape": {"Ellipse": {"center": [120.0, 110.0], "radii": [20.0, 12.0]}},
             "stats": {"length_mm": null, "area_mm2": 754.0, "pixels": 748, "mean": 312.5, "sd": 40.25, "heat_mean": null, "heat_sd": null}},
            {"slice": 82, "shape": {"Polygon": {"points": [[100.0, 100.0], [140.0, 100.0], [120.0, 140.0]]}},
             "stats": {"length_mm": null, "area_mm2": 800.0, "pixels": 790, "mean": 250.0, "sd": 10.0, "heat_mean": null, "heat_sd": null}}
        ]
    });
    common::write_json(&reviewed.join("review.json"), &review);
    let out = tmp.path().join("out");
    let (code, stdout, err) = common::run_focal(&[
        "export", sample().to_str().expect("utf8"), "--analysis", reviewed.to_str().expect("utf8"),
        "--seg", "--sr", "--out", out.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let sr = out.join("measurements-sr.dcm");
    assert!(stdout.contains("measurements-sr.dcm"), "{stdout}");
    let report = common::dciodvfy(&sr);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy:\n{report}");

    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON (scripts/test.sh sets it)");
    let script = r#"
import json, sys
import highdicom as hd
import pydicom
sr = hd.sr.srread(sys.argv[1])
seg = pydicom.dcmread(sys.argv[2])
doc = sr.content
assert isinstance(doc, hd.sr.MeasurementReport), type(doc)
planar = []
for g in doc.get_planar_roi_measurement_groups():
    region = g.roi
    planar.append({
        "id": g.tracking_identifier,
        "graphic_type": region.graphic_type.value,
        "points": region.value.tolist(),
        "image": region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID,
        "values": {m.name.meaning: [m.value, m.unit.value] for m in g.get_measurements()},
    })
volumes = []
for g in doc.get_volumetric_roi_measurement_groups():
    seg_ref = g.referenced_segment
    volumes.append({
        "id": g.tracking_identifier,
        "finding": g.finding_type.meaning if g.finding_type else None,
        "segment": int(seg_ref.referenced_segment_numbers[0]) if seg_ref else None,
        "seg": seg_ref.referenced_sop_instance_uid if seg_ref else None,
        "values": {m.name.meaning: [m.value, m.unit.value] for m in g.get_measurements()},
        "verdict": [e.value.meaning for e in g.get_qualitative_evaluations()],
    })
segments = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
print(json.dumps({"planar": planar, "volumes": volumes, "seg_uid": seg.SOPInstanceUID, "segments": segments}))
"#;
    let made = Command::new(python)
        .args(["-c", script, sr.to_str().expect("utf8"), out.join("segmentation.dcm").to_str().expect("utf8")])
        .output()
        .expect("python runs");
    assert!(made.status.success(), "highdicom could not read the SR: {}", String::from_utf8_lossy(&made.stderr));
    let back: serde_json::Value = serde_json::from_slice(&made.stdout).expect("json");
    let planar = back["planar"].as_array().expect("planar");
    assert_eq!(planar.len(), 3, "{back}");
    assert_eq!(planar[0]["graphic_type"], "POLYLINE");
    assert_eq!(planar[0]["points"], serde_json::json!([[60.5, 100.5], [180.5, 100.5]]));
    assert_eq!(planar[0]["values"]["Length"], serde_json::json!([123.4, "mm"]));
    assert_eq!(planar[1]["graphic_type"], "ELLIPSE");
    assert_eq!(planar[1]["values"]["Area"], serde_json::json!([754.0, "mm2"]));
    assert_eq!(planar[1]["values"]["Mean"][0], 312.5);
    assert_eq!(planar[1]["values"]["Standard Deviation"][0], 40.25);
    // The freehand region is closed.
    let points = planar[2]["points"].as_array().expect("points");
    assert_eq!(points.first(), points.last());
    // Each region on the slice it was drawn on (the de-identified UIDs differ from the
    // source's, but three slices give three images).
    let images: std::collections::BTreeSet<String> = planar.iter().map(|p| p["image"].as_str().expect("uid").to_string()).collect();
    assert_eq!(images.len(), 3, "{back}");

    let analysis_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reviewed.join("summary.json")).expect("summary")).expect("json");
    let volumes = back["volumes"].as_array().expect("volumes");
    assert!(volumes.len() >= 3, "{back}");
    for v in volumes {
        let name = v["id"].as_str().expect("name");
        let label = analysis_summary["labels"].as_array().expect("labels").iter().find(|l| l["name"] == name).expect("label in summary");
        let ml = v["values"]["Volume"][0].as_f64().expect("volume");
        assert!((ml - label["volume_ml"].as_f64().expect("ml")).abs() < 0.01, "{name}: {ml} mL against {label}");
        assert_eq!(v["values"]["Volume"][1], "ml");
        assert_eq!(v["seg"], back["seg_uid"], "the volume refers to the SEG beside it");
        let segment = v["segment"].as_u64().expect("segment").to_string();
        assert_eq!(back["segments"][&segment], *name, "segment {segment} of the SEG is another label");
        assert_eq!(v["verdict"], serde_json::json!(["Not reviewed"]));
    }

    // `focal snapshot` of the analysis draws the reader's ellipse on its slice (slice 82 from
    // 1), in the measurement colour, over the labels and attention.
    let png = tmp.path().join("snapshot.png");
    let (code, _, err) = common::run_focal(&[
        "snapshot", sample().to_str().expect("utf8"), "--analysis", reviewed.to_str().expect("utf8"),
        "--slice", "82", "--out", png.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let img = image::open(&png).expect("png").to_rgb8();
    let [r, g, b] = focal::report::export::MEASUREMENT_COLOUR;
    let marked = img.pixels().filter(|p| p.0 == [r, g, b]).count();
    assert!(marked > 50, "the measurement is not drawn ({marked} pixels)");
}
