#!/usr/bin/env python3
"""Retrieving the sample study (89 MR slices) from a real Orthanc over loopback: Focal's C-GET
(`focal pacs get`) against dcmtk's `getscu`, alternating, in one run; medians and their ratio.
The same Orthanc also serves DICOMweb (Debian's plugin, plain HTTP on loopback), and Focal's
WADO-RS retrieve of the same study is timed in the same rounds. Orthanc runs in a private
network namespace as in the tests (app/tests/reference/pacs_scenario.py).

    ~/.cache/focal/py/bin/python bench/retrieve_vs_getscu.py [--focal BIN] [--rounds 7]

Both are timed as child processes (start-up included) writing into an empty folder each round.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "app/tests/reference"))

import pacs_scenario as scenario  # noqa: E402
from focal_ray import loopback  # noqa: E402  (pacs_scenario puts cluster/ on the path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--focal", default=os.path.join(target, "release", "focal"))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    focal = os.path.abspath(args.focal)
    if not os.access(focal, os.X_OK):
        sys.exit(f"error: no focal binary at {focal} (cargo build --release -p focal, or --focal)")
    if loopback.interfaces() != ["lo"]:
        sys.exit(loopback.in_private_network([os.path.abspath(__file__)] + sys.argv[1:]))
    loopback.loopback_up()
    work = tempfile.mkdtemp(prefix="focal-retrieve-bench-")
    env = dict(os.environ, FOCAL_CONFIG_DIR=os.path.join(work, "config"))
    orthanc = scenario.start_orthanc(work, {
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    })
    try:
        for f in sorted(glob.glob(os.path.join(ROOT, "assets/sample-study/*"))):
            with open(f, "rb") as fh:
                scenario.http("/instances", fh.read())
        study = scenario.http(f"/studies/{scenario.http('/studies')[0]}")["MainDicomTags"]["StudyInstanceUID"]
        subprocess.run([focal, "pacs", "add", "orthanc", "--ae", "ORTHANC", "--host", "127.0.0.1", "--port",
                        str(scenario.DIMSE_PORT)], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([focal, "pacs", "add-web", "web", "--url", f"http://127.0.0.1:{scenario.HTTP_PORT}/dicom-web"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        times = {"focal": [], "getscu": [], "focal_wado": []}

        def focal_get(node, key, d):
            """One timed `focal pacs get` from `node` into the new cache `d`; the files it wrote."""
            t = time.perf_counter()
            subprocess.run([focal, "pacs", "get", node, "--study", study, "--out", d], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[key].append(time.perf_counter() - t)
            return len(glob.glob(os.path.join(d, "*", "*.dcm")))

        for i in range(args.rounds):
            got_focal = focal_get("orthanc", "focal", os.path.join(work, f"focal-{i}"))
            d = os.path.join(work, f"getscu-{i}")
            os.makedirs(d)
            t = time.perf_counter()
            subprocess.run(["getscu", "-S", "-aet", "FOCAL", "-aec", "ORTHANC", "-k", "QueryRetrieveLevel=STUDY",
                            "-k", f"StudyInstanceUID={study}", "-od", d, "127.0.0.1", str(scenario.DIMSE_PORT)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times["getscu"].append(time.perf_counter() - t)
            got_getscu = len(os.listdir(d))
            got_wado = focal_get("web", "focal_wado", os.path.join(work, f"wado-{i}"))
            if got_focal != 89 or got_getscu != 89 or got_wado != 89:
                sys.exit(f"error: round {i}: focal got {got_focal}, getscu {got_getscu}, WADO-RS {got_wado} of 89 files")
    finally:
        scenario.stop(orthanc)
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"focal pacs get: median {med['focal'] * 1000:.0f} ms; getscu: median {med['getscu'] * 1000:.0f} ms; "
          f"ratio focal/getscu {med['focal'] / med['getscu']:.2f} ({args.rounds} rounds, 89 instances, 7.1 MB); "
          f"focal WADO-RS (DICOMweb): median {med['focal_wado'] * 1000:.0f} ms, "
          f"ratio to getscu {med['focal_wado'] / med['getscu']:.2f}")
    print(json.dumps({"seconds": times, "median": med, "ratio": med["focal"] / med["getscu"]}))


if __name__ == "__main__":
    main()
