//! The pixels of one slice and its overlays, as handed to the renderer.

use std::sync::atomic::{AtomicU64, Ordering};

/// One slice's image values (modality units) with the attention and label planes that go with
/// it. Each value gets a fresh `generation`, so a renderer re-uploads only what changed.
#[derive(Debug)]
pub struct SlicePixels {
    pub columns: usize,
    pub rows: usize,
    /// 1 (grey) or 3 (RGB, interleaved).
    pub channels: usize,
    pub image: Vec<f32>,
    pub attention: Option<Vec<f32>>,
    pub labels: Option<Vec<u8>>,
    generation: u64,
}

impl SlicePixels {
    /// Checks the plane sizes agree; `None` when they do not.
    pub fn new(
        columns: usize,
        rows: usize,
        channels: usize,
        image: Vec<f32>,
        attention: Option<Vec<f32>>,
        labels: Option<Vec<u8>>,
    ) -> Option<SlicePixels> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = columns * rows;
        let ok = columns > 0
            && rows > 0
            && matches!(channels, 1 | 3)
            && image.len() == n * channels
            && attention.as_ref().is_none_or(|a| a.len() == n)
            && labels.as_ref().is_none_or(|l| l.len() == n);
        ok.then(|| SlicePixels {
            columns,
            rows,
            channels,
            image,
            attention,
            labels,
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_color(&self) -> bool {
        self.channels == 3
    }
}

/// An RGBA8 picture read back from the renderer (or made by the CPU reference).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbaImage {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [self.data[i], self.data[i + 1], self.data[i + 2], self.data[i + 3]]
    }
}
