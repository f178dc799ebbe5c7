//! Snapshot tests of the whole window, drawn by egui_kittest through wgpu (Mesa lavapipe in CI)
//! with Focal's slice pipeline registered, so the GPU-drawn slice and overlays are in the
//! pictures. The real sample study is loaded and the real model runs. Snapshots live in
//! app/tests/snapshots; `UPDATE_SNAPSHOTS=1` rewrites them (look at them before committing).

mod common;
#[path = "common/window.rs"]
mod window;

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use focal::render::MaskMode;
use egui_kittest::Harness;
use focal::ui::{Command, Edit, FocalApp, ReviewChange, ViewChange};
use window::{drag, harness, snapshot, step_until};

/// Timings vary run to run; pin them so the pictures compare.
fn pin_timings(app: &mut FocalApp) {
    app.notices.clear();
    app.edit(Edit::Timing("89 slices in 4.0 s (22.0 slices/s)".into()));
}

#[test]
fn window_states_match_their_snapshots() {
    let data = tempfile::tempdir().expect("tmp");
    let mut h = harness(data.path());
    h.run_steps(2);
    snapshot(&mut h, "empty");

    let ctx = h.ctx.clone();
    let sample = common::repo().join("assets/sample-study");
    h.state_mut().apply(&ctx, Command::Open(vec![sample]));
    step_until(&mut h, "the sample study to load", |app| {
        app.scan.is_none() && app.thumbnails.len() == 1 && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
    pin_timings(h.state_mut());
    h.run_steps(2);
    snapshot(&mut h, "study_loaded");

    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the analysis", |app| {
        app.running.is_none() && app.doc.analysis().is_some()
    });
    pin_timings(h.state_mut());
    h.state_mut().edit(focal::ui::SettingChange::MaskMode(MaskMode::FillAndOutline));
    h.run_steps(2);
    snapshot(&mut h, "overlays_on");

    // Through the UI: the "Outline" button of the mask settings, then a larger width.
    h.get_by_label("Outline").click();
    h.state_mut().edit(focal::ui::SettingChange::OutlineWidth(2));
    h.state_mut().edit(focal::ui::SettingChange::ShowHeatmap(false));
    h.run_steps(2);
    assert_eq!(h.state().doc.settings().mask_mode, MaskMode::Outline);
    snapshot(&mut h, "outline_mode");

    // Key 0 picks the first preset without a tag window: the percentile window here.
    let before = h.state().doc.view().window;
    h.key_press(egui::Key::Num0);
    h.run_steps(2);
    let after = h.state().doc.view().window;
    assert_eq!(h.state().doc.view().preset, Some(focal::ui::presets::FROM_IMAGE));
    h.get_by_label("W/L").click();
    h.run_steps(2);
    h.get_by_label(&format!("{}", focal::ui::presets::AUTO)).click();
    h.run_steps(2);
    let auto = h.state().doc.view().window;
    assert_eq!(h.state().doc.view().preset, Some(focal::ui::presets::AUTO));
    assert_eq!(before, after, "key 0 is the image's own window, already chosen");
    assert_ne!(before, auto, "the percentile window differs from the tagged one");
    h.state_mut().edit(ViewChange::Invert(true));
    h.run_steps(2);
    snapshot(&mut h, "preset_changed");
}

fn open_sample(h: &mut Harness<'_, FocalApp>) {
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(&ctx, Command::Open(vec![common::repo().join("assets/sample-study")]));
    step_until(h, "the sample study to load", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
}

#[test]
fn corrections_update_volumes_undo_and_survive_reopening() {
    let data = tempfile::tempdir().expect("tmp");
    let mut h = harness(data.path());
    open_sample(&mut h);
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the analysis", |app| {
        app.running.is_none() && app.doc.analysis().is_some()
    });
    // The analysis folder is written on a thread; wait for its summary.
    let dir = h.state().doc.analysis().expect("analysis").dir.clone();
    let start = Instant::now();
    while !dir.join("summary.json").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let volume_of = |app: &FocalApp, name: &str| {
        let a = app.doc.analysis().expect("analysis");
        a.review
            .findings
            .iter()
            .find(|f| f.name == name)
            .expect("finding")
            .volume_ml
    };
    let csf_before = volume_of(h.state(), "CSF");

    // Brush: paint CSF in a 10 mm disc at the image centre of the slice on screen.
    {
        let app = h.state_mut();
        app.edit(ViewChange::Tool(focal::ui::Tool::Brush));
        app.edit(ViewChange::BrushLabel(1));
        let slice = app.doc.view().slice;
        app.edit(ReviewChange::Paint {
            slice,
            at: [90.0, 108.0],
            radius_mm: 10.0,
            spacing: [1.0, 1.0],
            label: 1,
        });
        app.edit(ReviewChange::EndStroke);
        assert!(app.doc.analysis().expect("analysis").can_undo());
    }
    let csf_painted = volume_of(h.state(), "CSF");
    assert!(
        csf_painted > csf_before + 0.1,
        "CSF {csf_before} -> {csf_painted} mL after painting"
    );
    // Ctrl+Z through the window undoes the stroke; the volume returns.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run_steps(2);
    assert!(
        (volume_of(h.state(), "CSF") - csf_before).abs() < 1e-9,
        "undo restores the volume"
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
    h.run_steps(2);
    assert!(
        (volume_of(h.state(), "CSF") - csf_painted).abs() < 1e-9,
        "redo re-applies it"
    );

    // K marks a key image; a verdict and a note; the reader signs.
    h.key_press(egui::Key::K);
    h.run_steps(2);
    {
        let app = h.state_mut();
        assert_eq!(app.doc.analysis().expect("analysis").review.key_images.len(), 1);
        app.edit(ReviewChange::Decision(0, focal::report::Decision::Accepted));
        app.edit(ReviewChange::Note(0, "checked".into()));
        app.edit(ReviewChange::Reader("Dr Reader".into()));
        app.edit(ReviewChange::Signed(Some("2026-11-28 12:00 UTC".into())));
    }
    // The ruler and the ellipse: drags on the image are measured and kept in the review.
    let centre = egui::Pos2::new(580.0, 385.0);
    h.state_mut().edit(ViewChange::Tool(focal::ui::Tool::Ruler));
    let below = centre + egui::Vec2::new(0.0, 120.0);
    drag(&mut h, below - egui::Vec2::new(40.0, 0.0), below + egui::Vec2::new(40.0, 0.0));
    h.key_press(egui::Key::O);
    h.run_steps(1);
    assert_eq!(h.state().doc.view().tool, focal::ui::Tool::Ellipse);
    drag(&mut h, centre - egui::Vec2::new(30.0, 25.0), centre + egui::Vec2::new(30.0, 25.0));
    // Freehand: a triangle traced in small steps, left of the ellipse.
    h.key_press(egui::Key::F);
    h.run_steps(1);
    let corner = centre - egui::Vec2::new(150.0, 40.0);
    let trace = [corner, corner + egui::Vec2::new(60.0, 0.0), corner + egui::Vec2::new(30.0, 60.0), corner];
    h.hover_at(trace[0]);
    h.run_steps(1);
    h.drag_at(trace[0]);
    h.run_steps(1);
    for w in trace.windows(2) {
        for k in 1..=6 {
            h.hover_at(w[0] + (w[1] - w[0]) * (k as f32 / 6.0));
            h.run_steps(1);
        }
    }
    h.drop_at(trace[3]);
    h.run_steps(2);
    {
        let app = h.state();
        let points_per_mm = app.gesture.fit_scale * app.doc.view().zoom;
        let m = &app.doc.analysis().expect("analysis").review.measurements;
        assert_eq!(m.len(), 3, "{m:?}");
        let region = &m[2];
        assert!(matches!(region.shape, focal::report::Shape::Polygon { .. }), "{region:?}");
        let triangle = 0.5 * 60.0 * 60.0 / f64::from(points_per_mm).powi(2);
        let area = region.stats.area_mm2.expect("area");
        assert!((area / triangle - 1.0).abs() < 0.1, "{area} mm² for a triangle of {triangle}");
        assert!(region.stats.pixels > 50 && region.stats.mean.is_some(), "{region:?}");
        let length = m[0].stats.length_mm.expect("a distance");
        assert!((length - 80.0 / f64::from(points_per_mm)).abs() < 1.0, "{length} mm for 80 points at {points_per_mm}/mm");
        let e = &m[1].stats;
        let expected_area = std::f64::consts::PI * (30.0 / f64::from(points_per_mm)) * (25.0 / f64::from(points_per_mm));
        assert!((e.area_mm2.expect("area") / expected_area - 1.0).abs() < 0.05, "{e:?}");
        assert!(e.pixels > 100 && e.mean.is_some_and(f64::is_finite) && e.sd.is_some(), "{e:?}");
        assert_eq!(e.heat.as_deref(), Some("attention"));
        assert!(e.heat_mean.is_some_and(|v| (0.0..=1.0).contains(&v)), "{e:?}");
        assert!(m.iter().all(|x| x.slice == app.doc.view().slice));
    }
    h.state_mut().edit(ViewChange::Tool(focal::ui::Tool::Navigate));
    h.state_mut().edit(ReviewChange::Save);

    // Wait for the writes, then reopen in a new window with the same data folder.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let saved = focal::report::Review::load(&dir).ok().flatten();
        if saved.is_some_and(|r| r.signed_at.is_some() && r.edited && r.measurements.len() == 3)
            && dir.join("labels-reviewed.nii").exists()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(h);
    let mut h = harness(data.path());
    open_sample(&mut h);
    step_until(&mut h, "the saved review", |app| app.doc.analysis().is_some());
    let a = h.state().doc.analysis().expect("restored");
    assert!(a.review.edited);
    assert_eq!(a.review.reader, "Dr Reader");
    assert_eq!(a.review.findings[0].note, "checked");
    assert_eq!(a.review.key_images.len(), 1);
    assert_eq!(a.review.measurements.len(), 3, "the measurements were restored");
    assert!(
        (volume_of(h.state(), "CSF") - csf_painted).abs() < 1e-9,
        "the corrected labels were restored"
    );
    // The report lists them.
    let out = data.path().join("export");
    let (code, _, err) = common::run_focal(&[
        "export",
        common::repo().join("assets/sample-study").to_str().expect("utf8"),
        "--analysis",
        dir.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--pdf",
    ]);
    assert_eq!(code, 0, "{err}");
    // FOCAL_KEEP_REPORT=PATH keeps the PDF to look at (its key image shows the outlines).
    if let Some(keep) = std::env::var_os("FOCAL_KEEP_REPORT") {
        std::fs::copy(out.join("report.pdf"), keep).expect("copy the report");
    }
    let pdf = std::process::Command::new("pdftotext")
        .args([out.join("report.pdf").to_str().expect("utf8"), "-"])
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&pdf.stdout);
    assert!(
        text.contains("Measurements") && text.contains("distance") && text.contains("ellipse") && text.contains("region"),
        "{text}"
    );
    assert!(text.contains("attention"), "{text}");
    pin_timings(h.state_mut());
    h.get_by_label("Review").click();
    h.run_steps(3);
    snapshot(&mut h, "review_restored");
}

/// A thick-slice copy of the sample head as a second series of its study, made under `dir` by
/// make_second_series.py; returns its folder.
fn make_second_series(dir: &std::path::Path) -> std::path::PathBuf {
    let second = dir.join("second");
    common::from_sample("make_second_series.py", &second, &[]);
    second
}

/// Two series of one head in the window: the reader picks the second series to combine, runs
/// the model, sees which series each label relied on and the weight map of the second series,
/// then computes the occlusion evidence map of the slice on screen.
#[test]
fn two_series_modality_weights_and_an_evidence_map() {
    let data = tempfile::tempdir().expect("tmp");
    let second = make_second_series(data.path());
    let mut h = harness(&data.path().join("analyses"));
    let ctx = h.ctx.clone();
    h.state_mut().apply(
        &ctx,
        Command::Open(vec![common::repo().join("assets/sample-study"), second]),
    );
    step_until(&mut h, "the study to load", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
    // The sample (89 slices) opens first; combine it with the 4 mm copy.
    let (primary, other) = {
        let set = h.state().doc.studies().cloned().expect("studies");
        let current = h.state().doc.current().expect("current").uid.clone();
        let other = set.series().find(|s| s.uid != current).expect("second series").uid.clone();
        (current, other)
    };
    assert_eq!(primary, common::sample_series_uid());
    h.state_mut().edit(Edit::CombineWith(Some(other.clone())));
    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the two-series analysis", |app| {
        app.running.is_none() && app.doc.analysis().is_some()
    });
    let a = h.state().doc.analysis().expect("analysis");
    assert_eq!(a.extras.insights.slots.len(), 2);
    assert_eq!(a.extras.insights.slots[1].series_uid, other);
    assert!(a.extras.modality.is_some(), "no modality weights");
    pin_timings(h.state_mut());
    h.state_mut().edit(Edit::Heatmap(focal::ui::Heatmap::Modality(1)));
    h.run_steps(2);
    snapshot(&mut h, "two_series_weights");

    h.state_mut().apply(&ctx, Command::ComputeEvidence);
    step_until(&mut h, "the evidence map", |app| {
        app.doc.current_analysis()
            .is_some_and(|a| a.extras.evidence.contains_key(&app.doc.view().slice))
    });
    pin_timings(h.state_mut());
    let (info, _) = h.state().doc.current_analysis().expect("analysis").extras.evidence[&h.state().doc.view().slice].clone();
    assert!(info.max > 0.0 && info.patches > 50, "{info:?}");
    assert_eq!(h.state().doc.heatmap(), focal::ui::Heatmap::Evidence);
    // Pinned for the picture (the map itself is checked above).
    let series = h.state().doc.current().expect("series").uid.clone();
    let values = h.state().doc.current_analysis().expect("analysis").extras.evidence[&info.slice].1.clone();
    let mut info = info;
    info.seconds = 3.0;
    h.state_mut().edit(Edit::Evidence { series, info, values });
    h.run_steps(2);
    snapshot(&mut h, "evidence_map");
}

/// The PACS window without a server: nodes of both kinds are saved from the editor into a
/// private node list (the password leaves the form once saved), and Echo to a port where
/// nothing listens says so in the window.
#[test]
fn pacs_window_saves_nodes_and_says_why_a_node_is_unreachable() {
    use focal::ui::pacs_panel::{AuthKind, NodeKind, PacsPanel};
    let data = tempfile::tempdir().expect("tmp");
    let config = data.path().join("config").join("pacs.json");
    let mut h = harness(data.path());
    h.state_mut().pacs = PacsPanel::new(Ok(config.clone()), Ok(data.path().join("cache")));
    h.state_mut().pacs.open = true;
    h.run_steps(2);

    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    {
        let f = &mut h.state_mut().pacs.form;
        f.kind = NodeKind::Dimse;
        f.name = "hospital".into();
        f.ae = "PACS_AE".into();
        f.host = "127.0.0.1".into();
        f.port = closed.to_string();
    }
    h.run_steps(2);
    h.get_by_label("Save node").click();
    h.run_steps(2);
    h.get_by_label("New node").click();
    h.run_steps(2);
    {
        let f = &mut h.state_mut().pacs.form;
        f.kind = NodeKind::Web;
        f.name = "archive".into();
        f.url = format!("http://127.0.0.1:{closed}/dicom-web");
        f.auth = AuthKind::Basic;
        f.user = "reader".into();
        f.secret = "pw-in-the-form".into();
    }
    h.run_steps(2);
    h.get_by_label("Save node").click();
    h.run_steps(2);
    let saved = std::fs::read_to_string(&config).expect("node list written");
    assert!(saved.contains("hospital") && saved.contains("archive") && saved.contains("pw-in-the-form"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).expect("meta").permissions().mode() & 0o777, 0o600);
    assert!(h.state().pacs.form.secret.is_empty(), "the password stays in the form after saving");

    h.get_by_label("Echo").click();
    h.run_steps(2); // the click starts the job
    step_until(&mut h, "the echo to fail", |app| !app.pacs.busy());
    let status = h.state().pacs.status.clone().unwrap_or_default();
    assert!(status.contains("cannot connect"), "{status}");
    // The port differs run to run; the picture shows the same words.
    let port = closed.to_string();
    {
        let pacs = &mut h.state_mut().pacs;
        pacs.status = Some(status.replace(&port, "PORT"));
        pacs.form.url = pacs.form.url.replace(&port, "PORT");
    }
    h.run_steps(2);
    snapshot(&mut h, "pacs_nodes");
}

/// Fusion without an analysis: the second series of the head (a thick-slice copy made by
/// make_second_series.py) is resampled onto the series on screen and drawn over it with its
/// own window and colour map; a series of the same head at another place would be refused
/// (pairing's own tests), and "none" removes it.
#[test]
fn a_second_series_fuses_over_the_first() {
    let data = tempfile::tempdir().expect("tmp");
    let second = make_second_series(data.path());
    let mut h = harness(&data.path().join("analyses"));
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(&ctx, Command::Open(vec![common::repo().join("assets/sample-study"), second]));
    step_until(&mut h, "the study to load", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
    let other = {
        let app = h.state();
        let current = &app.doc.current().expect("current").uid;
        let set = app.doc.studies().cloned().expect("studies");
        set.series().find(|s| &s.uid != current).expect("second series").uid.clone()
    };
    h.state_mut().apply(&ctx, Command::Fuse(other.clone()));
    step_until(&mut h, "the fused series", |app| app.doc.fusion().is_some());
    let app = h.state();
    let f = app.doc.current_fusion().expect("fused over the series on screen");
    assert_eq!(app.doc.heatmap(), focal::ui::Heatmap::Fusion);
    assert!(f.coverage > 0.8, "coverage {}", f.coverage);
    let current = app.doc.current().expect("current");
    let v = current.volume.as_ref().expect("volume");
    assert_eq!((f.volume.columns, f.volume.rows, f.volume.slices), (v.columns, v.rows, v.slices));
    // The thick-slice copy of the same head agrees with the head where both have tissue.
    let k = app.doc.view().slice;
    let (a, b) = (v.slice(k).expect("slice"), f.volume.slice(k).expect("fused slice"));
    let both: Vec<(f32, f32)> = a.iter().zip(b).filter(|(x, y)| **x > 20.0 && **y > 20.0).map(|(x, y)| (*x, *y)).collect();
    assert!(both.len() > 1000, "{} pixels with tissue in both", both.len());
    let mean_ratio = both.iter().map(|(x, y)| f64::from(*y / *x)).sum::<f64>() / both.len() as f64;
    assert!((0.7..1.3).contains(&mean_ratio), "fused/primary {mean_ratio}");
    h.state_mut().notices.clear();
    h.run_steps(3);
    snapshot(&mut h, "fusion");
    // The fused series in the three planes, reformatted with the series it was resampled onto.
    h.state_mut().edit(focal::ui::SettingChange::Layout(focal::ui::Layout::Three));
    h.run_steps(3);
    assert_eq!(h.state().mpr_views.len(), 3);
    snapshot(&mut h, "fusion_1x3");
}

/// A restored analysis made by another model than the one loaded (here: its summary says
/// another version) is shown with the model that made it named, beside the loaded one.
#[test]
fn a_restored_analysis_names_the_model_that_made_it() {
    let data = tempfile::tempdir().expect("tmp");
    let series = common::sample_series_uid();
    let dir = data.path().join(focal::uid::key(&series));
    let (code, _, err) = common::run_focal(&[
        "analyze",
        common::repo().join("assets/sample-study").to_str().expect("utf8"),
        "--device",
        "cpu",
        "--out",
        dir.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let path = dir.join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("json");
    summary["model"]["version"] = "9.9.9-older".into();
    std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("json")).expect("write");
    let mut h = harness(data.path());
    open_sample(&mut h);
    step_until(&mut h, "the saved analysis", |app| app.doc.analysis().is_some());
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("analysis was made by brain-tissue 9.9.9-older").is_some(),
        "the model panel does not name the analysis' model"
    );
}

/// Key regions in the window: the sample with a synthetic lesion and a T2-like series, its T1
/// acquired with contrast, with a thin bright strip on the midline and a thin bright tube in the
/// white matter, analysed on both with the key-region candidate (CLI, saved where the window
/// looks for it); the list in the Analysis tab names each series' share, and lists the strip and
/// the tube apart as likely physiological; a click shows the region (its slice, the score as heatmap) in 1×1 and in the
/// three planes; in the Review tab the reader accepts it with a note.
#[test]
fn key_regions_are_listed_shown_and_reviewed() {
    let data = tempfile::tempdir().expect("tmp");
    let study = data.path().join("lesion-study");
    let python = std::env::var("FOCAL_PYTHON").expect("FOCAL_PYTHON (scripts/test.sh sets it)");
    let run = std::process::Command::new(python)
        .arg(common::repo().join("app/tests/reference/make_lesion_study.py"))
        .arg(common::repo().join("assets/sample-study"))
        .arg(&study)
        .args(["--t2", "--contrast"])
        .output()
        .expect("python runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let set = focal::study::StudySet::open(
        &[study.clone()],
        &|_: focal::study::Progress| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("scan");
    let uid = |number: i64| set.series().find(|s| s.number == Some(number)).expect("series").uid.clone();
    let (t1, t2) = (uid(9), uid(10));
    let dir = data.path().join(focal::uid::key(&t1));
    // The key-region candidate (its settings shipped in 3.4.2); the window shows what its analysis found.
    let model_dir = data.path().join("model");
    std::fs::create_dir_all(&model_dir).expect("model dir");
    let model = common::key_regions_model(&model_dir);
    let (code, _, err) = common::run_focal(&[
        "analyze",
        "--model",
        model.to_str().expect("utf8"),
        study.to_str().expect("utf8"),
        "--series",
        &t1,
        "--series",
        &t2,
        "--device",
        "cpu",
        "--out",
        dir.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");

    let mut h = harness(data.path());
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, Command::Open(vec![study.clone()]));
    step_until(&mut h, "the study to load", |app| app.scan.is_none() && app.doc.current().is_some());
    h.state_mut().apply(&ctx, Command::LoadSeries { series: t1.clone(), stack: 0 });
    step_until(&mut h, "the T1 series and its saved analysis", |app| {
        app.doc.current().is_some_and(|c| c.uid == t1 && c.volume.is_some()) && app.doc.analysis().is_some()
    });
    let regions = h.state().doc.analysis().expect("analysis").extras.insights.key_regions.clone().expect("key regions");
    // The lesion's region: the one centred at the lesion (make_lesion_study.py's centre).
    let at_lesion = |r: &&focal::inference::key_regions::KeyRegion| {
        r.centre_lps_mm.is_some_and(|c| ((c[0] + 26.0).powi(2) + (c[1] + 10.0).powi(2) + (c[2] - 28.0).powi(2)).sqrt() < 6.0)
    };
    let region = regions.iter().find(at_lesion).unwrap_or_else(|| panic!("no region at the lesion: {regions:?}")).clone();
    assert_eq!(region.series_weights.len(), 2, "{region:?}");
    pin_timings(h.state_mut());
    h.run_steps(2);
    h.get_by_label(&format!("Region {}", region.id)).click();
    h.run_steps(3);
    assert_eq!(h.state().doc.view().slice, (region.slices[0] + region.slices[1]) / 2 - 1, "the click goes to the region's slice: {region:?}");
    assert_eq!(h.state().doc.heatmap(), focal::ui::Heatmap::KeyRegions);
    assert!(h.query_all_by_label_contains("second ").next().is_some(), "the list names the second series' share");
    assert!(
        h.query_all_by_label_contains("Set aside as likely physiological (2)").next().is_some(),
        "the strip and the tube are listed apart"
    );
    snapshot(&mut h, "key_regions");
    h.state_mut().edit(focal::ui::SettingChange::Layout(focal::ui::Layout::Three));
    h.run_steps(3);
    snapshot(&mut h, "key_regions_1x3");

    h.state_mut().edit(focal::ui::SettingChange::Layout(focal::ui::Layout::Single));
    h.state_mut().edit(Edit::ReviewTab(true));
    h.state_mut().edit(ReviewChange::RegionDecision(region.id, focal::report::Decision::Accepted));
    h.state_mut().edit(ReviewChange::RegionNote(region.id, "bright on both".into()));
    h.state_mut().edit(ReviewChange::Save);
    h.run_steps(3);
    snapshot(&mut h, "key_regions_review");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("review.json")).expect("review.json")).expect("json");
    let verdict = saved["regions"].as_array().expect("regions").iter().find(|r| r["id"] == region.id).expect("verdict").clone();
    assert_eq!((verdict["decision"].as_str(), verdict["note"].as_str()), (Some("Accepted"), Some("bright on both")));
}

/// Objects other tools wrote, in the window: the SEG of a folder opened beside the study is
/// listed under its series and drawn over it (its CIELab colours, each segment's volume, a
/// segment switched off), in 1×1 and 1×3; a Parametric Map shows as a heatmap with its units;
/// a NIfTI label map opened as a file lands on the same voxels as the SEG.
#[test]
fn objects_other_tools_wrote_show_over_the_series() {
    let data = tempfile::tempdir().expect("tmp");
    let objects = data.path().join("objects");
    let printed = common::from_sample("make_overlays.py", &objects, &[]);
    let facts: serde_json::Value = serde_json::from_slice(&printed).expect("facts");
    let mut h = harness(&data.path().join("analyses"));
    let ctx = h.ctx.clone();
    h.state_mut().apply(
        &ctx,
        Command::Open(vec![
            common::repo().join("assets/sample-study"),
            objects.join("seg3"),
            objects.join("pmap"),
            objects.join("rtstruct"),
            objects.join("sr"),
        ]),
    );
    step_until(&mut h, "the study to load", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
    let (seg, pmap, rtstruct, sr) = {
        let set = h.state().doc.studies().cloned().expect("studies");
        let find = |n: i64| set.series().find(|s| s.number == Some(n)).expect("object series").uid.clone();
        (find(300), find(302), find(305), find(306))
    };
    // The sample is on screen, not an object series.
    assert_eq!(h.state().doc.current().expect("current").modality.as_deref(), Some("MR"));
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::Series(seg)));
    step_until(&mut h, "the SEG", |app| app.doc.objects().count() == 1);
    h.run_steps(2);
    let counts = |app: &FocalApp| {
        let c = app.object_composite().expect("drawn map");
        (1..=3u8).map(|v| c.labels.iter().filter(|&&l| l == v).count() as u64).collect::<Vec<_>>()
    };
    let expected: Vec<u64> = (0..3).map(|i| facts["seg3_voxels"][i].as_u64().expect("count")).collect();
    assert_eq!(counts(h.state()), expected);
    h.state_mut().notices.clear();
    h.state_mut().edit(focal::ui::SettingChange::MaskMode(MaskMode::Fill));
    h.run_steps(3);
    snapshot(&mut h, "seg_1x1");
    // A segment switched off in the panel is not drawn.
    h.get_by_label_contains("middle").click();
    h.run_steps(2);
    assert_eq!(counts(h.state())[1], 0);
    h.state_mut().edit(focal::ui::SettingChange::Layout(focal::ui::Layout::Three));
    h.run_steps(3);
    assert_eq!(h.state().mpr_views.len(), 3);
    snapshot(&mut h, "seg_1x3");

    // The SEG switched off, so the map shows alone.
    h.state_mut().edit(Edit::ObjectShown(0, false));
    h.run_steps(1);
    assert!(h.state().object_composite().is_none());
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::Series(pmap)));
    step_until(&mut h, "the parametric map", |app| app.doc.current_fusion().is_some());
    let label = h.state().doc.current_fusion().expect("map").label.clone();
    assert!(label.ends_with("Intensity ratio"), "{label}");
    h.state_mut().notices.clear();
    h.run_steps(3);
    snapshot(&mut h, "pmap_1x3");
    h.state_mut().edit(focal::ui::SettingChange::Layout(focal::ui::Layout::Single));
    h.run_steps(3);
    snapshot(&mut h, "pmap_1x1");

    // The NIfTI truth, opened as a file, replaces nothing and covers the SEG's voxels.
    h.state_mut().edit(Edit::ObjectClosed(0));
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::File(objects.join("seg3-truth.nii.gz"))));
    step_until(&mut h, "the NIfTI map", |app| app.doc.objects().count() == 1);
    h.run_steps(2);
    assert_eq!(counts(h.state()), expected);

    // A structure set's ROIs as outlines, and a measurement report's regions on their slice.
    h.state_mut().edit(Edit::ObjectClosed(0));
    h.state_mut().edit(Edit::Unfuse);
    h.state_mut().edit(focal::ui::SettingChange::MaskMode(MaskMode::Outline));
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::Series(rtstruct)));
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::Series(sr)));
    step_until(&mut h, "the structure set and the report", |app| app.doc.objects().count() == 2);
    let k = facts["sr_slice"].as_u64().expect("slice") as usize - 1;
    h.state_mut().edit(focal::ui::ViewChange::GoTo(k));
    assert_eq!(focal::ui::objects::report_outlines(h.state(), k).len(), 2);
    h.state_mut().notices.clear();
    h.run_steps(3);
    snapshot(&mut h, "rtstruct_and_sr");
}

/// The round trip in the window: the SEG Focal exports of an analysis, opened beside the
/// study, is listed under the series, drawn over it equal to the analysis's labels voxel for
/// voxel, and compared with the analysis in the panel gives Dice 1 for every label.
#[test]
fn the_exported_seg_opened_beside_the_study_equals_the_analysis() {
    let data = tempfile::tempdir().expect("tmp");
    let mut h = harness(&data.path().join("analyses"));
    let ctx = h.ctx.clone();
    open_sample(&mut h);
    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the analysis", |app| app.running.is_none() && app.doc.analysis().is_some());
    let (dir, labels) = {
        let a = h.state().doc.analysis().expect("analysis");
        (a.dir.clone(), a.labels.clone())
    };
    let exported = data.path().join("export");
    let set = h.state().doc.studies().cloned().expect("studies");
    let manifest = h.state().manifest.clone().expect("manifest");
    let opts = focal::report::ExportOptions {
        analysis: dir,
        out: exported.clone(),
        pdf: false,
        seg: true,
        pmap: false,
        sc: false,
        sr: false,
        // Identifiers (and UIDs) kept: a de-identified copy is in another frame of reference.
        keep_phi: true,
        force: false,
        accept_regions: Vec::new(),
    };
    focal::report::export(&set, &manifest, &opts).expect("export");
    h.state_mut().apply(&ctx, Command::Open(vec![common::repo().join("assets/sample-study"), exported]));
    step_until(&mut h, "the study and the restored analysis", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some()) && app.doc.current_analysis().is_some()
    });
    let seg = {
        let set = h.state().doc.studies().cloned().expect("studies");
        set.series().find(|s| s.modality.as_deref() == Some("SEG")).expect("the exported SEG").uid.clone()
    };
    h.state_mut().apply(&ctx, Command::ShowObject(focal::ui::objects::ObjectSource::Series(seg)));
    step_until(&mut h, "the SEG", |app| app.doc.objects().count() == 1);
    h.run_steps(2);
    // The drawn map holds the analysis's values (1..=3) and, drawn over them, the SEG's
    // segments (past them). Only the SEG's part read back by segment name must be the
    // analysis's map again: every labelled voxel covered by the segment of its label.
    let composite = h.state().object_composite().cloned().expect("drawn map");
    let names: Vec<String> = composite.table.iter().map(|(n, _, _)| n.clone()).collect();
    let label_names = h.state().doc.label_names().to_vec();
    let own = label_names.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let back: Vec<u8> = composite
        .labels
        .iter()
        .map(|&v| if v <= own { 0 } else { labels_index(&names, &label_names, v) })
        .collect();
    assert_eq!(back, labels, "the SEG drawn over the series differs from the analysis");
    h.state_mut().apply(&ctx, Command::CompareObject(0));
    step_until(&mut h, "the comparison", |app| app.object_comparison.is_some());
    let (_, result) = h.state().object_comparison.as_ref().expect("comparison");
    let rows = result.as_ref().expect("compared");
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (name, r) in rows {
        assert_eq!(r.dice, Some(1.0), "{name}: {r:?}");
    }
}

/// The analysis's label index a drawn value stands for: its name in the drawn table, looked up
/// among the analysis's labels.
fn labels_index(table: &[String], labels: &[(u8, String)], value: u8) -> u8 {
    let name = &table[usize::from(value)];
    labels.iter().find(|(_, n)| n == name).map_or(255, |(l, _)| *l)
}
