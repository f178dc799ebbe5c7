#!/usr/bin/env python3
"""The deep grey-matter atlas of the tissue model (manifest `tissue_em.deep_gm_atlas`).

The slice network does not learn the deep grey matter (caudate, putamen, pallidum, thalamus):
on the training template it calls 11 % of it grey (m3j). Its intensity on T1 lies between grey
and white matter, so the scan's own tissue model cannot find it either. SAMSEG places each deep
structure with an atlas; this is the smallest form of that: where the MNI ICBM152 2009a
template has deep grey matter (anatomy.load_mni_labels(deep_gm=True), the same voxels the
network is trained to call grey), smoothed by a Gaussian of SIGMA_MM for the alignment's error,
on a 2 mm grid in patient coordinates (LPS), cropped to where it is non-zero. Focal aligns it to
a scan by the brain's centre and extent along each patient axis (tissue/atlas.rs); the
template's are written beside it here, measured the same way, so both sides agree.

Data: the template from the nilearn 0.14.1 wheel on PyPI (prepare_data.sh); its licence
(McConnell Brain Imaging Centre, free use, copy and redistribution with the copyright notice)
is in the model card.

usage: make_deep_gm_atlas.py OUT.nii   (prints the manifest's deep_gm_atlas section)
"""
import hashlib
import json
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

from anatomy import MNI, load_mni_labels
from common import GEN

SIGMA_MM = 2.0
SPACING = 2.0


def main():
    out = sys.argv[1]
    img = nib.load(MNI.format("t1"))
    labels = load_mni_labels(deep_gm=True)
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), 1.0), "the template is on a 1 mm grid"
    deep = ndimage.gaussian_filter((labels == GEN["deep_gm"]).astype(np.float32), SIGMA_MM)
    brain = labels > 0
    ijk = np.argwhere(brain).astype(np.float64)
    ras = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    centre, sd = lps.mean(0), lps.std(0)
    # The atlas's grid: LPS axes, 2 mm, over the box where the smoothed map is above 1/255.
    keep = np.argwhere(deep >= 0.5 / 255).astype(np.float64)
    k_lps = (keep @ img.affine[:3, :3].T + img.affine[:3, 3]) * np.array([-1.0, -1.0, 1.0])
    lo = np.floor(k_lps.min(0) / SPACING) * SPACING - SPACING
    hi = np.ceil(k_lps.max(0) / SPACING) * SPACING + SPACING
    dims = ((hi - lo) / SPACING).astype(int) + 1
    grid = np.stack(np.meshgrid(*[lo[a] + SPACING * np.arange(dims[a]) for a in range(3)], indexing="ij"), -1)
    g_ras = grid * np.array([-1.0, -1.0, 1.0])
    g_ijk = (g_ras - img.affine[:3, 3]) @ np.linalg.inv(img.affine[:3, :3]).T
    values = ndimage.map_coordinates(deep, g_ijk.reshape(-1, 3).T, order=1, mode="constant").reshape(tuple(dims))
    atlas = np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)
    # NIfTI's axes are RAS: index i runs toward the patient's left (x = -L ... ), so the affine
    # is diag(-2, -2, 2) with the LPS origin's RAS position.
    affine = np.diag([-SPACING, -SPACING, SPACING, 1.0])
    affine[:3, 3] = lo * np.array([-1.0, -1.0, 1.0])
    nib.save(nib.Nifti1Image(atlas, affine), out)
    digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
    print(json.dumps({
        "file": out.rsplit("/", 1)[-1],
        "sha256": digest,
        "origin_lps_mm": [round(float(x), 3) for x in lo],
        "spacing_mm": SPACING,
        "brain_centre_lps_mm": [round(float(x), 3) for x in centre],
        "brain_sd_lps_mm": [round(float(x), 3) for x in sd],
        "deep_ml_template": round(float((labels == GEN["deep_gm"]).sum()) / 1000, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
