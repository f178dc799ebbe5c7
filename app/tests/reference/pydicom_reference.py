#!/usr/bin/env python3
"""Decode every DICOM file under the corpus with pydicom and write what Focal must reproduce.

For each file with pixel data: the modality-LUT output (or RGB for colour images) as a .npy,
plus a line in index.json with the shape, transfer syntax and whether the codec is lossy.
Files pydicom cannot decode are listed with pydicom's reason. Values are never typed by hand:
they come from this run of pydicom (with GDCM / pylibjpeg handlers).

usage: pydicom_reference.py CORPUS_DIR OUT_DIR
"""
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_color_lut

warnings.filterwarnings("ignore")

LOSSY = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203",
}


def enhanced_rescale(ds, frames):
    """Per-frame (slope, intercept) from the functional groups, or None if not there."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per:
        return None
    out = []
    for i in range(frames):
        candidates = ([per[i]] if per and i < len(per) else []) + ([shared[0]] if shared else [])
        item = next((g.PixelValueTransformationSequence[0] for g in candidates
                     if "PixelValueTransformationSequence" in g), None)
        if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
            return None
        out.append((float(item.RescaleSlope), float(item.RescaleIntercept)))
    return out


def reference(ds):
    arr = ds.pixel_array
    pi = str(ds.get("PhotometricInterpretation", "")).strip()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        kind = "rgb"
    elif int(ds.get("SamplesPerPixel", 1)) == 3:
        # pixel_array already converts YBR_FULL / YBR_FULL_422 to RGB (pydicom 3 default).
        kind = "rgb"
    elif enhanced_rescale(ds, frames) is not None:
        # pydicom's apply_modality_lut reads only the root data set; Enhanced CT/MR keep the
        # rescale in the functional groups, per frame. Apply pydicom's values from there.
        per_frame = enhanced_rescale(ds, frames)
        arr = np.asarray(arr, dtype=np.float64).reshape((frames,) + arr.shape[-2:])
        arr = np.stack([arr[i] * s + b for i, (s, b) in enumerate(per_frame)])
        kind = "mono"
    else:
        arr = apply_modality_lut(arr, ds)
        kind = "mono"
    arr = np.asarray(arr, dtype=np.float64)
    if frames == 1:
        arr = arr[np.newaxis, ...]
    if kind == "mono":
        arr = arr[..., np.newaxis]
    return arr, kind


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    index = []
    for root, _dirs, files in os.walk(corpus):
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, corpus)
            try:
                ds = pydicom.dcmread(path, force=False)
            except Exception:
                continue  # not DICOM (or not readable as such): Focal must skip or list it
            if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
                continue
            ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
            entry = {"file": rel, "transfer_syntax": ts, "lossy": ts in LOSSY}
            try:
                arr, kind = reference(ds)
            except Exception as exc:  # pydicom cannot decode it: not part of the bar
                entry.update(ok=False, reason=f"{type(exc).__name__}: {str(exc)[:200]}")
                index.append(entry)
                continue
            npy = hashlib.sha1(rel.encode()).hexdigest()[:16] + ".npy"
            store = arr.astype(np.float32) if np.all(np.abs(arr) < 2**24) else arr
            np.save(os.path.join(out, npy), store)
            entry.update(ok=True, kind=kind, shape=list(arr.shape), npy=npy,
                         float_pixels="FloatPixelData" in ds or "DoubleFloatPixelData" in ds)
            index.append(entry)
    index.sort(key=lambda e: e["file"])
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    ok = sum(1 for e in index if e["ok"])
    print(f"pydicom {pydicom.__version__}: decoded {ok} of {len(index)} files with pixel data")


if __name__ == "__main__":
    main()
