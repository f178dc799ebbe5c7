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
  case "$target" in
    dicomdir)
      find "$files" -iname 'DICOMDIR*' -type f | while read -r f; do
        cp "$f" "corpus/$target/$(echo "$f" | sha256sum | cut -c1-8)-$(basename "$f")"
      done ;;
    manifest)
      cp ../models/brain-tissue.json "corpus/$target/shipped.json"
      cp ../models/candidates/tissue-em.json "corpus/$target/candidate.json" ;;
    dicomweb_answers)
      # A QIDO-RS answer and a two-part WADO-RS answer (boundary on the first line).
      printf '[{"0020000D":{"vr":"UI","Value":["1.2.3"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^J"}]},"00080061":{"vr":"CS","Value":["MR","CT"]}}]' \
        > "corpus/$target/qido.json"
      printf 'b1\n--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nXY\r\n--b1--\r\n' \
        > "corpus/$target/multipart" ;;
    pdv_reassembly)
      # A C-ECHO-RSP-sized command in two fragments: [flags, length LE, bytes] records.
      printf '\x00\x04\x00\x02\x00\x00\x00\x02\x04\x00\x04\x00\x00\x00' > "corpus/$target/two-fragments" ;;
    *)
      # Files of the same name live in several folders: each copy is named by its path's hash.
      find "$files/pydicom/data/test_files" -type f -size -256k | while read -r f; do
        cp "$f" "corpus/$target/$(echo "$f" | sha256sum | cut -c1-8)-$(basename "$f")"
      done ;;
  esac
fi
# ASan's default quarantine (256 MiB) grows the fuzzer's memory over a long run until its
# RSS limit reads it as a leak; a small one keeps the limit meaningful.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
# The build is kept in the cache, apart from the app's (other flags), so that a fresh clone
# does not build it again.
RUSTC_BOOTSTRAP=1 cargo fuzz run -O --target-dir "${FOCAL_FUZZ_TARGET:-$HOME/.cache/focal/fuzz-target}" \
  "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
