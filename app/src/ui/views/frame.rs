//! Where the current slice lies on screen and how it and the text over it are drawn: shared by
//! the slice view, its mouse and keyboard handling, the measurements and the MPR layouts, so
//! that none of them reaches into another.

use eframe::egui::{self, Align2, Color32, FontId, Pos2, Rect, Vec2};

use crate::ui::FocalApp;
use crate::render::{MaskStyle, SliceStyle};

/// Where the slice lies on screen: the image rectangle, points per mm and pixel spacing.
pub(in crate::ui) struct ImageFrame {
    pub image_rect: Rect,
    pub scale: f32,
    pub spacing: [f64; 2],
}

impl ImageFrame {
    /// The frame of the current series in the view `rect` (as `slice_view` lays it out).
    pub fn of(app: &FocalApp, rect: Rect) -> Option<ImageFrame> {
        let stack = &app.doc.current()?.stack;
        let spacing = stack.display_spacing();
        let size_mm = Vec2::new(
            (f64::from(stack.columns) * spacing[0]) as f32,
            (f64::from(stack.rows) * spacing[1]) as f32,
        );
        let scale = app.gesture.fit_scale * app.doc.view().zoom;
        Some(ImageFrame {
            image_rect: Rect::from_center_size(rect.center() + app.doc.view().pan, size_mm * scale),
            scale,
            spacing,
        })
    }

    /// Screen point → pixel coordinates (x along columns, y along rows).
    pub fn to_pixel(&self, pos: Pos2) -> [f64; 2] {
        [
            f64::from((pos.x - self.image_rect.left()) / self.scale) / self.spacing[0],
            f64::from((pos.y - self.image_rect.top()) / self.scale) / self.spacing[1],
        ]
    }

    /// Pixel coordinates → screen point.
    pub fn to_screen(&self, p: [f64; 2]) -> Pos2 {
        Pos2::new(
            self.image_rect.left() + (p[0] * self.spacing[0]) as f32 * self.scale,
            self.image_rect.top() + (p[1] * self.spacing[1]) as f32 * self.scale,
        )
    }
}

/// The name of a label value as drawn: the shown objects' map's where objects are shown, else
/// the model's.
pub(in crate::ui) fn label_name(app: &FocalApp, value: u8) -> String {
    if let Some(c) = app.object_composite() {
        return c.table.get(usize::from(value)).map_or_else(|| "?".into(), |(n, _, _)| n.clone());
    }
    match &app.manifest {
        Ok(m) => m.labels.iter().find(|x| x.index == value).map_or_else(|| "?".into(), |x| x.name.clone()),
        Err(_) => "?".into(),
    }
}

/// Text over the image, with a dark halo.
pub(in crate::ui) fn text(painter: &egui::Painter, pos: Pos2, anchor: Align2, s: impl ToString) {
    // A dark halo keeps text legible over bright tissue.
    let font = FontId::proportional(13.0);
    for d in [Vec2::new(1.0, 1.0), Vec2::new(-1.0, -1.0)] {
        painter.text(pos + d, anchor, s.to_string(), font.clone(), Color32::BLACK);
    }
    painter.text(pos, anchor, s.to_string(), font, Color32::from_rgb(230, 230, 170));
}

pub fn slice_style(app: &FocalApp) -> SliceStyle {
    let s = &app.doc.settings();
    // With objects shown, their map's own table (the analysis's labels first, as set here).
    let objects = app.object_composite().map(|c| MaskStyle {
        mode: s.mask_mode,
        fill_opacity: s.fill_opacity,
        outline_width: s.outline_width,
        colors: c.table.iter().map(|(_, c, _)| *c).collect(),
        visible: c.table.iter().enumerate().map(|(i, (_, _, v))| i > 0 && *v).collect(),
    });
    let mask = objects.or_else(|| app.manifest.as_ref().ok().map(|m| {
        let count = m.labels.iter().map(|l| usize::from(l.index) + 1).max().unwrap_or(0);
        let mut colors = vec![[255, 255, 255]; count];
        let mut visible = vec![false; count];
        for l in &m.labels {
            colors[usize::from(l.index)] = l.color;
            visible[usize::from(l.index)] = l.index > 0 && !s.hidden_labels.contains(&l.index);
        }
        MaskStyle {
            mode: s.mask_mode,
            fill_opacity: s.fill_opacity,
            outline_width: s.outline_width,
            colors,
            visible,
        }
    }));
    SliceStyle {
        window_center: app.doc.view().window.center,
        window_width: app.doc.view().window.width,
        invert: app.doc.view().invert,
        attention: s.show_attention.then(|| crate::ui::insights::heat_style(app).0),
        mask: mask.filter(|_| s.show_mask),
    }
}
