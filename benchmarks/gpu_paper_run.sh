#!/usr/bin/env bash
# On the device machine (no network, no TensorFlow): install the carried wheels (.whl), then, for each image size,
# train Model A and Model B side by side (one process each, all on one GPU) with gpu_paper_run.py on Keras's JAX
# backend (PyTorch if JAX cannot train), within a time budget. Packs each run's artefacts, with its best models saved
# without optimizer state (`gpu_evaluate.py` scores them on the test split where its images are) and the logs, into
# $OUT/run.tar.gz.part-* (15 MiB parts, as the device tool returns files of at most 16 MiB). A run cut short by the
# budget keeps its history_{A,B}.csv (one row per finished epoch) but has no models or metrics.
#   bash benchmarks/gpu_paper_run.sh BUDGET_SECONDS SIZES [KEY=VALUE ...]     e.g. 540 128,200
#   SPEED_CHECK=1 bash ...: first benchmarks/jax_batch_speed.py (Model A) at the first size, alone on the GPU, within the budget
#   locally: cat run.tar.gz.part-* | tar -xz -C runs/gpu; then python benchmarks/gpu_evaluate.py runs/gpu/s128
set -u
case "${1:-}" in -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0;; esac
# (60 s of the budget are kept for packing, so a budget of 60 s or less leaves nothing to train in)
if ! [[ "${1:-520}" =~ ^[0-9]+$ && "${2:-128}" =~ ^[0-9]+(,[0-9]+)*$ && "${1:-520}" -gt 60 ]]; then
  echo "usage: bash $0 BUDGET_SECONDS SIZES [KEY=VALUE ...], e.g. 540 128,200 (whole seconds, more than 60; sizes in px, comma-separated)" >&2; exit 2
fi
budget=${1:-520}; IFS=, read -ra sizes <<< "${2:-128}"; shift $(( $# < 2 ? $# : 2 ))
params=(); for kv in "$@"; do params+=(-p "${kv%%=*}" "${kv#*=}"); done
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
# each process takes its share of the GPU's memory (JAX would take 75% each by default)
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FACE_REPORT_CACHE=/tmp/cache \
  XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / (2 * ${#sizes[@]}), 2))")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
start=$(date +%s); logs=/tmp/runs/logs; mkdir -p $logs
if [ "${SPEED_CHECK:-0}" = 1 ]; then
  KERAS_BACKEND=jax timeout $(( budget / 4 )) python3 benchmarks/jax_batch_speed.py --size "${sizes[0]}" --models A 2>&1 \
    | grep -v -i warn | tee $logs/jax_batch_speed.txt
fi
for backend in jax torch; do
  for s in "${sizes[@]}"; do  # decode the images once per size, so the processes below do not race to write the cache
    KERAS_BACKEND=$backend python3 -c "from benchmarks.gpu_paper_run import bundle_splits as b; from pathlib import Path; b(Path('.bundle'), Path('/tmp/runs/bundle'), $s)"
  done
  left=$(( budget - 60 - ($(date +%s) - start) ))  # 60 s kept for packing
  if [ "$left" -lt 1 ]; then  # (`timeout` refuses a negative limit, and every training would fail at once)
    echo "no time left to train: $(( $(date +%s) - start )) s of the ${budget} s budget went before training (60 s are kept for packing)" >&2; exit 1
  fi
  for s in "${sizes[@]}"; do
    for m in A B; do
      KERAS_BACKEND=$backend timeout $left python3 benchmarks/gpu_paper_run.py --image-size "$s" --run-dir /tmp/runs/s$s \
        --models $m ${params[@]+"${params[@]}"} > "$logs/${backend}_s${s}_$m.txt" 2>&1 &
    done
  done
  wait
  for f in $logs/${backend}_*.txt; do echo "== $f"; grep -v -i warn "$f" | tail -n 12; done
  grep -q "epoch 1/" $logs/${backend}_s${sizes[0]}_A.txt && break  # it trained: keep this backend's runs, finished or cut short
done
# the best models saved again without optimizer state (a third of the size), in one process
KERAS_BACKEND=$backend python3 -c "import glob, keras, face_report.models
for f in glob.glob('/tmp/runs/s*/model_[AB].keras'): keras.saving.load_model(f, compile=False).save(f)"
echo "wall $(( $(date +%s) - start )) s"
tar -czf - -C /tmp/runs --exclude=checkpoints --exclude=backup --exclude=bundle --exclude='*.npy' . \
  | split -b 15M - "$OUT/run.tar.gz.part-"
ls -l "$OUT"
