#!/usr/bin/env bash
# The README's Fashion-MNIST headline with the chip in the training loop (issue 12): today's defaults, 65 epochs,
# seeds 0-2 side by side (one core each, about 2-2.7 h on this workplace's cores), every training, validation and
# test product on the emulated chip; resumable (run it again after an interruption), then merged into one file.
#
#   bash benchmarks/fmnist_chip_headline.sh [OUT_DIR]      # default runs/bench; results in benchmarks/results/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/bench}"
mkdir -p "$out"
export OMP_NUM_THREADS=1 RRAMSIM_THREADS=1
for s in 0 1 2; do
    python benchmarks/train_fmnist_cnn.py --epochs 65 --seeds "$s" --recipes rramctl --methods to --forward chip \
        --out "$out/fmnist-chip65-s$s" > "$out/fmnist-chip65-s$s.log" 2>&1 &
done
wait
python benchmarks/train_fmnist_cnn.py --merge benchmarks/results/fmnist-cnn-65ep-chip-in-the-loop.json \
    "$out/fmnist-chip65-s0" "$out/fmnist-chip65-s1" "$out/fmnist-chip65-s2"
