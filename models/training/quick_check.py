#!/usr/bin/env python3
"""A candidate's first look, on training heads only (the MNI ICBM152 template: clean, with
Rician noise of 6 % of white matter's value, as 7 mm thick slices, and as a coarse 8-bit
acquisition of 2 x 2 x 3 mm), before any held-out
head is scored: the deletion test as Focal computes it (evaluate.deletion_test, 14 slices), the
attention's share inside the template's brain, the labels' Dice with the template's own brain
and the share of the zero background that gets a label. Without the brain extent or the tissue
model: this is the network alone.

usage: quick_check.py MODEL.onnx [--json OUT.json]
"""
import argparse
import json

import nibabel as nib
import numpy as np

from anatomy import MNI, load_mni_labels
from evaluate import Model, deletion_test, thick


def axial(vol_ras):
    """RAS (x, y, z) → [z, rows, cols] as a DICOM axial series stores it (rows posterior-ward,
    columns toward the patient's left)."""
    return np.ascontiguousarray(vol_ras[::-1, ::-1, :].transpose(2, 1, 0))


def heads():
    t1 = nib.load(MNI.format("t1")).get_fdata().astype(np.float32)
    labels = load_mni_labels()
    wm = float(np.median(t1[labels == 3]))
    rng = np.random.default_rng(61)
    sigma = 0.06 * wm
    noisy = np.sqrt((t1 + rng.normal(0, sigma, t1.shape)) ** 2 + rng.normal(0, sigma, t1.shape) ** 2)
    noisy[t1 <= 0] = 0  # the template's background is exactly zero; keep it so
    brain = axial((labels > 0).astype(np.uint8))
    t1a, noisya = axial(t1), axial(noisy.astype(np.float32))
    thick7, ks = thick(t1a, 7, 7)
    return [("template", t1a, brain), ("noisy", noisya, brain), ("7mm", thick7, brain[ks]),
            ("coarse", *coarse(t1a, brain))]


def coarse(vol, brain):
    """A coarse 8-bit acquisition of the template: 2 x 2 mm pixels, 3 mm slices (each the mean
    of three), values rounded to 0-255, then back on a 1 mm in-plane grid by linear
    interpolation as Focal's preprocessing resamples it (the manifest's 1 mm pixels)."""
    from scipy import ndimage

    z, h, w = (s - s % m for s, m in zip(vol.shape, (3, 2, 2)))
    v = vol[:z, :h, :w].reshape(z // 3, 3, h // 2, 2, w // 2, 2).mean((1, 3, 5))
    v = np.round(v / max(float(v.max()), 1e-6) * 255.0).astype(np.float32)
    v = ndimage.zoom(v, (1, 2, 2), order=1)
    return v, brain[1:z:3, :h, :w]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--json")
    args = ap.parse_args()
    model = Model(args.model)
    out = {}
    for name, vol, brain in heads():
        counts = brain.reshape(len(brain), -1).sum(1)
        cand = [k for k in range(len(vol)) if counts[k] * 5 >= counts.max()]
        picked = [cand[(2 * i + 1) * len(cand) // 28] for i in range(14)]
        from evaluate import slab_input

        probs, att = [], []
        for k in picked:
            p, a, _ = model.run(slab_input([vol], k)[None])
            probs.append(p[0].argmax(0))
            att.append(a[0])
        lab, att, br, img = np.stack(probs), np.stack(att), brain[picked] > 0, vol[picked]
        dice = 2 * float(((lab > 0) & br).sum()) / max(float((lab > 0).sum() + br.sum()), 1)
        zero = img <= 0
        row = {
            "brain_dice": round(dice, 3),
            "attention_in_brain": round(float(att[br].sum() / max(att.sum(), 1e-9)), 3),
            "zero_background_labelled": round(float((lab[zero] > 0).mean()), 4),
            "deletion": deletion_test(model, [vol], picked, np.random.default_rng(7)),
        }
        d = row["deletion"]
        print(f"{name:9s} brain Dice {row['brain_dice']:.3f}  attention in brain {row['attention_in_brain']:.2f}  "
              f"zero background labelled {row['zero_background_labelled']:.3f}  deletion top {d['top20_attention']['mean']:.3f} "
              f"bottom {d['bottom20_attention']['mean']:.3f} random {d['random20_blocks']['mean']:.3f} "
              f"{'passed' if d['passed'] else 'FAILED'}", flush=True)
        out[name] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
