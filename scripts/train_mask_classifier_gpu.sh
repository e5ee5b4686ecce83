#!/usr/bin/env bash
# Train mask-state CNN recipes on a GPU machine, from the JPEG pack alone (no datasets, no cache needed there):
#
#   python scripts/train_mask_classifier.py --pack .gpu/mask_pack.npz          # here: the train split, ~30 MB
#   bash scripts/train_mask_classifier_gpu.sh .gpu/mask_pack.npz "2 45 5" "1 45 3"   # there: WIDTH EPOCHS MEMBERS
#
# Every recipe trains its fold networks (--cross-validate) and its final members into .cache/mask_cnn_nets/, all
# recipes side by side, one network per CPU core (the crops are augmented on the CPU; the GPU does the arithmetic).
# Bring .cache/mask_cnn_nets/ back and the same commands without --train-only (and without --device) evaluate out
# of fold and export here; on a machine without a GPU, drop --device cuda and wait (hours for width 2).
set -euo pipefail
cd "$(dirname "$0")/.."
pack=$1
shift
cores=$(nproc)
jobs_of() { read -r _ _ members <<<"$1"; echo $((5 * members)); }  # 4 folds + the final ensemble, per member
total=0
for recipe in "$@"; do total=$((total + $(jobs_of "$recipe"))); done
pids=()
for recipe in "$@"; do
  read -r width epochs members <<<"$recipe"
  workers=$(( (cores * $(jobs_of "$recipe") + total - 1) / total ))
  python3 scripts/train_mask_classifier.py --train-only --cross-validate --data "$pack" --device "${DEVICE:-cuda}" \
    --workers "$workers" --width "$width" --epochs "$epochs" --members "$members" >"results/gpu-w$width-e$epochs-m$members.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
