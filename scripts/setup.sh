#!/usr/bin/env bash
# Installs what Focal needs to build and test on a fresh Debian machine. Idempotent and quick
# when everything is already there.
#   system: a C/C++ toolchain and cmake (the CharLS JPEG-LS and OpenJPEG codecs build from source);
#           GTK 3 headers (native file dialogs); Xvfb, Mesa's Vulkan/GL software drivers and
#           ImageMagick (the window and GPU tests run headless); dicom3tools, poppler-utils and
#           strace (export validation, privacy checks); Orthanc with its DICOMweb plugin and
#           dcmtk (the PACS tests' server on loopback, and the retrieve benchmark's reference);
#           nginx and openssl (HTTPS in front of the DICOMweb server, with a private CA: Debian's
#           Orthanc 1.10 crashes when it serves HTTPS itself)
#   python: a venv under the cache with pydicom, its codec plugins, onnxruntime, nibabel, onnx and SciPy
#           (reference values in tests, the model's golden-output and brain-mask checks, and the
#           conversion of deepbet's brain extractor to ONNX, scripts/fetch-deepbet.sh; SciPy for deepbet's own post-processing in deepbet_reference.py); a
#           second venv with antspyx (N4, Atropos), dipy (HMRF) and scikit-learn (k-means): the
#           classical tissue classifiers whose consensus the tissue labels are scored against
#           (apart, since antspyx holds numpy below the version the first venv pins)
set -euo pipefail
CACHE=${FOCAL_CACHE:-$HOME/.cache/focal}
mkdir -p "$CACHE"

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v c++ >/dev/null || need_apt+=(g++)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
for pkg in libgtk-3-dev xvfb xauth mesa-vulkan-drivers libvulkan1 libgl1-mesa-dri libxkbcommon-x11-0 imagemagick \
  dicom3tools poppler-utils strace time orthanc orthanc-dicomweb dcmtk nginx-light openssl \
  desktop-file-utils libxml2-utils shared-mime-info groff-base fonts-dejavu-core fonts-droid-fallback weston; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  # Packages must not start services (Debian's orthanc would listen on every interface): the
  # tests start their own Orthanc on 127.0.0.1 and stop it.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  [ -z "$policy" ] || $SUDO rm -f "$policy"
fi
if pgrep -x Orthanc >/dev/null 2>&1; then
  echo "setup: stopping the packaged Orthanc service (Focal's tests run their own on loopback)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO service orthanc stop >/dev/null 2>&1 || $SUDO pkill -x Orthanc || true
fi

# Python tools, pinned, each set in its own venv under the cache; a marker records what was
# installed, so a venv is made again only when its list changes.
venv() {
  local dir="$1" what="$2" reqs="$3"
  if [ "$(cat "$dir/.focal-reqs" 2>/dev/null)" != "$reqs" ]; then
    echo "setup: creating the Python venv for $what in $dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check $reqs
    echo "$reqs" > "$dir/.focal-reqs"
  fi
}
venv "$CACHE/py" "reference checks" "pydicom==3.0.2 numpy==2.4.6 pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-rle==2.2.0 python-gdcm==3.2.6 onnxruntime==1.31.1 highdicom==0.28.2 nibabel==5.4.2 ray==2.60.0 onnx==1.23.2 scipy==1.17.1"
venv "$CACHE/py-tissue" "the classical tissue reference" "antspyx==0.6.3 dipy==1.12.1 scikit-learn==1.9.1 nibabel==5.4.2 pydicom==3.0.2"

# The ONNX Runtime library Focal loads (from the PyPI wheel, into the cache).
"$(dirname "$0")/fetch-onnxruntime.sh"
# The brain extractor's models (deepbet, from its PyPI wheel, converted to ONNX).
"$(dirname "$0")/fetch-deepbet.sh"

# cargo-fuzz, from crates.io: scripts/test.sh runs every fuzz target for a bounded time.
if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
  echo "setup: installing cargo-fuzz 0.13.2"
  cargo install -q cargo-fuzz --locked --version 0.13.2
fi
# cargo-deb, from crates.io: app/packaging/linux/build-deb.sh makes the Debian package with it
# (the tests build one from their own binary and run the model from it).
if ! cargo deb --version 2>/dev/null | grep -q "3.8.0"; then
  echo "setup: installing cargo-deb 3.8.0"
  cargo install -q cargo-deb --locked --version 3.8.0
fi
