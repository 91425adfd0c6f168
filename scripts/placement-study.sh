#!/usr/bin/env bash
# scripts/placement-study.sh OUT_DIR: reruns the fill sweep of docs/placement-study.md. For each
# generator profile it writes the cluster and trace (OUT_DIR/PROFILE/input), runs `berth sim fill`
# for every policy and seed (OUT_DIR/PROFILE/report: summary.txt, summary.json, curves.csv,
# chart.svg) and prints the summary tables. Long: minutes per profile on a few cores.
#   PROFILES  profiles to run (default: openb and all its variants)
#   POLICIES  comma-separated policies (default: fgd-ref,fgd,default)
#   SEEDS     seeds (default: 42..51)
#   BERTH     the berth binary (default: build/berth)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ]; then
  echo "usage: scripts/placement-study.sh OUT_DIR" >&2
  exit 2
fi
out=$1
berth=${BERTH:-build/berth}
profiles=${PROFILES:-"openb openb-frac25 openb-frac50 openb-frac75 openb-frac100 openb-multi20 \
openb-multi50 openb-model33 openb-cpu0 openb-cpu30 openb-cpu2x"}
policies=${POLICIES:-fgd-ref,fgd,default}
seeds=${SEEDS:-42..51}
if [ ! -x "$berth" ]; then
  echo "placement-study: $berth not found; build first (scripts/build.sh) or set BERTH" >&2
  exit 1
fi
for p in $profiles; do
  echo "== $p" >&2
  "$berth" sim generate --profile "$p" --out "$out/$p/input" >/dev/null
  "$berth" sim fill --cluster "$out/$p/input/nodes.csv" --trace "$out/$p/input/pods.csv" \
    --policy "$policies" --seeds "$seeds" --out "$out/$p/report" --no-timings
done
