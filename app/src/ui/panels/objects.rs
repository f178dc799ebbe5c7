//! Objects other tools wrote over the series on screen: DICOM Segmentations and NIfTI label
//! maps drawn as labels with the analysis's (each segment on or off, its volume), Parametric
//! Maps and NIfTI probability maps as the heatmap with their units. Each is read and placed
//! onto the series' grid on its own thread; the window then draws it in every layout.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, Color32, RichText};

use crate::inference::overlays::{self, Composite, Content, LabelSource, Overlay};
use crate::ui::job::{Job, Outcome, Reporter};
use crate::ui::panels::Panel;
use crate::ui::{Edit, FocalApp, Fusion, ShownObject};

/// What an object is read from: a series of the open study (its first object) or a file.
#[derive(Debug, Clone)]
pub enum ObjectSource {
    Series(String),
    File(PathBuf),
}

/// An object being read and placed on its own thread.
pub struct ObjectJob {
    name: String,
    job: Job<Result<(String, Overlay), String>>,
}

/// An object's segments compared with the analysis's labels, per matched pair (by name, else
/// by number): (label name, agreement).
pub type Comparison = Result<Vec<(String, crate::inference::compare::Agreement)>, String>;

/// A comparison being computed on its own thread, for the object at `object` in the list.
pub struct CompareJob {
    pub object: usize,
    source: PathBuf,
    job: Job<Comparison>,
}

/// Matches an object's segments to the analysis's labels: the label of the same name
/// (case-insensitive), else of the same number. Returns (segment value in the object's map,
/// label index, name).
fn matched(segments: &[crate::study::objects::Segment], labels: &[(u8, String)]) -> Vec<(u8, u8, String)> {
    segments
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let by_name = labels.iter().find(|(_, n)| n.eq_ignore_ascii_case(s.label.trim()));
            let by_number = labels.iter().find(|(l, _)| u16::from(*l) == s.number);
            by_name.or(by_number).map(|(l, n)| ((i + 1) as u8, *l, n.clone()))
        })
        .collect()
}

/// The label map drawn over the series on screen when objects are shown: the analysis's labels
/// and the shown objects' segments as one map, with each value's name, colour and visibility.
pub struct ObjectLabels {
    key: (String, Option<u64>, u64),
    pub composite: Option<Arc<Composite>>,
}

/// The object series of the study that were made over `series` (by their references).
pub fn objects_over<'a>(set: &'a crate::study::StudySet, series: &str) -> Vec<&'a crate::study::Series> {
    set.series().filter(|s| is_object_series(s) && s.referenced_series().iter().any(|r| r == series)).collect()
}

/// The object a series holds that Focal shows over another series (a segmentation, parametric
/// map or structure set), if it holds one.
pub fn object_of(s: &crate::study::Series) -> Option<&Arc<crate::study::InstanceHeader>> {
    s.stacks
        .iter()
        .flat_map(|st| st.slices.first().map(|sl| &sl.instance))
        .chain(&s.non_image)
        .find(|h| overlays::is_overlay_object(h))
}

/// Whether a series holds such an object (never opened as images).
pub fn is_object_series(s: &crate::study::Series) -> bool {
    object_of(s).is_some()
}

impl FocalApp {
    /// Reads `source` and places it onto the series on screen (the object's series: onto the
    /// series it refers to, which goes on screen first).
    pub fn start_object(&mut self, source: ObjectSource, redirect: bool) {
        let Some(set) = self.doc.studies().cloned() else { return };
        if redirect
            && let ObjectSource::Series(uid) = &source
            && let Some(over) = set.find_series(uid).map(|s| s.referenced_series())
            && let Some(target) = over.iter().find(|r| set.find_series(r).is_some_and(|s| !s.stacks.is_empty()))
            && self.doc.current().is_none_or(|c| &c.uid != target)
        {
            self.push(crate::ui::Command::LoadSeries {
                series: target.clone(),
                stack: 0,
            });
            self.pending_object = Some(source);
            return;
        }
        let Some(current) = self.doc.current() else {
            self.notice("Open a series to show an object over it");
            return;
        };
        let (stack, onto) = (current.stack.clone(), current.uid.clone());
        let name = match &source {
            ObjectSource::Series(uid) => set.find_series(uid).map_or_else(|| "the object".into(), |s| s.title()),
            ObjectSource::File(p) => p.file_name().map_or_else(|| "the file".into(), |n| n.to_string_lossy().into_owned()),
        };
        let job = Job::spawn(None, move |r: &Reporter<Result<(String, Overlay), String>>| {
            let result = match source {
                ObjectSource::Series(uid) => set
                    .find_series(&uid)
                    .and_then(object_of)
                    .ok_or_else(|| "the object is no longer open".to_string())
                    .and_then(|h| overlays::from_dicom(h, &stack)),
                ObjectSource::File(path) => overlays::load(&path, &stack),
            };
            r.send(result.map(|o| (onto, o)));
        });
        self.object_jobs.push(ObjectJob { name, job });
    }

    /// Takes in a finished object: shown at once (a map as the heatmap, like a fused series).
    pub(in crate::ui) fn poll_object(&mut self, ctx: &egui::Context) {
        if let Some(source) = self.pending_object.take() {
            // The series it refers to is on screen now (or could not be put there).
            match self.doc.current() {
                Some(_) => self.start_object(source, false),
                None => self.notice("The series the object was made over could not be opened"),
            }
        }
        let mut finished = Vec::new();
        for (i, job) in self.object_jobs.iter().enumerate() {
            match job.job.outcome() {
                Outcome::Running => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
                Outcome::Done(result) => finished.push((i, Some(result))),
                Outcome::Ended => finished.push((i, None)),
            }
        }
        for (i, result) in finished.into_iter().rev() {
            let job = self.object_jobs.remove(i);
            match result {
                Some(Ok((onto, overlay))) => {
                    for n in &overlay.notes {
                        self.notice_named(format!("{}: {n}", overlay.name));
                    }
                    self.take_object(onto, overlay);
                }
                Some(Err(e)) => self.notice_named(format!("Cannot show {}: {e}", job.name)),
                None => {}
            }
        }
    }

    fn take_object(&mut self, onto: String, overlay: Overlay) {
        match &overlay.content {
            Content::Labels { .. } | Content::Report(_) => {
                let segments = match &overlay.content {
                    Content::Labels { segments, .. } => {
                        self.notice_named(format!("Showing {} ({} segments)", overlay.name, segments.len()));
                        vec![true; segments.len()]
                    }
                    Content::Report(r) => {
                        self.notice_named(format!("Showing {}", overlay.name));
                        // A presentation state's window is how its author looked at the images.
                        if let Some([center, width]) = r.window {
                            self.edit(crate::ui::ViewChange::Window { center, width, preset: None });
                        }
                        Vec::new()
                    }
                    Content::Map { .. } => Vec::new(),
                };
                self.edit(Edit::ObjectLoaded(Box::new(ShownObject {
                    onto,
                    overlay: Arc::new(overlay),
                    shown: true,
                    segments,
                })));
            }
            Content::Map { values, quantity, units, range, coverage } => {
                let Some(volume) = self.doc.current().and_then(|c| c.volume.clone()) else {
                    self.notice("Wait for the series to load before showing a map over it");
                    return;
                };
                let mut map = (*volume).clone();
                map.data = (**values).clone();
                map.channels = 1;
                let label = if units.is_empty() {
                    format!("{} {quantity}", overlay.name)
                } else {
                    format!("{} {quantity} ({units})", overlay.name)
                };
                let center = f64::from(range[0] + range[1]) / 2.0;
                let width = f64::from(range[1] - range[0]).max(1e-6);
                self.notice_named(format!("Showing {label}"));
                self.edit(Edit::Fused(Box::new(Fusion {
                    onto,
                    series: overlay.source.display().to_string(),
                    label,
                    volume: Arc::new(map),
                    coverage: *coverage,
                    window: crate::study::WindowLevel { center, width },
                    colormap: crate::render::Colormap::Viridis,
                    opacity: 0.6,
                })));
            }
        }
    }

    /// Compares object `index` (shown over the series) with the analysis on screen, on a thread.
    pub fn start_comparison(&mut self, index: usize) {
        let Some(a) = self.doc.current_analysis() else {
            self.notice("Run or restore an analysis of this series to compare with");
            return;
        };
        let Some((_, o)) = self.doc.objects().find(|(i, _)| *i == index) else { return };
        let Content::Labels { labels: theirs, segments, .. } = &o.overlay.content else { return };
        let pairs = matched(segments, self.doc.label_names());
        if pairs.is_empty() {
            self.notice_named(format!("No segment of {} matches a label of the analysis by name or number", o.overlay.name));
            return;
        }
        let (ours, theirs, source) = (a.labels.clone(), theirs.clone(), o.overlay.source.clone());
        let dims = [a.columns, a.rows, a.slices];
        let spacing = self.doc.current().and_then(|c| c.stack.geometry.as_ref()).map_or([1.0; 3], |g| g.spacing);
        let job = Job::spawn(None, move |r: &Reporter<Comparison>| {
            if ours.len() != theirs.len() {
                r.send(Err("the analysis and the object are on different grids".into()));
                return;
            }
            // Both maps in the analysis's label numbers, only the matched labels.
            let a: Vec<u32> = ours
                .iter()
                .map(|&l| if pairs.iter().any(|(_, x, _)| *x == l) { u32::from(l) } else { 0 })
                .collect();
            let mut to_label = [0u32; 256];
            for (v, l, _) in &pairs {
                to_label[usize::from(*v)] = u32::from(*l);
            }
            let b: Vec<u32> = theirs.iter().map(|&v| to_label[usize::from(v)]).collect();
            let rows = crate::inference::compare::compare(&a, &b, dims, spacing);
            let named = rows
                .into_iter()
                .map(|row| {
                    let name = pairs.iter().find(|(_, l, _)| u32::from(*l) == row.label).map_or_else(String::new, |p| p.2.clone());
                    (name, row)
                })
                .collect();
            r.send(Ok(named));
        });
        self.object_comparison = None;
        self.compare_job = Some(CompareJob { object: index, source, job });
    }

    /// Takes in a finished comparison.
    pub(in crate::ui) fn poll_comparison(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.compare_job else { return };
        match job.job.outcome() {
            Outcome::Running => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
            Outcome::Done(result) => {
                let source = job.source.clone();
                self.compare_job = None;
                self.object_comparison = Some((source, result));
            }
            Outcome::Ended => self.compare_job = None,
        }
    }

    /// Brings the drawn label map up to date with the analysis and the shown objects; None when
    /// no object is shown (the analysis's labels are drawn as they are).
    pub(in crate::ui) fn refresh_object_labels(&mut self) {
        let Some(current) = self.doc.current() else {
            self.object_labels = None;
            return;
        };
        let len = current.stack.columns as usize * current.stack.rows as usize * current.stack.slices.len();
        let analysis = self.doc.current_analysis().filter(|a| a.labels.len() == len);
        let key = (current.uid.clone(), analysis.map(|a| a.edits), self.doc.objects_generation());
        if self.object_labels.as_ref().is_some_and(|l| l.key == key) {
            return;
        }
        let shown: Vec<&ShownObject> = self.doc.objects().map(|(_, o)| o).filter(|o| o.shown).collect();
        let composite = (!shown.is_empty()).then(|| {
            let mut sources = Vec::new();
            if let (Some(a), Ok(m)) = (analysis, &self.manifest) {
                sources.push(LabelSource::of_model(&a.labels, &m.labels, &self.doc.settings().hidden_labels));
            }
            sources.extend(shown.iter().filter_map(|o| o.overlay.label_source(&o.segments)));
            let (composite, left_out) = overlays::compose(len, &sources);
            if !left_out.is_empty() {
                tracing::warn!(count = left_out.len(), "labels past 255 left out of the drawn map");
            }
            Arc::new(composite)
        });
        self.object_labels = Some(ObjectLabels { key, composite });
    }

    /// The drawn label map when objects are shown.
    pub fn object_composite(&self) -> Option<&Arc<Composite>> {
        self.object_labels.as_ref().and_then(|l| l.composite.as_ref())
    }
}

/// The objects section of the Overlays panel: each object placed onto the series, its segments
/// with colour, volume and a switch, and the object series of the study that could be.
pub fn object_controls(p: &mut Panel, ui: &mut egui::Ui) {
    let voxel_ml = p
        .doc()
        .current()
        .and_then(|c| c.stack.geometry.as_ref())
        .map_or(0.001, |g| g.spacing.iter().product::<f64>() / 1000.0);
    let shown: Vec<(usize, Arc<Overlay>, bool, Vec<bool>)> =
        p.doc().objects().map(|(i, o)| (i, o.overlay.clone(), o.shown, o.segments.clone())).collect();
    let available: Vec<(String, String)> = match (p.doc().studies(), p.doc().current()) {
        (Some(set), Some(c)) => objects_over(set, &c.uid)
            .into_iter()
            .filter_map(|s| object_of(s).map(|h| (s, h)))
            .filter(|(_, h)| {
                let path = &h.path;
                // Not those shown already: as labels, or as the map fused over the series.
                !shown.iter().any(|(_, o, _, _)| o.source == *path)
                    && p.doc().current_fusion().is_none_or(|f| f.series != path.display().to_string())
            })
            .map(|(s, _)| (s.uid.clone(), s.title()))
            .collect(),
        _ => Vec::new(),
    };
    if p.doc().current().is_none() {
        return;
    }
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.label(RichText::new("Objects over this series").strong());
        if ui
            .small_button("Open…")
            .on_hover_text("A segmentation or parametric map (DICOM), or a NIfTI label or probability map (.nii, .nii.gz) of this head, placed by patient coordinates")
            .clicked()
            && let Some(path) = rfd::FileDialog::new().set_title("Open a segmentation or map").pick_file()
        {
            p.push(crate::ui::Command::ShowObject(ObjectSource::File(path)));
        }
    });
    for job in &p.app.object_jobs {
        ui.label(format!("Reading {}…", job.name));
    }
    for (uid, title) in &available {
        if ui.button(format!("Show {title}")).on_hover_text("Read it and draw it over this series").clicked() {
            p.push(crate::ui::Command::ShowObject(ObjectSource::Series(uid.clone())));
        }
    }
    for (i, overlay, on, segments_on) in shown {
        if let Content::Report(r) = &overlay.content {
            report_controls(p, ui, i, &overlay, on, r);
            continue;
        }
        let Content::Labels { kind, segments, .. } = &overlay.content else { continue };
        let colors = overlay.colors();
        ui.horizontal(|ui| {
            let mut v = on;
            if ui.checkbox(&mut v, &overlay.name).on_hover_text(format!("{} segmentation", kind.to_lowercase())).changed() {
                p.edit(Edit::ObjectShown(i, v));
            }
            if ui.small_button("Close").on_hover_text("Close it").clicked() {
                p.edit(Edit::ObjectClosed(i));
            }
        });
        ui.add_enabled_ui(on, |ui| {
            for (k, s) in segments.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.add_space(12.0);
                    let [r, g, b] = colors[k];
                    let (swatch, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().rect_filled(swatch, 2.0, Color32::from_rgb(r, g, b));
                    let mut v = segments_on.get(k).copied().unwrap_or(true);
                    let text = format!("{}  {:.2} mL", s.label, s.voxels as f64 * voxel_ml);
                    let hover = s.property.clone().unwrap_or_else(|| format!("segment {}", s.number));
                    if ui.checkbox(&mut v, text).on_hover_text(hover).changed() {
                        p.edit(Edit::SegmentShown { object: i, segment: k, shown: v });
                    }
                });
            }
        });
        for n in &overlay.notes {
            ui.label(RichText::new(n).color(Color32::from_rgb(230, 160, 60)));
        }
        comparison_controls(p, ui, i, &overlay);
    }
}

/// The object's agreement with the analysis: a button, then Dice, volumes and HD95 per label.
fn comparison_controls(p: &mut Panel, ui: &mut egui::Ui, i: usize, overlay: &Overlay) {
    if p.doc().current_analysis().is_none() {
        return;
    }
    let busy = p.app.compare_job.as_ref().is_some_and(|j| j.object == i);
    ui.horizontal(|ui| {
        ui.add_space(12.0);
        if busy {
            ui.label("Comparing…");
        } else if ui
            .small_button("Compare with the analysis")
            .on_hover_text("Dice, volumes and the 95th percentile Hausdorff distance of each segment against the analysis's label of the same name (or number)")
            .clicked()
        {
            p.push(crate::ui::Command::CompareObject(i));
        }
    });
    let Some((source, result)) = &p.app.object_comparison else { return };
    if *source != overlay.source {
        return;
    }
    match result {
        Err(e) => {
            ui.label(RichText::new(e).color(Color32::from_rgb(230, 120, 100)));
        }
        Ok(rows) => {
            egui::Grid::new(("compare", i)).striped(true).show(ui, |ui| {
                for h in ["label", "analysis mL", "object mL", "Dice", "HD95 mm"] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
                for (name, r) in rows {
                    ui.label(name);
                    ui.label(format!("{:.2}", r.volume_a_ml));
                    ui.label(format!("{:.2}", r.volume_b_ml));
                    ui.label(opt(r.dice, 3));
                    ui.label(opt(r.hausdorff95_mm, 2));
                    ui.end_row();
                }
            });
        }
    }
}

/// A report's groups with their values and the slices they were measured on (a click goes
/// there); its regions are drawn on those slices while it is shown.
fn report_controls(p: &mut Panel, ui: &mut egui::Ui, i: usize, overlay: &Overlay, on: bool, r: &crate::study::objects::Report) {
    ui.horizontal(|ui| {
        let mut v = on;
        if ui.checkbox(&mut v, &overlay.name).on_hover_text(r.title.clone()).changed() {
            p.edit(Edit::ObjectShown(i, v));
        }
        if ui.small_button("Close").on_hover_text("Close it").clicked() {
            p.edit(Edit::ObjectClosed(i));
        }
    });
    let Some(stack) = p.doc().current().map(|c| c.stack.clone()) else { return };
    for g in &r.groups {
        ui.horizontal_wrapped(|ui| {
            ui.add_space(12.0);
            ui.label(RichText::new(&g.title).strong());
            ui.label(g.values.join("; "));
            let mut slices: Vec<usize> = g.regions.iter().filter_map(|region| overlays::slice_of(&stack, region)).collect();
            slices.dedup();
            for k in slices {
                if ui.small_button(format!("slice {}", k + 1)).on_hover_text("Go to the slice it was measured on").clicked() {
                    p.edit(crate::ui::ViewChange::GoTo(k));
                }
            }
        });
    }
    for n in &r.notes {
        ui.label(RichText::new(n).color(Color32::from_rgb(230, 160, 60)));
    }
}

/// The regions the shown reports measured on slice `k` of the series on screen, as outlines
/// in its pixel coordinates.
pub fn report_outlines(app: &FocalApp, k: usize) -> Vec<Vec<[f64; 2]>> {
    let Some(current) = app.doc.current() else { return Vec::new() };
    let shown = app.doc.objects().filter(|(_, o)| o.shown).map(|(_, o)| o.overlay.as_ref());
    overlays::report_regions(shown, &current.stack, k).map(|region| region.outline(0.5)).collect()
}
