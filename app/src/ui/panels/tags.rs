//! Tag inspector for the file of the slice on screen. Identifiers appear here, in the window,
//! and nowhere else (never in logs).

use eframe::egui;

use std::path::PathBuf;

use crate::study::tags::{TagRow, list_tags};
use crate::ui::Edit;
use crate::ui::panels::Panel;

/// The inspector's own state: the file last read (with its tags or why they could not be read)
/// and the filter typed.
#[derive(Default)]
pub struct TagInspector {
    cache: Option<(PathBuf, Result<Vec<TagRow>, String>)>,
    filter: String,
}

pub fn tag_window(app: &mut Panel, inspector: &mut TagInspector, ctx: &egui::Context) {
    let path = app
        .doc()
        .current()
        .and_then(|c| c.stack.slices.get(app.doc().view().slice))
        .map(|s| s.instance.path.clone());
    if let Some(p) = &path
        && inspector.cache.as_ref().is_none_or(|(cached, _)| cached != p)
    {
        inspector.cache = Some((p.clone(), list_tags(p).map_err(|e| crate::study::error_chain(&e))));
    }
    let mut open = app.doc().show_tags();
    egui::Window::new("Tags")
        .open(&mut open)
        .default_size([560.0, 500.0])
        .show(ctx, |ui| {
            let Some((p, rows)) = &inspector.cache else {
                ui.label("No image on screen");
                return;
            };
            ui.label(egui::RichText::new(p.display().to_string()).small());
            ui.horizontal(|ui| {
                ui.label("Filter");
                ui.text_edit_singleline(&mut inspector.filter);
            });
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    ui.label(format!("Could not read the tags: {e}"));
                    return;
                }
            };
            let filter = inspector.filter.to_lowercase();
            egui::ScrollArea::both().show(ui, |ui| {
                egui::Grid::new("tags").striped(true).num_columns(4).show(ui, |ui| {
                    for r in rows.iter().filter(|r| {
                        filter.is_empty()
                            || r.keyword.to_lowercase().contains(&filter)
                            || r.tag.to_lowercase().contains(&filter)
                            || r.value.to_lowercase().contains(&filter)
                    }) {
                        ui.monospace(format!("{}{}", "  ".repeat(r.depth), r.tag));
                        ui.label(&r.keyword);
                        ui.monospace(&r.vr);
                        ui.label(&r.value);
                        ui.end_row();
                    }
                });
            });
        });
    if open != app.doc().show_tags() {
        app.edit(Edit::ShowTags(open));
    }
}
