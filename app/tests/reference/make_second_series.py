#!/usr/bin/env python3
"""Writes a second series of the sample study's head, as a clinical scanner would acquire it:
4 mm thick slices (pairs of the sample's 2 mm slices averaged) at 2 x 2 mm pixels, in the
same study and frame of reference, with its own series UID. Variants for refusals change one
thing: another patient, another frame of reference, or a position 500 mm away; or say the
series was acquired with contrast, by ContrastBolusAgent or by its description alone.

usage: make_second_series.py SAMPLE_DIR OUT_DIR [same|other-patient|other-frame|far|contrast|contrast-description]
"""
import glob
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid


def main():
    sample, out = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else "same"
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    os.makedirs(out, exist_ok=True)
    series_uid = generate_uid(entropy_srcs=["focal-test-second-series", variant])
    frame_uid = files[0].FrameOfReferenceUID if variant != "other-frame" else generate_uid(entropy_srcs=["other-frame"])
    for n in range(len(files) // 2):
        a, b = files[2 * n], files[2 * n + 1]
        pair = (a.pixel_array.astype(np.float64) + b.pixel_array.astype(np.float64)) / 2
        rows, cols = pair.shape
        # 2 x 2 mm pixels: the mean of each 2 x 2 block (odd edges dropped).
        small = pair[: rows // 2 * 2, : cols // 2 * 2].reshape(rows // 2, 2, cols // 2, 2).mean((1, 3))
        ds = a.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["focal-test-second", variant, str(n)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 7
        ds.SeriesDescription = "T1 thick slices 4 mm (test copy)"
        ds.InstanceNumber = n + 1
        ds.FrameOfReferenceUID = frame_uid
        if variant == "other-patient":
            ds.PatientID = "SOMEONE-ELSE-0002"
            ds.PatientName = "Other^Person"
        if variant == "contrast":
            ds.ContrastBolusAgent = "GADOBUTROL (test copy)"
            ds.ContrastBolusRoute = "IV"
        if variant == "contrast-description":
            ds.SeriesDescription = "T1 +C thick slices 4 mm (test copy)"
        ipp = [float(v) for v in a.ImagePositionPatient]
        z = (float(a.ImagePositionPatient[2]) + float(b.ImagePositionPatient[2])) / 2
        spacing = [float(v) for v in a.PixelSpacing]
        # The centre of the first 2 x 2 block is half an old pixel right of and below the old first pixel.
        ipp = [ipp[0] + spacing[1] / 2, ipp[1] + spacing[0] / 2, z]
        if variant == "far":
            ipp[0] += 500.0
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.SliceLocation = f"{z:.4f}"
        ds.PixelSpacing = [f"{spacing[0] * 2:.4f}", f"{spacing[1] * 2:.4f}"]
        ds.SliceThickness = "4.000"
        ds.SpacingBetweenSlices = "4.000"
        ds.Rows, ds.Columns = small.shape
        ds.PixelData = np.round(small).astype(np.uint16).tobytes()
        ds.save_as(os.path.join(out, f"SE{n:04d}.dcm"), enforce_file_format=True)
    print(f"wrote {len(files) // 2} slices of series {series_uid} ({variant}) to {out}")


if __name__ == "__main__":
    main()
