//! The slice view: GPU-drawn image and overlays, with the reading aids around it (orientation
//! labels, scale bar, colour bar, cursor readout); `slice_input` has the mouse and keyboard.

use std::sync::Arc;

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Vec2};

use crate::ui::FocalApp;
use crate::ui::frame::{ImageFrame, slice_style, text};
use crate::ui::slice_input::handle_input;
use crate::render::{SliceCallback, SlicePixels, SliceUniforms};
use crate::study::geometry::{Vec3, direction_letters, dot};

/// A round length (1, 2 or 5 × 10^k mm) close to `target_mm`.
pub fn nice_length(target_mm: f64) -> f64 {
    let base = 10f64.powf(target_mm.max(1e-6).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .filter(|v| *v <= target_mm)
        .last()
        .unwrap_or(base)
}

/// The 1×1 view over the whole central area. Returns what of it is left bare: nothing when
/// the slice is drawn (its picture covers the area, letterbox included), else the area. The
/// caller paints what is bare black: one fill under the picture would double the window's
/// pixel work on a software rasteriser, for pixels the picture covers anyway.
pub fn slice_view(app: &mut FocalApp, ui: &mut egui::Ui, pixels: Option<Arc<SlicePixels>>) -> Vec<Rect> {
    let rect = ui.available_rect_before_wrap();
    let response = ui.allocate_rect(rect, egui::Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    let Some(current) = app.doc.current() else {
        let hint = if app.scan.is_some() {
            "Reading the study…"
        } else {
            "Open a study: the Open folder button, drop a folder or files here, or run `focal view PATH`"
        };
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            hint,
            FontId::proportional(16.0),
            Color32::GRAY,
        );
        return vec![rect];
    };
    let slices = current.stack.slices.len();
    let (columns, rows) = (current.stack.columns as usize, current.stack.rows as usize);
    let spacing = current.stack.display_spacing();
    let geometry = current.stack.geometry.clone();
    let modality = current.modality.clone();
    let label = current.label.clone();
    let error = current.error.clone();
    let skipped = current.volume.as_ref().and_then(|v| {
        v.skipped
            .iter()
            .find(|s| s.index == app.doc.view().slice)
            .map(|s| s.reason.clone())
    });
    handle_input(app, ui, &response, rect, slices);

    // Layout: the image keeps its physical aspect ratio (pixel spacing), centred and panned.
    let size_mm = Vec2::new((columns as f64 * spacing[0]) as f32, (rows as f64 * spacing[1]) as f32);
    let fit = (rect.width() / size_mm.x).min(rect.height() / size_mm.y).max(1e-6);
    app.gesture.fit_scale = fit;
    let Some(frame) = ImageFrame::of(app, rect) else { return vec![rect] };
    let (scale, image_rect) = (frame.scale, frame.image_rect);

    let bare = match &pixels {
        Some(pixels) => {
            let style = slice_style(app);
            let dest = image_rect.translate(-rect.min.to_vec2());
            let uniforms = SliceUniforms::for_pixels(
                &style,
                pixels,
                [rect.width(), rect.height()],
                [dest.min.x, dest.min.y, dest.max.x, dest.max.y],
            );
            let callback = SliceCallback {
                viewport: 0,
                pixels: pixels.clone(),
                colormap: style.colormap(),
                uniforms,
            };
            painter.add(callback.into_paint_callback(rect));
            if pixels.attention.is_some() && style.attention.is_some() {
                colour_bar(app, &painter, rect);
            }
            Vec::new()
        }
        None => {
            let msg = error.unwrap_or_else(|| "Loading slice…".into());
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                msg,
                FontId::proportional(16.0),
                Color32::GRAY,
            );
            vec![rect]
        }
    };

    // Reading aids.
    let m = 8.0;
    let view = &app.doc.view();
    let mut top_left = vec![label, format!("Slice {}/{}", view.slice + 1, slices)];
    if let Some(g) = &geometry {
        let p = g.voxel_to_patient(0.0, 0.0, view.slice as f64);
        top_left.push(format!("Position {:.1} mm", dot(&p, &g.slice_direction)));
    }
    if let Some(reason) = skipped {
        top_left.push(format!("This slice could not be decoded: {reason}"));
    }
    text(
        &painter,
        rect.left_top() + Vec2::splat(m),
        Align2::LEFT_TOP,
        top_left.join("\n"),
    );
    let mut top_right = vec![format!("W {:.0}  L {:.0}", view.window.width, view.window.center)];
    if let Some(p) = view.preset {
        top_right.push(p.to_string());
    }
    top_right.push(format!("Zoom {:.0}%", view.zoom * 100.0));
    if view.invert {
        top_right.push("Inverted".into());
    }
    if view.playing {
        top_right.push(format!("Cine {:.0} fps", app.doc.settings().cine_fps));
    }
    text(
        &painter,
        rect.right_top() + Vec2::new(-m - 50.0, m),
        Align2::RIGHT_TOP,
        top_right.join("\n"),
    );

    if let Some(g) = &geometry {
        let neg = |v: &Vec3| [-v[0], -v[1], -v[2]];
        let c = image_rect.center();
        let clamp = |p: Pos2| rect.shrink(14.0).clamp(p);
        let letters = [
            (
                clamp(Pos2::new(image_rect.left() + 12.0, c.y)),
                direction_letters(&neg(&g.row_direction)),
            ),
            (
                clamp(Pos2::new(image_rect.right() - 12.0, c.y)),
                direction_letters(&g.row_direction),
            ),
            (
                clamp(Pos2::new(c.x, image_rect.top() + 12.0)),
                direction_letters(&neg(&g.column_direction)),
            ),
            (
                clamp(Pos2::new(c.x, image_rect.bottom() - 12.0)),
                direction_letters(&g.column_direction),
            ),
        ];
        for (pos, l) in letters {
            text(&painter, pos, Align2::CENTER_CENTER, l);
        }
    }

    // Scale bar: a round length near 1/5 of the view width.
    let mm = nice_length(f64::from(rect.width() / 5.0 / scale));
    let length = mm as f32 * scale;
    let end = rect.right_bottom() + Vec2::new(-m - 50.0, -m - 6.0);
    let start = end - Vec2::new(length, 0.0);
    let stroke = egui::Stroke::new(2.0, Color32::from_rgb(230, 230, 170));
    painter.line_segment([start, end], stroke);
    for p in [start, end] {
        painter.line_segment([p, p - Vec2::new(0.0, 6.0)], stroke);
    }
    let unit = if mm >= 10.0 {
        format!("{:.0} cm", mm / 10.0)
    } else {
        format!("{mm} mm")
    };
    text(
        &painter,
        start + Vec2::new(length / 2.0, -8.0),
        Align2::CENTER_BOTTOM,
        unit,
    );

    // Measurements on this slice, and the one being drawn.
    crate::ui::measure::draw_measurements(app, &painter, &frame, modality.as_deref());
    crate::ui::measure::draw_key_regions(app, &painter, &frame);
    // Regions that shown reports (DICOM SR) measured on this slice.
    let [r, g, b] = crate::report::snapshot::REPORT_COLOUR;
    for outline in crate::ui::objects::report_outlines(app, app.doc.view().slice) {
        let points: Vec<egui::Pos2> = outline.iter().map(|p| frame.to_screen(*p)).collect();
        painter.add(egui::Shape::line(points, egui::Stroke::new(1.5, egui::Color32::from_rgb(r, g, b))));
    }

    // Cursor readout (and the brush outline).
    if let Some(pos) = response.hover_pos()
        && app.doc.view().tool.paints()
    {
        let colour = if app.doc.view().tool == crate::ui::Tool::Eraser {
            Color32::WHITE
        } else {
            Color32::YELLOW
        };
        painter.circle_stroke(pos, app.doc.view().brush_mm * scale, egui::Stroke::new(1.0, colour));
    }
    if let Some(pos) = response.hover_pos() {
        let [ix, iy] = frame.to_pixel(pos);
        if ix >= 0.0 && iy >= 0.0 && (ix as usize) < columns && (iy as usize) < rows {
            let readout = cursor_readout(app, ix as usize, iy as usize, modality.as_deref(), pixels.as_deref());
            text(
                &painter,
                rect.left_bottom() + Vec2::new(m, -m),
                Align2::LEFT_BOTTOM,
                readout,
            );
        }
    }
    bare
}

fn cursor_readout(app: &FocalApp, i: usize, j: usize, modality: Option<&str>, pixels: Option<&SlicePixels>) -> String {
    let mut lines = Vec::new();
    let k = app.doc.view().slice;
    if let Some(g) = app.doc.current().and_then(|c| c.stack.geometry.as_ref()) {
        let p = g.voxel_to_patient(i as f64, j as f64, k as f64);
        lines.push(format!("({:.1}, {:.1}, {:.1}) mm LPS", p[0], p[1], p[2]));
    }
    lines.push(format!("Pixel ({i}, {j})"));
    if let Some(px) = pixels {
        let at = j * px.columns + i;
        let unit = if modality == Some("CT") { " HU" } else { "" };
        if px.is_color() {
            let v = &px.image[at * 3..at * 3 + 3];
            lines.push(format!("RGB {:.0} {:.0} {:.0}", v[0], v[1], v[2]));
        } else if let Some(v) = px.image.get(at) {
            lines.push(format!("Value {v:.1}{unit}"));
        }
        if let Some(labels) = &px.labels {
            lines.push(format!("Label {}", crate::ui::views::frame::label_name(app, labels[at])));
        }
        if let Some(a) = px.attention.as_ref().and_then(|a| a.get(at)) {
            let name = crate::ui::insights::heat_style(app).1;
            lines.push(format!("{}{} {a:.3}", name[..1].to_uppercase(), &name[1..]));
        }
    }
    lines.join("\n")
}

pub(in crate::ui) fn colour_bar(app: &FocalApp, painter: &egui::Painter, rect: Rect) {
    let (style, name) = crate::ui::insights::heat_style(app);
    // A long name (a fused series' description) is cut so that it stays clear of the window text.
    let name = if name.chars().count() > 22 {
        format!("{}…", name.chars().take(21).collect::<String>())
    } else {
        name
    };
    let bar = Rect::from_min_size(
        // Below the window/level text, clear of the orientation letter at mid-height.
        Pos2::new(rect.right() - 40.0, rect.top() + 110.0),
        Vec2::new(14.0, (rect.height() * 0.5 - 140.0).clamp(60.0, 200.0)),
    );
    let steps = 64;
    let [lo, hi] = style.range;
    for s in 0..steps {
        let t = s as f32 / (steps - 1) as f32;
        let value = lo + t * (hi - lo);
        let c = style.colormap.color(t);
        let h = bar.height() / steps as f32;
        let y = bar.bottom() - (s + 1) as f32 * h;
        let colour = if value < style.threshold {
            Color32::from_rgb(c[0], c[1], c[2]).gamma_multiply(0.25)
        } else {
            Color32::from_rgb(c[0], c[1], c[2])
        };
        painter.rect_filled(
            Rect::from_min_size(Pos2::new(bar.left(), y), Vec2::new(bar.width(), h + 0.5)),
            0.0,
            colour,
        );
    }
    painter.rect_stroke(
        bar,
        0.0,
        egui::Stroke::new(1.0, Color32::GRAY),
        egui::StrokeKind::Outside,
    );
    let y_of = |v: f32| bar.bottom() - (v - lo) / (hi - lo).max(1e-6) * bar.height();
    let font = FontId::proportional(11.0);
    for (v, s) in [(hi, format!("{hi:.2}")), (lo, format!("{lo:.2}"))] {
        painter.text(
            Pos2::new(bar.left() - 3.0, y_of(v)),
            Align2::RIGHT_CENTER,
            s,
            font.clone(),
            Color32::LIGHT_GRAY,
        );
    }
    if style.threshold > lo && style.threshold < hi {
        let y = y_of(style.threshold);
        // Its value is written only where it does not collide with the range's labels.
        let clear = (y - y_of(lo)).abs() > 12.0 && (y - y_of(hi)).abs() > 12.0;
        painter.line_segment(
            [Pos2::new(bar.left() - 4.0, y), Pos2::new(bar.right() + 4.0, y)],
            egui::Stroke::new(1.5, Color32::WHITE),
        );
        if clear {
            painter.text(
                Pos2::new(bar.left() - 3.0, y),
                Align2::RIGHT_CENTER,
                format!("{:.2}", style.threshold),
                font.clone(),
                Color32::WHITE,
            );
        }
    }
    painter.text(
        Pos2::new(bar.right() + 2.0, bar.top() - 4.0),
        Align2::RIGHT_BOTTOM,
        name,
        font.clone(),
        Color32::LIGHT_GRAY,
    );
    if style.inside_labels {
        // Say what is drawn: the map is cut to the labelled brain (the overlay panel turns it off).
        painter.text(
            Pos2::new(bar.right() + 2.0, bar.bottom() + 10.0),
            Align2::RIGHT_TOP,
            "in brain only",
            font,
            Color32::LIGHT_GRAY,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_letters_follow_lps() {
        assert_eq!(direction_letters(&[1.0, 0.0, 0.0]), "L");
        assert_eq!(direction_letters(&[-1.0, 0.0, 0.0]), "R");
        assert_eq!(direction_letters(&[0.0, 1.0, 0.0]), "P");
        assert_eq!(direction_letters(&[0.0, 0.0, -1.0]), "I");
        assert_eq!(direction_letters(&[0.8, -0.6, 0.0]), "LA");
    }

    #[test]
    fn scale_bar_lengths_are_round() {
        assert_eq!(nice_length(37.0), 20.0);
        assert_eq!(nice_length(55.0), 50.0);
        assert_eq!(nice_length(9.9), 5.0);
        assert_eq!(nice_length(100.0), 100.0);
    }
}
