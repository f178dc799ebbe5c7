#!/usr/bin/env python3
"""Post-processing rules tried on the shipped model's own probabilities (MODEL_CARD.md, "After
2.0"): brain Dice against Colin27's mask, brain labelled outside it and brain missed, on the
sample study's geometry, thick slices and the ITK head. No rule here is shipped.

usage: postprocess_trials.py ../brain-tissue.onnx
"""
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

from evaluate import MRICRON, Model, brain_metrics, dicom_axial, largest_component, load_itk_head, thick


def opened_component(lab, r_mm, dz_mm):
    """Opening by a ball of r_mm (voxels 1 mm in-plane, dz_mm apart), the largest piece kept,
    grown back within the original labels."""
    b = lab > 0
    rz, rxy = max(1, int(round(r_mm / dz_mm))), int(round(r_mm))
    zz, yy, xx = np.ogrid[-rz : rz + 1, -rxy : rxy + 1, -rxy : rxy + 1]
    ball = (zz * dz_mm) ** 2 + yy**2 + xx**2 <= r_mm**2
    core = largest_component(ndimage.binary_erosion(b, ball).astype(np.int32)) > 0
    return np.where(ndimage.binary_dilation(core, ball) & b, lab, 0)


def hysteresis(lab, p_brain, seed, steps):
    core = largest_component((p_brain > seed).astype(np.int32)) > 0
    return np.where(ndimage.binary_dilation(core, iterations=steps, mask=p_brain > 0.5), lab, 0)


def main():
    model = Model(sys.argv[1])
    load = lambda n: dicom_axial(nib.as_closest_canonical(nib.load(MRICRON.format(n))).get_fdata().astype(np.float32))
    ch2, brain = load("ch2"), load("ch2bet") > 0
    cases = [("sample, 2 mm", ch2[::2], brain[::2], 2.0)]
    for step in (5, 7):
        vol, kz = thick(ch2, step, step)
        cases.append((f"thick {step} mm", vol, brain[kz], float(step)))
    itk, itk_mask, dz = load_itk_head()
    cases.append(("ITK head", itk, itk_mask, float(dz)))
    for name, vol, mask, dz in cases:
        raw, _, _, p = model.volume([vol], clean=False)
        p_brain = 1 - p[:, 0]
        rules = {"largest component (shipped)": largest_component(raw)}
        if name.startswith("sample"):
            for r in (2, 4, 8):
                rules[f"opening {r} mm, largest component"] = opened_component(raw, r, dz)
            rules["p(brain) > 0.9, largest component"] = largest_component(np.where(p_brain > 0.9, raw, 0))
        for seed in (0.9, 0.95, 0.98):
            rules[f"seed p(brain) > {seed}, grown 4 voxels within p > 0.5"] = hysteresis(raw, p_brain, seed, 4)
        print(name)
        for rule, lab in rules.items():
            m = brain_metrics(lab, mask, dz * 1e-3)
            print(f"  {rule:55s} Dice {m['dice_brain_vs_mask']:.3f}  outside {m['labelled_outside_mask_ml']:5.0f} mL"
                  f"  missed {m['mask_missed_ml']:5.0f} mL")


if __name__ == "__main__":
    main()
