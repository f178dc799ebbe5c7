//! Each view's picture, kept between frames: the slice shader (bilinear image and heatmap, label
//! outlines) is the costly part of a frame, most of all on a software rasteriser, and most frames
//! change nothing a view shows (a still window, the reference lines moving over the other views
//! of a layout). So a view's slice is drawn into a texture of the view's size only when what it
//! shows changed, and every frame copies that texture onto the window (shaders/present.wgsl).
//! The picture is opaque, its letterbox black, so the window paints nothing under a view.

use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;

use super::SliceUniforms;
use super::colormap::Colormap;
use super::pipeline::{Key, quad_pipeline, texture_descriptor};

const SHADER: &str = include_str!("../../../shaders/present.wgsl");

/// What a picture shows: the target's textures, its colour map, its uniforms, and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Stamp {
    pub key: Key,
    pub colormap: Colormap,
    pub uniforms: SliceUniforms,
    pub size: [u32; 2],
}

/// One view's drawn slice.
pub(super) struct Picture {
    pub stamp: Stamp,
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    bind_group: wgpu::BindGroup,
}

impl Picture {
    /// The texture the slice is drawn into.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }
}

/// The copying pipeline (one per slice pipeline, same target format).
pub(super) struct Presenter {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    format: wgpu::TextureFormat,
    /// A 1 × 1 black picture: copied over a viewport, the letterbox of a slice drawn directly.
    black: wgpu::BindGroup,
}

impl Presenter {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Presenter {
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("focal picture"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            }],
        });
        let pipeline = quad_pipeline(
            device,
            "present.wgsl",
            SHADER,
            &layout,
            &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        );
        let black = device.create_texture_with_data(
            queue,
            &texture_descriptor("focal black", 1, 1, wgpu::TextureFormat::Rgba8Unorm, wgpu::TextureUsages::TEXTURE_BINDING),
            wgpu::util::TextureDataOrder::LayerMajor,
            &[0, 0, 0, 255],
        );
        let black = bind_picture(device, &layout, &black.create_view(&Default::default()));
        Presenter {
            pipeline,
            layout,
            format,
            black,
        }
    }

    /// Fills the pass's viewport with black.
    pub fn draw_black(&self, pass: &mut wgpu::RenderPass<'_>) {
        self.copy(pass, &self.black);
    }

    /// A picture for `stamp`, reusing `old`'s texture when it has the same size.
    pub fn picture(&self, device: &wgpu::Device, old: Option<Picture>, stamp: Stamp) -> Picture {
        if let Some(mut p) = old.filter(|p| p.stamp.size == stamp.size) {
            p.stamp = stamp;
            return p;
        }
        let [w, h] = stamp.size;
        let usage = wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING;
        let texture = device.create_texture(&texture_descriptor("focal view picture", w, h, self.format, usage));
        let view = texture.create_view(&Default::default());
        let bind_group = bind_picture(device, &self.layout, &view);
        Picture {
            stamp,
            texture,
            view,
            bind_group,
        }
    }

    /// Copies `picture` over the pass's viewport.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, picture: &Picture) {
        debug_assert_eq!(picture.texture.width(), picture.stamp.size[0]);
        self.copy(pass, &picture.bind_group);
    }

    /// Copies the picture bound in `bind_group` over the pass's viewport.
    fn copy(&self, pass: &mut wgpu::RenderPass<'_>, bind_group: &wgpu::BindGroup) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..4, 0..1);
    }
}

fn bind_picture(device: &wgpu::Device, layout: &wgpu::BindGroupLayout, view: &wgpu::TextureView) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("focal picture"),
        layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::TextureView(view),
        }],
    })
}
