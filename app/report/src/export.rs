//! One export: analysis folder + source series → PDF, SEG, Parametric Map, Secondary Captures.
//! Everything is written into a hidden temporary folder inside the output folder and moved into
//! place only when every file is complete, so a failed export leaves nothing half-written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dcm::UidSource;
use super::objects::{ATTENTION_MAP, ExportContext, KEY_REGION_MAP, KEY_REGION_SEG, LABEL_SEG};
use super::output::AnalysisOutput;
use super::pdf::write_pdf;
use super::review::{KeyImage, Review, measure};
use super::source::SourceSeries;
use super::content::{KEY_REGION_OUTLINE, RegionImage, evidence_style, key_region_style, report_content};
use super::{ExportError, NOT_FOR_DIAGNOSIS};
use crate::inference::Manifest;
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
    /// The measurement report as DICOM SR (TID 1500).
    pub sr: bool,
    pub keep_phi: bool,
    /// Write into a folder that already holds files (replacing those of the same names).
    pub force: bool,
    /// Key regions accepted here (by id) in addition to the reader's review: they go into the
    /// key-region SEG and the report says so.
    pub accept_regions: Vec<u32>,
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
    dicom_date_time(std::time::SystemTime::now())
}

/// A moment as a person reads it: "YYYY-MM-DD HH:MM UTC".
pub fn utc_text(t: std::time::SystemTime) -> String {
    let (d, t) = dicom_date_time(t);
    format!("{}-{}-{} {}:{} UTC", &d[..4], &d[4..6], &d[6..], &t[..2], &t[2..4])
}

/// A moment (UTC) as DICOM DA and TM.
pub fn dicom_date_time(t: std::time::SystemTime) -> (String, String) {
    let secs = t
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
pub(crate) fn slice_window(stack: &Stack, k: usize) -> Result<crate::study::WindowLevel, ExportError> {
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
pub(crate) fn render_key_image(
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
pub(crate) fn burn_measurements(
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

/// Key regions drawn in a report, the largest first.
const MAX_REGION_IMAGES: usize = 6;

/// Outlines region `id` of a slice's region map (`ids`, one per pixel) on its key image: each
/// region pixel with a 4-neighbour outside the region is marked.
fn burn_region_outline(image: &mut RgbaImage, ids: &[u8], id: u8, [columns, rows]: [usize; 2]) {
    let (sx, sy) = (
        f64::from(image.width) / columns.max(1) as f64,
        f64::from(image.height) / rows.max(1) as f64,
    );
    let at = |x: i64, y: i64| x >= 0 && y >= 0 && (x as usize) < columns && (y as usize) < rows && ids[y as usize * columns + x as usize] == id;
    let mut points = Vec::new();
    for y in 0..rows as i64 {
        for x in 0..columns as i64 {
            if at(x, y) && [(-1, 0), (1, 0), (0, -1), (0, 1)].iter().any(|(dx, dy)| !at(x + dx, y + dy)) {
                points.push([(x as f64 + 0.5) * sx, (y as f64 + 0.5) * sy]);
            }
        }
    }
    image.dots(&points, 0.6 * sx.min(sy).max(1.0), KEY_REGION_OUTLINE);
}

pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ExportError> {
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

/// Writes an export's files atomically: stale staging folders of dead exports are removed, a
/// non-empty `out` is refused unless `force`, `write` fills a staging folder inside `out`, and
/// each file it names is then renamed into place. On failure the staging folder goes and
/// nothing half-written is left. The paths written, in `write`'s order.
pub(crate) fn write_staged(
    out: &Path,
    force: bool,
    write: impl FnOnce(&Path) -> Result<Vec<String>, ExportError>,
) -> Result<Vec<PathBuf>, ExportError> {
    remove_stale_staging(out);
    check_empty(out, force)?;
    std::fs::create_dir_all(out).map_err(|e| ExportError::Write(format!("{}: {e}", out.display())))?;
    let stamp = now_dicom();
    let staging = out.join(format!("{STAGING_PREFIX}{}-{}{}", std::process::id(), stamp.0, stamp.1));
    std::fs::create_dir_all(&staging).map_err(|e| ExportError::Write(format!("{}: {e}", staging.display())))?;
    let written = match write(&staging) {
        Ok(names) => names,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut files = Vec::new();
    for name in written {
        let (from, to) = (staging.join(&name), out.join(&name));
        if let Err(e) = std::fs::rename(&from, &to) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(ExportError::Write(format!("{}: {e}", to.display())));
        }
        files.push(to);
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(files)
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
    for &id in &opts.accept_regions {
        if !output.summary.insights.key_regions.iter().flatten().any(|r| r.id == id) {
            return Err(ExportError::Analysis(format!(
                "--accept-region {id}: the analysis has no key region {id} (it has {})",
                match output.summary.insights.key_regions.as_deref() {
                    None | Some([]) => "none".to_string(),
                    Some(rs) => rs.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(", "),
                }
            )));
        }
        review.set_region(id, Some(super::Decision::Accepted), None);
    }
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

    // Each key region on the slice where it is largest, its score shown and its edge outlined.
    let mut region_images = Vec::new();
    if let (true, Some((score, ids))) = (opts.pdf, &output.key_regions) {
        for r in output.summary.insights.key_regions.iter().flatten().take(MAX_REGION_IMAGES) {
            let id = u8::try_from(r.id).unwrap_or(0);
            let count = |k: usize| ids[k * n..(k + 1) * n].iter().filter(|&&v| v == id).count();
            let Some(k) = (0..source.slices.len()).max_by_key(|&k| count(k)).filter(|&k| count(k) > 0) else {
                continue;
            };
            let mut style = default_style(manifest, slice_window(stack, k)?);
            style.attention = Some(key_region_style());
            style.mask = None;
            let mut image = draw_slice(k, score, &style)?;
            burn_region_outline(&mut image, &ids[k * n..(k + 1) * n], id, [source.columns, source.rows]);
            region_images.push((r.clone(), k, style, image));
        }
    }

    let files = write_staged(&opts.out, opts.force, |staging| {
        write_all(
            staging,
            manifest,
            opts,
            &output,
            &source,
            &review,
            &rendered,
            &evidence_images,
            &region_images,
            &renderer_name,
            now_dicom(),
        )
    })?;
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
    regions: &[RegionImage],
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
        let obj = ctx.segmentation(&output.labels, &manifest.labels, &LABEL_SEG)?;
        write_dicom(dir, "segmentation.dcm", &obj)?;
        names.push("segmentation.dcm".to_string());
        // The key regions the reader accepted, each a segment of their own SEG.
        let accepted: Vec<u32> = output
            .summary
            .insights
            .key_regions
            .iter()
            .flatten()
            .map(|r| r.id)
            .filter(|&id| review.region(id).decision == super::Decision::Accepted)
            .collect();
        if let (Some((_, ids)), false) = (&output.key_regions, accepted.is_empty()) {
            let keep: Vec<u8> = ids.iter().map(|&v| if accepted.contains(&u32::from(v)) { v } else { 0 }).collect();
            let segments: Vec<crate::inference::manifest::Label> = accepted
                .iter()
                .filter_map(|&id| u8::try_from(id).ok())
                .map(|id| crate::inference::manifest::Label {
                    index: id,
                    name: format!("Key region {id}"),
                    color: [255, 210, 0],
                    expected_ml: None,
                })
                .collect();
            let obj = ctx.segmentation(&keep, &segments, &KEY_REGION_SEG)?;
            write_dicom(dir, "key-regions-seg.dcm", &obj)?;
            names.push("key-regions-seg.dcm".to_string());
        }
    }
    if opts.sr {
        // Volumes refer to their segments in the SEG written beside it (if it is).
        let segments: Vec<(u8, u16)> =
            manifest.labels.iter().filter(|l| l.index > 0).enumerate().map(|(i, l)| (l.index, i as u16 + 1)).collect();
        let seg = opts.seg.then(|| super::sr::SegReference {
            series_uid: ctx.uids.uid(LABEL_SEG.key),
            instance_uid: ctx.uids.uid(&format!("{} instance", LABEL_SEG.key)),
            segments,
        });
        let obj = ctx.measurement_report(review, &manifest.labels, seg.as_ref())?;
        write_dicom(dir, "measurements-sr.dcm", &obj)?;
        names.push("measurements-sr.dcm".to_string());
    }
    if opts.pmap {
        let obj = ctx.parametric_map(&output.attention, &ATTENTION_MAP)?;
        write_dicom(dir, "attention-map.dcm", &obj)?;
        names.push("attention-map.dcm".to_string());
        if let Some((score, _)) = &output.key_regions {
            let obj = ctx.parametric_map(score, &KEY_REGION_MAP)?;
            write_dicom(dir, "key-region-score.dcm", &obj)?;
            names.push("key-region-score.dcm".to_string());
        }
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
        let content = report_content(manifest, opts, output, source, review, rendered, evidence, regions, renderer_name);
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
