//! The window under egui_kittest, drawn through wgpu (Mesa lavapipe in CI) with Focal's slice
//! pipeline registered: shared by the snapshot tests (`#[path = "common/window.rs"] mod window;`,
//! so that tests without a window do not build it).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::{Harness, SnapshotOptions};
use focal::ui::{FocalApp, Settings};

/// A 1200 × 760 window with analyses kept under `data`.
pub fn harness(data: &std::path::Path) -> Harness<'static, FocalApp> {
    let render_state = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        eframe::egui_wgpu::RendererOptions::PREDICTABLE,
    );
    focal::render::register(&render_state);
    let renderer = egui_kittest::wgpu::WgpuTestRenderer::from_render_state(render_state);
    let mut app = FocalApp::new(&egui::Context::default(), Settings::default(), Vec::new());
    app.analysis_root = Ok(data.to_path_buf());
    Harness::builder()
        .with_size([1200.0, 760.0])
        .renderer(renderer)
        .build_ui_state(|ui, app: &mut FocalApp| app.show(ui), app)
}

/// Steps the UI until `done` holds (background threads finish on their own time).
pub fn step_until(h: &mut Harness<'_, FocalApp>, what: &str, done: impl Fn(&FocalApp) -> bool) {
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

/// A left-button drag from `from` to `to` through real pointer events, a frame per step.
pub fn drag(h: &mut Harness<'_, FocalApp>, from: egui::Pos2, to: egui::Pos2) {
    h.hover_at(from);
    h.run_steps(1);
    h.drag_at(from);
    h.run_steps(1);
    h.hover_at(from + (to - from) * 0.5);
    h.run_steps(1);
    h.hover_at(to);
    h.run_steps(1);
    h.drop_at(to);
    h.run_steps(2);
}

pub fn snapshot(h: &mut Harness<'_, FocalApp>, name: &str) {
    // lavapipe is deterministic on one machine kind; allow a few pixels of slack for text AA.
    h.snapshot_options(name, &SnapshotOptions::new().max_failed_pixels(200));
}

