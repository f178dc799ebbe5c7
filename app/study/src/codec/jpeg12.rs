//! A decoder for 12-bit sequential DCT JPEG (ITU T.81 extended process, DICOM transfer syntax
//! 1.2.840.10008.1.2.4.51), which dicom-rs's JPEG decoder refuses. Huffman coded, 1–4
//! components with any sampling factors, restart intervals; no progressive or arithmetic
//! coding (DICOM does not use them with 12 bits). Output is one u16 per sample, interleaved.

#[derive(Debug, thiserror::Error)]
pub enum Jpeg12Error {
    #[error("JPEG stream ends early")]
    Truncated,
    #[error("JPEG stream is malformed: {0}")]
    Malformed(&'static str),
    #[error("JPEG feature not supported: {0}")]
    Unsupported(&'static str),
}

type Result<T> = std::result::Result<T, Jpeg12Error>;

/// Sample precision declared by the first frame header, if any.
pub fn precision(data: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = data[i + 1];
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            return data.get(i + 4).copied();
        }
        if marker == 0xFF || marker == 0x00 || (0xD0..=0xD9).contains(&marker) {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        i += 2 + len;
    }
    None
}

#[derive(Clone, Default)]
struct Huffman {
    // Canonical decoding tables (T.81 F.2.2.3).
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self> {
        let mut h = Huffman {
            maxcode: [-1; 18],
            values,
            ..Default::default()
        };
        let mut code = 0i32;
        let mut k = 0i32;
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                h.valptr[len] = k;
                h.mincode[len] = code;
                code += n;
                k += n;
                h.maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        h.maxcode[17] = i32::MAX;
        if k as usize > h.values.len() {
            return Err(Jpeg12Error::Malformed("Huffman table shorter than its counts"));
        }
        Ok(h)
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    count: u32,
    hit_marker: bool,
}

impl<'a> Bits<'a> {
    fn fill(&mut self) {
        while self.count <= 24 {
            let mut byte = 0u32;
            if !self.hit_marker && self.pos < self.data.len() {
                let b = self.data[self.pos];
                if b == 0xFF {
                    let next = self.data.get(self.pos + 1).copied().unwrap_or(0xD9);
                    if next == 0x00 {
                        self.pos += 2;
                        byte = 0xFF;
                    } else {
                        self.hit_marker = true;
                    }
                } else {
                    self.pos += 1;
                    byte = u32::from(b);
                }
            }
            self.acc |= byte << (24 - self.count);
            self.count += 8;
        }
    }

    fn bit(&mut self) -> i32 {
        if self.count == 0 {
            self.fill();
        }
        let b = (self.acc >> 31) as i32;
        self.acc <<= 1;
        self.count -= 1;
        b
    }

    fn bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.fill();
        }
        let v = (self.acc >> (32 - n)) as i32;
        self.acc <<= n;
        self.count -= n;
        v
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8> {
        let mut code = self.bit();
        for len in 1..=16 {
            if code <= h.maxcode[len] {
                let idx = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(idx as usize)
                    .copied()
                    .ok_or(Jpeg12Error::Malformed("bad Huffman code"));
            }
            code = (code << 1) | self.bit();
        }
        Err(Jpeg12Error::Malformed("bad Huffman code"))
    }

    /// Skips to just after the next RSTn marker and resets the bit buffer.
    fn restart(&mut self) {
        self.acc = 0;
        self.count = 0;
        self.hit_marker = false;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF && (0xD0..=0xD7).contains(&self.data[self.pos + 1]) {
                self.pos += 2;
                return;
            }
            self.pos += 1;
        }
    }
}

fn extend(v: i32, n: u32) -> i32 {
    if n == 0 {
        0
    } else if v < (1 << (n - 1)) {
        v - (1 << n) + 1
    } else {
        v
    }
}

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    td: usize,
    ta: usize,
    /// Coefficient-domain output, in blocks, then pixels.
    width_blocks: usize,
    height_blocks: usize,
    pixels: Vec<f32>,
}

/// cos((2x+1)uπ/16), scaled by 1/√2 for u = 0: the basis of the 8-point inverse DCT.
static COSINES: std::sync::LazyLock<[[f64; 8]; 8]> = std::sync::LazyLock::new(|| {
    let mut cos = [[0f64; 8]; 8];
    for (x, row) in cos.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let scale = if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
            *v = scale * (((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos();
        }
    }
    cos
});

/// 8×8 inverse DCT (separable, double precision) with level shift and clamping.
fn idct_block(coef: &[i32; 64], q: &[u16; 64], out: &mut [f32], stride: usize, shift: f32, max: f32) {
    let mut tmp = [0f64; 64];
    let cos = &*COSINES;
    let deq: [f64; 64] = std::array::from_fn(|i| f64::from(coef[i]) * f64::from(q[i]));
    for y in 0..8 {
        for u in 0..8 {
            let mut s = 0.0;
            for v in 0..8 {
                s += cos[y][v] * deq[v * 8 + u];
            }
            tmp[y * 8 + u] = s;
        }
    }
    for y in 0..8 {
        for x in 0..8 {
            let mut s = 0.0;
            for u in 0..8 {
                s += cos[x][u] * tmp[y * 8 + u];
            }
            let v = (s / 4.0 + f64::from(shift)).round().clamp(0.0, f64::from(max));
            out[y * stride + x] = v as f32;
        }
    }
}

/// Decodes a 12-bit (or 8-bit) sequential Huffman JPEG to interleaved samples.
pub fn decode(data: &[u8]) -> Result<Vec<u16>> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(Jpeg12Error::Malformed("no start-of-image marker"));
    }
    let mut qt = [[1u16; 64]; 4];
    let mut dc: Vec<Huffman> = vec![Huffman::default(); 4];
    let mut ac: Vec<Huffman> = vec![Huffman::default(); 4];
    let mut components: Vec<Component> = Vec::new();
    let (mut width, mut height, mut precision) = (0usize, 0usize, 8u8);
    let mut restart_interval = 0usize;
    let mut i = 2;
    loop {
        while i < data.len() && data[i] != 0xFF {
            i += 1;
        }
        while i < data.len() && data[i] == 0xFF {
            i += 1;
        }
        let marker = *data.get(i).ok_or(Jpeg12Error::Truncated)?;
        i += 1;
        if marker == 0xD9 {
            return Err(Jpeg12Error::Malformed("no scan before end of image"));
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([
            *data.get(i).ok_or(Jpeg12Error::Truncated)?,
            *data.get(i + 1).ok_or(Jpeg12Error::Truncated)?,
        ]));
        let seg = data.get(i + 2..i + len).ok_or(Jpeg12Error::Truncated)?;
        match marker {
            0xDB => {
                let mut p = 0;
                while p < seg.len() {
                    let (pq, tq) = (seg[p] >> 4, usize::from(seg[p] & 15));
                    p += 1;
                    let table = qt.get_mut(tq).ok_or(Jpeg12Error::Malformed("quantisation table id"))?;
                    for k in 0..64 {
                        let v = if pq == 0 {
                            let b = *seg.get(p).ok_or(Jpeg12Error::Truncated)?;
                            p += 1;
                            u16::from(b)
                        } else {
                            let b = seg.get(p..p + 2).ok_or(Jpeg12Error::Truncated)?;
                            p += 2;
                            u16::from_be_bytes([b[0], b[1]])
                        };
                        table[ZIGZAG[k]] = v;
                    }
                }
            }
            0xC4 => {
                let mut p = 0;
                while p < seg.len() {
                    let (tc, th) = (seg[p] >> 4, usize::from(seg[p] & 15));
                    let counts: [u8; 16] = seg
                        .get(p + 1..p + 17)
                        .ok_or(Jpeg12Error::Truncated)?
                        .try_into()
                        .map_err(|_| Jpeg12Error::Truncated)?;
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let values = seg.get(p + 17..p + 17 + total).ok_or(Jpeg12Error::Truncated)?.to_vec();
                    p += 17 + total;
                    let table = Huffman::new(&counts, values)?;
                    let slot = if tc == 0 { dc.get_mut(th) } else { ac.get_mut(th) };
                    *slot.ok_or(Jpeg12Error::Malformed("Huffman table id"))? = table;
                }
            }
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return Err(Jpeg12Error::Truncated);
                }
                precision = seg[0];
                if precision != 8 && precision != 12 {
                    return Err(Jpeg12Error::Unsupported("sample precision other than 8 or 12 bits"));
                }
                height = usize::from(u16::from_be_bytes([seg[1], seg[2]]));
                width = usize::from(u16::from_be_bytes([seg[3], seg[4]]));
                let n = usize::from(seg[5]);
                if width == 0 || height == 0 || n == 0 || n > 4 {
                    return Err(Jpeg12Error::Malformed("frame header"));
                }
                for c in 0..n {
                    let s = seg.get(6 + c * 3..9 + c * 3).ok_or(Jpeg12Error::Truncated)?;
                    let (h, v) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                        return Err(Jpeg12Error::Malformed("sampling factors"));
                    }
                    components.push(Component {
                        id: s[0],
                        h,
                        v,
                        tq: usize::from(s[2] & 3),
                        td: 0,
                        ta: 0,
                        width_blocks: 0,
                        height_blocks: 0,
                        pixels: Vec::new(),
                    });
                }
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Jpeg12Error::Unsupported(
                    "progressive, lossless or arithmetic-coded JPEG",
                ));
            }
            0xDD => {
                let b = seg.get(..2).ok_or(Jpeg12Error::Truncated)?;
                restart_interval = usize::from(u16::from_be_bytes([b[0], b[1]]));
            }
            0xDA => {
                let n = usize::from(*seg.first().ok_or(Jpeg12Error::Truncated)?);
                let mut order = Vec::new();
                for k in 0..n {
                    let s = seg.get(1 + k * 2..3 + k * 2).ok_or(Jpeg12Error::Truncated)?;
                    let idx = components
                        .iter()
                        .position(|c| c.id == s[0])
                        .ok_or(Jpeg12Error::Malformed("scan names an unknown component"))?;
                    components[idx].td = usize::from(s[1] >> 4) & 3;
                    components[idx].ta = usize::from(s[1] & 15) & 3;
                    order.push(idx);
                }
                let scan_data = data.get(i + len..).ok_or(Jpeg12Error::Truncated)?;
                return decode_scan(
                    scan_data,
                    &mut components,
                    &order,
                    &qt,
                    &dc,
                    &ac,
                    width,
                    height,
                    precision,
                    restart_interval,
                );
            }
            _ => {}
        }
        i += len;
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    components: &mut [Component],
    order: &[usize],
    qt: &[[u16; 64]; 4],
    dc: &[Huffman],
    ac: &[Huffman],
    width: usize,
    height: usize,
    precision: u8,
    restart_interval: usize,
) -> Result<Vec<u16>> {
    if width == 0 || height == 0 {
        return Err(Jpeg12Error::Malformed("scan before frame header"));
    }
    if components.is_empty() || order.len() != components.len() {
        return Err(Jpeg12Error::Unsupported("non-interleaved multi-scan JPEG"));
    }
    let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
    let single = order.len() == 1;
    let (mcux, mcuy) = if single {
        let c = &components[order[0]];
        ((width * c.h).div_ceil(hmax * 8), (height * c.v).div_ceil(vmax * 8))
    } else {
        (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax))
    };
    for c in components.iter_mut() {
        c.width_blocks = if single { mcux } else { mcux * c.h };
        c.height_blocks = if single { mcuy } else { mcuy * c.v };
        c.pixels = vec![0.0; c.width_blocks * 8 * c.height_blocks * 8];
    }
    let shift = f32::from(1u16 << (precision - 1));
    let max = ((1u32 << precision) - 1) as f32;
    let mut bits = Bits {
        data,
        pos: 0,
        acc: 0,
        count: 0,
        hit_marker: false,
    };
    let mut pred = vec![0i32; components.len()];
    let mut coef = [0i32; 64];
    let total = mcux * mcuy;
    for mcu in 0..total {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            bits.restart();
            pred.iter_mut().for_each(|p| *p = 0);
        }
        let (mx, my) = (mcu % mcux, mcu / mcux);
        for &ci in order {
            let (bh, bv) = if single {
                (1, 1)
            } else {
                (components[ci].h, components[ci].v)
            };
            for by in 0..bv {
                for bx in 0..bh {
                    coef.fill(0);
                    let c = &components[ci];
                    let t = bits.decode(&dc[c.td])?;
                    if t > 16 {
                        return Err(Jpeg12Error::Malformed("DC difference category above 16"));
                    }
                    let diff = extend(bits.bits(u32::from(t)), u32::from(t));
                    pred[ci] += diff;
                    coef[0] = pred[ci];
                    let mut k = 1;
                    while k < 64 {
                        let rs = bits.decode(&ac[c.ta])?;
                        let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
                        if s == 0 {
                            if r == 15 {
                                k += 16;
                                continue;
                            }
                            break;
                        }
                        k += r;
                        if k > 63 {
                            return Err(Jpeg12Error::Malformed("coefficient index past 63"));
                        }
                        coef[ZIGZAG[k]] = extend(bits.bits(s), s);
                        k += 1;
                    }
                    let (col, row) = (mx * bh + bx, my * bv + by);
                    let stride = c.width_blocks * 8;
                    let offset = row * 8 * stride + col * 8;
                    let q = qt[c.tq];
                    let comp = &mut components[ci];
                    idct_block(&coef, &q, &mut comp.pixels[offset..], stride, shift, max);
                }
            }
        }
    }
    // Upsample each component to full size (nearest, as chroma in DICOM 12-bit is rare) and interleave.
    let n = components.len();
    let mut out = vec![0u16; width * height * n];
    for (ci, c) in components.iter().enumerate() {
        let stride = c.width_blocks * 8;
        for y in 0..height {
            let sy = y * c.v / vmax;
            for x in 0..width {
                let sx = x * c.h / hmax;
                out[(y * width + x) * n + ci] = c.pixels[sy * stride + sx] as u16;
            }
        }
    }
    Ok(out)
}

/// Whether a three-component JPEG stores RGB directly rather than YCbCr: an Adobe marker
/// says so with transform 0, a JFIF marker says YCbCr; without either, components named
/// 'R', 'G', 'B' mean RGB, and otherwise the DICOM Photometric Interpretation decides.
pub fn stores_rgb(data: &[u8], photometric_is_rgb: bool) -> bool {
    let mut i = 2;
    let mut adobe_transform = None;
    let mut jfif = false;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return false;
        }
        let marker = data[i + 1];
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let seg = data.get(i + 4..i + 2 + len).unwrap_or(&[]);
        match marker {
            0xE0 if seg.starts_with(b"JFIF") => jfif = true,
            // A truncated Adobe segment carries no transform flag: treat it as absent.
            0xEE if seg.starts_with(b"Adobe") => adobe_transform = seg.get(11).copied().or(adobe_transform),
            0xC0 | 0xC1 => {
                if seg.get(5) != Some(&3) {
                    return false;
                }
                let ids: Vec<u8> = (0..3).filter_map(|c| seg.get(6 + c * 3).copied()).collect();
                return match adobe_transform {
                    Some(t) => t == 0,
                    None if jfif => false,
                    None => ids == b"RGB" || photometric_is_rgb,
                };
            }
            0xDA => return false,
            _ => {}
        }
        i += 2 + len;
    }
    false
}
