// Presenting a view's picture: slice.wgsl drew the slice with its overlays into a texture of the
// view's own size in pixels (on black: the letterbox), once per change of what it shows; every
// frame copies it onto the window (or an export) texel for texel, covering the whole view.

@group(0) @binding(0) var picture: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    // The whole viewport: uv (0,0) at its top left, (1,1) at its bottom right.
    let corner = vec2<f32>(f32(index & 1u), f32((index >> 1u) & 1u));
    var out: VertexOut;
    out.position = vec4<f32>(corner.x * 2.0 - 1.0, 1.0 - corner.y * 2.0, 0.0, 1.0);
    out.uv = corner;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    // Pixel centres of a viewport the picture's size land on texel centres: an exact copy.
    let size = vec2<f32>(textureDimensions(picture));
    let texel = vec2<i32>(clamp(floor(in.uv * size), vec2<f32>(0.0), size - vec2<f32>(1.0)));
    return textureLoad(picture, texel, 0);
}
