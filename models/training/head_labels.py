#!/usr/bin/env python3
"""Builds a whole-head training label map from a real head CT, so the model learns what real
non-brain head anatomy looks like (scalp, fat, muscle, skull and marrow, sinuses and airway,
fluid-filled structures such as the eyes), not only synthetic shells.

Source: the head CT inside Debian's `invesalius-examples` (Cranium.inv3, "ProMED CT 0051",
256 x 256 x 108, 0.957 x 0.957 x 1.5 mm, int16 HU). It is not the held-out subject.
- Tissue outside the skull comes from Hounsfield ranges (smoothed): air, fat, fluid-like soft
  tissue, muscle-like soft tissue, marrow/cancellous bone, cortical bone, air inside the head.
- The intracranial cavity is the soft-tissue region that bone encloses (eroded so that narrow
  foramina do not connect it to the face or neck, then grown back). The MNI ICBM152 brain
  labels (CSF, GM, WM) are placed in it by an axis-wise affine fit of the two bounding boxes;
  cavity voxels the template brain does not reach become CSF.
- With --neck (the unshipped 2.1 attempt; model 2.0 was trained without it): the CT stops at
  the skull base, but whole-head MR goes on through the jaw and neck, where a model that never
  saw them labels soft tissue as brain. Below the CT, `add_neck` grows a
  neck from the CT's lowest outline: skin fat, muscle, a vertebra (cortex, marrow, spinal
  canal with the cord, posterior arch), the airway, the mandible in its upper part, glands.

usage: head_labels.py OUT.npz [--neck]   (reads the cache prepared by prepare_data.sh)
"""
import os
import plistlib
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

from anatomy import DATA, GEN, load_mni_labels

CRANIUM = os.path.join(DATA, "invesalius/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def read_inv3(path):
    """The volume of an InVesalius 3 project (a gzipped tar of plists and raw arrays)."""
    import tarfile

    with tarfile.open(path, "r:gz") as tar:
        members = {os.path.basename(m.name): m for m in tar.getmembers()}
        main = plistlib.loads(tar.extractfile(members["main.plist"]).read())
        info = main["matrix"]
        raw = tar.extractfile(members[info["filename"]]).read()
    shape = tuple(info["shape"])  # slices, rows, columns
    vol = np.frombuffer(raw, dtype=np.dtype(info["dtype"]), count=int(np.prod(shape))).reshape(shape)
    return vol.astype(np.float32), [float(s) for s in main["spacing"]]


def ct_head_labels(neck=False, deep_gm=False):
    ct, (sx, sy, sz) = read_inv3(CRANIUM)
    # To x (columns), y (rows: anterior increasing), z (slices: superior increasing), 1 mm.
    ct = ndimage.zoom(ct.transpose(2, 1, 0), (sx, sy, sz), order=1)
    st = ndimage.generate_binary_structure(3, 1)
    sm = ndimage.gaussian_filter(ct, 0.7)
    sm2 = ndimage.gaussian_filter(ct, 1.5)
    head = sm > -300
    lab_head, n = ndimage.label(head)
    head = lab_head == (np.argmax(ndimage.sum(head, lab_head, range(1, n + 1))) + 1)  # drops the headrest
    filled = head.copy()
    for z in range(head.shape[2]):
        filled[:, :, z] = ndimage.binary_fill_holes(head[:, :, z])
    bone = sm > 150
    soft = (sm > -20) & (sm < 90)
    cand = soft & ~ndimage.binary_dilation(bone, st, iterations=2)
    er = ndimage.binary_erosion(cand, st, iterations=3)
    comp, _ = ndimage.label(er)
    zs = np.nonzero(head.any((0, 1)))[0]
    zc = int(zs.min() + 0.65 * (zs.max() - zs.min()))
    xs, ys = np.nonzero(head[:, :, zc])
    cav = comp == comp[int(xs.mean()), int(ys.mean()), zc]
    cav = ndimage.binary_dilation(cav, st, iterations=5) & soft & ~bone
    for z in range(cav.shape[2]):
        cav[:, :, z] = ndimage.binary_fill_holes(cav[:, :, z])
    core = ndimage.binary_erosion(cav, st, iterations=6)
    comp, n = ndimage.label(core)
    core = comp == (np.argmax(ndimage.sum(core, comp, range(1, n + 1))) + 1)
    cav = ndimage.binary_dilation(core, st, iterations=7) & cav

    out = np.zeros(ct.shape, np.uint8)
    inside = filled & ~cav
    out[inside & (sm2 >= 15)] = GEN["muscle"]
    out[inside & (sm2 < 15) & (sm2 >= -40)] = GEN["fluid"]
    out[inside & (sm2 < -40) & (sm2 > -250)] = GEN["fat"]
    out[inside & (sm < -250)] = GEN["air_inside"]
    out[inside & (sm > 150)] = GEN["marrow"]
    out[inside & (sm > 700)] = GEN["bone"]
    out[cav] = place_brain(cav, deep_gm)
    if not neck:
        return out, cav
    return add_neck(out, np.random.default_rng(27)), np.pad(cav, ((0, 0), (0, 0), (NECK_MM, 0)))


NECK_MM = 60


def add_neck(out, rng):
    """`NECK_MM` slices of neck under the label map [x, y (anterior+), z (superior+)]: the
    lowest slice's outline shrinking towards the neck, filled with the neck's tissues."""
    nx, ny, _ = out.shape
    base = ndimage.binary_fill_holes(out[:, :, 0] > 0)
    xs, ys = np.nonzero(base)
    cx, cy = xs.mean(), ys.mean()
    gx, gy = np.meshgrid(np.arange(nx, dtype=np.float32), np.arange(ny, dtype=np.float32), indexing="ij")
    neck = np.zeros((nx, ny, NECK_MM), np.uint8)
    fat_mm = rng.uniform(3, 7)
    for i in range(NECK_MM):
        d = NECK_MM - i  # mm below the CT's lowest slice (slice i of the neck block, bottom first)
        f = 1 - 0.3 * min(d / 45, 1)  # the outline shrinks by 30% over the upper 45 mm
        shift = 0.12 * (ys.max() - ys.min()) * min(d / 45, 1)  # and moves back (posterior)
        src_x, src_y = cx + (gx - cx) / f, cy + (gy - cy - (-shift)) / f
        m = ndimage.map_coordinates(base.astype(np.float32), [src_x, src_y], order=1) > 0.5
        if not m.any():
            continue
        depth = ndimage.distance_transform_edt(m)
        s = np.where(m, GEN["muscle"], 0).astype(np.uint8)
        s[m & (depth <= fat_mm)] = GEN["fat"]
        mx, my = np.nonzero(m)
        ox, oy = mx.mean(), my.mean()
        ey = (my.max() - my.min()) / 2
        ell = lambda x0, y0, rx, ry: ((gx - x0) / rx) ** 2 + ((gy - y0) / ry) ** 2 < 1
        body_y = oy - 0.1 * ey
        s[ell(ox, body_y, 10, 8)] = GEN["bone"]
        s[ell(ox, body_y, 8.5, 6.5)] = GEN["marrow"]
        s[ell(ox, body_y - 14, 7, 6)] = GEN["fluid"]  # spinal canal
        s[ell(ox, body_y - 14, 4, 3.5)] = GEN["muscle"]  # cord: soft tissue
        s[ell(ox, body_y - 24, 3, 7) | ell(ox - 9, body_y - 18, 6, 2.5) | ell(ox + 9, body_y - 18, 6, 2.5)] = GEN["bone"]
        s[ell(ox, body_y + 17, 8, 5)] = GEN["air_inside"]  # airway
        if d < 30:  # the mandible: an arc of bone with marrow, in front
            r = np.sqrt(((gx - ox) / (0.8 * (mx.max() - mx.min()) / 2)) ** 2 + ((gy - oy) / (0.85 * ey)) ** 2)
            arc = (r > 0.82) & (r < 0.95) & (gy > oy + 0.15 * ey) & m
            s[arc] = GEN["bone"]
            s[(r > 0.85) & (r < 0.92) & (gy > oy + 0.15 * ey) & m] = GEN["marrow"]
        for _ in range(2):  # glands and vessels
            gxc, gyc = ox + rng.uniform(-0.5, 0.5) * (mx.max() - mx.min()) / 2, oy + rng.uniform(0, 0.6) * ey
            s[ell(gxc, gyc, rng.uniform(3, 7), rng.uniform(3, 7)) & (s == GEN["muscle"])] = GEN["fluid"]
        neck[:, :, i] = s
    # Fat planes between the muscles: smooth 3D noise over the muscle.
    planes = ndimage.gaussian_filter(rng.normal(0, 1, neck.shape).astype(np.float32), 2.5)
    neck[(neck == GEN["muscle"]) & (planes > np.percentile(planes, 85))] = GEN["fat"]
    return np.concatenate([neck, out], axis=2)


def place_brain(cav, deep_gm=False):
    """MNI brain labels resampled into the cavity (bounding boxes fitted axis by axis in x and
    y, the top of the brain aligned, z scaled like x and y); the rest of the cavity is CSF."""
    mni = load_mni_labels(deep_gm)
    mb = np.nonzero(mni > 0)
    cb = np.nonzero(cav)
    lo_m = np.array([a.min() for a in mb], float)
    hi_m = np.array([a.max() for a in mb], float)
    lo_c = np.array([a.min() for a in cb], float)
    hi_c = np.array([a.max() for a in cb], float)
    scale = (hi_c[:2] - lo_c[:2]) / (hi_m[:2] - lo_m[:2])
    scale = np.array([scale[0], scale[1], scale.mean()])
    centre_c = np.array([(lo_c[0] + hi_c[0]) / 2, (lo_c[1] + hi_c[1]) / 2, hi_c[2]])
    centre_m = np.array([(lo_m[0] + hi_m[0]) / 2, (lo_m[1] + hi_m[1]) / 2, hi_m[2]])
    pts = np.stack(cb, 1).astype(float)
    src = (pts - centre_c) / scale + centre_m
    vals = ndimage.map_coordinates(mni, src.T, order=0, mode="constant", cval=0)
    vals[vals == 0] = GEN["csf"]
    return vals.astype(np.uint8)


def main():
    args = [a for a in sys.argv[1:] if a not in ("--neck", "--deep-gm")]
    out = args[0] if args else os.path.join(DATA, "ct-head-labels.npz")
    labels, cav = ct_head_labels(neck="--neck" in sys.argv[1:], deep_gm="--deep-gm" in sys.argv[1:])
    np.savez_compressed(out, labels=labels)
    counts = {k: int((labels == v).sum()) for k, v in GEN.items()}
    print(f"wrote {out}: {labels.shape}, intracranial {cav.sum() / 1000:.0f} mL, voxels per label {counts}")


if __name__ == "__main__":
    main()
