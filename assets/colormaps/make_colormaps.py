"""Writes the 256-entry colour lookup tables Focal uses for attention overlays.

Run once with matplotlib installed (python make_colormaps.py); the .lut files are committed and
embedded in the binary. Each line is one entry, "R G B" as 0-255 integers, entry 0 = lowest value.
inferno, viridis (CC0) and turbo (Apache-2.0) are matplotlib's tables; jet is matplotlib's
piecewise-linear definition sampled at 256 points.
"""
import matplotlib

for name in ["inferno", "viridis", "turbo", "jet"]:
    cmap = matplotlib.colormaps[name].resampled(256)
    with open(f"{name}.lut", "w") as f:
        f.write(f"# {name}, matplotlib {matplotlib.__version__}, 256 entries, R G B\n")
        for i in range(256):
            r, g, b, _ = cmap(i)
            f.write(f"{round(r * 255)} {round(g * 255)} {round(b * 255)}\n")
