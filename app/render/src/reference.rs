//! The slice shader's math on the CPU: the reference the GPU output is tested against, and a
//! fallback for exports on a machine where no adapter opens. Keep in step with slice.wgsl.

use super::{Colormap, ReslicePlane, RgbaImage, SlicePixels, SliceUniforms, VolumePixels};

fn mix(a: f32, b: f32, t: f32) -> f32 {
    a * (1.0 - t) + b * t
}

struct Planes<'a> {
    pixels: &'a SlicePixels,
    u: &'a SliceUniforms,
}

impl Planes<'_> {
    fn texel(&self, x: f32, y: f32) -> (usize, usize) {
        let cx = x.clamp(0.0, self.u.image[0] - 1.0) as usize;
        let cy = y.clamp(0.0, self.u.image[1] - 1.0) as usize;
        (cx, cy)
    }

    fn bilinear(&self, p: [f32; 2], load: impl Fn(usize, usize) -> f32) -> f32 {
        let (qx, qy) = (p[0] - 0.5, p[1] - 0.5);
        let (ix, iy) = (qx.floor(), qy.floor());
        let (fx, fy) = (qx - ix, qy - iy);
        let at = |dx: f32, dy: f32| {
            let (x, y) = self.texel(ix + dx, iy + dy);
            load(x, y)
        };
        mix(
            mix(at(0.0, 0.0), at(1.0, 0.0), fx),
            mix(at(0.0, 1.0), at(1.0, 1.0), fx),
            fy,
        )
    }

    fn voi(&self, v: f32) -> f32 {
        let c = self.u.window[0];
        let w1 = (self.u.window[1] - 1.0).max(0.001);
        ((v - (c - 0.5)) / w1 + 0.5).clamp(0.0, 1.0)
    }

    fn label(&self, x: usize, y: usize) -> u8 {
        self.pixels
            .labels
            .as_ref()
            .map_or(0, |l| l[y * self.pixels.columns + x])
    }

    fn visible(&self, label: u8) -> bool {
        label > 0 && (label as usize) < self.u.labels.len() && self.u.labels[label as usize][3] > 0.5
    }

    fn shade(&self, p: [f32; 2], colormap: Colormap) -> [f32; 3] {
        let px = self.pixels;
        let c = px.channels;
        let channel = |k: usize| self.bilinear(p, |x, y| px.image[(y * px.columns + x) * c + k.min(c - 1)]);
        let mut rgb = if px.is_color() {
            [self.voi(channel(0)), self.voi(channel(1)), self.voi(channel(2))]
        } else {
            [self.voi(channel(0)); 3]
        };
        if self.u.image[3] > 0.5 {
            rgb = rgb.map(|v| 1.0 - v);
        }
        let [lo, hi, threshold, opacity] = self.u.attention;
        if let (true, Some(att)) = (opacity > 0.0, &px.attention) {
            let a = self.bilinear(p, |x, y| att[y * px.columns + x]);
            let gated = self.u.window[2] > 0.5 && {
                let (tx, ty) = self.texel(p[0].floor(), p[1].floor());
                self.label(tx, ty) == 0
            };
            if a >= threshold && !gated {
                let t = ((a - lo) / (hi - lo).max(0.000001)).clamp(0.0, 1.0);
                let lut = colormap.color(t);
                for k in 0..3 {
                    rgb[k] = mix(rgb[k], f32::from(lut[k]) / 255.0, opacity);
                }
            }
        }
        if self.u.mask[3] > 0.5 {
            let mode = self.u.mask[0] as u32;
            let (tx, ty) = self.texel(p[0].floor(), p[1].floor());
            let label = self.label(tx, ty);
            if self.visible(label) {
                let colour = &self.u.labels[label as usize];
                if mode & 1 != 0 {
                    for k in 0..3 {
                        rgb[k] = mix(rgb[k], colour[k], self.u.mask[1]);
                    }
                }
                if mode & 2 != 0 && self.on_outline(tx, ty, label) {
                    rgb = [colour[0], colour[1], colour[2]];
                }
            }
        }
        rgb
    }

    fn on_outline(&self, tx: usize, ty: usize, label: u8) -> bool {
        let r = self.u.mask[2] as i64;
        let (w, h) = (self.pixels.columns as i64, self.pixels.rows as i64);
        (-r..=r).any(|dy| {
            (-r..=r).any(|dx| {
                let (nx, ny) = (tx as i64 + dx, ty as i64 + dy);
                nx >= 0 && ny >= 0 && nx < w && ny < h && self.label(nx as usize, ny as usize) != label
            })
        })
    }
}

/// What slice.wgsl draws for these pixels and uniforms into a `width` × `height` target cleared
/// to black (a pixel is covered when its centre lies inside the image quad).
pub fn render_reference(
    pixels: &SlicePixels,
    uniforms: &SliceUniforms,
    colormap: Colormap,
    width: u32,
    height: u32,
) -> RgbaImage {
    let planes = Planes { pixels, u: uniforms };
    let t = uniforms.transform;
    let mut data = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let ndc = [
                (x as f32 + 0.5) / width as f32 * 2.0 - 1.0,
                1.0 - (y as f32 + 0.5) / height as f32 * 2.0,
            ];
            let p = [(ndc[0] - t[2]) / t[0], (ndc[1] - t[3]) / t[1]];
            let inside = p[0] >= 0.0 && p[1] >= 0.0 && p[0] < uniforms.image[0] && p[1] < uniforms.image[1];
            if inside {
                let rgb = planes.shade(p, colormap);
                data.extend(rgb.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
                data.push(255);
            } else {
                data.extend([0, 0, 0, 255]);
            }
        }
    }
    RgbaImage { width, height, data }
}

/// The reslice shader's picture on the CPU: `plane` reformatted from `volume` into slice
/// pixels (image, heatmap, labels), as shaders/reslice.wgsl writes them.
pub fn reslice_reference(volume: &VolumePixels, plane: &ReslicePlane) -> Option<SlicePixels> {
    use crate::study::reformat::{inside, nearest, trilinear};
    let dims = volume.dims();
    let image: &[f32] = (*volume.image.data).as_ref();
    let heat: Option<&[f32]> = volume.heat.as_ref().map(|h| (*h.data).as_ref());
    let labels: Option<&[u8]> = volume.labels.as_ref().map(|l| (*l.data).as_ref()).filter(|_| !plane.is_projection());
    let (w, h) = (plane.columns as usize, plane.rows as usize);
    let mut out_image = vec![super::OUTSIDE; w * h];
    let mut out_heat = heat.map(|_| vec![0f32; w * h]);
    let mut out_labels = labels.map(|_| vec![0u8; w * h]);
    for j in 0..h {
        for i in 0..w {
            let at = j * w + i;
            let (x, y) = (i as f64 + 0.5, j as f64 + 0.5);
            if !plane.is_projection() {
                let p = plane.voxel(x, y, 0);
                if let Some(v) = trilinear(image, dims, p) {
                    out_image[at] = v;
                    if let (Some(src), Some(dst)) = (heat, out_heat.as_mut()) {
                        dst[at] = trilinear(src, dims, p).unwrap_or(0.0);
                    }
                    if let (Some(src), Some(dst), Some(n)) = (labels, out_labels.as_mut(), nearest(dims, p)) {
                        dst[at] = src[n];
                    }
                }
                continue;
            }
            for s in 0..plane.slab {
                let p = plane.voxel(x, y, s);
                let Some(n) = nearest(dims, p).filter(|_| inside(dims, p)) else { continue };
                out_image[at] = out_image[at].max(image[n]);
                if let (Some(src), Some(dst)) = (heat, out_heat.as_mut()) {
                    dst[at] = dst[at].max(src[n]);
                }
            }
        }
    }
    SlicePixels::new(w, h, 1, out_image, out_heat, out_labels)
}
