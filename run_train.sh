#!/usr/bin/env bash
# The whole pipeline: train experiments x folds (Hydra multirun), blend the out-of-fold predictions,
# predict the test set, and score it when the data set has a solution.
#
#   ./run_train.sh [--quick] [--launcher basic|local_parallel|slurm] [--data-root DIR]
#                  [--experiments "hms15_hgnet hms15_effnet"] [--folds 0,1,2,3,4] [--full-fit]
#                  [--out DIR] [-- extra hydra overrides]
#
# --quick runs the whole chain on the embedded synthetic set in minutes on a CPU: two tiny models
# (spec_attn and stft, tiny), two folds, four epochs, on a 150-patient set (QUICK_* variables change it).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}

quick=0; launcher=${LAUNCHER:-basic}; data_root=""; experiments=""; folds="0,1,2,3,4"; full_fit=0
out="runs/pipeline_$(date +%Y%m%d_%H%M%S)"; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --launcher) launcher=$2; shift ;;
    --data-root) data_root=$2; shift ;;
    --experiments) experiments=$2; shift ;;
    --folds) folds=$2; shift ;;
    --full-fit) full_fit=1 ;;
    --out) out=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run_train.sh: unknown option $1 (see the header of this file)" >&2; exit 2 ;;
  esac
  shift
done

common=("hydra/launcher=$launcher")
[ -n "$data_root" ] && common+=("data=kaggle" "data.root=$data_root")
if [ "$quick" = 1 ]; then
  # Two cheap models on two folds: enough to exercise multirun, blending, prediction and scoring.
  models=("model=spec_attn" "model=stft")
  folds=${QUICK_FOLDS:-0,1}
  common+=("trainer.epochs=${QUICK_EPOCHS:-4}" "data.patients=${QUICK_PATIENTS:-150}"
           "data.root=${QUICK_ROOT:-datamount/synthetic_quick}")
else
  models=()
  for e in ${experiments:-hms15_hgnet}; do models+=("experiment=$e"); done
fi

mkdir -p "$out"
echo "== train: ${models[*]} x folds $folds -> $out/train"
for m in "${models[@]}"; do
  "$PY" train.py -m "$m" "fold=$folds" "${common[@]}" "${extra[@]}" \
      "hydra.sweep.dir=$out/train" "hydra.sweep.subdir=\${name}/fold\${fold}"
  if [ "$full_fit" = 1 ]; then
    "$PY" train.py "$m" fold=-1 "${common[@]}" "${extra[@]}" "hydra.run.dir=$out/full/\${name}"
  fi
done

echo "== blend"
"$PY" scripts/blend_weights.py "$out"/train/*/ --out "$out/blend.json"  # one folder per model (not multirun.yaml)

root=${data_root:-}
if [ -z "$root" ]; then root=$([ "$quick" = 1 ] && echo "${QUICK_ROOT:-datamount/synthetic_quick}" || echo datamount/synthetic); fi
echo "== predict $root/test.csv"
ckpts=("$out"/train/*/fold*/checkpoint.pt)
[ "$full_fit" = 1 ] && ckpts+=("$out"/full/*/checkpoint.pt)
"$PY" scripts/predict.py --data-root "$root" --checkpoints "${ckpts[@]}" --blend "$out/blend.json" \
    --out "$out/submission.csv"

if [ -f "$root/solution.csv" ]; then
  echo "== score"
  "$PY" scripts/score.py "$root/solution.csv" "$out/submission.csv" | tee "$out/score.txt"
fi
echo "pipeline: $out"
