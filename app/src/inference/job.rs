//! Running an analysis off the calling thread, with progress, ETA and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Analysis, Device, Engine, InferenceError, Manifest, Provider, Result, analyze_volume};
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
        Self::start(move || Ok(engine), volume)
    }

    /// Opens the model (verification, runtime, session) and analyses `volume`, all on a new
    /// thread, so a window never waits for either.
    pub fn open_and_spawn(
        manifest: Manifest,
        device: Device,
        allow_unverified: bool,
        volume: Arc<Volume>,
    ) -> AnalysisJob {
        Self::start(move || Engine::open(manifest, device, allow_unverified), volume)
    }

    fn start(open: impl FnOnce() -> Result<Engine> + Send + 'static, volume: Arc<Volume>) -> AnalysisJob {
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Mutex::new(false));
        let provider = Arc::new(Mutex::new(None));
        let total = volume.slices;
        let (c, d, f, p) = (cancel.clone(), done.clone(), finished.clone(), provider.clone());
        let handle = std::thread::spawn(move || {
            let outcome = match open() {
                Ok(mut engine) => {
                    if let Ok(mut slot) = p.lock() {
                        *slot = Some(engine.provider.clone());
                    }
                    let progress = |pr: Progress| d.store(pr.done, Ordering::Relaxed);
                    let result = analyze_volume(&mut engine, &volume, &progress, &c);
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
