#!/usr/bin/env bash
# A list of noise settings (default sym 20/50/80/90 %, asym 40 % with --dataset or --flip-map)
# through DMLP, one table at the end.
#   scripts/sweep.sh SRC WORK [dmlp sweep / dmlp purify flags]    (same as: dmlp sweep SRC WORK ...)
# See `python -m dmlp sweep --help`.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec env PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python}" -m dmlp sweep "$@"
