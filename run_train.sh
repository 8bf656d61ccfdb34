#!/usr/bin/env bash
# The whole pipeline: train experiments x folds (Hydra multirun), blend the out-of-fold predictions,
# predict the test set, and score it when the data set has a solution.
#
#   ./run_train.sh [--quick] [--launcher basic|local_parallel|slurm] [--data-root DIR]
#                  [--experiments "hms15_cfg1 hms15_cfg5"] [--folds 0,1,2,3,4] [--seeds 1,2] [--full-fit]
#                  [--no-pretrain] [--pseudo-label]
#                  [--out DIR] [-- extra hydra overrides]
#
# --launcher (or LAUNCHER=): basic runs the jobs one after the other, local_parallel through joblib
#   (conf/hydra/launcher/local_parallel.yaml, 2 at a time), slurm through submitit (set the partition
#   with -- hydra.launcher.partition=...; the script waits for the jobs, then blends and predicts here).
# --data-root DIR trains on the competition layout (data=kaggle) in DIR and predicts DIR/test.csv;
#   without it the embedded synthetic set (datamount/synthetic) is used.
# --full-fit also trains each model on every row (fold=-1, under OUT/full/<name>); its checkpoint joins
#   the fold checkpoints of that name at prediction time.
# Each model's runs go to OUT/train/<name>/fold<k> with name = the experiment (or the quick model), so
# two experiments sharing a model choice do not overwrite each other.
# --seeds 1,2 trains every experiment once per seed; each (experiment, seed) is its own model,
#   named <experiment>_seed<s>, in the blend and at prediction (the 3rd place ran 4 folds x 2 seeds).
# --pseudo-label (the 16th place's stage 2, any model): stage 1 trains on the high-vote rows (8+ votes),
#   scripts/pseudo_label.py labels every row with at most 7 votes with all stage-1 checkpoints, and stage 2
#   trains every model again on the high rows plus the pseudo-labelled ones (OUT/train_pl/<name>/fold<k>);
#   the blend and the submission use stage 2, and the val KL of both stages is printed.
# A recipe with a pretrain stage (hms15_*: conf/stage/hms15_pretrain.yaml) runs it first, fold by fold,
# under OUT/pretrain/<name>/fold<k>; the main run of each fold then starts from that fold's weights
# (init_from) with a fresh optimizer and schedule, as the authors did. --no-pretrain skips it. The
# Cranjis-McB two-stage recipes (cranjis_two_stage*) run their noisy-row stage 1 (conf/stage/cranjis_noisy.yaml)
# this way, and their stage 2 starts from stage 1's best checkpoint (best.pt).
# Paths (--out, --data-root, QUICK_ROOT, PYTHON) are relative to the directory you launch from.
#
# --quick runs the whole chain on the embedded synthetic set in minutes on a CPU: two tiny models
# (spec_attn and stft, tiny), two folds, four epochs, on a 150-patient set. Environment variables
# change it: QUICK_FOLDS (0,1; --folds wins), QUICK_EPOCHS (4), QUICK_PATIENTS (150),
# QUICK_MAX_STEPS (none; optimizer steps per run), QUICK_BATCH (the trainer's), QUICK_WORKERS
# (data loader workers, the data config's) and QUICK_ROOT (datamount/synthetic_quick; the set is
# generated there on first use, so give a new folder when you change QUICK_PATIENTS).
set -euo pipefail

usage() { echo "run_train.sh: $1 (see the header of this file)" >&2; exit 2; }
absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
# A value for a Hydra override, quoted so that commas, spaces or '=' in a path stay one string.
quote() { local s=${1//\'/\\\'}; printf "'%s'" "$s"; }

quick=0; launcher=${LAUNCHER:-basic}; data_root=""; experiments=""; folds=""; seeds=""; full_fit=0; pretrain=1
pseudo=0
out=""; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --full-fit) full_fit=1 ;;
    --no-pretrain) pretrain=0 ;;
    --pseudo-label) pseudo=1 ;;
    --launcher|--data-root|--experiments|--folds|--seeds|--out)
      [ $# -ge 2 ] && [ -n "$2" ] || usage "$1 needs a value"
      case "$1" in
        --launcher) launcher=$2 ;;
        --data-root) data_root=$(absolute "$2") ;;
        --experiments) experiments=$2 ;;
        --folds) folds=$2 ;;
        --seeds) seeds=$2 ;;
        --out) out=$(absolute "$2") ;;
      esac
      shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) usage "unknown option $1" ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$here/.venv/bin/python}
case $PY in */*) PY=$(absolute "$PY") ;; esac  # a bare command name (python3) stays on the PATH
[ -n "${QUICK_ROOT:-}" ] && QUICK_ROOT=$(absolute "$QUICK_ROOT")
cd "$here"

case $launcher in
  basic|joblib|submitit_local|submitit_slurm) ;;
  *) [ -f "conf/hydra/launcher/$launcher.yaml" ] || usage "unknown launcher $launcher" ;;
esac
[ "$quick" = 1 ] && [ -n "$data_root" ] && usage "--quick trains on the synthetic set; use QUICK_ROOT, not --data-root"
[ "$quick" = 1 ] && [ -n "$experiments" ] && usage "--quick trains its own two models; drop --experiments"
[ -n "$data_root" ] && [ ! -d "$data_root" ] && usage "--data-root $data_root is not a folder"

common=("hydra/launcher=$launcher")
names=(); overrides=(); seed_of=()  # one model per entry: its name, its group override, its seed (or none)
if [ "$quick" = 1 ]; then
  # Two cheap models on two folds: enough to exercise multirun, blending, prediction and scoring.
  for m in spec_attn stft; do names+=("$m"); overrides+=("model=$m"); seed_of+=(""); done
  folds=${folds:-${QUICK_FOLDS:-0,1}}
  root=${QUICK_ROOT:-$here/datamount/synthetic_quick}
  patients=${QUICK_PATIENTS:-150}
  [[ $patients =~ ^[1-9][0-9]*$ ]] || usage "QUICK_PATIENTS must be a positive integer, not $patients"
  if [ -f "$root/stats.json" ]; then  # the trainer reuses an existing set whatever its size: refuse a mismatch
    found=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["generator"]["patients"])' \
            "$root/stats.json" 2>/dev/null || echo unknown)
    [ "$found" = "$patients" ] || usage "$root holds a $found-patient set, not $patients (QUICK_PATIENTS): give another QUICK_ROOT"
  fi
  common+=("data.root=$(quote "$root")" "data.patients=$patients"
           "trainer.epochs=${QUICK_EPOCHS:-4}")
  [ -n "${QUICK_MAX_STEPS:-}" ] && common+=("trainer.max_steps=$QUICK_MAX_STEPS")
  [ -n "${QUICK_BATCH:-}" ] && common+=("trainer.batch_size=$QUICK_BATCH")
  [ -n "${QUICK_WORKERS:-}" ] && common+=("data.num_workers=$QUICK_WORKERS")
else
  [ -z "$seeds" ] || [[ $seeds =~ ^[0-9]+(,[0-9]+)*$ ]] || usage "--seeds takes seeds separated by commas, not $seeds"
  for e in ${experiments:-hms15_cfg1}; do
    if [ -z "$seeds" ]; then names+=("$e"); overrides+=("experiment=$e"); seed_of+=(""); continue; fi
    for s in ${seeds//,/ }; do names+=("${e}_seed$s"); overrides+=("experiment=$e"); seed_of+=("seed=$s"); done
  done
  folds=${folds:-0,1,2,3,4}
  if [ -n "$data_root" ]; then
    root=$data_root; common+=("data=kaggle" "data.root=$(quote "$root")")
  else
    root=$here/datamount/synthetic
  fi
fi
[[ $folds =~ ^[0-9]+(,[0-9]+)*$ ]] || usage "--folds takes fold numbers separated by commas, not $folds"
out=${out:-$here/runs/pipeline_$(date +%Y%m%d_%H%M%S)}

# Blending reads every fold folder of a model: refuse an output folder holding folds of another run.
for n in "${names[@]}"; do
  for d in "$out/train/$n"/fold*/; do
    [ -d "$d" ] || continue
    k=$(basename "$d"); k=${k#fold}
    [[ ",$folds," == *",$k,"* ]] || usage "$out/train/$n holds fold$k, not in --folds $folds (use another --out)"
  done
done

[ "$pseudo" = 1 ] && common+=("sampling.train_min_votes=8")  # stage 1: the high rows
mkdir -p "$out"
echo "== train: ${overrides[*]} x folds $folds -> $out/train"
# The pretrain stage a recipe runs before its main one (none for the others).
pretrain_stage() { case $1 in experiment=hms15_*) echo hms15_pretrain ;; experiment=cranjis_two_stage*) echo cranjis_noisy ;; esac; }
# A run's result: the best evaluation's weights when it kept them (trainer.keep_best), else its last.
weights() { if [ -f "$1/best.pt" ]; then echo "$1/best.pt"; else echo "$1/checkpoint.pt"; fi; }
for i in "${!names[@]}"; do
  n=${names[$i]}; m=${overrides[$i]}; stage=""; [ "$pretrain" = 1 ] && stage=$(pretrain_stage "$m")
  seed=(); [ -n "${seed_of[$i]}" ] && seed=("${seed_of[$i]}")
  start=(); start_full=()
  if [ -n "$stage" ]; then
    echo "== pretrain stage $stage: $n x folds $folds -> $out/pretrain"
    "$PY" train.py -m "$m" ${seed[@]+"${seed[@]}"} "stage=$stage" "fold=$folds" "${common[@]}" ${extra[@]+"${extra[@]}"} \
        "hydra.sweep.dir=$(quote "$out/pretrain")" "hydra.sweep.subdir=$(quote "$n/fold\${fold}")"
    weights_file=checkpoint.pt; [ "$stage" = cranjis_noisy ] && weights_file=best.pt  # stage 1 keeps its best
    start=("init_from=$(quote "$out/pretrain/$n/fold\${fold}/$weights_file")")
    if [ "$full_fit" = 1 ]; then
      "$PY" train.py "$m" ${seed[@]+"${seed[@]}"} "stage=$stage" fold=-1 "${common[@]}" ${extra[@]+"${extra[@]}"} \
          "hydra.run.dir=$(quote "$out/pretrain_full/$n")"
      start_full=("init_from=$(quote "$out/pretrain_full/$n/checkpoint.pt")")
    fi
  fi
  "$PY" train.py -m "$m" ${seed[@]+"${seed[@]}"} "name=$n" "fold=$folds" "${common[@]}" ${start[@]+"${start[@]}"} ${extra[@]+"${extra[@]}"} \
      "hydra.sweep.dir=$(quote "$out/train")" "hydra.sweep.subdir=$(quote "$n/fold\${fold}")"
  if [ "$full_fit" = 1 ]; then
    "$PY" train.py "$m" ${seed[@]+"${seed[@]}"} "name=$n" fold=-1 "${common[@]}" ${start_full[@]+"${start_full[@]}"} ${extra[@]+"${extra[@]}"} \
        "hydra.run.dir=$(quote "$out/full/$n")"
  fi
done

stage=train
if [ "$pseudo" = 1 ]; then
  echo "== pseudo-label the rows with 7 votes or fewer"
  stage1=(); for n in "${names[@]}"; do for k in ${folds//,/ }; do stage1+=("$(weights "$out/train/$n/fold$k")"); done; done
  "$PY" scripts/pseudo_label.py --data-root "$root" --checkpoints "${stage1[@]}" --out "$out/pseudo_labels.csv"
  echo "== stage 2: ${overrides[*]} x folds $folds with the pseudo-labels -> $out/train_pl"
  for i in "${!names[@]}"; do
    n=${names[$i]}; m=${overrides[$i]}; seed=(); [ -n "${seed_of[$i]}" ] && seed=("${seed_of[$i]}")
    "$PY" train.py -m "$m" ${seed[@]+"${seed[@]}"} "name=$n" "fold=$folds" "${common[@]}" ${extra[@]+"${extra[@]}"} \
        "sampling.pseudo_labels=$(quote "$out/pseudo_labels.csv")" \
        "hydra.sweep.dir=$(quote "$out/train_pl")" "hydra.sweep.subdir=$(quote "$n/fold\${fold}")"
    for k in ${folds//,/ }; do
      "$PY" -c 'import json, sys; a, b = (json.load(open(p))["val_kl"] for p in sys.argv[2:]); print(f"{sys.argv[1]}: val_kl stage 1 {a:.4f}, stage 2 {b:.4f}")' \
          "$n fold$k" "$out/train/$n/fold$k/metrics.json" "$out/train_pl/$n/fold$k/metrics.json"
    done
  done
  stage=train_pl
fi

echo "== blend"
blend_inputs=(); ckpts=()
for n in "${names[@]}"; do
  blend_inputs+=("$out/$stage/$n")  # a folder of fold run dirs: their oof.csv concatenated
  for k in ${folds//,/ }; do ckpts+=("$(weights "$out/$stage/$n/fold$k")"); done
  [ "$full_fit" = 1 ] && ckpts+=("$out/full/$n/checkpoint.pt")
done
"$PY" scripts/blend_weights.py "${blend_inputs[@]}" --out "$out/blend.json"

echo "== predict $root/test.csv"
"$PY" scripts/predict.py --data-root "$root" --checkpoints "${ckpts[@]}" --blend "$out/blend.json" \
    --out "$out/submission.csv"

if [ -f "$root/solution.csv" ]; then
  echo "== score"
  "$PY" scripts/score.py "$root/solution.csv" "$out/submission.csv" | tee "$out/score.txt"
fi
echo "pipeline: $out"
