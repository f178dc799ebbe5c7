#!/usr/bin/env python3
"""Archive throughput in one run: `focal batch` on this machine against the same archive as a
Ray job on a real cluster of two nodes (a head and one worker, kept on 127.0.0.1 in a private
network namespace as in the tests), in analysed studies per minute and as a ratio, plus the
measured CPU cost of one study, from which the scaling per added node follows.

    ~/.cache/focal/py/bin/python bench/batch_vs_ray.py [--focal BIN] [--studies 20] [--slices 24]

The archive is the bundled sample study under STUDIES sets of new UIDs (each its middle SLICES
slices) plus one unreadable and one partly corrupt study (app/tests/reference/make_batch_corpus.py).
`focal batch` runs with as many ONNX Runtime threads as this machine has cores; the Ray job
gives each node half the cores and each task one core (`--cpus-per-task 1`), so both use the
whole machine. Both start cold (empty output folders); Ray's start-up is outside the timing,
the job's driver start-up inside it.
"""
import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "cluster"))

from focal_ray import loopback  # noqa: E402


def analysed(table):
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, sum(1 for r in rows if r["status"] == "ok")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "focal")
    ap.add_argument("--focal", default=default)
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--keep", help="keep the archive and outputs in this folder")
    args = ap.parse_args()
    focal = os.path.abspath(args.focal)
    if not os.access(focal, os.X_OK):
        sys.exit(f"error: no focal binary at {focal} (cargo build --release -p focal, or --focal)")
    if loopback.interfaces() != ["lo"]:
        sys.exit(loopback.in_private_network([os.path.abspath(__file__)] + sys.argv[1:]))

    work = args.keep or tempfile.mkdtemp(prefix="focal-batch-bench-")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "archive")
    shutil.rmtree(corpus, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "app/tests/reference/make_batch_corpus.py"),
                    os.path.join(ROOT, "assets/sample-study"), corpus, str(args.studies), str(args.slices)],
                   check=True, stdout=subprocess.DEVNULL)
    csv_path = os.path.join(corpus, "studies.csv")
    cores = os.cpu_count() or 1
    result = {"cores": cores, "studies": args.studies + 2, "slices_per_study": args.slices, "focal": focal}

    out = os.path.join(work, "batch")
    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = children_cpu(), time.time()
    run = subprocess.run([focal, "batch", csv_path, "--out", out, "--device", "cpu", "--threads", str(cores)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.time() - t0, children_cpu() - cpu0
    if run.returncode not in (0, 1):
        sys.exit(f"focal batch failed ({run.returncode}):\n{run.stderr[-3000:]}")
    rows, ok = analysed(os.path.join(out, "results.csv"))
    result["batch"] = {"seconds": round(seconds, 1), "analysed": ok, "per_min": round(ok / seconds * 60, 2),
                       "cpu_seconds_per_study": round(cpu / max(ok, 1), 2)}

    nodes = 2
    per_node = max(1, cores // nodes)
    tmp = os.path.join(work, "ray-tmp")
    os.makedirs(tmp, exist_ok=True)
    out = os.path.join(work, "ray")
    shutil.rmtree(out, ignore_errors=True)
    with loopback.LoopbackCluster(tmp, workers=nodes - 1, cpus=per_node):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "cluster"))
        t0 = time.time()
        run = subprocess.run([sys.executable, "-m", "focal_ray", csv_path, "--out", out, "--focal", focal,
                              "--address", "127.0.0.1:6390", "--device", "cpu", "--cpus-per-task", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        seconds = time.time() - t0
        if run.returncode not in (0, 1):
            sys.exit(f"ray job failed ({run.returncode}):\n{run.stderr[-3000:]}")
        ray_rows, ray_ok = analysed(os.path.join(out, "results.csv"))
        t0 = time.time()
        again = subprocess.run([sys.executable, "-m", "focal_ray", csv_path, "--out", out, "--focal", focal,
                                "--address", "127.0.0.1:6390", "--device", "cpu", "--cpus-per-task", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        second = time.time() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    result["ray"] = {"nodes": nodes, "cpus_per_node": per_node, "seconds": round(seconds, 1), "analysed": ray_ok,
                     "per_min": round(ray_ok / seconds * 60, 2), "second_run_seconds": round(second, 1),
                     "second_run": again.stdout.strip().splitlines()[-1] if again.stdout.strip() else again.stderr[-300:]}
    same = [r["status"] for r in rows] == [r["status"] for r in ray_rows]
    result["same_statuses"] = same
    result["ratio_ray_over_batch"] = round(result["ray"]["per_min"] / result["batch"]["per_min"], 2)
    # On paper: a task costs about cpu_seconds_per_study CPU-seconds, so each added node of C
    # cores adds about C / cost studies per second while shared storage keeps up.
    cost = result["batch"]["cpu_seconds_per_study"]
    result["expected_per_added_node_per_min"] = {f"{c} cores": round(c / cost * 60, 1) for c in (2, 16, 64)}

    print(f"focal batch : {result['batch']['analysed']} studies in {result['batch']['seconds']} s = "
          f"{result['batch']['per_min']} studies/min ({cost} CPU-s per study)")
    print(f"ray, {nodes} nodes: {ray_ok} studies in {result['ray']['seconds']} s = {result['ray']['per_min']} studies/min"
          f"; second run {result['ray']['second_run_seconds']} s")
    print(f"ratio ray / batch: {result['ratio_ray_over_batch']}  (same statuses: {same})")
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
