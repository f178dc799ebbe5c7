#!/usr/bin/env python3
"""Focal's whole analysis of a 1 mm head against the classical tissue pipeline a researcher
would otherwise run on it, in one run, as a ratio of wall times.

    ~/.cache/focal/py-tissue/bin/python bench/tissue_vs_atropos.py [--focal BIN] [--repeat 2]

The head: Colin27 at 1 mm (181 axial slices, Debian's mricron-data, which scripts/setup.sh
puts in the cache), written as a DICOM series by models/training/make_sample_study.py.

- Focal: `focal analyze SERIES` with the shipped model (3.3): DICOM decoding, the network on
  every slice, the brain extractor (deepbet's networks), the scan's own tissue model with the
  deep grey-matter atlas, the attention's deletion test, and writing the maps; one process,
  wall time.
- Classical: deepbet's brain extraction on the head's NIfTI (models/training/deepbet_reference.py,
  deepbet 1.0.2's networks through ONNX Runtime, its own process, as a user would run it;
  PyTorch, deepbet's own runtime, is not installed here), then reading the DICOM series
  (pydicom), ANTs N4 and Atropos (antspyx; k-means start, three classes, MRF [0.2, 1x1x1], five
  rounds: the settings of the tissue reference in models/training/tissue_reference.py) inside
  deepbet's mask.

Prints each side's best wall time, the ratio, and Focal's peak memory (max RSS, by GNU time;
Debian package `time`).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "training"))
from tissue_reference import onto_grid, read_series  # noqa: E402

from focal_build import release_focal  # noqa: E402

CACHE = os.environ.get("FOCAL_CACHE", os.path.expanduser("~/.cache/focal"))
TEMPLATES = os.path.join(CACHE, "mricron/root/usr/share/mricron/templates")
PY = os.environ.get("FOCAL_PYTHON", os.path.join(CACHE, "py/bin/python"))  # numpy, SciPy, ONNX Runtime


def classical(series, head_nifti, tmp):
    import ants

    t = time.perf_counter()
    mask_nifti = os.path.join(tmp, "deepbet_mask.nii.gz")
    subprocess.run([PY, os.path.join(ROOT, "models/training/deepbet_reference.py"), head_nifti, mask_nifti], check=True)
    vol, spacing, files = read_series(series)
    mask = onto_grid(mask_nifti, files, vol.shape) > 0
    sp = tuple(float(s) for s in spacing)
    img = ants.from_numpy(vol.astype(np.float32), spacing=sp)
    mimg = ants.from_numpy(mask.astype(np.float32), spacing=sp)
    n4 = ants.n4_bias_field_correction(img, mask=mimg)
    seg = ants.atropos(a=n4, x=mimg, i="kmeans[3]", m="[0.2,1x1x1]", c="[5,0]")
    labels = seg["segmentation"].numpy()
    return time.perf_counter() - t, int((labels > 0).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--focal", default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    focal = release_focal(args.focal)
    with tempfile.TemporaryDirectory() as tmp:
        series = os.path.join(tmp, "colin27_1mm")
        subprocess.run([sys.executable, os.path.join(ROOT, "models/training/make_sample_study.py"),
                        os.path.join(TEMPLATES, "ch2.nii.gz"), series, "--step", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        slices = len(os.listdir(series))
        manifest = os.path.join(ROOT, "models", "brain-tissue.json")
        focal_times, classical_times, peak_mib = [], [], 0.0
        for r in range(args.repeat):
            out = os.path.join(tmp, f"run{r}")
            t = time.perf_counter()
            # GNU time measures the process's own peak memory (a child's ru_maxrss seen from
            # here would keep this Python's, which carries across exec).
            rss = os.path.join(tmp, "rss")
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, focal, "analyze", series, "--device", "cpu",
                            "--model", manifest, "--out", out], check=True, capture_output=True)
            focal_times.append(time.perf_counter() - t)
            peak_mib = max(peak_mib, int(open(rss).read().split()[-1]) / 1024)
            classical_times.append(classical(series, os.path.join(TEMPLATES, "ch2.nii.gz"), tmp)[0])
    fo, cl = min(focal_times), min(classical_times)
    print(f"Colin27 at 1 mm: {slices} slices, CPU, {os.cpu_count()} cores, best of {args.repeat}")
    print(f"Focal analyze (network, brain extractor, tissue model, deletion test, maps): {fo:.1f} s")
    print(f"deepbet (ONNX Runtime) + N4 + Atropos (antspyx) in deepbet's mask:        {cl:.1f} s")
    print(f"ratio Focal / classical: {fo / cl:.2f}")
    print(f"Focal's peak memory (max RSS): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
