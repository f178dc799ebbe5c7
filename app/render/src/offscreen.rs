//! Rendering slices without a window (key images for reports, tests), with the window's pipeline.

use std::sync::Arc;
use std::time::Duration;

use eframe::wgpu;

use super::reslice::{ReslicePlane, Reslicer, VolumePixels};
use super::{RenderError, RgbaImage, SlicePixels, SliceRenderer, SliceStyle, SliceTarget, SliceUniforms};

/// The format offscreen pictures are drawn in (and read back as).
pub const OFFSCREEN_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// A headless device with the slice pipeline.
pub struct OffscreenRenderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    renderer: SliceRenderer,
    /// Built on the first reformatted render.
    reslicer: Option<Reslicer>,
    /// Which adapter draws, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".
    pub adapter: String,
}

/// Keeps the graphics stack quiet where there is no desktop session (a server, CI, a batch
/// job): without a usable XDG_RUNTIME_DIR, Mesa's Vulkan device-selection layer asks libwayland
/// for a display, and libwayland prints "error: XDG_RUNTIME_DIR is invalid…" on every export,
/// which reads like a failure. There the layer has no display to choose for, so it is turned
/// off (NODEVICE_SELECT, Mesa's switch) unless the user set it. `main` calls this first.
#[allow(unsafe_code)]
pub fn quiet_headless_graphics() {
    let session = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

impl OffscreenRenderer {
    /// Opens any adapter wgpu finds (a GPU, or Mesa's software rasteriser): through Vulkan
    /// first, the other backends (GL) only when Vulkan has none, since probing EGL logs an error
    /// on machines without a GL driver. WGPU_BACKEND, when set, decides alone.
    pub fn new() -> Result<OffscreenRenderer, RenderError> {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        let from_env = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let vulkan = (std::env::var_os("WGPU_BACKEND").is_none()).then(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: wgpu::Backends::VULKAN,
                ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
            });
            pollster::block_on(instance.request_adapter(&options)).ok()
        });
        let adapter = match vulkan.flatten() {
            Some(a) => a,
            None => pollster::block_on(wgpu::Instance::new(from_env).request_adapter(&options))
                .map_err(|e| RenderError::NoAdapter(e.to_string()))?,
        };
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("focal offscreen"),
            required_limits: wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits()),
            ..Default::default()
        }))
        .map_err(|e| RenderError::Device(e.to_string()))?;
        // Validation errors come back from error scopes below; never let wgpu's default panic.
        device.on_uncaptured_error(Arc::new(|e| tracing::error!("GPU error: {e}")));
        let renderer = SliceRenderer::new(&device, &queue, OFFSCREEN_FORMAT);
        Ok(OffscreenRenderer {
            device,
            queue,
            renderer,
            reslicer: None,
            adapter: format!("{} ({:?})", info.name, info.backend),
        })
    }

    /// Draws `pixels` with `style` into a `width` × `height` picture; the image covers `dest`
    /// (min x, min y, max x, max y, in output pixels) on a black background.
    pub fn render(
        &self,
        pixels: &Arc<SlicePixels>,
        style: &SliceStyle,
        width: u32,
        height: u32,
        dest: [f32; 4],
    ) -> Result<RgbaImage, RenderError> {
        self.check_size("output", width.max(height))?;
        self.check_size("slice", pixels.columns.max(pixels.rows) as u32)?;
        let mut target = self.renderer.create_target(&self.device);
        let uniforms = SliceUniforms::for_pixels(style, pixels, [width as f32, height as f32], dest);
        let colormap = style.colormap();
        self.draw(width, height, &mut target, |_, renderer, target| {
            renderer.prepare(&self.device, &self.queue, target, pixels, colormap, &uniforms);
        })
    }

    /// Draws the plane `plane` reformatted from `volume` (on the GPU, as the window does) with
    /// `style` into a `width` × `height` picture, the plane covering `dest`.
    pub fn render_resliced(
        &mut self,
        volume: &VolumePixels,
        plane: &ReslicePlane,
        style: &SliceStyle,
        width: u32,
        height: u32,
        dest: [f32; 4],
    ) -> Result<RgbaImage, RenderError> {
        self.check_size("output", width.max(height))?;
        if !Reslicer::fits(&self.device, volume.size) {
            let limit = self.device.limits().max_texture_dimension_3d;
            let size = volume.size.into_iter().max().unwrap_or(0);
            return Err(RenderError::TooLarge { what: "volume", size, limit });
        }
        self.check_size("reformatted plane", plane.columns.max(plane.rows))?;
        let mut target = self.renderer.create_target(&self.device);
        let uniforms = SliceUniforms::new(
            style,
            plane.columns as usize,
            plane.rows as usize,
            false,
            super::image_to_clip(plane.columns as usize, plane.rows as usize, [width as f32, height as f32], dest),
            volume.heat.is_some(),
            volume.labels.is_some() && !plane.is_projection(),
        );
        let colormap = style.colormap();
        let reslicer = self.reslicer.get_or_insert_with(|| Reslicer::new(&self.device));
        let (device, queue, renderer) = (&self.device, &self.queue, &self.renderer);
        draw_and_read(device, queue, renderer, width, height, &mut target, Path::Composed, |encoder, renderer, target| {
            reslicer.prepare(renderer, device, queue, encoder, target, volume, plane, colormap, &uniforms);
        })
    }

    fn check_size(&self, what: &'static str, size: u32) -> Result<(), RenderError> {
        let limit = self.device.limits().max_texture_dimension_2d;
        if size == 0 || size > limit {
            return Err(RenderError::TooLarge { what, size, limit });
        }
        Ok(())
    }

    fn draw(
        &self,
        width: u32,
        height: u32,
        target: &mut SliceTarget,
        prepare: impl FnOnce(&mut wgpu::CommandEncoder, &SliceRenderer, &mut SliceTarget),
    ) -> Result<RgbaImage, RenderError> {
        draw_and_read(&self.device, &self.queue, &self.renderer, width, height, target, Path::Composed, prepare)
    }
}

/// How the slice reaches the output: as the window does it (drawn into the view's picture,
/// then copied), or with the slice shader straight into the output (to check the two agree).
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Composed,
    #[cfg_attr(not(test), allow(dead_code))]
    Direct,
}

/// Prepares `target` (`prepare` may encode passes before the draw), draws it into a fresh
/// `width` × `height` texture and reads the picture back.
fn draw_and_read(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    renderer: &SliceRenderer,
    width: u32,
    height: u32,
    target: &mut SliceTarget,
    path: Path,
    prepare: impl FnOnce(&mut wgpu::CommandEncoder, &SliceRenderer, &mut SliceTarget),
) -> Result<RgbaImage, RenderError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = device.create_command_encoder(&Default::default());
    prepare(&mut encoder, renderer, target);
    if path == Path::Composed {
        renderer.compose(device, &mut encoder, target, [width, height]);
    }
    let texture = device.create_texture(&super::pipeline::texture_descriptor(
        "focal offscreen",
        width,
        height,
        OFFSCREEN_FORMAT,
        wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
    ));
    let view = texture.create_view(&Default::default());
    let row_bytes = width * 4;
    let padded = row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("focal readback"),
        size: u64::from(padded) * u64::from(height),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    renderer.draw(&mut super::pipeline::black_pass(&mut encoder, &view, "focal offscreen"), target, [width, height]);
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded),
                rows_per_image: None,
            },
        },
        wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
    );
    let submission = queue.submit([encoder.finish()]);
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(RenderError::Gpu(e.to_string()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(Duration::from_secs(60)),
        })
        .map_err(|e| RenderError::Gpu(e.to_string()))?;
    rx.recv()
        .map_err(|e| RenderError::Gpu(e.to_string()))?
        .map_err(|e| RenderError::Gpu(e.to_string()))?;
    let mapped = buffer
        .slice(..)
        .get_mapped_range()
        .map_err(|e| RenderError::Gpu(e.to_string()))?;
    let mut data = Vec::with_capacity((row_bytes * height) as usize);
    for row in mapped.chunks_exact(padded as usize) {
        data.extend_from_slice(&row[..row_bytes as usize]);
    }
    Ok(RgbaImage { width, height, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttentionStyle, Colormap, MaskMode, MaskStyle};

    /// A 40 × 30 ramp with a heatmap and three labelled bands.
    fn slice() -> Arc<SlicePixels> {
        let (w, h) = (40, 30);
        let image: Vec<f32> = (0..w * h).map(|i| ((i % w) * 3 + (i / w) * 2) as f32).collect();
        let attention = (0..w * h).map(|i| (i / w) as f32 / h as f32).collect();
        let labels = image.iter().map(|&v| (v / 50.0).min(3.0) as u8).collect();
        Arc::new(SlicePixels::new(w, h, 1, image, Some(attention), Some(labels)).expect("consistent planes"))
    }

    fn style(window_center: f64) -> SliceStyle {
        SliceStyle {
            window_center,
            window_width: 120.0,
            invert: false,
            attention: Some(AttentionStyle {
                colormap: Colormap::Inferno,
                opacity: 0.5,
                threshold: 0.2,
                range: [0.0, 1.0],
                inside_labels: false,
            }),
            mask: Some(MaskStyle {
                mode: MaskMode::FillAndOutline,
                fill_opacity: 0.3,
                outline_width: 1,
                colors: vec![[0, 0, 0], [255, 0, 255], [0, 255, 0], [0, 128, 255]],
                visible: vec![false, true, true, true],
            }),
        }
    }

    // Needs a wgpu adapter: Mesa's lavapipe where there is no GPU (scripts/setup.sh installs it).
    #[test]
    fn a_view_is_drawn_once_per_change_and_copied_exactly() {
        let r = OffscreenRenderer::new().expect("a wgpu adapter");
        let pixels = slice();
        let (w, h) = (97, 61);
        let dest = [5.5, 3.0, 90.25, 58.0];
        let uniforms = |style: &SliceStyle, size: [u32; 2]| {
            SliceUniforms::for_pixels(style, &pixels, [size[0] as f32, size[1] as f32], dest)
        };
        let picture = |path| {
            let mut target = r.renderer.create_target(&r.device);
            let u = uniforms(&style(70.0), [w, h]);
            draw_and_read(&r.device, &r.queue, &r.renderer, w, h, &mut target, path, |_, renderer, target| {
                renderer.prepare(&r.device, &r.queue, target, &pixels, Colormap::Inferno, &u);
            })
            .expect("drawn")
        };
        // The copy is the slice shader's own picture, background included.
        assert_eq!(picture(Path::Composed), picture(Path::Direct));

        let mut target = r.renderer.create_target(&r.device);
        let mut encoder = r.device.create_command_encoder(&Default::default());
        let mut frame = |pixels: &Arc<SlicePixels>, colormap, u: &SliceUniforms, size| {
            r.renderer.prepare(&r.device, &r.queue, &mut target, pixels, colormap, u);
            r.renderer.compose(&r.device, &mut encoder, &mut target, size)
        };
        let still = uniforms(&style(70.0), [w, h]);
        assert!(frame(&pixels, Colormap::Inferno, &still, [w, h]), "first frame draws");
        assert!(!frame(&pixels, Colormap::Inferno, &still, [w, h]), "nothing changed: copied");
        let levelled = uniforms(&style(90.0), [w, h]);
        assert!(frame(&pixels, Colormap::Inferno, &levelled, [w, h]), "window/level changed");
        assert!(frame(&pixels, Colormap::Viridis, &levelled, [w, h]), "colour map changed");
        let next = slice();
        assert!(frame(&next, Colormap::Viridis, &levelled, [w, h]), "another slice");
        let resized = uniforms(&style(90.0), [w + 1, h]);
        assert!(frame(&next, Colormap::Viridis, &resized, [w + 1, h]), "view resized");
        assert!(!frame(&next, Colormap::Viridis, &resized, [w + 1, h]), "nothing changed again");
        assert!(!frame(&next, Colormap::Viridis, &resized, [0, h]), "an empty view draws nothing");
        r.queue.submit([encoder.finish()]);
    }
}
