import argparse
import sys

from .job import run


def main():
    ap = argparse.ArgumentParser(prog="python -m focal_ray", description=__doc__)
    ap.add_argument("inputs", nargs="+", help="study folders, files, DICOMDIRs, or CSVs with a `path` column (as focal batch)")
    ap.add_argument("--out", required=True, help="output folder on storage every node mounts: results.csv and shards/")
    ap.add_argument("--focal", required=True, help="the focal binary (the same path on every node)")
    ap.add_argument("--address", default="auto", help="the Ray cluster (default: auto, the one this node belongs to)")
    ap.add_argument("--cpus-per-task", type=float, default=1, help="CPUs a task reserves; also focal's thread count")
    ap.add_argument("--gpus-per-task", type=float, default=None, help="GPUs a task reserves (default: 1 if the cluster has GPUs, else 0)")
    ap.add_argument("--task-memory-gb", type=float, default=3.0, help="memory a task reserves (one series' volume and one batch)")
    ap.add_argument("--max-retries", type=int, default=3, help="times a task is run again after its worker or node died")
    ap.add_argument("--min-slices", type=int, default=3)
    ap.add_argument("--keep-uids", action="store_true", help="UIDs in the table instead of pseudonyms")
    ap.add_argument("--pseudonym-key", default=None,
                    help="pseudonym key file every node reads (default: each node's own, beside its PACS node list)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--model", default=None, help="model manifest (default: the one bundled with focal)")
    sys.exit(run(ap.parse_args()))


if __name__ == "__main__":
    main()
