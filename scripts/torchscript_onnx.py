#!/usr/bin/env python3
"""Turns a TorchScript archive of a plain 3D convolutional network into an ONNX file, without
PyTorch (which this project's machines do not install).

A TorchScript archive is a zip holding `data.pkl` (the module tree, its tensors pointing at raw
little-endian storages under `data/`) and `code/` (each module's `forward`, written in a subset of
Python). The module tree is rebuilt with a restricted unpickler, the `forward` code is run in
Python against a stand-in `torch` whose operations add ONNX nodes instead of computing, and the
resulting graph is written with the `onnx` package. Only the operations plain encoder-decoder
networks use are known (convolution and transposed convolution, instance normalisation, ReLU,
max pooling, addition, softmax); anything else stops the conversion with its name.

Used by scripts/fetch-deepbet.sh for deepbet's two models (MIT, Fisch et al. 2024).

    torchscript_onnx.py ARCHIVE.pt OUT.onnx [--channel N]

--channel keeps one channel of the softmax output (deepbet's p(brain) is channel 1).
"""
import argparse
import io
import pathlib
import pickle
import re
import sys
import types
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Graph:
    """The ONNX graph being written: nodes, weights and fresh names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def weight(self, array, stem):
        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), n))
        return n

    def node(self, op, inputs, channels, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return Sym(out, channels)


class Sym:
    """A tensor of the traced graph: its ONNX name and its channel count."""

    def __init__(self, name, channels):
        self.name, self.channels = name, channels


GRAPH = None


def _conv(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups, *_):
    w = GRAPH.weight(weight, "w")
    inputs = [x.name, w] + ([GRAPH.weight(bias, "b")] if bias is not None else [])
    attrs = dict(strides=list(stride), pads=list(padding) * 2, dilations=list(dilation), group=int(groups))
    if transposed:
        out_channels = weight.shape[1] * groups
        return GRAPH.node("ConvTranspose", inputs, out_channels, output_padding=list(output_padding), **attrs)
    return GRAPH.node("Conv", inputs, weight.shape[0], **attrs)


def _instance_norm(x, weight, bias, _mean, _var, use_input_stats, _momentum, eps, *_):
    if not use_input_stats:
        raise SystemExit("instance_norm with running statistics is not supported")
    c = x.channels
    scale = GRAPH.weight(np.ones(c) if weight is None else weight, "scale")
    shift = GRAPH.weight(np.zeros(c) if bias is None else bias, "shift")
    return GRAPH.node("InstanceNormalization", [x.name, scale, shift], c, epsilon=float(eps))


def _max_pool(x, kernel, stride, padding, dilation=(1, 1, 1), ceil_mode=False):
    return GRAPH.node(
        "MaxPool", [x.name], x.channels, kernel_shape=list(kernel), strides=list(stride),
        pads=list(padding) * 2, dilations=list(dilation), ceil_mode=int(bool(ceil_mode)))


def _add(a, b, alpha=1):
    if alpha != 1:
        raise SystemExit("add with alpha is not supported")
    return GRAPH.node("Add", [a.name, b.name], a.channels)


def _relu(x):
    return GRAPH.node("Relu", [x.name], x.channels)


def _softmax(x, dim, *_):
    return GRAPH.node("Softmax", [x.name], x.channels, axis=int(dim))


class FakeTorch(types.ModuleType):
    """The `torch` that the archive's code sees: known operations add nodes, others stop."""

    _ops = {
        "_convolution": _conv, "instance_norm": _instance_norm, "max_pool3d": _max_pool,
        "add": _add, "add_": _add, "relu": _relu, "relu_": _relu, "softmax": _softmax,
    }

    def __getattr__(self, name):
        if name in self._ops:
            return self._ops[name]
        raise SystemExit(f"the network uses torch.{name}, which this converter does not know")


class Module:
    """Base of the archive's module classes; the unpickler fills `__dict__`."""


def load_code(archive, prefix):
    """Runs every code file of the archive; returns {'__torch__.a.b': namespace}."""
    spaces = {}
    torch = FakeTorch("torch")
    for entry in archive.namelist():
        if not entry.startswith(f"{prefix}/code/") or not entry.endswith(".py"):
            continue
        source = archive.read(entry).decode()
        # Annotations name other archive classes; they are never needed to run forward.
        source = re.sub(r"^\s*__annotations__\[.*$", "", source, flags=re.M)
        module = entry[len(f"{prefix}/code/"):-3].replace("/", ".")
        ns = {"Module": Module, "torch": torch, "Tensor": object, "Optional": object, "List": object,
              "Tuple": object, "__name__": module}
        exec(compile("from __future__ import annotations\n" + source, entry, "exec"), ns)
        spaces[module] = ns
    return spaces


def load_tree(archive, prefix, spaces):
    """Unpickles data.pkl into the module tree with numpy weights; nothing else is allowed."""

    def storage(pid):
        kind, _dtype, key, _location, numel = pid
        if kind != "storage":
            raise SystemExit(f"unknown persistent id {kind}")
        raw = archive.read(f"{prefix}/data/{key}")
        return np.frombuffer(raw, dtype="<f4", count=numel)

    def rebuild(store, offset, size, stride, *_):
        item = store.itemsize
        view = np.lib.stride_tricks.as_strided(store[offset:], tuple(size), tuple(s * item for s in stride))
        return view.astype(np.float32, copy=True)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.startswith("__torch__"):
                return spaces[module][name]
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild
            if (module, name) == ("torch", "FloatStorage"):
                return "float32"
            if (module, name) == ("collections", "OrderedDict"):
                return dict
            raise SystemExit(f"the archive asks for {module}.{name}, which is not allowed")

        def persistent_load(self, pid):
            return storage(pid)

    return Unpickler(io.BytesIO(archive.read(f"{prefix}/data.pkl"))).load()


def convert(path, out, channel=None):
    global GRAPH
    GRAPH = Graph()
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        spaces = load_code(archive, prefix)
        root = load_tree(archive, prefix, spaces)
        first = next(v for v in _walk(root) if hasattr(v, "weight"))
        x = Sym("image", first.weight.shape[1])
        y = root.forward(x)
    output = y.name
    if channel is not None:
        GRAPH.inits += [numpy_helper.from_array(np.array([v], dtype=np.int64), f"slice_{k}")
                        for k, v in (("start", channel), ("end", channel + 1), ("axis", 1))]
        GRAPH.nodes.append(helper.make_node("Slice", [y.name, "slice_start", "slice_end", "slice_axis"], ["brain"]))
        output = "brain"
    dims = ["N", x.channels, "X", "Y", "Z"]
    graph = helper.make_graph(
        GRAPH.nodes, pathlib.Path(path).stem, [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 1 if channel is not None else y.channels, "X", "Y", "Z"])],
        GRAPH.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="focal torchscript_onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    tmp = pathlib.Path(str(out) + ".part")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(out)
    return len(GRAPH.nodes), sum(int(np.prod(i.dims)) for i in GRAPH.inits)


def _walk(obj, seen=None):
    seen = set() if seen is None else seen
    if id(obj) in seen or not isinstance(obj, Module):
        return
    seen.add(id(obj))
    yield obj
    for value in vars(obj).values():
        yield from _walk(value, seen)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive")
    p.add_argument("out")
    p.add_argument("--channel", type=int)
    a = p.parse_args()
    nodes, params = convert(a.archive, a.out, a.channel)
    print(f"{a.out}: {nodes} nodes, {params} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
