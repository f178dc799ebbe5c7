//! Progress on the terminal for the long commands (analysis, batch, retrieve): a bar with its
//! rate and time left on stderr, drawn only for a person at a terminal (redirected to a file or a
//! pipe, only the lines the command prints anyway remain).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One task's bar.
#[derive(Clone)]
pub struct Bar {
    bar: ProgressBar,
    what: String,
}

/// The look of a bar: with its total and the time left, or a count while the total is unknown.
fn style(what: &str, total_known: bool) -> Option<ProgressStyle> {
    let template = if total_known {
        format!("{{bar:30}} {{pos}}/{{len}} {what}  {{per_sec}}  ETA {{eta}}  {{msg}}")
    } else {
        format!("{{spinner}} {{pos}} {what}  {{per_sec}}  {{msg}}")
    };
    ProgressStyle::with_template(&template).ok()
}

impl Bar {
    /// A bar for `what` ("slices", "studies", "instances"), out of `total` when known.
    pub fn new(what: &str, total: Option<u64>) -> Bar {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        if let Some(s) = style(what, total.is_some()) {
            bar.set_style(s);
        }
        Bar { bar, what: what.to_string() }
    }

    /// How far the task has come (and its total, once known).
    pub fn set(&self, done: u64, total: Option<u64>) {
        if let Some(t) = total {
            if self.bar.length().is_none()
                && let Some(s) = style(&self.what, true)
            {
                self.bar.set_style(s);
            }
            self.bar.set_length(t);
        }
        self.bar.set_position(done);
    }

    /// A short note beside the bar (what is being worked on).
    pub fn note(&self, text: impl Into<String>) {
        self.bar.set_message(text.into());
    }

    /// Prints a line on stderr above the bar (or alone, when no bar is drawn).
    pub fn line(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// Takes the bar off the terminal.
    pub fn done(&self) {
        self.bar.finish_and_clear();
    }
}
