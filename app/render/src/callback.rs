//! The bridge between egui's paint callbacks and the slice renderer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use eframe::egui::epaint::ViewportInPixels;
use eframe::egui::{PaintCallbackInfo, Rect};
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use eframe::wgpu;

use super::{Colormap, ReslicePlane, Reslicer, SlicePixels, SliceRenderer, SliceTarget, SliceUniforms, VolumePixels};

/// Views drawn by the slice shader into their pictures, pictures copied to the window, and
/// views drawn straight into the window (what changed since the last frame), since start.
static DRAWN: AtomicU64 = AtomicU64::new(0);
static COPIED: AtomicU64 = AtomicU64::new(0);
static DIRECT: AtomicU64 = AtomicU64::new(0);

/// How often the window's views were drawn, copied unchanged, or drawn directly (see `DRAWN`).
pub fn picture_counts() -> [u64; 3] {
    [&DRAWN, &COPIED, &DIRECT].map(|c| c.load(Ordering::Relaxed))
}

/// Long-lived GPU state kept in egui-wgpu's callback resources.
struct Resources {
    renderer: SliceRenderer,
    reslicer: Reslicer,
    /// One uniform buffer and texture set per viewport: every `prepare` runs before any `paint`.
    targets: HashMap<u64, SliceTarget>,
}

/// Builds the slice pipeline for a render state's device and target format and parks it in the
/// callback resources. Call once after the render state exists (eframe start-up, kittest set-up).
pub fn register(render_state: &RenderState) {
    let renderer = SliceRenderer::new(&render_state.device, &render_state.queue, render_state.target_format);
    let reslicer = Reslicer::new(&render_state.device);
    render_state.renderer.write().callback_resources.insert(Resources {
        renderer,
        reslicer,
        targets: HashMap::new(),
    });
}

/// One frame's draw of one viewport: small values only, the textures live in the resources.
pub struct SliceCallback {
    pub viewport: u64,
    pub pixels: Arc<SlicePixels>,
    pub colormap: Colormap,
    pub uniforms: SliceUniforms,
}

impl SliceCallback {
    pub fn into_paint_callback(self, rect: Rect) -> eframe::egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(rect, Placed { rect, callback: self })
    }
}

/// One frame's draw of a reformatted view: the plane is resampled from the volume's 3D
/// textures on the GPU (only when the plane or the volume changed), then drawn as a slice.
pub struct ResliceCallback {
    pub viewport: u64,
    pub volume: Arc<VolumePixels>,
    pub plane: ReslicePlane,
    pub colormap: Colormap,
    pub uniforms: SliceUniforms,
}

impl ResliceCallback {
    pub fn into_paint_callback(self, rect: Rect) -> eframe::egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(rect, Placed { rect, callback: self })
    }
}

/// How a callback fills its viewport's target before the frame's pass.
trait Fill: Send + Sync {
    fn viewport(&self) -> u64;
    fn fill(
        &self,
        res: &mut Resources,
        target: &mut SliceTarget,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
    );
}

impl Fill for SliceCallback {
    fn viewport(&self) -> u64 {
        self.viewport
    }

    fn fill(&self, res: &mut Resources, target: &mut SliceTarget, device: &wgpu::Device, queue: &wgpu::Queue, _encoder: &mut wgpu::CommandEncoder) {
        res.renderer
            .prepare(device, queue, target, &self.pixels, self.colormap, &self.uniforms);
    }
}

impl Fill for ResliceCallback {
    fn viewport(&self) -> u64 {
        self.viewport
    }

    fn fill(&self, res: &mut Resources, target: &mut SliceTarget, device: &wgpu::Device, queue: &wgpu::Queue, encoder: &mut wgpu::CommandEncoder) {
        let (renderer, reslicer) = (&res.renderer, &mut res.reslicer);
        reslicer.prepare(
            renderer,
            device,
            queue,
            encoder,
            target,
            &self.volume,
            &self.plane,
            self.colormap,
            &self.uniforms,
        );
    }
}

/// A callback with the rectangle it paints: `prepare` draws the view's picture at the size
/// the viewport will have in pixels (egui-wgpu's own rounding) once what it shows holds
/// still, `paint` copies it (or draws the slice directly while it changes).
struct Placed<C> {
    rect: Rect,
    callback: C,
}

impl<C: Fill> CallbackTrait for Placed<C> {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let size = pixel_size(ViewportInPixels::from_points(&self.rect, screen.pixels_per_point, screen.size_in_pixels));
        with_target(resources, device, self.callback.viewport(), |res, target| {
            self.callback.fill(res, target, device, queue, encoder);
            if target.steady(size) && res.renderer.compose(device, encoder, target, size) {
                DRAWN.fetch_add(1, Ordering::Relaxed);
            }
        });
        Vec::new()
    }

    fn paint(&self, info: PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &CallbackResources) {
        let Some(res) = resources.get::<Resources>() else {
            report_missing_once();
            return;
        };
        if let Some(target) = res.targets.get(&self.callback.viewport()) {
            let copied = res.renderer.draw(pass, target, pixel_size(info.viewport_in_pixels()));
            (if copied { &COPIED } else { &DIRECT }).fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn pixel_size(v: ViewportInPixels) -> [u32; 2] {
    [v.width_px.max(0) as u32, v.height_px.max(0) as u32]
}

/// Runs `f` with the resources and `viewport`'s target (made on first use).
fn with_target(
    resources: &mut CallbackResources,
    device: &wgpu::Device,
    viewport: u64,
    f: impl FnOnce(&mut Resources, &mut SliceTarget),
) {
    let Some(res) = resources.get_mut::<Resources>() else {
        report_missing_once();
        return;
    };
    let mut target = res
        .targets
        .remove(&viewport)
        .unwrap_or_else(|| res.renderer.create_target(device));
    f(res, &mut target);
    res.targets.insert(viewport, target);
}

fn report_missing_once() {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if !REPORTED.swap(true, Ordering::Relaxed) {
        tracing::error!("the slice renderer was not registered; slices cannot be drawn");
    }
}
