#!/usr/bin/env python3
"""Model 2.1's brain extent: a light 3D U-Net that says where the brain is in a whole-head
volume, so that the 2.5D tissue model's labels outside it (skull base, orbits, face, neck,
scalp) are dropped. The tissue model sees three slices; the false brain it labels at the skull
base is joined to the real brain in 2D and cannot be told apart without 3D context.

Input: the volume in RAS axis order resampled to a 3 mm grid (separable triangle filter,
`resample_axis`), divided by its 99.5th percentile of values > 0 and clipped to [0, 1], padded
to multiples of 8. Output: p(brain) on that grid; the app interpolates it back linearly and
keeps tissue labels where p >= 0.5 (the manifest's `brain_extent` step).

Training examples are synthesised from 3D label maps (the same domain randomisation as
train.py): the head CT with a neck (head_labels.py --neck) 60 %, the MNI brain with random
synthetic shells 40 %, where brain is the parenchyma with its inner CSF (`tight_brain`); a random rotation, scale, flip and elastic warp, a random contrast per
tissue, blur, thick slices along any axis (3-8 mm), bias field, gamma, noise and partial
coverage, made at 1.5 mm and averaged to 3 mm. Colin27 and the ITK head are held out.

usage:
  mask3d.py train --minutes 36 --out runs/mask3 --seed 3013
  mask3d.py export runs/mask3/model.pt ../brain-extent.onnx
  mask3d.py evaluate ../brain-extent.onnx [--json OUT]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

from common import DATA, GEN, random_contrast

# mm, the model's grid (3 mm for 2.1; FOCAL_EXTENT_SPACING=2 trains and runs a 2 mm variant, and
# must then be set for export, evaluate and write_manifest.py too)
SPACING = float(os.environ.get("FOCAL_EXTENT_SPACING", "3"))
FINE = SPACING / 2  # mm, where training images are synthesised before averaging to SPACING
SIZE_MULTIPLE = 8
PERCENTILE = 99.5
THRESHOLD = 0.5


def resample_axis(vol, axis, src, dst, n_out=None):
    """Resamples `vol` along `axis` from sample spacing `src` to `dst` (mm), both grids starting
    at the first sample: output j lies at j * dst. Weights are a triangle of half-width
    max(src, dst) normalised to sum 1 (linear interpolation when upsampling, an anti-aliasing
    average when downsampling). The app implements the same function (inference/extent.rs)."""
    n = vol.shape[axis]
    if n_out is None:
        n_out = int(math.floor((n - 1) * src / dst + 1e-6)) + 1
    half = max(src, dst)
    moved = np.moveaxis(np.asarray(vol, np.float32), axis, 0)
    out = np.zeros((n_out,) + moved.shape[1:], np.float32)
    for j in range(n_out):
        y = j * dst
        lo = max(int(math.ceil((y - half) / src - 1e-9)), 0)
        hi = min(int(math.floor((y + half) / src + 1e-9)), n - 1)
        acc = np.zeros(moved.shape[1:], np.float64)
        total = 0.0
        for i in range(lo, hi + 1):
            w = 1.0 - abs(i * src - y) / half
            if w > 0:
                acc += w * moved[i]
                total += w
        if total == 0:  # past the last sample (upsampling only): the nearest one
            acc, total = moved[min(max(int(round(y / src)), 0), n - 1)].astype(np.float64), 1.0
        out[j] = acc / total
    return np.moveaxis(out, 0, axis)


def model_input(vol_ras, spacing):
    """The network's input [1, 1, X, Y, Z] for a RAS-ordered volume with voxel `spacing` (mm),
    and the unpadded grid shape: resampled to SPACING, scaled by the 99.5th percentile of the
    values > 0, clipped, zero-padded at the high ends to multiples of SIZE_MULTIPLE."""
    x = np.clip(np.asarray(vol_ras, np.float32), 0, None)
    for axis in range(3):
        x = resample_axis(x, axis, spacing[axis], SPACING)
    pos = x[x > 0]
    scale = float(np.percentile(pos, PERCENTILE)) if pos.size else 1.0
    x = np.clip(x / max(scale, 1e-6), 0, 1)
    shape = x.shape
    x = np.pad(x, [(0, (-s) % SIZE_MULTIPLE) for s in shape])
    return x[None, None].astype(np.float32), shape


class Extent:
    """p(brain) of a volume through the exported ONNX model, back on the volume's grid."""

    def __init__(self, path, threads=2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def coarse(self, vol_ras, spacing):
        x, shape = model_input(vol_ras, spacing)
        p = self.sess.run(["brain"], {"image": x})[0][0, 0]
        return x, p[: shape[0], : shape[1], : shape[2]]

    def probability(self, vol_ras, spacing):
        _, p = self.coarse(vol_ras, spacing)
        for axis in range(3):
            p = resample_axis(p, axis, SPACING, spacing[axis], n_out=vol_ras.shape[axis])
        return p


# ---------------------------------------------------------------------------------------------
# The network


def block(cin, cout):
    # Batch normalisation, not instance normalisation: at inference the network sees the whole
    # volume, not a training crop, and per-volume statistics would change with its extent (an
    # instance-normalised version labelled 541 mL outside Colin27's brain on the whole volume and
    # 46 mL when run on 48^3 windows; evaluated once, at step 1,000, to find the cause).
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.LeakyReLU(0.1),
        nn.Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.LeakyReLU(0.1),
    )


class ExtentNet(nn.Module):
    """A 3D U-Net with three poolings and batch normalisation; one logit per voxel (brain or not)."""

    def __init__(self, width=8):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.enc = nn.ModuleList([block(1, w[0]), block(w[0], w[1]), block(w[1], w[2]), block(w[2], w[3])])
        self.dec = nn.ModuleList([block(w[3] + w[2], w[2]), block(w[2] + w[1], w[1]), block(w[1] + w[0], w[0])])
        self.head = nn.Conv3d(w[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, b in enumerate(self.enc):
            x = b(x if i == 0 else F.max_pool3d(x, 2))
            skips.append(x)
        x = skips.pop()
        for b in self.dec:
            x = b(torch.cat([F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False), skips.pop()], 1))
        return self.head(x)


class Exported(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net(image))


# ---------------------------------------------------------------------------------------------
# Synthesis


def shelled_mni(rng):
    from train import shelled_mni as shells

    return shells(rng)


def tight_brain(labels, close_mm=3):
    """What the extent learns as brain is the parenchyma with the CSF inside it (sulci,
    ventricles), as brain-extraction masks (BET) draw it: CSF outside the closed, hole-filled
    hull of grey and white matter becomes dura (not brain). Without this, the head CT's label
    map counts its whole intracranial cavity as brain (the cavity the template does not reach is
    CSF there) while the MNI brain's shells start at the template's mask, and the extent learned
    the inner skull table as the brain's edge."""
    parenchyma = (labels == GEN["gm"]) | (labels == GEN["wm"])
    hull = ndimage.binary_closing(parenchyma, ndimage.generate_binary_structure(3, 1), iterations=close_mm)
    hull = ndimage.binary_fill_holes(hull)
    out = labels.copy()
    out[(labels == GEN["csf"]) & ~hull] = GEN["dura"]
    return out


class Synth:
    def __init__(self, volumes, weights, crop, rng):
        self.rng, self.crop = rng, crop
        self.volumes = [torch.from_numpy(v.astype(np.float32))[None, None] for v in volumes]
        self.boxes = []
        for v in volumes:
            head = np.nonzero(v > 0)
            brain = np.nonzero((v > 0) & (v <= 3))
            self.boxes.append(([a.min() for a in head], [a.max() for a in head],
                               [a.min() for a in brain], [a.max() for a in brain]))
        self.weights = np.array(weights, float) / sum(weights)

    def labels(self):
        """A warped label block of (2 * crop)^3 voxels at FINE mm."""
        r = self.rng
        i = r.choice(len(self.volumes), p=self.weights)
        vol = self.volumes[i]
        h0, h1, b0, b1 = self.boxes[i]
        lo, hi = (b0, b1) if r.random() < 0.7 else (h0, h1)
        centre = np.array([r.uniform(lo[a], hi[a]) for a in range(3)])
        ang = r.uniform(-0.3, 0.3, 3)
        cx, cy, cz = np.cos(ang)
        sx, sy, sz = np.sin(ang)
        rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
               @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
        scale = r.uniform(0.85, 1.18, 3) * r.uniform(0.9, 1.1)
        if r.random() < 0.5:
            scale[0] = -scale[0]
        n = 2 * self.crop
        u = (np.arange(n) - (n - 1) / 2) * FINE
        g = np.stack(np.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)
        pts = g @ (rot * scale[None, :]).T + centre
        # elastic: a smooth random displacement of a few mm
        disp = torch.from_numpy(r.normal(0, 1, (1, 3, 5, 5, 5)).astype(np.float32)) * float(r.uniform(0, 3))
        disp = F.interpolate(disp, size=(n, n, n), mode="trilinear", align_corners=True)[0].reshape(3, -1).T.numpy()
        pts = pts + disp
        shape = np.array(vol.shape[2:], float)
        norm = (pts + 0.5) / shape * 2 - 1  # voxel centres, align_corners=False
        grid = torch.from_numpy(norm[:, ::-1].copy().astype(np.float32)).reshape(1, n, n, n, 3)
        lab = F.grid_sample(vol, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return lab[0, 0].numpy().astype(np.int64)

    def example(self):
        r = self.rng
        lab = self.labels()
        mu, sd = random_contrast(r)
        img = mu[lab] + sd[lab] * r.standard_normal(lab.shape).astype(np.float32)
        img = ndimage.gaussian_filter(img, r.uniform(0.3, 1.2))
        if r.random() < 0.5:  # thick slices along one axis: averaged over the thickness, sampled at it
            axis = int(r.integers(0, 3))
            k = max(int(round(r.uniform(3, 8) / FINE)), 2)
            img = ndimage.uniform_filter1d(img, k, axis=axis)
            keep = np.arange(int(r.integers(0, k)), img.shape[axis], k)
            sub = np.take(img, keep, axis=axis)
            pos = np.arange(img.shape[axis], dtype=np.float32)
            idx = np.clip(np.searchsorted(keep, pos) - 1, 0, len(keep) - 2)
            f = np.clip((pos - keep[idx]) / k, 0, 1)
            shp = [1, 1, 1]
            shp[axis] = -1
            img = (np.take(sub, idx, axis=axis) * (1 - f).reshape(shp) + np.take(sub, idx + 1, axis=axis) * f.reshape(shp))
        n = img.shape[0]
        t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
        field = torch.from_numpy(r.normal(0, 1, (1, 1, 4, 4, 4)).astype(np.float32)) * float(r.uniform(0, 0.4))
        t = t * torch.exp(F.interpolate(field, size=(n, n, n), mode="trilinear", align_corners=True))
        t = t.clamp(min=0) ** float(np.exp(r.normal(0, 0.25)))
        noise = float(r.uniform(0, 0.05) if r.random() < 0.8 else r.uniform(0.05, 0.12))
        t = (t + noise * torch.randn_like(t)).abs()
        t = F.avg_pool3d(t, 2)
        target = F.avg_pool3d(torch.from_numpy(((lab >= 1) & (lab <= 3)).astype(np.float32))[None, None], 2)
        if r.random() < 0.25:  # partial coverage: one side of the block was not acquired
            axis = 2 + int(r.integers(0, 3))
            cut = int(r.integers(self.crop // 8, self.crop // 2))
            sl = [slice(None)] * 5
            sl[axis] = slice(0, cut) if r.random() < 0.5 else slice(self.crop - cut, None)
            t[tuple(sl)] = 0
            target[tuple(sl)] = 0
        pos = t[t > 0]
        q = torch.quantile(pos[:: max(pos.numel() // 100000, 1)], PERCENTILE / 100) if pos.numel() > 10 else torch.tensor(1.0)
        t = (t / q.clamp(min=1e-6)).clamp(0, 1)
        return t[0], target[0]

    def batch(self, n):
        xs, ys = zip(*(self.example() for _ in range(n)))
        return torch.stack(xs), torch.stack(ys)


def loss_fn(logits, target):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def train(args):
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    head = np.load(args.labels)["labels"]
    volumes = [tight_brain(v) for v in (head, shelled_mni(rng), shelled_mni(rng))]
    for name, after in zip(("head CT", "MNI shells 1", "MNI shells 2"), volumes):
        print(f"{name}: brain {((after >= 1) & (after <= 3)).sum() / 1000:.0f} mL", flush=True)
    synth = Synth(volumes, [0.6, 0.2, 0.2], args.crop, rng)
    net = ExtentNet(args.width)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    start, step, log, run = time.time(), 0, [], []
    while True:
        elapsed = time.time() - start
        # --steps: the schedule follows steps, so a run does not depend on what else shares the cores.
        if (step >= args.steps) if args.steps else (elapsed > budget):
            break
        frac = step / args.steps if args.steps else elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * frac)) + 1e-5
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = synth.batch(args.batch)
        net.train()
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.append(loss.item())
        step += 1
        if step % 50 == 0:
            entry = {"step": step, "minutes": round(elapsed / 60, 2), "loss": round(float(np.mean(run)), 4), "lr": round(lr, 6)}
            run = []
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if step % 500 == 0:
            torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"steps": step, "steps_asked": args.steps, "minutes": round((time.time() - start) / 60, 1), "parameters": params, "seed": args.seed,
                   "width": args.width, "batch": args.batch, "crop": args.crop, "spacing_mm": SPACING, "lr": args.lr,
                   "labels": os.path.basename(args.labels), "log": log}, f, indent=1)
    print(f"done: {step} steps, {params} parameters")


def export(pt, onnx_path):
    net = ExtentNet(int(os.environ.get("FOCAL_EXTENT_WIDTH", "8")))
    net.load_state_dict(torch.load(pt, map_location="cpu"))
    model = Exported(net).eval()
    x = torch.rand(1, 1, 40, 48, 56)
    torch.onnx.export(model, (x,), onnx_path, input_names=["image"], output_names=["brain"], opset_version=17,
                      dynamic_axes={"image": {2: "x", 3: "y", 4: "z"}, "brain": {2: "x", 3: "y", 4: "z"}}, dynamo=False)
    model.eval()  # the exporter restores the mode it found; the check compares with inference mode
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    for shape in ((1, 1, 40, 48, 56), (1, 1, 64, 72, 80)):
        x = torch.rand(*shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(["brain"], {"image": x.numpy()})[0]
        err = float(np.abs(want - got).max())
        print(f"export check {shape}: max |torch - onnxruntime| = {err:.2e}")
        assert err < 1e-4, err


def ensemble(members, onnx_path):
    """One ONNX model whose p(brain) is the mean of the members' (same input and output names):
    the members' graphs side by side on the one input, their outputs averaged."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(m) for m in members]
    merged = None
    outputs = []
    for k, m in enumerate(models):
        m = compose.add_prefix(m, prefix=f"m{k}_")
        outputs.append(f"m{k}_brain")
        if merged is None:
            merged = m
            continue
        # The first member's input feeds every other member.
        merged = compose.merge_models(merged, m, io_map=[], prefix1="", prefix2="")
    graph = merged.graph
    # One graph input named "image" that all members read.
    for inp in list(graph.input):
        graph.input.remove(inp)
    first = models[0].graph.input[0]
    graph.input.append(first)
    for node in graph.node:
        node.input[:] = ["image" if (i.startswith("m") and i.endswith("_image") and i[1:-6].isdigit()) else i for i in node.input]
    for out in list(graph.output):
        graph.output.remove(out)
    graph.node.append(helper.make_node("Sum", outputs, ["brain_sum"]))
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0 / len(models), np.float32), "ensemble_weight"))
    graph.node.append(helper.make_node("Mul", ["brain_sum", "ensemble_weight"], ["brain"]))
    graph.output.append(models[0].graph.output[0])
    onnx.checker.check_model(merged)
    os.makedirs(os.path.dirname(os.path.abspath(onnx_path)), exist_ok=True)
    onnx.save(merged, onnx_path)
    # Check: the merged model is the mean of the members.
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 1, 40, 48, 56), dtype=np.float32)
    got = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(["brain"], {"image": x})[0]
    want = np.mean([ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(["brain"], {"image": x})[0] for m in members], 0)
    err = float(np.abs(got - want).max())
    print(f"ensemble of {len(members)}: max |merged - mean of members| = {err:.2e}")
    assert err < 1e-5, err


# ---------------------------------------------------------------------------------------------
# Held-out evaluation of the extent alone


def metrics(pred, mask, voxel_ml):
    s = pred.sum() + mask.sum()
    return {"dice_brain_vs_mask": float(2 * (pred & mask).sum() / s) if s else float("nan"),
            "labelled_ml": float(pred.sum() * voxel_ml), "mask_ml": float(mask.sum() * voxel_ml),
            "outside_mask_ml": float((pred & ~mask).sum() * voxel_ml), "mask_missed_ml": float((mask & ~pred).sum() * voxel_ml)}


def held_out():
    """(name, RAS volume, spacing, brain mask) of the held-out heads."""
    import nibabel as nib

    from common import ITK, MRICRON

    load = lambda n: nib.as_closest_canonical(nib.load(MRICRON.format(n)))
    ch2 = load("ch2").get_fdata().astype(np.float32)
    bet = load("ch2bet").get_fdata() > 0
    out = [("colin27_sample_geometry_2mm", ch2[:, :, ::2], (1.0, 1.0, 2.0), bet[:, :, ::2])]
    k7 = np.arange(3, ch2.shape[2] - 3, 7)
    thick7 = np.stack([ch2[:, :, k - 3 : k + 4].mean(2) for k in k7], 2)
    out.append(("colin27_thick_7mm", thick7, (1.0, 1.0, 7.0), bet[:, :, k7]))
    t1 = nib.as_closest_canonical(nib.load(ITK.format("KmeansTest_T1UCharRaw")))
    m = nib.as_closest_canonical(nib.load(ITK.format("KmeansTest_T1RawSkullStrip")))
    out.append(("itk_head_2x2x3mm", t1.get_fdata().astype(np.float32), tuple(float(z) for z in t1.header.get_zooms()[:3]),
                m.get_fdata() > 0))
    return out


def evaluate(onnx_path, out_json=None):
    ext = Extent(onnx_path)
    res = {}
    for name, vol, spacing, mask in held_out():
        p = ext.probability(vol, spacing)
        res[name] = metrics(p >= THRESHOLD, mask, float(np.prod(spacing)) / 1000)
        print(name, json.dumps(res[name]), flush=True)
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=40)
    t.add_argument("--steps", type=int, default=0, help="train this many steps (the schedule by steps) instead of --minutes")
    t.add_argument("--out", default="runs/mask1")
    t.add_argument("--seed", type=int, default=3011)
    t.add_argument("--width", type=int, default=8)
    t.add_argument("--batch", type=int, default=2)
    t.add_argument("--crop", type=int, default=48, help="voxels per side at SPACING")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--labels", default=os.path.join(DATA, "ct-head-neck-labels.npz"))
    e = sub.add_parser("export")
    e.add_argument("pt")
    e.add_argument("onnx")
    m = sub.add_parser("ensemble", help="average the p(brain) of several exported extents in one ONNX model")
    m.add_argument("out")
    m.add_argument("members", nargs="+")
    v = sub.add_parser("evaluate")
    v.add_argument("onnx")
    v.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.cmd == "train":
        train(args)
    elif args.cmd == "export":
        export(args.pt, args.onnx)
    elif args.cmd == "ensemble":
        ensemble(args.members, args.out)
    else:
        evaluate(args.onnx, args.json)


if __name__ == "__main__":
    sys.exit(main())
