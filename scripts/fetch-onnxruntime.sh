#!/usr/bin/env bash
# Fetches the ONNX Runtime 1.31.1 shared library (CPU) from the onnxruntime wheel on PyPI into
# the user cache, where Focal looks for it. The .so does not depend on the Python version.
set -euo pipefail
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
DEST="$CACHE/onnxruntime"
LIB=libonnxruntime.so.1.31.1
[ -f "$DEST/$LIB" ] && exit 0
mkdir -p "$DEST" "$CACHE/wheels"
PY=python3; [ -x "$CACHE/py/bin/python" ] && PY="$CACHE/py/bin/python"
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
  -d "$CACHE/wheels" onnxruntime==1.31.1
"$PY" - "$CACHE"/wheels/onnxruntime-1.31.1-*.whl "$DEST" <<'PYEOF'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/libonnxruntime") and ".so" in base:
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
                out.write(src.read())
PYEOF
echo "ONNX Runtime library in $DEST"
