//! `focal snapshot`: one view of a series as the window draws it — labels, attention,
//! segmentations, parametric and NIfTI maps other tools wrote — into a PNG, for papers and
//! scripted quality control.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::inference::Manifest;
use crate::report::snapshot::{SnapshotOptions, View, snapshot as draw};
use crate::study::reformat::Plane;
use crate::study::{Progress, StudySet, WindowLevel};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PlaneArg {
    Axial,
    Coronal,
    Sagittal,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MaskArg {
    Fill,
    Outline,
    Both,
}

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// DICOM files, folders or DICOMDIRs of the study.
    #[arg(required = true)]
    pub study: Vec<PathBuf>,
    /// The series: UID, unique UID prefix, number or description; the analysis's series when
    /// --analysis is given, else the one `focal analyze` would take.
    #[arg(long)]
    pub series: Option<String>,
    /// Acquired slice to draw, from 1 (default: the middle one).
    #[arg(long, conflicts_with_all = ["plane", "at"])]
    pub slice: Option<usize>,
    /// Draw a plane reformatted through the volume instead of an acquired slice.
    #[arg(long, value_enum)]
    pub plane: Option<PlaneArg>,
    /// Where the plane lies, mm along its normal in patient coordinates (axial: z, coronal:
    /// y, sagittal: x, as viewers show them; default: through the volume's centre).
    #[arg(long, requires = "plane", allow_hyphen_values = true)]
    pub at: Option<f64>,
    /// Segmentations, parametric maps (DICOM) or NIfTI label / probability maps to draw over the
    /// series, placed by patient coordinates.
    #[arg(long = "overlay", value_name = "FILE")]
    pub overlays: Vec<PathBuf>,
    /// An analysis folder whose labels and attention to draw.
    #[arg(long)]
    pub analysis: Option<PathBuf>,
    /// Display window as CENTER,WIDTH (default: the series' own).
    #[arg(long, value_parser = parse_window, allow_hyphen_values = true)]
    pub window: Option<WindowLevel>,
    /// How labels are drawn.
    #[arg(long, value_enum, default_value = "both")]
    pub labels: MaskArg,
    /// Longest side of the picture, in pixels.
    #[arg(long, default_value_t = 768)]
    pub size: u32,
    /// The PNG to write (outside the study's folders).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_window(s: &str) -> Result<WindowLevel, String> {
    let (c, w) = s.split_once(',').ok_or("give the window as CENTER,WIDTH, e.g. 40,400")?;
    let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    match (parse(c), parse(w)) {
        (Some(center), Some(width)) if width > 0.0 => Ok(WindowLevel { center, width }),
        _ => Err(format!("{s:?}: the centre must be a number and the width a positive number")),
    }
}

pub fn snapshot(args: &SnapshotArgs) -> anyhow::Result<i32> {
    let out = crate::outdir::absolute_resolved(&args.out);
    if let Some(dir) = out.parent() {
        crate::outdir::ensure_outside_study(dir, &args.study)?;
    }
    if out.extension().is_none_or(|e| !e.eq_ignore_ascii_case("png")) {
        anyhow::bail!("{}: the snapshot is a PNG; name it .png", args.out.display());
    }
    let set =
        StudySet::open(&args.study, &|_: Progress| {}, &AtomicBool::new(false)).context("scanning the study failed")?;
    let manifest = Manifest::load(&crate::inference::manifest::default_manifest_path()).ok();
    let analysis = match &args.analysis {
        Some(dir) => Some(crate::report::output::AnalysisOutput::read(dir).with_context(|| format!("reading {}", dir.display()))?),
        None => None,
    };
    let selector = args.series.clone().or_else(|| analysis.as_ref().map(|a| a.summary.series_uid.clone()));
    let modalities = manifest.as_ref().map(|m| m.input.modalities.clone()).unwrap_or_default();
    let choice = set.choose_series(selector.as_deref(), &modalities)?;
    let stack = choice.stack;
    println!("series: {}", choice.series.title());
    let volume = crate::study::load_volume(stack, &|_: Progress| {}, &AtomicBool::new(false)).context("decoding the series failed")?;
    for s in &volume.skipped {
        println!("WARNING: slice {} skipped ({}): {}", s.index + 1, s.path.display(), s.reason);
    }
    let mut overlays = Vec::new();
    // An object that cannot be placed is named with why; the others are still drawn.
    for path in &args.overlays {
        match crate::inference::overlays::load(path, stack) {
            Ok(o) => {
                println!("overlay: {} ({})", o.name, describe(&o));
                if let crate::inference::overlays::Content::Report(r) = &o.content {
                    for g in &r.groups {
                        let slices: Vec<String> = g
                            .regions
                            .iter()
                            .filter_map(|region| crate::inference::overlays::slice_of(stack, region))
                            .map(|k| (k + 1).to_string())
                            .collect();
                        let on = if slices.is_empty() { String::new() } else { format!(" (slice {})", slices.join(", ")) };
                        println!("  {}: {}{on}", g.title, g.values.join("; "));
                    }
                }
                overlays.push(o);
            }
            Err(e) => println!("WARNING: {} is not drawn: {e}", path.display()),
        }
    }
    let view = match (args.plane, args.slice) {
        (Some(p), _) => View::Plane(
            match p {
                PlaneArg::Axial => Plane::Axial,
                PlaneArg::Coronal => Plane::Coronal,
                PlaneArg::Sagittal => Plane::Sagittal,
            },
            args.at,
        ),
        (None, Some(0)) => anyhow::bail!("slices are counted from 1"),
        (None, k) => View::Slice(k.map(|k| k - 1)),
    };
    let opts = SnapshotOptions {
        view,
        window: args.window,
        size: args.size.clamp(16, 8192),
        mask_mode: match args.labels {
            MaskArg::Fill => crate::render::MaskMode::Fill,
            MaskArg::Outline => crate::render::MaskMode::Outline,
            MaskArg::Both => crate::render::MaskMode::FillAndOutline,
        },
        fill_opacity: 0.4,
        out,
    };
    let summary = draw(stack, Arc::new(volume), analysis.as_ref(), manifest.as_ref(), &overlays, &opts)?;
    for n in &summary.notes {
        println!("note: {n}");
    }
    println!(
        "wrote {} ({}×{}, {}; drawn by {})",
        summary.path.display(),
        summary.width,
        summary.height,
        summary.view,
        summary.renderer
    );
    Ok(crate::exit::OK)
}

/// An overlay in a few words: its segments or its map's range.
pub fn describe(o: &crate::inference::overlays::Overlay) -> String {
    use crate::inference::overlays::Content;
    match &o.content {
        Content::Labels { kind, segments, .. } => format!(
            "{} {}: {}",
            kind.to_lowercase(),
            if segments.len() == 1 { "segment" } else { "segments" },
            segments.iter().map(|s| s.label.as_str()).collect::<Vec<_>>().join(", ")
        ),
        Content::Report(r) => format!("{}, {} group(s)", r.title, r.groups.len()),
        Content::Map { quantity, units, range, coverage, .. } => format!(
            "{quantity}{}, {:.4} to {:.4}, covering {:.0}% of the series",
            if units.is_empty() { String::new() } else { format!(" ({units})") },
            range[0],
            range[1],
            coverage * 100.0
        ),
    }
}
