#!/usr/bin/env python3
"""Held-out evaluation on Colin27 (never used for training), a k-means baseline, latency,
the faithfulness check of the attention output, golden outputs and the card's figure.

usage: evaluate.py ../brain-tissue.onnx ../../assets/sample-study OUT_JSON
"""
import glob
import json
import os
import sys
import time
import struct
import zlib

import nibabel as nib
import numpy as np
import onnxruntime as ort
import pydicom
from scipy import ndimage

from common import LABELS, MRICRON, normalise

HERE = os.path.dirname(os.path.abspath(__file__))


def pad8(img):
    h, w = img.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    return np.pad(img, [(0, 0)] * (img.ndim - 2) + [(0, ph), (0, pw)]), (h, w)


class Model:
    def __init__(self, path, threads=2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(self, slices):
        """slices: [N,H,W] normalised; returns probs [N,C,H,W], attention [N,H,W]."""
        x, (h, w) = pad8(slices[:, None].astype(np.float32))
        probs, att = [], []
        for i in range(0, len(x), 16):
            p, a = self.sess.run(["probs", "attention"], {"image": x[i : i + 16]})
            probs.append(p[..., :h, :w])
            att.append(a[:, 0, :h, :w])
        return np.concatenate(probs), np.concatenate(att)


def segment_volume(model, vol):
    """Axial slices of a RAS volume, each normalised on its own (as the manifest says)."""
    slices = np.stack([normalise(vol[:, :, k]) if vol[:, :, k].max() > 0 else vol[:, :, k] * 0 for k in range(vol.shape[2])])
    probs, att = model.run(slices)
    return probs.argmax(1).transpose(1, 2, 0), att.transpose(1, 2, 0), probs.transpose(1, 2, 3, 0)


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def kmeans3(values, iters=50):
    c = np.percentile(values, [15, 50, 85]).astype(np.float64)
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - c[None]), 1)
        c = np.array([values[lab == k].mean() if (lab == k).any() else c[k] for k in range(3)])
    return np.argmin(np.abs(values[:, None] - c[None]), 1), c


def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def inferno(t):
    """A perceptual dark-to-bright map (black, purple, orange, yellow) for the figure."""
    stops = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
    t = np.clip(t, 0, 1) * (len(stops) - 1)
    i = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def main():
    onnx_path, sample_dir, out_json = sys.argv[1], sys.argv[2], sys.argv[3]
    model = Model(onnx_path)
    ch2 = nib.as_closest_canonical(nib.load(MRICRON.format("ch2"))).get_fdata().astype(np.float32)
    bet = nib.as_closest_canonical(nib.load(MRICRON.format("ch2bet"))).get_fdata().astype(np.float32)
    aal = nib.as_closest_canonical(nib.load(MRICRON.format("aal"))).get_fdata().astype(np.int32)
    brain = bet > 0
    gm_ref = brain & (aal > 0)
    # WM reference: brain outside AAL grey matter and brighter than the CSF/GM Otsu-like
    # threshold (midpoint of the two darkest k-means centres of the brain).
    _, centres = kmeans3(bet[brain].astype(np.float64))
    wm_ref = brain & (aal == 0) & (bet > (centres[0] + centres[1]) / 2)

    results = {}
    labs = {}
    for name, vol in [("whole_head", ch2), ("skull_stripped", bet)]:
        t = time.time()
        lab, att, _ = segment_volume(model, vol)
        seconds = time.time() - t
        labs[name] = lab
        results[name] = {
            "dice_grey_matter_vs_AAL": dice(lab == 2, gm_ref),
            "dice_white_matter_vs_brain_minus_AAL": dice(lab == 3, wm_ref),
            "grey_matter_inside_AAL_fraction": float(((lab == 2) & gm_ref).sum() / max((lab == 2).sum(), 1)),
            "dice_brain_vs_ch2bet": dice(lab > 0, brain),
            "seconds_per_slice_2_threads": seconds / vol.shape[2],
        }
        if name == "whole_head":
            whole_lab, whole_att = lab, att
    klab, _ = kmeans3(bet[brain].astype(np.float64))
    km = np.zeros(bet.shape, np.int32)
    km[brain] = klab + 1
    results["kmeans_baseline_skull_stripped"] = {
        "dice_grey_matter_vs_AAL": dice(km == 2, gm_ref),
        "dice_white_matter_vs_brain_minus_AAL": dice(km == 3, wm_ref),
        "grey_matter_inside_AAL_fraction": float(((km == 2) & gm_ref).sum() / max((km == 2).sum(), 1)),
    }
    results["agreement_model_vs_kmeans_skull_stripped"] = {
        LABELS[k]["name"]: dice(labs["skull_stripped"] == k, km == k) for k in (1, 2, 3)
    }
    results["reference_notes"] = (
        "AAL parcels cover 77% of the ch2bet brain mask (they are drawn thick and include much white matter), "
        "so Dice against AAL-derived grey and white matter references is not a tissue Dice; the brain-mask Dice "
        "against ch2bet and the fraction of predicted grey matter inside AAL are the more meaningful numbers."
    )

    # Latency: one 256x256 slice, one thread, median of 30.
    one = Model(onnx_path, threads=1)
    x = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    times = []
    for _ in range(33):
        t = time.perf_counter()
        one.sess.run(None, {"image": x})
        times.append(time.perf_counter() - t)
    results["latency_ms_256_one_thread"] = float(np.median(times[3:]) * 1000)

    # Attention statistics inside the head (to choose a display range).
    head = ch2 > 10
    a = whole_att[head]
    results["attention_percentiles_in_head"] = {str(p): float(np.percentile(a, p)) for p in (1, 5, 50, 95, 99)}

    # Faithfulness: delete (set to 0) the top-20% attention pixels of the predicted brain,
    # versus a random 20%, and measure how many brain labels change.
    rng = np.random.default_rng(7)
    ks = list(range(60, 130, 5))
    base_sl = np.stack([normalise(ch2[:, :, k]) for k in ks])
    base_probs, base_att = model.run(base_sl)
    base_lab = base_probs.argmax(1)
    kinds = ["top20_attention", "bottom20_attention", "random20_pixels", "random20_blocks"]
    changes = {k: [] for k in kinds}
    prob_shift = {k: [] for k in kinds}
    for i in range(len(ks)):
        region = base_lab[i] > 0
        idx = np.flatnonzero(region)
        n = int(0.2 * idx.size)
        order = idx[np.argsort(-base_att[i].ravel()[idx])]
        h, w = base_sl[i].shape
        deletions = [("top20_attention", order[:n]), ("bottom20_attention", order[-n:])]
        for _ in range(3):
            deletions.append(("random20_pixels", rng.choice(idx, n, replace=False)))
            # Random 8x8 blocks until 20% of the brain is covered: structured like the attention.
            chosen = np.zeros(h * w, bool)
            while chosen[idx].sum() < n:
                y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
                block = np.zeros((h, w), bool)
                block[y : y + 8, x : x + 8] = True
                chosen |= block.ravel() & region.ravel()
            deletions.append(("random20_blocks", np.flatnonzero(chosen)))
        for kind, chosen in deletions:
            img = base_sl[i].copy().ravel()
            img[chosen] = 0
            p, _ = model.run(img.reshape(base_sl[i].shape)[None])
            keep = np.setdiff1d(idx, chosen)  # judge on the pixels that were not deleted
            changes[kind].append(float((p[0].argmax(0).ravel()[keep] != base_lab[i].ravel()[keep]).mean()))
            prob_shift[kind].append(float(np.abs(p[0].reshape(p.shape[1], -1)[:, keep] - base_probs[i].reshape(p.shape[1], -1)[:, keep]).sum(0).mean() / 2))
    results["faithfulness"] = {
        k: {"label_change_fraction_mean": float(np.mean(v)), "label_change_fraction_sd": float(np.std(v)),
            "probability_shift_mean": float(np.mean(prob_shift[k]))}
        for k, v in changes.items()
    }
    results["faithfulness"]["slices"] = len(ks)

    # Golden outputs: four slices of the sample study as Focal reads them (DICOM, per-slice
    # normalisation, padded to a multiple of 8), stored as float16.
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample_dir, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    golden_dir = os.path.join(os.path.dirname(onnx_path), "golden")
    os.makedirs(golden_dir, exist_ok=True)
    picks = [len(files) // 4, len(files) // 2, len(files) // 2 + 8, 3 * len(files) // 4]
    gold = []
    for n, i in enumerate(picks):
        d = files[i]
        img = d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        x, _ = pad8(normalise(img)[None, None])
        x = x.astype(np.float16).astype(np.float32)
        p, a = model.sess.run(["probs", "attention"], {"image": x})
        np.save(os.path.join(golden_dir, f"slice{n}_input.npy"), x.astype(np.float16))
        np.save(os.path.join(golden_dir, f"slice{n}_probs.npy"), p.astype(np.float16))
        np.save(os.path.join(golden_dir, f"slice{n}_attention.npy"), a.astype(np.float16))
        gold.append({"name": f"slice{n}", "sop_instance_uid": str(d.SOPInstanceUID), "instance_number": int(d.InstanceNumber), "shape": list(x.shape)})
    with open(os.path.join(golden_dir, "index.json"), "w") as f:
        json.dump({"note": "inputs, probs and attention stored as float16; outputs computed by onnxruntime "
                   + ort.__version__ + " from the float16-rounded inputs", "slices": gold}, f, indent=1)

    # Figure: three axial slices of the held-out whole head: image, labels, attention.
    rows = []
    colours = np.array([l["color"] for l in LABELS], float)
    for k in (55, 85, 110):
        img = normalise(ch2[:, :, k])
        grey = np.repeat(img[..., None] * 255, 3, -1)
        lab = whole_lab[:, :, k]
        over = grey.copy()
        m = lab > 0
        over[m] = 0.45 * grey[m] + 0.55 * colours[lab[m]]
        lo, hi = results["attention_percentiles_in_head"]["5"], results["attention_percentiles_in_head"]["99"]
        heat = inferno((whole_att[:, :, k] - lo) / max(hi - lo, 1e-6))
        heat = np.where((ch2[:, :, k] > 10)[..., None], 0.4 * grey + 0.6 * heat, grey)
        # RAS (x, y) arrays shown radiologically: anterior up, patient right on the left.
        rows.append(np.concatenate([p[::-1, ::-1].transpose(1, 0, 2) for p in (grey, over, heat)], 1))
    png(os.path.join(os.path.dirname(onnx_path), "model-card-figure.png"), np.concatenate(rows, 0))

    with open(out_json, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
