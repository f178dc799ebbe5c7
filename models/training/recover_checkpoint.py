#!/usr/bin/env python3
"""Rebuild PyTorch weights from an exported ONNX model, so fine-tuning can go on from a model
whose checkpoint was lost (candidate 3.1's runs/m3b was never committed, only its ONNX).

The exporter folds each batch normalisation into the convolution before it, so the ONNX holds
W' = W * gamma / sigma and b' = beta - gamma * mu / sigma, not the five tensors. The rebuilt
state puts W' in the convolution and makes the normalisation the identity plus b' (gamma 1,
beta b', running mean 0, running variance 1 - eps): in eval mode the network is the exported
one to float rounding (checked below). Train it with `train.py --freeze-bn`, which keeps the
normalisations on these running statistics; in batch-statistics mode the folded scale would be
normalised away.

Which ONNX tensor is which parameter: a fresh network of the same configuration, with every
normalisation set to the identity and distinct random weights, is exported the same way; each
of its initialisers then equals one parameter (times 1 / sqrt(1 + eps) where a normalisation
was folded), and the target model's initialisers sit in the same places of the same graph.

usage: recover_checkpoint.py MODEL.onnx OUT.pt [--width 16]
"""
import argparse
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from common import CONTEXT, SLOTS, Exported, FocalNet
from fast_graph import rewrite


def initialisers_in_use_order(model):
    """(node index, input index, array) of every initialiser, in graph order."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = []
    for i, node in enumerate(model.graph.node):
        for j, name in enumerate(node.input):
            if name in inits:
                out.append(((node.op_type, j), inits[name]))
    return out


def export_plain(net, path):
    example = torch.rand(1, SLOTS * CONTEXT, 64, 64)
    names = ["probs", "attention", "modality_attention"]
    torch.onnx.export(Exported(net).eval(), (example,), path, opset_version=17, dynamo=False,
                      input_names=["image"], output_names=names,
                      dynamic_axes={n: {0: "N", 2: "H", 3: "W"} for n in ["image"] + names})
    return onnx.load(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_model")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    probe = FocalNet(width=args.width, noise_filler=True)
    bns = {n: m for n, m in probe.named_modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():
        for m in bns.values():
            m.weight.fill_(1.0), m.bias.normal_(), m.running_mean.zero_(), m.running_var.fill_(1.0)
        for p in probe.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn_like(p))  # distinct values to match on
        probe.feature_mean.copy_(torch.randn_like(probe.feature_mean))
        probe.feature_std.copy_(torch.rand_like(probe.feature_std) + 0.5)
    probe.eval()
    state = probe.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = initialisers_in_use_order(rewrite(export_plain(probe, os.path.join(tmp, "probe.onnx"))))
    target = onnx.load(args.onnx_model)
    got = initialisers_in_use_order(target)
    if [(k, a.shape) for k, a in fresh] != [(k, a.shape) for k, a in got]:
        raise SystemExit("the ONNX graph's weights are not laid out as this configuration's: wrong --width or architecture")
    folded = 1.0 / np.sqrt(1.0 + 1e-5)
    names = [n for n, t in state.items() if t.dim() > 1]
    bn_after = {}
    for name, mod in probe.named_modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod.named_children())
            for (a, ma), (b, mb) in zip(kids, kids[1:]):
                if isinstance(ma, nn.Conv2d) and isinstance(mb, nn.BatchNorm2d):
                    bn_after[f"{name}.{a}"] = f"{name}.{b}"
    new = {k: v.clone() for k, v in state.items()}
    conv = None
    for ((kind, j), a), (_, b) in zip(fresh, got):
        b = torch.from_numpy(b.copy())
        stats = [n for n in ("feature_mean", "feature_std") if tuple(state[n].shape) == a.shape
                 and np.allclose(state[n].numpy(), a, atol=1e-6)]
        if stats:
            new[stats[0]] = b
        elif kind != "Conv":
            continue
        elif j == 1:
            hit = [n for n in names if tuple(state[n].shape) == a.shape
                   and (np.allclose(state[n].numpy(), a, atol=1e-6) or np.allclose(state[n].numpy() * folded, a, atol=1e-6))]
            if len(hit) != 1:
                raise SystemExit(f"cannot place an initialiser of shape {a.shape}: {hit}")
            new[hit[0]] = b
            conv = hit[0].rsplit(".", 1)[0]
            if conv in bn_after:
                bn = bn_after[conv]
                new[f"{bn}.weight"] = torch.ones(b.shape[0])
                new[f"{bn}.bias"] = torch.zeros(b.shape[0])  # unless the node takes a bias
                new[f"{bn}.running_mean"] = torch.zeros(b.shape[0])
                new[f"{bn}.running_var"] = torch.full((b.shape[0],), 1.0 - bns[bn].eps)
        elif j == 2:
            if conv in bn_after:
                new[f"{bn_after[conv]}.bias"] = b
            else:
                new[f"{conv}.bias"] = b
    net = FocalNet(width=args.width, noise_filler=True)
    net.load_state_dict(new)
    net.eval()
    sess = ort.InferenceSession(args.onnx_model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, SLOTS * CONTEXT, 96, 128), dtype=np.float32)
    x[1, CONTEXT:] = 0
    with torch.no_grad():
        ref = [t.numpy() for t in Exported(net)(torch.from_numpy(x))]
    onnx_out = sess.run(["probs", "attention", "modality_attention"], {"image": x})
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ref, onnx_out))
    print(f"max |rebuilt - onnx| = {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("the rebuilt weights do not reproduce the ONNX model")
    torch.save(new, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
