//! NIfTI-1: Focal's writer (single .nii file with the patient geometry), so researchers can
//! open results in any tool, and the reader, through the `nifti` crate (`.nii` and `.nii.gz`).

use std::io::Write;
use std::path::Path;

use crate::study::geometry::StackGeometry;

/// Element types written here.
#[derive(Clone, Copy)]
pub enum Data<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

/// Writes a 3D (or 4D, with `t` > 1) image with the stack's patient geometry (LPS → RAS).
/// Atomic: written to a temporary file beside the target, then renamed.
pub fn write(path: &Path, dims: [usize; 4], geometry: Option<&StackGeometry>, data: Data) -> std::io::Result<()> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 = |h: &mut Vec<u8>, at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put_i32(&mut h, 0, 348);
    let ndim = if dims[3] > 1 { 4 } else { 3 };
    put_i16(&mut h, 40, ndim);
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 42 + 2 * i as usize, i16::try_from(*d).unwrap_or(i16::MAX));
    }
    for i in ndim as usize + 1..8 {
        put_i16(&mut h, 42 + 2 * i, 1);
    }
    let (code, bits): (i16, i16) = match data {
        Data::U8(_) => (2, 8),
        Data::F32(_) => (16, 32),
    };
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bits);
    let spacing = geometry.map_or([1.0; 3], |g| g.spacing);
    put_f32(&mut h, 76, 1.0); // qfac
    for i in 0..3 {
        put_f32(&mut h, 80 + 4 * i, spacing[i] as f32);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2 | 8; // xyzt_units: mm, s
    put_i16(&mut h, 254, 1); // sform_code: scanner
    // sform rows map voxel (i = column, j = row, k = slice) to RAS mm.
    let unit = StackGeometry {
        origin: [0.0; 3],
        row_direction: [1.0, 0.0, 0.0],
        column_direction: [0.0, 1.0, 0.0],
        slice_direction: [0.0, 0.0, 1.0],
        spacing: [1.0; 3],
    };
    for (r, row) in affine_of(geometry.unwrap_or(&unit)).iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *v as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let tmp = path.with_extension("nii.partial");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&h)?;
        match data {
            Data::U8(v) => f.write_all(v)?,
            Data::F32(v) => {
                for x in v {
                    f.write_all(&x.to_le_bytes())?;
                }
            }
        }
        f.flush()?;
    }
    std::fs::rename(&tmp, path)
}

/// A NIfTI-1 image as Focal writes it: dimensions and voxels (column fastest, then row, slice).
#[derive(Debug, Clone, PartialEq)]
pub enum Voxels {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// Reads a NIfTI-1 image of u8 or f32 voxels (`.nii` or `.nii.gz`, either byte order) through
/// the `nifti` crate, such as `focal analyze` writes. Returns the dimensions (x, y, z, t) and
/// the voxels; an image of another type, or with fewer voxels than its header says, is refused
/// naming why.
pub fn read(path: &Path) -> std::io::Result<([usize; 4], Voxels)> {
    read_placed(path).map(|(dims, voxels, _)| (dims, voxels))
}

/// Voxel (i, j, k) → RAS mm, three rows of four: the sform where the file has one, else the
/// voxel sizes alone.
pub type Affine = [[f64; 4]; 3];

/// Where a stack's voxels (column, row, slice) lie in RAS mm (its geometry is LPS).
pub fn affine_of(g: &StackGeometry) -> Affine {
    std::array::from_fn(|r| {
        let flip = if r < 2 { -1.0 } else { 1.0 };
        [
            flip * g.row_direction[r] * g.spacing[0],
            flip * g.column_direction[r] * g.spacing[1],
            flip * g.slice_direction[r] * g.spacing[2],
            flip * g.origin[r],
        ]
    })
}

/// The stack geometry (LPS) an affine (RAS) places voxels by; `affine_of` undone.
pub fn geometry_of(a: &Affine) -> StackGeometry {
    let flip = [-1.0, -1.0, 1.0];
    let column = |c: usize| -> ([f64; 3], f64) {
        let v: [f64; 3] = std::array::from_fn(|r| flip[r] * a[r][c]);
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-12);
        (v.map(|x| x / n), n)
    };
    let ((row, sx), (col, sy), (slice, sz)) = (column(0), column(1), column(2));
    StackGeometry {
        origin: std::array::from_fn(|r| flip[r] * a[r][3]),
        row_direction: row,
        column_direction: col,
        slice_direction: slice,
        spacing: [sx, sy, sz],
    }
}

/// As `read`, with where the voxels lie (`Affine`).
pub fn read_placed(path: &Path) -> std::io::Result<([usize; 4], Voxels, Affine)> {
    use ::nifti::{NiftiError, NiftiObject, NiftiType};
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let object = ::nifti::ReaderOptions::new().read_file(path).map_err(|e| match e {
        NiftiError::Io(io) => std::io::Error::new(io.kind(), format!("{}: {io}", path.display())),
        other => bad(format!("not a NIfTI-1 image Focal can read ({other})")),
    })?;
    let header = object.header();
    let (dims, affine) = placement(header);
    let kind = header.data_type().map_err(|e| bad(e.to_string()))?;
    let volume = object.into_volume();
    let voxels = match kind {
        NiftiType::Uint8 => Voxels::U8(volume.into_nifti_typed_data::<u8>().map_err(|e| bad(e.to_string()))?),
        NiftiType::Float32 => Voxels::F32(volume.into_nifti_typed_data::<f32>().map_err(|e| bad(e.to_string()))?),
        other => return Err(bad(format!("datatype {other:?} is not one Focal writes"))),
    };
    let count = match &voxels {
        Voxels::U8(v) => v.len(),
        Voxels::F32(v) => v.len(),
    };
    if count < dims.iter().product::<usize>() {
        return Err(bad("fewer voxels than the header says".into()));
    }
    Ok((dims, voxels, affine))
}

/// A label map of any integer (or integral float) type, as other tools write them (ITK-SNAP,
/// SynthSeg, TotalSegmentator): dimensions, a label per voxel (negatives and NaN as 0), and
/// where the voxels lie. A 4D map is refused.
pub fn read_labels(path: &Path) -> std::io::Result<([usize; 3], Vec<u32>, Affine)> {
    let clamp = |x: f64| if x.is_finite() && x > 0.0 { x.round().min(f64::from(u32::MAX)) as u32 } else { 0 };
    let (dims, labels, affine, _) = read_3d(path, "a label map has one", "is not a label map", clamp)?;
    Ok((dims, labels, affine))
}

/// A 3D image of any numeric type as 32-bit floats (its scaling applied), with its dimensions
/// and where the voxels lie: what another tool's probability or label map is shown from.
pub fn read_values(path: &Path) -> std::io::Result<([usize; 3], Vec<f32>, Affine)> {
    let (dims, raw, affine, header) =
        read_3d(path, "Focal shows a single 3D map", "is not a map Focal reads", |x| x as f32)?;
    // scl_slope 0 means unscaled (NIfTI-1).
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let values = if slope != 0.0 && (slope != 1.0 || inter != 0.0) {
        raw.into_iter().map(|x| x * slope + inter).collect()
    } else {
        raw
    };
    Ok((dims, values, affine))
}

/// A 3D image of any numeric type, each stored value (read as its own type, exact in f64)
/// made a `T` by `convert`, with its dimensions, placement and header. A 4D image is refused
/// saying `one_volume`, another data type saying `other_type`.
fn read_3d<T>(
    path: &Path,
    one_volume: &str,
    other_type: &str,
    convert: impl Fn(f64) -> T,
) -> std::io::Result<([usize; 3], Vec<T>, Affine, ::nifti::NiftiHeader)> {
    use ::nifti::{NiftiObject, NiftiType};
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let object = ::nifti::ReaderOptions::new()
        .read_file(path)
        .map_err(|e| bad(format!("not a NIfTI-1 image Focal can read ({e})")))?;
    let (dims4, affine) = placement(object.header());
    if dims4[3] > 1 {
        return Err(bad(format!("{} volumes: {one_volume}", dims4[3])));
    }
    let header = object.header().clone();
    let kind = header.data_type().map_err(|e| bad(e.to_string()))?;
    let v = object.into_volume();
    let err = |e: ::nifti::NiftiError| bad(e.to_string());
    // Each stored type read as itself (the crate converts only between some).
    let values: Vec<T> = match kind {
        NiftiType::Uint8 => v.into_nifti_typed_data::<u8>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Int8 => v.into_nifti_typed_data::<i8>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Uint16 => v.into_nifti_typed_data::<u16>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Int16 => v.into_nifti_typed_data::<i16>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Uint32 => v.into_nifti_typed_data::<u32>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Int32 => v.into_nifti_typed_data::<i32>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Float32 => v.into_nifti_typed_data::<f32>().map_err(err)?.into_iter().map(|x| convert(f64::from(x))).collect(),
        NiftiType::Float64 => v.into_nifti_typed_data::<f64>().map_err(err)?.into_iter().map(convert).collect(),
        other => return Err(bad(format!("datatype {other:?} {other_type}"))),
    };
    let dims = [dims4[0], dims4[1], dims4[2]];
    if values.len() < dims.iter().product::<usize>() {
        return Err(bad("fewer voxels than the header says".into()));
    }
    Ok((dims, values, affine, header))
}

/// Dimensions (x, y, z, t) and placement of a header: the sform where the file has one, else
/// the voxel sizes alone.
fn placement(header: &::nifti::NiftiHeader) -> ([usize; 4], Affine) {
    let ndim = usize::from(header.dim[0]).min(7);
    let mut dims = [1usize; 4];
    for (i, d) in dims.iter_mut().enumerate().take(ndim.min(4)) {
        *d = usize::from(header.dim[i + 1]);
    }
    let affine: Affine = if header.sform_code > 0 {
        [header.srow_x, header.srow_y, header.srow_z].map(|r| r.map(f64::from))
    } else {
        let d = |i: usize| f64::from(header.pixdim[i]).abs().max(1e-6);
        [[d(1), 0.0, 0.0, 0.0], [0.0, d(2), 0.0, 0.0], [0.0, 0.0, d(3), 0.0]]
    };
    (dims, affine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_geometry_survives_its_affine() {
        let g = StackGeometry {
            origin: [10.0, -20.0, 30.0],
            row_direction: [0.0, 1.0, 0.0],
            column_direction: [0.0, 0.0, -1.0],
            slice_direction: [-1.0, 0.0, 0.0],
            spacing: [0.5, 0.75, 2.0],
        };
        let back = geometry_of(&affine_of(&g));
        for (x, y) in [back.origin, back.row_direction, back.column_direction, back.slice_direction, back.spacing]
            .iter()
            .flatten()
            .zip([g.origin, g.row_direction, g.column_direction, g.slice_direction, g.spacing].iter().flatten())
        {
            assert!((x - y).abs() < 1e-12, "{back:?}");
        }
    }

    #[test]
    fn written_images_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.nii");
        let labels: Vec<u8> = (0..24).map(|i| (i % 4) as u8).collect();
        write(&p, [2, 3, 4, 1], None, Data::U8(&labels)).expect("write");
        assert_eq!(read(&p).expect("read"), ([2, 3, 4, 1], Voxels::U8(labels)));
        let att: Vec<f32> = (0..24).map(|i| i as f32 / 7.0).collect();
        write(&p, [2, 3, 4, 1], None, Data::F32(&att)).expect("write");
        assert_eq!(read(&p).expect("read"), ([2, 3, 4, 1], Voxels::F32(att.clone())));
        // Compressed, as other tools write it.
        let gz = dir.path().join("a.nii.gz");
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).expect("create"), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &std::fs::read(&p).expect("read")).expect("gzip");
        e.finish().expect("gzip");
        assert_eq!(read(&gz).expect("read .nii.gz"), ([2, 3, 4, 1], Voxels::F32(att)));
        // Cut short: refused, saying why.
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, &bytes[..bytes.len() - 8]).expect("write");
        assert!(read(&p).is_err());
        std::fs::write(&p, b"not an image").expect("write");
        assert!(read(&p).expect_err("refused").to_string().contains("a.nii"));
    }
}
