#!/usr/bin/env bash
# The README's Fashion-MNIST headline with the chip in the training loop (issue 12): today's defaults refit on all
# 60,000 training images (data.validation=0; T_s replays the course t took on validation, as the spoken-digit
# headline does: docs/training.md "Fashion-MNIST: refit on the whole training set"), 65 epochs, every training and
# test product on the emulated chip. About 2.7 h a seed on one core of this workplace's machines.
#
#   bash benchmarks/fmnist_chip_headline.sh [SEED ...]        # default: 0 1 2, side by side, one core each
#   RUNS=DIR bash benchmarks/fmnist_chip_headline.sh 1        # run folders in DIR (default runs/bench)
#   THREADS=2 bash benchmarks/fmnist_chip_headline.sh 1 2     # one seed after another, 2 emulator threads each
#
# With THREADS (RRAMSIM_THREADS, default 1) above 1 the seeds run one after another, so a finished seed's file
# exists sooner (about 1.7-2 min an epoch on two threads of this workplace's machines against 2.3-2.9 side by side).
#
# Each seed is resumable (run the command again after an interruption) and, once finished, is kept as its own
# results file, benchmarks/results/fmnist-cnn-65ep-chip-refit-s<SEED>.json, so seeds run in different sessions (their
# run folders gone) still merge: every per-seed file present is merged into fmnist-cnn-65ep-chip-in-the-loop.json.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-runs/bench}"
results=benchmarks/results
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
mkdir -p "$runs"
threads="${THREADS:-1}"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "THREADS must be a whole number >= 1, got '$threads'" >&2; exit 2; }
export OMP_NUM_THREADS=1 RRAMSIM_THREADS="$threads"
T_EPOCHS="threshold.t_epochs=[1,2,5,8,13,18,21,28,33]"  # the replay of the validation runs (docs/training.md)
seed_run() {  # train (or resume) one seed, then keep it as its own results file; output appended to its log
    local s=$1
    {
        python benchmarks/train_fmnist_cnn.py --epochs 65 --seeds "$s" --recipes rramctl --methods to --forward chip \
            --set data.validation=0 --set "$T_EPOCHS" --out "$runs/fmnist-chip65-refit-s$s" &&
        python benchmarks/train_fmnist_cnn.py --merge "$results/fmnist-cnn-65ep-chip-refit-s$s.json" \
            "$runs/fmnist-chip65-refit-s$s"
    } >> "$runs/fmnist-chip65-refit-s$s.log" 2>&1
}
failed=0
if [ "$threads" = 1 ]; then
    pids=()
    for s in "${seeds[@]}"; do seed_run "$s" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
else
    for s in "${seeds[@]}"; do seed_run "$s" || failed=1; done
fi
[ "$failed" = 0 ] || echo "a seed failed: see its log in $runs; merging the finished ones" >&2
shopt -s nullglob
parts=("$results"/fmnist-cnn-65ep-chip-refit-s[0-9]*.json)
[ ${#parts[@]} -gt 0 ] || { echo "no finished seed to merge" >&2; exit 1; }
python benchmarks/train_fmnist_cnn.py --merge "$results/fmnist-cnn-65ep-chip-in-the-loop.json" "${parts[@]}"
exit "$failed"
