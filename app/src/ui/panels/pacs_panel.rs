//! The PACS window: the configured nodes (DIMSE or DICOMweb) and an editor for them, a query
//! form, the result table, and retrieve with progress and cancel into the retrieve cache; a
//! retrieved study opens like any folder. Every network call goes through `pacs::Endpoint` on
//! a thread, and only when the reader presses a button. Patient data in the table stays in the
//! window: nothing here logs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use eframe::egui;

pub use crate::ui::pacs_form::{AuthKind, NodeForm, NodeKind, QueryForm};
use crate::ui::job::{Job, Outcome as JobOutcome, Reporter};
use crate::ui::Command;
use crate::pacs::{self, Config, Endpoint, FindLevel, Query, nodes};

type Row = BTreeMap<String, String>;

/// What a finished network job brought.
enum Outcome {
    Echo(Result<f64, String>),
    Find(Result<Vec<Row>, String>),
    Series(Result<Vec<Row>, String>),
    Get(Result<pacs::GetSummary, String>),
}

struct NetworkJob {
    what: String,
    job: Job<Outcome>,
}

/// Everything the PACS window shows and remembers while Focal runs.
pub struct PacsPanel {
    pub open: bool,
    /// The node list's file, or why there is none (no home folder: never the temporary folder).
    pub config_path: Result<PathBuf, String>,
    /// Where retrieved studies go (one folder per study).
    pub cache: Result<PathBuf, String>,
    pub config: Config,
    pub selected: Option<String>,
    pub form: NodeForm,
    pub query: QueryForm,
    pub results: Vec<Row>,
    /// The result row chosen for retrieve.
    pub chosen: Option<usize>,
    /// The chosen study's series (after *Series*), and the one chosen to retrieve alone.
    pub series: Vec<Row>,
    pub chosen_series: Option<usize>,
    /// The last outcome, in words (errors included).
    pub status: Option<String>,
    job: Option<NetworkJob>,
}

/// Result columns: (heading, attribute keyword).
const COLUMNS: [(&str, &str); 6] = [
    ("Patient", "PatientName"),
    ("ID", "PatientID"),
    ("Date", "StudyDate"),
    ("Modalities", "ModalitiesInStudy"),
    ("Images", "NumberOfStudyRelatedInstances"),
    ("Description", "StudyDescription"),
];

impl PacsPanel {
    /// The panel over the node list at `config_path`.
    pub fn new(config_path: Result<PathBuf, String>, cache: Result<PathBuf, String>) -> PacsPanel {
        let mut panel = PacsPanel {
            open: false,
            config_path,
            cache,
            config: Config::default(),
            selected: None,
            form: NodeForm::blank(),
            query: QueryForm::default(),
            results: Vec::new(),
            chosen: None,
            series: Vec::new(),
            chosen_series: None,
            status: None,
            job: None,
        };
        panel.reload();
        panel
    }

    /// Reads the node list again (another Focal, or `focal pacs add`, may have changed it).
    pub fn reload(&mut self) {
        match self.config_path.clone().and_then(|p| Config::load(&p).map_err(|e| e.to_string())) {
            Ok(c) => {
                self.config = c;
                if self.selected.as_ref().is_none_or(|s| self.config.endpoint(s).is_err()) {
                    self.selected = self.config.names().first().map(|s| s.to_string());
                }
                self.edit_selected();
            }
            Err(e) => self.status = Some(e),
        }
    }

    fn edit_selected(&mut self) {
        self.form = match self.selected.as_ref().and_then(|s| self.config.endpoint(s).ok()) {
            Some(e) => NodeForm::of(&e),
            None => NodeForm::blank(),
        };
    }

    /// A network job is running.
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// (done, total) of the retrieve running, if one is.
    pub fn progress(&self) -> Option<(usize, Option<usize>)> {
        self.job.as_ref().map(|j| j.job.progress().unwrap_or((0, None)))
    }

    /// Saves the editor's node into the node list.
    pub fn save_form(&mut self) {
        let mut config = self.config.clone();
        let saved = self.form.apply(&mut config).and_then(|()| {
            self.config_path.clone().and_then(|p| config.save(&p).map_err(|e| e.to_string()))
        });
        match saved {
            Ok(()) => {
                self.config = config;
                self.selected = Some(self.form.name.trim().to_string());
                self.status = Some(format!("saved node {}", self.form.name.trim()));
                self.form.secret.clear();
            }
            Err(e) => self.status = Some(e),
        }
    }

    fn remove_selected(&mut self) {
        let Some(name) = self.selected.clone() else { return };
        let mut config = self.config.clone();
        match config.remove(&name).map_err(|e| e.to_string()).and_then(|()| {
            self.config_path.clone().and_then(|p| config.save(&p).map_err(|e| e.to_string()))
        }) {
            Ok(()) => {
                self.config = config;
                self.selected = self.config.names().first().map(|s| s.to_string());
                self.edit_selected();
                self.status = Some(format!("removed node {name}"));
            }
            Err(e) => self.status = Some(e),
        }
    }

    fn endpoint(&mut self) -> Option<Endpoint> {
        let name = self.selected.clone()?;
        match self.config.endpoint(&name) {
            Ok(e) => Some(e),
            Err(e) => {
                self.status = Some(e.to_string());
                None
            }
        }
    }

    fn start(&mut self, what: String, work: impl FnOnce(&dyn Fn(usize, Option<usize>), &AtomicBool) -> Outcome + Send + 'static) {
        if self.job.is_some() {
            return;
        }
        // No window to wake: pacs_window repaints while a job runs.
        let job = Job::spawn(None, move |r: &Reporter<Outcome>| {
            r.send(work(&|done, total| r.progress(done, total), r.cancelled()))
        });
        self.status = Some(format!("{what}…"));
        self.job = Some(NetworkJob { what, job });
    }

    /// C-ECHO, or a one-study QIDO-RS query, on the selected node.
    pub fn echo(&mut self) {
        let Some(e) = self.endpoint() else { return };
        let what = format!("{} to {}", e.verbs()[0], e.describe());
        self.start(what, move |_, _| {
            Outcome::Echo(e.echo().map(|d| d.as_secs_f64() * 1000.0).map_err(|e| e.to_string()))
        });
    }

    /// Studies on the selected node matching the query form.
    pub fn find(&mut self) {
        let Some(e) = self.endpoint() else { return };
        let query = self.query.query();
        let what = format!("{} on {}", e.verbs()[1], e.describe());
        self.start(what, move |_, _| {
            Outcome::Find(e.find(FindLevel::Study, &query).map_err(|e| e.to_string()))
        });
    }

    fn chosen_study(&self) -> Option<String> {
        self.chosen
            .and_then(|i| self.results.get(i))
            .and_then(|r| r.get("StudyInstanceUID").cloned())
    }

    /// Chooses result row `i` (forgetting the series of the study chosen before).
    pub fn choose(&mut self, i: usize) {
        if self.chosen != Some(i) {
            self.chosen = Some(i);
            self.series.clear();
            self.chosen_series = None;
        }
    }

    /// The series of the chosen study.
    pub fn list_series(&mut self) {
        let Some(study) = self.chosen_study() else {
            self.status = Some("choose a study in the table first".into());
            return;
        };
        let Some(e) = self.endpoint() else { return };
        let query = Query {
            study_uid: Some(study),
            ..Query::default()
        };
        let what = format!("{} of the study's series on {}", e.verbs()[1], e.describe());
        self.start(what, move |_, _| {
            Outcome::Series(e.find(FindLevel::Series, &query).map_err(|e| e.to_string()))
        });
    }

    /// Retrieves the chosen study, or only its chosen series, into the cache (resuming what an
    /// earlier try left).
    pub fn retrieve(&mut self) {
        let Some(study) = self.chosen_study() else {
            self.status = Some("choose a study in the table first".into());
            return;
        };
        let series = self
            .chosen_series
            .and_then(|i| self.series.get(i))
            .and_then(|r| r.get("SeriesInstanceUID").cloned());
        let Some(e) = self.endpoint() else { return };
        let cache = match &self.cache {
            Ok(c) => c.clone(),
            Err(why) => {
                self.status = Some(format!("nothing is retrieved: {why}"));
                return;
            }
        };
        let what = format!(
            "{} of the {} from {}",
            e.verbs()[2],
            if series.is_some() { "series" } else { "study" },
            e.describe()
        );
        self.start(what, move |progress, cancel| {
            Outcome::Get(e.get(&study, series.as_deref(), &cache, progress, cancel).map_err(|e| e.to_string()))
        });
    }

    pub fn cancel(&self) {
        if let Some(j) = &self.job {
            j.job.cancel();
        }
    }

    /// Takes in a finished job; a completed retrieve asks the app to open the study.
    pub fn poll(&mut self) -> Option<Command> {
        let outcome = match self.job.as_ref()?.job.outcome() {
            JobOutcome::Done(o) => o,
            JobOutcome::Running => return None,
            JobOutcome::Ended => {
                let what = self.job.take().map(|j| j.what).unwrap_or_default();
                self.status = Some(format!("{what} stopped unexpectedly"));
                return None;
            }
        };
        let what = self.job.take().map(|j| j.what).unwrap_or_default();
        match outcome {
            Outcome::Echo(Ok(ms)) => self.status = Some(format!("{what}: ok in {ms:.0} ms")),
            Outcome::Find(Ok(rows)) => {
                self.status = Some(format!("{what}: {} stud{}", rows.len(), if rows.len() == 1 { "y" } else { "ies" }));
                self.chosen = (rows.len() == 1).then_some(0);
                self.results = rows;
                self.series.clear();
                self.chosen_series = None;
            }
            Outcome::Series(Ok(rows)) => {
                self.status = Some(format!("{what}: {} series", rows.len()));
                self.chosen_series = None;
                self.series = rows;
            }
            Outcome::Get(Ok(s)) => {
                self.status = Some(format!(
                    "{what}: {} received, {} already here, {} failed ({:.1} MB in {:.1} s)",
                    s.received,
                    s.already_had,
                    s.failed,
                    s.bytes as f64 / 1e6,
                    s.seconds
                ));
                return Some(Command::Open(vec![s.folder]));
            }
            Outcome::Echo(Err(e)) | Outcome::Find(Err(e)) | Outcome::Series(Err(e)) => self.status = Some(format!("{what} failed: {e}")),
            Outcome::Get(Err(e)) => {
                self.status = Some(format!(
                    "{what} failed: {e}. What arrived is kept; Retrieve again to resume."
                ))
            }
        }
        None
    }
}

/// A text field of a fixed width (a grid would otherwise squeeze it to its hint's first letter).
fn text_field(ui: &mut egui::Ui, value: &mut String, hint: &str, width: f32) {
    ui.add_sized([width, 20.0], egui::TextEdit::singleline(value).hint_text(hint));
}

fn field(ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str) {
    ui.label(label);
    text_field(ui, value, hint, 180.0);
    ui.end_row();
}

fn node_list(p: &mut PacsPanel, ui: &mut egui::Ui) {
    ui.strong("Nodes");
    if p.config.names().is_empty() {
        ui.weak("none configured yet");
    }
    let names: Vec<(String, &'static str)> = p
        .config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), "DIMSE"))
        .chain(p.config.web.iter().map(|w| (w.name.clone(), "DICOMweb")))
        .collect();
    for (name, kind) in names {
        let on = p.selected.as_deref() == Some(name.as_str());
        if ui.selectable_label(on, format!("{name}  ({kind})")).clicked() && !on {
            p.selected = Some(name);
            p.edit_selected();
            p.results.clear();
            p.chosen = None;
            p.series.clear();
            p.chosen_series = None;
        }
    }
    ui.horizontal(|ui| {
        if ui.button("New node").clicked() {
            p.selected = None;
            p.form = NodeForm::blank();
        }
        if ui.button("Reload").on_hover_text("Read the node list again").clicked() {
            p.reload();
        }
    });
}

fn node_editor(p: &mut PacsPanel, ui: &mut egui::Ui) {
    ui.strong(if p.selected.is_some() { "Edit node" } else { "New node" });
    let f = &mut p.form;
    ui.horizontal(|ui| {
        ui.selectable_value(&mut f.kind, NodeKind::Dimse, "DIMSE");
        ui.selectable_value(&mut f.kind, NodeKind::Web, "DICOMweb");
    });
    egui::Grid::new("pacs_node_form").num_columns(2).show(ui, |ui| {
        field(ui, "Name", &mut f.name, "hospital");
        match f.kind {
            NodeKind::Dimse => {
                field(ui, "AE title", &mut f.ae, "PACS_AE");
                field(ui, "Host", &mut f.host, "pacs.example.org");
                field(ui, "Port", &mut f.port, "104");
                field(ui, "Focal's AE", &mut f.our_ae, nodes::DEFAULT_OUR_AE);
            }
            NodeKind::Web => {
                field(ui, "URL", &mut f.url, "https://pacs.example.org/dicom-web");
                ui.label("Sign-in");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut f.auth, AuthKind::None, "none");
                    ui.selectable_value(&mut f.auth, AuthKind::Basic, "user");
                    ui.selectable_value(&mut f.auth, AuthKind::Bearer, "token");
                });
                ui.end_row();
                if f.auth == AuthKind::Basic {
                    field(ui, "User", &mut f.user, "");
                }
                if f.auth != AuthKind::None {
                    ui.label(if f.auth == AuthKind::Basic { "Password" } else { "Token" });
                    ui.add_sized(
                        [180.0, 20.0],
                        egui::TextEdit::singleline(&mut f.secret)
                            .password(true)
                            .hint_text("empty: keep the saved one"),
                    );
                    ui.end_row();
                }
                field(ui, "CA file", &mut f.ca_file, "built-in roots");
            }
        }
        field(ui, "Timeout (s)", &mut f.timeout, "30");
    });
    ui.horizontal(|ui| {
        if ui.button("Save node").clicked() {
            p.save_form();
        }
        if p.selected.is_some() && ui.button("Remove").clicked() {
            p.remove_selected();
        }
    });
}

fn query_and_results(p: &mut PacsPanel, ui: &mut egui::Ui) {
    let busy = p.busy();
    ui.strong(match &p.selected {
        Some(n) => format!("Query {n}"),
        None => "Query (choose a node)".into(),
    });
    egui::Grid::new("pacs_query").num_columns(4).show(ui, |ui| {
        let q = &mut p.query;
        ui.label("Patient name");
        text_field(ui, &mut q.patient_name, "DOE^*", 140.0);
        ui.label("Patient ID");
        text_field(ui, &mut q.patient_id, "", 110.0);
        ui.end_row();
        ui.label("Study date");
        text_field(ui, &mut q.date, "20240101-20241231", 140.0);
        ui.label("Modality");
        text_field(ui, &mut q.modality, "MR", 110.0);
        ui.end_row();
        ui.label("Accession");
        text_field(ui, &mut q.accession, "", 140.0);
        ui.end_row();
    });
    ui.horizontal(|ui| {
        let ready = p.selected.is_some() && !busy;
        if ui.add_enabled(ready, egui::Button::new("Echo")).clicked() {
            p.echo();
        }
        if ui.add_enabled(ready, egui::Button::new("Find")).clicked() {
            p.find();
        }
        let can_get = ready && p.chosen.is_some();
        if ui
            .add_enabled(can_get, egui::Button::new("Series"))
            .on_hover_text("List the chosen study's series, to retrieve one of them")
            .clicked()
        {
            p.list_series();
        }
        let label = if p.chosen_series.is_some() { "Retrieve series and open" } else { "Retrieve and open" };
        if ui.add_enabled(can_get, egui::Button::new(label)).clicked() {
            p.retrieve();
        }
    });
    if let Some((done, total)) = p.progress() {
        ui.horizontal(|ui| {
            ui.spinner();
            match total {
                Some(t) if t > 0 => {
                    ui.add(
                        egui::ProgressBar::new(done as f32 / t as f32)
                            .desired_width(220.0)
                            .text(format!("{done}/{t}")),
                    );
                }
                _ => {
                    ui.label("working");
                }
            }
            if ui.button("Cancel").clicked() {
                p.cancel();
            }
        });
    }
    if let Some(s) = &p.status {
        ui.label(egui::RichText::new(s).weak());
    }
    ui.separator();
    egui::ScrollArea::both().max_height(260.0).show(ui, |ui| {
        if let Some(i) = result_table(ui, "pacs_results", &COLUMNS, &p.results, p.chosen) {
            p.choose(i);
        }
        if !p.series.is_empty() {
            ui.separator();
            ui.label("Series of the chosen study (click one to retrieve it alone, again for the whole study)");
            if let Some(i) = result_table(ui, "pacs_series", &SERIES_COLUMNS, &p.series, p.chosen_series) {
                p.chosen_series = if p.chosen_series == Some(i) { None } else { Some(i) };
            }
        }
    });
}

/// A striped table of query results whose first column can be clicked; returns the row
/// clicked. Person names show with spaces for `^`, an empty first cell as "–".
fn result_table(ui: &mut egui::Ui, id: &str, columns: &[(&str, &str)], rows: &[Row], chosen: Option<usize>) -> Option<usize> {
    let mut clicked = None;
    egui::Grid::new(id).striped(true).num_columns(columns.len()).show(ui, |ui| {
        for (heading, _) in columns {
            ui.strong(*heading);
        }
        ui.end_row();
        for (i, row) in rows.iter().enumerate() {
            for (c, (_, key)) in columns.iter().enumerate() {
                let text = row.get(*key).map_or("", String::as_str);
                if c == 0 {
                    let shown = if text.is_empty() { "–".to_string() } else { text.replace('^', " ") };
                    if ui.selectable_label(chosen == Some(i), shown).clicked() {
                        clicked = Some(i);
                    }
                } else {
                    ui.label(text);
                }
            }
            ui.end_row();
        }
    });
    clicked
}

/// Series columns: (heading, attribute keyword).
const SERIES_COLUMNS: [(&str, &str); 4] = [
    ("#", "SeriesNumber"),
    ("Modality", "Modality"),
    ("Images", "NumberOfSeriesRelatedInstances"),
    ("Description", "SeriesDescription"),
];

/// The PACS window, when open; its own state only. Returns the work it asks of the window
/// (opening what a retrieve brought in).
pub fn pacs_window(pacs: &mut PacsPanel, ctx: &egui::Context) -> Option<Command> {
    let command = pacs.poll();
    if pacs.busy() {
        ctx.request_repaint_after(std::time::Duration::from_millis(100));
    }
    let mut open = pacs.open;
    egui::Window::new("PACS")
        .open(&mut open)
        .default_size([820.0, 520.0])
        .default_pos([130.0, 60.0])
        .resizable(true)
        .show(ctx, |ui| {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(300.0);
                    node_list(pacs, ui);
                    ui.separator();
                    node_editor(pacs, ui);
                });
                ui.separator();
                ui.vertical(|ui| query_and_results(pacs, ui));
            });
        });
    pacs.open = open;
    command
}
