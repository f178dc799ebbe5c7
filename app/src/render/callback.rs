//! The bridge between egui's paint callbacks and the slice renderer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use eframe::wgpu;

use super::{Colormap, ReslicePlane, Reslicer, SlicePixels, SliceRenderer, SliceTarget, SliceUniforms, VolumePixels};

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
    pub fn into_paint_callback(self, rect: eframe::egui::Rect) -> eframe::egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(rect, self)
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
    pub fn into_paint_callback(self, rect: eframe::egui::Rect) -> eframe::egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(rect, self)
    }
}

impl CallbackTrait for ResliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        with_target(resources, device, self.viewport, |res, target| {
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
        });
        Vec::new()
    }

    fn paint(
        &self,
        info: eframe::egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        paint(self.viewport, info, pass, resources);
    }
}

fn paint(viewport: u64, _info: eframe::egui::PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &CallbackResources) {
    let Some(res) = resources.get::<Resources>() else {
        report_missing_once();
        return;
    };
    if let Some(target) = res.targets.get(&viewport) {
        res.renderer.draw(pass, target);
    }
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

impl CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        with_target(resources, device, self.viewport, |res, target| {
            res.renderer
                .prepare(device, queue, target, &self.pixels, self.colormap, &self.uniforms);
        });
        Vec::new()
    }

    fn paint(
        &self,
        info: eframe::egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        paint(self.viewport, info, pass, resources);
    }
}
