#!/usr/bin/env python3
"""Writes a copy of the sample study with one synthetic lesion pasted into its right
hemisphere's white matter: a ball of radius 8 mm (about 2.1 mL) at patient (-26, -10, 28) mm
(LPS: 26 mm right of the centre, centrum semiovale), as bright as an enhancing lesion on T1
(1.45 x the white matter around it) with the image's own noise, its edge blended over 1 mm.
Same study, new series and instance UIDs (a reader must never mistake it for the sample).
With --t2, also a T2-like series of the same head (series 10): each value mapped from T1
linearly along the tissue mixtures (the sample's CSF, grey and white matter means on T1, about
48, 84 and 109, to 1.0, 0.62 and 0.42 of white matter's T1; pure fluid continues the CSF-grey
line), with noise of its own (about what a separate acquisition has: additive, as MR noise is,
of 5 % of white matter's value), and the lesion halfway between grey matter and CSF on it.
With --contrast, the T1 series says it was acquired with contrast (ContrastBolusAgent) and two
thin bright structures of the kind that enhance in a healthy head (1.6 x white matter) are
added: a strip on the midline, 4 mm across, 36 mm front to back and 12 mm high, centred at
patient (0, 10, 20) mm (the falx and the inferior sagittal sinus lie there), and a tube 4 mm
across running 50 mm front to back through the left hemisphere's white matter at patient
x = 24, z = 30 mm (a vessel, away from fluid and the midline).
With --flow-void (and --t2), the same strip and tube are dark on the T2-like series, at 0.3 and
0.05 of white matter's value there (as dark as air): dura gives little signal on T2 and a
vessel's flowing blood none (the T1 is left as it is, without contrast unless --contrast says so).
Prints the lesion's volume in mL, the 1-based slices it spans and its centre, as JSON.

usage: make_lesion_study.py SAMPLE_DIR OUT_DIR [--t2] [--contrast] [--flow-void]
"""
import glob
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid

CENTRE = np.array([-26.0, -10.0, 28.0])
RADIUS = 8.0
STRIP_CENTRE = np.array([0.0, 10.0, 20.0])
STRIP_HALF = np.array([2.0, 18.0, 6.0])  # half-widths (mm): left-right, front-back, up-down
TUBE_X, TUBE_Z, TUBE_RADIUS, TUBE_Y = 24.0, 30.0, 2.0, (-15.0, 35.0)
MEANS = (48.0, 84.0, 109.0)  # the sample's CSF, grey and white matter on T1


def t2_like(t1):
    c, g, w = MEANS
    c2, g2, w2 = 1.0, 0.62, 0.42
    out = np.where(t1 < g, g2 + (t1 - g) * (c2 - g2) / (c - g), g2 + (t1 - g) * (w2 - g2) / (w - g))
    out = np.clip(out, 0.15, None) * w
    out[t1 < 0.05 * g] = 0.05 * w
    return out


def save(ds, values, series_uid, entropy, description, number, path):
    """Writes `ds` with `values` as its pixels, as an instance of series `series_uid` (its own
    UID made from `entropy`)."""
    ds.PixelData = np.clip(np.round(values), 0, 65535).astype(np.uint16).tobytes()
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid(entropy_srcs=entropy)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = description
    ds.SeriesNumber = number
    ds.save_as(path, enforce_file_format=True)


def main():
    sample, out = sys.argv[1], sys.argv[2]
    with_t2 = "--t2" in sys.argv[3:]
    contrast = "--contrast" in sys.argv[3:]
    flow_void = "--flow-void" in sys.argv[3:]
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    series_uid = generate_uid(entropy_srcs=["focal-test-lesion-series"])
    t2_uid = generate_uid(entropy_srcs=["focal-test-lesion-t2-series"])
    dy, dx = (float(v) for v in files[0].PixelSpacing)
    # White matter near the lesion: the bright half of the values in a 40 mm cube about it.
    near = []
    for ds in files:
        z = float(ds.ImagePositionPatient[2])
        if abs(z - CENTRE[2]) > 20:
            continue
        x0, y0 = float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1])
        px = ds.pixel_array.astype(np.float64)
        cols = x0 + dx * np.arange(px.shape[1])
        rows = y0 + dy * np.arange(px.shape[0])
        box = px[np.ix_(np.abs(rows - CENTRE[1]) <= 20, np.abs(cols - CENTRE[0]) <= 20)]
        near.append(box.ravel())
    near = np.concatenate(near)
    white = np.median(near[near > np.percentile(near, 60)])
    noise = 0.02 * white
    voxel_ml = dx * dy * float(files[1].ImagePositionPatient[2]) - dx * dy * float(files[0].ImagePositionPatient[2])
    voxel_ml /= 1000.0
    inside, slices = 0, []
    for n, ds in enumerate(files):
        ds = ds.copy()
        x0, y0, z = (float(v) for v in ds.ImagePositionPatient)
        px = ds.pixel_array.astype(np.float64)
        xx = x0 + dx * np.arange(px.shape[1])[None, :]
        yy = y0 + dy * np.arange(px.shape[0])[:, None]
        r = np.sqrt((xx - CENTRE[0]) ** 2 + (yy - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2)
        alpha = np.clip(RADIUS - r + 0.5, 0, 1)
        healthy = px.copy()
        # Each structure's edge blended over 1 mm, as the lesion's.
        strip = np.clip(np.minimum.reduce([STRIP_HALF[0] - np.abs(xx - STRIP_CENTRE[0]) + 0.5 + 0 * yy,
                                           STRIP_HALF[1] - np.abs(yy - STRIP_CENTRE[1]) + 0.5 + 0 * xx,
                                           STRIP_HALF[2] - abs(z - STRIP_CENTRE[2]) + 0.5 + 0 * xx * yy]), 0, 1)
        along = np.clip(np.minimum(yy - TUBE_Y[0], TUBE_Y[1] - yy) + 0.5, 0, 1)
        tube = np.clip(TUBE_RADIUS - np.sqrt((xx - TUBE_X) ** 2 + (z - TUBE_Z) ** 2) + 0.5, 0, 1) * along
        if contrast:
            ds.ContrastBolusAgent = "Gadolinium (test copy)"
            for a in (strip, tube):
                px = a * (1.6 * white + noise * rng.standard_normal(px.shape)) + (1 - a) * px
        if alpha.max() > 0:
            lesion = 1.45 * white + noise * rng.standard_normal(px.shape)
            px = alpha * lesion + (1 - alpha) * px
            count = int((alpha >= 0.5).sum())
            inside += count
            if count:
                slices.append(n + 1)
        save(ds, px, series_uid, ["focal-test-lesion", str(n)], "T1 with a synthetic lesion (test copy)", 9,
             os.path.join(out, f"lesion{n:03d}.dcm"))
        if with_t2:
            if contrast:
                del ds.ContrastBolusAgent  # the T2-like series was not
            w = MEANS[2]
            lesion2 = (0.62 + 0.5 * (1.0 - 0.62)) * w + 0.05 * w * rng.standard_normal(px.shape)
            t2 = alpha * lesion2 + (1 - alpha) * t2_like(healthy) + 0.05 * w * rng.standard_normal(px.shape)
            if flow_void:
                for a, level in ((strip, 0.3), (tube, 0.05)):
                    t2 = a * (level * w + 0.05 * w * rng.standard_normal(px.shape)) + (1 - a) * t2
            save(ds, t2, t2_uid, ["focal-test-lesion-t2", str(n)], "T2-like with a synthetic lesion (test copy)", 10,
                 os.path.join(out, f"t2-{n:03d}.dcm"))
    print(json.dumps({"volume_ml": inside * voxel_ml, "slices": [min(slices), max(slices)],
                      "centre_lps_mm": CENTRE.tolist()}))


if __name__ == "__main__":
    main()
