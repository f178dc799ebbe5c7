#!/usr/bin/env bash
# Builds Focal's Debian package with dpkg-deb from a built `focal` binary: the program and
# what it loads at run time in /usr/lib/focal (the ONNX Runtime library, the model and its
# manifest, deepbet's brain extractor), /usr/bin/focal linking to it, the desktop entry, icon
# and DICOM file type, the manual page and shell completions (made by the binary itself), and
# the licences.
# usage: app/packaging/linux/build-deb.sh FOCAL_BINARY OUT_DIR
#   (FOCAL_ORT_LIB: the ONNX Runtime library, default ~/.cache/focal/onnxruntime/…)
# prints the .deb's path.
set -euo pipefail
BIN=$(realpath "$1")
OUT=$(realpath -m "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ORT=${FOCAL_ORT_LIB:-$HOME/.cache/focal/onnxruntime/libonnxruntime.so.1.31.1}
for f in "$BIN" "$ORT" "$REPO/models/deepbet/segment.onnx"; do
  [ -f "$f" ] || { echo "build-deb: $f is missing (scripts/setup.sh fetches the runtime and deepbet)" >&2; exit 1; }
done

VERSION=$("$BIN" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
PKG=$ROOT/focal
LIB=$PKG/usr/lib/focal
SHARE=$PKG/usr/share

install -Dm755 "$BIN" "$LIB/focal"
install -Dm644 "$ORT" "$LIB/$(basename "$ORT")"
# The model: what the manifest names, nothing of its training.
for f in brain-tissue.json brain-tissue.onnx brain-extent.onnx deep-gm-atlas.nii MODEL_CARD.md \
  deepbet/locate.onnx deepbet/segment.onnx deepbet/LICENSE; do
  install -Dm644 "$REPO/models/$f" "$LIB/models/$f"
done
mkdir -p "$PKG/usr/bin"
ln -s ../lib/focal/focal "$PKG/usr/bin/focal"

install -Dm644 "$HERE/focal.desktop" "$SHARE/applications/focal.desktop"
install -Dm644 "$HERE/focal.svg" "$SHARE/icons/hicolor/scalable/apps/focal.svg"
install -Dm644 "$HERE/focal-dicom.xml" "$SHARE/mime/packages/focal-dicom.xml"
mkdir -p "$SHARE/man/man1" "$SHARE/bash-completion/completions" "$SHARE/zsh/vendor-completions" \
  "$SHARE/fish/vendor_completions.d"
"$BIN" man | gzip -9n > "$SHARE/man/man1/focal.1.gz"
"$BIN" completions bash > "$SHARE/bash-completion/completions/focal"
"$BIN" completions zsh > "$SHARE/zsh/vendor-completions/_focal"
"$BIN" completions fish > "$SHARE/fish/vendor_completions.d/focal.fish"
DOC=$SHARE/doc/focal
install -Dm644 "$REPO/README.md" "$DOC/README.md"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: focal"
  echo
  echo "Files: *"
  echo "License: MIT or Apache-2.0 (LICENSE-MIT, LICENSE-APACHE)"
  echo
  echo "Files: usr/lib/focal/models/deepbet/*"
  echo "License: MIT (deepbet; usr/lib/focal/models/deepbet/LICENSE)"
  echo
  echo "Files: usr/lib/focal/libonnxruntime*"
  echo "License: MIT (ONNX Runtime, Microsoft)"
} > "$DOC/copyright"
install -Dm644 "$REPO/LICENSE-MIT" "$DOC/LICENSE-MIT"
install -Dm644 "$REPO/LICENSE-APACHE" "$DOC/LICENSE-APACHE"

SIZE=$(du -sk "$PKG" | cut -f1)
mkdir -p "$PKG/DEBIAN"
cat > "$PKG/DEBIAN/control" <<EOF
Package: focal
Version: $VERSION
Architecture: $ARCH
Maintainer: The Focal authors <focal@localhost>
Installed-Size: $SIZE
Depends: libc6, libgcc-s1, libstdc++6, libgtk-3-0, libvulkan1, libxkbcommon-x11-0, mesa-vulkan-drivers | vulkan-icd, fonts-dejavu-core, fonts-droid-fallback
Section: science
Priority: optional
Homepage: https://localhost/focal
Description: DICOM viewer with an attention segmentation model
 Focal opens DICOM studies, runs a brain tissue segmentation model through
 ONNX Runtime, overlays its attention maps and labels on the slices, lets a
 reader review the findings and exports de-identified reports and DICOM
 objects (SEG, Parametric Map, Secondary Capture). For research; not for
 diagnosis.
EOF
# Desktop databases pick up the entry, the icon and the file type when installed.
cat > "$PKG/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  command -v update-mime-database >/dev/null && update-mime-database /usr/share/mime || true
  command -v update-desktop-database >/dev/null && update-desktop-database -q /usr/share/applications || true
fi
EOF
cp "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"
sed -i 's/= configure/= remove/' "$PKG/DEBIAN/postrm"
chmod 755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"

mkdir -p "$OUT"
DEB=$OUT/focal_${VERSION}_${ARCH}.deb
# FOCAL_DEB_COMPRESSION: xz (default, smallest) or gzip (quicker, for tests).
dpkg-deb --root-owner-group -Z"${FOCAL_DEB_COMPRESSION:-xz}" --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
