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

usage: head_labels.py OUT.npz   (reads the cache prepared by prepare_data.sh)
"""
import os
import plistlib
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

from common import DATA, GEN, load_mni_labels

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


def ct_head_labels():
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
    out[cav] = place_brain(cav)
    return out, cav


def place_brain(cav):
    """MNI brain labels resampled into the cavity (bounding boxes fitted axis by axis in x and
    y, the top of the brain aligned, z scaled like x and y); the rest of the cavity is CSF."""
    mni = load_mni_labels()
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
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DATA, "ct-head-labels.npz")
    labels, cav = ct_head_labels()
    np.savez_compressed(out, labels=labels)
    counts = {k: int((labels == v).sum()) for k, v in GEN.items()}
    print(f"wrote {out}: {labels.shape}, intracranial {cav.sum() / 1000:.0f} mL, voxels per label {counts}")


if __name__ == "__main__":
    main()
