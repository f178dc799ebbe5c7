#!/usr/bin/env python3
"""CI check of the committed model: the .onnx matches the manifest's sha256, its inputs and
outputs are the ones the manifest names, and onnxruntime reproduces the golden outputs.

usage: check_model.py models/brain-tissue.json [F32_OUT_DIR]

With F32_OUT_DIR, also writes onnxruntime's float32 outputs for the golden inputs there, so the
Rust tests can compare Focal's own ONNX Runtime path with Python's at full precision.
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort

# Golden values are stored as float16: their rounding error is below 2^-11 for values in [0, 1].
TOLERANCE = 1e-3


def main():
    manifest_path = sys.argv[1]
    base = os.path.dirname(os.path.abspath(manifest_path))
    m = json.load(open(manifest_path))
    onnx_path = os.path.join(base, m["file"])
    digest = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    assert digest == m["sha256"], f"{m['file']}: sha256 {digest} but the manifest says {m['sha256']}"
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    assert inputs == [m["input"]["name"]], f"model inputs {inputs}, manifest {m['input']['name']}"
    assert outputs == [o["name"] for o in m["outputs"]], f"model outputs {outputs}, manifest {m['outputs']}"
    golden = os.path.join(base, m["golden"])
    index = json.load(open(os.path.join(golden, "index.json")))
    worst = 0.0
    for g in index["slices"]:
        x = np.load(os.path.join(golden, g["name"] + "_input.npy")).astype(np.float32)
        names = [o["name"] for o in m["outputs"]]
        values = dict(zip(names, sess.run(names, {"image": x})))
        probs = values["probs"]
        if len(sys.argv) > 2:
            os.makedirs(sys.argv[2], exist_ok=True)
            for name, value in values.items():
                np.save(os.path.join(sys.argv[2], f"{g['name']}_{name}.npy"), value.astype(np.float32))
        if "modality_attention" in values:
            assert np.allclose(values["modality_attention"].sum(1), 1, atol=1e-4), "modality weights do not sum to 1"
        for name, value in values.items():
            ref = np.load(os.path.join(golden, f"{g['name']}_{name}.npy")).astype(np.float32)
            assert ref.shape == value.shape, f"{g['name']} {name}: shape {value.shape} vs golden {ref.shape}"
            worst = max(worst, float(np.abs(ref - value).max()))
        assert np.allclose(probs.sum(1), 1, atol=1e-4), "probs do not sum to 1"
    assert worst <= TOLERANCE, f"onnxruntime differs from the golden outputs by {worst}"
    extent = check_extent(m, base, golden, index, sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"model check: sha256 ok, inputs/outputs ok, {len(index['slices'])} golden slices within {worst:.1e}{extent}")


def check_extent(m, base, golden, index, f32_dir):
    """The brain-extent model (manifests with "extent"): sha256, names, golden output."""
    e = m.get("extent")
    if e is None:
        return ""
    # Model 3 keeps model 2's extent (section and file) without its step: still checked, so that
    # a manifest that uses it gets a model that is what its section says.
    path = os.path.join(base, e["file"])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert digest == e["sha256"], f"{e['file']}: sha256 {digest} but the manifest says {e['sha256']}"
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [e["input"]], "extent input name"
    assert e["output"] in [o.name for o in sess.get_outputs()], "extent output name"
    g = index["extent"]
    x = np.load(os.path.join(golden, g["input"] + ".npy")).astype(np.float32)
    got = sess.run([e["output"]], {e["input"]: x})[0]
    if f32_dir:
        np.save(os.path.join(f32_dir, g["output"] + ".npy"), got.astype(np.float32))
    ref = np.load(os.path.join(golden, g["output"] + ".npy")).astype(np.float32)
    assert ref.shape == got.shape, f"extent output shape {got.shape} vs golden {ref.shape}"
    err = float(np.abs(ref - got).max())
    assert err <= TOLERANCE, f"onnxruntime differs from the golden brain extent by {err}"
    return f"; brain extent sha256 ok, golden within {err:.1e}"


if __name__ == "__main__":
    main()
