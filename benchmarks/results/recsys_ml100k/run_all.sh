#!/usr/bin/env bash
# ml-100k at convergence, three seeds, with the controls (issue 11 part 1).
#
# Every (model, seed, dropout) run is one `contrasuite recsys evaluate` command with a run folder
# of its own under RUNS_DIR, so WORKERS processes share the runs (one core each) and a run that
# was interrupted resumes from its last finished epoch when this script is started again. A
# finished run's small files (no weights, no optimizer state) are copied beside this script
# (`<model>_s<seed>[_d<dropout>]/`); a run whose copy is here is not trained again, so the
# comparison survives the loss of RUNS_DIR. `recsys_merge.py` makes the table from the copies:
#
#     nice benchmarks/results/recsys_ml100k/run_all.sh ../runs/recsys/ml100k 2
#     .venv/bin/python benchmarks/results/recsys_merge.py benchmarks/results/recsys_ml100k/*_s*/ \
#         --against FastSASRec,SASRec2Step
#
# The baselines run at dropout 0.1 and 0.5 (selected on mean validation NDCG@10 over the seeds);
# MCLRec and MCLRec-J keep their ml-100k default. Training settings are the pipeline's defaults
# (at most 100 epochs, early stopping on validation NDCG@10 with RecBole's stopping_step 10).
set -uo pipefail

usage="usage: run_all.sh RUNS_DIR [WORKERS]"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
[[ $# -ge 1 && $# -le 2 && -n $1 ]] || { echo "run_all.sh: RUNS_DIR: expected a folder for the run folders ($usage)" >&2; exit 2; }
runs=$1
workers=${2:-2}
[[ $workers =~ ^[1-9][0-9]*$ ]] || { echo "run_all.sh: WORKERS: expected a positive integer, got '$workers'" >&2; exit 2; }
mkdir -p "$runs" 2>/dev/null || { echo "run_all.sh: RUNS_DIR $runs: expected a folder (it cannot be created)" >&2; exit 2; }

# model seed dropout ("-": the model's own); the order puts whole comparisons first
JOBS=(
    "MCLRec 2020 -" "SASRec2Step 2020 0.5" "FastSASRec 2020 0.5"
    "FastSASRec 2021 0.5" "MCLRec 2021 -" "SASRec2Step 2021 0.5"
    "FastSASRec 2022 0.5" "SASRec2Step 2022 0.5" "MCLRec 2022 -"
    "FastSASRec 2020 0.1" "FastSASRec 2021 0.1" "FastSASRec 2022 0.1"
    "SASRec2Step 2020 0.1" "SASRec2Step 2021 0.1" "SASRec2Step 2022 0.1"
    "MCLRec-J 2020 -" "MCLRec-J 2021 -" "MCLRec-J 2022 -"
)

job_name() { # model seed dropout
    if [[ $3 == - ]]; then echo "$1_s$2"; else echo "$1_s$2_d$3"; fi
}

run_job() { # model seed dropout
    local name out dest tmp
    name=$(job_name "$@")
    out="$runs/$name"
    dest="$here/$name"
    local args=(recsys evaluate --dataset ml-100k --models "$1" --seeds "$2" --out "$out"
        trainer.threads=1 trainer.progress=false)
    [[ $3 == - ]] || args+=("encoder.dropout_grid=$3")
    echo "$(date -u +%FT%TZ) start $name"
    OMP_NUM_THREADS=1 "$root/.venv/bin/contrasuite" "${args[@]}" >>"$runs/$name.log" 2>&1 || {
        echo "$(date -u +%FT%TZ) FAILED $name (exit $?; see $runs/$name.log)"
        return 1
    }
    tmp="$dest.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$out" && find . -type f ! -name '*.pt' ! -name '*.png' ! -name 'log.txt' \
        ! -name '.contrasuite.json' -exec cp --parents {} "$tmp/" \;) || return 1
    mv "$tmp" "$dest"
    echo "$(date -u +%FT%TZ) done $name"
}

worker() {
    local job name
    for job in "${JOBS[@]}"; do
        # shellcheck disable=SC2086
        name=$(job_name $job)
        [[ -f $here/$name/results.json ]] && continue
        # a run another worker holds is skipped; the lock goes with the process that holds it
        (
            flock -n 9 || exit 0
            # shellcheck disable=SC2086
            run_job $job
        ) 9>"$runs/$name.lock"
    done
}

for ((i = 1; i <= workers; i++)); do
    worker &
    sleep 5
done
wait
