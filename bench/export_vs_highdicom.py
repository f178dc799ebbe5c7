#!/usr/bin/env python3
"""Writing a DICOM SEG of the same label map for the same source series: `focal export --seg`
against highdicom (what a researcher would otherwise script), in one run, as a ratio.

    ~/.cache/focal/py/bin/python bench/export_vs_highdicom.py [--focal BIN] [--repeat 5]

Focal's time is the whole command (scan the study, read the analysis folder, build,
de-identify and write the SEG). highdicom's is reading the source files with pydicom, building
hd.seg.Segmentation (BINARY, same three segments) and saving it; highdicom does not
de-identify, so Focal does strictly more work.
"""
import argparse
import glob
import os
import subprocess
import tempfile
import time

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STUDY = os.path.join(ROOT, "assets", "sample-study")


def read_labels(path):
    raw = open(path, "rb").read()
    dims = np.frombuffer(raw[40:56], "<i2")
    nx, ny, nz = int(dims[1]), int(dims[2]), int(dims[3])
    offset = int(np.frombuffer(raw[108:112], "<f4")[0])
    return np.frombuffer(raw[offset:], "u1")[: nx * ny * nz].reshape(nz, ny, nx)


def highdicom_seg(labels, out):
    t = time.perf_counter()
    sources = [pydicom.dcmread(p) for p in glob.glob(os.path.join(STUDY, "*.dcm"))]
    normal = np.cross(*np.array(sources[0].ImageOrientationPatient, float).reshape(2, 3))
    sources.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    names = ["CSF", "grey matter", "white matter"]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=name,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="brain-tissue", version="1.0.0", family=codes.DCM.ArtificialIntelligence
            ),
        )
        for i, name in enumerate(names)
    ]
    mask = np.stack([labels == i + 1 for i in range(3)], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="bench",
        manufacturer_model_name="bench",
        software_versions="0",
        device_serial_number="0",
    )
    seg.save_as(out)
    return time.perf_counter() - t


def focal_seg(focal, analysis, out):
    t = time.perf_counter()
    subprocess.run([focal, "export", STUDY, "--analysis", analysis, "--out", out, "--seg"],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--focal", default=os.path.join(ROOT, "target", "release", "focal"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        analysis = os.path.join(tmp, "analysis")
        subprocess.run([args.focal, "analyze", STUDY, "--out", analysis], check=True, capture_output=True)
        labels = read_labels(os.path.join(analysis, "labels.nii"))
        f, h = [], []
        for r in range(args.repeat):
            f.append(focal_seg(args.focal, analysis, os.path.join(tmp, f"focal{r}")))
            h.append(highdicom_seg(labels, os.path.join(tmp, f"hd{r}.dcm")))
        fb, hb = min(f), min(h)
        print(f"focal export --seg : best {fb * 1000:.0f} ms (median {np.median(f) * 1000:.0f})")
        print(f"highdicom SEG      : best {hb * 1000:.0f} ms (median {np.median(h) * 1000:.0f})")
        print(f"ratio focal/highdicom (best): {fb / hb:.2f}")


main()
