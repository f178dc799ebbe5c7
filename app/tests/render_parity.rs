//! The slice shader (run offscreen through wgpu, on whatever adapter the machine has: Mesa's
//! lavapipe in CI) against the CPU reference of the same math: window/level, colormap,
//! blending within 1/255 per channel, and the label outline pixel for pixel.

mod common;

use std::sync::Arc;

use focal::render::{
    AttentionStyle, Colormap, MaskMode, MaskStyle, OffscreenRenderer, ReslicePlane, RgbaImage, SlicePixels,
    SliceStyle, SliceUniforms, VolumeLayer, VolumePixels, render_reference, reslice_reference,
};
use focal::study::reformat::{Plane, Reformat};

/// Labels from intensity bands: three regions with real, ragged borders.
fn band_labels(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .map(|&v| match v {
            v if v < 20.0 => 0,
            v if v < 60.0 => 1,
            v if v < 100.0 => 2,
            _ => 3,
        })
        .collect()
}

/// A sample-study slice with labels from intensity bands (three regions with real, ragged
/// borders) and a smooth attention field peaking off-centre.
fn test_slice() -> Arc<SlicePixels> {
    let (_, volume) = common::sample_volume();
    let k = volume.slices / 2;
    let image = volume.slice(k).expect("slice").to_vec();
    let (w, h) = (volume.columns, volume.rows);
    let labels = band_labels(&image);
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
            inside_labels: false,
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
    let colormap = style.colormap();
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
    // Attention kept inside the labels: background pixels with strong attention, which the
    // ungated overlay colours, stay as the image; labelled pixels still change.
    let hot_background: Vec<usize> = (0..att.len()).filter(|&i| labels[i] == 0 && att[i] > 0.5).collect();
    assert!(hot_background.iter().filter(|&&i| changed(i)).count() > 100, "no attention on the background to gate");
    let mut gated_style = style(MaskMode::Fill, Colormap::Turbo, 1, false);
    gated_style.attention.as_mut().expect("attention").inside_labels = true;
    gated_style.mask = None;
    let gated = gpu.render(&pixels, &gated_style, w, h, dest).expect("render");
    let gated_changed = |i: usize| base.data[i * 4..i * 4 + 3] != gated.data[i * 4..i * 4 + 3];
    assert!(hot_background.iter().all(|&i| !gated_changed(i)), "gated attention drawn on the background");
    assert!((0..att.len()).filter(|&i| labels[i] == 2 && gated_changed(i)).count() > 1000);
    let mut gated_with_mask = style(MaskMode::FillAndOutline, Colormap::Turbo, 1, false);
    gated_with_mask.attention.as_mut().expect("attention").inside_labels = true;
    check("gated", &pixels, &gated_with_mask, [w, h], dest);
}

/// The sample head as a volume with labels from intensity bands and a smooth 3D attention
/// field, on a stack geometry tilted 20° and 10° (as an oblique acquisition would be).
fn tilted_volume() -> (focal::study::geometry::StackGeometry, VolumePixels) {
    let (_, volume) = common::sample_volume();
    let (c, r, s) = (volume.columns, volume.rows, volume.slices);
    let labels = band_labels(&volume.data);
    let attention: Vec<f32> = (0..c * r * s)
        .map(|i| {
            let (x, y, z) = ((i % c) as f32 / c as f32, (i / c % r) as f32 / r as f32, (i / (c * r)) as f32 / s as f32);
            (-((x - 0.6).powi(2) + (y - 0.4).powi(2) + (z - 0.5).powi(2)) * 8.0).exp()
        })
        .collect();
    let (a, b) = (20f64.to_radians(), 10f64.to_radians());
    let row = [b.cos(), 0.0, b.sin()];
    let col = [0.0, a.cos(), -a.sin()];
    let n = focal::study::geometry::normalize(&focal::study::geometry::cross(&row, &col));
    let geometry = focal::study::geometry::StackGeometry {
        origin: [-90.0, -110.0, -60.0],
        row_direction: row,
        column_direction: col,
        slice_direction: n,
        spacing: [1.0, 1.0, 2.0],
    };
    let layer = |v: Vec<f32>| Arc::new(VolumeLayer::new(Arc::new(v)));
    let size = [c as u32, r as u32, s as u32];
    let pixels = VolumePixels::new(
        size,
        layer(volume.data.clone()),
        Some(layer(attention)),
        Some(Arc::new(VolumeLayer::new(Arc::new(labels)))),
    )
    .expect("consistent layers");
    (geometry, pixels)
}

/// The GPU reformat + slice draw against the CPU reslice + CPU slice reference.
fn check_resliced(name: &str, volume: &VolumePixels, plane: &ReslicePlane, style: &SliceStyle, outline: bool) {
    let mut gpu = OffscreenRenderer::new().expect("a wgpu adapter (Mesa lavapipe in CI)");
    let (w, h) = (plane.columns * 2, plane.rows * 2);
    let dest = [0.0, 0.0, w as f32, h as f32];
    let got = gpu.render_resliced(volume, plane, style, w, h, dest).expect("render");
    let pixels = reslice_reference(volume, plane).expect("reference pixels");
    let u = SliceUniforms::for_pixels(style, &pixels, [w as f32, h as f32], dest);
    let colormap = style.colormap();
    let want = render_reference(&pixels, &u, colormap, w, h);
    let (max, over) = max_channel_difference(&got, &want);
    // The GPU places samples in f32, the CPU in f64: a label picked at a voxel's edge may differ.
    let share = over as f64 / got.data.len() as f64;
    eprintln!("{name}: {w}x{h}, max channel difference {max}/255, {over} values over 1 ({share:.5})");
    assert!(share < 0.002, "{name}: {over} values differ by more than 1/255 (max {max})");
    let brain = pixels.image.iter().filter(|&&v| v > 40.0).count();
    assert!(brain > 2000, "{name}: the plane should cut through the head ({brain} pixels)");
    if outline {
        let colors = &style.mask.as_ref().expect("mask").colors;
        let (g, wnt) = (outline_map(&got, colors), outline_map(&want, colors));
        let n = wnt.iter().filter(|&&b| b).count();
        let mismatched = g.iter().zip(&wnt).filter(|(a, b)| a != b).count();
        eprintln!("{name}: {n} outline pixels, {mismatched} mismatched");
        assert!(n > 500, "{name}: outline visible");
        assert!((mismatched as f64) < 0.01 * n as f64, "{name}: outline differs in {mismatched} pixels");
    }
}

#[test]
fn reformatted_planes_of_a_tilted_stack_match_the_cpu_reference() {
    let (geometry, volume) = tilted_volume();
    let dims = volume.dims();
    let centre = geometry.voxel_to_patient(dims[0] as f64 / 2.0, dims[1] as f64 / 2.0, dims[2] as f64 / 2.0);
    let style = style(MaskMode::FillAndOutline, Colormap::Inferno, 1, false);
    for plane in Plane::ALL {
        let r = Reformat::new(&geometry, dims, plane, &centre).expect("reformat");
        check_resliced(plane.name(), &volume, &ReslicePlane::of(&r), &style, true);
    }
    let r = Reformat::new(&geometry, dims, Plane::Coronal, &centre).expect("reformat");
    check_resliced("coronal MIP", &volume, &ReslicePlane::projection_of(&r), &style, false);
}
