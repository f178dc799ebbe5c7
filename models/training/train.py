#!/usr/bin/env python3
"""Train Focal's multi-modal 2.5D attention segmentation model by domain randomisation (the
SynthSeg idea): every training example is synthesised on the fly from a 3D label map, so the
model learns anatomy, not one scanner's contrast.

Label maps (3D, 1 mm):
- a real whole head: the invesalius head CT's scalp, fat, muscle, fluid, skull, marrow and
  air, with the MNI ICBM152 brain labels placed in its intracranial cavity (head_labels.py);
- the MNI ICBM152 brain with randomised synthetic dura/skull/scalp shells and blobs.
Colin27 is never used here: it is the held-out test subject.

Each example: a plane (axial 60 %, coronal/sagittal 20 % each), a slice and its two neighbours
at a random spacing (1-7 mm, thick slices averaged over their thickness), warped (any quarter turn
plus rotation, scale, shear, flip, elastic), and two modality slots synthesised from the same labels with
independent random contrasts, resolution, bias field, ringing/ghosting and noise. Slot 1 is
absent (zeros) in 40 % of examples and covers only part of the plane in 15 %.

usage: train.py --minutes 55 --out runs/v2   (seeded; CPU; torch threads = cores)
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from scipy import ndimage

from common import CONTEXT, DATA, GEN, NUM_CLASSES, SLOTS, TARGET, FocalNet, load_mni_labels, random_contrast

CANVAS = 256
TARGET_T = torch.from_numpy(TARGET)


def shelled_mni(rng, deep_gm=False):
    """The MNI brain with randomised synthetic dura, skull, scalp and blob labels (3D)."""
    labels = load_mni_labels(deep_gm)
    brain = labels > 0
    dist = ndimage.distance_transform_edt(~brain).astype(np.float32)
    noise = ndimage.zoom(rng.normal(0, 1.5, (8, 8, 8)), np.array(labels.shape) / 8, order=1)
    noise = noise[: labels.shape[0], : labels.shape[1], : labels.shape[2]]
    d = dist + noise
    t1, t2, t3 = rng.uniform(1, 3), rng.uniform(4, 8), rng.uniform(3, 9)
    out = labels.copy()
    outside = ~brain
    out[outside & (d <= t1)] = GEN["dura"]
    out[outside & (d > t1) & (d <= t1 + t2)] = GEN["bone"]
    out[outside & (d > t1 + 0.3 * t2) & (d <= t1 + 0.7 * t2)] = GEN["marrow"]
    out[outside & (d > t1 + t2) & (d <= t1 + t2 + t3)] = GEN["fat"]
    grid = np.indices(labels.shape, dtype=np.float32)
    for _ in range(12):
        c = rng.uniform(0, 1, 3) * np.array(labels.shape)
        r = rng.uniform(5, 20, 3)
        blob = sum(((grid[i] - c[i]) / r[i]) ** 2 for i in range(3)) < 1
        out[blob & outside & (d > 2)] = GEN["blob"] if rng.random() < 0.5 else GEN["fluid"]
    return out


def pad_to(vol, size):
    out = np.zeros((size, size, vol.shape[2]), vol.dtype)
    ox, oy = (size - vol.shape[0]) // 2, (size - vol.shape[1]) // 2
    out[ox : ox + vol.shape[0], oy : oy + vol.shape[1]] = vol[:size, :size]
    return out


class Generator:
    def __init__(self, volumes, weights, size, rng, no_brain=0.1, zero_air=0.0, coarse=0.0):
        self.size, self.rng, self.no_brain, self.zero_air = size, rng, no_brain, zero_air
        self.coarse = coarse
        self.views = []  # (volume with the slicing axis last, canvas-padded), per axis
        for vol in volumes:
            per_axis = []
            for axis in range(3):
                v = np.moveaxis(vol, axis, 2)
                brain = np.nonzero(TARGET[v] > 0)
                per_axis.append((pad_to(v, CANVAS), (brain[2].min(), brain[2].max()), np.nonzero(v.any((0, 1)))[0]))
            self.views.append(per_axis)
        self.weights = np.array(weights, float) / sum(weights)

    def example(self):
        """Labels of the centre slice and, per slot, three context images (pre-warp)."""
        r = self.rng
        per_axis = self.views[r.choice(len(self.views), p=self.weights)]
        vol, (b0, b1), extent = per_axis[r.choice(3, p=[0.2, 0.2, 0.6])]
        if r.random() < self.no_brain:  # planes with little or no brain: neck, jaw, vertex, face
            k = int(r.choice(extent))
        else:
            k = int(r.integers(b0, b1 + 1))
        d = int(r.integers(1, 3)) if r.random() < 0.5 else int(r.integers(3, 8))
        nz = vol.shape[2]
        images = []
        for _ in range(SLOTS):
            mu, sd = random_contrast(r)
            thick = int(r.integers(1, d + 1))
            for c in (-1, 0, 1):
                kc = k + c * d
                js = np.clip(np.arange(kc - (thick - 1) // 2, kc + thick // 2 + 1), 0, nz - 1)
                acc = np.zeros((CANVAS, CANVAS), np.float32)
                for j in js:
                    lab = vol[:, :, j]
                    acc += mu[lab] + sd[lab] * r.standard_normal(lab.shape).astype(np.float32)
                images.append(acc / len(js))
        return vol[:, :, k], np.stack(images)

    def batch(self, n):
        r, s = self.rng, self.size
        labs, imgs = zip(*(self.example() for _ in range(n)))
        lab = torch.from_numpy(np.stack(labs).astype(np.int64))[:, None].float()
        img = torch.from_numpy(np.stack(imgs))
        theta = []
        for _ in range(n):
            # Any in-plane orientation: a quarter turn (images are stored in many conventions)
            # plus up to 20 degrees, and a flip.
            a = r.uniform(-0.35, 0.35) + math.pi / 2 * int(r.integers(0, 4))
            sc = r.uniform(0.75, 1.3) * s / CANVAS
            asp = r.uniform(0.9, 1.1)
            sh = r.uniform(-0.08, 0.08)
            flip = -1 if r.random() < 0.5 else 1
            m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[sc * asp * flip, sh], [0, sc / asp]])
            t = r.uniform(-0.25, 0.25, 2)
            theta.append(np.concatenate([m, t[:, None]], 1))
        theta = torch.tensor(np.array(theta), dtype=torch.float32)
        grid = F.affine_grid(theta, (n, 1, s, s), align_corners=False)
        elastic = torch.from_numpy(r.normal(0, 1, (n, 2, 6, 6)).astype(np.float32)) * float(r.uniform(0, 0.03))
        grid = grid + F.interpolate(elastic, size=(s, s), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
        img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        img = torch.cat([self.acquire(img[:, m * CONTEXT : (m + 1) * CONTEXT]) for m in range(SLOTS)], 1)
        for i in range(n):
            if r.random() < 0.4:
                img[i, CONTEXT:] = 0  # no second series
            elif r.random() < 0.15:  # the second series covers part of the plane only
                cut = int(r.integers(s // 5, 4 * s // 5))
                if r.random() < 0.5:
                    img[i, CONTEXT:, :cut] = 0
                else:
                    img[i, CONTEXT:, :, cut:] = 0
            if r.random() < 0.08:  # field of view cuts through the head
                cut = int(r.integers(s // 8, s // 3))
                img[i, :, -cut:] = 0
                lab[i, -cut:] = 0
            if r.random() < self.zero_air:  # exact zeros around the head (masked or averaged scans)
                img[i, :, lab[i] == 0] = 0
        return img, TARGET_T[lab]

    def acquire(self, img):
        """Scanner effects on one slot's three context images, then the manifest's
        normalisation (the slot's 99.5th percentile of values > 0, clip to [0, 1])."""
        r = self.rng
        n, _, s, _ = img.shape
        out = img.numpy().copy()
        for i in range(n):
            sy, sx = r.uniform(0.2, 1.0), r.uniform(0.2, 1.0)
            if r.random() < 0.3:  # low in-plane resolution along one axis
                if r.random() < 0.5:
                    sy = r.uniform(1.5, 3.0)
                else:
                    sx = r.uniform(1.5, 3.0)
            out[i] = ndimage.gaussian_filter(out[i], (0, sy, sx))
            if r.random() < self.coarse:  # 2 x 2 mm pixels, resampled to 1 mm as Focal does
                x = F.avg_pool2d(torch.from_numpy(out[i])[None], 2)
                out[i] = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)[0].numpy()
            if r.random() < 0.15:  # ghosting / ringing along the phase-encoding direction
                shift = int(r.integers(s // 8, s // 2))
                ax = 1 + int(r.integers(0, 2))
                out[i] += r.uniform(0.05, 0.2) * np.roll(out[i], shift, axis=ax)
        t = torch.from_numpy(out)
        field = torch.from_numpy(r.normal(0, 1, (n, 1, 4, 4)).astype(np.float32)) * float(r.uniform(0, 0.4))
        t = t * torch.exp(F.interpolate(field, size=(s, s), mode="bicubic", align_corners=False))
        t = t.clamp(min=0) ** float(np.exp(r.normal(0, 0.25)))
        t = (t + torch.randn_like(t) * float(r.uniform(0, 0.06) if r.random() < 0.8 else r.uniform(0.06, 0.12))).clamp(min=0)
        res = torch.empty_like(t)
        for i in range(n):
            v = t[i][t[i] > 0]
            q = torch.quantile(v, 0.995) if v.numel() > 10 else torch.tensor(1.0)
            res[i] = (t[i] / q.clamp(min=1e-6)).clamp(0, 1)
            if r.random() < self.coarse:  # 8-bit values
                res[i] = torch.round(res[i] * 255.0) / 255.0
        return res


def dice_loss(logits, target):
    p = torch.softmax(logits, 1)
    t = F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).float()
    inter = (p * t).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=55)
    ap.add_argument("--out", default="runs/v2")
    ap.add_argument("--seed", type=int, default=2611)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-filler", action="store_true", help="plain multiplicative gate (stage 1: learn the segmentation first)")
    ap.add_argument("--no-brain-planes", type=float, default=0.1, help="share of planes drawn from anywhere in the head (2.1 attempt: 0.2)")
    ap.add_argument("--labels", default=os.path.join(DATA, "ct-head-labels.npz"), help="the whole-head label map (head_labels.py)")
    ap.add_argument("--width", type=int, default=16, help="channels of the first level (doubling per level)")
    ap.add_argument("--sparsity", type=float, default=0.1, help="weight of the spatial gate's mean")
    ap.add_argument("--sparsity-on", choices=["head", "non-brain", "outside-brain"], default="head",
                    help="where the gate's mean is taken: the whole head (2.0), only head pixels whose label is not brain, so the cost cannot close the gate over labelled brain, or every pixel that is not brain (background too)")
    ap.add_argument("--outside-share", type=float, default=0.0,
                    help="weight of the share of the gate's mass outside the labelled brain (Model 3: attention a reader can use)")
    ap.add_argument("--deep-gm", action="store_true",
                    help="deep grey matter as its own generative label, with intensities between grey and white matter (common.load_mni_labels); use with a --labels map made by head_labels.py --deep-gm")
    ap.add_argument("--fine-gate", action="store_true",
                    help="the spatial gate at full resolution (Model 3.2); with --init from a model with the coarse gate, the gate starts afresh")
    ap.add_argument("--fixed-filler", action="store_true",
                    help="the input gate's filler with fixed statistics (running averages of the training images'), not the image's own (Model 3.3)")
    ap.add_argument("--zero-air", type=float, default=0.0,
                    help="share of examples whose air (outside the head) is exactly zero, as in masked or averaged scans (Model 3.2)")
    ap.add_argument("--input-gate", action="store_true",
                    help="the spatial gate acts on the input pixels, with noise of the image's own statistics in place of what it holds back (Model 3.2)")
    ap.add_argument("--init", default=None, help="start from these weights (fine-tuning)")
    ap.add_argument("--coarse", type=float, default=0.0,
                    help="share of slot images acquired coarse: 2 x 2 mm pixels resampled to 1 mm, 8-bit values")
    ap.add_argument("--freeze-bn", action="store_true",
                    help="keep every batch normalisation on its running statistics (needed after recover_checkpoint.py, whose weights have the normalisations folded in)")
    ap.add_argument("--max-steps", type=int, default=0, help="also stop after this many steps (0: no limit)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    ap.add_argument("--ramp", type=float, default=0.25, help="share of the budget over which the sparsity cost ramps up")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    ct_head = np.load(args.labels)["labels"]
    volumes = [ct_head, shelled_mni(rng, args.deep_gm), shelled_mni(rng, args.deep_gm)]
    gen = Generator(volumes, [0.6, 0.2, 0.2], args.size, rng, args.no_brain_planes, args.zero_air, args.coarse)
    net = FocalNet(width=args.width, noise_filler=not args.no_filler, fine_gate=args.fine_gate, input_gate=args.input_gate,
                   fixed_filler=args.fixed_filler)
    if args.init:
        state = torch.load(args.init, map_location="cpu")
        own = net.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing, unexpected = net.load_state_dict(state, strict=False)
        print(f"initialised from {args.init}; new: {missing}; dropped: {unexpected}", flush=True)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    start = time.time()
    step, log = 0, []
    while True:
        elapsed = time.time() - start
        if elapsed > budget or (args.max_steps and step >= args.max_steps):
            break
        # The schedule runs to whichever limit comes first, so that on a busy machine a run
        # capped by steps still ends its cosine decay and sparsity ramp.
        frac = min(max(elapsed / budget, step / args.max_steps if args.max_steps else 0.0), 1.0)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * frac)) + 2e-5
        for g in opt.param_groups:
            g["lr"] = lr
        img, target = gen.batch(args.batch)
        net.train()
        if args.freeze_bn:
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        logits, attention, _ = net(img)
        seg = F.cross_entropy(logits, target) + dice_loss(logits, target)
        in_head = (img[:, 1:2] > 0.02).float()  # the exported attention is zero elsewhere
        outside = (target == 0).unsqueeze(1).float()
        head = in_head
        if args.sparsity_on == "non-brain":
            head = in_head * outside
        elif args.sparsity_on == "outside-brain":
            head = outside
        sparsity = (attention * head).sum() / head.sum().clamp(min=1)
        share = (attention * in_head * outside).sum() / (attention * in_head).sum().clamp(min=1e-6)
        ramp = min(frac / max(args.ramp, 1e-6), 1.0)
        loss = seg + ramp * (args.sparsity * sparsity + args.outside_share * share)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            entry = {"step": step, "minutes": round(elapsed / 60, 2), "seg": round(seg.item(), 4),
                     "gate_mean": round(sparsity.item(), 3), "outside_share": round(share.item(), 3), "lr": round(lr, 6)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if step % 250 == 0:
            torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
            torch.save(net.state_dict(), os.path.join(args.out, f"model_{step}.pt"))
    torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"steps": step, "minutes": round((time.time() - start) / 60, 1), "parameters": params,
                   "seed": args.seed, "crop": args.size, "batch": args.batch, "width": args.width, "no_brain_planes": args.no_brain_planes, "labels": os.path.basename(args.labels), "noise_filler": not args.no_filler, "sparsity": args.sparsity, "sparsity_on": args.sparsity_on, "outside_share": args.outside_share, "deep_gm": args.deep_gm, "fine_gate": args.fine_gate, "input_gate": args.input_gate, "fixed_filler": args.fixed_filler, "zero_air": args.zero_air,
                   "init": args.init, "lr": args.lr, "freeze_bn": args.freeze_bn, "coarse": args.coarse, "log": log}, f, indent=1)
    print(f"done: {step} steps, {params} parameters")


if __name__ == "__main__":
    main()
