#!/usr/bin/env bash
# Builds Focal's Debian package with cargo-deb ([package.metadata.deb] in app/Cargo.toml): the
# program and what it loads at run time in /usr/lib/focal (the ONNX Runtime library, the model
# and its manifest, deepbet's brain extractor), /usr/bin/focal linking to it, the desktop entry,
# icon and DICOM file type, the manual page and shell completions, and the licences.
# First it stages what is not in the repository: the runtime library, and the manual page and
# completions the built binary prints.
# usage: app/packaging/linux/build-deb.sh [PROFILE] [OUT_DIR]
#   PROFILE: the cargo profile already built (release, default; dev for the tests' binary)
#   FOCAL_ORT_LIB: the ONNX Runtime library (default ~/.cache/focal/onnxruntime/…)
#   FOCAL_DEB_FAST=1: quicker compression (the tests)
# prints the .deb's path. cargo-deb: `cargo install cargo-deb` (scripts/setup.sh installs it).
set -euo pipefail
PROFILE=${1:-release}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
OUT=$(realpath -m "${2:-$REPO/dist}")
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
BIN=$TARGET/$DIR/focal
ORT=${FOCAL_ORT_LIB:-$HOME/.cache/focal/onnxruntime/libonnxruntime.so.1.31.1}
for f in "$BIN" "$ORT" "$REPO/models/deepbet/segment.onnx"; do
  [ -f "$f" ] || { echo "build-deb: $f is missing (build Focal with --profile $PROFILE; scripts/setup.sh fetches the runtime and deepbet)" >&2; exit 1; }
done
command -v cargo-deb >/dev/null || { echo "build-deb: cargo-deb is missing (cargo install cargo-deb)" >&2; exit 1; }

STAGE=$HERE/staging
rm -rf "$STAGE"
mkdir -p "$STAGE/lib" "$STAGE/completions"
cp "$ORT" "$STAGE/lib/"
ln -s ../lib/focal/focal "$STAGE/focal-link"
"$BIN" man | gzip -9n > "$STAGE/focal.1.gz"
"$BIN" completions bash > "$STAGE/completions/focal"
"$BIN" completions zsh > "$STAGE/completions/_focal"
"$BIN" completions fish > "$STAGE/completions/focal.fish"

mkdir -p "$OUT"
args=(-p focal --no-build --no-strip --profile "$PROFILE" -o "$OUT")
[ "${FOCAL_DEB_FAST:-}" = 1 ] && args+=(--fast)
cd "$REPO"
cargo deb "${args[@]}" | tail -n 1
