//! The slice shader (run offscreen through wgpu, on whatever adapter the machine has: Mesa's
//! lavapipe in CI) against the CPU reference of the same math: window/level, colormap,
//! blending within 1/255 per channel, and the label outline pixel for pixel.

mod common;

use std::sync::Arc;

use focal::render::{
    AttentionStyle, Colormap, MaskMode, MaskStyle, OffscreenRenderer, RgbaImage, SlicePixels, SliceStyle,
    SliceUniforms, render_reference,
};

/// A sample-study slice with labels from intensity bands (three regions with real, ragged
/// borders) and a smooth attention field peaking off-centre.
fn test_slice() -> Arc<SlicePixels> {
    let (_, volume) = common::sample_volume();
    let k = volume.slices / 2;
    let image = volume.slice(k).expect("slice").to_vec();
    let (w, h) = (volume.columns, volume.rows);
    let labels = image
        .iter()
        .map(|&v| match v {
            v if v < 20.0 => 0,
            v if v < 60.0 => 1,
            v if v < 100.0 => 2,
            _ => 3,
        })
        .collect();
    let attention = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
            (-((x - 0.6).powi(2) + (y - 0.4).powi(2)) * 8.0).exp()
        })
        .collect();
    Arc::new(SlicePixels::new(w, h, 1, image, Some(attention), Some(labels)).expect("consistent planes"))
}

fn style(mode: MaskMode, colormap: Colormap, outline_width: u32, invert: bool) -> SliceStyle {
    SliceStyle {
        window_center: 70.0,
        window_width: 120.0,
        invert,
        attention: Some(AttentionStyle {
            colormap,
            opacity: 0.45,
            threshold: 0.3,
            range: [0.2, 1.0],
        }),
        mask: Some(MaskStyle {
            mode,
            fill_opacity: 0.35,
            outline_width,
            colors: vec![[0, 0, 0], [255, 0, 255], [0, 255, 0], [0, 128, 255]],
            visible: vec![false, true, true, true],
        }),
    }
}

/// Renders on the GPU and on the CPU; returns both.
fn both(pixels: &Arc<SlicePixels>, style: &SliceStyle, size: [u32; 2], dest: [f32; 4]) -> (RgbaImage, RgbaImage) {
    let gpu = OffscreenRenderer::new().expect("a wgpu adapter (Mesa lavapipe in CI)");
    eprintln!("adapter: {}", gpu.adapter);
    let got = gpu.render(pixels, style, size[0], size[1], dest).expect("render");
    let u = SliceUniforms::for_pixels(style, pixels, [size[0] as f32, size[1] as f32], dest);
    let colormap = style.attention.map(|a| a.colormap).unwrap_or(Colormap::Inferno);
    let want = render_reference(pixels, &u, colormap, size[0], size[1]);
    (got, want)
}

fn max_channel_difference(a: &RgbaImage, b: &RgbaImage) -> (u8, usize) {
    let diffs: Vec<u8> = a.data.iter().zip(&b.data).map(|(x, y)| x.abs_diff(*y)).collect();
    (
        diffs.iter().copied().max().unwrap_or(0),
        diffs.iter().filter(|&&d| d > 1).count(),
    )
}

/// Pixels showing exactly one of the label colours (outline mode paints them unblended).
fn outline_map(img: &RgbaImage, colors: &[[u8; 3]]) -> Vec<bool> {
    img.data
        .chunks_exact(4)
        .map(|p| colors[1..].iter().any(|c| p[..3] == c[..]))
        .collect()
}

fn check(name: &str, pixels: &Arc<SlicePixels>, style: &SliceStyle, size: [u32; 2], dest: [f32; 4]) {
    let (got, want) = both(pixels, style, size, dest);
    let (max, over) = max_channel_difference(&got, &want);
    eprintln!("{name}: max channel difference {max}/255, {over} values over 1");
    assert!(
        max <= 1,
        "{name}: GPU and CPU differ by up to {max}/255 ({over} values over 1/255)"
    );
    let colors = &style.mask.as_ref().expect("mask").colors;
    let (g, w) = (outline_map(&got, colors), outline_map(&want, colors));
    let outline = w.iter().filter(|&&b| b).count();
    let mismatched = g.iter().zip(&w).filter(|(a, b)| a != b).count();
    eprintln!("{name}: {outline} outline pixels, {mismatched} mismatched");
    assert!(
        outline > 200,
        "{name}: the outline should be visible ({outline} pixels)"
    );
    assert_eq!(mismatched, 0, "{name}: outline differs in {mismatched} pixels");
}

#[test]
fn one_to_one_fill_and_outline_matches_the_cpu_reference() {
    let pixels = test_slice();
    let (w, h) = (pixels.columns as u32, pixels.rows as u32);
    let style = style(MaskMode::FillAndOutline, Colormap::Inferno, 1, false);
    check("1:1", &pixels, &style, [w, h], [0.0, 0.0, w as f32, h as f32]);
}

#[test]
fn zoomed_panned_inverted_outline_matches_the_cpu_reference() {
    // 3× zoom, shifted so the image overhangs the target: interpolation and clipping both matter.
    let pixels = test_slice();
    let style = style(MaskMode::Outline, Colormap::Jet, 2, true);
    let (w, h) = (pixels.columns as f32 * 3.0, pixels.rows as f32 * 3.0);
    check("3x", &pixels, &style, [400, 300], [-150.0, -90.0, w - 150.0, h - 90.0]);
}

#[test]
fn overlays_change_the_picture_where_they_should() {
    // Guards against a parity test that passes because both sides draw nothing.
    let pixels = test_slice();
    let (w, h) = (pixels.columns as u32, pixels.rows as u32);
    let dest = [0.0, 0.0, w as f32, h as f32];
    let gpu = OffscreenRenderer::new().expect("adapter");
    let mut plain = style(MaskMode::Fill, Colormap::Turbo, 1, false);
    plain.attention = None;
    plain.mask = None;
    let base = gpu.render(&pixels, &plain, w, h, dest).expect("render");
    let overlaid = gpu
        .render(&pixels, &style(MaskMode::Fill, Colormap::Turbo, 1, false), w, h, dest)
        .expect("render");
    let att = pixels.attention.as_ref().expect("attention");
    let labels = pixels.labels.as_ref().expect("labels");
    let changed = |i: usize| base.data[i * 4..i * 4 + 3] != overlaid.data[i * 4..i * 4 + 3];
    // Background label, attention below threshold: untouched. Inside a label: changed.
    let untouched = (0..att.len())
        .filter(|&i| labels[i] == 0 && att[i] < 0.25)
        .all(|i| !changed(i));
    let inside = (0..att.len())
        .filter(|&i| labels[i] == 2)
        .filter(|&i| changed(i))
        .count();
    assert!(untouched, "pixels without overlay changed");
    assert!(inside > 1000, "only {inside} pixels of label 2 show the overlay");
    // Grey levels follow the window: a value at the window centre is mid-grey.
    let centre = (0..att.len()).find(|&i| labels[i] == 0 && att[i] < 0.25 && (pixels.image[i] - 70.0).abs() < 0.5);
    if let Some(i) = centre {
        let g = base.data[i * 4];
        assert!((126..=130).contains(&g), "window centre drew as {g}");
    }
}
