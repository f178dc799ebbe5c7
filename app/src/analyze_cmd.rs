//! `focal analyze`: study → series volume → model → files a researcher can open.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use crate::cli::AnalyzeArgs;
use crate::inference::{self, Engine, InferenceError, Manifest};
use crate::study::{self, Progress, StudySet};

/// Exit code when CUDA was demanded and cannot run.
pub const EXIT_CUDA_UNAVAILABLE: i32 = 3;
/// Exit code when the model or its runtime is unusable.
pub const EXIT_MODEL: i32 = 4;

pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<i32> {
    crate::outdir::ensure_outside_study(&args.out, &args.study)?;
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let set = StudySet::open(&args.study, &|_: Progress| {}, &cancel).context("scanning the study failed")?;
    let scan = t.elapsed().as_secs_f64();
    let (series, stack) = match &args.series {
        Some(uid) => {
            let s = set
                .find_series(uid)
                .with_context(|| format!("no series {uid} in the study"))?;
            let st = s
                .stacks
                .first()
                .with_context(|| format!("series {uid} has no images"))?;
            (s, st)
        }
        None => set
            .series()
            .flat_map(|s| s.stacks.iter().map(move |st| (s, st)))
            .max_by_key(|(_, st)| st.slices.len())
            .context("the study has no image series")?,
    };
    let t = Instant::now();
    let volume = study::load_volume(stack, &|_: Progress| {}, &cancel).context("decoding the series failed")?;
    let load_volume = t.elapsed().as_secs_f64();

    let manifest_path = args
        .model
        .clone()
        .unwrap_or_else(inference::manifest::default_manifest_path);
    let t = Instant::now();
    let engine = Manifest::load(&manifest_path).and_then(|m| Engine::open(m, args.device, args.allow_unverified_model));
    let engine = match engine {
        Ok(e) => e,
        Err(e @ InferenceError::CudaUnavailable(_)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_CUDA_UNAVAILABLE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_MODEL);
        }
    };
    let load_model = t.elapsed().as_secs_f64();
    match &engine.provider.fallback_reason {
        Some(reason) => println!("execution provider: CPU (CUDA not used: {reason})"),
        None => println!("execution provider: {}", engine.provider.name),
    }
    if !engine.verified {
        println!("WARNING: the model's sha256 does not match its manifest (--allow-unverified-model)");
    }
    // The analysis runs on its own thread; this one reports progress until it ends.
    let volume = std::sync::Arc::new(volume);
    let job = inference::AnalysisJob::spawn(engine, volume.clone());
    let mut reported = 0;
    while !job.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let s = job.status();
        if s.done != reported {
            reported = s.done;
            tracing::info!(
                done = s.done,
                total = s.total,
                eta_s = s.eta.map(|e| e.as_secs_f64()),
                "slices analysed"
            );
        }
    }
    let (engine, analysis) = job.join();
    let analysis = analysis?;
    let engine = engine.context("the analysis thread failed")?;

    let study_uid = stack
        .slices
        .first()
        .map_or(String::new(), |s| s.instance.study_uid.clone());
    let timings = inference::output::Timings {
        scan,
        load_volume,
        load_model,
        inference_total: analysis.summary.seconds_total,
        model_only: analysis.summary.seconds_model,
        slices_per_second: analysis.summary.slices_per_second,
    };
    inference::output::write_analysis_folder(&args.out, &volume, &analysis, &engine, &series.uid, &study_uid, timings)
        .with_context(|| format!("writing the results to {} failed", args.out.display()))?;
    for l in &analysis.summary.labels {
        println!("{:>14}: {:>9.2} mL", l.name, l.volume_ml);
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
