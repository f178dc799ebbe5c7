#!/usr/bin/env bash
# Fetches the training and test data from package registries into the cache (nothing here is
# committed): the MNI ICBM152 2009a T1 with GM/WM probability maps (inside the nilearn wheel,
# PyPI), a real head CT (Debian's invesalius-examples), Colin27 with the AAL atlas (Debian's
# mricron-data) and a real low-resolution T1 head with a brain mask (Debian's
# insighttoolkit5-examples). Colin27 and the ITK head are held out: never used for training.
set -euo pipefail
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
D="$CACHE/modeldata"
mkdir -p "$D/dl"
PY=${PYTHON:-python3}
[ -f "$D/nilearn/.done" ] || {
  "$PY" -m pip download -q --no-deps -d "$D/dl" nilearn==0.14.1
  "$PY" -m zipfile -e "$D"/dl/nilearn-0.14.1-*.whl "$D/nilearn"
  touch "$D/nilearn/.done"
}
for pkg in mricron-data invesalius-examples insighttoolkit5-examples; do
  dir="$D/${pkg%%-*}"
  [ -f "$dir/.done" ] || {
    (cd "$D/dl" && apt-get download "$pkg")
    dpkg -x "$D"/dl/"${pkg}"_*.deb "$dir"
    touch "$dir/.done"
  }
done
# The whole-head training label map from the head CT (a few minutes on 2 cores).
[ -f "$D/ct-head-labels.npz" ] || (cd "$(dirname "$0")" && "$PY" head_labels.py "$D/ct-head-labels.npz")
echo "model data ready in $D"
