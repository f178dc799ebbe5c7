#!/usr/bin/env python3
"""What key regions add to an analysis: `focal analyze` on the bundled sample with the shipped
model and with the key-region candidate (models/candidates/key-regions.json merged into it, as
the tests do), alternately, in one run; the median of each and their ratio. The candidate also
leaves the tissue model's outliers out (exclude_outliers), which is part of what key regions
cost.

usage: key_regions_cost.py FOCAL_BINARY WORK_DIR [ROUNDS=3]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def candidate(work):
    """The shipped manifest with the candidate's sections, beside copies of its files."""
    out = os.path.join(work, "key-regions-model")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, "models"), out, ignore=shutil.ignore_patterns("training", "candidates", "golden", "*.png"))
    manifest = json.load(open(os.path.join(out, "brain-tissue.json")))
    manifest.update(json.load(open(os.path.join(REPO, "models/candidates/key-regions.json"))))
    json.dump(manifest, open(os.path.join(out, "brain-tissue.json"), "w"), indent=1)
    return os.path.join(out, "brain-tissue.json")


def main():
    focal, work = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    os.makedirs(work, exist_ok=True)
    models = {"shipped": os.path.join(REPO, "models/brain-tissue.json"), "key regions": candidate(work)}
    times = {k: [] for k in models}
    inside = []
    for r in range(rounds):
        for name, manifest in models.items():
            out = os.path.join(work, f"analysis-{r}-{name.replace(' ', '-')}")
            shutil.rmtree(out, ignore_errors=True)
            start = time.monotonic()
            subprocess.run([focal, "analyze", os.path.join(REPO, "assets/sample-study"), "--device", "cpu",
                            "--model", manifest, "--out", out], check=True, capture_output=True)
            times[name].append(time.monotonic() - start)
            if name == "key regions":
                inside.append(json.load(open(os.path.join(out, "summary.json")))["seconds"]["key_regions"])
    shipped, with_regions = statistics.median(times["shipped"]), statistics.median(times["key regions"])
    print(json.dumps({"seconds_shipped": times["shipped"], "seconds_with_key_regions": times["key regions"],
                      "key_region_seconds_inside": inside, "median_ratio": with_regions / shipped,
                      "added_share": (with_regions - shipped) / shipped}, indent=1))


if __name__ == "__main__":
    main()
