#!/usr/bin/env python3
"""Export the trained network to ONNX (opset 17, dynamic batch and size), check it against
PyTorch with onnxruntime, and write the manifest's model fields.

usage: export.py runs/v1/model.pt ../brain-tissue.onnx
"""
import hashlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from common import Exported, load_model

OPSET = 17


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    net = Exported(load_model(ckpt)).eval()
    example = torch.rand(1, 1, 64, 64)
    torch.onnx.export(
        net, (example,), out, opset_version=OPSET, dynamo=False,
        input_names=["image"], output_names=["probs", "attention"],
        dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "probs": {0: "N", 2: "H", 3: "W"},
                      "attention": {0: "N", 2: "H", 3: "W"}},
    )
    model = onnx.load(out)
    onnx.checker.check_model(model)
    model.producer_name = "focal models/training"
    onnx.save(model, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in [(1, 1, 256, 256), (3, 1, 184, 224), (2, 1, 64, 96)]:
        x = rng.random(shape, dtype=np.float32)
        x[:, :, : shape[2] // 4] = 0  # some dark background, as in real slices
        with torch.no_grad():
            p, a = (t.numpy() for t in net(torch.from_numpy(x)))
        po, ao = sess.run(["probs", "attention"], {"image": x})
        worst = max(worst, float(np.abs(po - p).max()), float(np.abs(ao - a).max()))
    print(f"max |onnxruntime - pytorch| = {worst:.2e}")
    assert worst <= 1e-4, "export does not match PyTorch"
    digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
    print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
