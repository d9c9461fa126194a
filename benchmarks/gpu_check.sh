#!/usr/bin/env bash
# The GPU check, one script (H100/H200, jax with CUDA, torch optional):
#   OUT=out bash benchmarks/gpu_check.sh [pallas-check] [sweep] [sweep-bf16] [suite]
#                                        [pallas-tune] [tests]
# Runs the compiled Pallas kernels against lax, the arrangement sweep (what
# conv_plan's GPU policy rests on), the GPU benchmark suite (writes the GPU
# section of $OUT/BENCHMARKS.md), the Pallas tile tuning and the whole test
# suite, each under its own time limit, logs in $OUT.
set -u
export PYTHONPATH="$PWD" XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT="${OUT:-out}"; mkdir -p "$OUT"
steps="${*:-pallas-check sweep suite tests}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import jax; print(jax.__version__, jax.devices())" >> "$OUT/gpu.txt" 2>&1
for step in $steps; do
  start=$(date +%s)
  case "$step" in
    pallas-check) timeout "${CHECK_S:-90}" python -m benchmarks.pallas_gpu check \
             > "$OUT/pallas_check.log" 2>&1 ;;
    pallas-tune) timeout "${TUNE_S:-300}" python -m benchmarks.pallas_gpu tune \
             --deadline "$(( ${TUNE_S:-300} - 60 ))" --json "$OUT/tune.json" \
             > "$OUT/pallas_tune.log" 2>&1 ;;
    sweep) timeout "${SWEEP_S:-150}" python -m benchmarks.arrangements --suite gpu \
             --json "$OUT/arrangements.json" > "$OUT/sweep.log" 2>&1 ;;
    sweep-bf16) timeout "${SWEEP_S:-120}" python -m benchmarks.arrangements --suite gpu \
             --dtype bfloat16 --json "$OUT/arrangements_bf16.json" > "$OUT/sweep_bf16.log" 2>&1 ;;
    suite) cp BENCHMARKS.md "$OUT/BENCHMARKS.md"
           timeout "${SUITE_S:-200}" python -m benchmarks --suite gpu --out "$OUT/BENCHMARKS.md" \
             > "$OUT/suite.log" 2>&1 ;;
    tests) timeout "${TESTS_S:-240}" python -m pytest -n "${WORKERS:-8}" -q -p no:cacheprovider \
             tests > "$OUT/tests.log" 2>&1 ;;
    *) python -c "$step" > "$OUT/custom.log" 2>&1 ;;
  esac
  echo "$step: rc=$? $(( $(date +%s) - start )) s" | tee -a "$OUT/steps.txt"
done
