#!/usr/bin/env bash
# Makes the brain extractor's models (deepbet 1.0.2, MIT licence, Fisch et al. 2024) from the
# deepbet wheel on PyPI: its two TorchScript networks are converted to ONNX by
# scripts/torchscript_onnx.py (no PyTorch needed) into models/deepbet/, beside the manifest
# that names them. The wheel and the converted files are checked against the digests below,
# so a changed download or a converter that writes other bytes stops here, not in Focal.
set -euo pipefail
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
HERE=$(cd "$(dirname "$0")" && pwd)
DEST="$HERE/../models/deepbet"
WHEEL="$CACHE/wheels/deepbet-1.0.2-py3-none-any.whl"
WHEEL_SHA=1999e2ea00ec48f6233b95b96f3901a962d3f70431c63aeb985e8a49a198473c
declare -A MODELS=(
  [locate]="bbox_model.pt 9dc00fe467807e55e1838436ce4754845844657b37af75919cddbcb4891725df"
  [segment]="model.pt f29f2e6a2a5651e7abf826a010519f3cbccd633e3a6b511df8a72b1d90fe6aa6"
)
ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
done_already=1
for name in "${!MODELS[@]}"; do
  read -r _ sha <<<"${MODELS[$name]}"
  ok "$DEST/$name.onnx" "$sha" || done_already=0
done
[ "$done_already" = 1 ] && exit 0

PY="$CACHE/py/bin/python"
mkdir -p "$CACHE/wheels" "$DEST"
if ! ok "$WHEEL" "$WHEEL_SHA"; then
  "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$CACHE/wheels" deepbet==1.0.2
  ok "$WHEEL" "$WHEEL_SHA" || { echo "fetch-deepbet: $WHEEL does not have sha256 $WHEEL_SHA" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m zipfile -e "$WHEEL" "$work"
cp "$work/deepbet-1.0.2.dist-info/LICENSE" "$DEST/LICENSE"
for name in "${!MODELS[@]}"; do
  read -r archive sha <<<"${MODELS[$name]}"
  "$PY" "$HERE/torchscript_onnx.py" "$work/data/models/$archive" "$DEST/$name.onnx" --channel 1
  ok "$DEST/$name.onnx" "$sha" || {
    echo "fetch-deepbet: $DEST/$name.onnx does not have sha256 $sha (another onnx package version?)" >&2
    exit 1
  }
done
echo "deepbet's brain extractor in $DEST"
