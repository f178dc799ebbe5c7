#!/usr/bin/env python3
"""deepbet's brain extraction in numpy, SciPy and ONNX Runtime, on a NIfTI head: one voter of
the extractors' majority that extent_vs_extractors.py scores Focal's brain against, and the
reference for Focal's own port (app/inference/src/extractor.rs).

It follows deepbet 1.0.2's BrainExtraction.run_model and postprocess (the wheel's deepbet/bet.py
and utils.py) step for step, with its two networks as scripts/fetch-deepbet.sh converts them
(models/deepbet/locate.onnx and segment.onnx): the head in its closest canonical (RAS)
orientation; a nearest-exact resize to 128^3; its 0.5th and 99.5th percentiles; the bounding
box of the locate model's largest object (planes with more than 2 % brain, 10 % margin); the
box resized to 256^3 for the segment model; its p(brain) > 0.5 brought back, the largest
object kept and holes filled. Connected objects are 26-connected here (cc3d's default, as
deepbet); Focal's port uses 6-connected ones.

With --series, the head is a DICOM series and the mask is written as a .npy of float32 0/1
in Focal's volume order [slice, row, column]; the series is put in RAS order as Focal does
(each volume axis taken as the patient axis nearest its direction), negative values set to 0,
so that app/tests/inference.rs can hold Focal's port to this reference.

usage: deepbet_reference.py HEAD.nii.gz OUT_MASK.nii.gz
       deepbet_reference.py --series SERIES_DIR OUT_MASK.npy
  (a Python with numpy, scipy, nibabel, pydicom and onnxruntime: ~/.cache/focal/py)
"""
import os
import sys

import nibabel as nib
import numpy as np
import onnxruntime as ort
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "../deepbet")


def resize_nearest(x, shape):
    index = [np.minimum(((np.arange(o) + 0.5) * (i / o)).astype(np.int64), i - 1) for i, o in zip(x.shape, shape)]
    return x[np.ix_(*index)]


def normalise(x, lo, hi):
    x = np.clip((x - lo) / (hi - lo), 0, 1)
    x = (x - x.mean()) / x.std(ddof=1)
    return (0.226 * x + 0.449).astype(np.float32)


def largest_object(mask):
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def bounding_box(mask, shape, margin=0.1):
    box = []
    scale = np.array(shape) / np.array(mask.shape)
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        planes = np.where(mask.mean(other) > 0.02)[0]
        centre = round((planes.max() + 1 + planes.min()) / 2 * scale[axis])
        size = round((planes.max() + 1 - planes.min()) * scale[axis] * (1 + 2 * margin))
        box.append(slice(max(0, int(centre - size / 2)), min(shape[axis], int(centre + size / 2))))
    return tuple(box)


def extract(x, threads=2):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    run = {name: ort.InferenceSession(os.path.join(MODELS, f"{name}.onnx"), options,
                                      providers=["CPUExecutionProvider"]) for name in ("locate", "segment")}
    x = np.nan_to_num(x.astype(np.float32))
    small = resize_nearest(x, (128, 128, 128))
    lo, hi = np.quantile(small, 0.005), np.quantile(small, 0.995)
    located = run["locate"].run(None, {"image": normalise(small, lo, hi)[None, None]})[0][0, 0]
    box = bounding_box(largest_object(located > 0.5), x.shape)
    crop = x[box]
    p = run["segment"].run(None, {"image": normalise(resize_nearest(crop, (256, 256, 256)), lo, hi)[None, None]})[0][0, 0]
    mask = np.zeros(x.shape, bool)
    mask[box] = ndimage.binary_fill_holes(largest_object(resize_nearest(p, crop.shape) > 0.5))
    return mask


def series_to_ras(series):
    """The series' values (negatives set to 0) in RAS order, and the way back to
    [slice, row, column]."""
    sys.path.insert(0, HERE)
    from tissue_reference import read_series

    vol, _, files = read_series(series)  # [columns, rows, slices]
    iop = np.array([float(v) for v in files[0].ImageOrientationPatient])
    dirs = [iop[:3], iop[3:], np.cross(iop[:3], iop[3:])]
    ras_dirs = [d * np.array([-1.0, -1.0, 1.0]) for d in dirs]
    pairs = sorted(((abs(ras_dirs[v][r]), v, r) for v in range(3) for r in range(3)), reverse=True)
    axis, flip, used = [None] * 3, [False] * 3, set()
    for _, v, r in pairs:
        if axis[r] is None and v not in used:
            axis[r], flip[r] = v, ras_dirs[v][r] < 0
            used.add(v)
    ras = np.transpose(np.maximum(vol, 0), axis)
    ras = ras[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]

    def back(mask):
        m = mask[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
        m = np.transpose(m, np.argsort(axis))  # [columns, rows, slices]
        return np.transpose(m, (2, 1, 0))

    return ras, back


def main():
    if sys.argv[1] == "--series":
        ras, back = series_to_ras(sys.argv[2])
        np.save(sys.argv[3], np.ascontiguousarray(back(extract(ras)), dtype=np.float32))
        return
    src, out = sys.argv[1:3]
    img = nib.as_closest_canonical(nib.load(src))
    mask = extract(img.get_fdata(dtype=np.float32))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), out)


if __name__ == "__main__":
    main()
