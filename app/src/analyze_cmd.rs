//! `focal analyze`: study → series volume → model → files a researcher can open.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cli::AnalyzeArgs;
use crate::inference::{self, Engine, InferenceError, Manifest, Provider, analysis::LabelVolume, nifti};
use crate::study::{self, Progress, StudySet};

/// Exit code when CUDA was demanded and cannot run.
pub const EXIT_CUDA_UNAVAILABLE: i32 = 3;
/// Exit code when the model or its runtime is unusable.
pub const EXIT_MODEL: i32 = 4;

#[derive(Serialize)]
struct Summary<'a> {
    model: ModelInfo<'a>,
    provider: &'a Provider,
    series_uid: &'a str,
    study_uid: &'a str,
    slices: usize,
    grid: [usize; 3],
    spacing_mm: Option<[f64; 3]>,
    skipped_slices: &'a [study::SkippedSlice],
    labels: &'a [LabelVolume],
    mean_confidence: Option<f64>,
    slice_confidence: &'a [Option<f64>],
    seconds: Timings,
    files: [&'a str; 3],
    note: &'a str,
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    verified_against_manifest: bool,
}

#[derive(Serialize)]
struct Timings {
    scan: f64,
    load_volume: f64,
    load_model: f64,
    inference_total: f64,
    model_only: f64,
    slices_per_second: f64,
}

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

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    write_results(&args.out, &volume, &analysis)?;
    let first = stack.slices.first().map(|s| s.instance.clone());
    let summary = Summary {
        model: ModelInfo {
            name: &engine.manifest.name,
            version: &engine.manifest.version,
            sha256: &engine.sha256,
            verified_against_manifest: engine.verified,
        },
        provider: &engine.provider,
        series_uid: &series.uid,
        study_uid: first.as_ref().map_or("", |h| h.study_uid.as_str()),
        slices: analysis.slices,
        grid: [analysis.columns, analysis.rows, analysis.slices],
        spacing_mm: volume.geometry.as_ref().map(|g| g.spacing),
        skipped_slices: &volume.skipped,
        labels: &analysis.summary.labels,
        mean_confidence: analysis.summary.mean_confidence,
        slice_confidence: &analysis.summary.slice_confidence,
        seconds: Timings {
            scan,
            load_volume,
            load_model,
            inference_total: analysis.summary.seconds_total,
            model_only: analysis.summary.seconds_model,
            slices_per_second: analysis.summary.slices_per_second,
        },
        files: ["labels.nii", "attention.nii", "probabilities.nii"],
        note: "Research use only, not for diagnosis. The attention map shows where the model's finest attention gate passed detail, not a finding.",
    };
    crate::outdir::write_atomic(
        &args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
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

fn write_results(out: &Path, volume: &study::Volume, a: &inference::Analysis) -> anyhow::Result<()> {
    let g = volume.geometry.as_ref();
    let dims = [a.columns, a.rows, a.slices, 1];
    nifti::write(&out.join("labels.nii"), dims, g, nifti::Data::U8(&a.labels))?;
    nifti::write(&out.join("attention.nii"), dims, g, nifti::Data::F32(&a.attention))?;
    // NIfTI order is x fastest, then y, z, t (label): regroup [slice][label] as [label][slice].
    let plane = a.columns * a.rows;
    let classes = a.probabilities.len() / (plane * a.slices).max(1);
    let mut by_label = Vec::with_capacity(a.probabilities.len());
    for c in 0..classes {
        for k in 0..a.slices {
            let at = (k * classes + c) * plane;
            by_label.extend_from_slice(&a.probabilities[at..at + plane]);
        }
    }
    nifti::write(
        &out.join("probabilities.nii"),
        [a.columns, a.rows, a.slices, classes],
        g,
        nifti::Data::F32(&by_label),
    )?;
    Ok(())
}
