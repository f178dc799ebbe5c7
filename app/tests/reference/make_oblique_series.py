#!/usr/bin/env python3
"""Writes an oblique series of the sample study's head, as a scanner planned along a tilted
line would acquire it: the real head resampled (trilinear, in patient coordinates) onto a
stack tilted 20 degrees about the left-right axis and 10 degrees about the anterior-posterior
axis, 1 x 1 mm pixels, 2 mm slices, in the same study and frame of reference with its own
series UID. ImageOrientationPatient and ImagePositionPatient say where every voxel is.

usage: make_oblique_series.py SAMPLE_DIR OUT_DIR
prints one JSON line: the stack's geometry (origin, row, column and slice directions, spacing).
"""
import glob
import json
import math
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid

COLUMNS, ROWS, SLICES = 200, 230, 84
SPACING = (1.0, 1.0, 2.0)  # column, row, slice (mm)


def load(sample):
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    vol = np.stack([d.pixel_array.astype(np.float64) for d in files])  # [k, j, i]
    first = files[0]
    ps = [float(v) for v in first.PixelSpacing]  # row spacing, column spacing
    dz = float(files[1].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    iop = [float(v) for v in first.ImageOrientationPatient]
    assert iop == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "the sample is axial"
    return files, vol, origin, np.array([ps[1], ps[0], dz])


def trilinear(vol, idx):
    """vol[k, j, i] at continuous (i, j, k) rows of idx; 0 outside."""
    k_max, j_max, i_max = (s - 1 for s in vol.shape)
    i, j, k = idx[:, 0], idx[:, 1], idx[:, 2]
    inside = (i >= -0.5) & (i <= i_max + 0.5) & (j >= -0.5) & (j <= j_max + 0.5) & (k >= -0.5) & (k <= k_max + 0.5)
    i, j, k = np.clip(i, 0, i_max), np.clip(j, 0, j_max), np.clip(k, 0, k_max)
    i0, j0, k0 = (np.minimum(np.floor(a).astype(int), m - 1) for a, m in ((i, i_max), (j, j_max), (k, k_max)))
    ti, tj, tk = i - i0, j - j0, k - k0
    out = np.zeros(len(idx))
    for dk in (0, 1):
        for dj in (0, 1):
            for di in (0, 1):
                w = (ti if di else 1 - ti) * (tj if dj else 1 - tj) * (tk if dk else 1 - tk)
                out += w * vol[k0 + dk, j0 + dj, i0 + di]
    return np.where(inside, out, 0.0)


def main():
    sample, out = sys.argv[1], sys.argv[2]
    files, vol, origin, spacing = load(sample)
    centre = origin + spacing * (np.array(vol.shape[::-1]) - 1) / 2
    a, b = math.radians(20), math.radians(10)
    row = np.array([math.cos(b), 0.0, math.sin(b)])
    col = np.array([0.0, math.cos(a), -math.sin(a)])
    col -= row * row.dot(col)  # DICOM's row and column directions are orthogonal
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    size = np.array([COLUMNS, ROWS, SLICES])
    first = centre - (row * SPACING[0] * (COLUMNS - 1) + col * SPACING[1] * (ROWS - 1)
                      + normal * SPACING[2] * (SLICES - 1)) / 2
    jj, ii = np.mgrid[0:ROWS, 0:COLUMNS]
    os.makedirs(out, exist_ok=True)
    series_uid = generate_uid(entropy_srcs=["focal-test-oblique-series"])
    template = files[0]
    for k in range(SLICES):
        corner = first + normal * SPACING[2] * k
        p = (corner[None, None, :] + ii[..., None] * row * SPACING[0] + jj[..., None] * col * SPACING[1]).reshape(-1, 3)
        idx = (p - origin) / spacing  # the sample is axial: patient axes are its voxel axes
        plane = trilinear(vol, idx).reshape(ROWS, COLUMNS)
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["focal-test-oblique", str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 9
        ds.SeriesDescription = "T1 oblique 2 mm (resampled test copy)"
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in corner]
        ds.SliceLocation = f"{corner.dot(normal):.4f}"
        ds.PixelSpacing = [f"{SPACING[1]:.4f}", f"{SPACING[0]:.4f}"]
        ds.SliceThickness = f"{SPACING[2]:.3f}"
        ds.SpacingBetweenSlices = f"{SPACING[2]:.3f}"
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.PixelData = np.clip(np.round(plane), 0, 65535).astype(np.uint16).tobytes()
        ds.save_as(os.path.join(out, f"OB{k:04d}.dcm"), enforce_file_format=True)
    print(json.dumps({
        "series": series_uid,
        "size": size.tolist(),
        "origin": first.tolist(),
        "row": row.tolist(),
        "column": col.tolist(),
        "normal": normal.tolist(),
        "spacing": list(SPACING),
    }))


if __name__ == "__main__":
    main()
