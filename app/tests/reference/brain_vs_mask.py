#!/usr/bin/env python3
"""Compares an analysis of the bundled sample study with Colin27's brain-extraction mask
(ch2bet, Debian's mricron-data): brain Dice, labelled volume against the mask's, and the
volume labelled outside the mask. The sample's slices are Colin27's axial slices (every
other one), stored as models/training/make_sample_study.py wrote them; each DICOM slice is
matched to its ch2bet slice by position, never by trusting the order.

usage: brain_vs_mask.py ANALYSIS_DIR CH2BET_NIFTI SAMPLE_DIR   (prints one JSON line)
"""
import glob
import json
import os
import sys

import nibabel as nib
import numpy as np
import pydicom


def main():
    analysis, bet_path, sample = sys.argv[1:4]
    labels = nib.load(os.path.join(analysis, "labels.nii"))
    lab = np.asarray(labels.dataobj)  # x = column, y = row, z = slice, as Focal writes it
    bet_img = nib.as_closest_canonical(nib.load(bet_path))
    bet = np.asarray(bet_img.get_fdata()) > 0
    inv = np.linalg.inv(bet_img.affine)
    files = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    assert len(files) == lab.shape[2], "the analysis is not of the sample study"
    mask = np.zeros(lab.shape, bool)
    for k, d in enumerate(files):
        lps = [float(v) for v in d.ImagePositionPatient]
        vox = inv @ np.array([-lps[0], -lps[1], lps[2], 1.0])  # the slice's first pixel in ch2bet
        i0, j0, kz = (int(round(v)) for v in vox[:3])
        # Columns run patient-left (RAS x down), rows posterior (RAS y down).
        plane = bet[i0 - np.arange(lab.shape[0])[:, None], j0 - np.arange(lab.shape[1])[None, :], kz]
        mask[:, :, k] = plane
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
