//! Running an analysis off the calling thread, with progress, ETA and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Analysis, Device, Engine, InferenceError, Manifest, Provider, Result, analyze_volumes};
use super::analysis::SlotSeries;
use crate::study::{Progress, Volume};

/// A snapshot of a running analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobStatus {
    pub done: usize,
    pub total: usize,
    pub elapsed: Duration,
    /// Estimated time left, from the rate so far (None before the first batch).
    pub eta: Option<Duration>,
}

pub struct AnalysisJob {
    handle: JoinHandle<(Option<Engine>, Result<Analysis>)>,
    provider: Arc<Mutex<Option<Provider>>>,
    cancel: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    total: usize,
    started: Instant,
    finished: Arc<Mutex<bool>>,
}

impl AnalysisJob {
    /// Starts analysing `volume` on a new thread; the engine comes back with the result.
    pub fn spawn(engine: Engine, volume: Arc<Volume>) -> AnalysisJob {
        Self::spawn_multi(engine, vec![volume], Vec::new())
    }

    /// Like `spawn`, with further series (already on `volumes[0]`'s grid) in the model's
    /// other modality slots; `slots` says what each slot holds (kept in the summary).
    pub fn spawn_multi(engine: Engine, volumes: Vec<Arc<Volume>>, slots: Vec<SlotSeries>) -> AnalysisJob {
        let total = volumes.first().map_or(0, |v| v.slices);
        Self::start(move || Ok(engine), move || Ok((volumes, slots)), total)
    }

    /// Opens the model and gathers the slots' series (`prepare`: loading and resampling further
    /// series, which takes seconds) on the new thread, then analyses `total` slices.
    pub fn open_prepare_and_spawn(
        manifest: Manifest,
        device: Device,
        total: usize,
        prepare: impl FnOnce() -> Result<(Vec<Arc<Volume>>, Vec<SlotSeries>)> + Send + 'static,
    ) -> AnalysisJob {
        Self::start(move || Engine::open(manifest, device, false), prepare, total)
    }

    fn start(
        open: impl FnOnce() -> Result<Engine> + Send + 'static,
        prepare: impl FnOnce() -> Result<(Vec<Arc<Volume>>, Vec<SlotSeries>)> + Send + 'static,
        total: usize,
    ) -> AnalysisJob {
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Mutex::new(false));
        let provider = Arc::new(Mutex::new(None));
        let (c, d, f, p) = (cancel.clone(), done.clone(), finished.clone(), provider.clone());
        let handle = std::thread::spawn(move || {
            let outcome = match open() {
                Ok(mut engine) => {
                    if let Ok(mut slot) = p.lock() {
                        *slot = Some(engine.provider.clone());
                    }
                    let progress = |pr: Progress| d.store(pr.done, Ordering::Relaxed);
                    let result = prepare().and_then(|(volumes, slots)| {
                        let refs: Vec<&Volume> = volumes.iter().map(|v| v.as_ref()).collect();
                        let mut analysis = analyze_volumes(&mut engine, &refs, &progress, &c)?;
                        analysis.summary.insights.slots = slots;
                        Ok(analysis)
                    });
                    (Some(engine), result)
                }
                Err(e) => (None, Err(e)),
            };
            if let Ok(mut flag) = f.lock() {
                *flag = true;
            }
            outcome
        });
        AnalysisJob {
            handle,
            provider,
            cancel,
            done,
            total,
            started: Instant::now(),
            finished,
        }
    }

    /// The execution provider, once the model is open.
    pub fn provider(&self) -> Option<Provider> {
        self.provider.lock().ok().and_then(|p| p.clone())
    }

    pub fn status(&self) -> JobStatus {
        let done = self.done.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let eta = (done > 0 && done < self.total).then(|| elapsed.mul_f64((self.total - done) as f64 / done as f64));
        JobStatus {
            done,
            total: self.total,
            elapsed,
            eta,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished.lock().map(|f| *f).unwrap_or(true)
    }

    /// Asks the job to stop after the batch in flight.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits for the result.
    pub fn join(self) -> (Option<Engine>, Result<Analysis>) {
        match self.handle.join() {
            Ok((engine, result)) => (engine, result),
            Err(_) => (None, Err(InferenceError::Run("the analysis thread panicked".into()))),
        }
    }
}
