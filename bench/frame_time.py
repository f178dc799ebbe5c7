#!/usr/bin/env python3
"""Frame time of the real window under Xvfb + Mesa lavapipe: slice change -> new frame with the
model's overlays (labels and attention), for the 1x1, 1x3 and 2x2 layouts on the 324-slice
512 x 512 CT size class, against the plain offscreen render of the same pictures through the
same pipelines (no window, no UI) as the floor. Not a test: numbers on a shared machine vary.

The window runs `focal view CT --layout L --bench-frames N --bench-out F`: once the series and
its saved analysis have loaded, every frame moves to the next picture (1x1: the next acquired
slice; 1x3 and 2x2: the axial plane one voxel step, as the wheel over that view does: it is
resampled on the GPU, the other views redraw their reference lines), with vsync off; the
interval between frames is recorded, then as many frames with nothing changed (what the window
costs by itself: egui, drawing every view, presenting through X). The analysis is made once by
`focal analyze` and kept with the series in ~/.cache/focal/bench (the window restores it).

    ~/.cache/focal/py/bin/python bench/frame_time.py [--focal BIN] [--frames 200]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_vs_pydicom import make_series, release_focal  # noqa: E402  (the same 324-slice CT)


def series_uid(folder):
    import pydicom
    first = sorted(os.listdir(folder))[0]
    return str(pydicom.dcmread(os.path.join(folder, first), stop_before_pixels=True).SeriesInstanceUID)


def free_display():
    for n in range(120, 400):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    sys.exit("no free X display")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--focal", default=None, help="focal binary (default: build --release)")
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/focal/corpus/wheels"))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--layouts", default="1x1,1x3,2x2")
    args = ap.parse_args()
    cache = os.path.expanduser("~/.cache/focal/bench")
    folder = os.path.join(cache, "ct324")
    make_series(folder, args.corpus)
    focal = release_focal(args.focal)

    # The window keeps analyses under FOCAL_DATA_DIR, one folder per series named by a hash of its UID.
    data = os.path.join(cache, "frames-data")
    saved = os.path.join(data, hashlib.sha256(series_uid(folder).encode()).hexdigest()[:16])
    if not os.path.exists(os.path.join(saved, "summary.json")):
        print("analysing the CT once (kept for later runs)...", flush=True)
        t = time.time()
        subprocess.run([focal, "analyze", folder, "--out", saved], check=True, stdout=subprocess.DEVNULL)
        print(f"  {time.time() - t:.0f} s", flush=True)

    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{display}"):
                break
            time.sleep(0.1)
        results = []
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, DISPLAY=f":{display}", HOME=home, FOCAL_DATA_DIR=data,
                       XDG_CONFIG_HOME=os.path.join(home, "config"), WAYLAND_DISPLAY="")
            for layout in args.layouts.split(","):
                out = os.path.join(home, f"frames-{layout}.json")
                subprocess.run([focal, "view", folder, "--layout", layout, "--bench-frames", str(args.frames),
                                "--bench-out", out], env=env, check=True, timeout=900,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(out) as f:
                    r = json.load(f)
                results.append(r)
                w, o, u = r["window_frame"], r["offscreen_floor"], r["window_ui_cpu"]
                print(f"{r['layout']:4s} window p50 {w['p50_ms']:6.1f} ms  p95 {w['p95_ms']:6.1f} ms "
                      f"(UI {u['p50_ms']:.1f} ms; unchanged picture p50 {r['window_still']['p50_ms']:.1f}) | "
                      f"offscreen floor p50 {o['p50_ms']:6.1f} ms  p95 {o['p95_ms']:6.1f} ms | "
                      f"ratio p50 {w['p50_ms'] / o['p50_ms']:.2f}  overlays {r['overlays']}", flush=True)
                c, s = r["views_changing"], r["views_still"]
                print(f"     views drawn / copied / drawn directly: changing frames {c['drawn']} / {c['copied']} / "
                      f"{c['direct']}, unchanged frames {s['drawn']} / {s['copied']} / {s['direct']}", flush=True)
        print(json.dumps({"adapter": results[0]["adapter"] if results else None,
                          "volume": results[0]["volume"] if results else None,
                          "frames": args.frames,
                          "layouts": {r["layout"]: {"window_p50_ms": round(r["window_frame"]["p50_ms"], 1),
                                                    "window_p95_ms": round(r["window_frame"]["p95_ms"], 1),
                                                    "floor_p50_ms": round(r["offscreen_floor"]["p50_ms"], 1),
                                                    "floor_p95_ms": round(r["offscreen_floor"]["p95_ms"], 1)}
                                      for r in results}}))
    finally:
        xvfb.terminate()
        xvfb.wait()


if __name__ == "__main__":
    main()
