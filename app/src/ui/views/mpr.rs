//! Multi-planar views: axial, coronal and sagittal reformats of the series on screen (and a
//! maximum-intensity projection in 2×2), resampled on the GPU in patient coordinates with the
//! slice view's overlays, linked by one crosshair point.

use std::sync::Arc;

use eframe::egui::{self, Align2, Color32, Pos2, Rect, Vec2};

use crate::ui::{FocalApp, Layout, ViewChange};
use crate::ui::frame::{ImageFrame, slice_style, text};
use crate::ui::mpr_layers::{unavailable, volume_pixels};
use crate::render::{ResliceCallback, ReslicePlane, SliceUniforms, VolumePixels};
use crate::study::geometry::{Vec3, cross, direction_letters, dot};
use crate::study::reformat::{Plane, Reformat, nearest, trilinear};

/// What one view of the layout shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Plane(Plane),
    Projection(Plane),
}

impl ViewKind {
    fn plane(self) -> Plane {
        match self {
            ViewKind::Plane(p) | ViewKind::Projection(p) => p,
        }
    }

    /// The viewport id of its GPU target (0 is the acquired-slice view).
    fn viewport(self) -> u64 {
        let p = Plane::ALL.iter().position(|q| *q == self.plane()).unwrap_or(0) as u64;
        match self {
            ViewKind::Plane(_) => 1 + p,
            ViewKind::Projection(_) => 4 + p,
        }
    }
}

/// The colour that names a plane, on its border and as its reference line in the others
/// (3D Slicer's: axial red, coronal green, sagittal yellow).
pub fn plane_colour(p: Plane) -> Color32 {
    match p {
        Plane::Axial => Color32::from_rgb(230, 70, 60),
        Plane::Coronal => Color32::from_rgb(90, 200, 80),
        Plane::Sagittal => Color32::from_rgb(235, 210, 60),
    }
}

/// The views of a layout and where they go in `rect`.
pub fn cells(layout: Layout, rect: Rect) -> Vec<(Rect, ViewKind)> {
    let planes = Plane::ALL.map(ViewKind::Plane);
    match layout {
        Layout::Single => Vec::new(),
        Layout::Three => {
            let w = rect.width() / 3.0;
            (0..3)
                .map(|k| {
                    let min = rect.min + Vec2::new(w * k as f32, 0.0);
                    (Rect::from_min_size(min, Vec2::new(w, rect.height())), planes[k])
                })
                .collect()
        }
        Layout::Four => {
            let size = rect.size() / 2.0;
            let kinds = [planes[0], planes[1], planes[2], ViewKind::Projection(Plane::Coronal)];
            (0..4)
                .map(|k| {
                    let min = rect.min + Vec2::new(size.x * (k % 2) as f32, size.y * (k / 2) as f32);
                    (Rect::from_min_size(min, size), kinds[k])
                })
                .collect()
        }
    }
}

/// The acquired slice nearest the crosshair point, and the stack's geometry.
fn cursor_slice(app: &FocalApp) -> Option<(usize, crate::study::geometry::StackGeometry)> {
    let point = app.doc.view().cursor?;
    let v = app.doc.current()?.volume.clone()?;
    let g = v.geometry.clone()?;
    let k = crate::study::reformat::PatientToVoxel::new(&g)?.apply(&point)[2];
    Some((k.round().clamp(0.0, (v.slices.max(1) - 1) as f64) as usize, g))
}

/// The crosshair point (patient mm), placed at the centre of the slice on screen at first.
pub fn cursor(app: &mut FocalApp) -> Option<Vec3> {
    let volume = app.doc.current()?.volume.clone()?;
    let g = volume.geometry.as_ref()?;
    let slice = app.doc.view().slice.min(volume.slices.saturating_sub(1));
    let centre = g.voxel_to_patient(
        (volume.columns as f64 - 1.0) / 2.0,
        (volume.rows as f64 - 1.0) / 2.0,
        slice as f64,
    );
    if let Some(c) = app.doc.view().cursor {
        return Some(c);
    }
    app.edit(ViewChange::Cursor(centre));
    Some(centre)
}

/// The reformat a view shows, through the crosshair point.
pub fn reformat(app: &mut FocalApp, plane: Plane) -> Option<Reformat> {
    let point = cursor(app)?;
    let volume = app.doc.current()?.volume.clone()?;
    Reformat::new(volume.geometry.as_ref()?, [volume.columns, volume.rows, volume.slices], plane, &point)
}

/// Where a reformat lies on screen in the view `rect` (zoom and pan shared by all views).
pub(in crate::ui) fn frame(app: &FocalApp, r: &Reformat, rect: Rect) -> ImageFrame {
    let size_mm = Vec2::new((r.columns as f64 * r.spacing) as f32, (r.rows as f64 * r.spacing) as f32);
    let fit = (rect.width() / size_mm.x).min(rect.height() / size_mm.y).max(1e-6);
    let scale = fit * app.doc.view().zoom;
    ImageFrame {
        image_rect: Rect::from_center_size(rect.center() + app.doc.view().pan, size_mm * scale),
        scale,
        spacing: [r.spacing, r.spacing],
    }
}

/// What a view draws of reformat `r`: the part inside `rect`, sampled at about one sample per
/// screen pixel (never finer than the stack's finest spacing), and where it lands on screen.
pub(in crate::ui) fn visible_picture(r: &Reformat, frame: &ImageFrame, rect: Rect, pixels_per_point: f32) -> Option<(Reformat, Rect)> {
    let visible = frame.image_rect.intersect(rect);
    if !visible.is_positive() {
        return None;
    }
    let (from, to) = (frame.to_pixel(visible.min), frame.to_pixel(visible.max));
    let mm_per_pixel = 1.0 / f64::from(frame.scale * pixels_per_point).max(1e-9);
    let part = r.window(from, to, r.spacing.max(mm_per_pixel));
    let size_mm = Vec2::new(
        (part.columns as f64 * part.spacing) as f32,
        (part.rows as f64 * part.spacing) as f32,
    );
    Some((part, Rect::from_min_size(frame.to_screen(from), size_mm * frame.scale)))
}

/// Moves the crosshair along `plane`'s normal by `steps` voxel steps, inside the stack.
pub fn step_plane(app: &mut FocalApp, plane: Plane, steps: f64) {
    let Some(mut r) = reformat(app, plane) else { return };
    let before = r.depth;
    r.set_depth(before + steps * r.step);
    let normal = plane.axes()[2];
    if let Some(mut c) = app.doc.view().cursor {
        for a in 0..3 {
            c[a] += normal[a] * (r.depth - before);
        }
        app.edit(ViewChange::Cursor(c));
    }
    // The acquired slice follows at once: before the views are laid out, a slice that differs
    // from the crosshair's reads as a slice chosen elsewhere, and would pull the crosshair back.
    if let Some((k, _)) = cursor_slice(app) {
        app.edit(ViewChange::GoTo(k));
    }
}

/// The layout's views in the central area; returns what of it they left bare (see
/// `slice_view::slice_view`): the gaps between views, and views with nothing to show.
pub fn mpr_views(app: &mut FocalApp, ui: &mut egui::Ui) -> Vec<Rect> {
    let rect = ui.available_rect_before_wrap();
    ui.allocate_rect(rect, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    if let Some(why) = unavailable(app) {
        painter.text(rect.center(), Align2::CENTER_CENTER, why, egui::FontId::proportional(16.0), Color32::GRAY);
        return vec![rect];
    }
    let Some(volume) = volume_pixels(app) else { return vec![rect] };
    // The acquired slice moved since (scrolled in 1×1, or a finding's slice chosen): the
    // crosshair moves to it, keeping its place in the slice.
    if let Some((k, g)) = cursor_slice(app)
        && k != app.doc.view().slice
        && let Some(mut c) = app.doc.view().cursor
    {
        let by = (app.doc.view().slice as f64 - k as f64) * g.spacing[2];
        for a in 0..3 {
            c[a] += g.slice_direction[a] * by;
        }
        app.edit(ViewChange::Cursor(c));
    }
    if !ui.ctx().text_edit_focused() {
        crate::ui::slice_input::view_keys(app, ui);
    }
    let cells = cells(app.doc.settings().layout, rect);
    let mut bare: Vec<Rect> = cells.iter().flat_map(|(c, _)| ring(*c, GAP)).collect();
    app.mpr_views = cells.into_iter().map(|(c, k)| (c.shrink(GAP), k)).collect();
    let top_right = app
        .mpr_views
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| c.top() <= rect.top() + 2.0)
        .max_by(|a, b| a.right().total_cmp(&b.right()));
    for (i, (cell, kind)) in app.mpr_views.clone().into_iter().enumerate() {
        if !view(app, ui, cell, kind, &volume, i == 0) {
            bare.push(cell);
        }
        if Some(cell) == top_right && volume.heat.is_some() && app.doc.settings().show_attention {
            crate::ui::slice_view::colour_bar(app, &ui.painter_at(cell), cell);
        }
    }
    // The acquired slice follows the crosshair (1×1, key images and the slice readout use it).
    if let Some((k, _)) = cursor_slice(app)
        && k != app.doc.view().slice
    {
        app.edit(ViewChange::GoTo(k));
    }
    bare
}

/// Space between neighbouring views (points on each side).
const GAP: f32 = 1.0;

/// The band of `width` along the inside of `r`'s edges, as four rectangles.
fn ring(r: Rect, width: f32) -> [Rect; 4] {
    let inner = r.shrink(width);
    [
        Rect::from_min_max(r.min, egui::pos2(r.max.x, inner.min.y)),
        Rect::from_min_max(egui::pos2(r.min.x, inner.max.y), r.max),
        Rect::from_min_max(egui::pos2(r.min.x, inner.min.y), egui::pos2(inner.min.x, inner.max.y)),
        Rect::from_min_max(egui::pos2(inner.max.x, inner.min.y), egui::pos2(r.max.x, inner.max.y)),
    ]
}

/// One reformatted view; false when it drew no picture (nothing to show there).
fn view(app: &mut FocalApp, ui: &mut egui::Ui, rect: Rect, kind: ViewKind, volume: &Arc<VolumePixels>, first: bool) -> bool {
    let plane = kind.plane();
    let response = ui.interact(rect, egui::Id::unique(("focal mpr view", kind.viewport())), egui::Sense::click_and_drag());
    // With a measuring tool, a left drag on a plane measures there instead of moving the crosshair.
    let measuring = app.doc.view().tool.measures() && matches!(kind, ViewKind::Plane(_));
    input(app, ui, &response, rect, kind, measuring);
    if measuring && let Some(r) = reformat(app, plane) {
        let frame = frame(app, &r, rect);
        crate::ui::measure::measure_on_plane(app, &response, &frame, &r, volume);
    }
    let Some(r) = reformat(app, plane) else { return false };
    let Some(point) = app.doc.view().cursor else { return false };
    let frame = frame(app, &r, rect);
    let painter = ui.painter_at(rect);

    let projection = matches!(kind, ViewKind::Projection(_));
    let Some((part, shown)) = visible_picture(&r, &frame, rect, ui.ctx().pixels_per_point()) else {
        return false;
    };
    let resliced = if projection {
        ReslicePlane::projection_of(&part)
    } else {
        ReslicePlane::of(&part)
    };
    let mut style = slice_style(app);
    if projection {
        let ([lo, hi], heat) = app.mpr.ranges;
        style.mask = None;
        style.window_center = f64::from(lo + hi) / 2.0;
        style.window_width = f64::from(hi - lo).max(1.0);
        if let (Some(a), Some(range)) = (style.attention.as_mut(), heat) {
            a.range = range;
            a.threshold = range[0];
        }
    }
    let dest = shown.translate(-rect.min.to_vec2());
    let uniforms = SliceUniforms::new(
        &style,
        part.columns,
        part.rows,
        false,
        crate::render::image_to_clip(part.columns, part.rows, [rect.width(), rect.height()], [dest.min.x, dest.min.y, dest.max.x, dest.max.y]),
        volume.heat.is_some(),
        volume.labels.is_some() && !projection,
    );
    painter.add(
        ResliceCallback {
            viewport: kind.viewport(),
            volume: volume.clone(),
            plane: resliced,
            colormap: style.colormap(),
            uniforms,
        }
        .into_paint_callback(rect),
    );

    // Reference lines: where the other two planes cut this one, through the crosshair point.
    let normal = plane.axes()[2];
    let clip = painter.clip_rect().intersect(frame.image_rect);
    for other in Plane::ALL.into_iter().filter(|p| *p != plane) {
        let along = cross(&normal, &other.axes()[2]);
        let ends = [-1.0e4, 1.0e4].map(|t| {
            let p: Vec3 = std::array::from_fn(|a| point[a] + along[a] * t);
            frame.to_screen(r.to_picture(&p))
        });
        let line = painter.with_clip_rect(clip);
        line.line_segment(ends, egui::Stroke::new(1.0, plane_colour(other).gamma_multiply(0.85)));
    }
    // A projection is not a plane through the crosshair: its border is neutral.
    let border = if projection { Color32::from_rgb(130, 150, 200) } else { plane_colour(plane) };
    let stroke = egui::Stroke::new(if response.hovered() { 2.0 } else { 1.0 }, border);
    if !projection {
        let drawing = measuring && (response.dragged() || response.drag_stopped());
        crate::ui::measure::draw_on_plane(app, &painter, &frame, &r, drawing);
    }
    painter.rect_stroke(rect, 0.0, stroke, egui::StrokeKind::Inside);

    // Plane, depth and orientation letters.
    let m = 8.0;
    let depth = dot(&point, &normal);
    let letter = direction_letters(&if depth >= 0.0 { normal } else { normal.map(|v| -v) });
    let mut title = if projection {
        format!("{} MIP", plane.name())
    } else {
        format!("{}  {letter} {:.1} mm", plane.name(), depth.abs())
    };
    if first {
        title.push_str(&format!("\nW {:.0}  L {:.0}", app.doc.view().window.width, app.doc.view().window.center));
    }
    text(&painter, rect.left_top() + Vec2::splat(m), Align2::LEFT_TOP, title);
    let [right, down, _] = plane.axes();
    let neg = |v: Vec3| v.map(|c| -c);
    let c = frame.image_rect.center();
    let inner = rect.shrink(14.0);
    for (pos, d) in [
        (Pos2::new(frame.image_rect.left() + 12.0, c.y), neg(right)),
        (Pos2::new(frame.image_rect.right() - 12.0, c.y), right),
        (Pos2::new(c.x, frame.image_rect.top() + 12.0), neg(down)),
        (Pos2::new(c.x, frame.image_rect.bottom() - 12.0), down),
    ] {
        text(&painter, inner.clamp(pos), Align2::CENTER_CENTER, direction_letters(&d));
    }
    if let Some(pos) = response.hover_pos() {
        let [x, y] = frame.to_pixel(pos);
        let p = r.to_patient(x, y);
        if let Some(readout) = readout(app, &r, &p, volume, projection) {
            text(&painter, rect.left_bottom() + Vec2::new(m, -m), Align2::LEFT_BOTTOM, readout);
        }
    }
    true
}

/// Position, value, label and heatmap under the mouse (None outside the volume).
fn readout(app: &FocalApp, r: &Reformat, p: &Vec3, volume: &VolumePixels, projection: bool) -> Option<String> {
    let dims = volume.dims();
    let v = r.to_voxel(p);
    let value = trilinear((*volume.image.data).as_ref(), dims, v)?;
    let mut lines = vec![format!("({:.1}, {:.1}, {:.1}) mm LPS", p[0], p[1], p[2])];
    if projection {
        return Some(lines.join("\n"));
    }
    let modality = app.doc.current().and_then(|c| c.modality.as_deref());
    let unit = if modality == Some("CT") { " HU" } else { "" };
    lines.push(format!("Voxel ({:.0}, {:.0}, {:.0})  Value {value:.1}{unit}", v[0], v[1], v[2]));
    if let (Some(labels), Some(at)) = (&volume.labels, nearest(dims, v)) {
        lines.push(format!("Label {}", crate::ui::views::frame::label_name(app, (*labels.data).as_ref()[at])));
    }
    if let Some(h) = volume.heat.as_ref().and_then(|h| trilinear((*h.data).as_ref(), dims, v)) {
        let name = crate::ui::insights::heat_style(app).1;
        lines.push(format!("{}{} {h:.3}", name[..1].to_uppercase(), &name[1..]));
    }
    Some(lines.join("\n"))
}

/// Mouse and keys in one view: left click or drag sets the crosshair point, the wheel moves
/// this view's plane, right drag windows, middle drag pans, Ctrl+wheel zooms (all linked).
fn input(app: &mut FocalApp, ui: &egui::Ui, response: &egui::Response, rect: Rect, kind: ViewKind, measuring: bool) {
    let plane = kind.plane();
    if response.hovered() {
        let (events, zoom) = ui.input(|i| (i.events.clone(), i.zoom_delta()));
        let steps = app.gesture.wheel_steps(&events);
        if steps != 0.0 && !matches!(kind, ViewKind::Projection(_)) {
            // Wheel down moves toward the feet, the back and the patient's right.
            step_plane(app, plane, -f64::from(steps));
        }
        if zoom != 1.0
            && let Some(cursor) = response.hover_pos()
        {
            app.edit(ViewChange::ZoomAbout {
                factor: zoom,
                offset: cursor - rect.center(),
            });
        }
        if !ui.ctx().text_edit_focused() {
            let (up, down) = ui.input(|i| {
                (
                    i.key_pressed(egui::Key::ArrowUp) || i.key_pressed(egui::Key::ArrowLeft),
                    i.key_pressed(egui::Key::ArrowDown) || i.key_pressed(egui::Key::ArrowRight),
                )
            });
            if up {
                step_plane(app, plane, 1.0);
            }
            if down {
                step_plane(app, plane, -1.0);
            }
        }
    }
    let primary = response.dragged_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if primary
        && !measuring
        && let Some(pos) = response.interact_pointer_pos()
        && let Some(r) = reformat(app, plane)
    {
        let [x, y] = frame(app, &r, rect).to_pixel(pos);
        let x = x.clamp(0.0, r.columns as f64);
        let y = y.clamp(0.0, r.rows as f64);
        app.edit(ViewChange::Cursor(r.to_patient(x, y)));
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        app.edit(crate::ui::slice_input::drag_window(app.doc.view(), response.drag_delta()));
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        app.edit(ViewChange::Pan(response.drag_delta()));
    }
    if response.double_clicked() {
        app.edit(ViewChange::Fit);
    }
}

/// The patient point under a screen position of a view, as a click there would set it.
pub fn point_at(app: &mut FocalApp, rect: Rect, kind: ViewKind, pos: Pos2) -> Option<Vec3> {
    let r = reformat(app, kind.plane())?;
    let [x, y] = frame(app, &r, rect).to_pixel(pos);
    Some(r.to_patient(x, y))
}

/// Points per mm in a view of `kind` in `rect`.
pub fn points_per_mm(app: &mut FocalApp, rect: Rect, kind: ViewKind) -> Option<f32> {
    let r = reformat(app, kind.plane())?;
    Some(frame(app, &r, rect).scale)
}

/// The screen position of a patient point in a view (projected onto its plane).
pub fn screen_of(app: &mut FocalApp, rect: Rect, kind: ViewKind, p: &Vec3) -> Option<Pos2> {
    let r = reformat(app, kind.plane())?;
    Some(frame(app, &r, rect).to_screen(r.to_picture(p)))
}
