#!/usr/bin/env bash
# Fetches the training and test data from package registries into the cache (nothing here is
# committed): the MNI ICBM152 2009a T1 with GM/WM probability maps (inside the nilearn wheel,
# PyPI) and Colin27 with the AAL atlas (Debian's mricron-data). Colin27 is the held-out subject.
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
[ -f "$D/mricron/.done" ] || {
  (cd "$D/dl" && apt-get download mricron-data)
  dpkg -x "$D"/dl/mricron-data_*.deb "$D/mricron"
  touch "$D/mricron/.done"
}
echo "model data ready in $D"
