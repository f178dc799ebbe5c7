"""The Ray job: one task per study, each running `focal batch` on that study into its own shard
folder, and one results table merged in input order as tasks finish.

A shard is an ordinary `focal batch` output folder, so everything `focal batch` promises holds
per task: a series' analysis folder appears whole or not at all, and a shard that is run again
only analyses what changed or failed. That is what makes Ray's retries safe: a task whose
worker was killed is run again from the start, and its `focal batch` finishes only what the
killed one left unfinished.
"""
import csv
import ctypes
import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import ray

RESULTS = "results.csv"
SHARDS = "shards"
# Exit codes of `focal batch` that still mean "here is a table": 0 all fine, 1 some error rows.
TABLE_CODES = (0, 1)
# The ONNX Runtime library and the cache are found through these; a task's environment is the
# node's (ray start), so the driver forwards its own.
FORWARDED_ENV = ("FOCAL_ORT_LIB", "FOCAL_CACHE", "FOCAL_CONFIG_DIR")


class FocalStopped(Exception):
    """`focal batch` was killed or interrupted before it wrote its table: worth another try."""


class FocalFailed(Exception):
    """`focal batch` refused to run (a wrong model, CUDA asked for and missing): not retried."""


def expand_inputs(paths):
    """The inputs as `focal batch` reads them: a `.csv` lists study paths in its `path` column,
    relative to the CSV; anything else is one study folder, file or DICOMDIR.

    Returns (shown, absolute) pairs: `shown` is the path as `focal batch` prints it in its
    `input` column, `absolute` is what a task on another node opens."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            raise SystemExit(f"error: {p} does not exist")
        if not (os.path.isfile(p) and p.lower().endswith(".csv")):
            out.append((p, os.path.abspath(p)))
            continue
        rows = [r for r in csv.reader(io.StringIO(list_text(p)), delimiter=delimiter(list_text(p)))
                if any(f.strip() for f in r)]
        if not rows:
            raise SystemExit(f"error: {p}: empty")
        header = [h.strip().lower() for h in rows[0]]
        if "path" not in header:
            raise SystemExit(f"error: {p}: no `path` column in the header")
        col = header.index("path")
        base = os.path.dirname(p)
        for i, r in enumerate(rows[1:]):
            v = r[col].strip() if col < len(r) else ""
            if not v:
                raise SystemExit(f"error: {p} row {i + 2}: no path")
            shown = os.path.join(base, v) if base else v
            out.append((shown, os.path.abspath(shown)))
    return out


def list_text(path):
    """A list as a spreadsheet saves it, read as `focal batch` reads it: UTF-8 with or without a
    byte-order mark, else the Windows code page (Latin-1 for these bytes)."""
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def delimiter(text):
    """The separator the header line uses most outside quotes: `,`, `;` or tab (ties: `,`)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts, quoted = {",": 0, ";": 0, "\t": 0}, False
    for c in header:
        if c == '"':
            quoted = not quoted
        elif c in counts and not quoted:
            counts[c] += 1
    return max(counts, key=lambda c: (counts[c], -list(counts).index(c)))


def shard_name(absolute):
    """A stable folder name for one input's shard."""
    return hashlib.sha256(absolute.encode()).hexdigest()[:16]


def _die_with_parent():
    # If Ray kills the worker running this task, `focal batch` goes with it rather than racing
    # the retried task over the same shard.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def read_table(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@ray.remote
def run_input(focal, absolute, shard, batch_args, threads):
    """One study: `focal batch` into its shard; returns that shard's table and exit code."""
    os.makedirs(shard, exist_ok=True)
    cmd = [focal, "batch", absolute, "--out", shard, "--threads", str(threads)] + list(batch_args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=_die_with_parent)
    tail = proc.stderr.strip().splitlines()[-5:]
    if proc.returncode in TABLE_CODES and os.path.isfile(os.path.join(shard, RESULTS)):
        header, rows = read_table(os.path.join(shard, RESULTS))
        return {"code": proc.returncode, "header": header, "rows": rows,
                "node": ray.get_runtime_context().get_node_id()}
    if proc.returncode < 0 or proc.returncode == 130:
        raise FocalStopped(f"focal batch stopped ({proc.returncode}) on {absolute}: {' | '.join(tail)}")
    raise FocalFailed(f"focal batch failed ({proc.returncode}) on {absolute}: {' | '.join(tail)}")


def write_atomic(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Table:
    """The merged table: each input's rows in input order, the folder column pointing into its
    shard, the `input` column as given, and a series that two inputs both hold listed once (as
    `focal batch` lists a repeat: skipped)."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.header = None
        self.parts = [None] * len(inputs)

    def add(self, index, header, rows):
        if self.header is None:
            self.header = header
        elif header != self.header:
            raise SystemExit(f"error: shard tables disagree on columns:\n{self.header}\n{header}")
        col = {h: i for i, h in enumerate(header)}
        shard = f"{SHARDS}/{shard_name(self.inputs[index][1])}"
        fixed = []
        for r in rows:
            r = list(r)
            r[col["input"]] = self.inputs[index][0]
            if r[col["folder"]]:
                r[col["folder"]] = f"{shard}/{r[col['folder']]}"
            fixed.append(r)
        self.parts[index] = fixed

    def rows(self):
        col = {h: i for i, h in enumerate(self.header or [])}
        seen, out = set(), []
        keep = {"input", "study", "series", "modality", "slices", "provider", "model_sha256"}
        for part in self.parts:
            for r in part or []:
                key = (r[col["study"]], r[col["series"]])
                if r[col["status"]] in ("ok", "cached") and key in seen:
                    r = ["" if h not in keep else r[i] for i, h in enumerate(self.header)]
                    r[col["status"]] = "skipped"
                    r[col["error"]] = "the same series again (already in this batch)"
                    r[col["seconds_load"]] = r[col["seconds_analysis"]] = "0.000"
                elif r[col["study"]]:
                    seen.add(key)
                out.append(r)
        return out

    def text(self):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.header)
        w.writerows(self.rows())
        return buf.getvalue()


def run(args):
    """Runs the job on the cluster at args.address; returns the exit code (0, 1: error rows)."""
    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise SystemExit("error: no inputs")
    for _, absolute in inputs:
        real = os.path.realpath(args.out)
        if real == os.path.realpath(absolute) or real.startswith(os.path.realpath(absolute) + os.sep):
            raise SystemExit(f"error: --out {args.out} is inside the study {absolute}; results never go into a source folder")
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, SHARDS), exist_ok=True)
    focal = os.path.abspath(args.focal)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    # The tasks' code travels with the job (Ray ships this package to every node), so the
    # nodes need Ray and the focal binary, not this package installed.
    runtime_env = {"py_modules": [os.path.dirname(os.path.abspath(__file__))], "env_vars": env}
    ray.init(address=args.address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = args.gpus_per_task
    if gpus is None:
        gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    batch_args = ["--min-slices", str(args.min_slices), "--device", args.device]
    if args.keep_uids:
        batch_args.append("--keep-uids")
    if args.pseudonym_key:
        batch_args += ["--pseudonym-key", os.path.abspath(args.pseudonym_key)]
    if args.model:
        batch_args += ["--model", os.path.abspath(args.model)]
    task = run_input.options(num_cpus=args.cpus_per_task, num_gpus=gpus,
                             memory=int(args.task_memory_gb * 2**30),
                             max_retries=args.max_retries, retry_exceptions=[FocalStopped])
    per_task = f"{args.cpus_per_task:g} CPU" + (f", {gpus:g} GPU" if gpus else "")
    print(f"ray: {len(inputs)} studies on {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs "
          f"({per_task} per task, up to {args.max_retries} retries)", file=sys.stderr, flush=True)
    started = time.time()
    pending = {}
    for i, (_, absolute) in enumerate(inputs):
        ref = task.remote(focal, absolute, os.path.join(out, SHARDS, shard_name(absolute)), batch_args,
                          max(1, int(args.cpus_per_task)))
        pending[ref] = i
    table = Table(inputs)
    failed = []
    done = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                done += 1
                try:
                    res = ray.get(ref)
                except Exception as e:  # a task out of retries, or focal refusing to run
                    failed.append(f"{inputs[i][0]}: {e}")
                    print(f"[{done}/{len(inputs)}] {inputs[i][0]}: task failed: {str(e).splitlines()[-1]}",
                          file=sys.stderr, flush=True)
                    continue
                table.add(i, res["header"], res["rows"])
                write_atomic(os.path.join(out, RESULTS), table.text())
                statuses = [r[res["header"].index("status")] for r in res["rows"]]
                eta = (time.time() - started) / done * (len(inputs) - done)
                print(f"[{done}/{len(inputs)}] {inputs[i][0]}: {', '.join(statuses)}  ETA {eta:.0f} s",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        print("interrupted: finished studies are in the table; run again to resume", file=sys.stderr)
        return 130
    if table.header is None:
        raise SystemExit("error: no task finished:\n" + "\n".join(failed))
    write_atomic(os.path.join(out, RESULTS), table.text())
    rows = table.rows()
    status = table.header.index("status")
    count = lambda s: sum(1 for r in rows if r[status] == s)
    minutes = (time.time() - started) / 60
    print(f"{len(rows)} series: {count('ok')} analysed, {count('cached')} cached, {count('skipped')} skipped, "
          f"{count('error')} failed, {len(failed)} task(s) failed in {minutes * 60:.1f} s "
          f"({count('ok') / max(minutes, 1e-9):.1f} analysed/min); table in {os.path.join(out, RESULTS)}")
    for f in failed:
        print(f"task failed: {f}", file=sys.stderr)
    return 1 if failed or count("error") else 0
