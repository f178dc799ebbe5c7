//! What the mouse and keyboard do in the slice view: scroll, window/level, zoom and pan,
//! presets, cine, key images, and painting with the brush and eraser (`measure` has the
//! measuring tools).

use eframe::egui::{self, Rect};

use super::FocalApp;
use super::slice_view::{ImageFrame, slice_style};

pub(super) fn handle_input(app: &mut FocalApp, ui: &egui::Ui, response: &egui::Response, rect: Rect, slices: usize) {
    let view = &mut app.view;
    let typing = ui.ctx().text_edit_focused();
    let (events, zoom, dt) = ui.input(|i| (i.events.clone(), i.zoom_delta(), i.stable_dt));
    if response.hovered() {
        for e in &events {
            if let egui::Event::MouseWheel {
                unit, delta, modifiers, ..
            } = e
                && !modifiers.ctrl
                && !modifiers.command
            {
                view.wheel -= match unit {
                    egui::MouseWheelUnit::Line => delta.y,
                    egui::MouseWheelUnit::Point => delta.y / 50.0,
                    egui::MouseWheelUnit::Page => delta.y * 10.0,
                };
            }
        }
        let steps = view.wheel.trunc();
        if steps != 0.0 {
            view.step(steps as i64, slices);
            view.wheel -= steps;
        }
        if zoom != 1.0
            && let Some(cursor) = response.hover_pos()
        {
            let new_zoom = (view.zoom * zoom).clamp(0.1, 40.0);
            let factor = new_zoom / view.zoom;
            view.pan = cursor - rect.center() - (cursor - rect.center() - view.pan) * factor;
            view.zoom = new_zoom;
        }
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        let d = response.drag_delta();
        let k = view.window.width.max(1.0) * 0.004;
        let (c, w) = (
            view.window.center + f64::from(d.y) * k,
            view.window.width + f64::from(d.x) * k,
        );
        view.set_window(c, w, None);
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        view.pan += response.drag_delta();
    }
    if response.double_clicked() {
        view.reset();
    }
    if !typing {
        ui.input(|i| {
            let pressed = |k| i.key_pressed(k);
            if pressed(egui::Key::ArrowDown) || pressed(egui::Key::ArrowRight) {
                view.step(1, slices);
            }
            if pressed(egui::Key::ArrowUp) || pressed(egui::Key::ArrowLeft) {
                view.step(-1, slices);
            }
            if pressed(egui::Key::PageDown) {
                view.step(10, slices);
            }
            if pressed(egui::Key::PageUp) {
                view.step(-10, slices);
            }
            if pressed(egui::Key::Home) {
                view.slice = 0;
            }
            if pressed(egui::Key::End) {
                view.slice = slices.saturating_sub(1);
            }
            if pressed(egui::Key::Space) {
                view.playing = !view.playing;
            }
            if pressed(egui::Key::B) {
                view.tool = super::Tool::Brush;
            }
            if pressed(egui::Key::E) {
                view.tool = super::Tool::Eraser;
            }
            view_keys(view, i);
        });
        let (mark, undo, redo) = ui.input(|i| {
            let cmd = i.modifiers.command;
            (
                i.key_pressed(egui::Key::K),
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && (i.key_pressed(egui::Key::Y) || (i.modifiers.shift && i.key_pressed(egui::Key::Z))),
            )
        });
        if mark || undo || redo {
            let style = slice_style(app);
            let slice = app.view.slice;
            let names = app.label_names();
            let geometry = app.current.as_ref().and_then(|c| c.stack.geometry.clone());
            if let Some(a) = app.analysis.as_mut() {
                let mut changed = false;
                if mark {
                    a.review.key_images.retain(|k| k.slice != slice);
                    a.review.key_images.push(crate::report::KeyImage { slice, style });
                    changed = true;
                }
                if undo {
                    changed |= a.undo();
                }
                if redo {
                    changed |= a.redo();
                }
                if changed {
                    a.remeasure(&names);
                    a.save(geometry);
                }
            }
            app.pixels_dirty();
        }
    }
    if app.view.tool.paints() {
        brush(app, response, rect);
    } else if app.view.tool.measures() {
        super::measure::measure_input(app, response, rect);
    }
    let view = &mut app.view;
    if view.playing && slices > 1 {
        view.cine_clock += dt * app.settings.cine_fps.max(0.5);
        while view.cine_clock >= 1.0 {
            view.cine_clock -= 1.0;
            view.slice = (view.slice + 1) % slices;
        }
        ui.ctx().request_repaint();
    }
}

/// The keys every layout shares: invert, fit, and the measuring tools.
pub(super) fn view_keys(view: &mut super::ViewState, i: &egui::InputState) {
    let pressed = |k| i.key_pressed(k);
    if pressed(egui::Key::I) {
        view.invert = !view.invert;
    }
    if pressed(egui::Key::R) {
        view.reset();
    }
    if pressed(egui::Key::M) {
        view.tool = super::Tool::Ruler;
    }
    if pressed(egui::Key::O) {
        view.tool = super::Tool::Ellipse;
    }
    if pressed(egui::Key::F) {
        view.tool = super::Tool::Freehand;
    }
    if pressed(egui::Key::N) || pressed(egui::Key::Escape) {
        view.tool = super::Tool::Navigate;
        view.drawing.clear();
    }
}

/// Paints with the brush or eraser where the left button drags (one undo step per stroke).
pub(super) fn brush(app: &mut FocalApp, response: &egui::Response, rect: Rect) {
    let Some(frame) = ImageFrame::of(app, rect) else { return };
    let Some(current) = &app.current else { return };
    let spacing = frame.spacing;
    let geometry = current.stack.geometry.clone();
    let label = if app.view.tool == super::Tool::Eraser {
        0
    } else {
        app.view.brush_label
    };
    let (slice, radius) = (app.view.slice, app.view.brush_mm);
    let names = app.label_names();
    let Some(a) = app.analysis.as_mut().filter(|a| a.series == current.uid) else {
        return;
    };
    let painting =
        response.dragged_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if painting && let Some(pos) = response.interact_pointer_pos() {
        let [x, y] = frame.to_pixel(pos);
        a.paint(slice, x as f32, y as f32, radius, spacing, label);
    }
    let released =
        response.drag_stopped_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if released && a.end_stroke() {
        a.remeasure(&names);
        a.save(geometry);
    }
    if painting || released {
        app.pixels_dirty();
    }
}
