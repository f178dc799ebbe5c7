#!/usr/bin/env python3
"""The classical tissue reference for a T1 head, and Focal's labels scored against it.

Three classical classifiers, each run inside the reference brain mask on the N4-corrected
image (ANTs N4 through antspyx): k-means (scikit-learn, three classes), ANTs Atropos (k-means
start, MRF [0.2, 1x1x1]) and dipy's HMRF (beta 0.1). Classes are numbered by mean intensity:
dark = CSF, middle = grey matter, bright = white matter (T1 contrast). The consensus is the
per-voxel majority; where all three differ, Atropos's label.

Everything is computed on the grid of a DICOM series (the bundled sample study, or any
series written from the same head), mapping NIfTI references onto it in world coordinates
(nearest voxel), so that Focal's labels.nii compares voxel for voxel.

usage:
  tissue_reference.py reference SERIES_DIR T1_MASK_NIFTI OUT.npz [--atlas AAL_NIFTI] [--tissue-map NIFTI]
                                [--truth-from FINE.npz FINE_SERIES_DIR]
      writes the consensus, each classifier's labels, the mask, the deep-grey-matter mask and
      a head's own tissue map (ANTs/OASIS labels: 1 CSF, 2 and 4 grey, 3 white; others left out).
      With --truth-from (thick slices written from the same head as a finer series), the
      classifiers still run on the thick slices, but the consensus, mask and deep grey matter
      are the finer series' reference taken to the thick grid: each thick voxel gets the
      majority of the finer voxels its slab holds. (N4 and the classifiers on a few thick
      slices are not a reference: on Colin27 at 7 mm N4 darkened the middle slices, and the
      consensus there called 976 voxels of a slice white matter where the 1 mm one has 9,000.)
  tissue_reference.py score ANALYSIS_DIR REF.npz
      prints one JSON line: per class Dice of Focal's labels against the consensus (and of each
      classifier against it), inside the reference mask; brain Dice; volumes; the share of the
      deep grey matter (AAL caudate, putamen, pallidum, thalamus) labelled grey; with a tissue
      map, Dice of Focal, Atropos, k-means and the consensus against it (inside mask and map).
"""
import glob
import json
import os
import sys

import nibabel as nib
import numpy as np
import pydicom

CLASSES = {1: "CSF", 2: "grey matter", 3: "white matter"}
DEEP_GREY = {71, 72, 73, 74, 75, 76, 77, 78, 7001, 7002, 7011, 7012, 7021, 7022, 7101, 7102}


def series_headers(series_dir, pixels=False):
    """The series' slices (headers only unless `pixels`), sorted along the slice normal."""
    files = [pydicom.dcmread(f, stop_before_pixels=not pixels) for f in sorted(glob.glob(os.path.join(series_dir, "*")))
             if os.path.isfile(f) and not os.path.basename(f).startswith(".")]
    files = [d for d in files if "ImagePositionPatient" in d]
    iop = np.array([float(v) for v in files[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    files.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
    return files


def read_series(series_dir):
    """The series' values as [columns, rows, slices] (the axes Focal's NIfTI outputs use),
    its spacing (column, row, slice) and each slice's header, sorted along the normal."""
    files = series_headers(series_dir, pixels=True)
    iop = np.array([float(v) for v in files[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    planes = []
    for d in files:
        a = d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1) or 1) + float(
            getattr(d, "RescaleIntercept", 0) or 0)
        planes.append(a.T)  # [columns, rows]
    vol = np.stack(planes, axis=2)
    ps = [float(v) for v in files[0].PixelSpacing]  # row spacing, column spacing
    if len(files) > 1:
        p0 = np.array([float(v) for v in files[0].ImagePositionPatient])
        p1 = np.array([float(v) for v in files[-1].ImagePositionPatient])
        dz = abs(float(np.dot(normal, p1 - p0))) / (len(files) - 1)
    else:
        dz = float(getattr(files[0], "SliceThickness", 1) or 1)
    return vol, (ps[1], ps[0], dz), files


def world_of_grid(files, shape):
    """LPS position (mm) of every voxel of the [columns, rows, slices] grid."""
    iop = np.array([float(v) for v in files[0].ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]  # along a row (column index), along a column (row index)
    ps = [float(v) for v in files[0].PixelSpacing]
    c = np.arange(shape[0])[:, None, None]
    r = np.arange(shape[1])[None, :, None]
    out = np.empty(shape + (3,), np.float64)
    for k, d in enumerate(files):
        origin = np.array([float(v) for v in d.ImagePositionPatient])
        out[:, :, k, :] = (origin + row_dir * ps[1] * c[..., 0, None] + col_dir * ps[0] * r[..., 0, None])
    return out


def onto_grid(nifti_path, files, shape, order=0):
    """A NIfTI volume sampled at the grid's voxel centres (nearest voxel; 0 outside)."""
    img = nib.load(nifti_path)
    data = np.asarray(img.dataobj)
    lps = world_of_grid(files, shape)
    ras = lps * np.array([-1.0, -1.0, 1.0])
    inv = np.linalg.inv(img.affine)
    ijk = ras @ inv[:3, :3].T + inv[:3, 3]
    idx = np.rint(ijk).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(data.shape[:3])), axis=-1)
    out = np.zeros(shape, data.dtype)
    i = idx[inside]
    out[inside] = data[i[:, 0], i[:, 1], i[:, 2]]
    return out


def by_intensity(labels, values, mask):
    """Renumbers classes 1..3 by their mean value (dark → 1)."""
    means = [values[mask & (labels == k)].mean() if np.any(mask & (labels == k)) else np.inf for k in (1, 2, 3)]
    order = np.argsort(means)
    out = np.zeros_like(labels, dtype=np.uint8)
    for new, old in enumerate(order, start=1):
        out[mask & (labels == old + 1)] = new
    return out


def classify(vol, spacing, mask):
    import ants
    from dipy.segment.tissue import TissueClassifierHMRF
    from sklearn.cluster import KMeans

    # Crop to the mask's box (with a margin) to save time; all three see the same voxels.
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(0) - 3, 0)
    hi = np.minimum(nz.max(0) + 4, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    v, m = vol[box].astype(np.float32), mask[box]
    img = ants.from_numpy(v, spacing=tuple(float(s) for s in spacing))
    mimg = ants.from_numpy(m.astype(np.float32), spacing=tuple(float(s) for s in spacing))
    n4 = ants.n4_bias_field_correction(img, mask=mimg).numpy()
    n4 = np.where(m, n4, 0).astype(np.float32)
    out = {}
    km = KMeans(n_clusters=3, n_init=4, random_state=0).fit(n4[m].reshape(-1, 1))
    lab = np.zeros(m.shape, np.uint8)
    lab[m] = km.labels_ + 1
    out["kmeans"] = by_intensity(lab, n4, m)
    seg = ants.atropos(a=ants.from_numpy(n4, spacing=tuple(float(s) for s in spacing)), x=mimg,
                       i="kmeans[3]", m="[0.2,1x1x1]", c="[5,0]")
    out["atropos"] = by_intensity(seg["segmentation"].numpy().astype(np.uint8), n4, m)
    hmrf = TissueClassifierHMRF(verbose=False)
    _, final, _ = hmrf.classify(n4, 3, 0.1, tolerance=1e-5, max_iter=10)
    out["hmrf"] = by_intensity(np.where(m, final, 0).astype(np.uint8), n4, m)
    full = {}
    for k, lab in out.items():
        f = np.zeros(mask.shape, np.uint8)
        f[box] = lab
        full[k] = f
    stack = np.stack([full["kmeans"], full["atropos"], full["hmrf"]])
    consensus = full["atropos"].copy()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        agree = stack[a] == stack[b]
        consensus[agree] = stack[a][agree]
    consensus[~mask] = 0
    full["consensus"] = consensus
    return full


def slab_majority(fine, fine_files, thick_files):
    """A finer series' label volume [columns, rows, fine slices] on a thick series' slices (same
    in-plane grid): each thick voxel gets the most frequent value among the finer voxels whose
    slice centres fall inside its slab."""
    iop = np.array([float(v) for v in thick_files[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    pos = lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient]))  # noqa: E731
    fz = np.array([pos(d) for d in fine_files])
    tz = np.array([pos(d) for d in thick_files])
    half = (np.median(np.diff(tz)) if len(tz) > 1 else float(thick_files[0].SliceThickness)) / 2
    values = np.unique(fine)
    out = np.zeros(fine.shape[:2] + (len(tz),), fine.dtype)
    for k, z in enumerate(tz):
        slab = fine[:, :, np.abs(fz - z) < half - 1e-6]
        if slab.shape[2]:
            counts = np.stack([(slab == v).sum(axis=2) for v in values])
            out[:, :, k] = values[counts.argmax(axis=0)]
    return out


def reference(series_dir, mask_path, out_path, atlas=None, tissue_map=None, truth_from=None):
    vol, spacing, files = read_series(series_dir)
    mask = onto_grid(mask_path, files, vol.shape) > 0
    labs = classify(vol, spacing, mask)
    extra = {}
    if atlas:
        aal = onto_grid(atlas, files, vol.shape)
        extra["deep_grey"] = np.isin(aal, list(DEEP_GREY)) & mask
    if tissue_map:
        # ANTs/OASIS labels: 1 CSF, 2 cortical grey, 3 white, 4 deep grey, 5 brainstem,
        # 6 cerebellum; the last two mix tissues and are left out (0).
        t = np.rint(onto_grid(tissue_map, files, vol.shape)).astype(np.int64)
        extra["tissue_map"] = np.select([t == 1, (t == 2) | (t == 4), t == 3], [1, 2, 3], 0).astype(np.uint8)
    if truth_from:
        fine_npz, fine_dir = truth_from
        fine = np.load(fine_npz)
        fine_files = series_headers(fine_dir)
        mask = slab_majority(fine["mask"], fine_files, files)
        labs["consensus"] = np.where(mask, slab_majority(fine["consensus"], fine_files, files), 0).astype(np.uint8)
        if "deep_grey" in fine.files:
            extra["deep_grey"] = slab_majority(fine["deep_grey"], fine_files, files) & mask
    np.savez_compressed(out_path, mask=mask, spacing=np.array(spacing), **labs, **extra)


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else None


def class_dice(pred, ref, mask):
    return {name: dice((pred == k) & mask, (ref == k) & mask) for k, name in CLASSES.items()}


def score(analysis_dir, ref_path):
    ref = np.load(ref_path)
    lab = np.asarray(nib.load(os.path.join(analysis_dir, "labels.nii")).dataobj).astype(np.uint8)
    mask = ref["mask"]
    assert lab.shape == mask.shape, f"labels {lab.shape} are not on the reference's grid {mask.shape}"
    voxel_ml = float(np.prod(ref["spacing"])) / 1000
    out = {
        "focal_vs_consensus": class_dice(lab, ref["consensus"], mask),
        "atropos_vs_consensus": class_dice(ref["atropos"], ref["consensus"], mask),
        "kmeans_vs_consensus": class_dice(ref["kmeans"], ref["consensus"], mask),
        "hmrf_vs_consensus": class_dice(ref["hmrf"], ref["consensus"], mask),
        "focal_vs_atropos": class_dice(lab, ref["atropos"], mask),
        "brain_dice": dice(lab > 0, mask),
        "volumes_ml": {name: float((lab == k).sum() * voxel_ml) for k, name in CLASSES.items()},
        "consensus_volumes_ml": {name: float((ref["consensus"] == k).sum() * voxel_ml) for k, name in CLASSES.items()},
    }
    if "tissue_map" in ref.files:
        tm = ref["tissue_map"]
        inside = mask & (tm > 0)
        out["focal_vs_tissue_map"] = class_dice(lab, tm, inside)
        for k in ("atropos", "kmeans", "consensus"):
            out[f"{k}_vs_tissue_map"] = class_dice(ref[k], tm, inside)
    if "deep_grey" in ref.files:
        deep = ref["deep_grey"]
        out["deep_grey_labelled_grey"] = float((lab[deep] == 2).mean())
        out["deep_grey_atropos_grey"] = float((ref["atropos"][deep] == 2).mean())
    print(json.dumps(out))


def main():
    args = sys.argv[1:]
    if not args or args[0] not in ("reference", "score"):
        raise SystemExit(__doc__)
    opt = {}
    if "--truth-from" in args:
        i = args.index("--truth-from")
        opt["truth_from"] = (args[i + 1], args[i + 2])
        del args[i:i + 3]
    for flag in ("--atlas", "--tissue-map"):
        if flag in args:
            i = args.index(flag)
            opt[flag[2:].replace("-", "_")] = args[i + 1]
            del args[i:i + 2]
    if args[0] == "reference":
        reference(*args[1:4], **opt)
    else:
        score(*args[1:3], **opt)


if __name__ == "__main__":
    main()
