#!/usr/bin/env bash
# The edit–build loop on this machine: seconds for `cargo build -p focal` (debug, the test
# profile) after touching one file of the window (ui) and one of the study layer, for the
# checkout given (default: this one). Run it on the commit before the crates split and on this
# one, with the same CARGO_TARGET_DIR, to compare (Structure issue, README "Layout").
# usage: bench/rebuild_times.sh [REPO_DIR]   (a warm build first, untimed)
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$REPO"
study=app/study/src/series.rs
[ -f "$study" ] || study=app/src/study/series.rs   # before the crates split
ui=app/src/ui/panels/overlays.rs
[ -f "$ui" ] || ui=app/src/ui/overlays.rs           # before the window's three floors
cargo build -q -p focal
for f in "$ui" "$study"; do
  touch "$f"
  t0=$(date +%s.%N)
  cargo build -q -p focal
  t1=$(date +%s.%N)
  printf '%s\t%.1f s\n' "$f" "$(echo "$t1 - $t0" | bc)"
done
