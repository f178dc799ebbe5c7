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

impl OffscreenRenderer {
    /// Opens any adapter wgpu finds (a GPU, or Mesa's software rasteriser).
    pub fn new() -> Result<OffscreenRenderer, RenderError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        }))
        .map_err(|e| RenderError::NoAdapter(e.to_string()))?;
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
        draw_and_read(device, queue, renderer, width, height, &mut target, |encoder, renderer, target| {
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
        draw_and_read(&self.device, &self.queue, &self.renderer, width, height, target, prepare)
    }
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
    prepare: impl FnOnce(&mut wgpu::CommandEncoder, &SliceRenderer, &mut SliceTarget),
) -> Result<RgbaImage, RenderError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = device.create_command_encoder(&Default::default());
    prepare(&mut encoder, renderer, target);
    let texture = device.create_texture(&super::gpu::texture_descriptor(
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
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("focal offscreen"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        renderer.draw(&mut pass, target);
    }
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
