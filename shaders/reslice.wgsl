// Reformatting: one plane (or a maximum-intensity slab) through the volume's 3D textures,
// written into the 2D textures that slice.wgsl draws, so the overlays of a reformatted view
// are the slice view's own. Trilinear for the image and the heatmap, nearest voxel for the
// labels, as app/src/study/reformat.rs does on the CPU (render/reference.rs uses it; keep
// the three in step: tests/render_parity.rs compares them).

struct Reslice {
    // Voxel index (column, row, slice) at picture coordinate (0, 0); w: slab samples (1 = a plane).
    origin: vec4<f32>,
    // Voxel step per picture column; w: 1 = maximum intensity over the slab.
    du: vec4<f32>,
    // Voxel step per picture row; w: heatmap present (0/1).
    dv: vec4<f32>,
    // Voxel step between slab samples; w: labels present (0/1).
    dn: vec4<f32>,
    // Volume columns, rows, slices; w: the value written outside the volume.
    size: vec4<f32>,
};

@group(0) @binding(0) var<uniform> r: Reslice;
@group(0) @binding(1) var image_vol: texture_3d<f32>;
@group(0) @binding(2) var heat_vol: texture_3d<f32>;
@group(0) @binding(3) var label_vol: texture_3d<u32>;

struct Out {
    @location(0) image: vec4<f32>,
    @location(1) heat: f32,
    @location(2) label: u32,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    let corner = vec2<f32>(f32(index & 1u), f32((index >> 1u) & 1u));
    return vec4<f32>(corner.x * 2.0 - 1.0, 1.0 - corner.y * 2.0, 0.0, 1.0);
}

fn inside(p: vec3<f32>) -> bool {
    return all(p >= vec3<f32>(-0.5)) && all(p <= r.size.xyz - vec3<f32>(0.5));
}

fn trilinear(volume: texture_3d<f32>, p: vec3<f32>) -> f32 {
    let n = r.size.xyz;
    let q = clamp(p, vec3<f32>(0.0), n - vec3<f32>(1.0));
    let lo = min(floor(q), max(n - vec3<f32>(2.0), vec3<f32>(0.0)));
    let t = q - lo;
    let last = vec3<i32>(n) - vec3<i32>(1);
    let i = vec3<i32>(lo);
    var v = 0.0;
    for (var c = 0; c < 8; c++) {
        let d = vec3<i32>(c & 1, (c >> 1) & 1, (c >> 2) & 1);
        let w = mix(vec3<f32>(1.0) - t, t, vec3<f32>(d));
        v += w.x * w.y * w.z * textureLoad(volume, min(i + d, last), 0).r;
    }
    return v;
}

fn nearest(p: vec3<f32>) -> vec3<i32> {
    return min(vec3<i32>(max(floor(p + vec3<f32>(0.5)), vec3<f32>(0.0))), vec3<i32>(r.size.xyz) - vec3<i32>(1));
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> Out {
    let base = r.origin.xyz + r.du.xyz * position.x + r.dv.xyz * position.y;
    var out: Out;
    out.image = vec4<f32>(vec3<f32>(r.size.w), 1.0);
    out.heat = 0.0;
    out.label = 0u;
    let samples = max(i32(r.origin.w), 1);
    if r.du.w < 0.5 || samples == 1 {
        if inside(base) {
            out.image = vec4<f32>(vec3<f32>(trilinear(image_vol, base)), 1.0);
            if r.dv.w > 0.5 {
                out.heat = trilinear(heat_vol, base);
            }
            if r.dn.w > 0.5 {
                out.label = textureLoad(label_vol, nearest(base), 0).r;
            }
        }
        return out;
    }
    // Maximum intensity through the slab, nearest voxel (a projection, not a slice: no labels).
    var hit = false;
    var image = r.size.w;
    var heat = 0.0;
    for (var s = 0; s < samples; s++) {
        let p = base + r.dn.xyz * f32(s);
        if inside(p) {
            let v = nearest(p);
            image = select(textureLoad(image_vol, v, 0).r, max(image, textureLoad(image_vol, v, 0).r), hit);
            hit = true;
            if r.dv.w > 0.5 {
                heat = max(heat, textureLoad(heat_vol, v, 0).r);
            }
        }
    }
    out.image = vec4<f32>(vec3<f32>(image), 1.0);
    out.heat = heat;
    return out;
}
