//! One export: analysis folder + source series → PDF, SEG, Parametric Map, Secondary Captures.
//! Everything is written into a hidden temporary folder inside the output folder and moved into
//! place only when every file is complete, so a failed export leaves nothing half-written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dcm::UidSource;
use super::objects::ExportContext;
use super::output::AnalysisOutput;
use super::pdf::{KeyImageBlock, ReportContent, write_pdf};
use super::review::{KeyImage, Review, measure};
use super::source::SourceSeries;
use super::{ExportError, NOT_FOR_DIAGNOSIS};
use crate::inference::Manifest;
use crate::inference::analysis::Insights;
use crate::inference::evidence::EvidenceInfo;
use crate::render::{
    AttentionStyle, Colormap, MaskMode, MaskStyle, OffscreenRenderer, RgbaImage, SlicePixels, SliceStyle,
    SliceUniforms, render_reference,
};
use crate::study::{Stack, StudySet, volume::percentile_window};

/// What to write.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub analysis: PathBuf,
    pub out: PathBuf,
    pub pdf: bool,
    pub seg: bool,
    pub pmap: bool,
    pub sc: bool,
    pub keep_phi: bool,
    /// Write into a folder that already holds files (replacing those of the same names).
    pub force: bool,
}

/// The prefix of an export's staging folder inside the output folder:
/// `.focal-export-<pid>-<date><time>`.
const STAGING_PREFIX: &str = ".focal-export-";

/// Removes the staging folders that exports killed before they finished left in `out` (their
/// process is gone). Linux only: elsewhere there is no cheap way to ask, and they are left.
fn remove_stale_staging(out: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(STAGING_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// What an output folder already holds, sorted by name, leaving out exports' staging folders
/// (none when it does not exist yet).
pub fn held_entries(out: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(out) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with(STAGING_PREFIX))
        .collect();
    names.sort();
    names
}

/// Refuses an output folder that holds anything but staging folders, unless `force`.
fn check_empty(out: &Path, force: bool) -> Result<(), ExportError> {
    if force {
        return Ok(());
    }
    let names = held_entries(out);
    match names.first() {
        None => Ok(()),
        Some(first) => Err(ExportError::NotEmpty {
            folder: out.display().to_string(),
            first: first.clone(),
            more: if names.len() > 1 { format!(" and {} more", names.len() - 1) } else { String::new() },
        }),
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub files: Vec<PathBuf>,
    pub deidentified: bool,
    /// Which device drew the key images.
    pub renderer: String,
    pub key_images: Vec<usize>,
}

/// Longest side of a rendered key image, in pixels.
const KEY_IMAGE_SIZE: f64 = 512.0;

/// Today's date and time (UTC) as DICOM DA and TM.
pub fn now_dicom() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// The view a key image gets when the reader marked none: manifest colours, attention on.
pub fn default_style(manifest: &Manifest, window: crate::study::WindowLevel) -> SliceStyle {
    let count = manifest
        .labels
        .iter()
        .map(|l| usize::from(l.index) + 1)
        .max()
        .unwrap_or(0);
    let mut colors = vec![[255, 255, 255]; count];
    let mut visible = vec![false; count];
    for l in &manifest.labels {
        colors[usize::from(l.index)] = l.color;
        visible[usize::from(l.index)] = l.index > 0;
    }
    SliceStyle {
        window_center: window.center,
        window_width: window.width,
        invert: false,
        attention: Some(AttentionStyle {
            colormap: Colormap::Inferno,
            opacity: 0.5,
            threshold: manifest.attention_display_range()[0],
            range: manifest.attention_display_range(),
            inside_labels: true,
        }),
        mask: Some(MaskStyle {
            mode: MaskMode::Outline,
            fill_opacity: 0.35,
            outline_width: 1,
            colors,
            visible,
        }),
    }
}

/// A slice's own window (its tags), else the 0.5–99.5 % window of its pixels (decoded only
/// then).
fn slice_window(stack: &Stack, k: usize) -> Result<crate::study::WindowLevel, ExportError> {
    if let Some(w) = stack.slices.get(k).and_then(|s| s.info().window) {
        return Ok(w);
    }
    let values = crate::study::load_slice(stack, k).map_err(|e| ExportError::Source(e.to_string()))?;
    Ok(percentile_window(&values.values, values.channels))
}

fn find_stack<'a>(set: &'a StudySet, output: &AnalysisOutput) -> Result<&'a Stack, ExportError> {
    let uid = &output.summary.series_uid;
    let series = set.find_series(uid).ok_or_else(|| {
        ExportError::Source("the analysis was made from a series that is not in the study given".into())
    })?;
    let [c, r, s] = output.summary.grid;
    series
        .stacks
        .iter()
        .find(|st| st.columns as usize == c && st.rows as usize == r && st.slices.len() == s)
        .ok_or_else(|| ExportError::Source(format!("no stack of the series matches the analysis grid {c}×{r}×{s}")))
}

/// Draws a key image with the window's pipeline (or, with no graphics adapter, its CPU twin).
fn render_key_image(
    renderer: &Option<OffscreenRenderer>,
    pixels: &std::sync::Arc<SlicePixels>,
    style: &SliceStyle,
    spacing: [f64; 2],
) -> Result<RgbaImage, ExportError> {
    let (wmm, hmm) = (pixels.columns as f64 * spacing[0], pixels.rows as f64 * spacing[1]);
    let scale = KEY_IMAGE_SIZE / wmm.max(hmm);
    let (w, h) = (
        ((wmm * scale).round() as u32).max(1),
        ((hmm * scale).round() as u32).max(1),
    );
    let dest = [0.0, 0.0, w as f32, h as f32];
    match renderer {
        Some(r) => r
            .render(pixels, style, w, h, dest)
            .map_err(|e| ExportError::Build(e.to_string())),
        None => {
            let u = SliceUniforms::for_pixels(style, pixels, [w as f32, h as f32], dest);
            let map = style.attention.map_or(Colormap::Inferno, |a| a.colormap);
            Ok(render_reference(pixels, &u, map, w, h))
        }
    }
}

/// Colour of measurement outlines, in the window and in exports.
pub const MEASUREMENT_COLOUR: [u8; 3] = [120, 230, 255];

/// Draws the outlines of the reader's measurements on slice `k` into its key image (which
/// `render_key_image` fills edge to edge with the slice); their values are listed in the
/// report's text.
fn burn_measurements(
    image: &mut RgbaImage,
    measurements: &[super::Measurement],
    k: usize,
    [columns, rows]: [usize; 2],
) {
    // Key image pixels per slice pixel, along each axis (the pixel spacing is in the layout).
    let (sx, sy) = (
        f64::from(image.width) / columns.max(1) as f64,
        f64::from(image.height) / rows.max(1) as f64,
    );
    // Those drawn on a reformatted plane are not on this slice's picture.
    for m in measurements.iter().filter(|m| m.slice == k && m.plane.is_none()) {
        let points: Vec<[f64; 2]> = m.shape.outline(0.5 / sx.min(sy)).iter().map(|p| [p[0] * sx, p[1] * sy]).collect();
        image.dots(&points, 1.2, MEASUREMENT_COLOUR);
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ExportError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| ExportError::Write(format!("{}: {e}", path.display())))?;
    Ok(path)
}

fn write_dicom(
    dir: &Path,
    name: &str,
    obj: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
) -> Result<PathBuf, ExportError> {
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes)
        .map_err(|e| ExportError::Build(format!("{name}: {e}")))?;
    write_file(dir, name, &bytes)
}

/// Runs one export. The caller has checked that `opts.out` is outside the study.
pub fn export(set: &StudySet, manifest: &Manifest, opts: &ExportOptions) -> Result<ExportSummary, ExportError> {
    let output = AnalysisOutput::read(&opts.analysis)?;
    let stack = find_stack(set, &output)?;
    let source = SourceSeries::from_stack(&output.summary.series_uid, stack)?;
    let n = source.columns * source.rows;
    let spacing = source.geometry.spacing;
    let voxel_ml = spacing.iter().product::<f64>() / 1000.0;

    let mut review = output.review.clone().unwrap_or_default();
    let names: Vec<(u8, String)> = manifest.labels.iter().map(|l| (l.index, l.name.clone())).collect();
    let confidence = |i: u8| {
        output
            .summary
            .labels
            .iter()
            .find(|l| l.index == i)
            .and_then(|l| l.mean_probability)
    };
    review.update_findings(measure(&output.labels, n, voxel_ml, &names, &confidence));
    if review.key_images.is_empty() {
        // The middle of the labelled voxels (their median slice): the centre of what the model
        // found, rather than an edge slice where false positives can pile up.
        let counts: Vec<usize> = (0..source.slices.len())
            .map(|k| output.labels[k * n..(k + 1) * n].iter().filter(|&&l| l > 0).count())
            .collect();
        let half = counts.iter().sum::<usize>() / 2;
        let mut running = 0;
        let best = counts
            .iter()
            .position(|c| {
                running += c;
                running > half
            })
            .unwrap_or(source.slices.len() / 2);
        review.key_images.push(KeyImage {
            slice: best,
            style: default_style(manifest, slice_window(stack, best)?),
        });
    }

    // Key images are drawn only for the outputs that show them (a GPU device costs time).
    let draw = opts.pdf || opts.sc;
    let renderer = draw.then(OffscreenRenderer::new).and_then(Result::ok);
    let renderer_name = match (&renderer, draw) {
        (Some(r), _) => r.adapter.clone(),
        (None, true) => "CPU reference renderer (no graphics adapter)".to_string(),
        (None, false) => "none (no key images asked for)".to_string(),
    };
    let draw_slice = |k: usize, heat: &[f32], style: &SliceStyle| -> Result<RgbaImage, ExportError> {
        let values = crate::study::load_slice(stack, k).map_err(|e| ExportError::Source(e.to_string()))?;
        let pixels = SlicePixels::new(
            source.columns,
            source.rows,
            values.channels,
            values.values,
            Some(heat[k * n..(k + 1) * n].to_vec()),
            Some(output.labels[k * n..(k + 1) * n].to_vec()),
        )
        .ok_or_else(|| ExportError::Build("slice planes do not agree in size".into()))?;
        render_key_image(&renderer, &std::sync::Arc::new(pixels), style, [spacing[0], spacing[1]])
    };
    let mut rendered = Vec::new();
    for key in review.key_images.iter().filter(|_| draw) {
        let k = key.slice.min(source.slices.len().saturating_sub(1));
        let mut image = draw_slice(k, &output.attention, &key.style)?;
        burn_measurements(&mut image, &review.measurements, k, [source.columns, source.rows]);
        rendered.push((k, key.style.clone(), image));
    }
    // Each evidence map the reader computed is drawn for the report, in its own colours.
    let mut evidence_images = Vec::new();
    if let (true, Some(values)) = (opts.pdf, &output.evidence_values) {
        for info in &output.evidence {
            let k = info.slice;
            let mut style = match review.key_images.iter().find(|key| key.slice == k) {
                Some(key) => key.style.clone(),
                None => default_style(manifest, slice_window(stack, k)?),
            };
            style.attention = Some(evidence_style(info.max));
            evidence_images.push((info.clone(), style.clone(), draw_slice(k, values, &style)?));
        }
    }

    remove_stale_staging(&opts.out);
    check_empty(&opts.out, opts.force)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| ExportError::Write(format!("{}: {e}", opts.out.display())))?;
    let stamp = now_dicom();
    let staging = opts
        .out
        .join(format!("{STAGING_PREFIX}{}-{}{}", std::process::id(), stamp.0, stamp.1));
    std::fs::create_dir_all(&staging).map_err(|e| ExportError::Write(format!("{}: {e}", staging.display())))?;
    let result = write_all(
        &staging,
        manifest,
        opts,
        &output,
        &source,
        &review,
        &rendered,
        &evidence_images,
        &renderer_name,
        stamp,
    );
    let written = match result {
        Ok(names) => names,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut files = Vec::new();
    for name in written {
        let (from, to) = (staging.join(&name), opts.out.join(&name));
        if let Err(e) = std::fs::rename(&from, &to) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(ExportError::Write(format!("{}: {e}", to.display())));
        }
        files.push(to);
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(ExportSummary {
        files,
        deidentified: !opts.keep_phi,
        renderer: renderer_name,
        key_images: rendered.iter().map(|r| r.0).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_all(
    dir: &Path,
    manifest: &Manifest,
    opts: &ExportOptions,
    output: &AnalysisOutput,
    source: &SourceSeries,
    review: &Review,
    rendered: &[(usize, SliceStyle, RgbaImage)],
    evidence: &[(EvidenceInfo, SliceStyle, RgbaImage)],
    renderer_name: &str,
    (date, time): (String, String),
) -> Result<Vec<String>, ExportError> {
    let ctx = ExportContext {
        source,
        uids: UidSource::new(),
        deidentify: !opts.keep_phi,
        date,
        time,
        model_name: output.summary.model.name.clone(),
        model_version: output.summary.model.version.clone(),
        creator: review.reader.clone(),
        edited: review.edited,
    };
    let mut names = Vec::new();
    if opts.seg {
        let obj = ctx.segmentation(&output.labels, &manifest.labels)?;
        write_dicom(dir, "segmentation.dcm", &obj)?;
        names.push("segmentation.dcm".to_string());
    }
    if opts.pmap {
        let obj = ctx.parametric_map(&output.attention)?;
        write_dicom(dir, "attention-map.dcm", &obj)?;
        names.push("attention-map.dcm".to_string());
    }
    if opts.sc {
        for (i, (k, _, image)) in rendered.iter().enumerate() {
            let obj = ctx.secondary_capture(image, *k, i as i64 + 1)?;
            let name = format!("key-image-{}.dcm", i + 1);
            write_dicom(dir, &name, &obj)?;
            names.push(name);
        }
    }
    if opts.pdf {
        let content = report_content(manifest, opts, output, source, review, rendered, evidence, renderer_name);
        let pdf = write_pdf(content);
        write_file(dir, "report.pdf", &pdf)?;
        names.push("report.pdf".to_string());
        let obj = ctx.encapsulated_pdf(&pdf, "Focal analysis report")?;
        write_dicom(dir, "report-pdf.dcm", &obj)?;
        names.push("report-pdf.dcm".to_string());
    }
    let record = serde_json::json!({
        "files": names,
        "deidentified": !opts.keep_phi,
        "deidentification": if opts.keep_phi { "none: --keep-phi was given" } else { "PS3.15 Basic Application Level Confidentiality Profile, UIDs remapped" },
        "key_image_slices": rendered.iter().map(|r| r.0).collect::<Vec<_>>(),
        "renderer": renderer_name,
        "labels_reviewed": review.edited,
        "note": NOT_FOR_DIAGNOSIS,
    });
    let text = serde_json::to_string_pretty(&record).map_err(|e| ExportError::Build(e.to_string()))?;
    write_file(dir, "export.json", text.as_bytes())?;
    names.push("export.json".to_string());
    Ok(names)
}

/// How an evidence map is drawn: its own colour map, from 0 to its largest value.
pub fn evidence_style(max: f32) -> AttentionStyle {
    AttentionStyle {
        colormap: Colormap::Viridis,
        opacity: 0.6,
        threshold: 0.1 * max,
        range: [0.0, max.max(1e-6)],
        inside_labels: false,
    }
}

/// The report's lines on what the model relied on: the deletion test of its attention,
/// the evidence maps computed, and which series it used.
pub fn reliance_lines(insights: &Insights, evidence: &[EvidenceInfo], deidentify: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for p in &insights.postprocess {
        lines.push(format!("Post-processing: {}.", p.describe()));
    }
    match &insights.faithfulness {
        Some(f) => lines.push(format!("Attention faithfulness. {}", f.describe())),
        None => lines.push("Attention faithfulness: not measured for this analysis.".into()),
    }
    if let Some(share) = insights.attention_in_brain {
        let placement = crate::inference::analysis::describe_attention_in_brain(share);
        lines.push(format!("Attention placement: {placement}."));
    }
    if evidence.is_empty() {
        lines.push("No occlusion evidence map was computed (Analysis tab, or focal analyze --evidence-slice).".into());
    } else {
        let slices: Vec<String> = evidence.iter().map(|e| (e.slice + 1).to_string()).collect();
        lines.push(format!(
            "Occlusion evidence maps (shown with the key images) for slice {}: each {}×{} mm patch deleted in turn through the same model; brighter = the labels lost more probability without it.",
            slices.join(", "),
            evidence[0].patch_pixels,
            evidence[0].patch_pixels
        ));
    }
    for s in &insights.slots {
        // A de-identified report names no source UID or description (PS3.15 removes both).
        let which = if deidentify {
            String::new()
        } else {
            format!(
                " {} ({})",
                s.description.clone().unwrap_or_else(|| "no description".into()),
                s.series_uid
            )
        };
        lines.push(format!(
            "Series in slot {}:{which} covering {:.0}% of the analysed volume.",
            s.slot,
            s.coverage * 100.0
        ));
        for w in &s.warnings {
            lines.push(format!("Warning on the series in slot {}: {w}.", s.slot));
        }
    }
    lines
}

/// Per label, the mean weight the model gave each series (only with two or more series).
pub fn modality_table(insights: &Insights) -> Vec<Vec<String>> {
    if insights.slots.len() < 2 {
        return Vec::new();
    }
    let mut header = vec!["Label".to_string()];
    header.extend(insights.slots.iter().map(|s| format!("{} weight", s.slot)));
    let mut rows = vec![header];
    for r in &insights.modality_reliance {
        let mut row = vec![r.label.clone()];
        row.extend(
            r.slots
                .iter()
                .take(insights.slots.len())
                .map(|w| w.mean_weight.map_or("–".into(), |v| format!("{:.0}%", v * 100.0))),
        );
        rows.push(row);
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn report_content(
    manifest: &Manifest,
    opts: &ExportOptions,
    output: &AnalysisOutput,
    source: &SourceSeries,
    review: &Review,
    rendered: &[(usize, SliceStyle, RgbaImage)],
    evidence: &[(EvidenceInfo, SliceStyle, RgbaImage)],
    renderer_name: &str,
) -> ReportContent {
    let s = source.geometry.spacing;
    let mut study_lines = vec![format!(
        "{} series, {} images of {} × {} pixels, voxel {:.2} × {:.2} × {:.2} mm",
        source.modality.clone().unwrap_or_else(|| "?".into()),
        source.slices.len(),
        source.columns,
        source.rows,
        s[0],
        s[1],
        s[2]
    )];
    let identity_line = if opts.keep_phi {
        let p = &source.patient;
        study_lines.push(format!(
            "Patient: {}, ID {}, born {}",
            p.name.clone().unwrap_or_default(),
            p.id.clone().unwrap_or_default(),
            p.birth_date.clone().unwrap_or_default()
        ));
        study_lines.push(format!(
            "Study: {} {}, accession {}",
            source.study_date.clone().unwrap_or_default(),
            source.study_description.clone().unwrap_or_default(),
            source.accession.clone().unwrap_or_default()
        ));
        "Patient identifiers are KEPT in this report and its DICOM files (--keep-phi was given).".to_string()
    } else {
        "Patient identifiers removed: this report and its DICOM files are de-identified (PS3.15 Basic Profile)."
            .to_string()
    };
    let m = &output.summary.model;
    let verified = if m.verified_against_manifest {
        "verified against its manifest".to_string()
    } else {
        "NOT VERIFIED against its manifest (run with --allow-unverified-model)".to_string()
    };
    let p = &output.summary.provider;
    let mut model_lines = vec![
        format!(
            "{} {} ({})",
            m.name,
            m.version,
            manifest.title.clone().unwrap_or_default()
        ),
        {
            let mut parts: Vec<String> = m.extent_sha256.iter().map(|e| format!("brain extent {e}")).collect();
            parts.extend(m.extractor_sha256.iter().map(|e| format!("brain extractor {e}")));
            match parts.is_empty() {
                true => format!("sha256 {}, {verified}", m.sha256),
                false => format!("sha256 {} ({}), {verified}", m.sha256, parts.join(", ")),
            }
        },
        match &p.fallback_reason {
            Some(why) => format!("Ran on {} (CUDA not used: {why})", p.name),
            None => format!("Ran on {}", p.name),
        },
        format!("Key images drawn by {renderer_name}."),
    ];
    if review.edited {
        model_lines.push("The reader corrected the model's labels; volumes and exports use the corrected map.".into());
    }
    let mut findings = vec![
        ["Label", "Volume (mL)", "Slices", "Mean confidence", "Reader", "Note"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for f in &review.findings {
        findings.push(vec![
            f.name.clone(),
            format!("{:.1}", f.volume_ml),
            f.slice_range
                .map_or("–".into(), |[a, b]| format!("{}–{}", a + 1, b + 1)),
            f.mean_confidence.map_or("–".into(), |c| format!("{:.0}%", c * 100.0)),
            f.decision.name().to_string(),
            f.note.clone(),
        ]);
    }
    let sign_off = match (&review.signed_at, review.reader.trim()) {
        (Some(t), r) if !r.is_empty() => format!("Signed by {r} on {t}."),
        (Some(t), _) => format!("Signed on {t}."),
        (None, _) => "Not signed by a reader.".to_string(),
    };
    let mut limits = vec![
        manifest.intended_use.clone().unwrap_or_else(|| NOT_FOR_DIAGNOSIS.to_string()),
        "The attention map shows which pixels the model let through to its segmentation; it is not a finding and not a diagnosis. Its faithfulness on this series is measured above.".into(),
    ];
    limits.extend(manifest.limits.iter().cloned());
    if let Some(serde_json::Value::Object(groups)) = &manifest.metrics {
        // The pipeline as shipped: the card compares it with its parts (the "without" twins).
        let ablation = |g: &str| ["_tissue_model_only", "_without_fluid_rim", "_without_postprocessing"].iter().any(|s| g.ends_with(s));
        for (group, values) in groups.iter().filter(|(g, _)| !ablation(g)) {
            if let serde_json::Value::Object(values) = values {
                // The brain-mask agreement of each held-out case (the card has the rest).
                let parts: Vec<String> = values
                    .iter()
                    .filter(|(k, _)| *k == "dice_brain_vs_mask" || *k == "labelled_outside_mask_ml")
                    .filter_map(|(k, v)| v.as_f64().map(|v| format!("{} {v:.3}", k.replace('_', " "))))
                    .collect();
                if !parts.is_empty() {
                    limits.push(format!("Held-out results ({group}): {}.", parts.join(", ")));
                }
            }
        }
    }
    let key_images = rendered
        .iter()
        .map(|(k, style, image)| {
            let position = source.position(*k);
            let legend = style
                .mask
                .as_ref()
                .map(|mask| {
                    manifest
                        .labels
                        .iter()
                        .filter(|l| mask.visible.get(usize::from(l.index)).copied().unwrap_or(false))
                        .map(|l| (l.name.clone(), l.color))
                        .collect()
                })
                .unwrap_or_default();
            KeyImageBlock {
                image: image.clone(),
                caption: format!(
                    "Slice {} of {} (position {:.1}, {:.1}, {:.1} mm LPS). Window {:.0}/{:.0}{}. Mask: {}. Attention: {}.",
                    k + 1,
                    source.slices.len(),
                    position[0],
                    position[1],
                    position[2],
                    style.window_width,
                    style.window_center,
                    if style.invert { ", inverted" } else { "" },
                    style.mask.as_ref().map_or("hidden".into(), |m| m.mode.name().to_lowercase()),
                    style.attention.map_or("hidden".into(), |a| format!(
                        "{} at {:.0}% opacity, shown from {:.2}{}",
                        a.colormap.name(),
                        a.opacity * 100.0,
                        a.threshold,
                        if a.inside_labels { ", inside the labelled brain only" } else { "" }
                    )),
                ),
                colour_bar: style.attention.map(|a| (a.colormap, a.range, a.threshold)),
                heatmap: "attention".into(),
                legend,
            }
        })
        .chain(evidence.iter().map(|(info, style, image)| KeyImageBlock {
            image: image.clone(),
            caption: format!(
                "Evidence map of slice {} of {} for {} ({} patches of {}×{} mm, {:.1} s): the mean drop of the model's probability of its own labels when each patch is deleted. Largest drop {:.3}.",
                info.slice + 1,
                source.slices.len(),
                info.label
                    .and_then(|i| manifest.labels.iter().find(|l| l.index == i))
                    .map_or("every label".to_string(), |l| l.name.clone()),
                info.patches,
                info.patch_pixels,
                info.patch_pixels,
                info.seconds,
                info.max
            ),
            colour_bar: style.attention.map(|a| (a.colormap, a.range, a.threshold)),
            heatmap: "evidence".into(),
            legend: Vec::new(),
        }))
        .collect();
    let volumes: Vec<(u8, f64)> = review
        .findings
        .iter()
        .filter_map(|f| manifest.labels.iter().find(|l| l.name == f.name).map(|l| (l.index, f.volume_ml)))
        .collect();
    ReportContent {
        title: "Focal analysis report".into(),
        warning: NOT_FOR_DIAGNOSIS.into(),
        study_lines,
        identity_line,
        model_lines,
        findings,
        warnings: crate::inference::analysis::volume_warnings(manifest, &volumes),
        measurements: {
            let unit = if source.modality.as_deref() == Some("CT") { " HU" } else { "" };
            review.measurements.iter().map(|m| m.describe(unit)).collect()
        },
        reliance_lines: reliance_lines(&output.summary.insights, &output.evidence, !opts.keep_phi),
        modality_table: modality_table(&output.summary.insights),
        impression: review.impression.clone(),
        sign_off,
        limits,
        key_images,
    }
}
