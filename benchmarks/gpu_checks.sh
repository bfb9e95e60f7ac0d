#!/usr/bin/env bash
# The GPU checks of the fast-emulator work, in one call on a machine with a CUDA GPU (docs/emulator.md,
# "On a GPU"): the equality tests with CUDA among the devices, the multiply against its float32 bound on
# the GPU, and the training step with the emulator's array math on the GPU beside the paper's step on the
# same GPU; then a profile of that step.  Run from the repository root (or a copy of it):
#
#     bash benchmarks/gpu_checks.sh OUTDIR [PART...]
#
# With PART names (pytest_cuda, emulator_vmm, train_step, profile_chip_step, profile_evaluate_cuda,
# chip_epoch, chip_epoch_cuda, profile_chip_step_cpu), only those run.
# Each part has its own time limit, so one that hangs does not take the others with it; the exit status
# is the number of parts that failed.  Their limits add up to more than one call of the device tool (600 s):
# split them, e.g. pytest_cuda chip_epoch_cuda profile_evaluate_cuda (530 s), then the rest.
# The CUDA figures include torch.compile's first compile of the fused read-out in each part's warm-up.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR [PART...]}
shift
wanted=" $* "
mkdir -p "$out"
here=$(pwd)
export PYTHONPATH="$here/host:$here/sim_backend${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0
part() {  # part NAME SECONDS COMMAND...: run it, its output to OUTDIR/NAME.log and to the terminal's tail
    local name=$1 limit=$2
    shift 2
    if [ "$wanted" != "  " ] && [[ "$wanted" != *" $name "* ]]; then return; fi
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    tail -n 6 "$out/$name.log"
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}
nvidia-smi -L
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
part pytest_cuda 300 python3 -m pytest -q -p no:cacheprovider -rs tests/test_emulator_fast_paths.py \
    tests/test_training_devices.py
part emulator_vmm 80 python3 benchmarks/emulator_vmm.py --repeats 15 --json --out "$out/emulator_vmm_cuda.json"
part train_step 220 python3 benchmarks/train_step.py --steps 7 --device cuda --json --out "$out/train_step_cuda.json"
part profile_chip_step 60 python3 benchmarks/profile_chip_step.py --device cuda
part profile_evaluate_cuda 80 python3 benchmarks/profile_chip_step.py --device cuda --evaluate
# 65 chip-in-the-loop epochs in wall-clock hours: the emulator's array math on the CPU's threads and on the GPU
part chip_epoch 150 python3 benchmarks/chip_epoch.py --devices cpu --threads 1 8 all --steps 5 --json \
    --out "$out/chip_epoch.json"
part chip_epoch_cuda 120 python3 benchmarks/chip_epoch.py --devices cuda --threads all --steps 5 --json \
    --out "$out/chip_epoch_cuda.json"
part profile_chip_step_cpu 60 python3 benchmarks/profile_chip_step.py --device cpu --threads all
echo "parts failed: $failed"
exit "$failed"
