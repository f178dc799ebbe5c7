//! The window's one kind of background work: a thread, its cancel flag, its progress and the
//! messages it sends back. Scanning and loading, evidence maps, fusion, exports and the PACS
//! window's network work are all `Job`s; the model's run is the inference layer's `AnalysisJob`
//! (the CLI drives it too). A job with a window to wake asks it for a repaint at each message
//! and progress step; dropping a job asks its thread to stop (at its next look at the flag), and
//! what it sends after that is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};

use eframe::egui;

/// (done, total) as a job last reported it; total unknown while a retrieve is still asking.
pub type JobProgress = (usize, Option<usize>);

/// A running background job that sends messages of type `M`.
pub struct Job<M> {
    rx: Receiver<M>,
    cancel: Arc<AtomicBool>,
    progress: Arc<Mutex<Option<JobProgress>>>,
}

/// What a job's thread is given: where its messages and progress go, and whether to stop.
pub struct Reporter<M> {
    tx: Mutex<Sender<M>>,
    wake: Option<egui::Context>,
    cancel: Arc<AtomicBool>,
    progress: Arc<Mutex<Option<JobProgress>>>,
}

impl<M> Reporter<M> {
    /// Sends a message to the window.
    pub fn send(&self, message: M) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(message);
        }
        self.wake();
    }

    /// Reports how far the work has come.
    pub fn progress(&self, done: usize, total: Option<usize>) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some((done, total));
        self.wake();
    }

    /// Set when the window no longer wants the result: stop at the next convenient point.
    pub fn cancelled(&self) -> &AtomicBool {
        &self.cancel
    }

    fn wake(&self) {
        if let Some(ctx) = &self.wake {
            ctx.request_repaint();
        }
    }
}

impl<M: Send + 'static> Job<M> {
    /// Runs `work` on its own thread. `wake`: the window to repaint when the job sends or
    /// progresses (None where the window polls on its own, as the PACS window does).
    pub fn spawn(wake: Option<&egui::Context>, work: impl FnOnce(&Reporter<M>) + Send + 'static) -> Job<M> {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Mutex::new(None));
        let reporter = Reporter {
            tx: Mutex::new(tx),
            wake: wake.cloned(),
            cancel: cancel.clone(),
            progress: progress.clone(),
        };
        std::thread::spawn(move || work(&reporter));
        Job { rx, cancel, progress }
    }
}

impl<M> Job<M> {
    /// Messages that arrived since the last call; `finished` is true once the job has ended
    /// (its thread returned and every message was taken).
    pub fn poll(&self) -> (Vec<M>, bool) {
        let mut messages = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => messages.push(m),
                Err(TryRecvError::Empty) => return (messages, false),
                Err(TryRecvError::Disconnected) => return (messages, true),
            }
        }
    }

    /// The progress the job last reported, if it reported any.
    pub fn progress(&self) -> Option<JobProgress> {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl<M> Drop for Job<M> {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Where a job that sends one result stands.
#[derive(Debug, PartialEq)]
pub enum Outcome<T> {
    Running,
    /// Its result (the caller drops the job).
    Done(T),
    /// It ended without a result (a panic, or it was cancelled before sending).
    Ended,
}

impl<T> Job<T> {
    /// For a job that sends one result: whether it came.
    pub fn outcome(&self) -> Outcome<T> {
        let (mut messages, finished) = self.poll();
        match messages.pop() {
            Some(result) => Outcome::Done(result),
            None if finished => Outcome::Ended,
            None => Outcome::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reports_progress_sends_its_result_and_stops_when_dropped() {
        let (release_tx, release_rx) = channel::<()>();
        let job = Job::spawn(None, move |r: &Reporter<u32>| {
            r.progress(1, Some(2));
            let _ = release_rx.recv();
            r.send(42);
        });
        while job.progress().is_none() {
            std::thread::yield_now();
        }
        assert_eq!(job.progress(), Some((1, Some(2))));
        assert_eq!(job.outcome(), Outcome::Running, "no result before the work sends one");
        release_tx.send(()).expect("the job waits");
        let result = loop {
            match job.outcome() {
                Outcome::Running => std::thread::yield_now(),
                other => break other,
            }
        };
        assert_eq!(result, Outcome::Done(42));
        // A job whose work returns without sending has ended.
        let silent = Job::spawn(None, |_: &Reporter<u32>| {});
        while silent.outcome() == Outcome::Running {
            std::thread::yield_now();
        }

        // Dropping a job raises its cancel flag; the work sees it.
        let (seen_tx, seen_rx) = channel();
        let job = Job::spawn(None, move |r: &Reporter<()>| {
            while !r.cancelled().load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            let _ = seen_tx.send(());
        });
        drop(job);
        seen_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the work saw the cancel flag");
    }
}
