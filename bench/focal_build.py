"""The focal binary a benchmark times: the one given (--focal), else a release build of this
checkout's (shared by the benchmarks in this folder)."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def release_focal(given):
    """The focal binary given, else a release build of this checkout's."""
    if given:
        return given
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "focal"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "focal")
