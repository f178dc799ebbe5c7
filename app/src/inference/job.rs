//! Running an analysis off the calling thread, with progress, ETA and cancellation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Analysis, Engine, InferenceError, Result, analyze_volume};
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
    handle: JoinHandle<(Engine, Result<Analysis>)>,
    cancel: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    total: usize,
    started: Instant,
    finished: Arc<Mutex<bool>>,
}

impl AnalysisJob {
    /// Starts analysing `volume` on a new thread; the engine comes back with the result.
    pub fn spawn(mut engine: Engine, volume: Arc<Volume>) -> AnalysisJob {
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Mutex::new(false));
        let total = volume.slices;
        let (c, d, f) = (cancel.clone(), done.clone(), finished.clone());
        let handle = std::thread::spawn(move || {
            let progress = |p: Progress| d.store(p.done, Ordering::Relaxed);
            let result = analyze_volume(&mut engine, &volume, &progress, &c);
            if let Ok(mut flag) = f.lock() {
                *flag = true;
            }
            (engine, result)
        });
        AnalysisJob {
            handle,
            cancel,
            done,
            total,
            started: Instant::now(),
            finished,
        }
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
            Ok((engine, result)) => (Some(engine), result),
            Err(_) => (None, Err(InferenceError::Run("the analysis thread panicked".into()))),
        }
    }
}
