"""Focal's training data without the network: paths, the label scheme, the MNI template's
label maps. No torch here, so the evaluation and tuning scripts can use it too."""
import os

import numpy as np

CACHE = os.environ.get("FOCAL_CACHE", os.path.expanduser("~/.cache/focal"))
DATA = os.path.join(CACHE, "modeldata")
MNI = os.path.join(DATA, "nilearn/nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz")
MRICRON = os.path.join(DATA, "mricron/usr/share/mricron/templates/{}.nii.gz")
ITK = os.path.join(DATA, "insighttoolkit5/usr/share/doc/insighttoolkit5-examples/examples/Data/{}.nii.gz")

# Output classes (the manifest's labels) and their display colours.
LABELS = [
    {"index": 0, "name": "background", "color": [0, 0, 0]},
    {"index": 1, "name": "CSF", "color": [60, 120, 255]},
    {"index": 2, "name": "grey matter", "color": [255, 170, 40]},
    {"index": 3, "name": "white matter", "color": [240, 240, 240]},
]
NUM_CLASSES = len(LABELS)

# Modality slots: slot 0 is the series being analysed; slot 1 an optional second series of the
# same head resampled onto slot 0's grid (zeros where it is absent). Each slot carries the
# slice and its two neighbours (2.5D context), so the input has SLOTS * CONTEXT channels.
SLOTS = 2
CONTEXT = 3

# Labels of the generative label maps (the training images are synthesised from these); only
# CSF, GM and WM are targets, everything else is background.
GEN = {"air": 0, "csf": 1, "gm": 2, "wm": 3, "dura": 4, "bone": 5, "fat": 6, "muscle": 7,
       "fluid": 8, "air_inside": 9, "blob": 10, "marrow": 11, "deep_gm": 12}
GEN_LABELS = len(GEN)
# What each generative label is trained to be called: deep grey matter is grey matter.
TARGET = np.array([0, 1, 2, 3] + [0] * (GEN_LABELS - 5) + [2])

# Deep grey matter on the MNI template, drawn once from anatomy (not from an atlas of any
# evaluation head): inside this box of MNI coordinates (mm; caudate, putamen, pallidum,
# thalamus lie within it), at least DEEP_MM inside the brain's outline, the template's grey
# matter probability at least DEEP_GM_P (the pallidum's is low).
DEEP_BOX = ((-30, 30), (-42, 28), (-12, 24))
DEEP_MM = 10
DEEP_GM_P = 0.25


def load_mni_labels(deep_gm=False):
    """CSF (1), GM (2), WM (3) of the MNI ICBM152 2009a template (RAS, 1 mm), from its GM/WM
    probability maps inside its brain mask (CSF = the rest of the brain). With `deep_gm`, the
    deep grey matter (DEEP_BOX) is its own generative label, so that training images give it
    intensities between grey and white matter, as real T1 scans do, while it is still called
    grey: the network learns it by place and shape, not by cortex-like intensity."""
    import nibabel as nib

    t1_img = nib.load(MNI.format("t1"))
    t1 = t1_img.get_fdata().astype(np.float32)
    gm = nib.load(MNI.format("gm")).get_fdata().astype(np.float32) / 255
    wm = nib.load(MNI.format("wm")).get_fdata().astype(np.float32) / 255
    csf = np.clip(1 - gm - wm, 0, 1)
    labels = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    labels[t1 <= 0] = 0
    if deep_gm:
        from scipy import ndimage

        ijk = np.indices(labels.shape, dtype=np.float32)
        xyz = [sum(t1_img.affine[a, b] * ijk[b] for b in range(3)) + t1_img.affine[a, 3] for a in range(3)]
        box = np.ones(labels.shape, bool)
        for c, (lo, hi) in zip(xyz, DEEP_BOX):
            box &= (c >= lo) & (c <= hi)
        depth = ndimage.distance_transform_edt(labels > 0)
        labels[box & (depth >= DEEP_MM) & (gm >= DEEP_GM_P) & (labels >= 2)] = GEN["deep_gm"]
    return labels
