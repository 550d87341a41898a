#!/usr/bin/env bash
# Issue 18's checks on an accelerator in one command; every stage writes under $OUT when it ends.
#
#   OUT=/tmp/check bash experiments/accelerator_check.sh           # on the GPU (device tool: $OUT)
#   OUT=/tmp/check TINY=1 bash experiments/accelerator_check.sh    # here, on CPU: tiny sizes
#   bash experiments/accelerator_check.sh --download               # fetch .whl/ for the GPU machine
#
# The lent GPU machine has jax, flax, optax, chex, orbax, matplotlib and scipy but nothing can be
# installed there from the network: --download saves the wheels of the other packages (Python 3.12,
# manylinux x86-64) into .whl/ (gitignored), and a run carries .whl and installs them with
# --no-deps into a scratch folder on PYTHONPATH. The device tool's call ($OUT is set there):
#   run(command='bash experiments/accelerator_check.sh', carry=['.whl'], timeout_s=600)
#
# Stages, in the order of what they are worth, each under its own time limit (seconds, overridable
# by the environment variables named) so that a slow one cannot starve the rest:
#   1. env.txt: nvidia-smi, python, jax and its devices;
#   2. main.jsonl: the README's main command (structural, then cross-entropy) for MAIN_STEPS steps:
#      wall time, steps/s, held-out exact match, WL and GED (MAIN_LIMIT each);
#   3. benchmarks.json: the anchors, the train step per loss mode and the bucket table at batch 64
#      and 512 (BENCH_LIMIT);
#   4. notebook.ipynb: the Colab notebook through papermill (NOTEBOOK_LIMIT);
#   5. growth.json: the growth curve to 256 nodes with peak device memory (GROWTH_LIMIT).
# check.log holds everything printed. A stage that fails or runs out of time is reported there and
# the next one starts.
set -u
cd "$(dirname "$0")/.."

WHEELS=(
  jraph ml-collections tensorboardX rapidfuzz ott-jax jaxopt papermill ipykernel
  # papermill's and ipykernel's own needs that the machine's image lacks:
  asttokens comm debugpy entrypoints executing fastjsonschema ipython ipython-pygments-lexers jedi
  jsonschema jsonschema-specifications jupyter-client jupyter-core matplotlib-inline nbclient
  nbformat nest-asyncio2 parso pexpect platformdirs prompt-toolkit ptyprocess pure-eval pyzmq
  referencing rpds-py stack-data tenacity tornado traitlets tzdata wcwidth
)

WHEELS_DIR=${WHEELS_DIR:-.whl}  # Wheels for Python 3.12 (--download); none: use what is installed.
if [ "${1:-}" = --download ]; then
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64; do
    platforms+=(--platform "$p")
  done
  exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$WHEELS_DIR" "${WHEELS[@]}"
fi

OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/check.log") 2>&1
export PYTHONUNBUFFERED=1
TINY=${TINY:-0}
SCRATCH=${SCRATCH:-$(mktemp -d)}

if ls "$WHEELS_DIR"/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SCRATCH/site" "$WHEELS_DIR"/*.whl \
    || { echo "error: installing $WHEELS_DIR failed"; exit 1; }
  export PYTHONPATH="$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

stage() {  # stage NAME LIMIT COMMAND...: the command under a time limit; STAGE_RC its exit status.
  local name=$1 limit=$2 start
  shift 2
  echo "=== $name (limit ${limit} s) $(date -u +%FT%TZ)"
  start=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@"
  STAGE_RC=$?
  STAGE_MS=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "=== $name: exit $STAGE_RC after $STAGE_MS ms$([ $STAGE_RC = 124 ] && echo ' (time limit)')"
}

if [ "$TINY" = 1 ]; then
  MAIN_STEPS=${MAIN_STEPS:-20}
  MAIN_ARGS=(--config.data.levels='(1,)' --config.model.hidden_dim=32 --config.model.num_layers=1
    --config.optimizer.warmup_steps=5)
  BENCH_ARGS=(--quick --batches=4)
  NOTEBOOK_PARAMS=(-p TRAIN_STEPS 6 -p SWEEP_STEPS 4 -p TINY True)
  GROWTH_ARGS=(--quick)
  LIMIT=900  # Each stage's on a loaded CPU: the tiny run checks the script, not the speed.
else
  MAIN_STEPS=${MAIN_STEPS:-2000}
  MAIN_ARGS=(--config.seed=0)
  BENCH_ARGS=(--batches=64,512)
  NOTEBOOK_PARAMS=(-p TRAIN_STEPS 1000 -p SWEEP_STEPS 300)
  GROWTH_ARGS=()
  LIMIT=
fi

{
  nvidia-smi 2>&1 || echo 'nvidia-smi: not found'
  python3 -c 'import sys, jax; print(sys.version); print("jax", jax.__version__, jax.devices())'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

for mode in structural cross_entropy; do  # One summary line per run in main.jsonl, even if cut off.
  stage "main command, $mode, $MAIN_STEPS steps" "${MAIN_LIMIT:-${LIMIT:-110}}" \
    python3 -m grapheme_jax.main --config="configs/$mode.py" --workdir="$SCRATCH/$mode" \
    --config.num_train_steps="$MAIN_STEPS" --config.eval_every_steps="$MAIN_STEPS" "${MAIN_ARGS[@]}"
  python3 - "$SCRATCH/$mode" "$mode" "$STAGE_RC" "$STAGE_MS" >> "$OUT/main.jsonl" <<'PYTHON'
import json, os, sys
workdir, mode, rc, wall_ms = sys.argv[1:]
row = {'mode': mode, 'exit_code': int(rc), 'wall_seconds': int(wall_ms) / 1000}
logs = []
if os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logs = [json.loads(line) for line in f]
rates = sorted(r['train/steps_per_sec'] for r in logs if 'train/steps_per_sec' in r)
row['steps_per_sec_median'] = rates[len(rates) // 2] if rates else None
row['evaluations'] = [r for r in logs if any(k.startswith('eval/') for k in r)]
if os.path.exists(os.path.join(workdir, 'results.json')):
  with open(os.path.join(workdir, 'results.json')) as f:
    row['results'] = json.load(f)
print(json.dumps(row))
PYTHON
done

stage benchmarks "${BENCH_LIMIT:-${LIMIT:-150}}" python3 -m experiments.benchmarks \
  "${BENCH_ARGS[@]}" --sections=anchors,train_step,buckets --out="$OUT/benchmarks.json"

stage notebook "${NOTEBOOK_LIMIT:-${LIMIT:-110}}" python3 -m papermill --cwd . --kernel python3 \
  --no-progress-bar experiments/notebooks/grapheme_jax_colab.ipynb "$OUT/notebook.ipynb" \
  -p WORKDIR "$SCRATCH/notebook" "${NOTEBOOK_PARAMS[@]}"

stage growth "${GROWTH_LIMIT:-${LIMIT:-80}}" python3 -m experiments.benchmarks \
  ${GROWTH_ARGS[@]+"${GROWTH_ARGS[@]}"} --sections=growth --out="$OUT/growth.json"
echo "=== done $(date -u +%FT%TZ); files: $(ls "$OUT" | tr '\n' ' ')"
