//! Reformatting on the GPU: the volume and its overlays live in 3D textures (uploaded once per
//! change), and each view's plane is resampled by shaders/reslice.wgsl into that view's 2D
//! slice textures, which the slice pipeline then draws with the usual overlays.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eframe::wgpu;

use super::gpu::{SliceRenderer, SliceTarget, Textures};
use super::pipeline::{Key, texture_descriptor};
use super::{Colormap, SliceUniforms};
use crate::study::reformat::Reformat;

const SHADER: &str = include_str!("../../../shaders/reslice.wgsl");

/// The value a reformatted picture holds outside the volume (drawn black by any window).
pub const OUTSIDE: f32 = -1.0e30;

/// Values shared with the caller without a copy (a loaded volume, an attention map).
pub type Shared<T> = Arc<dyn AsRef<[T]> + Send + Sync>;

/// One 3D plane of values (columns fastest, then rows, then slices) with a generation that
/// changes whenever the values do, so the GPU copy is refreshed only then.
pub struct VolumeLayer<T> {
    pub data: Shared<T>,
    generation: u64,
}

impl<T> VolumeLayer<T> {
    pub fn new(data: Shared<T>) -> VolumeLayer<T> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VolumeLayer {
            data,
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// A grey volume with an optional heatmap and label map on the same grid.
pub struct VolumePixels {
    /// Columns, rows, slices.
    pub size: [u32; 3],
    pub image: Arc<VolumeLayer<f32>>,
    pub heat: Option<Arc<VolumeLayer<f32>>>,
    pub labels: Option<Arc<VolumeLayer<u8>>>,
}

impl VolumePixels {
    /// None when a layer's length does not match the size.
    pub fn new(
        size: [u32; 3],
        image: Arc<VolumeLayer<f32>>,
        heat: Option<Arc<VolumeLayer<f32>>>,
        labels: Option<Arc<VolumeLayer<u8>>>,
    ) -> Option<VolumePixels> {
        let n = size.iter().map(|&s| s as usize).product::<usize>();
        let ok = n > 0
            && (*image.data).as_ref().len() == n
            && heat.as_ref().is_none_or(|h| (*h.data).as_ref().len() == n)
            && labels.as_ref().is_none_or(|l| (*l.data).as_ref().len() == n);
        ok.then_some(VolumePixels {
            size,
            image,
            heat,
            labels,
        })
    }

    fn generations(&self) -> [u64; 3] {
        [
            self.image.generation,
            self.heat.as_ref().map_or(0, |h| h.generation),
            self.labels.as_ref().map_or(0, |l| l.generation),
        ]
    }

    pub fn dims(&self) -> [usize; 3] {
        self.size.map(|s| s as usize)
    }
}

/// Which picture to make from the volume: a `columns` × `rows` plane whose picture coordinate
/// (x, y) samples voxel `origin + du·x + dv·y` (pixel centres at half-integers), or with
/// `slab` > 1 the maximum over `slab` samples `dn` apart from there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReslicePlane {
    pub columns: u32,
    pub rows: u32,
    pub origin: [f64; 3],
    pub du: [f64; 3],
    pub dv: [f64; 3],
    pub dn: [f64; 3],
    pub slab: u32,
}

impl ReslicePlane {
    /// The picture of a reformatted plane.
    pub fn of(r: &Reformat) -> ReslicePlane {
        let [origin, du, dv, _] = r.voxel_map();
        ReslicePlane {
            columns: r.columns as u32,
            rows: r.rows as u32,
            origin,
            du,
            dv,
            dn: [0.0; 3],
            slab: 1,
        }
    }

    /// The maximum-intensity projection through the whole stack along the plane's normal,
    /// one sample per voxel step.
    pub fn projection_of(r: &Reformat) -> ReslicePlane {
        let [near, far] = r.depth_range;
        // From the stack's near face whatever the crosshair's depth: the same projection always.
        let [start, du, dv, along] = r.at_depth(near).voxel_map();
        let samples = ((far - near) / r.step).ceil().max(1.0) as u32;
        ReslicePlane {
            columns: r.columns as u32,
            rows: r.rows as u32,
            origin: start,
            du,
            dv,
            dn: along.map(|v| v * r.step),
            slab: samples.max(2),
        }
    }

    /// Voxel index sampled at picture coordinate (x, y), slab sample `s`.
    pub fn voxel(&self, x: f64, y: f64, s: u32) -> [f64; 3] {
        std::array::from_fn(|a| self.origin[a] + self.du[a] * x + self.dv[a] * y + self.dn[a] * f64::from(s))
    }

    pub fn is_projection(&self) -> bool {
        self.slab > 1
    }
}

/// The uniform block of shaders/reslice.wgsl (`Reslice`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct ResliceUniforms {
    origin: [f32; 4],
    du: [f32; 4],
    dv: [f32; 4],
    dn: [f32; 4],
    size: [f32; 4],
}

impl ResliceUniforms {
    fn new(volume: &VolumePixels, plane: &ReslicePlane) -> ResliceUniforms {
        let v = |a: [f64; 3], w: f32| [a[0] as f32, a[1] as f32, a[2] as f32, w];
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        ResliceUniforms {
            origin: v(plane.origin, plane.slab.max(1) as f32),
            du: v(plane.du, flag(plane.is_projection())),
            dv: v(plane.dv, flag(volume.heat.is_some())),
            dn: v(plane.dn, flag(volume.labels.is_some() && !plane.is_projection())),
            size: [volume.size[0] as f32, volume.size[1] as f32, volume.size[2] as f32, OUTSIDE],
        }
    }
}

struct GpuLayer {
    generation: u64,
    texture: wgpu::Texture,
}

/// The reslice pipeline and the one volume on the GPU.
pub struct Reslicer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    image: Option<GpuLayer>,
    heat: Option<GpuLayer>,
    labels: Option<GpuLayer>,
    /// Stand-ins bound when the volume has no heatmap or labels.
    no_heat: wgpu::Texture,
    no_labels: wgpu::Texture,
}

/// The 2D image texture slice.wgsl reads (RGBA, as for colour slices).
const IMAGE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Float;
/// Image and heatmap values, in the volume and in the heatmap plane.
const VALUE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R32Float;
const LABEL_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R8Uint;

fn volume_texture(device: &wgpu::Device, label: &'static str, size: [u32; 3], format: wgpu::TextureFormat) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: size[2],
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// Uploads `data` (`bytes_per_voxel` each) into a 3D texture in slabs of at most ~64 MB.
fn write_volume(queue: &wgpu::Queue, texture: &wgpu::Texture, size: [u32; 3], data: &[u8], bytes_per_voxel: u32) {
    let plane = (size[0] * size[1] * bytes_per_voxel) as usize;
    let per_write = ((64 << 20) / plane.max(1)).max(1) as u32;
    let mut z = 0;
    while z < size[2] {
        let depth = per_write.min(size[2] - z);
        let start = z as usize * plane;
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: 0, z },
                aspect: wgpu::TextureAspect::All,
            },
            &data[start..start + depth as usize * plane],
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(size[0] * bytes_per_voxel),
                rows_per_image: Some(size[1]),
            },
            wgpu::Extent3d {
                width: size[0],
                height: size[1],
                depth_or_array_layers: depth,
            },
        );
        z += depth;
    }
}

impl Reslicer {
    pub fn new(device: &wgpu::Device) -> Reslicer {
        let unfilterable = wgpu::TextureSampleType::Float { filterable: false };
        let d3 = wgpu::TextureViewDimension::D3;
        let layout = super::gpu::layout_of(
            device,
            "focal reslice",
            wgpu::ShaderStages::FRAGMENT,
            &[(unfilterable, d3), (unfilterable, d3), (wgpu::TextureSampleType::Uint, d3)],
        );
        let target = |format| {
            Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })
        };
        let targets = [target(IMAGE_FORMAT), target(VALUE_FORMAT), target(LABEL_FORMAT)];
        let pipeline = super::pipeline::quad_pipeline(device, "reslice.wgsl", SHADER, &layout, &targets);
        Reslicer {
            pipeline,
            layout,
            image: None,
            heat: None,
            labels: None,
            no_heat: volume_texture(device, "no heat volume", [1, 1, 1], VALUE_FORMAT),
            no_labels: volume_texture(device, "no label volume", [1, 1, 1], LABEL_FORMAT),
        }
    }

    /// Whether this device can hold a volume of `size` voxels as 3D textures.
    pub fn fits(device: &wgpu::Device, size: [u32; 3]) -> bool {
        let limit = device.limits().max_texture_dimension_3d;
        size.iter().all(|&s| s > 0 && s <= limit)
    }

    /// Brings the GPU copy of the volume up to date (only the layers that changed).
    fn sync(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, volume: &VolumePixels) {
        fn refresh<T: bytemuck::Pod>(
            device: &wgpu::Device,
            queue: &wgpu::Queue,
            slot: &mut Option<GpuLayer>,
            layer: Option<&VolumeLayer<T>>,
            size: [u32; 3],
            label: &'static str,
            format: wgpu::TextureFormat,
        ) {
            let Some(layer) = layer else {
                *slot = None;
                return;
            };
            let same_size = |t: &wgpu::Texture| [t.width(), t.height(), t.depth_or_array_layers()] == size;
            if slot.as_ref().is_some_and(|s| s.generation == layer.generation && same_size(&s.texture)) {
                return;
            }
            let texture = match slot.take() {
                Some(s) if same_size(&s.texture) => s.texture,
                _ => volume_texture(device, label, size, format),
            };
            let values: &[T] = (*layer.data).as_ref();
            let bytes: &[u8] = bytemuck::cast_slice(values);
            write_volume(queue, &texture, size, bytes, std::mem::size_of::<T>() as u32);
            *slot = Some(GpuLayer {
                generation: layer.generation,
                texture,
            });
        }
        refresh(device, queue, &mut self.image, Some(&*volume.image), volume.size, "image volume", VALUE_FORMAT);
        refresh(device, queue, &mut self.heat, volume.heat.as_deref(), volume.size, "heat volume", VALUE_FORMAT);
        refresh(device, queue, &mut self.labels, volume.labels.as_deref(), volume.size, "label volume", LABEL_FORMAT);
    }

    /// Writes the slice uniforms and, when the volume or the plane changed, reformats the plane
    /// into `target`'s textures (encoded into `encoder`, before the draw that shows them).
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &mut self,
        renderer: &SliceRenderer,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: &mut SliceTarget,
        volume: &VolumePixels,
        plane: &ReslicePlane,
        colormap: Colormap,
        uniforms: &SliceUniforms,
    ) {
        target.write_uniforms(queue, uniforms);
        if !Reslicer::fits(device, volume.size) || plane.columns == 0 || plane.rows == 0 {
            return;
        }
        let reslice = ResliceUniforms::new(volume, plane);
        let mut hasher = std::hash::DefaultHasher::new();
        (volume.generations(), plane.columns, plane.rows, bytemuck::bytes_of(&reslice)).hash(&mut hasher);
        let key = Key::Resliced(hasher.finish());
        if target.is_bound(key, colormap) {
            return;
        }
        self.sync(device, queue, volume);
        let Some(image) = &self.image else { return };
        let (w, h) = (plane.columns, plane.rows);
        let textures = target.take_resliced(w, h).unwrap_or_else(|| {
            let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::RENDER_ATTACHMENT;
            let make = |label, format| device.create_texture(&texture_descriptor(label, w, h, format, usage));
            Textures {
                image: make("resliced image", IMAGE_FORMAT),
                attention: make("resliced heat", VALUE_FORMAT),
                labels: make("resliced labels", LABEL_FORMAT),
            }
        });
        let buffer = target.reslice_uniforms.get_or_insert_with(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("focal reslice uniforms"),
                size: std::mem::size_of::<ResliceUniforms>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        queue.write_buffer(buffer, 0, bytemuck::bytes_of(&reslice));
        let view = |t: &wgpu::Texture| t.create_view(&Default::default());
        let sources = [
            view(&image.texture),
            view(self.heat.as_ref().map_or(&self.no_heat, |l| &l.texture)),
            view(self.labels.as_ref().map_or(&self.no_labels, |l| &l.texture)),
        ];
        let bind_group =
            super::gpu::bind_group_of(device, "focal reslice", &self.layout, buffer, &[&sources[0], &sources[1], &sources[2]]);
        let outputs = [view(&textures.image), view(&textures.attention), view(&textures.labels)];
        let attachment = |v| {
            Some(wgpu::RenderPassColorAttachment {
                view: v,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
            })
        };
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("focal reslice"),
                color_attachments: &[attachment(&outputs[0]), attachment(&outputs[1]), attachment(&outputs[2])],
                ..Default::default()
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.draw(0..4, 0..1);
        }
        renderer.bind(device, target, key, colormap, textures);
    }
}
