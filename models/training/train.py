#!/usr/bin/env python3
"""Train Focal's attention segmentation model by domain randomisation (the SynthSeg idea):
every training image is synthesised on the fly from a label map, with random intensities per
label, deformation, bias field, blur, resolution loss and noise, so the model learns shapes,
not one scanner's contrast.

Label maps come from the MNI ICBM152 2009a template's GM/WM probability maps (CSF = the rest
of the brain mask). Non-brain head tissue, which the skull-stripped template lacks, is added as
randomised shells (dura, skull, scalp) and blobs (eyes, muscle, fat) around the brain, labelled
background. Colin27 is never used here: it is the held-out test subject.

usage: train.py --minutes 50 --out runs/v1   (seeded; CPU; torch threads = cores)
"""
import argparse
import json
import math
import os
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from common import MNI, NUM_CLASSES, AttentionUNet

# Generation labels: 0 air, 1 CSF, 2 GM, 3 WM, 4 dura/CSF rim, 5 skull, 6 scalp/fat, 7 blobs.
GEN_LABELS = 8
TARGET = torch.tensor([0, 1, 2, 3, 0, 0, 0, 0])


def load_template():
    t1 = nib.load(MNI.format("t1")).get_fdata().astype(np.float32)
    gm = nib.load(MNI.format("gm")).get_fdata().astype(np.float32) / 255
    wm = nib.load(MNI.format("wm")).get_fdata().astype(np.float32) / 255
    brain = t1 > 0
    csf = np.clip(1 - gm - wm, 0, 1)
    labels = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    labels[~brain] = 0
    # Distance (mm) outside the brain, for the synthetic head shells.
    dist = ndimage.distance_transform_edt(~brain).astype(np.float32)
    return labels, dist


class Generator:
    def __init__(self, labels, dist, size, rng):
        self.labels, self.dist, self.size, self.rng = labels, dist, size, rng
        # Slices that contain brain, per axis.
        self.ranges = []
        for axis in range(3):
            has = np.nonzero(np.moveaxis(labels > 0, axis, 0).reshape(labels.shape[axis], -1).any(1))[0]
            self.ranges.append((has.min() + 3, has.max() - 3))

    def slice2d(self):
        r = self.rng
        axis = r.choice(3, p=[0.2, 0.2, 0.6])  # sagittal, coronal, axial (RAS voxel axes)
        k = r.integers(*self.ranges[axis])
        lab = np.take(self.labels, k, axis=axis)
        dist = np.take(self.dist, k, axis=axis)
        return lab, dist

    def head_labels(self, lab, dist):
        """Adds dura, skull, scalp shells and soft-tissue blobs outside the brain."""
        r = self.rng
        t1, t2, t3 = r.uniform(0.5, 3), r.uniform(3, 9), r.uniform(2, 10)
        out = lab.copy()
        outside = lab == 0
        # Roughen the shells so they are not perfect offsets of the brain surface.
        noise = ndimage.zoom(r.normal(0, 1.5, (8, 8)), (lab.shape[0] / 8, lab.shape[1] / 8), order=1)[: lab.shape[0], : lab.shape[1]]
        d = dist + noise
        out[outside & (d <= t1)] = 4
        out[outside & (d > t1) & (d <= t1 + t2)] = 5
        out[outside & (d > t1 + t2) & (d <= t1 + t2 + t3)] = 6
        if r.random() < 0.8:
            yy, xx = np.mgrid[: lab.shape[0], : lab.shape[1]]
            for _ in range(r.integers(1, 6)):
                cy, cx = r.uniform(0, lab.shape[0]), r.uniform(0, lab.shape[1])
                ay, ax = r.uniform(4, 30), r.uniform(4, 30)
                blob = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 < 1
                out[blob & outside & (d > 2)] = 7 if r.random() < 0.7 else 6
        return out

    def batch(self, n):
        r = self.rng
        s = self.size
        labs = []
        for _ in range(n):
            lab, dist = self.slice2d()
            if r.random() < 0.85:
                lab = self.head_labels(lab, dist)
            pad = max(s, *lab.shape) + 40
            canvas = np.zeros((pad, pad), np.uint8)
            oy, ox = (pad - lab.shape[0]) // 2, (pad - lab.shape[1]) // 2
            canvas[oy : oy + lab.shape[0], ox : ox + lab.shape[1]] = lab
            labs.append(canvas)
        pad = max(l.shape[0] for l in labs)
        labs = np.stack([np.pad(l, ((0, pad - l.shape[0]), (0, pad - l.shape[1]))) for l in labs])
        lab = torch.from_numpy(labs).long()
        # Random affine + elastic warp sampling an s×s window (nearest on labels).
        theta = []
        for _ in range(n):
            a = r.uniform(-0.35, 0.35)
            sc = r.uniform(0.8, 1.25) * s / pad
            asp = r.uniform(0.9, 1.1)
            sh = r.uniform(-0.08, 0.08)
            flip = -1 if r.random() < 0.5 else 1
            m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[sc * asp * flip, sh], [0, sc / asp]])
            t = r.uniform(-0.15, 0.15, 2)
            theta.append(np.concatenate([m, t[:, None]], 1))
        theta = torch.tensor(np.array(theta), dtype=torch.float32)
        grid = F.affine_grid(theta, (n, 1, s, s), align_corners=False)
        elastic = torch.from_numpy(r.normal(0, 1, (n, 2, 6, 6)).astype(np.float32)) * float(r.uniform(0, 0.03))
        grid = grid + F.interpolate(elastic, size=(s, s), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        lab = F.grid_sample(lab[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
        img = self.intensities(lab)
        return img, TARGET[lab]

    def intensities(self, lab):
        r = self.rng
        n, s, _ = lab.shape
        imgs = []
        for i in range(n):
            if r.random() < 0.5:
                # T1-like ordering with random spread: air < CSF < GM < WM, fat and scalp bright.
                mu = np.array([r.uniform(0, 0.05), r.uniform(0.05, 0.35), r.uniform(0.35, 0.6), r.uniform(0.6, 0.9),
                               r.uniform(0, 0.4), r.uniform(0, 0.3), r.uniform(0.3, 1.0), r.uniform(0.1, 0.8)])
                if r.random() < 0.3:  # T2-like: CSF bright, WM dark
                    mu[1:4] = mu[1:4][::-1]
            else:
                mu = r.uniform(0, 1, GEN_LABELS)
                mu[0] = r.uniform(0, 0.1)
            sd = r.uniform(0, 0.06, GEN_LABELS)
            li = lab[i].numpy()
            im = mu[li] + sd[li] * r.standard_normal(li.shape)
            imgs.append(im)
        img = torch.from_numpy(np.stack(imgs).astype(np.float32))[:, None]
        # Partial volume and resolution loss: blur, sometimes anisotropic (thick slices).
        for i in range(n):
            sy, sx = r.uniform(0.2, 1.2), r.uniform(0.2, 1.2)
            if r.random() < 0.3:
                sy = r.uniform(1.5, 3.5)
            img[i, 0] = torch.from_numpy(ndimage.gaussian_filter(img[i, 0].numpy(), (sy, sx)))
        # Bias field: smooth multiplicative field.
        field = torch.from_numpy(r.normal(0, 1, (n, 1, 4, 4)).astype(np.float32)) * float(r.uniform(0, 0.35))
        img = img * torch.exp(F.interpolate(field, size=(s, s), mode="bicubic", align_corners=False))
        img = img.clamp(min=0)
        img = img ** float(np.exp(r.normal(0, 0.25)))
        img = img + torch.randn_like(img) * float(r.uniform(0, 0.04))
        img = img.clamp(min=0)
        # The manifest's normalisation: 99.5th percentile of non-zero pixels, clip to [0, 1].
        out = torch.empty_like(img)
        for i in range(n):
            v = img[i][img[i] > 0]
            q = torch.quantile(v, 0.995) if v.numel() > 10 else torch.tensor(1.0)
            out[i] = (img[i] / q.clamp(min=1e-6)).clamp(0, 1)
        return out


def dice_loss(logits, target):
    p = torch.softmax(logits, 1)
    t = F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).float()
    inter = (p * t).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + t.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=50)
    ap.add_argument("--out", default="runs/v1")
    ap.add_argument("--seed", type=int, default=1502)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    labels, dist = load_template()
    gen = Generator(labels, dist, args.size, rng)
    net = AttentionUNet()
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    budget = args.minutes * 60
    start = time.time()
    step, log = 0, []
    while True:
        elapsed = time.time() - start
        if elapsed > budget:
            break
        lr = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(elapsed / budget, 1.0))) + 2e-5
        for g in opt.param_groups:
            g["lr"] = lr
        img, target = gen.batch(args.batch)
        net.train()
        logits, _ = net(img)
        loss = F.cross_entropy(logits, target) + dice_loss(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            entry = {"step": step, "minutes": round(elapsed / 60, 2), "loss": round(loss.item(), 4), "lr": lr}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if step % 500 == 0:
            torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"steps": step, "minutes": round((time.time() - start) / 60, 1), "parameters": params,
                   "seed": args.seed, "crop": args.size, "batch": args.batch, "log": log}, f, indent=1)
    print(f"done: {step} steps, {params} parameters")


if __name__ == "__main__":
    main()
