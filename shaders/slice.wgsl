// One image slice with its overlays: window/level, attention heatmap, label mask fill and outline.
// The CPU reference in app/src/render/reference.rs does the same math; keep the two in step
// (tests/render_parity.rs compares them pixel by pixel).

struct Params {
    // Image pixel coordinates (0..columns, 0..rows) to clip space: clip = p * xy + zw.
    transform: vec4<f32>,
    // columns, rows, is_colour (0/1), invert (0/1)
    image: vec4<f32>,
    // centre, width (DICOM linear VOI function), attention only on labelled texels (0/1), unused
    window: vec4<f32>,
    // display low, display high, threshold (below it transparent), opacity (0 = hidden)
    attention: vec4<f32>,
    // mode bits (1 = fill, 2 = outline; keep in sync with MaskMode), fill opacity,
    // outline width in texels, labels present (0/1)
    mask: vec4<f32>,
    // rgb colour and visibility (0/1) of labels 0..15
    labels: array<vec4<f32>, 256>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var image_tex: texture_2d<f32>;
@group(0) @binding(2) var attention_tex: texture_2d<f32>;
@group(0) @binding(3) var label_tex: texture_2d<u32>;
@group(0) @binding(4) var colormap_tex: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) pixel: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    // Two triangles covering the image: corners (0,0), (columns,0), (0,rows), (columns,rows).
    let corner = vec2<f32>(f32(index & 1u), f32((index >> 1u) & 1u));
    let pixel = corner * params.image.xy;
    var out: VertexOut;
    out.position = vec4<f32>(pixel * params.transform.xy + params.transform.zw, 0.0, 1.0);
    out.pixel = pixel;
    return out;
}

fn texel_index(i: vec2<f32>) -> vec2<i32> {
    let last = vec2<f32>(params.image.xy) - vec2<f32>(1.0);
    return vec2<i32>(clamp(i, vec2<f32>(0.0), last));
}

// Bilinear interpolation done here because float textures are not filterable everywhere.
fn bilinear_image(p: vec2<f32>) -> vec4<f32> {
    let q = p - vec2<f32>(0.5);
    let i0 = floor(q);
    let f = q - i0;
    let a = textureLoad(image_tex, texel_index(i0), 0);
    let b = textureLoad(image_tex, texel_index(i0 + vec2<f32>(1.0, 0.0)), 0);
    let c = textureLoad(image_tex, texel_index(i0 + vec2<f32>(0.0, 1.0)), 0);
    let d = textureLoad(image_tex, texel_index(i0 + vec2<f32>(1.0, 1.0)), 0);
    return mix(mix(a, b, f.x), mix(c, d, f.x), f.y);
}

fn bilinear_attention(p: vec2<f32>) -> f32 {
    let q = p - vec2<f32>(0.5);
    let i0 = floor(q);
    let f = q - i0;
    let a = textureLoad(attention_tex, texel_index(i0), 0).r;
    let b = textureLoad(attention_tex, texel_index(i0 + vec2<f32>(1.0, 0.0)), 0).r;
    let c = textureLoad(attention_tex, texel_index(i0 + vec2<f32>(0.0, 1.0)), 0).r;
    let d = textureLoad(attention_tex, texel_index(i0 + vec2<f32>(1.0, 1.0)), 0).r;
    return mix(mix(a, b, f.x), mix(c, d, f.x), f.y);
}

// DICOM PS3.3 C.11.2.1.2 linear VOI function, output 0..1.
fn voi(v: f32) -> f32 {
    let c = params.window.x;
    let w1 = max(params.window.y - 1.0, 0.001);
    return clamp((v - (c - 0.5)) / w1 + 0.5, 0.0, 1.0);
}

fn label_at(t: vec2<i32>) -> u32 {
    return textureLoad(label_tex, t, 0).r;
}

fn visible(label: u32) -> bool {
    return label > 0u && label < 256u && params.labels[label].w > 0.5;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let raw = bilinear_image(in.pixel);
    var rgb: vec3<f32>;
    if params.image.z > 0.5 {
        rgb = vec3<f32>(voi(raw.r), voi(raw.g), voi(raw.b));
    } else {
        rgb = vec3<f32>(voi(raw.r));
    }
    if params.image.w > 0.5 {
        rgb = vec3<f32>(1.0) - rgb;
    }

    let opacity = params.attention.w;
    if opacity > 0.0 {
        let a = bilinear_attention(in.pixel);
        let gated = params.window.z > 0.5 && label_at(texel_index(floor(in.pixel))) == 0u;
        if a >= params.attention.z && !gated {
            let span = max(params.attention.y - params.attention.x, 0.000001);
            let t = clamp((a - params.attention.x) / span, 0.0, 1.0);
            let entry = i32(floor(t * 255.0 + 0.5));
            let lut = textureLoad(colormap_tex, vec2<i32>(entry, 0), 0).rgb;
            rgb = mix(rgb, lut, opacity);
        }
    }

    if params.mask.w > 0.5 {
        let mode = u32(params.mask.x);
        let t = texel_index(floor(in.pixel));
        let label = label_at(t);
        if visible(label) {
            let colour = params.labels[label].rgb;
            if (mode & 1u) != 0u {
                rgb = mix(rgb, colour, params.mask.y);
            }
            if (mode & 2u) != 0u {
                // A texel is on the outline when a texel within `width` (Chebyshev distance,
                // inside the image) holds another label.
                let r = i32(params.mask.z);
                let size = vec2<i32>(params.image.xy);
                var edge = false;
                for (var dy = -r; dy <= r; dy++) {
                    for (var dx = -r; dx <= r; dx++) {
                        let n = t + vec2<i32>(dx, dy);
                        if n.x >= 0 && n.y >= 0 && n.x < size.x && n.y < size.y && label_at(n) != label {
                            edge = true;
                        }
                    }
                }
                if edge {
                    rgb = colour;
                }
            }
        }
    }
    return vec4<f32>(rgb, 1.0);
}
