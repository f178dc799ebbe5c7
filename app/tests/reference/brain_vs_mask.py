#!/usr/bin/env python3
"""Compares an analysis of the bundled sample study with Colin27's brain-extraction mask
(ch2bet, Debian's mricron-data): brain Dice, labelled volume against the mask's, and the
volume labelled outside the mask. The sample's slices are Colin27's axial slices (every
other one), stored as models/training/make_sample_study.py wrote them; the mask is sampled at each
voxel's patient position (tissue_reference.py's onto_grid), never by trusting the order.

usage: brain_vs_mask.py ANALYSIS_DIR CH2BET_NIFTI SAMPLE_DIR   (prints one JSON line)
"""
import json
import os
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../models/training"))
from tissue_reference import onto_grid, series_headers  # noqa: E402  (one mapping onto the grid)


def main():
    analysis, bet_path, sample = sys.argv[1:4]
    labels = nib.load(os.path.join(analysis, "labels.nii"))
    lab = np.asarray(labels.dataobj)  # x = column, y = row, z = slice, as Focal writes it
    files = series_headers(sample)
    assert len(files) == lab.shape[2], "the analysis is not of the sample study"
    mask = onto_grid(bet_path, files, lab.shape) > 0
    voxel_ml = float(np.prod(labels.header.get_zooms()[:3])) / 1000
    pred = lab > 0
    inter = (pred & mask).sum()
    print(json.dumps({
        "dice_brain": float(2 * inter / (pred.sum() + mask.sum())),
        "labelled_ml": float(pred.sum() * voxel_ml),
        "mask_ml": float(mask.sum() * voxel_ml),
        "outside_mask_ml": float((pred & ~mask).sum() * voxel_ml),
        "slices": int(lab.shape[2]),
    }))


if __name__ == "__main__":
    main()
