#!/usr/bin/env python3
"""Decode the whole DICOM corpus with Focal and with pydicom(+numpy, GDCM, pylibjpeg) in one
run and print the CPU-time ratio, then time to first slice and to full volume of the largest
series. Run after scripts/setup.sh and scripts/test.sh (which fetch the corpus):

    ~/.cache/focal/py/bin/python bench/decode_vs_pydicom.py [--corpus DIR] [--focal BIN]

Both sides read every file and produce modality values for every frame. Focal is timed as a
child process (`focal info --decode`), so its CPU time includes start-up, scanning and
grouping; pydicom is timed in-process, so its interpreter start-up is not counted.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from focal_build import release_focal

warnings.filterwarnings("ignore")


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pydicom_decode(paths):
    ok = 0
    for p in paths:
        try:
            ds = pydicom.dcmread(p)
            if "PixelData" not in ds:
                continue
            arr = ds.pixel_array
            if int(ds.get("SamplesPerPixel", 1)) == 1:
                arr = apply_modality_lut(arr, ds)
            np.asarray(arr, dtype=np.float32)
            ok += 1
        except Exception:
            pass
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/focal/corpus/wheels"))
    ap.add_argument("--focal", default=None, help="focal binary (default: build --release)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    focal = release_focal(args.focal)
    paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(args.corpus) for f in fs)

    # Warm the page cache for both, then alternate runs and keep the best of each.
    subprocess.run([focal, "info", args.corpus], capture_output=True)
    pydicom_decode(paths)
    f_cpu, p_cpu, f_wall, p_wall = [], [], [], []
    report = None
    for _ in range(args.repeat):
        c0, w0 = cpu_children(), time.perf_counter()
        out = subprocess.run([focal, "info", args.corpus, "--decode", "--json"], capture_output=True, text=True)
        f_wall.append(time.perf_counter() - w0)
        f_cpu.append(cpu_children() - c0)
        report = json.loads(out.stdout)
        c0, w0 = cpu_self(), time.perf_counter()
        decoded = pydicom_decode(paths)
        p_wall.append(time.perf_counter() - w0)
        p_cpu.append(cpu_self() - c0)

    stacks = [st for p in report["patients"] for s in p["studies"] for se in s["series"] for st in se["stacks"]]
    images = sum(st["images"] for st in stacks)
    failed = [st for st in stacks if st["decode"]["error"]]
    print(f"corpus: {len(paths)} files; Focal decoded {images} images in {len(stacks)} stacks "
          f"({len(failed)} stacks failed); pydicom decoded {decoded} files")
    print(f"Focal   CPU {min(f_cpu):.2f} s, wall {min(f_wall):.2f} s")
    print(f"pydicom CPU {min(p_cpu):.2f} s, wall {min(p_wall):.2f} s")
    print(f"CPU-time ratio Focal/pydicom: {min(f_cpu) / min(p_cpu):.2f}x  (wall: {min(f_wall) / min(p_wall):.2f}x)")

    big = max(stacks, key=lambda st: st["images"] * st["rows"] * st["columns"])
    d = big["decode"]
    print(f"largest stack: {big['images']} images of {big['columns']}x{big['rows']}: "
          f"Focal first slice {d['first_slice_seconds'] * 1000:.1f} ms, full volume {d['volume_seconds'] * 1000:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
