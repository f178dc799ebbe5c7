//! `focal analyses`: the analyses the window kept (where the window's *Run model* results and
//! reviews live), newest first, each with the id `focal export --analysis` takes.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde::Serialize;

use crate::report::{export::utc_text, saved};
use crate::study::{Progress, StudySet};

#[derive(clap::Args, Debug)]
pub struct AnalysesArgs {
    /// Only the analyses of series in these DICOM files, folders or DICOMDIRs.
    pub study: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Listed {
    id: String,
    folder: PathBuf,
    modified: String,
    series_uid: String,
    series: Option<crate::inference::output::SeriesRecord>,
    model: String,
    reader: Option<String>,
    signed_at: Option<String>,
    review: String,
}

pub fn analyses(args: &AnalysesArgs) -> anyhow::Result<i32> {
    let root = crate::places::analyses_dir()?;
    let (mut kept, unreadable) = saved::list(&root);
    if !args.study.is_empty() {
        let set = StudySet::open(&args.study, &|_: Progress| {}, &AtomicBool::new(false))
            .context("scanning the study failed")?;
        kept.retain(|k| set.find_series(&k.summary.series_uid).is_some());
    }
    let listed: Vec<Listed> = kept
        .iter()
        .map(|k| Listed {
            id: k.id.clone(),
            folder: k.dir.clone(),
            modified: utc_text(k.modified),
            series_uid: k.summary.series_uid.clone(),
            series: k.summary.series.clone(),
            model: format!("{} {}", k.summary.model.name, k.summary.model.version),
            reader: k.review.as_ref().map(|r| r.reader.clone()).filter(|r| !r.trim().is_empty()),
            signed_at: k.review.as_ref().and_then(|r| r.signed_at.clone()),
            review: k.review_state(),
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(crate::exit::OK);
    }
    if listed.is_empty() {
        let of = if args.study.is_empty() { "" } else { " of this study" };
        println!("no kept analyses{of} in {}", root.display());
    } else {
        println!("{:<16}  {:<20}  {:<40}  {:<24}  review", "id", "changed", "series", "model");
    }
    for l in &listed {
        let series = l.series.as_ref().map_or_else(
            || l.series_uid.clone(),
            |s| {
                let mut text = s.number.map_or(String::new(), |n| format!("#{n} "));
                text.push_str(s.modality.as_deref().unwrap_or("??"));
                if let Some(d) = &s.description {
                    text.push_str(&format!(" {d}"));
                }
                text
            },
        );
        let series: String = series.chars().take(40).collect();
        println!("{:<16}  {:<20}  {series:<40}  {:<24}  {}", l.id, l.modified, l.model, l.review);
    }
    for (dir, why) in &unreadable {
        println!("unreadable: {}: {why}", dir.display());
    }
    if !listed.is_empty() {
        println!("export one: focal export STUDY --analysis ID --out DIR (or --latest)");
    }
    Ok(crate::exit::OK)
}
