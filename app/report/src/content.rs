//! What the analysis report says: its text and tables from the analysis, the review and the
//! source series (`report_content`), for `pdf.rs` to lay out; the evidence maps' display.

use super::output::AnalysisOutput;
use super::pdf::{KeyImageBlock, ReportContent};
use super::review::Review;
use super::source::SourceSeries;
use super::{ExportOptions, NOT_FOR_DIAGNOSIS};
use crate::inference::Manifest;
use crate::inference::analysis::Insights;
use crate::inference::evidence::EvidenceInfo;
use crate::render::{AttentionStyle, Colormap, RgbaImage, SliceStyle};

/// A key region's key image: the region, the slice it is drawn on, how, and the picture.
pub(crate) type RegionImage = (crate::inference::key_regions::KeyRegion, usize, SliceStyle, RgbaImage);

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

/// How the key regions' score is drawn, in the window and the report: from 3 spreads from
/// healthy tissue (where regions grow; less is not shown) to 12.
pub fn key_region_style() -> AttentionStyle {
    AttentionStyle {
        colormap: Colormap::Turbo,
        opacity: 0.6,
        threshold: 3.0,
        range: [3.0, 12.0],
        inside_labels: false,
    }
}

/// Colour of the key regions' outlines, in the window and in key images (green: no label's
/// colour, nor the colour maps' ends).
pub const KEY_REGION_OUTLINE: [u8; 3] = [60, 255, 60];

/// The key regions as a table (the first row is the header), each with the reader's verdict;
/// None when the analysis did not look for them.
pub fn key_region_table(insights: &Insights, review: &Review) -> Option<Vec<Vec<String>>> {
    let regions = insights.key_regions.as_ref()?;
    let mut rows = vec![
        ["Region", "Volume (mL)", "Slices", "Centre LPS (mm)", "Peak / mean", "Series (share, direction)", "Where"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for r in regions {
        let verdict = review.region(r.id);
        let note = if verdict.note.trim().is_empty() { String::new() } else { format!(": {}", verdict.note.trim()) };
        rows.push(vec![
            format!("Region {} ({}{note})", r.id, verdict.decision.name()),
            format!("{:.2}", r.volume_ml),
            format!("{}–{}", r.slices[0], r.slices[1]),
            r.centre_lps_mm.map_or("–".into(), |c| format!("{:.0}, {:.0}, {:.0}", c[0], c[1], c[2])),
            format!("{:.1} / {:.1}", r.peak_score, r.mean_score),
            r.series_summary(),
            r.location.clone(),
        ]);
    }
    Some(rows)
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

/// The patient's and the study's identifiers, as a report that keeps them (--keep-phi) shows
/// them under "Study".
pub(crate) fn identifier_lines(
    p: &crate::study::PatientInfo,
    study_date: &Option<String>,
    study_description: &Option<String>,
    accession: &Option<String>,
) -> [String; 2] {
    [
        format!(
            "Patient: {}, ID {}, born {}",
            p.name.clone().unwrap_or_default(),
            p.id.clone().unwrap_or_default(),
            p.birth_date.clone().unwrap_or_default()
        ),
        format!(
            "Study: {} {}, accession {}",
            study_date.clone().unwrap_or_default(),
            study_description.clone().unwrap_or_default(),
            accession.clone().unwrap_or_default()
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report_content(
    manifest: &Manifest,
    opts: &ExportOptions,
    output: &AnalysisOutput,
    source: &SourceSeries,
    review: &Review,
    rendered: &[(usize, SliceStyle, RgbaImage)],
    evidence: &[(EvidenceInfo, SliceStyle, RgbaImage)],
    regions: &[RegionImage],
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
        study_lines.extend(identifier_lines(
            &source.patient,
            &source.study_date,
            &source.study_description,
            &source.accession,
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
        .chain(regions.iter().map(|(r, k, style, image)| KeyImageBlock {
            image: image.clone(),
            caption: format!(
                "Key region {} on slice {} of {} (outlined): {}. The colours are each voxel's departure from this scan's healthy tissue, in spreads.",
                r.id,
                k + 1,
                source.slices.len(),
                r.describe()
            ),
            colour_bar: style.attention.map(|a| (a.colormap, a.range, a.threshold)),
            heatmap: "departure".into(),
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
        key_regions: key_region_table(&output.summary.insights, review),
        key_regions_set_aside: output.summary.insights.key_regions_set_aside.iter().map(|r| r.describe()).collect(),
        impression: review.impression.clone(),
        sign_off,
        limits,
        key_images,
    }
}
