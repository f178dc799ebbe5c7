//! `focal view --bench-frames N`: the window measures itself (bench/frame_time.py drives it).
//! Once the series (and any saved analysis) has loaded, every frame moves to the next slice —
//! in 1×1 the next acquired slice, in 1×3 and 2×2 the axial plane one voxel step, as the wheel
//! over that view does (it is resampled on the GPU; the other views redraw their reference
//! lines) — and the interval between frames is recorded; then as many frames with nothing
//! changed (the window's own cost). Then the changing picture is drawn offscreen through the
//! same pipelines (the floor: no window, no UI), and all is written as JSON before closing.

use std::path::PathBuf;
use std::time::Instant;

use eframe::egui;

use super::FocalApp;
use super::Layout;
use super::mpr;
use crate::render::{OffscreenRenderer, ReslicePlane};
use crate::study::reformat::Plane;

/// Frames drawn before timing starts (pipelines, first uploads).
const WARMUP: usize = 10;

pub struct FrameBench {
    frames: usize,
    out: PathBuf,
    stamps: Vec<Instant>,
    /// `render::picture_counts()` at each stamp.
    pictures: Vec<[u64; 3]>,
    /// Time spent building each frame's UI (the rest of an interval is drawing and presenting).
    ui_ms: Vec<f64>,
    /// +1 or -1: the direction slices move in (it turns at the ends).
    direction: f64,
}

impl FrameBench {
    pub fn new(frames: usize, out: PathBuf) -> FrameBench {
        FrameBench {
            frames: frames.max(10),
            out,
            stamps: Vec::new(),
            pictures: Vec::new(),
            ui_ms: Vec::new(),
            direction: 1.0,
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(ms: &mut [f64]) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    serde_json::json!({
        "n": ms.len(),
        "p50_ms": percentile(ms, 0.5),
        "p95_ms": percentile(ms, 0.95),
        "max_ms": ms.last().copied().unwrap_or(f64::NAN),
    })
}

/// Called at the start of every frame while benchmarking.
pub fn tick(app: &mut FocalApp, ctx: &egui::Context) {
    let Some(bench) = app.frame_bench.as_mut() else { return };
    let ready = app.scan.is_none() && app.load.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some());
    ctx.request_repaint();
    if !ready {
        return;
    }
    bench.stamps.push(Instant::now());
    bench.pictures.push(crate::render::picture_counts());
    // WARMUP frames, then `frames` frames that each change the picture, then as many that do not
    // (the window's own cost: the UI, its drawing and presenting).
    let done = bench.stamps.len() > WARMUP + 2 * bench.frames;
    let still = bench.stamps.len() > WARMUP + bench.frames;
    let direction = bench.direction;
    if done {
        let result = finish(app);
        let out = app.frame_bench.as_ref().map(|b| b.out.clone()).unwrap_or_default();
        match result.and_then(|v| std::fs::write(&out, v.to_string()).map_err(|e| e.to_string())) {
            Ok(()) => tracing::info!("frame timings written to {}", out.display()),
            Err(e) => tracing::error!("the frame benchmark failed: {e}"),
        }
        app.frame_bench = None;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        return;
    }
    if still {
        return;
    }
    // The next picture: every view changes.
    let slices = app.doc.current().map_or(1, |c| c.stack.slices.len());
    if app.doc.settings().layout == Layout::Single {
        let next = app.doc.view().slice as f64 + direction;
        if next < 0.0 || next >= slices as f64 {
            app.frame_bench.as_mut().expect("bench").direction = -direction;
        }
        app.edit(super::ViewChange::Step(app.frame_bench.as_ref().map_or(1, |b| b.direction as i64)));
    } else {
        // As the wheel over the axial view does: its plane moves, the others redraw their lines.
        let before = app.doc.view().cursor;
        mpr::step_plane(app, Plane::Axial, direction);
        if app.doc.view().cursor == before || before.is_none() {
            app.frame_bench.as_mut().expect("bench").direction = -direction;
        }
    }
}

/// Called at the end of every frame's UI while benchmarking.
pub fn end_of_frame(app: &mut FocalApp) {
    if let Some(b) = app.frame_bench.as_mut()
        && let Some(start) = b.stamps.last()
        && b.ui_ms.len() < b.stamps.len()
    {
        b.ui_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
}

/// The window's frame intervals and the offscreen floor, as JSON.
fn finish(app: &mut FocalApp) -> Result<serde_json::Value, String> {
    let bench = app.frame_bench.as_ref().ok_or("no benchmark")?;
    let frames = bench.frames;
    let intervals = |from: usize, to: usize| -> Vec<f64> {
        bench.stamps[from..to.min(bench.stamps.len())]
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect()
    };
    // Views drawn, copied and drawn directly over each phase (all views' together).
    let pictures = |from: usize, to: usize| -> serde_json::Value {
        let at = |i: usize| bench.pictures.get(i.min(bench.pictures.len().saturating_sub(1))).copied().unwrap_or_default();
        let (a, b) = (at(from), at(to));
        serde_json::json!({"drawn": b[0] - a[0], "copied": b[1] - a[1], "direct": b[2] - a[2]})
    };
    let (changing_pictures, still_pictures) = (pictures(WARMUP, WARMUP + frames), pictures(WARMUP + frames, WARMUP + 2 * frames));
    let mut window = intervals(WARMUP, WARMUP + frames + 1);
    let mut still = intervals(WARMUP + frames + 1, WARMUP + 2 * frames + 1);
    let mut ui_ms = bench.ui_ms[WARMUP.min(bench.ui_ms.len())..(WARMUP + frames).min(bench.ui_ms.len())].to_vec();
    let layout = app.doc.settings().layout;
    let (view_w, view_h) = app
        .mpr_views
        .first()
        .map_or((760, 640), |(r, _)| (r.width() as u32, r.height() as u32));
    let mut offscreen = OffscreenRenderer::new().map_err(|e| e.to_string())?;
    let style = super::frame::slice_style(app);
    let current = app.doc.current().ok_or("no series")?;
    let slices = current.stack.slices.len();
    let (columns, rows) = (current.stack.columns as u32, current.stack.rows as u32);
    let mut floor = Vec::with_capacity(frames);
    if layout == Layout::Single {
        for k in 0..frames {
            app.edit(super::ViewChange::GoTo(k % slices));
            let pixels = app.slice_pixels().ok_or("no slice pixels")?;
            let start = Instant::now();
            offscreen
                .render(&pixels, &style, columns, rows, [0.0, 0.0, columns as f32, rows as f32])
                .map_err(|e| e.to_string())?;
            floor.push(start.elapsed().as_secs_f64() * 1e3);
        }
    } else {
        let volume = super::mpr_layers::volume_pixels(app).ok_or("no volume")?;
        let (rect, _) = *app.mpr_views.first().ok_or("no views")?;
        let ppp = app.pixels_per_point;
        for k in 0..frames {
            let dir = if (k / 40) % 2 == 0 { 1.0 } else { -1.0 };
            mpr::step_plane(app, Plane::Axial, dir);
            let r = mpr::reformat(app, Plane::Axial).ok_or("no reformat")?;
            let frame = mpr::frame(app, &r, rect);
            let (part, shown) = mpr::visible_picture(&r, &frame, rect, ppp).ok_or("nothing visible")?;
            let dest = shown.translate(-rect.min.to_vec2());
            let start = Instant::now();
            offscreen
                .render_resliced(&volume, &ReslicePlane::of(&part), &style, view_w, view_h, [dest.min.x, dest.min.y, dest.max.x, dest.max.y])
                .map_err(|e| e.to_string())?;
            floor.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(serde_json::json!({
        "layout": layout.name(),
        "volume": [columns, rows, slices],
        "overlays": app.doc.current_analysis().is_some(),
        "adapter": offscreen.adapter,
        "window_frame": summary(&mut window),
        "window_ui_cpu": summary(&mut ui_ms),
        "window_still": summary(&mut still),
        "views_changing": changing_pictures,
        "views_still": still_pictures,
        "offscreen_floor": summary(&mut floor),
    }))
}
