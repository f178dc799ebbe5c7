#!/usr/bin/env python3
"""Write models/<name>.json, the contract between training and the Focal app.

usage: write_manifest.py ../brain-tissue.onnx runs/v2/training.json runs/v2/evaluation.json
       write_manifest.py --extent ../brain-tissue.json ../brain-extent.onnx TRAINING_JSON EVALUATION_JSON
         (model 2.1: adds the brain-extent model and its post-processing step to the manifest;
          EVALUATION_JSON is evaluate.py's output with the extent)
       write_manifest.py --fluid-rim ../brain-tissue.json EVALUATION_JSON
         (model 2.2: adds the fluid-rim step between the extent and the largest component)
       write_manifest.py --model3 ../brain-tissue.json ../brain-tissue.onnx ../candidates/tissue-em.json \
           EVALUATION_JSON tissue_evaluation_3_3.json
         (model 3.3: the input-gate network, deepbet's brain, the scan's own tissue model)
       write_manifest.py --model3-classes ../brain-tissue.json ../candidates/tissue-em.json
         (model 3.3.2: which class is fluid and, on a T1 with contrast, which is grey matter)
       write_manifest.py --key-regions ../brain-tissue.json ../candidates/key-regions.json
         (model 3.4.0: key regions, round 4's candidate)
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx

from anatomy import CONTEXT, LABELS, SLOTS

MANIFEST_VERSION = 2

# Healthy adult ranges (mL) within which Focal shows no volume warning: wide on purpose (they
# flag gross failures such as tissue outside the brain, not atrophy). Whole brain (CSF inside
# the brain mask included) about 1000-1800 mL; GM 450-900; WM 300-750; CSF 60-600.
EXPECTED_ML = {"CSF": [60, 600], "grey matter": [450, 900], "white matter": [300, 750]}
EXPECTED_TOTAL_ML = [1000, 1800]


# What the model cannot do; shown in the window's model card and in every PDF report.
LIMITS = [
    "Training brains all come from one population template (deformed); atrophy, large ventricles, lesions, "
    "tumours, post-surgical anatomy and children's brains were never seen and will be mislabelled as tissue.",
    "Non-brain head anatomy comes from one real head CT; unusual anatomy (large sinuses, implants, "
    "neck-only coverage) can still be labelled as brain.",
    "Evaluated on real T1 scans only (two held-out heads); other contrasts are trained by domain "
    "randomisation but untested on real images. CT is out of scope.",
    "The second modality slot was tested with another acquisition of the same T1 head, not a real second contrast.",
]


def finite(v):
    """JSON has no NaN (a label the model never predicted has no mean weight): None instead."""
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [finite(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v


def save_with(manifest, manifest_path, evaluation, limit_prefix, limit):
    """Writes the manifest with `evaluation` as its metrics and `limit` in place of the limit
    that starts with `limit_prefix` (so a step's script can be rerun)."""
    manifest["limits"] = [l for l in manifest.get("limits", []) if not l.startswith(limit_prefix)] + [limit]
    manifest["metrics"] = finite(evaluation)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1, allow_nan=False)
    print(f"wrote {manifest_path}")


def add_extent(manifest_path, onnx_path, training_path, evaluation_path):
    """Version 2.1: the same tissue model with the brain extent before the largest component."""
    from mask3d import FINE, PERCENTILE, SIZE_MULTIPLE, SPACING, THRESHOLD

    manifest = json.load(open(manifest_path))
    training = json.load(open(training_path))
    ev = json.load(open(evaluation_path))
    manifest["version"] = "2.1.1"  # 2.1.0 was the same model before fast_graph.py
    # Rerunnable: the tissue model's own description is what comes before the extent's.
    manifest["architecture"] = manifest["architecture"].split("; then a brain extent")[0] + (
        "; then a brain extent: a 3D U-Net (three poolings, batch normalisation) over the whole volume at "
        f"{SPACING:g} mm whose p(brain) below {THRESHOLD} sets tissue labels to background")
    manifest["extent"] = {
        "file": os.path.basename(onnx_path),
        "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
        "input": "image",
        "output": "brain",
        "spacing_mm": SPACING,
        "size_multiple": SIZE_MULTIPLE,
        "percentile": PERCENTILE,
        "threshold": THRESHOLD,
        "description": "[1, 1, X, Y, Z] float32: the whole volume in RAS axis order (each volume axis taken as the "
                       f"patient axis nearest its direction), resampled to a {SPACING:g} mm grid with a separable triangle "
                       "filter (both grids start at the first voxel), divided by the 99.5th percentile of its values "
                       "> 0 and clipped to [0, 1], zero-padded at the high ends to multiples of 8. Output brain: "
                       "p(brain) on that grid (sigmoid), brought back by linear interpolation.",
        "parameters": training["parameters"],
        "training": {
            "method": "domain randomisation from 3D label maps: random rotation (up to 17 degrees per axis), scale, "
                      "flip and elastic warp, a random contrast per tissue, blur, thick slices (3-8 mm) along any axis, "
                      f"bias field, gamma, noise and partial coverage; made at {FINE:g} mm and averaged to {SPACING:g} mm",
            "data": "the head CT label map with a synthetic neck (head_labels.py --neck) 60%, the MNI brain with "
                    "random synthetic shells 40%",
            "steps": training["steps"], "minutes": training["minutes"], "seed": training["seed"],
            "batch": training["batch"], "crop_voxels": training["crop"], "width": training["width"],
            "hardware": "2 CPU cores", "code": "models/training/mask3d.py",
        },
    }
    manifest["postprocess"] = ["brain_extent", "largest_component"]
    extent_limit = ("The brain extent takes each volume axis as the patient axis nearest it and was trained with up to "
                    "17 degrees of rotation; more oblique stacks, and heads cut off by the field of view, can lose brain "
                    "at the edges.")
    save_with(manifest, manifest_path, ev, "The brain extent", extent_limit)


def add_fluid_rim(manifest_path, evaluation_path):
    """Version 2.2: the same two models with the fluid rim between the extent and the largest
    component (evaluate.py's trim_fluid_rim; EVALUATION_JSON is evaluate.py's output with it)."""
    from evaluate import FLUID_RIM_MM

    manifest = json.load(open(manifest_path))
    ev = json.load(open(evaluation_path))
    manifest["version"] = "2.2.0"
    rim = (f"; then a fluid rim: voxels of the scan's fluid intensity class (three k-means classes of the labelled "
           f"values, the one farthest from their median) within {FLUID_RIM_MM:g} mm of the brain's surface and "
           "connected to the outside set to background")
    manifest["architecture"] = manifest["architecture"].split("; then a fluid rim")[0] + rim
    manifest["fluid_rim"] = {
        "depth_mm": FLUID_RIM_MM,
        "description": "Labelled voxels whose value belongs to the fluid intensity class (1D k-means of the labelled "
                       "values in three classes, started at their 15th, 50th and 85th percentiles; the class whose "
                       "centre is farthest from their median: dark CSF on T1 and FLAIR, bright on T2), lying within "
                       f"depth_mm of the labelled region's edge (Euclidean, in mm) and connected through such voxels "
                       "to an unlabelled voxel, become background: the extra-axial CSF and dura that brain masks "
                       "leave out and the tissue model labels as grey matter. Sulci and ventricles deeper than "
                       "depth_mm stay.",
    }
    manifest["postprocess"] = ["brain_extent", "fluid_rim", "largest_component"]
    rim_limit = ("The fluid rim assumes the scan's labelled values fall into fluid, grey and white matter classes; on "
                 "a contrast where grey matter is the outlying class it would trim cortex, and brain masks that "
                 "include the extra-axial CSF (the ITK example head's) count what it removes as missed.")
    save_with(manifest, manifest_path, ev, "The fluid rim", rim_limit)


def model3(manifest_path, onnx_path, candidate_path, evaluation_path, tissue_path):
    """Version 3.3: the input-gate network (brain-tissue.onnx, from candidates/) with deepbet's
    brain, the fluid rim as CSF and the scan's own tissue model with the deep grey-matter atlas
    (CANDIDATE_JSON: models/candidates/tissue-em.json; EVALUATION_JSON: evaluate.py's output for
    the network; TISSUE_JSON: evaluate_tissue.py's held-out table through focal analyze)."""
    manifest = json.load(open(manifest_path))
    candidate = json.load(open(candidate_path))
    ev = json.load(open(evaluation_path))
    tissue = json.load(open(tissue_path))
    for k in ("postprocess", "fluid_rim", "tissue_em", "extractor"):
        manifest[k] = candidate[k]
    manifest["version"] = "3.3.0"
    # With the extra-axial CSF labelled, the labelled total is the intracranial volume (adults
    # about 1,100-2,000 mL); and 2.x's white-matter range sat below the sample's own classical
    # consensus (775 mL on Colin27, a healthy adult). Wide on purpose, as before.
    manifest["expected_total_ml"] = [1000, 2100]
    for label in manifest["labels"]:
        if label["name"] == "white matter":
            label["expected_ml"] = [300, 850]
    manifest["file"] = os.path.basename(onnx_path)
    manifest["sha256"] = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    graph = onnx.load(onnx_path)
    manifest["parameters"] = int(sum(int(np.prod(t.dims)) for t in graph.graph.initializer))
    manifest["architecture"] = (
        "multi-modal 2.5D Attention U-Net: each modality slot (a slice and its two neighbours) encoded with shared "
        "weights and fused by a per-pixel softmax over the slots present (modality_attention); a spatial gate at "
        "full resolution on the input pixels (attention): where it holds back, each channel's values are replaced "
        "by noise of fixed mean and spread, so the segmentation sees nothing of a pixel the gate closes; a U-Net "
        "with additive attention gates on its skips (Oktay et al. 2018); then deepbet's brain extractor (two 3D "
        "LinkNets trained on real T1 scans); the fluid rim at the brain's surface labelled CSF; the largest "
        "component; then the scan's own tissue model: one Gaussian per class fitted to this scan by EM with the "
        "network's probabilities as a tempered prior, a bias field, a Potts MRF, and deep grey matter placed by "
        "an atlas of the MNI template")
    manifest["training"] = dict(manifest.get("training", {}), **{
        "model3": "fine-tuned from candidate 3.1's network (rebuilt from its ONNX, batch normalisation frozen) "
                  "with the input gate, its cost on the whole head and the share outside the brain, a third of "
                  "the examples with exact zeros around the head (models/training/train_m3.sh: runs m3h, m3i, "
                  "m3j); the filler's statistics then fixed (fix_filler.py, m3p). Weights: "
                  "models/training/checkpoints/m3p.pt",
    })
    manifest.pop("golden_note", None)
    ev["held_out_tissue_through_focal_analyze"] = {
        head: {"focal_vs_consensus": r["candidate"].get("focal_vs_consensus"),
               "focal_vs_tissue_map": r["candidate"].get("focal_vs_tissue_map"),
               "brain_dice": r["candidate"].get("brain_dice"),
               "volumes_ml": r["candidate"].get("volumes_ml"),
               "deep_grey_labelled_grey": r["candidate"].get("deep_grey_labelled_grey"),
               "attention_in_brain": r["candidate"].get("attention_in_brain"),
               "deletion_test": r["candidate"].get("deletion_test")}
        for head, r in tissue.items() if "candidate" in r and "error" not in r["candidate"]}
    atlas_limit = ("Deep grey matter is placed by an atlas of the MNI template aligned by the brain's centre and "
                   "spread along each patient axis, without rotation: a strongly tilted head, large ventricles or a "
                   "mass that moves the deep nuclei place it wrongly.")
    save_with(manifest, manifest_path, ev, "Deep grey matter is placed", atlas_limit)


def model3_classes(manifest_path, candidate_path):
    """Version 3.3.2: 3.3's network and steps; the tissue model takes fluid at the end where the
    fluid rim's step found it (a far tail set aside) and, on a T1 acquired with contrast, grey
    matter as the darker class (CANDIDATE_JSON: models/candidates/tissue-em.json). The held-out
    metrics are unchanged (MODEL_CARD.md, 3.3.1 and 3.3.2), so they stay."""
    manifest = json.load(open(manifest_path))
    candidate = json.load(open(candidate_path))["tissue_em"]
    for k in ("fluid_end_from_rim", "contrast_grey_darker"):
        manifest["tissue_em"][k] = candidate[k]
    manifest["version"] = "3.3.2"
    mark = " Which class is fluid:"
    manifest["tissue_em"]["description"] = manifest["tissue_em"]["description"].split(mark)[0] + (
        mark + " the end of the values where the fluid rim's step found fluid on the whole brain; where the fit's own "
        "farthest class lies at the other end (a contrast-enhanced T1's enhancement, once the rim's fluid is gone), "
        "those values are set aside, left out of the statistics and named. On a series acquired with contrast "
        "(ContrastBolusAgent, or a description such as \"T1 +C\") whose fluid is dark, grey matter is the darker "
        "of the two other classes, not the one the network leans grey on (3.3.2; MODEL_CARD.md).")
    limit = ("Contrast-enhanced scans: enhancing vessels, dura, choroid plexus and lesions take the class their "
             "value is nearest; a contrast-enhanced FLAIR would have grey and white matter swapped (grey matter is "
             "taken as the darker class on any series acquired with contrast whose fluid is dark).")
    save_with(manifest, manifest_path, manifest["metrics"], "Contrast-enhanced scans", limit)


def key_regions(manifest_path, candidate_path):
    """Key regions (3.4.0: round 4 passed its rule; 3.4.1: round 5, MODEL_CARD.md): the
    candidate's `key_regions` settings and the tissue model's outlier exclusion they need, at
    the candidate's version less "-candidate" (CANDIDATE_JSON: models/candidates/key-regions.json)."""
    manifest = json.load(open(manifest_path))
    candidate = json.load(open(candidate_path))
    manifest["key_regions"] = candidate["key_regions"]
    manifest["tissue_em"]["exclude_outliers"] = candidate["tissue_em"]["exclude_outliers"]
    manifest["version"] = candidate["version"].removesuffix("-candidate")
    limit = ("Key regions are where the scan departs from its own model of healthy tissue, not a diagnosis. "
             "Tested with synthetic lesions in real and template heads; lesions that only a T2 or FLAIR shows faintly "
             "are missed, and lesions under 1 mL often are. On a series acquired with contrast, bright regions in "
             "fluid, at the surface or on the midline are set aside as likely physiological enhancement (listed "
             "apart) when they are thin (no voxel more than 5.5 mm from the region's edge), or thin and long anywhere: "
             "developed on two contrast-enhanced scans, with none held out; a small lesion there can be set aside "
             "and physiological enhancement elsewhere can still be a region.")
    save_with(manifest, manifest_path, manifest["metrics"], "Key regions are where", limit)


def main():
    if sys.argv[1] == "--key-regions":
        return key_regions(*sys.argv[2:4])
    if sys.argv[1] == "--model3":
        return model3(*sys.argv[2:7])
    if sys.argv[1] == "--model3-classes":
        return model3_classes(*sys.argv[2:4])
    if sys.argv[1] == "--extent":
        return add_extent(*sys.argv[2:6])
    if sys.argv[1] == "--fluid-rim":
        return add_fluid_rim(*sys.argv[2:4])
    onnx_path, training_path, evaluation_path = sys.argv[1:4]
    training = json.load(open(training_path))
    # A fine-tuning run started from the weights of an earlier run, whose training.json lies beside them.
    stage1_path = os.path.join(os.path.dirname(training.get("init") or ""), "training.json")
    stage1 = json.load(open(stage1_path)) if training.get("init") and os.path.exists(stage1_path) else None
    ev = json.load(open(evaluation_path))
    model = onnx.load(onnx_path)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    name = os.path.splitext(os.path.basename(onnx_path))[0]
    pct = ev["attention_percentiles_in_head"]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "version": "2.0.0",
        "title": "Brain tissue segmentation (CSF, grey matter, white matter) from one or two MR series, with attention maps",
        "architecture": "multi-modal 2.5D Attention U-Net: each modality slot (a slice and its two neighbours) "
                        "encoded with shared weights and fused by a per-pixel softmax over the slots present "
                        "(modality_attention); a smooth spatial input gate (attention) that replaces what it "
                        "does not let through by the features' mean (plus noise in training, the information "
                        "bottleneck idea of Schulz et al. 2020) under a sparsity cost; a U-Net with additive "
                        "attention gates on its skips (Oktay et al. 2018) and bilinear upsampling",
        "file": os.path.basename(onnx_path),
        "sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
        "opset": opset,
        "parameters": training["parameters"],
        "intended_use": "Research and review of brain MRI tissue segmentation. Not for diagnosis.",
        "input": {
            "name": "image",
            "shape": ["N", SLOTS * CONTEXT, "H", "W"],
            "dtype": "float32",
            "size_multiple": 8,
            "modality": "MR (any contrast; trained by domain randomisation)",
            "slots": [
                {"name": "primary", "required": True,
                 "description": "the analysed series (any MR contrast)"},
                {"name": "second", "required": False,
                 "description": "another series of the same head (any contrast, e.g. T2 or FLAIR), resampled onto "
                                "the primary series' grid in patient coordinates; zeros where it is absent"},
            ],
            "context_slices": CONTEXT // 2,
            "channel_order": "slot-major: for each slot, the slice below, the slice, the slice above "
                             "(neighbours clamped at the ends of the volume)",
            "pixel_spacing_mm": [1.0, 1.0],
            "orientation": "any plane of a head volume in any in-plane orientation (trained on axial 60%, "
                           "coronal 20%, sagittal 20%, any quarter turn plus up to 20 degrees, flipped); slice "
                           "spacing 1-7 mm; pixels must be square at the given spacing",
            "normalisation": {
                "method": "percentile",
                "scope": "each slot's slab",
                "percentile": 99.5,
                "of": "pixels with value > 0 of the slot's three slices together (negative values are first set to 0)",
                "clip": [0.0, 1.0],
            },
            "padding": "zero-pad bottom and right to a multiple of 8; crop outputs back",
        },
        "outputs": [
            {"name": "probs", "shape": ["N", len(LABELS), "H", "W"], "dtype": "float32",
             "description": "softmax class probabilities per pixel"},
            {"name": "attention", "shape": ["N", 1, "H", "W"], "dtype": "float32", "range": [0.0, 1.0],
             "description": "the spatial input gate: how much of each pixel the segmentation was allowed to see "
                            "(smooth, trained with a sparsity cost), zero outside the head",
             # The gate is sparse: half of the head is near 0, so the colour bar spans the median
             # to the 99th percentile inside the head.
             "display_range": [round(pct["50"], 4), round(pct["99"], 4)]},
            {"name": "modality_attention", "shape": ["N", SLOTS, "H", "W"], "dtype": "float32", "range": [0.0, 1.0],
             "description": "per-pixel weights over the modality slots present (absent slots get 0); they sum to 1"},
        ],
        "labels": [dict(l, expected_ml=EXPECTED_ML[l["name"]]) if l["name"] in EXPECTED_ML else l for l in LABELS],
        "expected_total_ml": EXPECTED_TOTAL_ML,
        "training": {
            "method": "domain randomisation from 3D label maps (SynthSeg idea, Billot et al. 2023): per example a "
                      "plane, a slice and its neighbours 1-7 mm apart (thick slices averaged), two modality slots "
                      "synthesised from the same labels with independent random contrasts (T1-, T2-, FLAIR/PD-like "
                      "or random), resolution loss, bias field, ghosting, gamma and noise; slot 1 absent in 40% and "
                      "partial in 15%; any in-plane orientation, elastic warps, field-of-view cuts",
            "data": [
                {"source": "MNI ICBM152 2009a nonlinear symmetric T1 with GM/WM probability maps",
                 "obtained_from": "PyPI wheel nilearn==0.14.1 (nilearn/datasets/data/mni_icbm152_*)",
                 "licence": "ICBM152 2009 terms (free use with attribution, copyright McConnell Brain Imaging Centre); nilearn BSD-3-Clause",
                 "use": "brain label maps (CSF = brain mask minus GM and WM)"},
                {"source": "head CT 'ProMED CT 0051' (InVesalius example Cranium.inv3), 256x256x108, 0.96x0.96x1.5 mm",
                 "obtained_from": "Debian package invesalius-examples 3.1.99998-4",
                 "licence": "as packaged by Debian (GPL-2 per its copyright file)",
                 "use": "real non-brain head anatomy (scalp, fat, muscle, fluid, skull, marrow, sinuses/airway) from "
                        "Hounsfield ranges; the MNI brain labels placed in its intracranial cavity (head_labels.py)"},
            ],
            "held_out": {"source": "Colin27 (ch2, ch2bet) with the AAL atlas; the ITK examples' T1 head "
                                   "(KmeansTest_T1UCharRaw, 2x2x3 mm) with its skull-strip mask",
                         "obtained_from": "Debian packages mricron-data 1.2.20211006+dfsg-4 and insighttoolkit5-examples 5.2.1",
                         "licence": "as packaged by Debian (mricron-data BSD-3-Clause; ITK Apache-2.0); AAL: Tzourio-Mazoyer et al. 2002",
                         "use": "test only; never used to make training images"},
            "steps": training["steps"] + (stage1["steps"] if stage1 else 0),
            "minutes": round(training["minutes"] + (stage1["minutes"] if stage1 else 0), 1),
            "stages": ([dict(stage1, name="from scratch")] if stage1 else []) + [{
                "name": "fine-tuning with the noise-filled gate" if stage1 else "from scratch",
                "steps": training["steps"], "minutes": training["minutes"], "seed": training["seed"],
                "lr": training.get("lr"), "sparsity": training["sparsity"]}],
            "batch": training["batch"],
            "crop": training["crop"],
            "seed": training["seed"],
            "sparsity": training["sparsity"],
            "hardware": "2 CPU cores",
            "code": "models/training/ (train.py, export.py, evaluate.py)",
        },
        "metrics": finite(ev),
        "limits": LIMITS,
        "postprocess": ["largest_component"],
        "golden": "golden",
    }
    out = os.path.join(os.path.dirname(onnx_path), name + ".json")
    with open(out, "w") as f:
        json.dump(manifest, f, indent=1, allow_nan=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
