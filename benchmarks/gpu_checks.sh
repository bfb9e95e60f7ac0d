#!/usr/bin/env bash
# The GPU checks of the fast-emulator work, in one call on a machine with a CUDA GPU (docs/emulator.md,
# "On a GPU"): the equality tests with CUDA among the devices, the multiply against its float32 bound on
# the GPU, and the training step with the emulator's array math on the GPU beside the paper's step on the
# same GPU; then a profile of that step.  Run from the repository root (or a copy of it):
#
#     bash benchmarks/gpu_checks.sh OUTDIR
#
# Each part has its own time limit, so one that hangs does not take the others with it; the exit status
# is the number of parts that failed.  The limits add up to 560 s: one call of the device tool (600 s at most).
# The CUDA figures include torch.compile's first compile of the fused read-out in each part's warm-up.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR}
mkdir -p "$out"
here=$(pwd)
export PYTHONPATH="$here/host:$here/sim_backend${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0
part() {  # part NAME SECONDS COMMAND...: run it, its output to OUTDIR/NAME.log and to the terminal's tail
    local name=$1 limit=$2
    shift 2
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
part pytest_cuda 200 python3 -m pytest -q -p no:cacheprovider -rs tests/test_emulator_fast_paths.py \
    tests/test_training_devices.py
part emulator_vmm 80 python3 benchmarks/emulator_vmm.py --repeats 15 --json --out "$out/emulator_vmm_cuda.json"
part train_step 220 python3 benchmarks/train_step.py --steps 7 --device cuda --json --out "$out/train_step_cuda.json"
part profile_chip_step 60 python3 - <<'EOF'
import cProfile, pstats, tempfile
from pathlib import Path
import numpy as np, torch
from rramctl.training.config import TrainConfig
from rramctl.training.data import load_fmnist
from rramctl.training.runner import Run

torch.set_num_threads(1)
with tempfile.TemporaryDirectory() as tmp:
    run = Run.open(TrainConfig(task="fmnist-cnn", forward="chip", backend="emulator", device="cuda"),
                   Path(tmp) / "r", load_fmnist())
    x, y = run.train_split.inputs(run.raw_inputs), run.train_split.y
    for s in range(3):
        run._step(x[s * 128:(s + 1) * 128], y[s * 128:(s + 1) * 128])
    prof = cProfile.Profile()
    prof.enable()
    for s in range(3, 6):
        run._step(x[s * 128:(s + 1) * 128], y[s * 128:(s + 1) * 128])
    torch.cuda.synchronize()
    prof.disable()
    run.close()
pstats.Stats(prof).sort_stats("tottime").print_stats(25)
pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
EOF
echo "parts failed: $failed"
exit "$failed"
