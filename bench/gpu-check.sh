#!/usr/bin/env bash
# For a machine with an NVIDIA GPU: installs onnxruntime-gpu 1.31.1 and the CUDA 13 / cuDNN 9
# runtime wheels into a cache folder, points Focal at them, runs `focal analyze --device cuda`
# on the sample study, and prints the provider and the throughput (and CPU for comparison).
# Needs a built focal (cargo build --release) and pip; nothing is installed system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${FOCAL_GPU_DIR:-$HOME/.cache/focal/gpu}
mkdir -p "$G/wheels" "$G/site"
PY=${PYTHON:-python3}
if [ ! -f "$G/.done" ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp -d "$G/wheels" onnxruntime-gpu==1.31.1
  "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
    -d "$G/wheels" nvidia-cuda-runtime-cu13 nvidia-cublas-cu13 nvidia-cudnn-cu13 nvidia-cufft-cu13 nvidia-curand-cu13 nvidia-cuda-nvrtc-cu13 || \
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$G/wheels" nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13 nvidia-cufft nvidia-curand nvidia-cuda-nvrtc
  for w in "$G"/wheels/*.whl; do "$PY" -m zipfile -e "$w" "$G/site"; done
  touch "$G/.done"
fi
export FOCAL_ORT_LIB="$G/site/onnxruntime/capi/libonnxruntime.so.1.31.1"
# The CUDA provider library sits beside libonnxruntime; the CUDA/cuDNN libraries come from the
# nvidia wheels: put every lib folder on the loader path.
LIBS=$(find "$G/site" -type d \( -name lib -o -name lib64 -o -name capi \) | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}"
FOCAL=${FOCAL:-target/release/focal}
[ -x "$FOCAL" ] || cargo build --release -q -p focal
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
for device in cuda cpu; do
  out=$(mktemp -d)
  echo "== --device $device"
  "$FOCAL" analyze assets/sample-study --device "$device" --out "$out" | grep -E "execution provider|slices in"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('provider', s['provider'], 'model-only s', round(s['seconds']['model_only'],3), 'slices/s', round(s['seconds']['slices_per_second'],1))" "$out/summary.json"
done
