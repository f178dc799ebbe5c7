#!/usr/bin/env python3
"""Export the trained network to ONNX (opset 17, dynamic batch and size), rewrite the graph for
speed (fast_graph.py), check it against PyTorch with onnxruntime, and write the manifest's
model fields.

usage: export.py runs/v2/model.pt ../brain-tissue.onnx
"""
import hashlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from common import CONTEXT, SLOTS, Exported, load_model
from fast_graph import rewrite

OPSET = 17


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    net = Exported(load_model(ckpt)).eval()
    channels = SLOTS * CONTEXT
    example = torch.rand(1, channels, 64, 64)
    names = ["probs", "attention", "modality_attention"]
    torch.onnx.export(
        net, (example,), out, opset_version=OPSET, dynamo=False,
        input_names=["image"], output_names=names,
        dynamic_axes={n: {0: "N", 2: "H", 3: "W"} for n in ["image"] + names},
    )
    model = onnx.load(out)
    onnx.checker.check_model(model)
    model.producer_name = "focal models/training"
    # The same arithmetic, arranged for onnxruntime's CPU provider (fast_graph.py says how).
    model = rewrite(model)
    onnx.save(model, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in [(1, channels, 256, 256), (3, channels, 184, 224), (2, channels, 64, 96)]:
        x = rng.random(shape, dtype=np.float32)
        x[:, :, : shape[2] // 4] = 0  # some dark background, as in real slices
        x[0, CONTEXT:] = 0  # one item without a second series
        with torch.no_grad():
            ref = [t.numpy() for t in net(torch.from_numpy(x))]
        got = sess.run(names, {"image": x})
        worst = max([worst] + [float(np.abs(g - r).max()) for g, r in zip(got, ref)])
        assert np.allclose(got[2].sum(1), 1, atol=1e-5), "modality weights do not sum to 1"
        assert float(got[2][0, 1:].max()) < 1e-3, "an absent series got weight"
    print(f"max |onnxruntime - pytorch| = {worst:.2e}")
    assert worst <= 1e-4, "export does not match PyTorch"
    digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
    print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
