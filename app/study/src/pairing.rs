//! Pairing another series of the same head with the analysed one: both must belong to one
//! patient and one frame of reference and overlap in patient coordinates; the other series is
//! then resampled onto the analysed series' grid (trilinear, zero outside its coverage).

use super::reformat::{PatientToVoxel, trilinear};
use super::series::Stack;
use super::volume::Volume;

/// Why a series cannot be paired with the analysed one. Messages never hold identifiers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PairingError {
    #[error("series {uid} belongs to another patient (Patient ID or name differs); only series of one head can be combined")]
    OtherPatient { uid: String },
    #[error(
        "series {uid} has another frame of reference (FrameOfReferenceUID differs), so its patient coordinates cannot be compared with the analysed series; register it to the analysed series first"
    )]
    OtherFrameOfReference { uid: String },
    #[error("series {uid} has no usable geometry (ImagePositionPatient / ImageOrientationPatient), so it cannot be placed")]
    NoGeometry { uid: String },
    #[error("series {uid} is in colour; only grey-level series can be combined")]
    Colour { uid: String },
    #[error(
        "series {uid} does not overlap the analysed series: it covers {percent:.1}% of its volume (at least {min_percent:.0}% is needed)"
    )]
    NoOverlap { uid: String, percent: f64, min_percent: f64 },
}

/// Least share of the analysed volume another series must cover to be used.
pub const MIN_COVERAGE: f64 = 0.10;

/// Checks that `other` shows the same head as `primary` in the same patient coordinates.
pub fn check_same_head(primary: &Stack, other: &Stack, other_uid: &str) -> Result<(), PairingError> {
    let (Some(a), Some(b)) = (primary.slices.first(), other.slices.first()) else {
        return Err(PairingError::NoGeometry { uid: other_uid.into() });
    };
    let (pa, pb) = (&a.instance.patient, &b.instance.patient);
    let differs = |x: &Option<String>, y: &Option<String>| matches!((x, y), (Some(x), Some(y)) if x.trim() != y.trim());
    if differs(&pa.id, &pb.id) || (pa.id.is_none() || pb.id.is_none()) && differs(&pa.name, &pb.name) {
        return Err(PairingError::OtherPatient { uid: other_uid.into() });
    }
    if a.instance.frame_of_reference_uid != b.instance.frame_of_reference_uid {
        return Err(PairingError::OtherFrameOfReference { uid: other_uid.into() });
    }
    if primary.geometry.is_none() || other.geometry.is_none() {
        return Err(PairingError::NoGeometry { uid: other_uid.into() });
    }
    Ok(())
}

/// `other` resampled onto `primary`'s grid, and the share of `primary`'s voxels it covers.
pub fn resample_onto(primary: &Volume, other: &Volume, other_uid: &str) -> Result<(Volume, f64), PairingError> {
    let no_geometry = || PairingError::NoGeometry { uid: other_uid.into() };
    let (Some(target), Some(source)) = (primary.geometry.as_ref(), other.geometry.as_ref()) else {
        return Err(no_geometry());
    };
    if other.channels != 1 || primary.channels != 1 {
        return Err(PairingError::Colour { uid: other_uid.into() });
    }
    let to_source = PatientToVoxel::new(source).ok_or_else(no_geometry)?;
    let (c, r, s) = (primary.columns, primary.rows, primary.slices);
    let mut data = vec![0f32; c * r * s];
    let mut covered = 0usize;
    for k in 0..s {
        for j in 0..r {
            for i in 0..c {
                let p = target.voxel_to_patient(i as f64, j as f64, k as f64);
                if let Some(v) = trilinear(&other.data, [other.columns, other.rows, other.slices], to_source.apply(&p)) {
                    data[(k * r + j) * c + i] = v;
                    covered += 1;
                }
            }
        }
    }
    let coverage = covered as f64 / (c * r * s).max(1) as f64;
    if coverage < MIN_COVERAGE {
        return Err(PairingError::NoOverlap {
            uid: other_uid.into(),
            percent: coverage * 100.0,
            min_percent: MIN_COVERAGE * 100.0,
        });
    }
    let volume = Volume {
        columns: c,
        rows: r,
        slices: s,
        channels: 1,
        data,
        geometry: primary.geometry.clone(),
        window: other.window,
        inverted: other.inverted,
        modality: other.modality.clone(),
        skipped: Vec::new(),
        contrast: other.contrast,
        resampled_from_mm: Some(source.spacing),
    };
    Ok((volume, coverage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{StackGeometry, Vec3};
    use crate::WindowLevel;

    fn volume(c: usize, r: usize, s: usize, geometry: StackGeometry, f: impl Fn(Vec3) -> f32) -> Volume {
        let mut data = Vec::with_capacity(c * r * s);
        for k in 0..s {
            for j in 0..r {
                for i in 0..c {
                    data.push(f(geometry.voxel_to_patient(i as f64, j as f64, k as f64)));
                }
            }
        }
        Volume {
            columns: c,
            rows: r,
            slices: s,
            channels: 1,
            data,
            geometry: Some(geometry),
            window: WindowLevel { center: 0.0, width: 1.0 },
            inverted: false,
            modality: None,
            skipped: Vec::new(),
            contrast: false,
            resampled_from_mm: None,
        }
    }

    fn axial(origin: Vec3, spacing: Vec3) -> StackGeometry {
        StackGeometry {
            origin,
            row_direction: [1.0, 0.0, 0.0],
            column_direction: [0.0, 1.0, 0.0],
            slice_direction: [0.0, 0.0, 1.0],
            spacing,
        }
    }

    /// A linear function of patient position is reproduced exactly by trilinear resampling
    /// from a coarser, shifted, sagittal grid; voxels outside it are zero and counted out.
    #[test]
    fn resampling_follows_patient_coordinates() {
        let f = |p: Vec3| (2.0 * p[0] + 3.0 * p[1] - p[2] + 100.0) as f32;
        let primary = volume(20, 16, 10, axial([0.0, 0.0, 0.0], [1.0, 1.0, 2.0]), |_| 1.0);
        let sagittal = StackGeometry {
            origin: [-3.0, -2.0, 30.0],
            row_direction: [0.0, 1.0, 0.0],
            column_direction: [0.0, 0.0, -1.0],
            slice_direction: [1.0, 0.0, 0.0],
            spacing: [1.5, 1.5, 3.0],
        };
        let other = volume(14, 24, 6, sagittal, f);
        let (out, coverage) = resample_onto(&primary, &other, "x").expect("overlaps");
        let g = primary.geometry.as_ref().expect("geometry");
        let mut inside = 0;
        for k in 0..10 {
            for j in 0..16 {
                for i in 0..20 {
                    let v = out.data[(k * 16 + j) * 20 + i];
                    let p = g.voxel_to_patient(i as f64, j as f64, k as f64);
                    // The sagittal stack's slice centres span x in [-3, 12]; it counts as
                    // covering half a slice further, to 13.5.
                    if p[0] <= 12.0 {
                        assert!((v - f(p)).abs() < 1e-3, "({i},{j},{k}): {v} vs {}", f(p));
                        inside += 1;
                    } else if p[0] > 13.5 {
                        assert_eq!(v, 0.0);
                    }
                }
            }
        }
        assert!(inside > 0);
        assert!(coverage > 0.5 && coverage < 1.0, "{coverage}");
    }

    #[test]
    fn a_series_elsewhere_is_refused() {
        let primary = volume(10, 10, 5, axial([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), |_| 1.0);
        let far = volume(10, 10, 5, axial([500.0, 0.0, 0.0], [1.0, 1.0, 1.0]), |_| 1.0);
        let err = resample_onto(&primary, &far, "1.2.3").expect_err("no overlap");
        assert!(matches!(err, PairingError::NoOverlap { .. }));
        assert!(err.to_string().contains("1.2.3") && err.to_string().contains("0.0%"), "{err}");
    }
}
