//! `focal export`: analysis folder + study → de-identified PDF report and DICOM objects.

use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::inference::Manifest;
use crate::report::{self, ExportOptions};
use crate::study::{Progress, StudySet};

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
