#!/usr/bin/env python3
"""The Ray job's test scenario on a real cluster kept on loopback (app/tests/ray_cluster.rs
runs it and checks what it reports against `focal batch`'s own table):

1. start a head node and one worker node (1 CPU each) inside a private network namespace;
2. run the job over the corpus; partway through, SIGKILL one Ray worker process that is running
   a study for 1 s (its `focal batch` child dies with it), so Ray has to retry that task;
3. keep that table, note every listening socket, and run the job again (it should do no work);
4. stop the cluster, and print a JSON report on the last line of stdout.

usage: ray_scenario.py FOCAL CORPUS_CSV OUT_DIR   (re-runs itself under `unshare -rn`)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from focal_ray import loopback  # noqa: E402


def job(focal, corpus, out, kill, model=None):
    """Runs `python -m focal_ray`; with kill, SIGKILLs one busy task worker once 1 s into its study."""
    cmd = [sys.executable, "-m", "focal_ray", corpus, "--out", out, "--focal", focal,
           "--address", "127.0.0.1:6390", "--device", "cpu", "--max-retries", "3"]
    if model:
        cmd += ["--model", model]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = []
    if kill:
        def killer():
            seen = {}
            while proc.poll() is None and not killed:
                now = time.time()
                for pid in loopback.task_workers():
                    seen.setdefault(pid, now)
                    if now - seen[pid] > 1.0 and not killed:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                time.sleep(0.2)
        t = threading.Thread(target=killer, daemon=True)
        t.start()
    stdout, stderr = proc.communicate()
    return {"code": proc.returncode, "seconds": round(time.time() - started, 2), "stdout": stdout,
            "stderr": stderr[-4000:], "killed": killed}


def main():
    focal, corpus, out = (os.path.abspath(a) for a in sys.argv[1:4])
    model = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else None  # a manifest for focal batch
    if loopback.interfaces() != ["lo"]:
        sys.exit(loopback.in_private_network([os.path.abspath(__file__)] + sys.argv[1:]))
    report = {}
    tmp = os.path.join(out, "ray-tmp")
    os.makedirs(tmp, exist_ok=True)
    with loopback.LoopbackCluster(tmp, workers=1, cpus=1):
        report["listening"] = loopback.listening_addresses()
        report["first"] = job(focal, corpus, os.path.join(out, "job"), kill=True, model=model)
        if os.path.isfile(os.path.join(out, "job", "results.csv")):
            shutil.copy(os.path.join(out, "job", "results.csv"), os.path.join(out, "first.csv"))
        report["listening"] += loopback.listening_addresses()
        report["second"] = job(focal, corpus, os.path.join(out, "job"), kill=False, model=model)
    report["after_stop"] = loopback.listening_addresses()
    report["non_loopback"] = sorted({a for a in report["listening"] if not loopback.is_loopback(a)})
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
