#!/usr/bin/env python3
"""The same model on the same slices through Focal (Rust, ort) and through Python
onnxruntime, in one run: per-slice latency including pre- and post-processing, as a ratio,
and slices/s for the whole sample study.

    ~/.cache/focal/py/bin/python bench/infer_vs_python.py [--focal BIN] [--repeat 3]

Both sides: each slice with its two neighbours (the model's 2.5D input; the second modality
slot empty), normalised together by their 99.5th percentile, zero-padded to a multiple of 8,
batches of 8, the model, cropping, argmax labels, per-class probabilities, attention and
modality weights kept. DICOM decoding is excluded on both sides, and so is Focal's deletion
test of the attention (it reports both times separately).
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import pydicom

from focal_build import release_focal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def python_pipeline(sess, slices):
    t = time.perf_counter()
    labels, probs_out, att_out = [], [], []
    h, w = slices[0].shape
    ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
    n = len(slices)
    for i in range(0, n, 8):
        batch = np.zeros((len(slices[i:i + 8]), 6, ph, pw), np.float32)
        for b in range(len(slices[i:i + 8])):
            k = i + b
            slab = np.stack([np.clip(slices[min(max(k + d, 0), n - 1)], 0, None) for d in (-1, 0, 1)])
            pos = slab[slab > 0]
            scale = np.percentile(pos, 99.5) if pos.size else 1.0
            batch[b, :3, :h, :w] = np.clip(slab / max(scale, 1e-6), 0, 1)
        p, a, m = sess.run(["probs", "attention", "modality_attention"], {"image": batch})
        p, a, m = p[..., :h, :w], a[:, 0, :h, :w], m[..., :h, :w]
        labels.append(p.argmax(1).astype(np.uint8))
        probs_out.append(p.copy())
        att_out.append(a.copy())
    return time.perf_counter() - t, np.concatenate(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--focal", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    focal = release_focal(args.focal)
    sample = os.path.join(ROOT, "assets", "sample-study")
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    slices = [d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in files]
    sess = ort.InferenceSession(os.path.join(ROOT, "models", "brain-tissue.onnx"), providers=["CPUExecutionProvider"])
    python_pipeline(sess, slices[:8])  # warm-up
    py_times, focal_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            py_times.append(python_pipeline(sess, slices)[0])
            out = os.path.join(tmp, f"run{r}")
            subprocess.run([focal, "analyze", sample, "--device", "cpu", "--out", out], check=True, capture_output=True)
            summary = json.load(open(os.path.join(out, "summary.json")))
            focal_times.append(summary["seconds"]["inference_total"] - summary["seconds"]["faithfulness"])
    n = len(slices)
    py, fo = min(py_times) / n * 1000, min(focal_times) / n * 1000
    print(f"sample study: {n} slices of {slices[0].shape[1]}x{slices[0].shape[0]}, batches of 8, CPU, best of {args.repeat}")
    print(f"Python onnxruntime {ort.__version__}: {py:.1f} ms/slice ({1000 / py:.1f} slices/s)")
    print(f"Focal (ort, Rust):       {fo:.1f} ms/slice ({1000 / fo:.1f} slices/s)")
    print(f"ratio Focal/Python: {fo / py:.2f}x")


if __name__ == "__main__":
    main()
