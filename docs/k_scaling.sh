#!/usr/bin/env bash
# The K-scaling headline: ARML against every search over the auxiliary weights for K = 2, 4, 8, 16, 32
# auxiliary tasks (studies/digits_k_scaling_k*.toml: 6,925 trials, 110 minutes on a 2-CPU machine), then
# k_scaling.csv/.md/.png and k_scaling_verdicts.csv, k_scaling_budgeted.csv in docs/results/k_scaling/.
#   bash docs/k_scaling.sh                 # storage ./runs; extra arguments go to every `arml run`
#   STORAGE=/shared/runs bash docs/k_scaling.sh --address HEAD:6379
# After an interruption, run it again with --resume: finished trials are kept.
set -euo pipefail
storage="${STORAGE:-runs}"
runs=()
for k in 2 4 8 16 32; do
    arml run "studies/digits_k_scaling_k${k}.toml" --storage "$storage" "$@"
    runs+=("$storage/digits_k_scaling_k${k}")
done
arml report "${runs[@]}" --k-scaling --out docs/results/k_scaling
