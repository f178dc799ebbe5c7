#!/usr/bin/env python3
"""Held-out evaluation (subjects never used to make training images), the k-means baseline,
latency, the deletion test of the attention output, golden outputs and the card's figure.

Held out: Colin27 (whole head `ch2`, brain mask `ch2bet`, AAL atlas; Debian's mricron-data)
and the ITK examples' real low-resolution T1 head with its brain mask (Debian's
insighttoolkit5-examples). Slices are taken as Focal reads the bundled sample study (DICOM
axial: rows posterior-ward, columns patient-left-ward) and preprocessed exactly as the app
does (models/brain-tissue.json): each slot's slice and its neighbours, normalised together.

With the brain-extent model (model 2.1, mask3d.py) as a fourth argument, labels go through
the manifest's "brain_extent" step (p(brain) >= 0.5 from the 3D model) and "fluid_rim" step
(model 2.2: fluid-class voxels at the brain's surface) before the largest component, as the
app does; each result then also has a "*_tissue_model_only" twin without either and a
"*_without_fluid_rim" twin with the extent alone.

usage: evaluate.py ../brain-tissue.onnx ../../assets/sample-study OUT_JSON [../brain-extent.onnx]
"""
import glob
import json
import os
import struct
import sys
import time
import zlib

import nibabel as nib
import numpy as np
import onnxruntime as ort
import pydicom
from scipy import ndimage

from anatomy import CONTEXT, ITK, LABELS, MRICRON, SLOTS

HERE = os.path.dirname(os.path.abspath(__file__))
HALF = CONTEXT // 2
FLUID_RIM_MM = 5.0  # the manifest's fluid_rim depth_mm


def percentile_scale(values, q=99.5):
    v = values[values > 0]
    return float(np.percentile(v, q)) if v.size else None


def slab_input(slot_volumes, k):
    """Model input [SLOTS*CONTEXT, H, W] for slice k of volumes [Z, H, W] (None = empty slot):
    neighbours clamped at the ends, each slot's three slices scaled by their joint 99.5th
    percentile of values > 0 and clipped to [0, 1] (the manifest's "each slot's slab")."""
    planes = []
    shape = next(v for v in slot_volumes if v is not None).shape[1:]
    for vol in slot_volumes + [None] * (SLOTS - len(slot_volumes)):
        if vol is None:
            planes.extend([np.zeros(shape, np.float32)] * CONTEXT)
            continue
        idx = [min(max(k + d, 0), len(vol) - 1) for d in range(-HALF, HALF + 1)]
        slab = np.clip(vol[idx].astype(np.float32), 0, None)
        scale = percentile_scale(slab)
        planes.extend(list(np.clip(slab / max(scale, 1e-6), 0, 1) if scale else slab * 0))
    return np.stack(planes)


def pad8(x):
    h, w = x.shape[-2:]
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, (-h) % 8), (0, (-w) % 8)]), (h, w)


def ras(vol):
    """[z, rows, cols] as the sample study stores it (rows posterior-ward, columns patient-left-ward) → RAS (x, y, z)."""
    return np.ascontiguousarray(vol.transpose(2, 1, 0)[::-1, ::-1, :])


def trim_fluid_rim(img, lab, spacing, depth_mm=FLUID_RIM_MM):
    """The manifest's "fluid_rim" (app/inference/src/postprocess.rs): the labelled voxels'
    values in three k-means classes; the class whose centre is farthest from their median is
    fluid (dark CSF on T1, bright on T2); fluid-class voxels within depth_mm of the labelled
    region's edge that connect through such voxels to an unlabelled voxel become background.
    spacing: (slice, row, column) mm of [z, rows, cols] arrays."""
    pred = lab > 0
    values = img[pred].astype(np.float64)
    if values.size < 64:
        return lab
    _, c = kmeans3(values)
    fluid = int(np.argmax(np.abs(c - np.median(values))))
    is_fluid = np.argmin(np.abs(img[..., None].astype(np.float64) - c), -1) == fluid
    depth = ndimage.distance_transform_edt(pred, sampling=spacing)
    cand = pred & is_fluid & (depth <= depth_mm)
    comp, _ = ndimage.label(cand)
    ids = np.unique(comp[ndimage.binary_dilation(~pred) & cand])
    return np.where(np.isin(comp, ids[ids > 0]), 0, lab)


class Model:
    def __init__(self, path, threads=2, extent=None, fluid_rim=True):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.extent = extent  # mask3d.Extent or None
        self.fluid_rim = fluid_rim  # the "fluid_rim" step after the extent (model 2.2)

    def run(self, x):
        """x: [N, C, H, W]; returns probs [N,4,H,W], attention [N,H,W], modality [N,S,H,W]."""
        x, (h, w) = pad8(x.astype(np.float32))
        outs = [[], [], []]
        for i in range(0, len(x), 8):
            p, a, m = self.sess.run(["probs", "attention", "modality_attention"], {"image": x[i : i + 8]})
            outs[0].append(p[..., :h, :w])
            outs[1].append(a[:, 0, :h, :w])
            outs[2].append(m[..., :h, :w])
        return tuple(np.concatenate(o) for o in outs)

    def volume(self, slot_volumes, ks=None, clean=True, dz=1.0, extent=True, fluid_rim=None):
        """Labels (after the manifest's post-processing unless clean=False; the brain extent
        only if this model has one and extent=True; the fluid rim after it unless fluid_rim, or
        the model's own setting, says not), attention, modality weights and probabilities of
        every slice. dz: the slice spacing (mm); pixels are 1 x 1 mm."""
        ks = list(range(len(slot_volumes[0])) if ks is None else ks)
        x = np.stack([slab_input(slot_volumes, k) for k in ks])
        p, a, m = self.run(x)
        lab = p.argmax(1)
        if clean and extent and self.extent is not None:
            brain = self.extent.probability(ras(slot_volumes[0]), (1.0, 1.0, dz))
            lab = np.where(dicom_axial(brain)[ks] >= 0.5, lab, 0)
            if self.fluid_rim if fluid_rim is None else fluid_rim:
                lab = trim_fluid_rim(slot_volumes[0][ks], lab, (dz, 1.0, 1.0))
        return (largest_component(lab) if clean else lab), a, m, p


def largest_component(lab):
    """The manifest's "largest_component": only the largest 6-connected labelled object stays."""
    comp, n = ndimage.label(lab > 0)
    if n <= 1:
        return lab
    sizes = ndimage.sum(lab > 0, comp, range(1, n + 1))
    return np.where(comp == 1 + int(np.argmax(sizes)), lab, 0)


def dicom_axial(vol):
    """RAS (x, y, z) array → [z, rows, columns] as the sample study's DICOM stores it."""
    return np.ascontiguousarray(vol[::-1, ::-1, :].transpose(2, 1, 0))


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def kmeans3(values, iters=50):
    c = np.percentile(values, [15, 50, 85]).astype(np.float64)
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - c[None]), 1)
        c = np.array([values[lab == k].mean() if (lab == k).any() else c[k] for k in range(3)])
    return np.argmin(np.abs(values[:, None] - c[None]), 1), c


def thick(vol, step, thickness):
    """A clinical-style acquisition of a [z, h, w] volume: slices every `step` mm, each the
    mean over `thickness` mm. Returns the thick slices and their z indices."""
    ks = list(range(thickness // 2, len(vol) - thickness // 2, step))
    out = np.stack([vol[max(k - thickness // 2, 0) : k + thickness - thickness // 2].mean(0) for k in ks])
    return out, ks


def brain_metrics(lab, mask, voxel_ml):
    pred = lab > 0
    near = ndimage.binary_dilation(mask, iterations=3) & ~mask  # within about 3 voxels of the mask
    return {
        "labelled_outside_mask_within_3_voxels_ml": float((pred & near).sum() * voxel_ml),
        "dice_brain_vs_mask": dice(pred, mask),
        "labelled_ml": float(pred.sum() * voxel_ml),
        "mask_ml": float(mask.sum() * voxel_ml),
        "labelled_over_mask_volume": float(pred.sum() / max(mask.sum(), 1)),
        "labelled_outside_mask_ml": float((pred & ~mask).sum() * voxel_ml),
        "mask_missed_ml": float((mask & ~pred).sum() * voxel_ml),
    }


def deletion_test(model, slot_volumes, ks, rng, draws=3, share=0.2, block=8):
    """As Focal computes it: delete (set to 0 in every channel) 20% of the labelled pixels,
    the top or bottom by attention or random 8x8 blocks; share of the other labelled pixels
    whose label changes."""
    kinds = ("top20_attention", "bottom20_attention", "random20_blocks")
    changes = {k: [] for k in kinds}
    for k in ks:
        x = slab_input(slot_volumes, k)
        p, a, _ = model.run(x[None])
        base = p[0].argmax(0)
        fg = np.flatnonzero(base.ravel() > 0)
        if fg.size < 200:
            continue
        n = int(round(share * fg.size))
        order = fg[np.argsort(-a[0].ravel()[fg], kind="stable")]
        h, w = base.shape
        blocks = {}
        for i in fg:
            blocks.setdefault(((i // w) // block, (i % w) // block), []).append(i)
        variants = [("top20_attention", order[:n]), ("bottom20_attention", order[-n:])]
        for _ in range(draws):
            keys = list(blocks)
            rng.shuffle(keys)
            chosen = []
            for key in keys:
                chosen.extend(blocks[key][: n - len(chosen)])
                if len(chosen) >= n:
                    break
            variants.append(("random20_blocks", np.array(chosen)))
        batch = []
        for _, deleted in variants:
            xd = x.reshape(x.shape[0], -1).copy()
            xd[:, deleted] = 0
            batch.append(xd.reshape(x.shape))
        pd, _, _ = model.run(np.stack(batch))
        per_kind = {kk: [] for kk in kinds}
        for (kind, deleted), probs in zip(variants, pd):
            keep = np.setdiff1d(fg, deleted)
            per_kind[kind].append(float((probs.argmax(0).ravel()[keep] != base.ravel()[keep]).mean()))
        for kind in kinds:
            changes[kind].append(float(np.mean(per_kind[kind])))
    out = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v))} for k, v in changes.items()}
    out["slices"] = len(changes["top20_attention"])
    out["score_top_over_random"] = out["top20_attention"]["mean"] / max(out["random20_blocks"]["mean"], 1e-9)
    out["passed"] = bool(out["top20_attention"]["mean"] > out["random20_blocks"]["mean"]
                         and out["top20_attention"]["mean"] > out["bottom20_attention"]["mean"])
    return out


def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def inferno(t):
    stops = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
    t = np.clip(t, 0, 1) * (len(stops) - 1)
    i = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def load_itk_head():
    """The ITK examples' T1 head (2 x 2 x 3 mm) and brain mask, as axial [z, rows, cols] at
    1 x 1 mm in-plane (what Focal's preprocessing does with its pixel spacing)."""
    t1 = nib.as_closest_canonical(nib.load(ITK.format("KmeansTest_T1UCharRaw")))
    mask = nib.as_closest_canonical(nib.load(ITK.format("KmeansTest_T1RawSkullStrip")))
    zooms = t1.header.get_zooms()[:3]
    t = dicom_axial(t1.get_fdata().astype(np.float32))
    m = dicom_axial(mask.get_fdata()) > 0
    f = (1, zooms[1], zooms[0])
    return ndimage.zoom(t, f, order=1), ndimage.zoom(m.astype(np.float32), f, order=1) > 0.5, float(zooms[2])


def main():
    onnx_path, sample_dir, out_json = sys.argv[1], sys.argv[2], sys.argv[3]
    extent_path = sys.argv[4] if len(sys.argv) > 4 else None
    if extent_path:
        from mask3d import Extent

        model = Model(onnx_path, extent=Extent(extent_path))
    else:
        model = Model(onnx_path)
    load = lambda n, t=np.float32: dicom_axial(nib.as_closest_canonical(nib.load(MRICRON.format(n))).get_fdata().astype(t))
    ch2, bet, aal = load("ch2"), load("ch2bet"), load("aal", np.int32)
    brain = bet > 0
    gm_ref = brain & (aal > 0)
    _, centres = kmeans3(bet[brain].astype(np.float64))
    wm_ref = brain & (aal == 0) & (bet > (centres[0] + centres[1]) / 2)
    results = {"held_out": "Colin27 (mricron-data) and the ITK examples' T1 head (insighttoolkit5-examples)"}

    def tissue_only(name, vols, mask, voxel_ml, dz):
        """The same without the brain extent (the tissue model and the largest component), and
        with the extent but without the fluid rim (model 2.1's pipeline)."""
        if model.extent is not None:
            lab0 = model.volume(vols, dz=dz, extent=False)[0]
            results[name + "_tissue_model_only"] = brain_metrics(lab0, mask, voxel_ml)
            if model.fluid_rim:
                lab1 = model.volume(vols, dz=dz, fluid_rim=False)[0]
                results[name + "_without_fluid_rim"] = brain_metrics(lab1, mask, voxel_ml)

    # 1. The bundled sample study's geometry: every other axial slice (2 mm), whole head.
    ks = list(range(0, len(ch2), 2))
    t = time.time()
    lab, att, mod, _ = model.volume([ch2[ks]], dz=2.0)
    seconds = time.time() - t
    res = brain_metrics(lab, brain[ks], 2e-3)
    res.update({
        "dice_grey_matter_vs_AAL": dice(lab == 2, gm_ref[ks]),
        "grey_matter_inside_AAL_fraction": float(((lab == 2) & gm_ref[ks]).sum() / max((lab == 2).sum(), 1)),
        "dice_white_matter_vs_brain_minus_AAL": dice(lab == 3, wm_ref[ks]),
        "volumes_ml": {LABELS[c]["name"]: float((lab == c).sum() * 2e-3) for c in (1, 2, 3)},
        "seconds_per_slice_2_threads": seconds / len(ks),
    })
    results["sample_study_whole_head_2mm"] = res
    if model.extent is not None:
        t = time.time()
        model.extent.probability(ras(ch2[ks]), (1.0, 1.0, 2.0))
        results["extent_seconds_sample_2_threads"] = time.time() - t
    tissue_only("sample_study_whole_head_2mm", [ch2[ks]], brain[ks], 2e-3, 2.0)
    sample_lab, sample_att = lab, att
    raw, _, _, _ = model.volume([ch2[ks]], clean=False)
    results["sample_study_whole_head_2mm_without_postprocessing"] = brain_metrics(raw, brain[ks], 2e-3)

    # 2. Every 1 mm slice, whole head and skull-stripped.
    for name, vol in (("whole_head_1mm", ch2), ("skull_stripped_1mm", bet)):
        lab, _, _, _ = model.volume([vol])
        tissue_only(name, [vol], brain, 1e-3, 1.0)
        r = brain_metrics(lab, brain, 1e-3)
        r["dice_grey_matter_vs_AAL"] = dice(lab == 2, gm_ref)
        r["grey_matter_inside_AAL_fraction"] = float(((lab == 2) & gm_ref).sum() / max((lab == 2).sum(), 1))
        r["dice_white_matter_vs_brain_minus_AAL"] = dice(lab == 3, wm_ref)
        results[name] = r
        if name == "skull_stripped_1mm":
            stripped_lab = lab

    # 3. Clinical-style thick slices (5 mm every 5 mm, and 7 mm every 7 mm), whole head.
    for step in (5, 7):
        vol, kz = thick(ch2, step, step)
        lab, _, _, _ = model.volume([vol], dz=float(step))
        results[f"whole_head_thick_{step}mm"] = brain_metrics(lab, brain[kz], step * 1e-3)
        tissue_only(f"whole_head_thick_{step}mm", [vol], brain[kz], step * 1e-3, float(step))

    # 4. Two series: the 1 mm head with a 5 mm thick-slice copy resampled onto it in slot 1.
    vol5, kz = thick(ch2, 5, 5)
    second = ndimage.zoom(vol5, (len(ch2) / len(vol5), 1, 1), order=1)[: len(ch2)]
    second = np.pad(second, ((0, len(ch2) - len(second)), (0, 0), (0, 0)))
    lab, _, mod, _ = model.volume([ch2, second])
    r = brain_metrics(lab, brain, 1e-3)
    r["mean_weight_of_slot1_by_label"] = {LABELS[c]["name"]: float(mod[:, 1][lab == c].mean()) for c in (1, 2, 3)}
    results["two_series_1mm_plus_thick_5mm"] = r
    # The reverse: the thick copy as the analysed series, the 1 mm head as the second one.
    lab, _, mod, _ = model.volume([second, ch2])
    r = brain_metrics(lab, brain, 1e-3)
    r["mean_weight_of_slot1_by_label"] = {LABELS[c]["name"]: float(mod[:, 1][lab == c].mean()) for c in (1, 2, 3)}
    results["two_series_thick_5mm_plus_1mm"] = r

    # 5. The ITK examples' real low-resolution head (another subject and scanner).
    itk, itk_mask, dz = load_itk_head()
    lab, _, _, _ = model.volume([itk], dz=dz)
    results["itk_head_2x2x3mm"] = brain_metrics(lab, itk_mask, dz * 1e-3)
    tissue_only("itk_head_2x2x3mm", [itk], itk_mask, dz * 1e-3, dz)

    # 6. Baseline: 3-class intensity k-means inside the true brain mask (skull-stripped).
    klab, _ = kmeans3(bet[brain].astype(np.float64))
    km = np.zeros(bet.shape, np.int32)
    km[brain] = klab + 1
    results["kmeans_baseline_skull_stripped"] = {
        "dice_grey_matter_vs_AAL": dice(km == 2, gm_ref),
        "grey_matter_inside_AAL_fraction": float(((km == 2) & gm_ref).sum() / max((km == 2).sum(), 1)),
        "dice_white_matter_vs_brain_minus_AAL": dice(km == 3, wm_ref),
        "needs_the_true_brain_mask": True,
    }
    # k-means on the whole head cannot find the brain at all: its "brain" is every voxel
    # brighter than the darkest class.
    head = ch2 > 10
    hk, _ = kmeans3(ch2[head].astype(np.float64))
    kh = np.zeros(ch2.shape, bool)
    kh[head] = hk > 0
    results["kmeans_baseline_whole_head"] = {"dice_brain_vs_mask": dice(kh, brain),
                                             "labelled_outside_mask_ml": float((kh & ~brain).sum() * 1e-3)}
    results["agreement_model_vs_kmeans_skull_stripped"] = {
        LABELS[k]["name"]: dice(stripped_lab == k, km == k) for k in (1, 2, 3)}
    results["reference_notes"] = (
        "ch2bet is a brain-extraction mask (BET), the reference for brain Dice and volume. AAL parcels cover 77% "
        "of it (drawn thick, much white matter included), so Dice against AAL-derived grey and white matter is "
        "not a tissue Dice; the share of predicted grey matter inside AAL is the more meaningful number. The ITK "
        "head's mask is the ITK example's own skull strip.")

    # 7. Latency: one 256 x 256 slice, one thread, median of 30.
    one = Model(onnx_path, threads=1)
    x = np.random.default_rng(0).random((1, SLOTS * CONTEXT, 256, 256), dtype=np.float32)
    times = []
    for _ in range(33):
        t = time.perf_counter()
        one.sess.run(None, {"image": x})
        times.append(time.perf_counter() - t)
    results["latency_ms_256_one_thread"] = float(np.median(times[3:]) * 1000)

    # 8. Attention: percentiles inside the head (display range) and the deletion test on 14
    # slices of the sample-study geometry.
    sample = ch2[ks]
    a = sample_att[sample > 10]
    results["attention_percentiles_in_head"] = {str(p): float(np.percentile(a, p)) for p in (1, 5, 50, 95, 99)}
    counts = (sample_lab > 0).reshape(len(ks), -1).sum(1)
    cand = [k for k in range(len(ks)) if counts[k] * 5 >= counts.max()]
    picked = [cand[(2 * i + 1) * len(cand) // 28] for i in range(14)]
    results["deletion_test"] = deletion_test(model, [sample], picked, np.random.default_rng(7))
    results["deletion_test"]["slice_indices_of_sample"] = picked

    # 9. Golden outputs: four slices of the sample study as Focal reads them (DICOM), one
    # with the sample in both slots; float16.
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample_dir, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    dvol = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in files])
    golden_dir = os.path.join(os.path.dirname(onnx_path), "golden")
    os.makedirs(golden_dir, exist_ok=True)
    for old in glob.glob(os.path.join(golden_dir, "*.npy")):
        os.remove(old)
    gold = []
    for n, (i, slots) in enumerate([(len(files) // 4, 1), (len(files) // 2, 1), (len(files) // 2 + 8, 2), (3 * len(files) // 4, 1)]):
        x, _ = pad8(slab_input([dvol] * slots, i)[None])
        x = x.astype(np.float16).astype(np.float32)
        p, att, mod = model.sess.run(["probs", "attention", "modality_attention"], {"image": x})
        for what, v in (("input", x), ("probs", p), ("attention", att), ("modality_attention", mod)):
            np.save(os.path.join(golden_dir, f"slice{n}_{what}.npy"), v.astype(np.float16))
        gold.append({"name": f"slice{n}", "sop_instance_uid": str(files[i].SOPInstanceUID),
                     "instance_number": int(files[i].InstanceNumber), "slots_filled": slots, "shape": list(x.shape)})
    index = {"note": "inputs and outputs stored as float16; outputs computed by onnxruntime " + ort.__version__
             + " from the float16-rounded inputs; slots_filled = how many slots hold the sample series",
             "slices": gold}
    if model.extent is not None:
        # The brain extent's input for the whole sample volume (RAS, 3 mm, padded) and its output.
        from mask3d import model_input

        row_mm, col_mm = (float(v) for v in files[0].PixelSpacing)
        dz = abs(float(files[1].ImagePositionPatient[2]) - float(files[0].ImagePositionPatient[2]))
        x, coarse = model_input(ras(dvol), (col_mm, row_mm, dz))
        x = x.astype(np.float16).astype(np.float32)
        out = model.extent.sess.run(["brain"], {"image": x})[0]
        np.save(os.path.join(golden_dir, "extent_input.npy"), x.astype(np.float16))
        np.save(os.path.join(golden_dir, "extent_brain.npy"), out.astype(np.float16))
        index["extent"] = {"input": "extent_input", "output": "extent_brain", "shape": list(x.shape),
                           "grid_before_padding": list(coarse), "spacing_mm": [col_mm, row_mm, dz]}
    with open(os.path.join(golden_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)

    # 10. Figure: three axial slices of the held-out head: image, labels, attention.
    lo, hi = results["attention_percentiles_in_head"]["5"], results["attention_percentiles_in_head"]["99"]
    colours = np.array([l["color"] for l in LABELS], float)
    rows = []
    for k in (len(ks) * 3 // 10, len(ks) // 2, len(ks) * 7 // 10):
        img = np.clip(sample[k] / max(percentile_scale(sample[k]), 1e-6), 0, 1)
        grey = np.repeat(img[..., None] * 255, 3, -1)
        lab = sample_lab[k]
        over = grey.copy()
        m = lab > 0
        over[m] = 0.45 * grey[m] + 0.55 * colours[lab[m]]
        edge = brain[ks][k] & ~ndimage.binary_erosion(brain[ks][k])
        over[edge] = [0, 255, 0]
        heat = inferno((sample_att[k] - lo) / max(hi - lo, 1e-6))
        heat = np.where((sample[k] > 10)[..., None], 0.4 * grey + 0.6 * heat, grey)
        rows.append(np.concatenate([grey, over, heat], 1))
    png(os.path.join(os.path.dirname(onnx_path), "model-card-figure.png"), np.concatenate(rows, 0))

    with open(out_json, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
