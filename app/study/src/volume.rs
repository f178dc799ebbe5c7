//! Decoding a sorted stack into a `Volume` of f32 modality values, in parallel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Progress;
use super::decode::{self, FrameValues};
use super::error::{Result, StudyError};
use super::geometry::StackGeometry;
use super::header::{InstanceHeader, WindowLevel};
use super::series::Stack;

/// A slice that could not be decoded; the volume holds zeros in its place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedSlice {
    pub index: usize,
    pub path: PathBuf,
    pub reason: String,
}

/// A stack's decoded values: `slices` planes of `rows` × `columns` pixels with `channels`
/// interleaved values each (1 = modality values such as HU, 3 = RGB).
#[derive(Debug, Clone)]
pub struct Volume {
    pub columns: usize,
    pub rows: usize,
    pub slices: usize,
    pub channels: usize,
    pub data: Vec<f32>,
    pub geometry: Option<StackGeometry>,
    pub window: WindowLevel,
    /// MONOCHROME1 images display inverted (higher values darker).
    pub inverted: bool,
    pub modality: Option<String>,
    pub skipped: Vec<SkippedSlice>,
    /// Acquired with contrast (ContrastBolusAgent set, or a description saying so: the
    /// stack's [`crate::SeriesWarning::Contrast`]).
    pub contrast: bool,
    /// The voxel size (column, row, slice spacing in mm) of the series this volume was
    /// resampled from onto another series' grid (None: its own grid).
    pub resampled_from_mm: Option<[f64; 3]>,
}

/// The values, for sharing a loaded volume without a copy (the GPU upload of reformatting).
impl AsRef<[f32]> for Volume {
    fn as_ref(&self) -> &[f32] {
        &self.data
    }
}

impl Volume {
    pub fn slice_len(&self) -> usize {
        self.columns * self.rows * self.channels
    }

    pub fn slice(&self, index: usize) -> Option<&[f32]> {
        let n = self.slice_len();
        self.data.get(index * n..(index + 1) * n)
    }
}

/// Decodes one slice of a stack (for showing the first image before the whole series).
pub fn load_slice(stack: &Stack, index: usize) -> Result<FrameValues> {
    let slice = stack.slices.get(index).ok_or(StudyError::EmptySeries)?;
    let mut frames = decode::decode_frames(&slice.instance, &[slice.frame])?;
    frames.pop().ok_or(StudyError::EmptySeries)
}

/// Decodes every slice of a stack. Files are decoded in parallel; each multi-frame file is
/// opened once. A slice that fails is listed in `skipped` and the rest still load.
pub fn load_volume(stack: &Stack, progress: &(dyn Fn(Progress) + Sync), cancel: &AtomicBool) -> Result<Volume> {
    let first = stack.slices.first().ok_or(StudyError::EmptySeries)?;
    let layout = decode::check_plausible(&first.instance)?.clone();
    let channels = if layout.is_color() { 3 } else { 1 };
    let (columns, rows, slices) = (stack.columns as usize, stack.rows as usize, stack.slices.len());
    let slice_len = columns * rows * channels;
    let total_bytes = (slice_len as u64).saturating_mul(slices as u64).saturating_mul(4);
    if total_bytes > decode::MAX_DECODED_BYTES {
        return Err(StudyError::ImplausibleSize {
            rows: stack.rows,
            columns: stack.columns,
            frames: slices as u32,
            bits: 32,
            bytes: total_bytes,
            file_size: 0,
        });
    }
    let mut data = zeroed_volume(slice_len * slices);

    // Hand each file the output planes of its frames.
    let mut by_file: BTreeMap<PathBuf, (Arc<InstanceHeader>, Vec<(u32, usize, &mut [f32])>)> = BTreeMap::new();
    for (index, (slice, plane)) in stack.slices.iter().zip(data.chunks_mut(slice_len)).enumerate() {
        by_file
            .entry(slice.instance.path.clone())
            .or_insert_with(|| (slice.instance.clone(), Vec::new()))
            .1
            .push((slice.frame, index, plane));
    }
    let done = AtomicUsize::new(0);
    let skipped: Vec<SkippedSlice> = by_file
        .into_values()
        .collect::<Vec<_>>()
        .into_par_iter()
        .flat_map_iter(|(header, planes)| {
            let mut failures = Vec::new();
            if cancel.load(Ordering::Relaxed) {
                return failures.into_iter();
            }
            let frames: Vec<u32> = planes.iter().map(|(f, _, _)| *f).collect();
            let (indices, mut outputs): (Vec<usize>, Vec<&mut [f32]>) =
                planes.into_iter().map(|(_, index, plane)| (index, plane)).unzip();
            // Decoded straight into the volume's planes (no per-slice buffers where the data
            // allows it).
            let outcomes = match decode::decode_frames_into(&header, &frames, &mut outputs) {
                Ok(o) => o,
                Err(e) => vec![Err(e.to_string()); indices.len()],
            };
            for (index, outcome) in indices.into_iter().zip(outcomes) {
                if let Err(reason) = outcome {
                    failures.push(SkippedSlice {
                        index,
                        path: header.path.clone(),
                        reason,
                    });
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(Progress { done: n, total: slices });
            }
            failures.into_iter()
        })
        .collect();
    if cancel.load(Ordering::Relaxed) {
        return Err(StudyError::Cancelled);
    }
    if skipped.len() == slices {
        let reason = skipped.first().map(|s| s.reason.clone()).unwrap_or_default();
        return Err(StudyError::Decode(format!(
            "no slice of the series could be decoded: {reason}"
        )));
    }
    let mut skipped = skipped;
    skipped.sort_by_key(|s| s.index);
    let window = first
        .info()
        .window
        .unwrap_or_else(|| percentile_window(&data, channels));
    Ok(Volume {
        columns,
        rows,
        slices,
        channels,
        data,
        geometry: stack.geometry.clone(),
        window,
        inverted: layout.photometric == "MONOCHROME1",
        modality: first.instance.modality.clone(),
        skipped,
        contrast: stack.warnings.iter().any(|w| matches!(w, crate::SeriesWarning::Contrast { .. })),
        resampled_from_mm: None,
    })
}

/// `len` zeros for a volume. On Linux the buffer is marked for transparent huge pages, so
/// that filling a few hundred MB costs a few hundred page faults instead of ~85,000 (a third of
/// a 512² × 324 CT's load time went to them); elsewhere, or if the kernel says no, it is an
/// ordinary vector.
#[allow(unsafe_code)] // one madvise call on our own allocation; see SAFETY below
fn zeroed_volume(len: usize) -> Vec<f32> {
    // Zeroed by the allocator: a large calloc is fresh mapped memory, zero without being
    // written, so nothing touches it before the advice and the decoders' writes fault it in
    // (on every decoding thread) instead of one pass of zeros first.
    let mut data: Vec<f32> = vec![0.0; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = data.as_mut_ptr() as usize;
        let end = start + len * std::mem::size_of::<f32>();
        let aligned = start.next_multiple_of(HUGE);
        if end > aligned + HUGE {
            // SAFETY: the range lies inside this vector's own allocation; MADV_HUGEPAGE only
            // advises the kernel and changes no contents or permissions.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, (end - aligned) / HUGE * HUGE, libc::MADV_HUGEPAGE);
            }
        }
    }
    data
}

/// A window from the 0.5th–99.5th percentiles of the values (for images without one in tags).
pub fn percentile_window(data: &[f32], channels: usize) -> WindowLevel {
    let step = (data.len() / 200_000).max(1) * channels;
    let mut sample: Vec<f32> = data.iter().step_by(step).copied().filter(|v| v.is_finite()).collect();
    if sample.is_empty() {
        return WindowLevel {
            center: 0.5,
            width: 1.0,
        };
    }
    sample.sort_by(f32::total_cmp);
    let at = |q: f64| f64::from(sample[((sample.len() - 1) as f64 * q).round() as usize]);
    let (lo, hi) = (at(0.005), at(0.995));
    let width = (hi - lo).max(1.0);
    WindowLevel {
        center: lo + width / 2.0,
        width,
    }
}
