#!/usr/bin/env bash
# On the device machine (no network, no TensorFlow): install the carried wheels (.whl), then train Model A and
# Model B side by side (two processes, one GPU) with gpu_paper_run.py on Keras's JAX backend (PyTorch if JAX cannot
# train), within a time budget, and pack the run's artefacts (no weights) into $OUT/run.tar.gz.
#   bash benchmarks/gpu_paper_run.sh BUDGET_SECONDS IMAGE_SIZE [KEY=VALUE ...]
set -u
budget=${1:-520}; size=${2:-128}; shift 2
params=(); for kv in "$@"; do params+=(-p "${kv%%=*}" "${kv#*=}"); done
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FACE_REPORT_CACHE=/tmp/cache XLA_PYTHON_CLIENT_MEM_FRACTION=0.4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
start=$(date +%s)
for backend in jax torch; do
  left=$(( budget - ($(date +%s) - start) ))
  # decode the images once, so the two processes below do not race to write the same cache file
  KERAS_BACKEND=$backend python3 -c "from benchmarks.gpu_paper_run import bundle_splits as b; from pathlib import Path; b(Path('.bundle'), Path('/tmp/runs/bundle'), $size)"
  for m in A B; do
    KERAS_BACKEND=$backend timeout $left python3 benchmarks/gpu_paper_run.py --image-size "$size" --run-dir /tmp/runs/$backend \
      --models $m ${params[@]+"${params[@]}"} > "$OUT/log_${backend}_$m.txt" 2>&1 &
  done
  wait
  for m in A B; do echo "== $backend $m"; grep -v -i warn "$OUT/log_${backend}_$m.txt" | tail -n 25; done
  grep -q "epoch 1/" "$OUT/log_${backend}_A.txt" && break  # it trained: keep this backend's run, finished or cut short
done
echo "wall $(( $(date +%s) - start )) s"
tar -czf "$OUT/run.tar.gz" -C /tmp/runs --exclude='*.keras' --exclude=checkpoints --exclude=backup --exclude=bundle --exclude='*.npy' .
