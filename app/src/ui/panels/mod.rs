//! The window's panels: each reads the document and asks for changes (`Edit`s) or work
//! (`Command`s). The study browser and toolbar, the overlay and model panels, the analysis's
//! insights and fusion controls, the review, the PACS window and the tag inspector.

use crate::ui::{Command, Document, Edit, FocalApp};

pub mod browser;
pub mod fusion;
pub mod insights;
pub mod model_panel;
pub mod objects;
pub mod overlays;
pub mod pacs_form;
pub mod pacs_panel;
pub mod review;
pub mod tags;

/// What the side panels are given instead of the whole app: the app to read (the document, the
/// model, the work in flight) and two sinks, for `Edit`s and `Command`s. The edits are applied
/// when the panel returns (`FocalApp::with_panel`), the commands queued to the end of the frame;
/// a panel changes nothing itself.
pub struct Panel<'a> {
    pub app: &'a FocalApp,
    edits: Vec<Edit>,
    commands: Vec<Command>,
}

impl Panel<'_> {
    pub fn doc(&self) -> &Document {
        &self.app.doc
    }

    /// Asks for a change of the document.
    pub fn edit(&mut self, edit: impl Into<Edit>) {
        self.edits.push(edit.into());
    }

    /// Asks for work (threads, dialogs).
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

impl FocalApp {
    /// Runs a side panel, then applies the edits it asked for and queues its commands.
    pub(in crate::ui) fn with_panel<R>(&mut self, show: impl FnOnce(&mut Panel) -> R) -> R {
        let mut panel = Panel {
            app: self,
            edits: Vec::new(),
            commands: Vec::new(),
        };
        let result = show(&mut panel);
        let (edits, commands) = (panel.edits, panel.commands);
        for e in edits {
            self.edit(e);
        }
        for c in commands {
            self.push(c);
        }
        result
    }
}
