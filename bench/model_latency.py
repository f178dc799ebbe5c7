#!/usr/bin/env python3
"""Latency of the tissue model against version 1's, side by side in one run (onnxruntime's CPU
provider, the library Focal loads): one 256 x 256 slice on one thread, and batches of 8 slices
of the sample's size (181 x 217, padded to 184 x 224) on two threads, rounds alternating
between the models. Version 1 is read from the git history (commit 3a7849e), so this runs in a
clone with history. Prints medians and the ratio to version 1 (the issue's budget is 2x). Not a
test: numbers on a shared machine vary; the ratio is what to read.

    ~/.cache/focal/py/bin/python bench/model_latency.py [--rounds 5] [--extra OTHER.onnx]
"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V1_COMMIT = "3a7849e"


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def median_ms(s, x, repeats):
    name = s.get_inputs()[0].name
    s.run(None, {name: x})  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        s.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--extra", action="append", default=[], help="another tissue graph to time beside them")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    v1 = os.path.join(tmp, "v1.onnx")
    with open(v1, "wb") as f:
        f.write(subprocess.run(["git", "-C", ROOT, "show", f"{V1_COMMIT}:models/brain-tissue.onnx"],
                               check=True, capture_output=True).stdout)
    models = {"version 1": v1, "shipped": os.path.join(ROOT, "models", "brain-tissue.onnx")}
    models.update({os.path.basename(p): p for p in args.extra})
    cases = [("256 x 256, 1 slice, 1 thread", (1, 256, 256), 1, 15),
             ("184 x 224, batch of 8, 2 threads", (8, 184, 224), 2, 5)]
    rng = np.random.default_rng(0)
    results = {}
    for label, (n, h, w), threads, repeats in cases:
        sessions = {k: session(p, threads) for k, p in models.items()}
        inputs = {}
        for k, s in sessions.items():
            channels = s.get_inputs()[0].shape[1]
            x = rng.random((n, channels, h, w), dtype=np.float32)
            x[:, :, : h // 5] = 0
            inputs[k] = x
        best = {k: [] for k in models}
        for _ in range(args.rounds):
            for k, s in sessions.items():
                best[k].append(median_ms(s, inputs[k], repeats))
        results[label] = {k: float(np.median(v)) for k, v in best.items()}
    print(f"onnxruntime {ort.__version__}, {args.rounds} rounds, median of the rounds' medians")
    for label, r in results.items():
        per = f" ({r['version 1'] / 8:.1f} ms/slice)" if "batch" in label else ""
        line = [f"{label}: version 1 {r['version 1']:.1f} ms{per}"]
        for k, v in r.items():
            if k != "version 1":
                line.append(f"{k} {v:.1f} ms (x{v / r['version 1']:.2f})")
        print("; ".join(line))


if __name__ == "__main__":
    main()
