//! `focal export`: analysis folder + study → de-identified PDF report and DICOM objects.

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
    /// Folder `focal analyze` (or the window) wrote.
    #[arg(long)]
    pub analysis: PathBuf,
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
}

pub fn export(args: &ExportArgs) -> anyhow::Result<i32> {
    crate::outdir::ensure_outside_study(&args.out, &args.study)?;
    let analysis = crate::outdir::absolute_resolved(&args.analysis);
    let out = crate::outdir::absolute_resolved(&args.out);
    let manifest_path = args
        .model
        .clone()
        .unwrap_or_else(crate::inference::manifest::default_manifest_path);
    let manifest = Manifest::load(&manifest_path).context("the model manifest could not be read")?;
    let set =
        StudySet::open(&args.study, &|_: Progress| {}, &AtomicBool::new(false)).context("scanning the study failed")?;
    // No format flag: everything.
    let all = !(args.pdf || args.seg || args.pmap || args.sc);
    let opts = ExportOptions {
        analysis,
        out,
        pdf: args.pdf || all,
        seg: args.seg || all,
        pmap: args.pmap || all,
        sc: args.sc || all,
        keep_phi: args.keep_phi,
        force: args.force,
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
