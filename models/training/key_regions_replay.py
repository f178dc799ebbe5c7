#!/usr/bin/env python3
"""Replays key-region settings on the score maps a key_regions_check.py run left behind.

The score (key_regions.nii) does not depend on the region settings (seed, grow, surface_mm,
min_ml), so one run of the app with permissive settings lets every combination of them be
scored here, as the app would find regions (6-connected voxels at or above grow, holding a
voxel at or above seed at least surface_mm deep in the labelled brain, at least min_ml; the
in-plane filling of enclosed cores is left out). Used on TUNING heads only, to choose the
settings before any held-out head is run.

With --shares: the chosen settings (--settings GROW,SEED,SURFACE_MM,MIN_ML) replayed with
each region cut down to its voxels at a share of its own peak (`grow_share`, the parts that hold
a seed), per share: detections and Dice of the lesions of 1 mL or more and of smaller ones.

usage: key_regions_replay.py RESULTS_JSON WORK_DIR [--json OUT]
       key_regions_replay.py RESULTS_JSON WORK_DIR --shares 0,0.3,0.5 --settings 1.5,2,4,0.5 [--json OUT]
  (RESULTS_JSON: the run's output, which names each lesion's pattern)
"""
import argparse
import glob
import itertools
import json
import os

import nibabel as nib
import numpy as np
from scipy import ndimage

# Thresholds for one series; over d series the app scales them by sqrt(d) (see key_regions.rs).
GROW = [1.1, 1.2, 1.3, 1.4, 1.5]
SEED = [1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0]
SURFACE_MM = [4.0, 6.0]
MIN_ML = [0.1, 0.3, 0.5]


def load(adir):
    score = np.asarray(nib.load(os.path.join(adir, "key_regions.nii")).dataobj).astype(np.float32)
    img = nib.load(os.path.join(adir, "labels.nii"))
    brain = np.asarray(img.dataobj) > 0
    zooms = img.header.get_zooms()[:3]
    depth = ndimage.distance_transform_edt(brain, sampling=zooms)
    truth_path = os.path.join(adir, "truth_on_grid.npy")
    truth = np.load(truth_path) if os.path.exists(truth_path) else None
    return score, brain, depth, float(np.prod(zooms)) / 1000, truth


def components(case, grow, surfaces):
    """The 6-connected components at or above `grow` in the brain: per component its size
    (mL) and, per surface depth, its highest score that deep; per lesion of the truth, the
    voxels it has in each component."""
    score, brain, depth, voxel_ml, truth = case
    comp, n = ndimage.label((score >= grow) & brain)
    idx = np.arange(1, n + 1)
    size = ndimage.sum(np.ones_like(score), comp, idx) * voxel_ml if n else np.zeros(0)
    deep = {s: (ndimage.maximum(np.where(depth >= s, score, 0), comp, idx) if n else np.zeros(0)) for s in surfaces}
    lesions = []
    if truth is not None:
        for les in np.unique(truth[truth > 0]):
            t = truth == les
            cnt = int(t.sum())
            if cnt * voxel_ml < 0.9:  # lesions >= 1 mL only
                continue
            ids, counts = np.unique(comp[t], return_counts=True)
            overlap = {int(i): int(c) for i, c in zip(ids, counts) if i}
            lesions.append((int(les), cnt, overlap))
    return size, deep, lesions, voxel_ml


def evaluate(cached, seed, surface, min_ml, patterns):
    out = {"healthy_regions": [], "lesions": [], "false": 0}
    for kind, series, (size, deep, lesions, voxel_ml), has_truth in cached:
        kept = set((np.nonzero((deep[surface] >= seed) & (size >= min_ml))[0] + 1).tolist())
        if not has_truth:
            out["healthy_regions"].append(len(kept))
            continue
        hit = set()
        for les, cnt, overlap in lesions:
            touching = [c for c in overlap if c in kept]
            covered = sum(overlap[c] for c in touching)
            region = sum(size[c - 1] for c in touching) / voxel_ml
            dice = 2 * covered / (region + cnt) if touching else 0.0
            hit.update(touching)
            out["lesions"].append((series, patterns.get((kind, les), "?"), covered >= 0.1 * cnt, dice))
        out["false"] += len(kept - hit)  # approximately: a region touching a small lesion counts
    return out


def share_rows(cases, patterns, settings, shares):
    """Per share of the peak: as the app finds regions with `grow_share` (6-connected voxels at or
    above grow holding a seed deep enough; each cut to its voxels at or above max(grow, share x
    its peak) and the parts holding a seed; at least min_ml), the lesions found and their Dice."""
    grow1, seed1, surface, min_ml = settings
    rows = []
    for share in shares:
        found = {"t1": ([], []), "t1+t2": ([], [])}  # (>= 1 mL, smaller): (detected, dice)
        healthy = []
        for kind, series, (score, brain, depth, voxel_ml, truth) in cases:
            d = 2 if series == "t1+t2" else 1
            grow, seed = grow1 * np.sqrt(d), seed1 * np.sqrt(d)
            comp, n = ndimage.label((score >= grow) & brain)
            regions, k = np.zeros(score.shape, np.int32), 0
            for i in range(1, n + 1):
                parts = [comp == i]
                if share > 0:
                    peak = score[parts[0]].max()
                    sub, m = ndimage.label(parts[0] & (score >= max(grow, share * peak)))
                    parts = [sub == j for j in range(1, m + 1)]
                for c in parts:
                    if (score[c & (depth >= surface)] >= seed).any() and c.sum() * voxel_ml >= min_ml:
                        k += 1
                        regions[c] = k
            if truth is None:
                healthy.append(k)
                continue
            for les in np.unique(truth[truth > 0]):
                if patterns.get((kind, int(les))) == "t2":  # not required (see above)
                    continue
                t = truth == les
                cnt = int(t.sum())
                ids = [r for r in np.unique(regions[t]) if r]
                reg = np.isin(regions, ids)
                covered = int((t & reg).sum())
                dice = 2 * covered / (int(reg.sum()) + cnt) if ids else 0.0
                found[series][0 if cnt * voxel_ml >= 0.9 else 1].append((covered >= 0.1 * cnt, dice))
        row = {"share": share, "max_healthy_regions": max(healthy or [0])}
        for series, (big, small) in found.items():
            for name, xs in (("", big), ("_under_1ml", small)):
                row[f"{series}{name}_found"] = f"{sum(f for f, _ in xs)}/{len(xs)}"
                row[f"{series}{name}_dice"] = round(float(np.mean([x for f, x in xs if f])), 3) if any(f for f, _ in xs) else 0.0
        print(row, flush=True)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("work", nargs="+")
    ap.add_argument("--json")
    ap.add_argument("--shares", help="comma-separated shares of each region's peak to replay")
    ap.add_argument("--settings", default="1.5,2,4,0.5", help="grow,seed,surface_mm,min_ml for --shares")
    args = ap.parse_args()
    results = json.load(open(args.results))
    patterns = {}
    for head, h in results["heads"].items():
        for sets in h["lesions"].values():
            for s in sets:
                for les in s["lesions"]:
                    patterns[(f"{head}/lesions-{s['set']}", les["id"])] = les["pattern"]
    cases = []
    for work in args.work:
        for adir in sorted(glob.glob(os.path.join(work, "*", "*", "analysis-t1*"))):
            series = os.path.basename(adir).split("-", 1)[1]
            kind = os.path.basename(os.path.dirname(adir))
            cases.append((f"{os.path.basename(os.path.dirname(os.path.dirname(adir)))}/{kind}", series, load(adir)))
    if args.shares:
        settings = [float(x) for x in args.settings.split(",")]
        rows = share_rows(cases, patterns, settings, [float(x) for x in args.shares.split(",")])
        if args.json:
            json.dump({"settings": dict(zip(["grow", "seed", "surface_mm", "min_ml"], settings)), "rows": rows},
                      open(args.json, "w"), indent=1)
        return
    rows = []
    for grow in GROW:
        cached = []
        for kind, series, case in cases:
            d = 2 if series == "t1+t2" else 1
            cached.append((kind, series, components(case, grow * np.sqrt(d), SURFACE_MM), case[4] is not None))
        for seed, surface, min_ml in itertools.product(SEED, SURFACE_MM, MIN_ML):
            if seed < grow:
                continue
            # The seed over d series is seed * sqrt(d): compare each case's components with its own.
            r = {"healthy_regions": [], "lesions": [], "false": 0}
            for d in (1, 2):
                sub = [c for c in cached if (c[1] == "t1+t2") == (d == 2)]
                e = evaluate(sub, seed * np.sqrt(d), surface, min_ml, patterns)
                r["healthy_regions"] += e["healthy_regions"]
                r["lesions"] += e["lesions"]
                r["false"] += e["false"]
            row = {"grow": grow, "seed": seed, "surface_mm": surface, "min_ml": min_ml,
                   "healthy_regions": r["healthy_regions"], "max_healthy_regions": max(r["healthy_regions"] or [0]),
                   "false_regions": r["false"]}
            for series in ("t1", "t1+t2"):
                # The t2 pattern is not required (invisible on T1 by design; too faint on T1 + T2).
                les = [x for x in r["lesions"] if x[0] == series and x[1] != "t2"]
                row[f"{series}_sens"] = round(sum(x[2] for x in les) / max(len(les), 1), 3)
                row[f"{series}_dice"] = round(float(np.mean([x[3] for x in les if x[2]])), 3) if any(x[2] for x in les) else 0.0
                row[f"{series}_n"] = len(les)
                t2 = [x for x in r["lesions"] if x[0] == series and x[1] == "t2"]
                row[f"{series}_t2_sens"] = round(sum(x[2] for x in t2) / max(len(t2), 1), 3)
            rows.append(row)
    rows.sort(key=lambda r: (r["max_healthy_regions"] > 1, -(r["t1_sens"] + r["t1+t2_sens"]), r["false_regions"]))
    for r in rows[:25]:
        print(r)
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
