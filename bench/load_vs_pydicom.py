#!/usr/bin/env python3
"""Loading a 324-slice 512 x 512 CT series to a float32 HU volume: Focal (`focal info --decode`)
against pydicom + numpy (read every file, stack the pixel arrays, apply the rescale), each in
its own process, alternating, in one run. Prints wall time, CPU time and peak memory of each,
and the ratios. The series is made once from the real CT slice in pydicom-data
(693_UNCR.dcm, 16-bit, uncompressed) written 324 times with its own UIDs and positions, and
kept in ~/.cache/focal/bench/ct324.

    ~/.cache/focal/py/bin/python bench/load_vs_pydicom.py [--focal BIN] [--repeat 3]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

SLICES = 324
PYDICOM_LOAD = r"""
import glob, sys
import numpy as np
import pydicom

from focal_build import release_focal
files = sorted(glob.glob(sys.argv[1] + "/*.dcm"))
dss = [pydicom.dcmread(f) for f in files]
dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
vol = np.empty((len(dss), dss[0].Rows, dss[0].Columns), np.float32)
for i, d in enumerate(dss):
    vol[i] = d.pixel_array * np.float32(d.RescaleSlope) + np.float32(d.RescaleIntercept)
print(vol.shape, float(vol.mean()))
"""


def make_series(folder, corpus):
    import pydicom
    from pydicom.uid import generate_uid

    if len(glob.glob(os.path.join(folder, "*.dcm"))) == SLICES:
        return
    src = glob.glob(os.path.join(corpus, "**", "693_UNCR.dcm"), recursive=True)
    if not src:
        sys.exit(f"693_UNCR.dcm not under {corpus}: run scripts/test.sh first (it fetches pydicom-data)")
    os.makedirs(folder, exist_ok=True)
    ds = pydicom.dcmread(src[0])
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    z0 = float(ds.ImagePositionPatient[2])
    for i in range(SLICES):
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 + 1.25 * i]
        ds.SliceLocation = z0 + 1.25 * i
        ds.save_as(os.path.join(folder, f"ct{i:04d}.dcm"), enforce_file_format=True)


def measured(cmd):
    """(wall s, CPU s, peak RSS MiB) of one child process, by GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, check=True)
    wall, user, sys_, kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(sys_), int(kb) / 1024, float(sys_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--focal", default=None, help="focal binary (default: build --release)")
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/focal/corpus/wheels"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    folder = os.path.expanduser("~/.cache/focal/bench/ct324")
    make_series(folder, args.corpus)
    focal = release_focal(args.focal)
    # Warm the page cache for both.
    for f in glob.glob(os.path.join(folder, "*.dcm")):
        with open(f, "rb") as fh:
            fh.read()
    runs = {"focal": [], "pydicom": []}
    for _ in range(args.repeat):
        runs["focal"].append(measured([focal, "info", folder, "--decode", "--json"]))
        runs["pydicom"].append(measured([sys.executable, "-c", PYDICOM_LOAD, folder]))
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    volume_mib = SLICES * 512 * 512 * 4 / 2**20
    for k, (wall, cpu, peak, sys_) in med.items():
        print(f"{k:8s} wall {wall:.2f} s  CPU {cpu:.2f} s (system {sys_:.2f})  peak {peak:.0f} MiB")
    f, p = med["focal"], med["pydicom"]
    result = {"slices": SLICES, "volume_mib": round(volume_mib),
              "wall_ratio": round(f[0] / p[0], 3), "cpu_ratio": round(f[1] / p[1], 3),
              "focal_peak_over_volume": round(f[2] / volume_mib, 2), "pydicom_peak_over_volume": round(p[2] / volume_mib, 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
