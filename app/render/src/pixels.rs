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

    /// Paints a dot of `radius` pixels in `colour` at each of `points` (image pixel
    /// coordinates); what falls outside the image is left out.
    pub fn dots(&mut self, points: &[[f64; 2]], radius: f64, colour: [u8; 3]) {
        let r = radius.max(0.5);
        for p in points {
            let (x0, x1) = ((p[0] - r).floor() as i64, (p[0] + r).ceil() as i64);
            let (y0, y1) = ((p[1] - r).floor() as i64, (p[1] + r).ceil() as i64);
            for y in y0.max(0)..y1.min(i64::from(self.height)) {
                for x in x0.max(0)..x1.min(i64::from(self.width)) {
                    let (dx, dy) = (x as f64 + 0.5 - p[0], y as f64 + 0.5 - p[1]);
                    if dx * dx + dy * dy <= r * r {
                        let i = ((y as u64 * u64::from(self.width) + x as u64) * 4) as usize;
                        self.data[i..i + 3].copy_from_slice(&colour);
                        self.data[i + 3] = 255;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_paint_inside_the_image_only() {
        let mut img = RgbaImage { width: 8, height: 8, data: vec![0; 8 * 8 * 4] };
        img.dots(&[[1.5, 1.5], [-3.0, 20.0], [7.9, 7.9]], 1.0, [1, 2, 3]);
        assert_eq!(img.pixel(1, 1), [1, 2, 3, 255]);
        assert_eq!(img.pixel(7, 7), [1, 2, 3, 255]);
        assert_eq!(img.pixel(4, 4), [0, 0, 0, 0]);
    }
}
