#!/usr/bin/env python3
"""deepbet's brain extraction in numpy, SciPy and ONNX Runtime, on a NIfTI head: one voter of
the extractors' majority that extent_vs_extractors.py scores Focal's brain against, and the
reference for Focal's own port (app/src/inference/extractor.rs).

It follows deepbet 1.0.2's BrainExtraction.run_model and postprocess (the wheel's deepbet/bet.py
and utils.py) step for step, with its two networks as scripts/fetch-deepbet.sh converts them
(models/deepbet/locate.onnx and segment.onnx): the head in its closest canonical (RAS)
orientation; a nearest-exact resize to 128^3; its 0.5th and 99.5th percentiles; the bounding
box of the locate model's largest object (planes with more than 2 % brain, 10 % margin); the
box resized to 256^3 for the segment model; its p(brain) > 0.5 brought back, the largest
object kept and holes filled. Connected objects are 26-connected here (cc3d's default, as
deepbet); Focal's port uses 6-connected ones.

usage: deepbet_reference.py HEAD.nii.gz OUT_MASK.nii.gz
  (a Python with numpy, scipy, nibabel and onnxruntime: ~/.cache/focal/py)
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


def main():
    src, out = sys.argv[1:3]
    img = nib.as_closest_canonical(nib.load(src))
    mask = extract(img.get_fdata(dtype=np.float32))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), img.affine), out)


if __name__ == "__main__":
    main()
