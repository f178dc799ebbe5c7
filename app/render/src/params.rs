//! The numbers a slice draw needs, as the UI and exports set them, and their uniform layout.

use serde::{Deserialize, Serialize};

/// How label masks are drawn. Keep in sync with the mode bits in shaders/slice.wgsl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskMode {
    Fill = 1,
    Outline = 2,
    FillAndOutline = 3,
}

impl MaskMode {
    pub const ALL: [MaskMode; 3] = [MaskMode::Fill, MaskMode::Outline, MaskMode::FillAndOutline];

    pub fn name(self) -> &'static str {
        match self {
            MaskMode::Fill => "Fill",
            MaskMode::Outline => "Outline",
            MaskMode::FillAndOutline => "Fill + outline",
        }
    }
}

/// Most labels a mask overlay can colour (label values 0..MAX_LABELS-1; 0 is background).
pub const MAX_LABELS: usize = 256;

/// Widest outline the shader draws, in image texels.
pub const MAX_OUTLINE_WIDTH: u32 = 4;

/// Attention overlay settings in the attention map's own units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttentionStyle {
    pub colormap: super::Colormap,
    /// 0 hides the overlay, 1 replaces the image where it shows.
    pub opacity: f32,
    /// Values below it are transparent.
    pub threshold: f32,
    /// Values mapped to the colormap's first and last entries.
    pub range: [f32; 2],
    /// Drawn only on labelled pixels (for the model's attention: inside the labelled brain);
    /// where no label map is loaded, everywhere.
    #[serde(default)]
    pub inside_labels: bool,
}

/// Label overlay settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskStyle {
    pub mode: MaskMode,
    pub fill_opacity: f32,
    /// Outline width in image texels (1..=MAX_OUTLINE_WIDTH).
    pub outline_width: u32,
    /// Colour of each label value; label 0 is never drawn.
    pub colors: Vec<[u8; 3]>,
    pub visible: Vec<bool>,
}

/// Everything that decides how one slice looks, apart from its pixels and where it is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceStyle {
    pub window_center: f64,
    pub window_width: f64,
    pub invert: bool,
    /// None: no attention overlay.
    pub attention: Option<AttentionStyle>,
    /// None: no mask overlay.
    pub mask: Option<MaskStyle>,
}

impl SliceStyle {
    /// The heatmap's colour map (any, when there is no heatmap).
    pub fn colormap(&self) -> super::Colormap {
        self.attention.map_or(super::Colormap::Inferno, |a| a.colormap)
    }
}

/// Where the image lands: image pixel rectangle (0..columns, 0..rows) onto `dest`
/// (min x, min y, max x, max y) inside a target of `target` width × height (any unit).
pub fn image_to_clip(columns: usize, rows: usize, target: [f32; 2], dest: [f32; 4]) -> [f32; 4] {
    let sx = (dest[2] - dest[0]) / columns.max(1) as f32;
    let sy = (dest[3] - dest[1]) / rows.max(1) as f32;
    let (w, h) = (target[0].max(1e-6), target[1].max(1e-6));
    [
        2.0 * sx / w,
        -2.0 * sy / h,
        2.0 * dest[0] / w - 1.0,
        1.0 - 2.0 * dest[1] / h,
    ]
}

/// The uniform block of shaders/slice.wgsl (`Params`); field order and layout must match it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SliceUniforms {
    pub transform: [f32; 4],
    pub image: [f32; 4],
    pub window: [f32; 4],
    pub attention: [f32; 4],
    pub mask: [f32; 4],
    pub labels: [[f32; 4]; MAX_LABELS],
}

impl SliceUniforms {
    /// Uniforms for drawing a `columns` × `rows` slice with `style`, placed by `transform`
    /// (from [`image_to_clip`]). `has_attention`/`has_labels` say whether those textures hold data.
    pub fn new(
        style: &SliceStyle,
        columns: usize,
        rows: usize,
        is_color: bool,
        transform: [f32; 4],
        has_attention: bool,
        has_labels: bool,
    ) -> SliceUniforms {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut u = SliceUniforms {
            transform,
            image: [columns as f32, rows as f32, flag(is_color), flag(style.invert)],
            window: [style.window_center as f32, style.window_width as f32, 0.0, 0.0],
            attention: [0.0; 4],
            mask: [0.0; 4],
            labels: [[0.0; 4]; MAX_LABELS],
        };
        if let (Some(a), true) = (&style.attention, has_attention) {
            u.attention = [a.range[0], a.range[1], a.threshold, a.opacity.clamp(0.0, 1.0)];
            u.window[2] = flag(a.inside_labels && has_labels);
        }
        if let (Some(m), true) = (&style.mask, has_labels) {
            u.mask = [
                m.mode as u32 as f32,
                m.fill_opacity.clamp(0.0, 1.0),
                m.outline_width.clamp(1, MAX_OUTLINE_WIDTH) as f32,
                1.0,
            ];
            for (i, slot) in u.labels.iter_mut().enumerate() {
                let c = m.colors.get(i).copied().unwrap_or([255, 255, 255]);
                let shown = m.visible.get(i).copied().unwrap_or(false);
                *slot = [
                    f32::from(c[0]) / 255.0,
                    f32::from(c[1]) / 255.0,
                    f32::from(c[2]) / 255.0,
                    flag(shown),
                ];
            }
        }
        u
    }
}

impl SliceUniforms {
    /// Uniforms for drawing `pixels` with `style` onto `dest` (min x, min y, max x, max y) of a
    /// `target` width × height, overlays on where the pixels have them.
    pub fn for_pixels(
        style: &SliceStyle,
        pixels: &super::SlicePixels,
        target: [f32; 2],
        dest: [f32; 4],
    ) -> SliceUniforms {
        SliceUniforms::new(
            style,
            pixels.columns,
            pixels.rows,
            pixels.is_color(),
            image_to_clip(pixels.columns, pixels.rows, target, dest),
            pixels.attention.is_some(),
            pixels.labels.is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_block_matches_the_shader_layout() {
        // 5 vec4 + MAX_LABELS vec4 in WGSL's uniform layout, no padding.
        assert_eq!(std::mem::size_of::<SliceUniforms>(), (5 + MAX_LABELS) * 16);
        let wgsl = include_str!("../../../shaders/slice.wgsl");
        assert!(wgsl.contains(&format!("labels: array<vec4<f32>, {MAX_LABELS}>")));
        // MaskMode's discriminants are the shader's mode bits.
        assert!(wgsl.contains("1 = fill, 2 = outline"));
        assert_eq!((MaskMode::Fill as u32, MaskMode::Outline as u32), (1, 2));
        assert_eq!(MaskMode::FillAndOutline as u32, 3);
    }

    #[test]
    fn image_fills_the_destination_rectangle() {
        let t = image_to_clip(100, 50, [200.0, 100.0], [0.0, 0.0, 200.0, 100.0]);
        let clip = |x: f32, y: f32| [x * t[0] + t[2], y * t[1] + t[3]];
        assert_eq!(clip(0.0, 0.0), [-1.0, 1.0]);
        assert_eq!(clip(100.0, 50.0), [1.0, -1.0]);
    }
}
