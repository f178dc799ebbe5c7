#!/usr/bin/env python3
"""Opening a 3-segment DICOM SEG over the sample series: Focal against highdicom (what a
researcher would otherwise script), in one run, as a ratio.

    ~/.cache/focal/py/bin/python bench/seg_open_vs_highdicom.py [--focal BIN] [--repeat 5]

The SEG is the one the tests use (reference/make_overlays.py: highdicom, BINARY, three
segments, empty frames left out). Focal's time is `focal snapshot --overlay SEG` less the same
snapshot without it, so what remains is reading the SEG, placing its frames on the series' grid
by plane position and composing the drawn label map. highdicom's is hd.seg.segread and
get_pixels_by_source_instance over the series' instances (their UIDs read beforehand, not
timed), combined into one label map. Both end with a label per voxel of the series.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import tempfile
import time

import highdicom as hd
import numpy as np
import pydicom

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STUDY = os.path.join(ROOT, "assets", "sample-study")


def focal_snapshot(focal, out, overlay):
    args = [focal, "snapshot", STUDY, "--out", os.path.join(out, "s.png"), "--size", "64"]
    if overlay:
        args += ["--overlay", overlay]
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t


def highdicom_open(seg_path, uids):
    t = time.perf_counter()
    seg = hd.seg.segread(seg_path)
    labels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    elapsed = time.perf_counter() - t
    return elapsed, labels


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--focal", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "focal"))
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        made = subprocess.run(
            [os.environ.get("FOCAL_PYTHON", "python3"), os.path.join(ROOT, "app/tests/reference/make_overlays.py"), STUDY, os.path.join(tmp, "objects")],
            check=True, capture_output=True, text=True)
        facts = json.loads(made.stdout)
        seg = os.path.join(tmp, "objects", "seg3", "seg.dcm")
        sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in glob.glob(os.path.join(STUDY, "*.dcm"))]
        normal = np.cross(*np.array(sources[0].ImageOrientationPatient, float).reshape(2, 3))
        sources.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
        uids = [d.SOPInstanceUID for d in sources]
        focal_with, focal_without, hd_times = [], [], []
        for _ in range(args.repeat):
            focal_without.append(focal_snapshot(args.focal, tmp, None))
            focal_with.append(focal_snapshot(args.focal, tmp, seg))
            elapsed, labels = highdicom_open(seg, uids)
            hd_times.append(elapsed)
        counts = [int((labels == k).sum()) for k in (1, 2, 3)]
        assert counts == facts["seg3_voxels"], (counts, facts["seg3_voxels"])
        focal = statistics.median(focal_with) - statistics.median(focal_without)
        theirs = statistics.median(hd_times)
        print(json.dumps({
            "seg_frames": int(pydicom.dcmread(seg, stop_before_pixels=True).NumberOfFrames),
            "focal_snapshot_with_seg_s": statistics.median(focal_with),
            "focal_snapshot_without_s": statistics.median(focal_without),
            "focal_open_seg_s": round(focal, 4),
            "highdicom_open_seg_s": round(theirs, 4),
            "ratio_focal_over_highdicom": round(focal / theirs, 3),
            "repeat": args.repeat,
        }, indent=1))


if __name__ == "__main__":
    main()
