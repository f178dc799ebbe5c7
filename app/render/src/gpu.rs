//! The slice pipeline: built once per device and target format, drawn by the window's paint
//! callback and by the offscreen renderer alike.

use std::sync::Arc;

use eframe::wgpu;
use eframe::wgpu::util::DeviceExt;

use super::picture::{Picture, Presenter, Stamp};
use super::pipeline::{Key, black_pass, quad_pipeline, texture_descriptor};
use super::{Colormap, SlicePixels, SliceUniforms};

/// Textures the shader reads, filled from the CPU.
const SAMPLED: wgpu::TextureUsages = wgpu::TextureUsages::TEXTURE_BINDING.union(wgpu::TextureUsages::COPY_DST);

const SHADER: &str = include_str!("../../../shaders/slice.wgsl");

/// Pipeline, bind group layout and colormap textures (long-lived GPU resources).
pub struct SliceRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    colormaps: Vec<wgpu::TextureView>,
    present: Presenter,
}

/// What one viewport owns on the GPU: its uniform buffer and the textures of the slice it shows.
pub struct SliceTarget {
    uniforms: wgpu::Buffer,
    /// What `uniforms` holds.
    written: Option<SliceUniforms>,
    bound: Option<Bound>,
    /// The reslice pass's uniforms, for a target that shows reformatted planes.
    pub(super) reslice_uniforms: Option<wgpu::Buffer>,
    /// The slice as last drawn at the view's size (see picture.rs).
    picture: Option<Picture>,
    /// What the previous frame showed (see `steady`).
    last_seen: Option<Stamp>,
}

struct Bound {
    key: Key,
    colormap: Colormap,
    bind_group: wgpu::BindGroup,
    textures: Textures,
}

pub(super) struct Textures {
    pub image: wgpu::Texture,
    pub attention: wgpu::Texture,
    pub labels: wgpu::Texture,
}

/// A bind group layout: a uniform buffer at binding 0 (seen by `uniform_stages`), then one
/// texture per entry of `textures` (sample type, dimension) at bindings 1, 2, …
pub(super) fn layout_of(
    device: &wgpu::Device,
    label: &'static str,
    uniform_stages: wgpu::ShaderStages,
    textures: &[(wgpu::TextureSampleType, wgpu::TextureViewDimension)],
) -> wgpu::BindGroupLayout {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: uniform_stages,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    entries.extend(textures.iter().enumerate().map(|(k, (sample_type, dim))| wgpu::BindGroupLayoutEntry {
        binding: k as u32 + 1,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: *sample_type,
            view_dimension: *dim,
            multisampled: false,
        },
        count: None,
    }));
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// A bind group of `layout_of`'s shape: `uniforms` at binding 0, `views` at 1, 2, …
pub(super) fn bind_group_of(
    device: &wgpu::Device,
    label: &'static str,
    layout: &wgpu::BindGroupLayout,
    uniforms: &wgpu::Buffer,
    views: &[&wgpu::TextureView],
) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniforms.as_entire_binding(),
    }];
    entries.extend(views.iter().enumerate().map(|(k, v)| wgpu::BindGroupEntry {
        binding: k as u32 + 1,
        resource: wgpu::BindingResource::TextureView(v),
    }));
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

impl SliceTarget {
    /// Writes the slice shader's uniforms (only when they changed).
    pub(super) fn write_uniforms(&mut self, queue: &wgpu::Queue, uniforms: &SliceUniforms) {
        if self.written.as_ref() != Some(uniforms) {
            queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(uniforms));
            self.written = Some(*uniforms);
        }
    }

    /// What a picture of `size` pixels drawn now would show (None: nothing is bound yet).
    fn stamp(&self, size: [u32; 2]) -> Option<Stamp> {
        let bound = self.bound.as_ref()?;
        Some(Stamp {
            key: bound.key,
            colormap: bound.colormap,
            uniforms: self.written?,
            size,
        })
    }

    /// Notes what this frame shows at `size` pixels; true when the previous frame showed the
    /// same. While a view changes every frame (scrolling, dragging the window/level), a picture
    /// would be drawn and thrown away each frame: it is drawn directly instead, and kept only
    /// once what it shows holds still.
    pub fn steady(&mut self, size: [u32; 2]) -> bool {
        let now = self.stamp(size);
        let steady = now.is_some() && now == self.last_seen;
        self.last_seen = now;
        steady
    }

    /// The kept picture, when it shows what the target holds now at `size` pixels.
    fn current_picture(&self, size: [u32; 2]) -> Option<&Picture> {
        let stamp = self.stamp(size)?;
        self.picture.as_ref().filter(|p| p.stamp == stamp)
    }

    pub(super) fn is_bound(&self, key: Key, colormap: Colormap) -> bool {
        self.bound.as_ref().is_some_and(|b| b.key == key && b.colormap == colormap)
    }

    /// Takes the textures out (for reuse) when they are `columns` × `rows` reslice targets.
    pub(super) fn take_resliced(&mut self, columns: u32, rows: u32) -> Option<Textures> {
        match self.bound.take() {
            Some(b) if matches!(b.key, Key::Resliced(_)) && b.textures.image.width() == columns && b.textures.image.height() == rows => Some(b.textures),
            other => {
                self.bound = other;
                None
            }
        }
    }
}

impl SliceRenderer {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, target_format: wgpu::TextureFormat) -> SliceRenderer {
        let unfilterable = wgpu::TextureSampleType::Float { filterable: false };
        let d2 = wgpu::TextureViewDimension::D2;
        let layout = layout_of(
            device,
            "focal slice",
            wgpu::ShaderStages::VERTEX_FRAGMENT,
            &[(unfilterable, d2), (unfilterable, d2), (wgpu::TextureSampleType::Uint, d2), (unfilterable, d2)],
        );
        let pipeline = quad_pipeline(
            device,
            "slice.wgsl",
            SHADER,
            &layout,
            &[Some(wgpu::ColorTargetState {
                format: target_format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        );
        let colormaps = Colormap::ALL
            .iter()
            .map(|c| {
                let rgba: Vec<u8> = c.lut().iter().flat_map(|[r, g, b]| [*r, *g, *b, 255]).collect();
                device
                    .create_texture_with_data(
                        queue,
                        &texture_descriptor("colormap", 256, 1, wgpu::TextureFormat::Rgba8Unorm, SAMPLED),
                        wgpu::util::TextureDataOrder::LayerMajor,
                        &rgba,
                    )
                    .create_view(&Default::default())
            })
            .collect();
        SliceRenderer {
            pipeline,
            layout,
            colormaps,
            present: Presenter::new(device, queue, target_format),
        }
    }

    pub fn create_target(&self, device: &wgpu::Device) -> SliceTarget {
        SliceTarget {
            uniforms: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("focal slice uniforms"),
                size: std::mem::size_of::<SliceUniforms>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            written: None,
            bound: None,
            reslice_uniforms: None,
            picture: None,
            last_seen: None,
        }
    }

    /// Writes the uniforms and, when the slice or colormap changed, uploads the textures.
    pub fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &mut SliceTarget,
        pixels: &Arc<SlicePixels>,
        colormap: Colormap,
        uniforms: &SliceUniforms,
    ) {
        target.write_uniforms(queue, uniforms);
        let key = Key::Pixels(pixels.generation());
        if target.is_bound(key, colormap) {
            return;
        }
        let textures = match target.bound.take() {
            Some(b) if b.key == key => b.textures,
            _ => upload(device, queue, pixels),
        };
        self.bind(device, target, key, colormap, textures);
    }

    /// Binds `textures` (holding what `key` says) with `target`'s uniforms and `colormap`.
    pub(super) fn bind(
        &self,
        device: &wgpu::Device,
        target: &mut SliceTarget,
        key: Key,
        colormap: Colormap,
        textures: Textures,
    ) {
        let views = [
            textures.image.create_view(&Default::default()),
            textures.attention.create_view(&Default::default()),
            textures.labels.create_view(&Default::default()),
        ];
        let colormap_view = &self.colormaps[colormap as usize];
        let bind_group = bind_group_of(
            device,
            "focal slice",
            &self.layout,
            &target.uniforms,
            &[&views[0], &views[1], &views[2], colormap_view],
        );
        target.bound = Some(Bound {
            key,
            colormap,
            bind_group,
            textures,
        });
    }

    /// Draws the prepared slice into the target's picture of `size` pixels, unless the picture
    /// already shows it; says whether it drew. Encoded into `encoder`, before the frame's pass.
    pub fn compose(&self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder, target: &mut SliceTarget, size: [u32; 2]) -> bool {
        if size[0] == 0 || size[1] == 0 || target.current_picture(size).is_some() {
            return false;
        }
        let Some(stamp) = target.stamp(size) else { return false };
        let picture = self.present.picture(device, target.picture.take(), stamp);
        // The letterbox is black, as the window's and the exports' background.
        self.draw_slice(&mut black_pass(encoder, picture.view(), "focal view picture"), target);
        target.picture = Some(picture);
        true
    }

    /// Draws the prepared slice over a viewport of `size` pixels: a copy of the composed
    /// picture when it is current (returns true), else the slice shader itself on black
    /// (nothing before `prepare`).
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, target: &SliceTarget, size: [u32; 2]) -> bool {
        match target.current_picture(size) {
            Some(picture) => {
                self.present.draw(pass, picture);
                true
            }
            None => {
                if target.bound.is_some() {
                    self.present.draw_black(pass);
                }
                self.draw_slice(pass, target);
                false
            }
        }
    }

    fn draw_slice(&self, pass: &mut wgpu::RenderPass<'_>, target: &SliceTarget) {
        if let Some(bound) = &target.bound {
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bound.bind_group, &[]);
            pass.draw(0..4, 0..1);
        }
    }
}

fn upload(device: &wgpu::Device, queue: &wgpu::Queue, pixels: &SlicePixels) -> Textures {
    let (w, h) = (pixels.columns as u32, pixels.rows as u32);
    let make = |label, w, h, format, bytes: &[u8]| {
        device.create_texture_with_data(
            queue,
            &texture_descriptor(label, w, h, format, SAMPLED),
            wgpu::util::TextureDataOrder::LayerMajor,
            bytes,
        )
    };
    let rgba: Vec<f32> = if pixels.is_color() {
        pixels
            .image
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 1.0])
            .collect()
    } else {
        pixels.image.iter().flat_map(|&v| [v, v, v, 1.0]).collect()
    };
    let image = make(
        "slice image",
        w,
        h,
        wgpu::TextureFormat::Rgba32Float,
        bytemuck::cast_slice(&rgba),
    );
    // Absent overlays get a 1×1 texture the uniforms switch off.
    let attention = match &pixels.attention {
        Some(a) => make(
            "slice attention",
            w,
            h,
            wgpu::TextureFormat::R32Float,
            bytemuck::cast_slice(a),
        ),
        None => make("no attention", 1, 1, wgpu::TextureFormat::R32Float, &[0; 4]),
    };
    let labels = match &pixels.labels {
        Some(l) => make("slice labels", w, h, wgpu::TextureFormat::R8Uint, l),
        None => make("no labels", 1, 1, wgpu::TextureFormat::R8Uint, &[0]),
    };
    Textures {
        image,
        attention,
        labels,
    }
}
