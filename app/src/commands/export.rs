//! `focal export`: analysis folder + study → de-identified PDF report and DICOM objects; without
//! an analysis, a picture report (a PDF of the series' images) for what cannot be analysed.

use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::inference::Manifest;
use crate::report::{self, ExportOptions};
use crate::study::{Progress, StudySet};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// DICOM files, folders or a DICOMDIR holding the analysed study.
    #[arg(required = true)]
    pub study: Vec<PathBuf>,
    /// The analysis: a folder `focal analyze` wrote, or the id of one the window kept (`focal
    /// analyses` lists them; 4 or more of its hex digits). Without it (and without --latest), a
    /// picture report: the series' images in a PDF, no analysis (for radiographs, ultrasound and
    /// other images without a patient position, which the model cannot analyse).
    #[arg(long)]
    pub analysis: Option<PathBuf>,
    /// The analysis the window kept most recently of a series of this study.
    #[arg(long, conflicts_with = "analysis")]
    pub latest: bool,
    /// The series of a picture report (UID; default: the study's largest stack).
    #[arg(long, conflicts_with_all = ["analysis", "latest"])]
    pub series: Option<String>,
    /// Output folder (created; never a folder of the study's files).
    #[arg(long)]
    pub out: PathBuf,
    /// PDF report (all four when none of --pdf/--seg/--pmap/--sc is given).
    #[arg(long)]
    pub pdf: bool,
    /// DICOM Segmentation of the (reviewed) labels.
    #[arg(long)]
    pub seg: bool,
    /// DICOM Parametric Map of the attention values.
    #[arg(long)]
    pub pmap: bool,
    /// DICOM Secondary Capture of each key image.
    #[arg(long)]
    pub sc: bool,
    /// The measurement report as DICOM SR (TID 1500): the reader's measurements, the label
    /// volumes (referencing the SEG's segments) and the verdicts.
    #[arg(long)]
    pub sr: bool,
    /// Keep patient identifiers (exports are de-identified by default).
    #[arg(long)]
    pub keep_phi: bool,
    /// Write into an output folder that already holds files, replacing those of the same names
    /// (without it such a folder is refused).
    #[arg(long)]
    pub force: bool,
    /// Model manifest (default: the bundled models/brain-tissue.json).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Accept key region N (repeatable), as a reader would in the Review tab: accepted regions
    /// go into their own DICOM SEG (key-regions-seg.dcm) and the report marks them.
    #[arg(long = "accept-region", value_name = "N")]
    pub accept_regions: Vec<u32>,
}

/// The analysis folder an export reads: the folder given, a kept analysis by id, or the latest
/// kept analysis of the study's series; `None` for a picture report.
fn analysis_folder(args: &ExportArgs, set: &StudySet) -> anyhow::Result<Option<PathBuf>> {
    match &args.analysis {
        Some(dir) if dir.is_dir() => return Ok(Some(dir.clone())),
        Some(id) => {
            let root = crate::places::analyses_dir()?;
            return Ok(Some(report::saved::find(&root, &id.to_string_lossy())?.dir));
        }
        None if !args.latest => return Ok(None),
        None => {}
    }
    let root = crate::places::analyses_dir()?;
    let (kept, _) = report::saved::list(&root);
    let latest = kept
        .into_iter()
        .find(|k| set.find_series(&k.summary.series_uid).is_some())
        .ok_or_else(|| report::ExportError::Analysis(format!("no kept analysis of a series of this study in {}", root.display())))?;
    println!("analysis {} ({}, {})", latest.id, report::export::utc_text(latest.modified), latest.review_state());
    Ok(Some(latest.dir))
}

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    crate::outdir::ensure_outside_study(&args.out, &args.study)?;
    let set =
        StudySet::open(&args.study, &|_: Progress| {}, &AtomicBool::new(false)).context("scanning the study failed")?;
    let Some(analysis) = analysis_folder(args, &set)? else {
        return pictures(args, &set);
    };
    let analysis = crate::outdir::absolute_resolved(&analysis);
    let out = crate::outdir::absolute_resolved(&args.out);
    let manifest_path = args
        .model
        .clone()
        .unwrap_or_else(crate::inference::manifest::default_manifest_path);
    let manifest = Manifest::load(&manifest_path).context("the model manifest could not be read")?;
    // No format flag: everything.
    let all = !(args.pdf || args.seg || args.pmap || args.sc || args.sr);
    let opts = ExportOptions {
        analysis,
        out,
        pdf: args.pdf || all,
        seg: args.seg || all,
        pmap: args.pmap || all,
        sc: args.sc || all,
        sr: args.sr || all,
        keep_phi: args.keep_phi,
        force: args.force,
        accept_regions: args.accept_regions.clone(),
    };
    let summary = report::export(&set, &manifest, &opts)?;
    for f in &summary.files {
        println!("wrote {}", f.display());
    }
    println!(
        "{}; key images drawn by {}",
        if summary.deidentified {
            "de-identified (PS3.15 Basic Profile)"
        } else {
            "patient identifiers KEPT (--keep-phi)"
        },
        summary.renderer
    );
    Ok(0)
}

/// `focal export STUDY --out DIR` without `--analysis`: the picture report.
fn pictures(args: &ExportArgs, set: &StudySet) -> anyhow::Result<i32> {
    if args.seg || args.pmap || args.sc || args.sr {
        anyhow::bail!(
            "--seg, --pmap, --sc and --sr need an analysis (--analysis DIR); without one only the picture report (PDF) is written"
        );
    }
    let opts = report::PictureOptions {
        out: crate::outdir::absolute_resolved(&args.out),
        series: args.series.clone(),
        keep_phi: args.keep_phi,
        force: args.force,
    };
    let summary = report::export_pictures(set, &opts)?;
    for f in &summary.files {
        println!("wrote {}", f.display());
    }
    println!(
        "picture report of {} image(s), no analysis; {}; drawn by {}",
        summary.key_images.len(),
        if summary.deidentified {
            "report text de-identified"
        } else {
            "patient identifiers KEPT (--keep-phi)"
        },
        summary.renderer
    );
    Ok(0)
}
