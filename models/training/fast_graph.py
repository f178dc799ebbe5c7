#!/usr/bin/env python3
"""Rewrites the exported tissue graph into an equivalent one that runs faster on onnxruntime's
CPU provider, then checks the two agree and times them side by side.

What PyTorch's exporter writes and what it costs (onnxruntime 1.31.1, one thread, 256 x 256,
profiled with `enable_profiling`):
- the gate's fixed noise pattern (common.hashed_noise) is integer hashing with three int64
  `Mod` nodes: ~15 ms of ~136 ms, more than any layer but the convolutions. The same modular
  arithmetic in float64 is exact (every value stays below 2^47, far inside a double's 53-bit
  mantissa, and floor(x / m) cannot round across an integer: x / m is at least 1 / m from the
  next one), so the rewrite computes `x - floor(x / m) * m` in doubles and casts to float32 where
  the original cast its int64s: the noise is the same to the bit.
- `Softmax` over the channel axis of NCHW tensors (the class probabilities and the modality
  weights): onnxruntime transposes to make the axis last and back. Written out as
  max / subtract / exp / sum / divide over axis 1 it needs no transposes; the values agree to
  float32 rounding (checked below).

usage: fast_graph.py IN.onnx OUT.onnx [--manifest ../brain-tissue.json]
       (export.py applies `rewrite` to every export)
"""
import argparse
import hashlib
import json
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _constants(graph):
    return {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}


def rewrite(model):
    """The faster equivalent graph (a new model; `model` is not changed)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consts = _constants(graph)
    nodes = list(graph.node)
    out = []
    extra = []  # initialisers added
    fresh = iter(range(10**6))

    def name(stem):
        return f"/fast/{stem}_{next(fresh)}"

    def const(value, dtype):
        n = name("c")
        extra.append(numpy_helper.from_array(np.array(value, dtype=dtype), n))
        return n

    # Integer Mod chains -> float64. An int64 tensor feeding a Mod (directly, or through Mul by a
    # constant) is carried as a double alongside; Casts of a rewritten value read the double.
    as_double = {}  # int64 tensor name -> its float64 twin
    rewritten_mods = 0
    for node in nodes:
        if node.op_type == "Mod" and node.input[1] in consts and consts[node.input[1]].dtype == np.int64:
            m = float(consts[node.input[1]])
            x = node.input[0]
            if x not in as_double:
                d = name("as_double")
                out.append(helper.make_node("Cast", [x], [d], to=TensorProto.DOUBLE))
                as_double[x] = d
            xd, md = as_double[x], const(m, np.float64)
            q, f, p, r = name("div"), name("floor"), name("mul"), name("mod")
            out += [
                helper.make_node("Div", [xd, md], [q]),
                helper.make_node("Floor", [q], [f]),
                helper.make_node("Mul", [f, md], [p]),
                helper.make_node("Sub", [xd, p], [r]),
            ]
            as_double[node.output[0]] = r
            rewritten_mods += 1
            continue
        if (
            node.op_type == "Mul"
            and node.input[0] in as_double
            and node.input[1] in consts
            and consts[node.input[1]].dtype == np.int64
        ):
            r = name("mul")
            out.append(helper.make_node("Mul", [as_double[node.input[0]], const(float(consts[node.input[1]]), np.float64)], [r]))
            as_double[node.output[0]] = r
            continue
        if node.op_type == "Cast" and node.input[0] in as_double:
            node = helper.make_node("Cast", [as_double[node.input[0]]], list(node.output), to=node.attribute[0].i)
        if node.op_type == "Softmax" and helper.get_attribute_value(node.attribute[0]) == 1:
            x, y = node.input[0], node.output[0]
            mx, sh, ex, sm = name("max"), name("shifted"), name("exp"), name("sum")
            axes = const([1], np.int64)
            out += [
                helper.make_node("ReduceMax", [x], [mx], axes=[1], keepdims=1),
                helper.make_node("Sub", [x, mx], [sh]),
                helper.make_node("Exp", [sh], [ex]),
                helper.make_node("ReduceSum", [ex, axes], [sm], keepdims=1),
                helper.make_node("Div", [ex, sm], [y]),
            ]
            continue
        out.append(node)
    if rewritten_mods == 0:
        raise SystemExit("fast_graph: no integer Mod found; is this the tissue graph?")
    # Drop what only the integer chain used (its int64 Mul/Mod nodes were not copied).
    used = {i for n in out for i in n.input} | {o.name for o in graph.output}
    while True:
        keep = [n for n in out if any(o in used for o in n.output)]
        if len(keep) == len(out):
            break
        out = keep
        used = {i for n in out for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(out)
    graph.initializer.extend(extra)
    onnx.checker.check_model(model)
    return model


def compare(original, fast, threads=1, repeats=20):
    """Largest output difference over a few shapes, and median times (ms) at 256 x 256."""
    import onnxruntime as ort

    def session(m):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    a, b = session(original), session(fast)
    names = [o.name for o in original.graph.output]
    rng = np.random.default_rng(0)
    worst, labels_changed = 0.0, 0
    for shape in [(1, 6, 256, 256), (3, 6, 184, 224), (2, 6, 64, 96)]:
        x = rng.random(shape, dtype=np.float32)
        x[:, :, : shape[2] // 4] = 0
        x[0, 3:] = 0
        ra, rb = a.run(names, {"image": x}), b.run(names, {"image": x})
        worst = max([worst] + [float(np.abs(p - q).max()) for p, q in zip(ra, rb)])
        labels_changed += int((ra[0].argmax(1) != rb[0].argmax(1)).sum())
    x = rng.random((1, 6, 256, 256), dtype=np.float32)
    times = {}
    for label, s in [("original", a), ("fast", b)] * 2:  # interleaved, twice
        for _ in range(3):
            s.run(names, {"image": x})
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            s.run(names, {"image": x})
            t.append(time.perf_counter() - t0)
        times.setdefault(label, []).append(float(np.median(t)) * 1000)
    return worst, labels_changed, {k: min(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--manifest", help="brain-tissue.json to point at DST (sha256, version, latency)")
    args = ap.parse_args()
    original = onnx.load(args.src)
    fast = rewrite(original)
    worst, changed, times = compare(original, fast)
    print(f"max |fast - original| = {worst:.2e}, labels changed: {changed}")
    print(f"one thread, 256 x 256, median of 20: original {times['original']:.1f} ms, fast {times['fast']:.1f} ms "
          f"(x{times['fast'] / times['original']:.2f})")
    assert worst <= 1e-5 and changed == 0, "the rewritten graph does not reproduce the original"
    onnx.save(fast, args.dst)
    if args.manifest:
        m = json.load(open(args.manifest))
        m["sha256"] = hashlib.sha256(open(args.dst, "rb").read()).hexdigest()
        if m["version"] == "2.1.0":
            m["version"] = "2.1.1"  # same weights and outputs, faster graph
        m["metrics"]["latency_ms_256_one_thread"] = times["fast"]
        m["metrics"]["latency_ms_256_one_thread_as_exported"] = times["original"]
        m["metrics"]["graph_rewrite"] = {
            "by": "models/training/fast_graph.py",
            "max_abs_difference_vs_export": worst,
            "labels_changed": changed,
        }
        with open(args.manifest, "w") as f:
            json.dump(m, f, indent=1, allow_nan=False)
            f.write("\n")


if __name__ == "__main__":
    main()
