use super::*;

/// The bundled sample study, opened as the window opens it, with its series on screen.
fn sample() -> Document {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample-study");
    let set = StudySet::open(
        std::slice::from_ref(&root),
        &|_| {},
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("sample");
    let series = set.series().next().expect("a series");
    let current = CurrentSeries {
        uid: series.uid.clone(),
        label: "sample".into(),
        modality: series.modality.clone(),
        stack: series.stacks[0].clone(),
        stack_index: 0,
        volume: None,
        early: None,
        progress: None,
        error: None,
    };
    let mut doc = Document::new(Settings::default(), vec![(0, "background".into()), (1, "CSF".into())]);
    doc.apply(Edit::Opened(vec![root]));
    doc.apply(Edit::Scanned(Arc::new(set)));
    let first = current.stack.slices.len() / 2;
    doc.apply(Edit::ShowSeries {
        series: Box::new(current),
        first,
    });
    doc
}

#[test]
fn a_series_opens_on_its_middle_slice_and_steps_stay_inside_it() {
    let mut doc = sample();
    let slices = doc.current().expect("series").stack.slices.len();
    assert!(slices > 10);
    assert_eq!(doc.view().slice, slices / 2);
    doc.apply(ViewChange::Step(-1).into());
    assert_eq!(doc.view().slice, slices / 2 - 1);
    doc.apply(ViewChange::Step(10_000).into());
    assert_eq!(doc.view().slice, slices - 1);
    doc.apply(ViewChange::Step(-10_000).into());
    assert_eq!(doc.view().slice, 0);
    // A reader's window is kept; the one from the data no longer replaces it.
    doc.apply(
        ViewChange::Window {
            center: 40.0,
            width: 0.5,
            preset: None,
        }
        .into(),
    );
    assert_eq!(doc.view().window.width, 1.0, "a window is at least one unit wide");
    assert!(!doc.view().window_from_volume);
}

#[test]
fn zooming_about_a_point_keeps_that_point_still() {
    let mut doc = sample();
    let offset = Vec2::new(120.0, -40.0);
    doc.apply(ViewChange::Pan(Vec2::new(10.0, 5.0)).into());
    // The image point under `offset`, in fit-to-view points from the image centre.
    let under = |v: &ViewState| (offset - v.pan) / v.zoom;
    let before = under(doc.view());
    doc.apply(ViewChange::ZoomAbout { factor: 2.5, offset }.into());
    assert_eq!(doc.view().zoom, 2.5);
    assert!((under(doc.view()) - before).length() < 1e-4);
    doc.apply(ViewChange::ZoomAbout { factor: 100.0, offset }.into());
    assert_eq!(doc.view().zoom, 40.0, "zoom is bounded");
    doc.apply(ViewChange::Fit.into());
    assert_eq!((doc.view().zoom, doc.view().pan), (1.0, Vec2::ZERO));
}

#[test]
fn opening_again_closes_the_last_study_and_keeps_it_first_in_recent() {
    let mut doc = sample();
    doc.apply(Edit::Heatmap(Heatmap::Fusion));
    let other = PathBuf::from("/elsewhere");
    doc.apply(Edit::Opened(vec![other.clone()]));
    assert!(doc.current().is_none() && doc.studies().is_none() && doc.analysis().is_none());
    assert_eq!(doc.heatmap(), Heatmap::Attention, "no fused series is left to show");
    assert_eq!(doc.settings().recent[0], other);
    assert_eq!(doc.opened(), [other]);
    for i in 0..20 {
        doc.apply(Edit::Opened(vec![PathBuf::from(format!("/s{i}"))]));
    }
    assert_eq!(doc.settings().recent.len(), MAX_RECENT);
}

#[test]
fn a_volume_of_another_series_is_not_taken_in() {
    let mut doc = sample();
    let applied = doc.apply(Edit::VolumeLoaded {
        series: "1.2.3".into(),
        result: Err("not this one".into()),
    });
    assert_eq!(applied, Applied::default());
    assert!(doc.current().expect("series").error.is_none());
    let uid = doc.current().expect("series").uid.clone();
    doc.apply(Edit::VolumeLoaded {
        series: uid,
        result: Err("unreadable".into()),
    });
    assert_eq!(doc.current().expect("series").error.as_deref(), Some("unreadable"));
}

#[test]
fn settings_change_one_at_a_time() {
    let mut doc = sample();
    doc.apply(SettingChange::LabelShown(1, false).into());
    doc.apply(SettingChange::LabelShown(1, false).into());
    assert_eq!(doc.settings().hidden_labels, [1]);
    doc.apply(SettingChange::LabelShown(1, true).into());
    assert!(doc.settings().hidden_labels.is_empty());
    doc.apply(SettingChange::Layout(Layout::Four).into());
    doc.apply(SettingChange::OutlineWidth(3).into());
    assert_eq!((doc.settings().layout, doc.settings().outline_width), (Layout::Four, 3));
    doc.set_attention_range([0.2, 0.6]);
    assert_eq!(
        doc.settings().attention.threshold,
        0.2,
        "a threshold outside the range is moved into it"
    );
}

#[test]
fn review_changes_without_an_analysis_change_nothing() {
    let mut doc = sample();
    for change in [
        ReviewChange::Reader("Dr Reader".into()),
        ReviewChange::Undo,
        ReviewChange::RemoveMeasurement(3),
        ReviewChange::Save,
    ] {
        assert_eq!(doc.apply(change.into()), Applied::default());
    }
    assert!(doc.analysis().is_none());
}

#[test]
fn strokes_undo_redo_and_verdicts_change_the_analysis_on_screen() {
    let mut doc = sample();
    let dir = tempfile::tempdir().expect("tmp");
    let c = doc.current().expect("series");
    let (columns, rows, slices) = (c.stack.columns as usize, c.stack.rows as usize, c.stack.slices.len());
    let view = AnalysisView::new(
        c.uid.clone(),
        dir.path().to_path_buf(),
        [columns, rows, slices],
        vec![0; columns * rows * slices],
        Arc::new(vec![0.0; columns * rows * slices]),
        ("CPU".into(), None),
        true,
        vec![(1, Some(0.9))],
        0.001,
        None,
    );
    doc.apply(Edit::ShowAnalysis(Box::new(view)));
    let csf = |d: &Document| {
        d.analysis()
            .expect("analysis")
            .review
            .findings
            .iter()
            .find(|f| f.label == 1)
            .map_or(0.0, |f| f.volume_ml)
    };
    assert_eq!(csf(&doc), 0.0);
    let paint = ReviewChange::Paint {
        slice: 3,
        at: [20.0, 20.0],
        radius_mm: 5.0,
        spacing: [1.0, 1.0],
        label: 1,
    };
    doc.apply(paint.into());
    assert_eq!(csf(&doc), 0.0, "findings are measured when the stroke ends");
    doc.apply(ReviewChange::EndStroke.into());
    let painted = csf(&doc);
    assert!(painted > 0.05, "{painted} mL");
    assert!(doc.analysis().expect("analysis").review.edited);
    doc.apply(ReviewChange::Undo.into());
    assert_eq!(csf(&doc), 0.0);
    doc.apply(ReviewChange::Redo.into());
    assert_eq!(csf(&doc), painted);
    let i = doc
        .analysis()
        .expect("analysis")
        .review
        .findings
        .iter()
        .position(|f| f.label == 1)
        .expect("CSF");
    doc.apply(ReviewChange::Decision(i, Decision::Rejected).into());
    let style = SliceStyle {
        window_center: 40.0,
        window_width: 400.0,
        invert: false,
        attention: None,
        mask: None,
    };
    doc.apply(ReviewChange::MarkKeyImage(3, Box::new(style.clone())).into());
    doc.apply(ReviewChange::MarkKeyImage(3, Box::new(style)).into());
    doc.apply(ReviewChange::RegionDecision(2, Decision::Accepted).into());
    doc.apply(ReviewChange::RegionNote(2, "enhancing rim".into()).into());
    doc.apply(ReviewChange::RegionDecision(2, Decision::Rejected).into());
    let r = &doc.analysis().expect("analysis").review;
    assert_eq!(r.findings[i].decision, Decision::Rejected);
    assert_eq!(r.key_images.len(), 1, "a slice is a key image once");
    let region = r.region(2);
    assert_eq!((region.decision, region.note.as_str()), (Decision::Rejected, "enhancing rim"), "the note stays with a new verdict");
    assert_eq!(r.regions.len(), 1);
    assert_eq!(r.region(5).decision, Decision::Pending, "a region without a verdict is not reviewed");
}
