#!/usr/bin/env bash
# The labelled-data factory on a pool of photos, end to end and timed: the diffusion path's counterpart of
# toy_factory_end_to_end.sh. A pool of toy-faces renders (`toy renders`) read by an ADM UNet -> round 000
# (the photo nearest the mean feature) and two rounds of 6, annotated by the toy oracle (13 annotations, as the
# GAN path's run) -> build-dataset over the pool -> toy real-test 100 -> evaluate (cross-validation +
# downstream 5-fold test). Works in a scratch folder; the repository is not touched.
#   bash benchmarks/toy_photo_factory.sh ADM_PT [WORKDIR]
# Settings by environment: POOL (photos, 1000), SIZE (the UNet's input, 0 = its own), LABEL (label size, 0 = SIZE),
# STEPS, BLOCKS (a,b,c).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ckpt=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
W=${2:-$(mktemp -d)}
POOL=${POOL:-1000}; SIZE=${SIZE:-0}; LABEL=${LABEL:-0}; STEPS=${STEPS:-50,150,250}; BLOCKS=${BLOCKS:-5,6,7,8,12}
rm -rf "$W" && mkdir -p "$W" && cd "$W"
classes=$(python -c "from dgan_al.generators.toy_faces.classes import CLASSES; print(','.join(CLASSES))")
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }
dgan-al toy renders photos --n "$POOL" --seed 8000 | tail -2;   stamp "toy renders $POOL"
dgan-al init ws --generator "$ckpt" --images photos --photo-size "$SIZE" --label-size "$LABEL" --steps "$STEPS" --blocks "$BLOCKS" \
  --classes "$classes" | tail -3;                                 stamp "init (features of every photo: the first image)"
cd ws
dgan-al toy oracle | tail -2;                                     stamp "oracle annotates round 000"
for r in 1 2; do
  dgan-al next-round --device cpu | tail -3;                      stamp "next-round"
  dgan-al toy oracle --keep 6 | tail -2;                          stamp "oracle annotates 6"
done
dgan-al next-round --device cpu | tail -3;                        stamp "next-round (13 annotations)"
t0=$(date +%s)
dgan-al build-dataset --out ../data --device cpu | tail -16;      stamp "build-dataset (the pool's photos)"
dgan-al toy real-test ../real --n 100 | tail -2;                  stamp "real-test 100"
dgan-al evaluate --dataset ../data --test ../real --threads 1 | tail -30; stamp "evaluate"
echo "factory end to end (build + real-test + evaluate): $(( $(date +%s) - t0 )) s"
