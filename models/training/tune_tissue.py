#!/usr/bin/env python3
"""How the tissue_em settings were chosen: on training heads only, never an evaluation head.

The heads are the MNI ICBM152 2009a T1 (in the nilearn 0.14.1 wheel on PyPI, a training
head of the network) written as DICOM by make_sample_study.py in three versions:
  template   2 mm slices, as it is;
  noisy      the same with Rician noise of 6 % of white matter's value (seed 7);
  thick7     7 mm thick slices (each the mean of the seven it stands for).
Each has its classical consensus (tissue_reference.py: N4, k-means, Atropos, dipy HMRF inside
the T1's non-zero voxels, computed on the clean values) and each setting runs through
`focal analyze` with the candidate (models/candidates/tissue-em.json merged into a copy of the
shipped manifest, its tissue_em keys overridden). The score is the voxel agreement with the
consensus inside Focal's brain and the mask, and Dice per class; the chosen setting is the one
with the best mean agreement over the three heads.

usage: tune_tissue.py FOCAL_BINARY WORK_DIR OUT_JSON [prior_weight,mrf_beta,bias_sigma_mm[,rim_label[,deep_gm_mm]] ...]
  (rim_label: the fluid rim's voxels take this label after the last step instead of background;
   deep_gm_mm: FROM-TO, the depth range of the deep grey-matter component, "none", or atlasW:
   the deep grey-matter atlas of models/candidates/tissue-em.json with weight W)
Deep grey matter on these heads is the template's own (anatomy.load_mni_labels(deep_gm=True),
the region the network is trained to call grey), not an evaluation head's atlas; the AAL
figure is a diagnostic only.
  (PYTHON_TISSUE: a Python with antspyx, dipy and scikit-learn, default ~/.cache/focal/py-tissue)
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np

from anatomy import GEN, MNI, load_mni_labels
from evaluate_tissue import HERE, MRICRON, TPY, candidate_model
from tissue_reference import class_dice, onto_grid, series_headers

AAL = MRICRON.format("aal")
T1_IN_WHEEL = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
DEFAULT_SETTINGS = ["0.25,0.3,7", "0.25,0.3,10", "0.25,0.3,5", "0.25,0,10", "0,0,10", "0.5,0.3,10", "0.25,0.5,10"]


def mni_t1(work):
    """The MNI T1 and its mask (non-zero voxels), from the nilearn wheel on PyPI."""
    t1 = os.path.join(work, "mni_t1.nii.gz")
    mask = os.path.join(work, "mni_mask.nii.gz")
    if not os.path.exists(mask):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "nilearn==0.14.1", "-d", work],
                       check=True)
        wheel = glob.glob(os.path.join(work, "nilearn-0.14.1-*.whl"))[0]
        with zipfile.ZipFile(wheel) as z, open(t1, "wb") as f:
            f.write(z.read(T1_IN_WHEEL))
        img = nib.load(t1)
        nib.save(nib.Nifti1Image((np.asarray(img.dataobj) > 0).astype(np.uint8), img.affine), mask)
    return t1, mask


def add_noise(src, dst, fraction, seed=7):
    """Rician noise of `fraction` of white matter's value (the mean of the brightest quarter of
    the head's non-zero values) on every slice of a DICOM series."""
    import pydicom

    files = sorted(glob.glob(os.path.join(src, "*")))
    values = np.concatenate([pydicom.dcmread(f).pixel_array.ravel() for f in files]).astype(float)
    values = values[values > 0]
    white = values[values >= np.percentile(values, 75)].mean()
    sd = fraction * white
    rng = np.random.default_rng(seed)
    os.makedirs(dst, exist_ok=True)
    for f in files:
        d = pydicom.dcmread(f)
        a = d.pixel_array.astype(float)
        noisy = np.hypot(a + rng.normal(0, sd, a.shape), rng.normal(0, sd, a.shape))
        d.PixelData = np.clip(np.round(noisy), 0, np.iinfo(d.pixel_array.dtype).max).astype(
            d.pixel_array.dtype).tobytes()
        d.save_as(os.path.join(dst, os.path.basename(f)))
    return white


def heads(work):
    t1, mask = mni_t1(work)
    out = {}
    for name, opts in (("template", ["--step", "2"]), ("thick7", ["--step", "7", "--thick"])):
        series = os.path.join(work, name, "dicom")
        if not os.path.isdir(series):
            subprocess.run([sys.executable, os.path.join(HERE, "make_sample_study.py"), t1, series] + opts,
                           check=True, stdout=subprocess.DEVNULL)
        ref = os.path.join(work, name, "reference.npz")
        if not os.path.exists(ref):
            subprocess.run([TPY, os.path.join(HERE, "tissue_reference.py"), "reference", series, mask, ref,
                            "--atlas", AAL], check=True)
        out[name] = (series, ref)
    noisy = os.path.join(work, "noisy", "dicom")
    if not os.path.isdir(noisy):
        print("white matter value for the noise:", add_noise(out["template"][0], noisy, 0.06))
    out["noisy"] = (noisy, out["template"][1])  # scored against the clean template's consensus
    return out


def candidate_atlas():
    """The candidate's deep grey-matter atlas section (models/candidates/tissue-em.json)."""
    return json.load(open(os.path.join(HERE, "../candidates/tissue-em.json")))["tissue_em"]["deep_gm_atlas"]


def own_deep_grey(work, series):
    """The template's own deep grey matter on a series' grid (cached beside the series)."""
    path = os.path.join(os.path.dirname(series), "own_deep_grey.npy")
    if not os.path.exists(path):
        nifti = os.path.join(work, "own_deep_grey.nii.gz")
        if not os.path.exists(nifti):
            deep = (load_mni_labels(deep_gm=True) == GEN["deep_gm"]).astype(np.uint8)
            nib.save(nib.Nifti1Image(deep, nib.load(MNI.format("t1")).affine), nifti)
        files = series_headers(series)
        shape = (int(files[0].Columns), int(files[0].Rows), len(files))
        np.save(path, onto_grid(nifti, files, shape) > 0)
    return np.load(path)


def score(analysis, ref_path, own_deep=None):
    ref = np.load(ref_path)
    labels = np.asarray(nib.load(os.path.join(analysis, "labels.nii")).dataobj)
    both = ref["mask"] & (labels > 0)
    cons = ref["consensus"]
    out = {"agreement": float((labels[both] == cons[both]).mean()), "dice": class_dice(labels, cons, both),
           "brain_dice_vs_mask": float(2 * both.sum() / (ref["mask"].sum() + (labels > 0).sum()))}
    if "deep_grey" in ref.files:
        deep = ref["deep_grey"] & (labels > 0)
        out["deep_grey_labelled_grey"] = float((labels[deep] == 2).mean())
    if own_deep is not None:
        deep = own_deep & (labels > 0)
        out["own_deep_grey_labelled_grey"] = float((labels[deep] == 2).mean())
    summary = json.load(open(os.path.join(analysis, "summary.json")))
    faith = summary.get("faithfulness") or {}
    out["deletion_test"] = {k: faith.get(k) for k in ("score", "passed")}
    out["attention_in_brain"] = summary.get("attention_in_brain")
    return out


def main():
    focal, work, out_json = sys.argv[1:4]
    settings = sys.argv[4:] or DEFAULT_SETTINGS
    os.makedirs(work, exist_ok=True)
    hs = heads(work)
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    for setting in settings:
        parts = setting.split(",")
        pw, beta, sigma = (float(x) for x in parts[:3])
        rim = {"label_as": parts[3]} if len(parts) > 3 else None  # e.g. 0.25,0.3,7,CSF
        em = {"prior_weight": pw, "mrf_beta": beta, "bias_sigma_mm": sigma}
        if len(parts) > 4:  # e.g. 0.25,0.3,7,CSF,10-20 or 0.25,0.3,7,CSF,atlas0.7
            em["deep_gm_atlas"] = None
            if parts[4].startswith("atlas"):
                em["deep_gm_mm"] = None
                em["deep_gm_atlas"] = dict(candidate_atlas(), weight=float(parts[4][5:]))
            else:
                em["deep_gm_mm"] = None if parts[4] == "none" else [float(x) for x in parts[4].split("-")]
        manifest = candidate_model(work, em, "model", rim)
        row = {}
        for name, (series, ref) in hs.items():
            analysis = os.path.join(work, name, "analysis")
            shutil.rmtree(analysis, ignore_errors=True)
            subprocess.run([focal, "analyze", series, "--device", "cpu", "--model", manifest, "--out", analysis],
                           check=True, capture_output=True)
            row[name] = score(analysis, ref, own_deep_grey(work, series))
        row["mean_agreement"] = float(np.mean([row[h]["agreement"] for h in hs]))
        results[setting] = row
        print(setting, " ".join(f"{h} {row[h]['agreement']:.3f}" for h in hs), f"mean {row['mean_agreement']:.3f}",
              "own deep GM grey", " ".join(f"{row[h]['own_deep_grey_labelled_grey']:.2f}" for h in hs),
              "deletion", " ".join(f"{row[h]['deletion_test']['score']}" for h in hs), flush=True)
        json.dump(results, open(out_json, "w"), indent=1)
    best = max(results, key=lambda s: results[s]["mean_agreement"])
    print("best mean agreement:", best, f"{results[best]['mean_agreement']:.3f}")


if __name__ == "__main__":
    main()
