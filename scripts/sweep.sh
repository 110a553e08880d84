#!/usr/bin/env bash
# Sweep the standard CIFAR noise settings through DMLP and write one results table.
#
#   scripts/sweep.sh SRC WORK [extra DMLP.py args...]
#   e.g. scripts/sweep.sh /data/cifar10-effnet-lite2 runs/sweep --config paper
#
# For each seed: sym 20/50/80/90 % and asym 40 % (DivideMix's rule, see docs/data_tools.md):
#   scripts/make_noisy_labels.py --features-dir SRC --out WORK/data/NAME ...
#   python DMLP.py --data WORK/data/NAME --out WORK/runs/NAME [extra args]
# then WORK/sweep.md and WORK/sweep.csv (setting, measured noise, label accuracy before -> after,
# changed, seconds) via `python -m dmlp.sweep_table`.  Logs: WORK/logs/NAME.log.
#
# Environment overrides (space-separated lists):
#   SYM_RATES  (default "0.2 0.5 0.8 0.9")   ASYM_RATES (default "0.4"; "" to skip)
#   SEEDS      (default "123")               DATASET    (default cifar10)
#   PYTHON     (default python)              SKIP_DONE=1 keeps runs that already have summary.json
#   DMLP       (default DMLP.py; a relative path is looked up in the current folder, then the repo root)
# A failed setting is logged and marked "failed" in the table; the exit code is then 1.
set -u -o pipefail

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
if [ "$#" -lt 2 ]; then
    echo "error: usage: scripts/sweep.sh SRC WORK [extra DMLP.py args...] (see --help)" >&2
    exit 2
fi

SRC=$1
WORK=$2
shift 2
SYM_RATES=${SYM_RATES-"0.2 0.5 0.8 0.9"}
ASYM_RATES=${ASYM_RATES-"0.4"}
SEEDS=${SEEDS:-123}
DATASET=${DATASET:-cifar10}
PYTHON=${PYTHON:-python}
DMLP=${DMLP:-DMLP.py}
SKIP_DONE=${SKIP_DONE:-0}

if [ ! -d "$SRC" ]; then
    echo "error: SRC: not a folder ($SRC)" >&2
    exit 2
fi

# Resolve SRC/WORK/DMLP first, then work from the repository root (scripts/, dmlp, DMLP.py).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(cd "$SRC" && pwd)
case "$DMLP" in /*) ;; *) [ -f "$DMLP" ] && DMLP="$PWD/$DMLP" ;; esac
mkdir -p "$WORK/data" "$WORK/runs" "$WORK/logs" || exit 2
WORK=$(cd "$WORK" && pwd)
cd "$ROOT" || exit 2

specs=()
failed=0
run_setting() {  # mode rate seed
    local mode=$1 rate=$2 seed=$3
    shift 3  # the rest are passed through to DMLP.py
    local name
    name=$(printf '%s_%.2f_s%s' "$mode" "$rate" "$seed")
    local data="$WORK/data/$name" out="$WORK/runs/$name" log="$WORK/logs/$name.log"
    specs+=("$name=$data:$out")
    if [ "$SKIP_DONE" = 1 ] && [ -f "$out/summary.json" ]; then
        echo "== $name: kept (summary.json exists)"
        return
    fi
    echo "== $name"
    rm -f "$out/summary.json"  # a stale summary must not pass for this run's result
    if ! "$PYTHON" scripts/make_noisy_labels.py --features-dir "$SRC" --out "$data" \
            --mode "$mode" --rate "$rate" --seed "$seed" --dataset "$DATASET" >"$log" 2>&1; then
        echo "   make_noisy_labels failed: see $log" >&2
        failed=1
        return
    fi
    if ! "$PYTHON" "$DMLP" --data "$data" --out "$out" "$@" >>"$log" 2>&1; then
        echo "   DMLP.py failed: see $log" >&2
        failed=1
    fi
}

for seed in $SEEDS; do
    for rate in $SYM_RATES; do run_setting sym "$rate" "$seed" "$@"; done
    for rate in $ASYM_RATES; do run_setting asym "$rate" "$seed" "$@"; done
done

if [ "${#specs[@]}" -eq 0 ]; then
    echo "error: no settings to run (SYM_RATES, ASYM_RATES and SEEDS are empty)" >&2
    exit 2
fi
"$PYTHON" -m dmlp.sweep_table --out-md "$WORK/sweep.md" --out-csv "$WORK/sweep.csv" "${specs[@]}" || failed=1
echo "table: $WORK/sweep.md, $WORK/sweep.csv"
exit "$failed"
