//! Snapshot tests of the whole window, drawn by egui_kittest through wgpu (Mesa lavapipe in CI)
//! with Focal's slice pipeline registered, so the GPU-drawn slice and overlays are in the
//! pictures. The real sample study is loaded and the real model runs. Snapshots live in
//! app/tests/snapshots; `UPDATE_SNAPSHOTS=1` rewrites them (look at them before committing).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};
use focal::render::MaskMode;
use focal::ui::{Command, FocalApp, Settings};

fn harness() -> Harness<'static, FocalApp> {
    let render_state = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        eframe::egui_wgpu::RendererOptions::PREDICTABLE,
    );
    focal::render::register(&render_state);
    let renderer = egui_kittest::wgpu::WgpuTestRenderer::from_render_state(render_state);
    let app = FocalApp::new(&egui::Context::default(), Settings::default(), Vec::new());
    Harness::builder()
        .with_size([1200.0, 760.0])
        .renderer(renderer)
        .build_ui_state(|ui, app: &mut FocalApp| app.show(ui), app)
}

/// Steps the UI until `done` holds (background threads finish on their own time).
fn step_until(h: &mut Harness<'_, FocalApp>, what: &str, done: impl Fn(&FocalApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.run_steps(3);
}

fn snapshot(h: &mut Harness<'_, FocalApp>, name: &str) {
    // lavapipe is deterministic on one machine kind; allow a few pixels of slack for text AA.
    h.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(200));
}

/// Timings vary run to run; pin them so the pictures compare.
fn pin_timings(app: &mut FocalApp) {
    app.notices.clear();
    if let Some(a) = app.analysis.as_mut() {
        let analysis = Arc::make_mut(&mut a.analysis);
        analysis.summary.seconds_total = 4.0;
        analysis.summary.seconds_model = 3.0;
        analysis.summary.slices_per_second = 22.0;
    }
}

#[test]
fn window_states_match_their_snapshots() {
    let mut h = harness();
    h.run_steps(2);
    snapshot(&mut h, "empty");

    let ctx = h.ctx.clone();
    let sample = common::repo().join("assets/sample-study");
    h.state_mut().apply(&ctx, Command::Open(vec![sample]));
    step_until(&mut h, "the sample study to load", |app| {
        app.scan.is_none() && app.thumbnails.len() == 1 && app.current.as_ref().is_some_and(|c| c.volume.is_some())
    });
    pin_timings(h.state_mut());
    h.run_steps(2);
    snapshot(&mut h, "study_loaded");

    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the analysis", |app| {
        app.running.is_none() && app.analysis.is_some()
    });
    pin_timings(h.state_mut());
    h.state_mut().settings.mask_mode = MaskMode::FillAndOutline;
    h.run_steps(2);
    snapshot(&mut h, "overlays_on");

    // Through the UI: the "Outline" button of the mask settings, then a larger width.
    h.get_by_label("Outline").click();
    h.state_mut().settings.outline_width = 2;
    h.state_mut().settings.show_attention = false;
    h.run_steps(2);
    assert_eq!(h.state().settings.mask_mode, MaskMode::Outline);
    snapshot(&mut h, "outline_mode");

    // Key 0 picks the first preset without a tag window: the percentile window here.
    let before = h.state().view.window;
    h.key_press(egui::Key::Num0);
    h.run_steps(2);
    let after = h.state().view.window;
    assert_eq!(h.state().view.preset, Some(focal::ui::presets::FROM_IMAGE));
    h.get_by_label("W/L").click();
    h.run_steps(2);
    h.get_by_label(&format!("{}", focal::ui::presets::AUTO)).click();
    h.run_steps(2);
    let auto = h.state().view.window;
    assert_eq!(h.state().view.preset, Some(focal::ui::presets::AUTO));
    assert_eq!(before, after, "key 0 is the image's own window, already chosen");
    assert_ne!(before, auto, "the percentile window differs from the tagged one");
    h.state_mut().view.invert = true;
    h.run_steps(2);
    snapshot(&mut h, "preset_changed");
}
