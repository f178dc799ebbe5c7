#!/usr/bin/env bash
# Runs Focal's whole test suite against real data.
# 1. fetches the pydicom 3.0.2 and pydicom-data 1.0.0 wheels (real DICOM files) into the cache;
# 2. has pydicom compute the reference values Focal must reproduce (never typed by hand);
# 3. checks the committed model against its manifest and golden outputs;
# 4. runs cargo test;
# 5. runs every fuzz target for FOCAL_FUZZ_SECONDS (40) on the real corpus.
# Expects scripts/setup.sh to have run (the README's command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
PY="$CACHE/py/bin/python"
export FOCAL_CORPUS="$CACHE/corpus"

if [ ! -f "$FOCAL_CORPUS/.unpacked" ]; then
  echo "test: fetching the DICOM test corpus (pydicom wheels) into $FOCAL_CORPUS"
  mkdir -p "$CACHE/wheels" "$FOCAL_CORPUS"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$CACHE/wheels" pydicom==3.0.2 pydicom-data==1.0.0
  rm -rf "$FOCAL_CORPUS/wheels"
  for w in "$CACHE"/wheels/pydicom-3.0.2-*.whl "$CACHE"/wheels/pydicom_data-1.0.0-*.whl; do
    "$PY" -m zipfile -e "$w" "$FOCAL_CORPUS/wheels"
  done
  touch "$FOCAL_CORPUS/.unpacked"
fi

REF_SCRIPT=app/tests/reference/pydicom_reference.py
REF_STAMP="$(sha256sum "$REF_SCRIPT" | cut -c1-16)"
if [ "$(cat "$FOCAL_CORPUS/ref/.stamp" 2>/dev/null)" != "$REF_STAMP" ]; then
  echo "test: computing pydicom reference values"
  rm -rf "$FOCAL_CORPUS/ref"
  "$PY" "$REF_SCRIPT" "$FOCAL_CORPUS/wheels" "$FOCAL_CORPUS/ref" 2>/dev/null
  echo "$REF_STAMP" > "$FOCAL_CORPUS/ref/.stamp"
fi

# Colin27's brain mask (Debian's mricron-data): the reference the sample study's labels are
# checked against (the sample is Colin27's whole head).
MRICRON="$CACHE/mricron"
if [ ! -f "$MRICRON/.done" ]; then
  echo "test: fetching Colin27's brain mask (Debian mricron-data) into $MRICRON"
  mkdir -p "$MRICRON/dl"
  (cd "$MRICRON/dl" && apt-get download mricron-data >/dev/null 2>&1 || { apt-get update -qq && apt-get download mricron-data; })
  dpkg -x "$MRICRON"/dl/mricron-data_*.deb "$MRICRON/root"
  touch "$MRICRON/.done"
fi
export FOCAL_CH2BET="$MRICRON/root/usr/share/mricron/templates/ch2bet.nii.gz"

# The classical tissue reference of the sample (N4, then k-means, Atropos and dipy's HMRF inside
# ch2bet; their per-voxel majority), computed here from the sample and the mask, never typed.
TISSUE_SCRIPT=models/training/tissue_reference.py
TISSUE_STAMP="$(cat "$TISSUE_SCRIPT" assets/sample-study/* | sha256sum | cut -c1-16)"
export FOCAL_TISSUE_REF="$CACHE/tissue-ref/sample.npz"
if [ "$(cat "$CACHE/tissue-ref/.stamp" 2>/dev/null)" != "$TISSUE_STAMP" ]; then
  echo "test: computing the sample's classical tissue reference (k-means, Atropos, HMRF)"
  mkdir -p "$CACHE/tissue-ref"
  "$CACHE/py-tissue/bin/python" "$TISSUE_SCRIPT" reference assets/sample-study "$FOCAL_CH2BET" "$FOCAL_TISSUE_REF" \
    --atlas "$MRICRON/root/usr/share/mricron/templates/aal.nii.gz"
  echo "$TISSUE_STAMP" > "$CACHE/tissue-ref/.stamp"
fi

# The committed model: sha256 against its manifest, golden outputs through Python onnxruntime.
"$PY" models/training/check_model.py models/brain-tissue.json "$CACHE/golden-f32"
export FOCAL_GOLDEN_F32="$CACHE/golden-f32"
# Python with pydicom and highdicom, for the export checks.
export FOCAL_PYTHON="$PY"

# The ONNX Runtime library Focal loads (from the PyPI wheel, into the cache).
scripts/fetch-onnxruntime.sh
export FOCAL_ORT_LIB="$CACHE/onnxruntime/libonnxruntime.so.1.31.1"

# GPU tests open Mesa's Vulkan and winit, which want a runtime folder; give them a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  chmod 700 "$XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
fi

cargo test --workspace --locked -- --nocapture

# Fuzzing: each target for a bounded time, seeded with the real corpus (fuzz/run.sh). A crash,
# leak or memory blow-up fails the run and leaves its input in fuzz/artifacts/TARGET: reduce
# it, add it to app/tests/fuzz-regressions/ (or a unit test) and fix it.
FUZZ_SECONDS=${FOCAL_FUZZ_SECONDS:-40}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  mkdir -p "$CACHE/fuzz-logs"
  for target in scan_header decode_pixels dicomdir pdv_reassembly dicomweb_answers manifest; do
    log="$CACHE/fuzz-logs/$target.log"
    if ! fuzz/run.sh "$target" "$FUZZ_SECONDS" > "$log" 2>&1; then
      tail -40 "$log"
      echo "test: fuzz target $target failed (log $log; input in fuzz/artifacts/$target)" >&2
      exit 1
    fi
    echo "fuzz $target: $(grep -E '^Done' "$log" | tail -1)"
  done
fi
