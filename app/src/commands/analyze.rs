//! `focal analyze`: study → series volume → model → files a researcher can open.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use crate::inference::{self, Device, Engine, InferenceError, Manifest};
use crate::study::{self, Progress, StudySet};

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// DICOM files, folders or a DICOMDIR holding the study.
    #[arg(required = true)]
    pub study: Vec<PathBuf>,
    /// Series to analyse: its UID, a UID prefix (6+ characters), its series number or (part of)
    /// its description; default: the largest stack of greyscale images of a modality the model
    /// takes, never a SEG, RTSTRUCT, SR, presentation state, secondary capture or derived
    /// series. Give it again for further series of the same head (other contrasts): they are
    /// resampled onto the first one's grid and fill the model's further modality slots.
    #[arg(long)]
    pub series: Vec<String>,
    /// Also compute the occlusion evidence map of this slice (1 = first; may be repeated).
    #[arg(long = "evidence-slice")]
    pub evidence_slices: Vec<usize>,
    /// Explain only this label's region in evidence maps (default: every non-background label).
    #[arg(long)]
    pub evidence_label: Option<String>,
    /// Execution provider: auto (CUDA if it works, else CPU, saying why), cpu, or cuda (CUDA or fail).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: crate::inference::Device,
    /// Output folder (created; never a folder of the study's files).
    #[arg(long)]
    pub out: PathBuf,
    /// Model manifest (default: the bundled models/brain-tissue.json).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Run a model whose sha256 does not match its manifest (shown in every output).
    #[arg(long)]
    pub allow_unverified_model: bool,
}

/// Loads the manifest (default: the bundled one) and opens its model. Its errors leave the
/// command with the exit code of their kind (`focal::exit::of`: CUDA unavailable 3, else 4).
pub fn open_engine(
    model: Option<PathBuf>,
    device: Device,
    allow_unverified: bool,
    threads: Option<usize>,
) -> Result<Engine, InferenceError> {
    let path = model.unwrap_or_else(inference::manifest::default_manifest_path);
    Engine::open_with_threads(Manifest::load(&path)?, device, allow_unverified, threads)
}

/// Says which series runs and why, and what the rule passed over.
fn print_choice(choice: &study::Choice) {
    println!(
        "series: {} {} ({}, {} images)",
        choice.series.title(),
        choice.series.uid,
        choice.how,
        choice.stack.slices.len()
    );
    if let Some(w) = &choice.warning {
        println!("WARNING: the series {w}; analysed because it was named");
    }
    for (title, why) in &choice.passed_over {
        println!("  passed over: {title}: it {why}");
    }
}

pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<i32> {
    crate::outdir::ensure_outside_study(&args.out, &args.study)?;
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let set = StudySet::open(&args.study, &|_: Progress| {}, &cancel).context("scanning the study failed")?;
    let scan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let engine = open_engine(args.model.clone(), args.device, args.allow_unverified_model, None)?;
    let load_model = t.elapsed().as_secs_f64();
    let choice = set.choose_series(args.series.first().map(String::as_str), &engine.manifest.input.modalities)?;
    let (series, stack) = (choice.series, choice.stack);
    print_choice(&choice);
    let others = args
        .series
        .iter()
        .skip(1)
        .map(|s| set.select_series(s).map(|x| x.uid.clone()))
        .collect::<Result<Vec<String>, _>>()?;
    let t = Instant::now();
    let volume = study::load_volume(stack, &|_: Progress| {}, &cancel).context("decoding the series failed")?;
    let (volumes, slots) = inference::inputs::paired_volumes(
        &engine.manifest,
        &set,
        &series.uid,
        stack,
        std::sync::Arc::new(volume),
        &others,
        &cancel,
    )?;
    for s in &slots {
        for w in &s.warnings {
            println!("WARNING: series {} ({}): {w}", s.series_uid, s.slot);
        }
    }
    for s in slots.iter().skip(1) {
        println!(
            "series {} in slot {}: resampled onto the analysed series' grid, covering {:.0}% of it",
            s.series_uid,
            s.slot,
            s.coverage * 100.0
        );
    }
    let load_volume = t.elapsed().as_secs_f64();

    println!("execution provider: {}", engine.provider.describe());
    if !engine.verified {
        println!("WARNING: the model's sha256 does not match its manifest (--allow-unverified-model)");
    }
    let evidence_label = match &args.evidence_label {
        Some(name) => Some(
            engine
                .manifest
                .labels
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(name))
                .map(|l| l.index)
                .with_context(|| format!("the model has no label {name:?}"))?,
        ),
        None => None,
    };
    // The analysis runs on its own thread; this one reports progress until it ends.
    let job = inference::AnalysisJob::spawn_multi(engine, volumes.clone(), slots);
    let bar = crate::commands::progress::Bar::new("slices", None);
    bar.note("analysing");
    let mut reported = 0;
    while !job.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let s = job.status();
        if s.done != reported {
            reported = s.done;
            bar.set(s.done as u64, Some(s.total as u64));
            tracing::info!(
                done = s.done,
                total = s.total,
                eta_s = s.eta.map(|e| e.as_secs_f64()),
                "slices analysed"
            );
        }
    }
    bar.done();
    let (engine, analysis) = job.join();
    let analysis = analysis?;
    let mut engine = engine.context("the analysis thread failed")?;
    let volume = &volumes[0];

    let timings = inference::output::Timings::of(&analysis, scan, load_volume, load_model);
    let source = inference::output::Source::chosen(&choice);
    inference::output::write_analysis_folder(&args.out, volume, &analysis, &engine, &source, timings)
        .with_context(|| format!("writing the results to {} failed", args.out.display()))?;
    // The model's labels only: what lies outside them (background) is not a finding.
    for l in analysis.summary.labels.iter().filter(|l| l.index != 0) {
        println!("{:>14}: {:>9.2} mL", l.name, l.volume_ml);
    }
    let insights = &analysis.summary.insights;
    for w in &insights.volume_warnings {
        println!("WARNING: {w}");
    }
    for p in &insights.postprocess {
        println!("post-processing: {}", p.describe());
    }
    if let Some(f) = &insights.faithfulness {
        println!("attention faithfulness: {}", f.describe());
    }
    if let Some(share) = insights.attention_in_brain {
        println!("attention placement: {}", inference::analysis::describe_attention_in_brain(share));
    }
    if let Some(regions) = &insights.key_regions {
        println!("key regions: {} ({})", regions.len(), inference::key_regions::MEANING);
        for r in regions {
            println!("  {}", r.describe_named(&|slot| insights.series_name(slot)));
        }
        if !insights.key_regions_set_aside.is_empty() {
            println!(
                "set aside as likely physiological: {} ({})",
                insights.key_regions_set_aside.len(),
                inference::key_regions::SET_ASIDE_MEANING
            );
            for r in &insights.key_regions_set_aside {
                println!("  {}", r.describe());
            }
        }
    }
    for r in insights.modality_reliance.iter().filter(|_| insights.slots.len() > 1) {
        let parts: Vec<String> = r
            .slots
            .iter()
            .filter(|s| s.present)
            .filter_map(|s| s.mean_weight.map(|w| format!("{} {:.0}%", s.slot, w * 100.0)))
            .collect();
        if parts.is_empty() {
            println!("{:>14}: no voxels", r.label);
        } else {
            println!("{:>14} relied on: {}", r.label, parts.join(", "));
        }
    }
    if !args.evidence_slices.is_empty() {
        let refs: Vec<&study::Volume> = volumes.iter().map(|v| v.as_ref()).collect();
        let pre = inference::analysis::Preprocessor::new(&engine, &refs)?;
        for &number in &args.evidence_slices {
            let k = number.checked_sub(1).filter(|k| *k < volume.slices).with_context(|| {
                format!(
                    "--evidence-slice {number}: the series has slices 1 to {}",
                    volume.slices
                )
            })?;
            let map = inference::evidence::occlusion(
                &mut engine,
                &pre,
                k,
                evidence_label,
                inference::evidence::DEFAULT_PATCH,
                &|_: Progress| {},
                &cancel,
            )?;
            inference::output::write_evidence(&args.out, volume, &map)
                .with_context(|| format!("writing the evidence map to {} failed", args.out.display()))?;
            println!(
                "evidence map of slice {number}: {} patches in {:.1} s, largest probability drop {:.3}",
                map.info.patches, map.info.seconds, map.info.max
            );
        }
    }
    println!(
        "{} slices in {:.2} s ({:.1} slices/s); results in {}",
        analysis.slices,
        analysis.summary.seconds_total,
        analysis.summary.slices_per_second,
        args.out.display()
    );
    Ok(0)
}
