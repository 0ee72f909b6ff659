#!/usr/bin/env bash
# The labelled-data factory end to end on toy-faces, timed (issue 7's acceptance run):
# the repo's seed annotations + one oracle-annotated round -> build-dataset 1000 -> toy real-test 100
# -> evaluate (cross-validation + downstream 5-fold test). Works in a scratch copy; the repo is not touched.
#   bash benchmarks/toy_factory_end_to_end.sh [WORKDIR]      (default /tmp/dgan-al-factory)
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
repo=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-/tmp/dgan-al-factory}
rm -rf "$W" && mkdir -p "$W"
cp "$repo/dgan-al.toml" "$W/" && cp -r "$repo/annotations" "$W/"
cd "$W"
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }
dgan-al next-round | tail -4;               stamp "next-round (exports a round)"
dgan-al toy oracle --keep 6 | tail -3;      stamp "oracle annotates it (keeps 6 of 12)"
dgan-al next-round | tail -4;               stamp "next-round (imports, trains, exports the next)"
t0=$(date +%s)
dgan-al build-dataset --size 1000 --out data | tail -16;   stamp "build-dataset 1000"
dgan-al toy real-test real --n 100 | tail -2;              stamp "real-test 100"
dgan-al evaluate --dataset data --test real --threads 1 | tail -30; stamp "evaluate"
echo "factory end to end (build + real-test + evaluate): $(( $(date +%s) - t0 )) s"
