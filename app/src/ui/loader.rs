//! Background work for the window: scanning studies, thumbnails, loading a series.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eframe::egui;

use super::job::Job;

use crate::study::{self, Progress, Stack, StudySet, Volume, volume::percentile_window};

/// Messages from a background task to the window.
pub enum LoadEvent {
    Scanned(Result<Arc<StudySet>, String>),
    ScanProgress(Progress),
    Thumbnail {
        series: String,
        image: egui::ColorImage,
    },
    /// One decoded slice of the series being loaded, before the whole volume.
    FirstSlice {
        series: String,
        index: usize,
        values: Vec<f32>,
        channels: usize,
    },
    VolumeProgress(Progress),
    Volume {
        series: String,
        result: Result<Arc<Volume>, String>,
    },
    /// An analysis of the series saved earlier (with its review), read back.
    SavedAnalysis {
        series: String,
        output: Box<Result<crate::report::output::AnalysisOutput, String>>,
    },
}

/// A scan or a series load: a job sending `LoadEvent`s.
pub type Task = Job<LoadEvent>;

/// Runs `work` as a job that wakes the window with each event.
fn spawn(ctx: &egui::Context, work: impl FnOnce(&(dyn Fn(LoadEvent) + Sync), &AtomicBool) + Send + 'static) -> Task {
    Job::spawn(Some(ctx), move |r| work(&|e| r.send(e), r.cancelled()))
}

const THUMBNAIL_SIZE: usize = 72;

/// Scans `paths`, then makes a thumbnail of each series' middle image.
pub fn scan(ctx: &egui::Context, paths: Vec<PathBuf>) -> Task {
    spawn(ctx, move |send, cancel| {
        let progress = |p: Progress| send(LoadEvent::ScanProgress(p));
        let set = match StudySet::open(&paths, &progress, cancel) {
            Ok(set) => Arc::new(set),
            Err(e) => return send(LoadEvent::Scanned(Err(study::error_chain(&e)))),
        };
        send(LoadEvent::Scanned(Ok(set.clone())));
        for series in set.series() {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            let Some((_, stack)) = series.largest_stack() else {
                continue;
            };
            if let Some(image) = thumbnail(stack) {
                send(LoadEvent::Thumbnail {
                    series: series.uid.clone(),
                    image,
                });
            }
        }
    })
}

fn thumbnail(stack: &Stack) -> Option<egui::ColorImage> {
    let frame = study::load_slice(stack, stack.slices.len() / 2).ok()?;
    let (w, h) = (stack.columns as usize, stack.rows as usize);
    let c = frame.channels;
    let window = percentile_window(&frame.values, c);
    let lo = window.center - window.width / 2.0;
    let scale = THUMBNAIL_SIZE as f64 / w.max(h) as f64;
    let (tw, th) = (
        ((w as f64 * scale) as usize).max(1),
        ((h as f64 * scale) as usize).max(1),
    );
    let mut pixels = Vec::with_capacity(tw * th);
    for y in 0..th {
        for x in 0..tw {
            let (sx, sy) = (((x as f64 + 0.5) / scale) as usize, ((y as f64 + 0.5) / scale) as usize);
            let i = (sy.min(h - 1) * w + sx.min(w - 1)) * c;
            let g = |k: usize| (((f64::from(frame.values[i + k]) - lo) / window.width).clamp(0.0, 1.0) * 255.0) as u8;
            pixels.push(if c == 3 {
                egui::Color32::from_rgb(g(0), g(1), g(2))
            } else {
                egui::Color32::from_gray(g(0))
            });
        }
    }
    Some(egui::ColorImage::new([tw, th], pixels))
}

/// Decodes the slice the view opens on first, then the whole stack.
/// `saved`: the series' analysis folder, where analyses are kept.
pub fn load_series(ctx: &egui::Context, series: String, stack: Stack, first: usize, saved: Option<PathBuf>) -> Task {
    spawn(ctx, move |send, cancel| {
        if let Ok(frame) = study::load_slice(&stack, first) {
            send(LoadEvent::FirstSlice {
                series: series.clone(),
                index: first,
                values: frame.values,
                channels: frame.channels,
            });
        }
        let progress = |p: Progress| send(LoadEvent::VolumeProgress(p));
        let result = study::load_volume(&stack, &progress, cancel)
            .map(Arc::new)
            .map_err(|e| study::error_chain(&e));
        send(LoadEvent::Volume {
            series: series.clone(),
            result,
        });
        if let Some(saved) = saved.filter(|s| s.join(crate::inference::output::SUMMARY_FILE).exists()) {
            let output = crate::report::output::AnalysisOutput::read(&saved).map_err(|e| e.to_string());
            send(LoadEvent::SavedAnalysis {
                series,
                output: Box::new(output),
            });
        }
    })
}
