//! What the mouse and keyboard do in the slice view: scroll, window/level, zoom and pan,
//! presets, cine, key images, and painting with the brush and eraser (`measure` has the
//! measuring tools).

use eframe::egui::{self, Rect};

use crate::ui::{FocalApp, ReviewChange, ViewChange};
use crate::ui::frame::{ImageFrame, slice_style};

/// What the mouse and the clock are in the middle of: not the document, the way to a change
/// of it.
#[derive(Debug, Clone)]
pub struct Gesture {
    /// Wheel movement not yet a whole slice.
    pub wheel: f32,
    /// Cine frames not yet shown.
    pub cine_clock: f32,
    /// Points per mm at zoom 1 in the last frame (for the 1:1 button and measuring).
    pub fit_scale: f32,
    /// The measurement being drawn: where the drag started, the outline so far (freehand) and
    /// where it is now, in pixel coordinates.
    pub drawing: Vec<[f64; 2]>,
}

impl Default for Gesture {
    fn default() -> Self {
        Gesture {
            wheel: 0.0,
            cine_clock: 0.0,
            fit_scale: 1.0,
            drawing: Vec::new(),
        }
    }
}

impl Gesture {
    /// Adds the wheel `events` (line, point or page units; Ctrl/Cmd+wheel zooms instead) and
    /// takes the whole slices they add up to: positive toward later slices.
    pub fn wheel_steps(&mut self, events: &[egui::Event]) -> f32 {
        for e in events {
            if let egui::Event::MouseWheel {
                unit, delta, modifiers, ..
            } = e
                && !modifiers.ctrl
                && !modifiers.command
            {
                self.wheel -= match unit {
                    egui::MouseWheelUnit::Line => delta.y,
                    egui::MouseWheelUnit::Point => delta.y / 50.0,
                    egui::MouseWheelUnit::Page => delta.y * 10.0,
                };
            }
        }
        let steps = self.wheel.trunc();
        self.wheel -= steps;
        steps
    }
}

pub(in crate::ui) fn handle_input(app: &mut FocalApp, ui: &egui::Ui, response: &egui::Response, rect: Rect, slices: usize) {
    let typing = ui.ctx().text_edit_focused();
    let (events, zoom, dt) = ui.input(|i| (i.events.clone(), i.zoom_delta(), i.stable_dt));
    if response.hovered() {
        let steps = app.gesture.wheel_steps(&events);
        if steps != 0.0 {
            app.edit(ViewChange::Step(steps as i64));
        }
        if zoom != 1.0
            && let Some(cursor) = response.hover_pos()
        {
            app.edit(ViewChange::ZoomAbout {
                factor: zoom,
                offset: cursor - rect.center(),
            });
        }
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        app.edit(drag_window(app.doc.view(), response.drag_delta()));
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        app.edit(ViewChange::Pan(response.drag_delta()));
    }
    if response.double_clicked() {
        app.edit(ViewChange::Fit);
    }
    if !typing {
        let view = app.doc.view();
        let changes = ui.input(|i| {
            let pressed = |k| i.key_pressed(k);
            let mut changes = Vec::new();
            if pressed(egui::Key::ArrowDown) || pressed(egui::Key::ArrowRight) {
                changes.push(ViewChange::Step(1));
            }
            if pressed(egui::Key::ArrowUp) || pressed(egui::Key::ArrowLeft) {
                changes.push(ViewChange::Step(-1));
            }
            if pressed(egui::Key::PageDown) {
                changes.push(ViewChange::Step(10));
            }
            if pressed(egui::Key::PageUp) {
                changes.push(ViewChange::Step(-10));
            }
            if pressed(egui::Key::Home) {
                changes.push(ViewChange::GoTo(0));
            }
            if pressed(egui::Key::End) {
                changes.push(ViewChange::GoTo(slices.saturating_sub(1)));
            }
            if pressed(egui::Key::Space) {
                changes.push(ViewChange::Playing(!view.playing));
            }
            if pressed(egui::Key::B) {
                changes.push(ViewChange::Tool(crate::ui::Tool::Brush));
            }
            if pressed(egui::Key::E) {
                changes.push(ViewChange::Tool(crate::ui::Tool::Eraser));
            }
            changes
        });
        for c in changes {
            app.edit(c);
        }
        view_keys(app, ui);
        let (mark, undo, redo) = ui.input(|i| {
            let cmd = i.modifiers.command;
            (
                i.key_pressed(egui::Key::K),
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && (i.key_pressed(egui::Key::Y) || (i.modifiers.shift && i.key_pressed(egui::Key::Z))),
            )
        });
        if mark {
            let style = slice_style(app);
            app.edit(ReviewChange::MarkKeyImage(app.doc.view().slice, Box::new(style)));
        }
        if undo {
            app.edit(ReviewChange::Undo);
        }
        if redo {
            app.edit(ReviewChange::Redo);
        }
    }
    if app.doc.view().tool.paints() {
        brush(app, response, rect);
    } else if app.doc.view().tool.measures() {
        crate::ui::measure::measure_input(app, response, rect);
    }
    if app.doc.view().playing && slices > 1 {
        app.gesture.cine_clock += dt * app.doc.settings().cine_fps.max(0.5);
        let mut slice = app.doc.view().slice;
        while app.gesture.cine_clock >= 1.0 {
            app.gesture.cine_clock -= 1.0;
            slice = (slice + 1) % slices;
        }
        if slice != app.doc.view().slice {
            app.edit(ViewChange::GoTo(slice));
        }
        ui.ctx().request_repaint();
    }
}

/// The window a right-button drag by `d` points sets: down raises the level, right widens the
/// window, in steps proportional to the width.
pub(in crate::ui) fn drag_window(view: &crate::ui::ViewState, d: egui::Vec2) -> ViewChange {
    let k = view.window.width.max(1.0) * 0.004;
    ViewChange::Window {
        center: view.window.center + f64::from(d.y) * k,
        width: view.window.width + f64::from(d.x) * k,
        preset: None,
    }
}

/// The keys every layout shares: invert, fit, and the measuring tools.
pub(in crate::ui) fn view_keys(app: &mut FocalApp, ui: &egui::Ui) {
    let invert = !app.doc.view().invert;
    let (changes, navigate) = ui.input(|i| {
        let pressed = |k| i.key_pressed(k);
        let mut changes = Vec::new();
        if pressed(egui::Key::I) {
            changes.push(ViewChange::Invert(invert));
        }
        if pressed(egui::Key::R) {
            changes.push(ViewChange::Fit);
        }
        for (key, tool) in [
            (egui::Key::M, crate::ui::Tool::Ruler),
            (egui::Key::O, crate::ui::Tool::Ellipse),
            (egui::Key::F, crate::ui::Tool::Freehand),
        ] {
            if pressed(key) {
                changes.push(ViewChange::Tool(tool));
            }
        }
        let navigate = pressed(egui::Key::N) || pressed(egui::Key::Escape);
        if navigate {
            changes.push(ViewChange::Tool(crate::ui::Tool::Navigate));
        }
        (changes, navigate)
    });
    if navigate {
        app.gesture.drawing.clear();
    }
    for c in changes {
        app.edit(c);
    }
}

/// Paints with the brush or eraser where the left button drags (one undo step per stroke).
pub(in crate::ui) fn brush(app: &mut FocalApp, response: &egui::Response, rect: Rect) {
    let Some(frame) = ImageFrame::of(app, rect) else { return };
    if app.doc.current_analysis().is_none() {
        return;
    }
    let view = app.doc.view();
    let label = if view.tool == crate::ui::Tool::Eraser { 0 } else { view.brush_label };
    let (slice, radius_mm) = (view.slice, view.brush_mm);
    let painting =
        response.dragged_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if painting && let Some(pos) = response.interact_pointer_pos() {
        let [x, y] = frame.to_pixel(pos);
        app.edit(ReviewChange::Paint {
            slice,
            at: [x as f32, y as f32],
            radius_mm,
            spacing: frame.spacing,
            label,
        });
    }
    let released =
        response.drag_stopped_by(egui::PointerButton::Primary) || response.clicked_by(egui::PointerButton::Primary);
    if released {
        app.edit(ReviewChange::EndStroke);
    }
}
