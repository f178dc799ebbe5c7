#!/usr/bin/env bash
# Runs one fuzz target for a time, seeded with the real test corpus (scripts/test.sh fetches it).
#   fuzz/run.sh TARGET SECONDS
# Crashes land in fuzz/artifacts/TARGET; copy each into app/tests/fuzz-regressions/ and fix it.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
seconds=${2:-600}
files=${FOCAL_CORPUS:-$HOME/.cache/focal/corpus}/wheels
mkdir -p "corpus/$target"
if [ -z "$(ls -A "corpus/$target")" ]; then
  if [ "$target" = dicomdir ]; then
    find "$files" -iname 'DICOMDIR*' -type f | while read -r f; do
      cp "$f" "corpus/$target/$(echo "$f" | sha256sum | cut -c1-8)-$(basename "$f")"
    done
  else
    find "$files/pydicom/data/test_files" -type f -size -256k -exec cp -t "corpus/$target" {} +
  fi
fi
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
