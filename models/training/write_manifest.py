#!/usr/bin/env python3
"""Write models/<name>.json, the contract between training and the Focal app.

usage: write_manifest.py ../brain-tissue.onnx runs/v1/training.json runs/v1/evaluation.json
"""
import hashlib
import json
import os
import sys

import onnx

from common import LABELS

MANIFEST_VERSION = 1


def main():
    onnx_path, training_path, evaluation_path = sys.argv[1:4]
    training = json.load(open(training_path))
    ev = json.load(open(evaluation_path))
    model = onnx.load(onnx_path)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    name = os.path.splitext(os.path.basename(onnx_path))[0]
    pct = ev["attention_percentiles_in_head"]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "version": "1.0.0",
        "title": "Brain tissue segmentation (CSF, grey matter, white matter) with attention maps",
        "architecture": "2D Attention U-Net (additive attention gates on the skip connections, Oktay et al. 2018)",
        "file": os.path.basename(onnx_path),
        "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
        "opset": opset,
        "parameters": training["parameters"],
        "intended_use": "Research and review of brain MRI tissue segmentation. Not for diagnosis.",
        "input": {
            "name": "image",
            "shape": ["N", 1, "H", "W"],
            "dtype": "float32",
            "size_multiple": 8,
            "modality": "MR (any contrast; trained by domain randomisation, best on T1)",
            "pixel_spacing_mm": [1.0, 1.0],
            "orientation": "any plane of a head volume (trained on axial 60%, coronal 20%, sagittal 20%, "
                           "rotated up to 20 degrees and flipped); pixels must be square at the given spacing",
            "normalisation": {
                "method": "percentile",
                "scope": "each slice",
                "percentile": 99.5,
                "of": "pixels with value > 0 (negative values are first set to 0)",
                "clip": [0.0, 1.0],
            },
            "padding": "zero-pad bottom and right to a multiple of 8; crop outputs back",
        },
        "outputs": [
            {"name": "probs", "shape": ["N", len(LABELS), "H", "W"], "dtype": "float32",
             "description": "softmax class probabilities per pixel"},
            {"name": "attention", "shape": ["N", 1, "H", "W"], "dtype": "float32", "range": [0.0, 1.0],
             "description": "coefficients of the finest attention gate (input resolution), zero outside the head",
             "display_range": [round(pct["5"], 4), round(pct["99"], 4)]},
        ],
        "labels": LABELS,
        "training": {
            "method": "domain randomisation from label maps (SynthSeg idea, Billot et al. 2023): images synthesised "
                      "on the fly with random per-label intensities, affine and elastic deformation, bias field, "
                      "blur and thick-slice simulation, gamma and noise; non-brain head tissue added as random shells "
                      "and blobs labelled background",
            "data": [
                {"source": "MNI ICBM152 2009a nonlinear symmetric T1 with GM/WM probability maps",
                 "obtained_from": "PyPI wheel nilearn==0.14.1 (nilearn/datasets/data/mni_icbm152_*)",
                 "licence": "ICBM152 2009 terms (free use with attribution, copyright McConnell Brain Imaging Centre); nilearn BSD-3-Clause",
                 "use": "training label maps (CSF = brain mask minus GM and WM)"},
            ],
            "held_out": {"source": "Colin27 (ch2, ch2bet) with the AAL atlas",
                         "obtained_from": "Debian package mricron-data 1.2.20211006+dfsg-4",
                         "licence": "as packaged by Debian (BSD-3-Clause per its copyright file); AAL: Tzourio-Mazoyer et al. 2002",
                         "use": "test only; never used to make training images"},
            "steps": training["steps"],
            "minutes": training["minutes"],
            "batch": training["batch"],
            "crop": training["crop"],
            "seed": training["seed"],
            "hardware": "2 CPU cores",
            "code": "models/training/ (train.py, export.py, evaluate.py)",
        },
        "metrics": ev,
        "golden": "golden",
    }
    out = os.path.join(os.path.dirname(onnx_path), name + ".json")
    with open(out, "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
