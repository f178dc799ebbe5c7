//! Measuring on the slice: the ruler (distance), ellipse and freehand regions (area, mean ± sd
//! of the values and of the heatmap shown). Drags become `report::Shape`s measured by
//! `report::measure_shape` and kept in the review; this module turns the mouse into shapes
//! and draws them.

use eframe::egui::{self, Align2, Color32, Pos2, Rect, Vec2};

use crate::ui::frame::{ImageFrame, text};
use crate::ui::{FocalApp, ReviewChange, Tool};

/// Follows a left-button drag on `frame` (a line, an ellipse's bounding box or a freehand
/// outline, in picture coordinates); returns the shape when the button is released.
fn track_drag(app: &mut FocalApp, response: &egui::Response, frame: &ImageFrame) -> Option<crate::report::Shape> {
    let pos = response.interact_pointer_pos()?;
    let p = frame.to_pixel(pos);
    if response.drag_started_by(egui::PointerButton::Primary) {
        // The drag is reported once the pointer has moved; it began where the button went down.
        let origin = response.ctx.input(|i| i.pointer.press_origin()).unwrap_or(pos);
        app.gesture.drawing = vec![frame.to_pixel(origin), p];
    } else if response.dragged_by(egui::PointerButton::Primary) && !app.gesture.drawing.is_empty() {
        let freehand = app.doc.view().tool == Tool::Freehand;
        let path = &mut app.gesture.drawing;
        // A freehand outline keeps every point a pixel apart; the others only their ends.
        let last = path[path.len() - 1];
        if !freehand {
            path.truncate(1);
            path.push(p);
        } else if (p[0] - last[0]).hypot(p[1] - last[1]) >= 1.0 {
            path.push(p);
        }
    }
    if !response.drag_stopped_by(egui::PointerButton::Primary) {
        return None;
    }
    let path = std::mem::take(&mut app.gesture.drawing);
    drawn_shape(app.doc.view().tool, &path)
}

/// Keeps a measurement in the review of the analysis on screen.
fn keep(app: &mut FocalApp, m: crate::report::Measurement) {
    app.edit(ReviewChange::AddMeasurement(Box::new(m)));
}

/// Measures on the acquired slice where the left button drags; on release the shape is
/// measured on the slice's values and heatmap and kept in the review.
pub(in crate::ui) fn measure_input(app: &mut FocalApp, response: &egui::Response, rect: Rect) {
    let Some(frame) = ImageFrame::of(app, rect) else { return };
    let Some(shape) = track_drag(app, response, &frame) else { return };
    let slice = app.doc.view().slice;
    let Some(current) = app.doc.current() else { return };
    let (columns, rows) = (current.stack.columns as usize, current.stack.rows as usize);
    let n = columns * rows;
    let grey = current.volume.as_ref().filter(|v| v.channels == 1);
    let image = grey.and_then(|v| v.slice(slice)).map(<[f32]>::to_vec).unwrap_or_default();
    let heat = crate::ui::insights::heat_plane(app, slice, n);
    let heat_name = crate::ui::insights::heat_style(app).1;
    let stats = crate::report::measure_shape(
        &shape,
        frame.spacing,
        [columns, rows],
        &image,
        heat.as_deref().map(|h| (heat_name.as_str(), h)),
    );
    keep(app, crate::report::Measurement { slice, shape, stats, plane: None });
}

/// Measures on a reformatted plane (`r`, drawn in `frame`): the plane is resampled on the CPU
/// as the GPU shows it, and the shape is measured on those values and that heatmap.
pub(in crate::ui) fn measure_on_plane(
    app: &mut FocalApp,
    response: &egui::Response,
    frame: &ImageFrame,
    r: &crate::study::reformat::Reformat,
    volume: &crate::render::VolumePixels,
) {
    let Some(shape) = track_drag(app, response, frame) else { return };
    let Some(pixels) = crate::render::reslice_reference(volume, &crate::render::ReslicePlane::of(r)) else {
        return;
    };
    // Values outside the stack are not the patient's.
    let inside: Vec<f32> = pixels.image.iter().map(|&v| if v <= crate::render::OUTSIDE { f32::NAN } else { v }).collect();
    let heat_name = crate::ui::insights::heat_style(app).1;
    let stats = crate::report::measure_shape(
        &shape,
        [r.spacing, r.spacing],
        [r.columns, r.rows],
        &inside,
        pixels.attention.as_deref().map(|h| (heat_name.as_str(), h)),
    );
    let [x0, y0, x1, y1] = shape.bounds();
    let centre = r.to_voxel(&r.to_patient((x0 + x1) / 2.0, (y0 + y1) / 2.0));
    let slices = volume.size[2] as f64;
    let slice = centre[2].round().clamp(0.0, (slices - 1.0).max(0.0)) as usize;
    keep(app, crate::report::Measurement { slice, shape, stats, plane: Some(r.placement()) });
}

/// The shape a drag along `path` (start … end) draws with `tool` (None when it is too small).
fn drawn_shape(tool: Tool, path: &[[f64; 2]]) -> Option<crate::report::Shape> {
    use crate::report::Shape;
    let (start, end) = (*path.first()?, *path.last()?);
    let (dx, dy) = ((end[0] - start[0]).abs(), (end[1] - start[1]).abs());
    match tool {
        Tool::Ruler if dx.hypot(dy) >= 1.0 => Some(Shape::Line { from: start, to: end }),
        Tool::Ellipse if dx >= 1.0 && dy >= 1.0 => Some(Shape::Ellipse {
            center: [(start[0] + end[0]) / 2.0, (start[1] + end[1]) / 2.0],
            radii: [dx / 2.0, dy / 2.0],
        }),
        Tool::Freehand if path.len() >= 3 => {
            let shape = Shape::Polygon { points: path.to_vec() };
            let [x0, y0, x1, y1] = shape_bounds(path);
            (x1 - x0 >= 1.0 && y1 - y0 >= 1.0).then_some(shape)
        }
        _ => None,
    }
}

fn shape_bounds(points: &[[f64; 2]]) -> [f64; 4] {
    points.iter().fold(
        [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY],
        |b, p| [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])],
    )
}

/// A measurement's reading as written beside it on the image (short lines).
fn on_image_reading(m: &crate::report::Measurement, unit: &str) -> String {
    let s = &m.stats;
    match m.shape {
        crate::report::Shape::Line { .. } => format!("{:.1} mm", s.length_mm.unwrap_or(0.0)),
        crate::report::Shape::Ellipse { .. } | crate::report::Shape::Polygon { .. } => {
            let mut lines = vec![format!("{:.0} mm²", s.area_mm2.unwrap_or(0.0))];
            if let (Some(mean), Some(sd)) = (s.mean, s.sd) {
                lines.push(format!("{mean:.1} ± {sd:.1}{unit}"));
            }
            if let (Some(name), Some(mean)) = (&s.heat, s.heat_mean) {
                lines.push(format!("{name} {mean:.3}"));
            }
            lines.join("\n")
        }
    }
}

/// Draws a measurement and its reading.
fn draw_shape(painter: &egui::Painter, frame: &ImageFrame, shape: &crate::report::Shape, label: Option<String>) {
    use crate::report::Shape;
    let [r, g, b] = crate::report::export::MEASUREMENT_COLOUR;
    let colour = Color32::from_rgb(r, g, b);
    let stroke = egui::Stroke::new(1.5, colour);
    let anchor = match shape {
        Shape::Line { from, to } => {
            let (a, b) = (frame.to_screen(*from), frame.to_screen(*to));
            painter.line_segment([a, b], stroke);
            for p in [a, b] {
                painter.circle_filled(p, 2.5, colour);
            }
            if a.x > b.x { a } else { b }
        }
        Shape::Ellipse { center, radii } => {
            let points: Vec<Pos2> = (0..64)
                .map(|k| {
                    let t = k as f64 / 64.0 * std::f64::consts::TAU;
                    frame.to_screen([center[0] + radii[0] * t.cos(), center[1] + radii[1] * t.sin()])
                })
                .collect();
            painter.add(egui::Shape::closed_line(points, stroke));
            frame.to_screen([center[0] + radii[0], center[1]])
        }
        Shape::Polygon { points } => {
            let screen: Vec<Pos2> = points.iter().map(|p| frame.to_screen(*p)).collect();
            let right = screen.iter().copied().fold(Pos2::new(f32::NEG_INFINITY, 0.0), |a, p| if p.x > a.x { p } else { a });
            painter.add(egui::Shape::closed_line(screen, stroke));
            right
        }
    };
    if let Some(l) = label {
        text(painter, anchor + Vec2::new(6.0, 0.0), Align2::LEFT_CENTER, l);
    }
}

/// Draws the review's measurements on the slice on screen, and the one being drawn.
pub(in crate::ui) fn draw_measurements(app: &FocalApp, painter: &egui::Painter, frame: &ImageFrame, modality: Option<&str>) {
    let unit = if modality == Some("CT") { " HU" } else { "" };
    if let Some(a) = app.doc.current_analysis() {
        for m in a.review.measurements.iter().filter(|m| m.slice == app.doc.view().slice && m.plane.is_none()) {
            draw_shape(painter, frame, &m.shape, Some(on_image_reading(m, unit)));
        }
    }
    if let Some(shape) = drawn_shape(app.doc.view().tool, &app.gesture.drawing) {
        draw_shape(painter, frame, &shape, None);
    }
}

/// Outlines the key regions on the slice on screen (when their score is the heatmap shown),
/// each numbered as in the lists: the edges between a region's pixels and the pixels outside it.
pub(in crate::ui) fn draw_key_regions(app: &FocalApp, painter: &egui::Painter, frame: &ImageFrame) {
    if app.doc.heatmap() != crate::ui::Heatmap::KeyRegions {
        return;
    }
    let Some(a) = app.doc.current_analysis() else { return };
    let Some((_, ids)) = &a.extras.key_regions else { return };
    let (c, r) = (a.columns, a.rows);
    let k = app.doc.view().slice;
    let Some(plane) = ids.get(k * c * r..(k + 1) * c * r) else { return };
    let [red, green, blue] = crate::report::KEY_REGION_OUTLINE;
    let stroke = egui::Stroke::new(1.5, Color32::from_rgb(red, green, blue));
    let id_at = |x: i64, y: i64| if x < 0 || y < 0 || x >= c as i64 || y >= r as i64 { 0 } else { plane[y as usize * c + x as usize] };
    let mut first: std::collections::BTreeMap<u8, [f64; 2]> = std::collections::BTreeMap::new();
    for y in 0..r as i64 {
        for x in 0..c as i64 {
            let id = id_at(x, y);
            if id == 0 {
                continue;
            }
            first.entry(id).or_insert([x as f64, y as f64]);
            let (fx, fy) = (x as f64, y as f64);
            for (dx, dy, a, b) in [
                (-1, 0, [fx, fy], [fx, fy + 1.0]),
                (1, 0, [fx + 1.0, fy], [fx + 1.0, fy + 1.0]),
                (0, -1, [fx, fy], [fx + 1.0, fy]),
                (0, 1, [fx, fy + 1.0], [fx + 1.0, fy + 1.0]),
            ] {
                if id_at(x + dx, y + dy) != id {
                    painter.line_segment([frame.to_screen(a), frame.to_screen(b)], stroke);
                }
            }
        }
    }
    for (id, [x, y]) in first {
        text(painter, frame.to_screen([x, y]) - Vec2::new(2.0, 4.0), Align2::RIGHT_BOTTOM, id);
    }
}

/// Draws the measurements made on this plane at this depth (and the one being drawn, when
/// `drawing`), in the view of reformat `r` laid out by `frame`.
pub(in crate::ui) fn draw_on_plane(
    app: &FocalApp,
    painter: &egui::Painter,
    frame: &ImageFrame,
    r: &crate::study::reformat::Reformat,
    drawing: bool,
) {
    let unit = if app.doc.current().and_then(|c| c.modality.as_deref()) == Some("CT") { " HU" } else { "" };
    if let Some(a) = app.doc.current_analysis() {
        for m in &a.review.measurements {
            let Some(p) = m.plane.as_ref().filter(|p| p.plane == r.plane && (p.depth - r.depth).abs() < r.step / 2.0) else {
                continue;
            };
            // The shape's picture coordinates, placed in this view's picture.
            let origin = r.from_placement(p, [0.0, 0.0]);
            let size = Vec2::new(frame.scale, frame.scale) * p.spacing as f32;
            let placed = ImageFrame {
                image_rect: Rect::from_min_size(frame.to_screen(origin), size),
                scale: frame.scale,
                spacing: [p.spacing, p.spacing],
            };
            draw_shape(painter, &placed, &m.shape, Some(on_image_reading(m, unit)));
        }
    }
    if drawing && let Some(shape) = drawn_shape(app.doc.view().tool, &app.gesture.drawing) {
        draw_shape(painter, frame, &shape, None);
    }
}
