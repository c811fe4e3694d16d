#!/usr/bin/env bash
# Runs the digits studies behind docs/results.md, then rebuilds it:
#   bash docs/run_digits_studies.sh            (STORAGE=runs by default; run it again after an interruption:
#                                              a study already started is resumed)
# The twins add seeds until their paired comparisons are decided (at most MAX_SEEDS); the grid-vs-ARML and
# search studies run their planned seeds (the SSL grid study adds seeds up to 14); the regime study up to 16. Each study's wall time is
# appended to $STORAGE/timings.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
STORAGE=${STORAGE:-runs}
MAX_SEEDS=${MAX_SEEDS:-6}
ARML=${ARML:-.venv/bin/arml}
TWINS="digits_table1_ssl digits_table2_mlc digits_table4_dg digits_fig3_dg_shots digits_fig4_dg_scarcity"
OTHERS="digits_mlc_grid_vs_arml digits_dg_grid_vs_arml"
SSL_GRID="digits_ssl_grid_vs_arml"  # 99 trials a seed, up to 14 seeds: about 80 minutes on 2 CPUs
LAST="digits_fig2_ssl_labels"      # the largest twin (90 trials a wave)
SEARCH="digits_search_vs_arml"
REGIMES="digits_regimes"           # K x steps x labels, up to 16 seeds: about 2 hours on 2 CPUs
mkdir -p "$STORAGE"
run() {
    local study=$1; shift
    local start=$SECONDS
    local again=()
    [ -f "$STORAGE/$study/plan.json" ] && again=(--resume)   # started before: finish it
    "$ARML" run "studies/$study.toml" --storage "$STORAGE" "${again[@]}" "$@"
    local code=$?
    echo "$study $((SECONDS - start)) s (exit $code)" >> "$STORAGE/timings.txt"
}
for study in $TWINS; do run "$study" --until-decided --max-seeds "$MAX_SEEDS" "$@"; done
for study in $OTHERS; do run "$study" "$@"; done
run "$SSL_GRID" --until-decided --max-seeds 14 "$@"
run "$LAST" --until-decided --max-seeds "$MAX_SEEDS" "$@"
run "$SEARCH" "$@"
run "$REGIMES" --until-decided --max-seeds 16 "$@"
.venv/bin/python docs/build_results.py --runs "$STORAGE"
